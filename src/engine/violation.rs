//! Writing a blocked rule up: the [`Violation`] a decision reports, with
//! its message, window, counts and counted ids, worked out from the
//! constraint whose block lasts longest.
//!
//! Apart from the decision: nothing here changes whether a send is
//! allowed, or when; it only says why.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::constraints::{CapDay, Constraint, Item, Kind, cap_day, in_any};
use super::{calendar, local_day};
use crate::index::BorrowerView;

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's id.
    pub rule_id: String,
    /// True for a rule in shadow mode: reported, never blocking.
    pub shadow: bool,
    /// What is wrong, in words.
    pub message: String,
    /// The rule's citation.
    pub citation: String,
    /// How many counted interactions (for a cap) or events (for a
    /// cool-down) decided it; 0 for hours.
    pub count: u32,
    /// The cap's limit; 0 for other kinds.
    pub limit: u32,
    /// The window or quiet period in days; 0 for hours.
    pub window_days: u32,
    /// The first local day of the window that decided it, if any.
    pub window_start: Option<NaiveDate>,
    /// The last local day of that window.
    pub window_end: Option<NaiveDate>,
    /// The zone the days were counted in.
    pub zone: Tz,
    /// The debt counted, for per-debt rules.
    pub debt: Option<String>,
    /// Our ids of the interactions that were counted.
    pub counted_interaction_ids: Vec<String>,
    /// When this rule alone would allow the send; `None`: not within
    /// [`SEARCH_DAYS`](super::SEARCH_DAYS), or never (an opt-out or a cease has no end).
    pub next_allowed_at: Option<DateTime<Utc>>,
    /// The borrower restriction that decided it, for rules that honour
    /// restrictions or consents.
    pub restriction_id: Option<String>,
}

