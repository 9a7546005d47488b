//! The constraints: one rule, in one candidate zone, for one debt, made
//! into something that can say whether it allows a moment. What each kind
//! of rule keeps, how it is built from the entries the rule counts, the
//! cap arithmetic over counted days, and `allows`.
//!
//! Apart from the search (`search.rs`), which only asks these questions at
//! later and later moments, and from the history (`history.rs`), which
//! picks what is counted before any zone is known.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::history::counts_for_debt;
use super::restrict::{self, Daily, Span};
use super::{Proposal, calendar, local_day};
use crate::index::{BorrowerView, DebtKey, Entry, InteractionKey};
use crate::restrictions::RestrictionKind;
use crate::rules::{CapWindow, Per, Rule, RuleKind, UnlessConsent};

/// A counted item: when, on which local day, and which interaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    pub(super) at: i64,
    pub(super) day: i32,
    pub(super) key: InteractionKey,
}

#[derive(Debug)]
pub(super) enum Kind<'r> {
    /// `exempt`: prior-consent periods; a send inside one passes, and
    /// calls inside one are not in `items`.
    Cap {
        limit: u32,
        window: i32,
        items: Vec<Item>,
        /// The days on which the cap is full ([`full_days`]).
        full: Vec<(i32, i32)>,
        exempt: Vec<Span>,
    },
    CoolDown {
        days: i32,
        day_one: bool,
        items: Vec<Item>,
        exempt: Vec<Span>,
    },
    /// Passes inside the hours, or inside a time the borrower agreed to
    /// that lifts them (`consents`, when the rule has `unlessConsent`).
    Hours {
        from: NaiveTime,
        until: NaiveTime,
        consents: Vec<Daily>,
        lift: Option<UnlessConsent>,
    },
    /// A cap that does not roll: at most `limit` counted `items` in the
    /// send's local calendar month, or in all, counted from the start of
    /// each span in `spans` (a restriction in force) and applied while it
    /// lasts. A count since a receipt older than the history the index
    /// keeps is unknown, and read as reached.
    Period {
        limit: u32,
        window: CapWindow,
        items: Vec<Item>,
        spans: Vec<Span>,
        kept: Kept,
    },
    /// Blocked inside any span (a restriction in force).
    Block { spans: Vec<Span> },
    /// Blocked inside a designated inconvenient time.
    Daily { windows: Vec<Daily> },
    Blackout {
        days: &'r [i32],
        annually: &'r [(u32, u32)],
    },
    /// Passes inside a consent; outside one, only a consent request passes,
    /// `limit` per window, counted in `requests`; nothing passes before a
    /// notice when one is required.
    Consent {
        notice: Option<Vec<Span>>,
        consents: Vec<Span>,
        requests: Vec<Item>,
        /// The days on which the requests' allowance is used up.
        full: Vec<(i32, i32)>,
        limit: u32,
        window: i32,
        is_request: bool,
    },
}

/// What the index keeps of the history: entries before `horizon_secs`
/// before the later of the moment asked about and `now` may be gone, so a
/// count that reaches back further is unknown.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    pub(super) now: i64,
    pub(super) horizon_secs: i64,
}

impl Kept {
    /// The first moment whose entries are surely still held when the
    /// index is asked at `ts`.
    fn held_from(&self, ts: i64) -> i64 {
        self.now.max(ts).saturating_sub(self.horizon_secs)
    }
}

/// The first and last local day of the calendar month that holds `day`.
pub(super) fn month_of(day: i32) -> (i32, i32) {
    use chrono::Datelike;
    let Some(date) = NaiveDate::from_num_days_from_ce_opt(day) else {
        return (day, day);
    };
    let first = date.with_day(1).unwrap_or(date);
    let last = first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|n| n.pred_opt())
        .unwrap_or(date);
    (first.num_days_from_ce(), last.num_days_from_ce())
}

