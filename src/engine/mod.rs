//! The decision: may this send go now? A pure function of the rule set,
//! the borrower's history, the proposed send and `now`.
//!
//! Every applicable rule becomes one or more *constraints*, one per
//! candidate time zone and, for per-debt rules, per debt. Each constraint
//! can say whether it allows a moment, the earliest moment at or after a
//! given one that it allows, and the first later moment at which it would
//! block. The decision is:
//! - allowed iff every constraint allows the moment of the send;
//! - blocked rules reported with their counts, windows and counted ids;
//! - the next allowed moment: the earliest moment every constraint allows
//!   at once, found by moving forward to each constraint's next allowed
//!   moment until none moves (so a cap that frees at midnight under
//!   08:00–21:00 hours gives 08:00);
//! - the deciding rule: the violated rule whose own block lasts longest,
//!   ties broken by the smaller id;
//! - for an allow, `valid_until`: the first moment some constraint would
//!   block if nothing else were sent.
//!
//! Windows are consecutive local calendar days, not multiples of 24 hours:
//! a window of 7 days that contains the send's local day D is any run of 7
//! days from D-6..D to D..D+6, and every such window must stay within the
//! limit once the send is added, so reservations and scheduled sends after
//! the send count too.

mod calendar;
mod restrict;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::index::{BorrowerView, DebtKey, Entry, InteractionKey};
use crate::jurisdiction::{Jurisdiction, UnknownJurisdiction};
use crate::model::{
    AgentOutcome, Channel, ContactKind, Direction, Status, StatusDetails, Subject, Theme,
};
use crate::restrictions::RestrictionKind;
use crate::rules::{Counting, Filter, Per, Rule, RuleKind, RuleSet, is_conversation};
pub use calendar::{day_start, local_day, local_instant_at_or_after};
pub use restrict::CEASE_EXCEPTIONS;
use restrict::{Daily, Span};

/// Most candidate zones or jurisdictions one send may name.
pub const MAX_PLACES: usize = 64;
/// How far ahead the engine looks for the next allowed moment; beyond it
/// the answer is "none".
pub const SEARCH_DAYS: i64 = 400;

/// Errors in a proposed send's facts. An error never becomes an allow: the
/// caller must refuse the send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A time zone name that is not an IANA zone.
    #[error("unknown time zone `{0}`; allowed: an IANA zone name such as `America/New_York`")]
    UnknownZone(String),
    /// A jurisdiction code outside the vocabulary.
    #[error(transparent)]
    UnknownJurisdiction(#[from] UnknownJurisdiction),
    /// Too many zones or jurisdictions.
    #[error("`{field}` has {len} entries; allowed: at most {MAX_PLACES}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// How many were given.
        len: usize,
    },
}

/// Parses candidate time zone names; an unknown name is an error.
pub fn parse_zones(names: &[String]) -> Result<Vec<Tz>, EngineError> {
    if names.len() > MAX_PLACES {
        return Err(EngineError::TooMany {
            field: "timeZones",
            len: names.len(),
        });
    }
    names
        .iter()
        .map(|n| {
            n.parse::<Tz>()
                .map_err(|_| EngineError::UnknownZone(crate::model::echo(n)))
        })
        .collect()
}

/// Parses jurisdiction codes; an unknown code is an error.
pub fn parse_jurisdictions(codes: &[String]) -> Result<Vec<Jurisdiction>, EngineError> {
    if codes.len() > MAX_PLACES {
        return Err(EngineError::TooMany {
            field: "jurisdictions",
            len: codes.len(),
        });
    }
    codes
        .iter()
        .map(|c| Jurisdiction::parse(c).map_err(EngineError::from))
        .collect()
}

/// A proposed communication: what the pipeline is about to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The channel.
    pub channel: Channel,
    /// The direction (a send is normally outbound).
    pub direction: Direction,
    /// The theme, if known.
    pub theme: Option<Theme>,
    /// The subject, if known; it may imply the theme.
    pub subject: Option<Subject>,
    /// The loans the send is about; empty means every debt of the borrower.
    pub loans: Vec<String>,
    /// isTransactional, if known.
    pub is_transactional: Option<bool>,
    /// The kind of contact point; `Unknown` is the strictest.
    pub contact: ContactKind,
    /// True if the send answers a communication from the borrower.
    pub answers_borrower: bool,
    /// The moment of sending; `None` is `now`.
    pub at: Option<DateTime<Utc>>,
    /// Where the borrower may be; empty means anywhere (every rule applies).
    pub jurisdictions: Vec<Jurisdiction>,
    /// Candidate zones; empty means every zone of the jurisdictions (every
    /// US zone when there is no jurisdiction either).
    pub zones: Vec<Tz>,
    /// The debt's balance, for rules that depend on one; unknown matches.
    pub balance: Option<Decimal>,
    /// The number or address, normalized
    /// ([`crate::restrictions::normalize_contact`]); `None` is unknown,
    /// which every opt-out of a number or address on the channel covers.
    pub contact_value: Option<String>,
    /// The previousInteractionId as given: the borrower's message this
    /// send answers, for the one reply an opt-out allows (1006.14(h)(2)(ii)).
    pub previous: Option<String>,
    /// The caller states the send is required by applicable law, the
    /// exception of 1006.14(h)(2)(iii) to an opt-out (and nothing else).
    pub required_by_law: bool,
    /// The send asks for consent to electronic messages: the one request
    /// per 7 days D.C. 28-3814(d)(4)(B) allows before consent.
    pub consent_request: bool,
}