pub(super) fn describe(
    c: &Constraint<'_>,
    view: &BorrowerView<'_>,
    send_loans: &[String],
    at: DateTime<Utc>,
    next_allowed_at: Option<DateTime<Utc>>,
) -> Violation {
    let rule = c.rule;
    let debt = c.debt.map(|d| view.debt_name(d, send_loans));
    let about = About(debt.as_deref());
    let date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d);
    let day = local_day(c.zone, at);
    let mut v = Violation {
        rule_id: rule.id.clone(),
        shadow: rule.mode == crate::rules::Mode::Shadow,
        message: String::new(),
        citation: rule.citation.clone(),
        count: 0,
        limit: 0,
        window_days: rule.kind.window_days(),
        window_start: None,
        window_end: None,
        zone: c.zone,
        // Set last: the messages borrow it.
        debt: None,
        counted_interaction_ids: Vec::new(),
        next_allowed_at,
        restriction_id: None,
    };
    match &c.kind {
        Kind::Cap {
            limit,
            window,
            items,
            ..
        } => {
            let (worst, end) = fill_window(&mut v, view, items, *window, *limit, day);
            v.message = format!(
                "{} communication{}{about} already counted in the {} days {}..{} ({}); the limit is {}, so this send would exceed it",
                worst.count,
                if worst.count == 1 { "" } else { "s" },
                window,
                fmt_day(worst.start),
                fmt_day(end),
                c.zone,
                limit
            );
        }
        Kind::CoolDown {
            days,
            day_one,
            items,
            ..
        } => {
            let ts = at.timestamp();
            let quiet: Vec<&Item> = items
                .iter()
                .filter(|i| i.at <= ts && i.day + days - i32::from(*day_one) >= day)
                .collect();
            let first = quiet.iter().map(|i| i.day).min().unwrap_or(day);
            let end = quiet
                .iter()
                .map(|i| i.day + days - i32::from(*day_one))
                .max()
                .unwrap_or(day);
            v.count = u32::try_from(quiet.len()).unwrap_or(u32::MAX);
            v.window_start = date(first);
            v.window_end = date(end);
            v.counted_interaction_ids = quiet.iter().map(|i| view.interaction_id(i.key)).collect();
            v.message = format!(
                "a telephone conversation{about} on {} ({}) starts a quiet period through {}",
                fmt_day(first),
                c.zone,
                fmt_day(end)
            );
        }
        Kind::Hours {
            from, until, lift, ..
        } => {
            let local = calendar::local_datetime(c.zone, at);
            let consent = match lift {
                Some(l) if l.written => {
                    ", and no consent to another time given in writing (consentToTime, written) covers it"
                }
                Some(_) => ", and no consent to another time (consentToTime) covers it",
                None => "",
            };
            v.message = format!(
                "{} in {} is outside the permitted hours {}–{}{consent}",
                local.format("%Y-%m-%d %H:%M"),
                c.zone,
                clock(*from),
                clock(*until)
            );
        }
        Kind::Period {
            limit, items, kept, ..
        } => {
            let worst = c
                .period_blocks(at)
                .max_by_key(|b| (b.unknown, b.count, std::cmp::Reverse(b.span.restriction)));
            if let Some(b) = worst {
                let r = view.restrictions().get(b.span.restriction);
                v.restriction_id = r.map(|r| r.id.clone());
                v.count = b.count;
                v.limit = *limit;
                let first = match b.month {
                    Some((a, _)) => r.map_or(a, |r| a.max(local_day(c.zone, r.received_at))),
                    None => r.map_or(day, |r| local_day(c.zone, r.received_at)),
                };
                let last = b.month.map(|(_, z)| z);
                v.window_start = NaiveDate::from_num_days_from_ce_opt(first);
                v.window_end = last.and_then(NaiveDate::from_num_days_from_ce_opt);
                v.window_days = last.map_or(0, |z| u32::try_from(z - first + 1).unwrap_or(0));
                v.counted_interaction_ids = items
                    .iter()
                    .filter(|i| i.at >= b.span.start && b.span.end.is_none_or(|e| i.at < e))
                    .filter(|i| b.month.is_none_or(|(a, z)| a <= i.day && i.day <= z))
                    .map(|i| view.interaction_id(i.key))
                    .collect();
                let since = r.map_or_else(String::new, |r| {
                    format!(
                        " since restriction `{}` ({}, received {})",
                        r.id,
                        r.kind,
                        r.received_at.to_rfc3339()
                    )
                });
                v.message = if b.unknown {
                    format!(
                        "the count{about}{since} reaches back past the {} days of history the index keeps, so it is unknown and read as reached (limit {limit} in all); raise the horizon",
                        kept.horizon_secs / 86_400
                    )
                } else if let Some((a, z)) = b.month {
                    format!(
                        "{} communication{}{about} already counted{since} in the calendar month {}..{} ({}); the limit is {limit} a month, so this send would exceed it",
                        b.count,
                        if b.count == 1 { "" } else { "s" },
                        fmt_day(a),
                        fmt_day(z),
                        c.zone,
                    )
                } else {
                    format!(
                        "{} communication{}{about} already counted{since}; the limit is {limit} in all, so this send would exceed it",
                        b.count,
                        if b.count == 1 { "" } else { "s" },
                    )
                };
            }
        }
        Kind::Block { spans } => {
            let ts = at.timestamp();
            // The restriction whose block lasts longest (open-ended first).
            let worst = spans
                .iter()
                .filter(|s| s.contains(ts))
                .max_by_key(|s| (s.end.is_none(), s.end, std::cmp::Reverse(s.restriction)));
            if let Some(r) = worst.and_then(|s| view.restrictions().get(s.restriction)) {
                v.restriction_id = Some(r.id.clone());
                let until = r.stop().map_or_else(
                    || "until it is ended".to_owned(),
                    |s| format!("until {}", s.to_rfc3339()),
                );
                v.message = format!(
                    "restriction `{}` ({}, received {}) is in force {until}",
                    r.id,
                    r.kind,
                    r.received_at.to_rfc3339()
                );
            }
        }
        Kind::Daily { windows } => {
            if let Some(w) = c.daily_at(windows, at) {
                let r = view.restrictions().get(w.span.restriction);
                v.restriction_id = r.map(|r| r.id.clone());
                let local = calendar::local_datetime(c.zone, at);
                v.message = format!(
                    "{} ({}) in {} is inside the time the borrower designated as inconvenient, {}{}",
                    local.format("%Y-%m-%d %H:%M"),
                    local.format("%A"),
                    c.zone,
                    r.map(crate::restrictions::Restriction::designated_time)
                        .unwrap_or_else(|| format!(
                            "{}–{}",
                            w.from.format("%H:%M"),
                            w.until.format("%H:%M")
                        )),
                    r.map(|r| format!(" (restriction `{}`)", r.id))
                        .unwrap_or_default()
                );
            }
        }
        Kind::Blackout { .. } => {
            let local = calendar::local_datetime(c.zone, at);
            v.window_start = Some(local.date());
            v.window_end = Some(local.date());
            v.message = format!(
                "{} is a blackout date in {}",
                local.format("%Y-%m-%d"),
                c.zone
            );
        }
        Kind::Consent {
            notice,
            requests,
            limit,
            window,
            is_request,
            ..
        } => {
            let ts = at.timestamp();
            if notice.as_ref().is_some_and(|n| in_any(n, ts).is_none()) {
                v.message = format!(
                    "no written notice is recorded as mailed{about}; no electronic message may go before it"
                );
            } else if !is_request {
                v.message = format!(
                    "the borrower has not consented to these messages{about}; only a consent request (consentRequest) may go, {limit} in {window} days"
                );
            } else {
                let (worst, end) = fill_window(&mut v, view, requests, *window, *limit, day);
                v.message = format!(
                    "{} message{} sent without consent{about} in the {window} days {}..{} ({}); at most {limit} consent request{} may go",
                    worst.count,
                    if worst.count == 1 { "" } else { "s" },
                    fmt_day(worst.start),
                    fmt_day(end),
                    c.zone,
                    if *limit == 1 { "" } else { "s" },
                );
            }
        }
    }
    v.debt = debt;
    v
}

