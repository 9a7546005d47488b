//! The searches forward in time: for one constraint, the earliest moment
//! at or after a given one that it allows (`next_allowed`) and the first
//! later moment at which it would block (`next_blocked`, which bounds an
//! allow's `valid_until`); for all of them, the earliest moment every one
//! allows at once (`joint_next_allowed`). With the wall-clock stepping
//! across daylight-saving gaps and folds that designated times need.
//!
//! Apart from the constraints: whether a moment is allowed is theirs to
//! say; this file only walks forward, within `SEARCH_DAYS`.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::constraints::{
    Constraint, Kind, cap_free_day, cap_full_day, in_any, is_blackout, month_of,
};
use super::restrict::{self, Daily, Span};
use super::{SEARCH_DAYS, calendar, day_start, local_day, local_instant_at_or_after};
use crate::rules::CapWindow;

fn first_start_after(spans: &[Span], ts: i64) -> Option<DateTime<Utc>> {
    spans
        .iter()
        .filter(|s| s.start > ts)
        .map(|s| s.start)
        .min()
        .and_then(restrict::at)
}

fn min_time(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first blacked-out day after `day`, however far ahead: an allow's
/// `valid_until` must not outlast it, so no search horizon applies. A
/// yearly date recurs within 8 years (Feb 29 skips 2100).
fn next_blackout(days: &[i32], annually: &[(u32, u32)], day: i32) -> Option<i32> {
    use chrono::Datelike;
    let listed = days.get(days.partition_point(|d| *d <= day)).copied();
    let yearly = NaiveDate::from_num_days_from_ce_opt(day).and_then(|today| {
        (today.year()..=today.year().saturating_add(8)).find_map(|year| {
            annually
                .iter()
                .filter_map(|(m, d)| NaiveDate::from_ymd_opt(year, *m, *d))
                .map(|date| date.num_days_from_ce())
                .find(|d| *d > day)
        })
    });
    match (listed, yearly) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Constraint<'_> {
    /// The end of the daily window `w` that covers `t`: its local `until`,
    /// or the restriction's own end if that comes first. (The window of
    /// the next day may start right there: whole Saturdays and Sundays;
    /// the caller asks again.)
    fn daily_end(&self, w: &Daily, t: DateTime<Utc>) -> DateTime<Utc> {
        // The clock next reads `until` (in a fold, the pass after `t`; in
        // a gap that swallows it, the gap's end), unless an offset change
        // before that sets it out of the window (01:59 EDT back to 01:00
        // EST, before a `from` of 01:30).
        let mut end = next_wall_time(self.zone, w.until, t).unwrap_or(t + Duration::minutes(1));
        let mut cursor = t;
        for _ in 0..4 {
            match first_offset_change(self.zone, cursor, end) {
                Some(x) if x < end => {
                    if !w.covers_local(calendar::local_datetime(self.zone, x)) {
                        end = x;
                        break;
                    }
                    cursor = x;
                }
                _ => break,
            }
        }
        let end = w
            .span
            .end
            .and_then(restrict::at)
            .map_or(end, |e| e.min(end));
        if end > t {
            end
        } else {
            t + Duration::minutes(1)
        }
    }

    /// The first moment after `t` (which `w` does not block) at which the
    /// designated time `w` blocks; `None` if it never does again. The local
    /// clock moves forward except at an offset change, so the window is
    /// entered only: at receipt, if the local time then is inside it; when
    /// the clock reaches `from` (or the end of a gap that swallows it) on
    /// a day the window starts on (whole days: `from` is midnight); or at
    /// an offset change that sets the clock back into it (a fold: 01:30
    /// EDT is followed an hour later by 01:00 EST, inside 00:00-01:30
    /// again). Days the window does not start on are passed over, one
    /// `from` at a time.
    fn daily_next_start(&self, w: &Daily, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let in_force = |x: DateTime<Utc>| w.span.end.is_none_or(|e| x.timestamp() < e);
        let covers = |x: DateTime<Utc>| w.covers_local(calendar::local_datetime(self.zone, x));
        if !in_force(t) {
            return None;
        }
        let mut cursor = t;
        if w.span.start > t.timestamp() {
            let start = restrict::at(w.span.start)?;
            if covers(start) {
                return Some(start);
            }
            cursor = start;
        }
        // Each step passes one offset change or one day's `from`: a week
        // of days the window does not start on, and a few changes.
        for _ in 0..32 {
            let reach = next_wall_time(self.zone, w.from, cursor)?;
            match first_offset_change(self.zone, cursor, reach) {
                Some(x) if x < reach => {
                    if covers(x) {
                        return in_force(x).then_some(x);
                    }
                    cursor = x;
                }
                _ if covers(reach) => return in_force(reach).then_some(reach),
                // A day the window does not start on, or a window the gap
                // swallowed whole.
                _ => cursor = reach,
            }
            if !in_force(cursor) {
                return None;
            }
        }
        // Too many steps to follow: an earlier end is safe.
        Some(cursor)
    }

    /// The earliest moment at or after `t` this constraint allows.
    pub(super) fn next_allowed(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.allows(t) {
            return Some(t);
        }
        let ts = t.timestamp();
        match &self.kind {
            Kind::Cap {
                limit,
                full,
                exempt,
                ..
            } => min_time(
                cap_free_day(full, *limit, local_day(self.zone, t))
                    .map(|d| day_start(self.zone, d)),
                first_start_after(exempt, ts),
            ),
            Kind::Block { spans } => {
                // Past the end of every span in force, one after another.
                let mut t = ts;
                for _ in 0..10_000 {
                    let Some(s) = in_any(spans, t) else {
                        return restrict::at(t);
                    };
                    t = spans
                        .iter()
                        .filter(|x| x.contains(t))
                        .map(|x| x.end)
                        .try_fold(s.end?, |m, e| e.map(|e| m.max(e)))?;
                }
                None
            }
            Kind::Daily { windows } => {
                // Windows may follow one another (whole Saturdays, then
                // Sundays); past the search horizon there is no answer
                // (every day designated whole).
                let limit = t
                    .checked_add_signed(Duration::days(SEARCH_DAYS))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                let mut t = t;
                for _ in 0..10_000 {
                    match self.daily_at(windows, t) {
                        None => return Some(t),
                        Some(_) if t > limit => return None,
                        Some(w) => t = self.daily_end(w, t),
                    }
                }
                None
            }
            Kind::Blackout { days, annually } => {
                let day = local_day(self.zone, t);
                ((day + 1)..=(day + i32::try_from(SEARCH_DAYS).unwrap_or(400)))
                    .find(|d| !is_blackout(days, annually, *d))
                    .map(|d| day_start(self.zone, d))
            }
            Kind::Consent {
                notice,
                consents,
                full,
                limit,
                is_request,
                ..
            } => {
                if let Some(n) = notice
                    && in_any(n, ts).is_none()
                {
                    // Nothing goes before the notice; a notice recorded for
                    // later (a mailing date ahead) opens the way then.
                    return first_start_after(n, ts);
                }
                let request = if *is_request {
                    cap_free_day(full, *limit, local_day(self.zone, t))
                        .map(|d| day_start(self.zone, d))
                } else {
                    None
                };
                min_time(request, first_start_after(consents, ts))
            }
            Kind::CoolDown { exempt, .. } => {
                if let Some(s) = first_start_after(exempt, ts)
                    && self
                        .quiet_until(t)
                        .is_some_and(|end| day_start(self.zone, end + 1) > s)
                {
                    return Some(s);
                }
                let mut t = t;
                // Each step moves past the quiet set by the events so far; an
                // event inside the new quiet extends it.
                for _ in 0..1_000 {
                    match self.quiet_until(t) {
                        Some(end) if end >= local_day(self.zone, t) => {
                            t = day_start(self.zone, end + 1)
                        }
                        _ => return Some(t),
                    }
                }
                None
            }
            Kind::Hours { from, consents, .. } => {
                // The next time a consent to another time covers, if any
                // comes before the hours open again.
                let agreed = consents
                    .iter()
                    .filter_map(|w| self.daily_next_start(w, t))
                    .min();
                let local = calendar::local_datetime(self.zone, t);
                let date = if local.time() < *from {
                    local.date()
                } else {
                    local.date().succ_opt()?
                };
                let mut cand = local_instant_at_or_after(self.zone, date.and_time(*from));
                // A gap or fold can land the boundary outside the window;
                // step forward a minute at a time (bounded) until inside.
                for _ in 0..(48 * 60) {
                    if agreed.is_some_and(|a| a <= cand) {
                        return agreed;
                    }
                    if self.allows(cand) {
                        return Some(cand);
                    }
                    cand += Duration::minutes(1);
                }
                agreed
            }
            Kind::Period { .. } => {
                // Past every block in force, one after another: a month's
                // ends at the next local month, a count in all only when
                // its restriction stops.
                let limit = t
                    .checked_add_signed(Duration::days(SEARCH_DAYS))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                let mut t = t;
                for _ in 0..1_000 {
                    let mut next = t;
                    let mut any = false;
                    for b in self.period_blocks(t) {
                        any = true;
                        let stop = b.span.end.and_then(restrict::at);
                        let free = match b.month {
                            Some((_, last)) if !b.unknown => {
                                min_time(Some(day_start(self.zone, last + 1)), stop)
                            }
                            _ => stop,
                        };
                        next = next.max(free?);
                    }
                    if !any {
                        return Some(t);
                    }
                    if next <= t || next > limit {
                        return None;
                    }
                    t = next;
                }
                None
            }
        }
    }

    /// The first moment after `t` (which it allows) at which this
    /// constraint would block, if nothing else is sent.
    pub(super) fn next_blocked(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let ts = t.timestamp();
        // Inside a consent period the rule passes until the period ends
        // (the earlier answer is kept: an allow may end sooner, never later).
        let exempt_end =
            |exempt: &[Span]| in_any(exempt, ts).and_then(|s| s.end.and_then(restrict::at));
        match &self.kind {
            Kind::Cap {
                limit,
                window,
                items,
                full,
                exempt,
            } => min_time(
                exempt_end(exempt),
                cap_full_day(items, full, *window, *limit, local_day(self.zone, t))
                    .map(|d| day_start(self.zone, d)),
            ),
            Kind::CoolDown { items, exempt, .. } => min_time(
                exempt_end(exempt),
                items
                    .iter()
                    .filter(|i| i.at > ts)
                    .map(|i| i.at)
                    .min()
                    .and_then(|s| DateTime::from_timestamp(s, 0)),
            ),
            Kind::Block { spans } => first_start_after(spans, ts),
            Kind::Daily { windows } => windows
                .iter()
                .filter_map(|w| self.daily_next_start(w, t))
                .min(),
            Kind::Blackout { days, annually } => {
                next_blackout(days, annually, local_day(self.zone, t))
                    .map(|d| day_start(self.zone, d))
            }
            Kind::Consent {
                notice,
                consents,
                requests,
                full,
                limit,
                window,
                ..
            } => {
                let notice_end = notice
                    .as_ref()
                    .and_then(|n| in_any(n, ts))
                    .and_then(|s| s.end.and_then(restrict::at));
                let rest = match in_any(consents, ts) {
                    Some(s) => s.end.and_then(restrict::at),
                    None => cap_full_day(requests, full, *window, *limit, local_day(self.zone, t))
                        .map(|d| day_start(self.zone, d)),
                };
                min_time(notice_end, rest)
            }
            Kind::Hours {
                from,
                until,
                consents,
                ..
            } => {
                // The hours and the times agreed to may follow one another
                // (an agreed 21:00-22:00 right after the hours): the allow
                // lasts until neither covers.
                let mut e = t;
                for _ in 0..16 {
                    if !self.allows(e) {
                        return Some(e);
                    }
                    let local = calendar::local_datetime(self.zone, e);
                    let hours_end = (*from <= local.time() && local.time() < *until).then(|| {
                        local_instant_at_or_after(self.zone, local.date().and_time(*until))
                    });
                    let agreed_end = consents
                        .iter()
                        .filter(|w| {
                            w.span.contains(e.timestamp())
                                && w.covers_local(calendar::local_datetime(self.zone, e))
                        })
                        .map(|w| self.daily_end(w, e))
                        .max();
                    match hours_end.max(agreed_end) {
                        Some(next) if next > e => e = next,
                        // An earlier end is safe.
                        _ => return Some(e + Duration::minutes(1)),
                    }
                }
                Some(e)
            }
            Kind::Period {
                window,
                items,
                spans,
                kept,
                ..
            } => {
                // The verdict changes only when a span starts, when a
                // count since an old receipt passes the history kept, and,
                // for a monthly cap, at a month's start: the first of them
                // at which it blocks.
                let mut moments: Vec<i64> = Vec::new();
                for s in spans {
                    if s.start > ts {
                        moments.push(s.start);
                    }
                    if *window == CapWindow::All {
                        let past = s.start.saturating_add(kept.horizon_secs).saturating_add(1);
                        if past > ts {
                            moments.push(past);
                        }
                    }
                }
                if *window == CapWindow::CalendarMonth
                    && let Some(last) = items.last()
                {
                    let mut day = month_of(local_day(self.zone, t)).1 + 1;
                    for _ in 0..24 {
                        if day > last.day {
                            break;
                        }
                        moments.push(day_start(self.zone, day).timestamp());
                        day = month_of(day).1 + 1;
                    }
                }
                moments.sort_unstable();
                moments.dedup();
                moments
                    .into_iter()
                    .filter(|m| *m > ts)
                    .filter_map(restrict::at)
                    .find(|m| !self.allows(*m))
            }
        }
    }
}

/// The first instant after `after` whose local wall-clock time in `zone`
/// is `time`: in a fold, the earlier of the two that are after it; in a
/// gap that swallows `time`, the end of the gap.
fn next_wall_time(zone: Tz, time: NaiveTime, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::{LocalResult, TimeZone};
    // From the day before: a fold may set the clock back past midnight.
    let mut date = calendar::local_datetime(zone, after).date().pred_opt()?;
    for _ in 0..4 {
        let local = date.and_time(time);
        let found = match zone.from_local_datetime(&local) {
            LocalResult::Single(x) => [Some(x.with_timezone(&Utc)), None],
            LocalResult::Ambiguous(a, b) => {
                [Some(a.with_timezone(&Utc)), Some(b.with_timezone(&Utc))]
            }
            LocalResult::None => [Some(local_instant_at_or_after(zone, local)), None],
        };
        if let Some(x) = found.into_iter().flatten().filter(|x| *x > after).min() {
            return Some(x);
        }
        date = date.succ_opt()?;
    }
    None
}

/// The first instant in `(from, to]` at which the UTC offset of `zone`
/// differs from its offset at `from`, if any: sampled every hour, then
/// narrowed to the second (zones change offset at most a few times a
/// year, never twice within an hour).
fn first_offset_change(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::{Offset, TimeZone};
    let offset = |ts: i64| {
        DateTime::from_timestamp(ts, 0).map(|x| zone.offset_from_utc_datetime(&x.naive_utc()).fix())
    };
    let before = offset(from.timestamp());
    let (mut lo, to) = (from.timestamp(), to.timestamp());
    while lo < to {
        let mut hi = lo.saturating_add(3_600).min(to);
        if offset(hi) != before {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return restrict::at(hi);
        }
        lo = hi;
    }
    None
}

/// Moves forward until every constraint allows the same moment.
pub(super) fn joint_next_allowed<'c, 'r: 'c>(
    constraints: impl Iterator<Item = &'c Constraint<'r>> + Clone,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let limit = from
        .checked_add_signed(Duration::days(SEARCH_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut t = from;
    for _ in 0..100_000 {
        let mut moved = false;
        for c in constraints.clone() {
            let next = c.next_allowed(t)?;
            if next > t {
                t = next;
                moved = true;
            }
        }
        if !moved {
            return Some(t);
        }
        if t > limit {
            return None;
        }
    }
    None
}