/// Why a [`Kind::Period`] cap blocks at a moment: the span (restriction)
/// whose count is reached, the count, and the days counted.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeriodBlock {
    pub(super) span: Span,
    pub(super) count: u32,
    /// The receipt is older than the history kept: the count is unknown.
    pub(super) unknown: bool,
    /// The calendar month counted, for a monthly cap.
    pub(super) month: Option<(i32, i32)>,
}

#[derive(Debug)]
pub(super) struct Constraint<'r> {
    pub(super) rule: &'r Rule,
    pub(super) zone: Tz,
    pub(super) debt: Option<DebtKey>,
    pub(super) kind: Kind<'r>,
}

pub(super) fn in_any(spans: &[Span], ts: i64) -> Option<&Span> {
    spans.iter().find(|s| s.contains(ts))
}

pub(super) fn is_blackout(days: &[i32], annually: &[(u32, u32)], day: i32) -> bool {
    if days.binary_search(&day).is_ok() {
        return true;
    }
    NaiveDate::from_num_days_from_ce_opt(day).is_some_and(|d| {
        use chrono::Datelike;
        annually.binary_search(&(d.month(), d.day())).is_ok()
    })
}

/// The local days on which a cap of `limit` per `window` days over `items`
/// (sorted by day) is full, as sorted, merged, inclusive ranges: day `d` is
/// full iff some window of `window` days containing it holds `limit` items
/// or more. Items `j..j+limit` fit in one window iff their days span at
/// most `window` days; the windows that hold them start from the last one's
/// day - window + 1 to the first one's day, so they cover the days from
/// there to the first one's day + window - 1. Empty for a limit of 0 (the
/// callers read that as always full).
fn full_days(items: &[Item], window: i32, limit: u32) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = Vec::new();
    let Ok(k) = usize::try_from(limit) else {
        return out;
    };
    if k == 0 {
        return out;
    }
    for (first, last) in items.iter().zip(items.iter().skip(k - 1)) {
        let (a, b) = (first.day, last.day);
        if b - a > window - 1 {
            continue;
        }
        let (lo, hi) = (b - window + 1, a + window - 1);
        match out.last_mut() {
            Some(prev) if lo <= prev.1 + 1 => prev.1 = prev.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// True if `day` is one of the `full` days.
fn is_full(full: &[(i32, i32)], limit: u32, day: i32) -> bool {
    if limit == 0 {
        return true;
    }
    let i = full.partition_point(|r| r.1 < day);
    full.get(i).is_some_and(|r| r.0 <= day)
}

/// The first day after `day` (within [`SEARCH_DAYS`](super::SEARCH_DAYS)) on which a cap over
/// `items` is below `limit`.
pub(super) fn cap_free_day(full: &[(i32, i32)], limit: u32, day: i32) -> Option<i32> {
    if limit == 0 {
        return None;
    }
    // A full range ends at most window - 1 days after the last item, so the
    // day after it is free.
    let d = day + 1;
    let i = full.partition_point(|r| r.1 < d);
    Some(full.get(i).filter(|r| r.0 <= d).map_or(d, |r| r.1 + 1))
}

/// The first day after `day` on which a cap over `items` is full.
pub(super) fn cap_full_day(
    items: &[Item],
    full: &[(i32, i32)],
    window: i32,
    limit: u32,
    day: i32,
) -> Option<i32> {
    let last = items.last()?.day;
    let d = if limit == 0 {
        day + 1
    } else {
        let r = full.get(full.partition_point(|r| r.1 <= day))?;
        r.0.max(day + 1)
    };
    (d < last + window).then_some(d)
}

/// The verdict of a cap on one local day: the fullest window containing
/// it, and its count.
pub(super) struct CapDay {
    pub(super) count: u32,
    pub(super) start: i32,
}

pub(super) fn cap_day(items: &[Item], window: i32, day: i32) -> CapDay {
    // `items` is sorted by day. The windows containing `day` start at
    // day-window+1..=day; both ends of the window only move forward, so
    // two cursors count every window in one pass.
    let first = day - window + 1;
    let mut lo = items.partition_point(|i| i.day < first);
    let mut hi = lo + items[lo..].partition_point(|i| i.day <= day);
    let mut best = CapDay {
        count: 0,
        start: first,
    };
    for start in first..=day {
        let end = start + window - 1;
        while items.get(lo).is_some_and(|i| i.day < start) {
            lo += 1;
        }
        while items.get(hi).is_some_and(|i| i.day <= end) {
            hi += 1;
        }
        let c = u32::try_from(hi - lo).unwrap_or(u32::MAX);
        if c > best.count {
            best = CapDay { count: c, start };
        }
    }
    best
}

impl Constraint<'_> {
    pub(super) fn allows(&self, t: DateTime<Utc>) -> bool {
        let ts = t.timestamp();
        match &self.kind {
            Kind::Cap {
                limit,
                full,
                exempt,
                ..
            } => in_any(exempt, ts).is_some() || !is_full(full, *limit, local_day(self.zone, t)),
            Kind::CoolDown { exempt, .. } => {
                in_any(exempt, ts).is_some()
                    || self
                        .quiet_until(t)
                        .is_none_or(|end| end < local_day(self.zone, t))
            }
            Kind::Hours {
                from,
                until,
                consents,
                ..
            } => {
                let local = calendar::local_time(self.zone, t);
                (*from <= local && local < *until) || self.daily_at(consents, t).is_some()
            }
            Kind::Period { .. } => self.period_blocks(t).next().is_none(),
            Kind::Block { spans } => in_any(spans, ts).is_none(),
            Kind::Daily { windows } => self.daily_at(windows, t).is_none(),
            Kind::Blackout { days, annually } => {
                !is_blackout(days, annually, local_day(self.zone, t))
            }
            Kind::Consent {
                notice,
                consents,
                full,
                limit,
                is_request,
                ..
            } => {
                if notice.as_ref().is_some_and(|n| in_any(n, ts).is_none()) {
                    return false;
                }
                in_any(consents, ts).is_some()
                    || (*is_request && !is_full(full, *limit, local_day(self.zone, t)))
            }
        }
    }

    /// Every reason a [`Kind::Period`] cap blocks at `t` (none for other
    /// kinds): each span in force at `t` whose count, since its start, in
    /// `t`'s local month or in all, has reached the limit, or whose count
    /// reaches back past the history kept.
    pub(super) fn period_blocks(&self, t: DateTime<Utc>) -> impl Iterator<Item = PeriodBlock> {
        let ts = t.timestamp();
        let mut out = Vec::new();
        if let Kind::Period {
            limit,
            window,
            items,
            spans,
            kept,
        } = &self.kind
        {
            let month =
                (*window == CapWindow::CalendarMonth).then(|| month_of(local_day(self.zone, t)));
            for s in spans.iter().filter(|s| s.contains(ts)) {
                let unknown = *window == CapWindow::All && s.start < kept.held_from(ts);
                let count = items
                    .iter()
                    .filter(|i| i.at >= s.start && s.end.is_none_or(|e| i.at < e))
                    .filter(|i| month.is_none_or(|(a, b)| a <= i.day && i.day <= b))
                    .count();
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                if unknown || count >= *limit {
                    out.push(PeriodBlock {
                        span: *s,
                        count,
                        unknown,
                        month,
                    });
                }
            }
        }
        out.into_iter()
    }

    /// The designated inconvenient time in force at `t` that covers it.
    pub(super) fn daily_at<'w>(&self, windows: &'w [Daily], t: DateTime<Utc>) -> Option<&'w Daily> {
        let local = calendar::local_datetime(self.zone, t);
        let ts = t.timestamp();
        windows
            .iter()
            .find(|w| w.span.contains(ts) && w.covers_local(local))
    }

    /// For a cool-down: the last quiet day set by events at or before `t`.
    pub(super) fn quiet_until(&self, t: DateTime<Utc>) -> Option<i32> {
        let Kind::CoolDown {
            days,
            day_one,
            items,
            ..
        } = &self.kind
        else {
            return None;
        };
        let ts = t.timestamp();
        items
            .iter()
            .filter(|i| i.at <= ts)
            .map(|i| i.day + days - i32::from(*day_one))
            .max()
    }
}