/// Fills a violation's window from a cap's fullest window containing
/// `day` (count, limit, first and last day, counted ids, in day order);
/// returns that window and its last day, for the message.
fn fill_window(
    v: &mut Violation,
    view: &BorrowerView<'_>,
    items: &[Item],
    window: i32,
    limit: u32,
    day: i32,
) -> (CapDay, i32) {
    let worst = cap_day(items, window, day);
    let end = worst.start + window - 1;
    v.count = worst.count;
    v.limit = limit;
    v.window_start = NaiveDate::from_num_days_from_ce_opt(worst.start);
    v.window_end = NaiveDate::from_num_days_from_ce_opt(end);
    v.counted_interaction_ids = in_days(items, worst.start, end)
        .iter()
        .map(|i| view.interaction_id(i.key))
        .collect();
    (worst, end)
}

/// " about debt `<id>`" for a per-debt constraint, else nothing;
/// formatted straight into the message.
struct About<'d>(Option<&'d str>);

impl std::fmt::Display for About<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, " about debt `{d}`"),
            None => Ok(()),
        }
    }
}

/// The items (sorted by day) on the days `first..=last`: one run of them,
/// so the ids are collected at their exact number.
fn in_days(items: &[Item], first: i32, last: i32) -> &[Item] {
    debug_assert!(items.is_sorted_by_key(|i| i.day));
    let lo = items.partition_point(|i| i.day < first);
    let hi = items.partition_point(|i| i.day <= last);
    items.get(lo..hi).unwrap_or_default()
}

/// A time of day as a rule wrote it: `HH:MM`, with seconds only when set.
fn clock(t: chrono::NaiveTime) -> impl std::fmt::Display {
    use chrono::Timelike;
    if t.second() == 0 {
        t.format("%H:%M")
    } else {
        t.format("%H:%M:%S")
    }
}

/// A local day as a message writes it: the date, or the day number
/// outside the calendar; formatted straight into the message.
fn fmt_day(d: i32) -> impl std::fmt::Display {
    struct Day(i32);
    impl std::fmt::Display for Day {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match NaiveDate::from_num_days_from_ce_opt(self.0) {
                Some(date) => date.fmt(f),
                None => self.0.fmt(f),
            }
        }
    }
    Day(d)
}

#[cfg(test)]
mod messages {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::Datelike;

    /// A day in a message reads as chrono writes the date (or the bare
    /// number outside the calendar), for every kind of year.
    #[test]
    fn days_read_as_chrono_writes_them() {
        let chrono = |d: i32| {
            NaiveDate::from_num_days_from_ce_opt(d).map_or_else(|| d.to_string(), |d| d.to_string())
        };
        let min = NaiveDate::MIN.num_days_from_ce();
        let max = NaiveDate::MAX.num_days_from_ce();
        let edges = [
            i32::MIN,
            min - 1,
            min,
            0,
            1,
            365,
            3_652_059,
            max,
            max + 1,
            i32::MAX,
        ];
        let steps = (-4_000_000..4_000_000).step_by(997);
        for d in edges.into_iter().chain(steps) {
            assert_eq!(fmt_day(d).to_string(), chrono(d), "{d}");
        }
        for y in [-1, 0, 1, 999, 1000, 2020, 9999, 10_000] {
            let d = NaiveDate::from_ymd_opt(y, 12, 31)
                .unwrap()
                .num_days_from_ce();
            assert_eq!(fmt_day(d).to_string(), chrono(d), "{y}");
            assert_eq!(fmt_day(d + 1).to_string(), chrono(d + 1), "{y}");
        }
    }
}
