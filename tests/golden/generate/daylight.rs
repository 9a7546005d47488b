//! Scripted cases of daylight-saving changes (and of a zone without any):
//! for each, seven calls on the seven local days that end with the day of
//! the change (the last one in its first hour), then Checks at instants
//! around the change: both sides of a fold or a gap, the hours rule's
//! edges that day, the next local midnights, and a week later. The caps
//! count local days, so their windows and next allowed moments cross the
//! change.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::{America, Asia, Australia, Pacific, Tz};
use serde_json::json;

use super::scripted::{call, record};
use super::{Gen, date};
use crate::golden::render::time;

/// A change: the Check's time zone, the zone itself, and its local date.
type Change = (&'static str, Tz, &'static str);

/// The changes: New York's fold (2020-11-01, 01:00 to 02:00 twice) and
/// gap (2021-03-14, no 02:00 to 03:00); Lord Howe Island's half-hour fold
/// and gap; the Chatham Islands' (at 02:45 and 03:45); Santiago's gap at
/// midnight (2021-09-05 starts at 01:00); and Kathmandu (+05:45, no
/// change) on New York's gap day.
const CHANGES: &[Change] = &[
    ("America/New_York", America::New_York, "2020-11-01"),
    ("America/New_York", America::New_York, "2021-03-14"),
    ("Australia/Lord_Howe", Australia::Lord_Howe, "2021-04-04"),
    ("Australia/Lord_Howe", Australia::Lord_Howe, "2021-10-03"),
    ("Pacific/Chatham", Pacific::Chatham, "2021-04-04"),
    ("Pacific/Chatham", Pacific::Chatham, "2021-09-26"),
    ("America/Santiago", America::Santiago, "2021-09-05"),
    ("Asia/Kathmandu", Asia::Kathmandu, "2021-03-14"),
];

/// Every instant whose local wall time in `tz` is `h:m:s` on `day`: none,
/// one, or two in a fold. A wall time in a gap gives the first instant
/// after the gap instead.
fn instants(tz: Tz, day: NaiveDate, h: u32, m: u32, s: u32) -> Vec<DateTime<Utc>> {
    let naive = day.and_hms_opt(h, m, s).unwrap();
    let utc = |t: DateTime<Tz>| t.with_timezone(&Utc);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => vec![utc(t)],
        LocalResult::Ambiguous(a, b) => vec![utc(a), utc(b)],
        LocalResult::None => (1..=120)
            .find_map(|k| {
                tz.from_local_datetime(&(naive + Duration::minutes(k)))
                    .earliest()
            })
            .map(utc)
            .into_iter()
            .collect(),
    }
}

/// The steps of this part.
impl Gen<'_> {
    /// Every change of [`CHANGES`], for a borrower of a New York debt
    /// living in its zone.
    pub(super) fn daylight_saving(&mut self) {
        for (n, (zone, tz, day)) in CHANGES.iter().enumerate() {
            let person = format!("ext-dst{n}");
            let day = date(day);
            let first = instants(*tz, day, 0, 30, 0)[0];
            self.now = first + Duration::minutes(15);
            // Ids of ours given by the caller: short in the counted lists.
            for k in (0..=6).rev() {
                let at = if k == 0 {
                    first
                } else {
                    instants(*tz, day - Duration::days(k), 10, 0, 0)[0]
                };
                let minutes = (self.now - at).num_minutes();
                let mut r = record(self, "voice", "attempted", minutes);
                r["id"] = json!(format!("IT-D{n}-{}", 7 - k));
                self.step("create", json!({"personId": person, "interaction": r}));
            }
            let mut at: Vec<DateTime<Utc>> = [
                (0, 59, 59),
                (1, 30, 0),
                (2, 15, 0),
                (2, 59, 59),
                (3, 0, 0),
                (3, 59, 59),
                (7, 59, 59),
                (8, 0, 0),
                (20, 59, 59),
                (21, 0, 0),
            ]
            .iter()
            .flat_map(|(h, m, s)| instants(*tz, day, *h, *m, *s))
            .chain(instants(*tz, day + Duration::days(1), 0, 0, 0))
            .chain(instants(*tz, day + Duration::days(7), 8, 0, 0))
            .collect();
            at.sort();
            at.dedup();
            let mut c = call(&person, "L1");
            c["timeZones"] = json!([zone]);
            for t in at {
                c["at"] = json!(time(t));
                self.step("check", c.clone());
            }
        }
    }
}