impl Proposal {
    /// A proposal with the given channel and direction and nothing else
    /// known: every fact left unknown is read the strict way.
    pub fn new(channel: Channel, direction: Direction) -> Proposal {
        Proposal {
            channel,
            direction,
            theme: None,
            subject: None,
            loans: Vec::new(),
            is_transactional: None,
            contact: ContactKind::Unknown,
            answers_borrower: false,
            at: None,
            jurisdictions: Vec::new(),
            zones: Vec::new(),
            balance: None,
            contact_value: None,
            previous: None,
            required_by_law: false,
            consent_request: false,
        }
    }

    fn effective_theme(&self) -> Option<Theme> {
        self.theme
            .or_else(|| self.subject.and_then(Subject::implied_theme))
    }

    /// The candidate zones the decision evaluates in: every place the
    /// borrower's information indicates (comment 6(b)(1)(i)-2), so a time
    /// must be convenient in all of them.
    ///
    /// The given zones, plus every zone of each given jurisdiction that
    /// contains none of the given zones. A zone inside a jurisdiction
    /// narrows it (`US-TX` with `America/Chicago` is Chicago); a
    /// jurisdiction no given zone lies in is weighed whole (`US-CA` with
    /// `America/New_York` is New York and Los Angeles), since the
    /// two facts conflict and the stricter reading is both. With no
    /// jurisdiction, the given zones alone, or every US zone when none is
    /// given. The set always contains the given zones, which alone were
    /// the candidates before, so this reading is never more permissive.
    pub fn candidate_zones(&self) -> Vec<Tz> {
        let mut zones = self.zones.clone();
        if self.jurisdictions.is_empty() {
            if zones.is_empty() {
                zones.extend(Jurisdiction::us().zones().iter().copied());
            }
            return dedup(zones);
        }
        for j in &self.jurisdictions {
            let own = j.zones();
            if !self.zones.iter().any(|z| own.contains(z)) {
                zones.extend(own.iter().copied());
            }
        }
        dedup(zones)
    }
}

fn dedup(mut zones: Vec<Tz>) -> Vec<Tz> {
    let mut seen = Vec::with_capacity(zones.len());
    zones.retain(|z| {
        let new = !seen.contains(z);
        seen.push(*z);
        new
    });
    zones
}

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
    /// [`SEARCH_DAYS`], or never (an opt-out or a cease has no end).
    pub next_allowed_at: Option<DateTime<Utc>>,
    /// The borrower restriction that decided it, for rules that honour
    /// restrictions or consents.
    pub restriction_id: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or block.
    pub allowed: bool,
    /// The moment decided on.
    pub at: DateTime<Utc>,
    /// The deciding rule (the complianceGuardRuleId) when blocked.
    pub rule_id: Option<String>,
    /// Every violated rule.
    pub violations: Vec<Violation>,
    /// When blocked: the earliest moment the same send passes every rule
    /// jointly; `None` if there is none within [`SEARCH_DAYS`].
    pub next_allowed_at: Option<DateTime<Utc>>,
    /// When allowed: the moment until which the allow stays true if
    /// nothing else is sent; `None` if no rule would ever block it.
    pub valid_until: Option<DateTime<Utc>>,
    /// The ids of the rules that covered this send.
    pub applied_rule_ids: Vec<String>,
    /// The version of the rule set decided with.
    pub rules_version: String,
}

/// A counted item: when, on which local day, and which interaction.
#[derive(Debug, Clone, Copy)]
struct Item {
    at: i64,
    day: i32,
    key: InteractionKey,
}

#[derive(Debug)]
enum Kind<'r> {
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
    Hours {
        from: NaiveTime,
        until: NaiveTime,
    },
    /// Blocked inside any span (a restriction in force).
    Block {
        spans: Vec<Span>,
    },
    /// Blocked inside a designated inconvenient time.
    Daily {
        windows: Vec<Daily>,
    },
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

#[derive(Debug)]
struct Constraint<'r> {
    rule: &'r Rule,
    zone: Tz,
    debt: Option<DebtKey>,
    kind: Kind<'r>,
}

