//! Local calendar arithmetic in IANA zones, safe across daylight-saving
//! gaps and folds.
//!
//! A local day is counted as days from the common era
//! (`NaiveDate::num_days_from_ce`), so windows are plain integer ranges.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// The local wall-clock date and time of `t` in `zone`.
pub fn local_datetime(zone: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&zone).naive_local()
}

/// The local wall-clock time of `t` in `zone`.
pub fn local_time(zone: Tz, t: DateTime<Utc>) -> NaiveTime {
    local_datetime(zone, t).time()
}

/// Days from the common era of 1970-01-01
/// (`NaiveDate::num_days_from_ce` of the Unix epoch).
const EPOCH_DAY: i64 = 719_163;

/// The local day number of `t` in `zone`: the UTC offset in force, then
/// plain arithmetic (no calendar date is built).
pub fn local_day(zone: Tz, t: DateTime<Utc>) -> i32 {
    use chrono::Offset;
    let offset = zone.offset_from_utc_datetime(&t.naive_utc()).fix();
    let local = t.timestamp() + i64::from(offset.local_minus_utc());
    i32::try_from(local.div_euclid(86_400) + EPOCH_DAY)
        .unwrap_or_else(|_| local_datetime(zone, t).date().num_days_from_ce())
}

/// The local day number of a Unix timestamp in `zone`.
pub fn local_day_ts(zone: Tz, ts: i64) -> i32 {
    DateTime::from_timestamp(ts, 0).map_or(0, |t| local_day(zone, t))
}

/// The earliest instant whose local wall-clock time in `zone` is at or
/// after `local`: in a fold, the first of the two; in a gap (a wall time
/// that never happens), the end of the gap.
pub fn local_instant_at_or_after(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // Skip forward minute by minute to the first wall time that
            // exists (gaps are at most a day long: Samoa, 2011-12-30).
            let mut probe = local;
            for _ in 0..(48 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = zone.from_local_datetime(&probe).earliest() {
                    // Gaps end on a whole minute: drop the seconds to land
                    // on the gap's end itself.
                    return t.with_timezone(&Utc) - Duration::seconds(i64::from(probe.second()));
                }
            }
            local.and_utc()
        }
    }
}

/// The first instant of local day `day` in `zone` (local midnight, or the
/// end of a gap that swallows midnight).
pub fn day_start(zone: Tz, day: i32) -> DateTime<Utc> {
    let date = NaiveDate::from_num_days_from_ce_opt(day).unwrap_or(NaiveDate::MIN);
    local_instant_at_or_after(zone, date.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    /// The arithmetic day is the calendar's, around offset changes and far
    /// from the epoch.
    #[test]
    fn local_day_matches_the_calendar() {
        let zones: [Tz; 4] = [
            New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Pacific::Apia,
            chrono_tz::Asia::Kathmandu,
        ];
        for zone in zones {
            for ts in (-3_000_000_000_i64..4_000_000_000).step_by(7_919 * 60) {
                let t = DateTime::from_timestamp(ts, 0).unwrap();
                assert_eq!(
                    local_day(zone, t),
                    local_datetime(zone, t).date().num_days_from_ce(),
                    "{zone} {t}"
                );
            }
        }
    }

    #[test]
    fn gap_and_fold() {
        let gap = NaiveDate::from_ymd_opt(2025, 3, 9)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        // 02:30 does not exist; the gap ends at 03:00 EDT = 07:00 UTC.
        assert_eq!(
            local_instant_at_or_after(New_York, gap).to_rfc3339(),
            "2025-03-09T07:00:00+00:00"
        );
        let fold = NaiveDate::from_ymd_opt(2025, 11, 2)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        // 01:30 happens twice; the first is EDT = 05:30 UTC.
        assert_eq!(
            local_instant_at_or_after(New_York, fold).to_rfc3339(),
            "2025-11-02T05:30:00+00:00"
        );
    }
}