/// What a rule that reads the history picked from it (places in
/// `entries`): what it may count for one debt, and, for a consent rule
/// that counts requests per borrower, the borrower's requests.
#[derive(Clone, Copy)]
pub(super) struct Picked<'p> {
    pub(super) entries: &'p [usize],
    pub(super) requests: Option<&'p [usize]>,
}

/// Builds one rule's constraint in one zone for one debt. `picked.entries`
/// are the entries [`select`] chose for the rule and debt; `local_days[i]` is
/// the local day of `entries[i]` in `zone`.
///
/// [`select`]: super::history::select
#[allow(clippy::too_many_arguments, reason = "one constraint's every input")]
pub(super) fn build<'r>(
    rule: &'r Rule,
    view: &BorrowerView<'_>,
    proposal: &Proposal,
    entries: &[Entry],
    picked: Picked<'_>,
    local_days: &[i32],
    zone: Tz,
    debt: Option<DebtKey>,
    kept: Kept,
) -> Constraint<'r> {
    let item = |(e, day): (&Entry, &i32)| Item {
        at: e.at,
        day: *day,
        key: e.key,
    };
    let chosen = || {
        picked
            .entries
            .iter()
            .map(|i| (&entries[*i], &local_days[*i]))
    };
    let consent = |exempt: bool| {
        if exempt {
            restrict::consent_periods(view, zone, debt, &proposal.loans, |e| {
                counts_for_debt(view, e, debt)
            })
        } else {
            Vec::new()
        }
    };
    let kind = match &rule.kind {
        RuleKind::PeriodCap {
            limit,
            window,
            per,
            since,
            ..
        } => {
            let mut items: Vec<Item> = Vec::with_capacity(picked.entries.len());
            items.extend(chosen().map(item));
            if !items.is_sorted_by_key(|i| (i.day, i.at)) {
                items.sort_by_key(|i| (i.day, i.at));
            }
            let spans = match since {
                Some(since) => {
                    let which = (*per == Per::Debt).then_some(debt);
                    restrict::since_spans(view, since, which, proposal)
                }
                // Every month, from the beginning of time.
                None => vec![Span {
                    start: i64::MIN,
                    end: None,
                    restriction: usize::MAX,
                }],
            };
            Kind::Period {
                limit: *limit,
                window: *window,
                items,
                spans,
                kept,
            }
        }
        RuleKind::FrequencyCap {
            limit,
            window_days,
            counting: _,
            exempt_with_prior_consent,
            ..
        } => {
            let exempt = consent(*exempt_with_prior_consent);
            // Sized for every entry at once: growing it step by step
            // reallocated several times per constraint.
            let mut items: Vec<Item> = Vec::with_capacity(entries.len());
            items.extend(
                chosen()
                    .filter(|(e, _)| in_any(&exempt, e.at).is_none())
                    .map(item),
            );
            if !items.is_sorted_by_key(|i| (i.day, i.at)) {
                items.sort_by_key(|i| (i.day, i.at));
            }
            let window = i32::try_from(*window_days).unwrap_or(i32::MAX / 4);
            Kind::Cap {
                limit: *limit,
                window,
                full: full_days(&items, window, *limit),
                items,
                exempt,
            }
        }
        RuleKind::Restriction {
            kind: RestrictionKind::InconvenientTime,
            ..
        } => Kind::Daily {
            windows: restrict::daily_windows(view),
        },
        RuleKind::Restriction {
            kind,
            regulation_f_exceptions,
        } => Kind::Block {
            spans: restrict::blocking_spans(view, *kind, proposal, *regulation_f_exceptions),
        },
        RuleKind::BlackoutDates { days, annually } => Kind::Blackout { days, annually },
        RuleKind::ConsentRequired {
            consent,
            notice,
            requests_limit,
            requests_window_days,
            ..
        } => {
            let spans = |k: RestrictionKind| {
                restrict::permitting_spans(view, k, proposal.channel, debt, &proposal.loans)
            };
            let consents = spans(*consent);
            // Every covered message sent while no consent was in force was
            // a consent request (or a breach): either way it uses the
            // allowance. Counted per borrower, they were judged once for
            // the rule, each against the consents for its own debts.
            let mut requests: Vec<Item> = Vec::with_capacity(entries.len());
            match picked.requests {
                Some(all) => {
                    requests.extend(all.iter().map(|i| item((&entries[*i], &local_days[*i]))));
                }
                None => requests.extend(
                    chosen()
                        .filter(|(e, _)| in_any(&consents, e.at).is_none())
                        .map(item),
                ),
            }
            if !requests.is_sorted_by_key(|i| (i.day, i.at)) {
                requests.sort_by_key(|i| (i.day, i.at));
            }
            let window = i32::try_from(*requests_window_days).unwrap_or(i32::MAX / 4);
            Kind::Consent {
                notice: notice.map(spans),
                consents,
                full: full_days(&requests, window, *requests_limit),
                requests,
                limit: *requests_limit,
                window,
                is_request: proposal.consent_request,
            }
        }
        RuleKind::CoolDown {
            days,
            event_day_is_day_one,
            trigger: _,
            exempt_with_prior_consent,
            ..
        } => {
            let mut items = Vec::with_capacity(entries.len());
            items.extend(chosen().map(item));
            Kind::CoolDown {
                days: i32::try_from(*days).unwrap_or(i32::MAX / 4),
                day_one: *event_day_is_day_one,
                items,
                exempt: consent(*exempt_with_prior_consent),
            }
        }
        RuleKind::PermittedHours {
            from,
            until,
            unless_consent,
        } => Kind::Hours {
            from: *from,
            until: *until,
            consents: unless_consent
                .map_or_else(Vec::new, |lift| restrict::consent_windows(view, lift)),
            lift: *unless_consent,
        },
    };
    Constraint {
        rule,
        zone,
        debt,
        kind,
    }
}