fn in_any(spans: &[Span], ts: i64) -> Option<&Span> {
    spans.iter().find(|s| s.contains(ts))
}

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

fn is_blackout(days: &[i32], annually: &[(u32, u32)], day: i32) -> bool {
    if days.binary_search(&day).is_ok() {
        return true;
    }
    NaiveDate::from_num_days_from_ce_opt(day).is_some_and(|d| {
        use chrono::Datelike;
        annually.binary_search(&(d.month(), d.day())).is_ok()
    })
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

/// The first day after `day` (within [`SEARCH_DAYS`]) on which a cap over
/// `items` is below `limit`.
fn cap_free_day(full: &[(i32, i32)], limit: u32, day: i32) -> Option<i32> {
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
fn cap_full_day(
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
struct CapDay {
    count: u32,
    start: i32,
}

fn cap_day(items: &[Item], window: i32, day: i32) -> CapDay {
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
    fn allows(&self, t: DateTime<Utc>) -> bool {
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
            Kind::Hours { from, until } => {
                let local = calendar::local_time(self.zone, t);
                *from <= local && local < *until
            }
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

    /// The designated inconvenient time in force at `t` that covers it.
    fn daily_at<'w>(&self, windows: &'w [Daily], t: DateTime<Utc>) -> Option<&'w Daily> {
        let local = calendar::local_datetime(self.zone, t);
        let ts = t.timestamp();
        windows
            .iter()
            .find(|w| w.span.contains(ts) && w.covers_local(local))
    }

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

    /// For a cool-down: the last quiet day set by events at or before `t`.
    fn quiet_until(&self, t: DateTime<Utc>) -> Option<i32> {
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

    /// The earliest moment at or after `t` this constraint allows.
    fn next_allowed(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
            Kind::Hours { from, .. } => {
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
                    if self.allows(cand) {
                        return Some(cand);
                    }
                    cand += Duration::minutes(1);
                }
                None
            }
        }
    }

    /// The first moment after `t` (which it allows) at which this
    /// constraint would block, if nothing else is sent.
    fn next_blocked(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
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
            Kind::Hours { until, .. } => {
                let local = calendar::local_datetime(self.zone, t);
                Some(local_instant_at_or_after(
                    self.zone,
                    local.date().and_time(*until),
                ))
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
fn joint_next_allowed<'c, 'r: 'c>(
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

/// Orders "never" after every moment.
fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (None, None) => false,
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// True if a rule binds in one of the places the send may be. With no
/// place, every rule applies. A rule for a place inside the send's place
/// applies too: a borrower known only to be in `US-NY` may be in New York
/// City, and an unknown fact never makes the guard more permissive.
fn binds_in(rule: &Rule, places: &[Jurisdiction]) -> bool {
    places.is_empty()
        || rule
            .jurisdictions
            .iter()
            .any(|r| places.iter().any(|p| r.contains(*p) || p.contains(*r)))
}

/// A debt as the rules count it: the index reads a declared account's own
/// id as a loan of its own, but a send or a record naming the account
/// number is about the account, the same particular debt as its loans.
fn as_account(accounts: &[DebtKey], d: DebtKey) -> DebtKey {
    match d {
        DebtKey::Loan(k) if accounts.contains(&DebtKey::Account(k)) => DebtKey::Account(k),
        d => d,
    }
}

fn counts_for_debt(view: &BorrowerView<'_>, e: &Entry, debt: Option<DebtKey>) -> bool {
    match debt {
        None => true,
        // An account counts what names one of its loans or its own id.
        Some(d) => {
            e.loans.is_empty()
                || e.loans
                    .iter()
                    .any(|l| view.debt_of(*l) == d || d == DebtKey::Account(*l))
        }
    }
}

/// Decides whether `proposal` may be sent, against `rules` and the
/// borrower's history in `view`. `now` is the default moment of the send;
/// nothing else in the decision reads a clock.
pub fn decide(
    rules: &RuleSet,
    view: &BorrowerView<'_>,
    proposal: &Proposal,
    now: DateTime<Utc>,
) -> Decision {
    let at = proposal.at.unwrap_or(now);
    let zones = proposal.candidate_zones();
    let theme = proposal.effective_theme();
    let applicable: Vec<&Rule> = rules
        .rules()
        .iter()
        .filter(|r| r.binding && binds_in(r, &proposal.jurisdictions))
        .filter(|r| {
            r.applies.covers(
                proposal.channel,
                proposal.direction,
                theme,
                proposal.contact,
                proposal.is_transactional,
                proposal.answers_borrower,
            ) && r.applies.covers_balance(proposal.balance)
        })
        .collect();

    // The history any rule reads: from the longest window before the send
    // (plus a day for zone offsets) to the end, future reservations included.
    let longest = applicable
        .iter()
        .map(|r| i64::from(r.kind.window_days()))
        .max()
        .unwrap_or(0);
    let from = at
        .checked_sub_signed(Duration::days(longest + 1))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let entries = view.entries_from(from.timestamp());

    let accounts = view.accounts();
    let mut send_debts: Vec<DebtKey> = Vec::new();
    for d in view.debts_of_loans(&proposal.loans) {
        let d = as_account(&accounts, d);
        if !send_debts.contains(&d) {
            send_debts.push(d);
        }
    }
    // Local days of the windowed entries, once per zone: the time zone
    // conversion is the costliest step, and every rule shares it.
    let reads_history = applicable.iter().any(|r| reads(r));
    let days_by_zone: Vec<Vec<i32>> = if reads_history {
        zones
            .iter()
            .map(|z| {
                entries
                    .iter()
                    .map(|e| calendar::local_day_ts(*z, e.at))
                    .collect()
            })
            .collect()
    } else {
        vec![Vec::new(); zones.len()]
    };
    // Entries that share the facts the filters read share every filter's
    // verdict: each rule tests one entry per class, not every entry.
    let classes = if reads_history {
        Classes::group(view, entries)
    } else {
        Classes::default()
    };
    // Which entries count for a debt: the same for every per-debt rule.
    let mut debt_masks: Vec<(DebtKey, Vec<bool>)> = Vec::new();
    // One rule's verdict per class, reused from rule to rule.
    let mut verdicts: Vec<bool> = Vec::new();
    // One per rule and zone, more for per-debt rules: sized once.
    let mut constraints: Vec<Constraint<'_>> =
        Vec::with_capacity(applicable.len() * zones.len() + 8);
    // Each rule's constraints, as a range of `constraints`.
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(applicable.len());
    for rule in &applicable {
        let first = constraints.len();
        let debts: Vec<Option<DebtKey>> = match &rule.kind {
            RuleKind::FrequencyCap { per: Per::Debt, .. }
            | RuleKind::CoolDown { per: Per::Debt, .. }
            | RuleKind::ConsentRequired { per: Per::Debt, .. } => {
                debts_to_check(view, &send_debts, entries)
            }
            _ => vec![None],
        };
        if reads(rule) {
            // The rule's verdict on each class of entries, once.
            verdicts.clear();
            verdicts.extend(
                classes
                    .kinds
                    .iter()
                    .map(|(facts, i)| passes(rule, &entries[*i], facts.answers)),
            );
        }
        // Consent requests counted per borrower under a rule whose consent
        // is per debt: every covered message to the borrower that no
        // consent covered when it went, the same for every debt and zone.
        let borrower_requests: Option<Vec<usize>> = match rule.kind {
            RuleKind::ConsentRequired {
                consent,
                per: Per::Debt,
                requests_per: Per::Borrower,
                ..
            } => {
                let all = select_grouped(rule, view, entries, &classes, &verdicts, None, None);
                Some(restrict::without_consent(
                    view,
                    consent,
                    proposal.channel,
                    entries,
                    all,
                ))
            }
            _ => None,
        };
        // What the rule may count, per debt: the same in every zone, so
        // filtered once, not once per zone (nothing, when the borrower's
        // requests above are all it counts).
        let selected: Vec<Vec<usize>> = if reads(rule) && borrower_requests.is_none() {
            debts
                .iter()
                .map(|d| {
                    let mask = d.map(|d| debt_mask(&mut debt_masks, view, entries, d));
                    select_grouped(rule, view, entries, &classes, &verdicts, *d, mask)
                })
                .collect()
        } else {
            debts.iter().map(|_| Vec::new()).collect()
        };
        // A restriction in force for a span of time reads no clock face:
        // its constraint is the same in every zone, so one is built.
        let in_zones = match rule.kind {
            RuleKind::Restriction { kind, .. } if kind != RestrictionKind::InconvenientTime => 1,
            _ => zones.len(),
        };
        for (zone, days) in zones.iter().zip(&days_by_zone).take(in_zones) {
            for (debt, picked) in debts.iter().zip(&selected) {
                constraints.push(build(
                    rule,
                    view,
                    proposal,
                    entries,
                    Picked {
                        entries: picked,
                        requests: borrower_requests.as_deref(),
                    },
                    days,
                    *zone,
                    *debt,
                ));
            }
        }
        ranges.push(first..constraints.len());
    }

    let mut violations = Vec::new();
    let mut blocked_rules: Vec<(&Rule, Option<DateTime<Utc>>)> = Vec::new();
    for (rule, range) in applicable.iter().zip(&ranges) {
        let mine = &constraints[range.clone()];
        let mut failing = mine.iter().filter(|c| !c.allows(at));
        let Some(first) = failing.next() else {
            continue;
        };
        let own_next = joint_next_allowed(mine.iter(), at);
        // Report the (zone, debt) whose block lasts longest. How long the
        // first one's lasts is worked out only if another one competes.
        let mut worst = first;
        let mut worst_next: Option<Option<DateTime<Utc>>> = None;
        for c in failing {
            let w = *worst_next.get_or_insert_with(|| worst.next_allowed(at));
            let n = c.next_allowed(at);
            if later(n, w) {
                worst = c;
                worst_next = Some(n);
            }
        }
        violations.push(describe(worst, view, &proposal.loans, at, own_next));
        if rule.mode == crate::rules::Mode::Enforce {
            blocked_rules.push((rule, own_next));
        }
    }

    // Shadow rules are reported above but take no part in the answer.
    let all = constraints
        .iter()
        .filter(|c| c.rule.mode == crate::rules::Mode::Enforce);
    let allowed = blocked_rules.is_empty();
    let (rule_id, next_allowed_at, valid_until) = if allowed {
        let until = all.filter_map(|c| c.next_blocked(at)).min();
        (None, None, until)
    } else {
        let mut decisive = blocked_rules[0];
        for b in &blocked_rules[1..] {
            if later(b.1, decisive.1) || (b.1 == decisive.1 && b.0.id < decisive.0.id) {
                decisive = *b;
            }
        }
        (
            Some(decisive.0.id.clone()),
            joint_next_allowed(all, at),
            None,
        )
    };
    Decision {
        allowed,
        at,
        rule_id,
        violations,
        next_allowed_at,
        valid_until,
        applied_rule_ids: applicable.iter().map(|r| r.id.clone()).collect(),
        rules_version: rules.version().to_owned(),
    }
}

/// The debts a per-debt rule checks: those the send names; when it names
/// none, every debt of the borrower that the windowed history or the
/// declared accounts know of; when there is none, one bucket that counts
/// everything.
fn debts_to_check(
    view: &BorrowerView<'_>,
    send_debts: &[DebtKey],
    entries: &[Entry],
) -> Vec<Option<DebtKey>> {
    if !send_debts.is_empty() {
        return send_debts.iter().map(|d| Some(*d)).collect();
    }
    let accounts = view.accounts();
    let mut debts = accounts.clone();
    for e in entries {
        for l in e.loans.iter() {
            let d = as_account(&accounts, view.debt_of(*l));
            if !debts.contains(&d) {
                debts.push(d);
            }
        }
    }
    if debts.is_empty() {
        return vec![None];
    }
    debts.sort();
    debts.into_iter().map(Some).collect()
}

/// True for the rules whose constraints count or read the history.
fn reads(rule: &Rule) -> bool {
    matches!(
        rule.kind,
        RuleKind::FrequencyCap { .. }
            | RuleKind::CoolDown { .. }
            | RuleKind::ConsentRequired { .. }
    )
}

/// The facts of a history entry that a rule's filter over the history
/// reads ([`passes`]): everything but when it happens, which interaction
/// it is and which debts it names (read apart, per debt). Whether it
/// answers the borrower is read from the live history once per decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    channel: Channel,
    direction: Direction,
    theme: Option<Theme>,
    status: Status,
    details: Option<StatusDetails>,
    outcome: Option<AgentOutcome>,
    contact: ContactKind,
    transactional: Option<bool>,
    answers: bool,
}

/// The windowed entries grouped by their [`Facts`]: entries with the same
/// facts pass the same filters, so each rule tests one entry per class
/// instead of every entry (a history has a few kinds of interaction,
/// repeated).
#[derive(Debug, Default)]
struct Classes {
    /// Per entry, its class: a place in `kinds`.
    class_of: Vec<usize>,
    /// Per class, its facts and the place of its first entry.
    kinds: Vec<(Facts, usize)>,
}

impl Classes {
    /// Classes searched for an entry's facts; past this many, an entry
    /// whose facts are not among them is a class of its own (still exact,
    /// and the grouping stays linear in the history).
    const SEARCHED: usize = 32;

    fn group(view: &BorrowerView<'_>, entries: &[Entry]) -> Classes {
        let mut classes = Classes {
            class_of: Vec::with_capacity(entries.len()),
            kinds: Vec::new(),
        };
        for (i, e) in entries.iter().enumerate() {
            let mine = Facts {
                channel: e.channel,
                direction: e.direction,
                theme: e.theme,
                status: e.status,
                details: e.details,
                outcome: e.outcome,
                contact: e.contact,
                transactional: e.transactional,
                answers: view.answers_borrower(e),
            };
            let known = classes
                .kinds
                .iter()
                .take(Self::SEARCHED)
                .position(|(f, _)| *f == mine);
            let class = known.unwrap_or_else(|| {
                classes.kinds.push((mine, i));
                classes.kinds.len() - 1
            });
            classes.class_of.push(class);
        }
        classes
    }
}

/// Which `entries` count for `debt` ([`counts_for_debt`]), from `masks`,
/// or worked out and kept there: every per-debt rule asks the same.
fn debt_mask<'m>(
    masks: &'m mut Vec<(DebtKey, Vec<bool>)>,
    view: &BorrowerView<'_>,
    entries: &[Entry],
    debt: DebtKey,
) -> &'m [bool] {
    let at = match masks.iter().position(|(k, _)| *k == debt) {
        Some(at) => at,
        None => {
            let mask = entries
                .iter()
                .map(|e| counts_for_debt(view, e, Some(debt)))
                .collect();
            masks.push((debt, mask));
            masks.len() - 1
        }
    };
    &masks[at].1
}

/// True if a rule that reads the history may count an entry (in any zone,
/// for any debt) that answers the borrower or not, as `answers` says. It
/// reads only the entry's [`Facts`].
fn passes(rule: &Rule, e: &Entry, answers: bool) -> bool {
    match &rule.kind {
        RuleKind::FrequencyCap { counting, .. } => {
            counting.counts(e) && rule.applies.covers_entry(e, answers)
        }
        RuleKind::ConsentRequired { .. } => {
            Counting::default().counts(e) && rule.applies.covers_entry(e, answers)
        }
        RuleKind::CoolDown { trigger, .. } => {
            is_conversation(e) && trigger.covers_entry(e, answers)
        }
        _ => false,
    }
}

/// The entries (by place in `entries`) a rule that reads the history may
/// count for one debt, in every zone: the part of its filter that does not
/// depend on the zone. Empty for the other rules.
fn select(
    rule: &Rule,
    view: &BorrowerView<'_>,
    entries: &[Entry],
    debt: Option<DebtKey>,
) -> Vec<usize> {
    let keep = |e: &Entry| match &rule.kind {
        RuleKind::FrequencyCap { counting, .. } => {
            counted(view, &rule.applies, counting, e) && counts_for_debt(view, e, debt)
        }
        RuleKind::ConsentRequired { .. } => {
            counted(view, &rule.applies, &Counting::default(), e) && counts_for_debt(view, e, debt)
        }
        RuleKind::CoolDown { trigger, .. } => {
            is_conversation(e)
                && trigger.covers_entry(e, view.answers_borrower(e))
                && counts_for_debt(view, e, debt)
        }
        _ => false,
    };
    let reads = matches!(
        rule.kind,
        RuleKind::FrequencyCap { .. }
            | RuleKind::CoolDown { .. }
            | RuleKind::ConsentRequired { .. }
    );
    if !reads {
        return Vec::new();
    }
    let mut picked = Vec::with_capacity(entries.len());
    picked.extend((0..entries.len()).filter(|i| keep(&entries[*i])));
    picked
}

/// [`select`], by class: `verdicts[c]` is the rule's verdict on class `c`
/// of `classes` ([`passes`]); for a debt, `mask[i]` says whether
/// `entries[i]` counts for it ([`debt_mask`]).
fn select_grouped(
    rule: &Rule,
    view: &BorrowerView<'_>,
    entries: &[Entry],
    classes: &Classes,
    verdicts: &[bool],
    debt: Option<DebtKey>,
    mask: Option<&[bool]>,
) -> Vec<usize> {
    let mut picked = Vec::with_capacity(entries.len());
    picked.extend(
        (0..entries.len()).filter(|i| verdicts[classes.class_of[*i]] && mask.is_none_or(|m| m[*i])),
    );
    // The grouping must not change what is kept: tests run with debug
    // assertions, and compare with every entry tested on its own.
    debug_assert_eq!(
        picked,
        select(rule, view, entries, debt),
        "{rule:?} {debt:?}"
    );
    picked
}

/// What a rule that reads the history picked from it (places in
/// `entries`): what it may count for one debt, and, for a consent rule
/// that counts requests per borrower, the borrower's requests.
#[derive(Clone, Copy)]
struct Picked<'p> {
    entries: &'p [usize],
    requests: Option<&'p [usize]>,
}

