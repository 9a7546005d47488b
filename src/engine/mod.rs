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
//!
//! # Where the code is
//!
//! This file holds the send and the answer ([`Proposal`], [`Decision`])
//! and [`decide`], which puts the pieces together. `history.rs` picks the
//! entries of the history each rule counts; `constraints.rs` makes a rule
//! and those entries into a constraint that says whether it allows a
//! moment; `search.rs` moves forward in time (the next allowed and the next
//! blocked moment of a constraint, the next moment all of them allow);
//! `violation.rs` writes a blocked rule up as a [`Violation`].
//! `restrict.rs` reads the borrower's restrictions and `calendar.rs` does
//! the local-day arithmetic.

mod calendar;
mod constraints;
mod history;
#[cfg(test)]
mod invariants;
mod restrict;
mod search;
mod violation;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::index::{BorrowerView, DebtKey};
use crate::jurisdiction::{Jurisdiction, UnknownJurisdiction};
use crate::location::{Derived, Reason, Weighed, weigh};
use crate::model::{Channel, ContactKind, Direction, Subject, Theme};
use crate::restrictions::RestrictionKind;
use crate::rules::{CapWindow, Per, Rule, RuleKind, RuleSet};
pub use calendar::{day_start, local_day, local_instant_at_or_after};
pub use restrict::CEASE_EXCEPTIONS;
pub use violation::Violation;

use constraints::{Constraint, Kept, Picked, build};
use history::{Classes, as_account, debt_mask, debts_to_check, passes, reads, select_grouped};
use search::joint_next_allowed;
use violation::describe;

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
    /// Locations read from the contact (its number's area code, the
    /// postal code): they only ever add zones, and jurisdictions when
    /// `jurisdictions` is not empty ([`crate::location`]).
    pub derived: Vec<Derived>,
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
            derived: Vec::new(),
        }
    }

    fn effective_theme(&self) -> Option<Theme> {
        self.theme
            .or_else(|| self.subject.and_then(Subject::implied_theme))
    }

    /// The candidate zones the decision evaluates in: every place the
    /// borrower's information indicates (comment 6(b)(1)(i)-2), so a time
    /// must be convenient in all of them.
    pub fn candidate_zones(&self) -> Vec<Tz> {
        self.weighed_zones().into_iter().map(|w| w.place).collect()
    }

    /// The candidate zones, each with why it is weighed.
    ///
    /// The given zones, plus every zone of each given jurisdiction that
    /// contains none of the given zones. A zone inside a jurisdiction
    /// narrows it (`US-TX` with `America/Chicago` is Chicago); a
    /// jurisdiction no given zone lies in is weighed whole (`US-CA` with
    /// `America/New_York` is New York and Los Angeles), since the two
    /// facts conflict and the stricter reading is both. With no
    /// jurisdiction, the given zones alone, or every US zone when none is
    /// given. Then the zones read from the contact ([`Proposal::derived`])
    /// are added: they never narrow, so the set always contains the one
    /// without them.
    pub fn weighed_zones(&self) -> Vec<Weighed<Tz>> {
        let mut out = Vec::with_capacity(self.zones.len() + 4);
        for z in &self.zones {
            weigh(&mut out, *z, Reason::Given);
        }
        if self.jurisdictions.is_empty() {
            if self.zones.is_empty() {
                for z in Jurisdiction::us().zones() {
                    weigh(&mut out, *z, Reason::NoLocation);
                }
            }
        } else {
            for j in &self.jurisdictions {
                let own = j.zones();
                if !self.zones.iter().any(|z| own.contains(z)) {
                    for z in own {
                        weigh(&mut out, *z, Reason::Of(*j));
                    }
                }
            }
        }
        for d in &self.derived {
            for z in &d.zones {
                weigh(&mut out, *z, Reason::From(d.evidence.clone()));
            }
        }
        out
    }

    /// The places whose rules bind, each with why: the given
    /// jurisdictions, plus those read from the contact when some were
    /// given. Empty means anywhere (every rule binds), which a derived
    /// place must not narrow.
    pub fn weighed_places(&self) -> Vec<Weighed<Jurisdiction>> {
        let mut out = Vec::with_capacity(self.jurisdictions.len() + 1);
        for j in &self.jurisdictions {
            weigh(&mut out, *j, Reason::Given);
        }
        if !out.is_empty() {
            for d in &self.derived {
                for j in &d.jurisdictions {
                    weigh(&mut out, *j, Reason::From(d.evidence.clone()));
                }
            }
        }
        out
    }
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
    /// The zones weighed, each with why (the explanation every answer
    /// gives an officer).
    pub zones_weighed: Vec<Weighed<Tz>>,
    /// The jurisdictions whose rules bound, each with why; empty when the
    /// Check named none (anywhere: every rule binds).
    pub places_weighed: Vec<Weighed<Jurisdiction>>,
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
    let zones_weighed = proposal.weighed_zones();
    let zones: Vec<Tz> = zones_weighed.iter().map(|w| w.place).collect();
    let places_weighed = proposal.weighed_places();
    let places: Vec<Jurisdiction> = places_weighed.iter().map(|w| w.place).collect();
    let theme = proposal.effective_theme();
    let applicable: Vec<&Rule> = rules
        .rules()
        .iter()
        .filter(|r| r.binding && r.binds_in(&places))
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
    let mut from = at
        .checked_sub_signed(Duration::days(longest + 1))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    // A cap counted in all since a restriction's receipt reads from the
    // earliest receipt that starts one (what the index still holds of it).
    for rule in &applicable {
        if let RuleKind::PeriodCap {
            window: CapWindow::All,
            since: Some(since),
            ..
        } = &rule.kind
        {
            for r in view.restrictions() {
                if since.started_by(r) && r.received_at < from {
                    from = r.received_at;
                }
            }
        }
    }
    let kept = Kept {
        now: now.timestamp(),
        horizon_secs: i64::from(rules.horizon_days()) * 86_400,
    };
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
            | RuleKind::PeriodCap { per: Per::Debt, .. }
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
                    kept,
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
        zones_weighed,
        places_weighed,
    }
}