#[cfg(test)]
mod caps {
    //! The full-day ranges against counting every window, day by day.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scan_free(items: &[Item], window: i32, limit: u32, day: i32) -> Option<i32> {
        let last = items.last().map_or(day, |i| i.day);
        ((day + 1)..=(last + window).max(day + 1))
            .find(|d| cap_day(items, window, *d).count < limit)
    }

    fn scan_full(items: &[Item], window: i32, limit: u32, day: i32) -> Option<i32> {
        let last = items.last()?.day;
        ((day + 1)..=(last + window - 1)).find(|d| cap_day(items, window, *d).count >= limit)
    }

    #[test]
    fn full_days_match_every_window() {
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..2_000 {
            let window = i32::try_from(next(10) + 1).unwrap();
            let limit = u32::try_from(next(5)).unwrap();
            let n = next(12);
            let mut items: Vec<Item> = (0..n)
                .map(|k| Item {
                    at: i64::try_from(k).unwrap(),
                    day: 1000 + i32::try_from(next(30)).unwrap(),
                    key: InteractionKey::default(),
                })
                .collect();
            items.sort_by_key(|i| (i.day, i.at));
            let full = full_days(&items, window, limit);
            for day in 990..1045 {
                assert_eq!(
                    is_full(&full, limit, day),
                    cap_day(&items, window, day).count >= limit,
                    "{window} {limit} {day}"
                );
                assert_eq!(
                    cap_free_day(&full, limit, day),
                    scan_free(&items, window, limit, day)
                );
                assert_eq!(
                    cap_full_day(&items, &full, window, limit, day),
                    scan_full(&items, window, limit, day)
                );
            }
        }
    }
}