/// Builds one rule's constraint in one zone for one debt. `picked.entries`
/// are the entries [`select`] chose for the rule and debt; `local_days[i]` is
/// the local day of `entries[i]` in `zone`.
#[allow(clippy::too_many_arguments, reason = "one constraint's every input")]
fn build<'r>(
    rule: &'r Rule,
    view: &BorrowerView<'_>,
    proposal: &Proposal,
    entries: &[Entry],
    picked: Picked<'_>,
    local_days: &[i32],
    zone: Tz,
    debt: Option<DebtKey>,
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
        RuleKind::PermittedHours { from, until } => Kind::Hours {
            from: *from,
            until: *until,
        },
    };
    Constraint {
        rule,
        zone,
        debt,
        kind,
    }
}

fn counted(view: &BorrowerView<'_>, applies: &Filter, counting: &Counting, e: &Entry) -> bool {
    counting.counts(e) && applies.covers_entry(e, e.previous.is_some() && view.answers_borrower(e))
}

fn describe(
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
            v.counted_interaction_ids = quiet
                .iter()
                .map(|i| view.interaction_id(i.key).to_owned())
                .collect();
            v.message = format!(
                "a telephone conversation{about} on {} ({}) starts a quiet period through {}",
                fmt_day(first),
                c.zone,
                fmt_day(end)
            );
        }
        Kind::Hours { from, until } => {
            let local = calendar::local_datetime(c.zone, at);
            v.message = format!(
                "{} in {} is outside the permitted hours {}–{}",
                local.format("%Y-%m-%d %H:%M"),
                c.zone,
                clock(*from),
                clock(*until)
            );
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
        .map(|i| view.interaction_id(i.key).to_owned())
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

#[cfg(test)]
mod invariants {
    //! Brute-force checks of each constraint's promises, minute by minute:
    //! where it blocks, `next_allowed` gives a moment it allows (or a
    //! strictly later one to go on from); where it allows, `next_blocked`
    //! is never later than the first blocked minute.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::index::Index;
    use crate::model::InteractionInput;
    use crate::restrictions::RestrictionInput;
    use crate::rules::LoadOptions;

    /// A borrower's history and restrictions, a send, and the minutes to
    /// check from `from`.
    pub(super) struct Setup<'a> {
        pub rules: &'a str,
        pub records: &'a [String],
        pub restrictions: &'a [String],
        pub proposal: Proposal,
        pub zones: &'a [&'a str],
        pub from: &'a str,
        pub hours: i64,
    }

    /// Every broken promise, at most two per rule and zone.
    pub(super) fn check(s: &Setup<'_>) -> Vec<String> {
        let rules = RuleSet::compile(
            &[("t.yaml".to_owned(), s.rules.to_owned())],
            &LoadOptions::default(),
        )
        .expect("rules");
        let mut index = Index::default();
        for r in s.records {
            let input: InteractionInput = serde_yaml::from_str(r).unwrap();
            let now = crate::model::parse_time("t", input.started_at.as_deref().unwrap()).unwrap();
            index.create("BO-TEST-1", &input, now).expect("record");
        }
        for r in s.restrictions {
            let input: RestrictionInput = serde_yaml::from_str(r).unwrap();
            let at = crate::model::parse_time("t", &input.received_at).unwrap();
            let id = input.id.clone().unwrap();
            let x = input
                .check(id, "BO-TEST-1".into(), "t".into(), at)
                .expect("restriction");
            index.put_restriction(x).unwrap();
        }
        let view = index.view("BO-TEST-1").unwrap();
        let entries = view.entries_from(i64::MIN);
        let mut p = s.proposal.clone();
        p.zones = s.zones.iter().map(|z| z.parse().unwrap()).collect();
        let send_debts = view.debts_of_loans(&p.loans);
        let from = crate::model::parse_time("t", s.from).unwrap();
        let mut bad = Vec::new();
        for rule in rules.rules() {
            for zone in p.candidate_zones() {
                let days: Vec<i32> = entries
                    .iter()
                    .map(|e| calendar::local_day_ts(zone, e.at))
                    .collect();
                let debts = match &rule.kind {
                    RuleKind::FrequencyCap { per: Per::Debt, .. }
                    | RuleKind::CoolDown { per: Per::Debt, .. }
                    | RuleKind::ConsentRequired { per: Per::Debt, .. } => {
                        debts_to_check(&view, &send_debts, entries)
                    }
                    _ => vec![None],
                };
                for debt in debts {
                    let picked = select(rule, &view, entries, debt);
                    let picked = Picked {
                        entries: &picked,
                        requests: None,
                    };
                    let c = build(rule, &view, &p, entries, picked, &days, zone, debt);
                    let minutes = s.hours * 60;
                    let ok: Vec<bool> = (0..=minutes + 48 * 60)
                        .map(|m| c.allows(from + Duration::minutes(m)))
                        .collect();
                    let mut found = 0;
                    for (i, m) in (0..=minutes).enumerate() {
                        let t = from + Duration::minutes(m);
                        if ok[i] {
                            let first = ok[i..]
                                .iter()
                                .position(|a| !a)
                                .map(|k| t + Duration::minutes(i64::try_from(k).unwrap()));
                            let nb = c.next_blocked(t);
                            if let Some(f) = first
                                && nb.is_none_or(|n| n > f)
                            {
                                found += 1;
                                bad.push(format!(
                                    "{} {zone}: next_blocked({t}) = {nb:?}, but it blocks at {f}",
                                    rule.id
                                ));
                            }
                        } else {
                            let n = c.next_allowed(t);
                            // The first sampled minute it allows: the next
                            // allowed moment may not be later.
                            let first = ok[i..]
                                .iter()
                                .position(|a| *a)
                                .map(|k| t + Duration::minutes(i64::try_from(k).unwrap()));
                            if let Some(n) = n
                                && (n < t || !c.allows(n))
                            {
                                found += 1;
                                bad.push(format!(
                                    "{} {zone}: next_allowed({t}) = {n}, which it blocks",
                                    rule.id
                                ));
                            } else if let Some(f) = first
                                && n.is_none_or(|n| n > f)
                            {
                                found += 1;
                                bad.push(format!(
                                    "{} {zone}: next_allowed({t}) = {n:?}, but it allows {f}",
                                    rule.id
                                ));
                            }
                        }
                        if found >= 2 {
                            break;
                        }
                    }
                }
            }
        }
        bad
    }

    const DESIGNATED: &str = r#"
rules:
  - id: t-daily
    description: designated times
    citation: test
    jurisdictions: [US]
    applies: {directions: [outbound]}
    restriction: inconvenientTime
"#;

    /// [`check`] of one designation under the designated-time rule alone,
    /// for a call about one loan, minute by minute for `hours`.
    fn check_designation(
        restriction: String,
        zones: &[&str],
        from: &str,
        hours: i64,
    ) -> Vec<String> {
        let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
        p.loans = vec!["CARD".into()];
        check(&Setup {
            rules: DESIGNATED,
            records: &[],
            restrictions: &[restriction],
            proposal: p,
            zones,
            from,
            hours,
        })
    }

    /// Designated times across daylight-saving changes: New York (gap at
    /// 02:00 on Mar 8, fold at 01:00-02:00 on Nov 1 2026), Havana (changes
    /// at midnight), Lord Howe (half-hour changes, Apr 5 and Oct 4 2026);
    /// received long before, inside a gap, and inside both passes of a
    /// fold.
    #[test]
    fn designated_times_across_offset_changes() {
        let zones = ["America/New_York", "America/Havana", "Australia/Lord_Howe"];
        let windows = [
            ("00:00", "01:30"),
            ("01:30", "03:00"),
            ("02:30", "05:00"),
            ("21:00", "09:00"),
            ("23:30", "00:30"),
        ];
        let mut bad = Vec::new();
        for from in [
            "2026-03-07T00:00:00Z",
            "2026-10-31T00:00:00Z",
            "2026-04-04T00:00:00Z",
            "2026-10-03T00:00:00Z",
        ] {
            for (f, u) in windows {
                for received in [
                    "2026-01-01T00:00:00Z",
                    "2026-03-08T06:20:00Z",
                    "2026-11-01T05:40:00Z",
                    "2026-11-01T06:20:00Z",
                ] {
                    let restriction = format!(
                        "{{id: RS-T-1, kind: inconvenientTime, source: call, receivedAt: '{received}', from: '{f}', until: '{u}'}}"
                    );
                    for b in check_designation(restriction, &zones, from, 48) {
                        bad.push(format!("{from} {f}-{u} received {received}: {b}"));
                    }
                }
            }
        }
        bad.truncate(20);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    /// Designations on days of the week (comment 6(b)(1)-1) across the
    /// same offset changes, each on a Sunday: a window on the day of the
    /// change, one past midnight from the Saturday before, whole days,
    /// and a window on a day after; received long before and inside the
    /// New York gap.
    #[test]
    fn designated_days_across_offset_changes() {
        let zones = ["America/New_York", "America/Havana", "Australia/Lord_Howe"];
        let windows = [
            ("[sunday]", Some(("01:30", "03:00"))),
            ("[saturday]", Some(("23:30", "00:30"))),
            ("[friday, saturday]", Some(("21:00", "09:00"))),
            ("[weekends]", None),
            ("[sunday, tuesday]", None),
            ("[monday]", Some(("00:00", "01:30"))),
        ];
        let mut bad = Vec::new();
        for from in [
            "2026-03-07T00:00:00Z",
            "2026-10-31T00:00:00Z",
            "2026-04-04T00:00:00Z",
            "2026-10-03T00:00:00Z",
        ] {
            for (days, times) in windows {
                for received in ["2026-01-01T00:00:00Z", "2026-03-08T06:20:00Z"] {
                    let times = times
                        .map(|(f, u)| format!(", from: '{f}', until: '{u}'"))
                        .unwrap_or_default();
                    let restriction = format!(
                        "{{id: RS-T-1, kind: inconvenientTime, source: call, receivedAt: '{received}', days: {days}{times}}}"
                    );
                    for b in check_designation(restriction, &zones, from, 60) {
                        bad.push(format!("{from} {days}{times} received {received}: {b}"));
                    }
                }
            }
        }
        bad.truncate(20);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
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
