//! Which borrower restrictions touch a proposed send, and the exceptions
//! the law gives for each kind. The engine turns what this finds into
//! spans of time during which a rule blocks (or exempts).
//!
//! Matching a restriction to a send is asymmetric on purpose:
//! - a restriction that *blocks* touches a send whenever it may concern it
//!   (a send about every debt is touched by a cease of any one debt);
//! - a restriction that *permits* (a consent, a notice) counts for a debt
//!   only when it surely names it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Proposal, calendar};
use crate::index::{BorrowerView, ContactHash, DebtKey, Entry, contact_hash};
use crate::model::{Channel, ContactKind, Direction, Subject};
use crate::restrictions::{Restriction, RestrictionKind, is_electronic};
use crate::rules::{Since, UnlessConsent, is_conversation, was_sent};

/// A stretch of time `[start, end)` in Unix seconds during which a
/// restriction blocks or permits; `end` `None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: i64,
    pub end: Option<i64>,
    /// The restriction's place in [`BorrowerView::restrictions`].
    pub restriction: usize,
}

impl Span {
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && self.end.is_none_or(|e| t < e)
    }
}

/// A moment in whole seconds, rounded up.
fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// The span a restriction is in force, in whole seconds, rounded the
/// strict way: a restriction that blocks starts at the second it was
/// received and ends at the second after it stopped; one that permits
/// starts at the second after receipt and ends at the second it stopped.
fn span_of(r: &Restriction, restriction: usize, blocks: bool) -> Option<Span> {
    let (start, end) = if blocks {
        (r.received_at.timestamp(), r.stop().map(ceil_secs))
    } else {
        (ceil_secs(r.received_at), r.stop().map(|s| s.timestamp()))
    };
    (end.is_none_or(|e| e > start)).then_some(Span {
        start,
        end,
        restriction,
    })
}

/// The subjects of the communications 12 CFR 1006.6(c)(2) still allows
/// after a cease: (i) further efforts are being terminated
/// (`ceaseCommunicationAcknowledgement`); (ii) and (iii) remedies may be or
/// will be invoked (`ceaseCommunicationRefuseToPay`, the answer to a
/// refusal to pay).
pub const CEASE_EXCEPTIONS: &[Subject] = &[
    Subject::CeaseCommunicationAcknowledgement,
    Subject::CeaseCommunicationRefuseToPay,
];

/// The debts a borrower's loan ids name, as a restriction or a send writes
/// them: a loan's debt, or a declared account named by its own id (the
/// index reads an account's id as a loan of its own; a restriction recorded
/// against an account number means the account).
struct Names {
    accounts: Vec<DebtKey>,
}

impl Names {
    fn new(view: &BorrowerView<'_>) -> Names {
        Names {
            accounts: view.accounts(),
        }
    }

    fn debt(&self, view: &BorrowerView<'_>, name: &str) -> Option<DebtKey> {
        match view.debt_of_name(name)? {
            DebtKey::Loan(k) if self.accounts.contains(&DebtKey::Account(k)) => {
                Some(DebtKey::Account(k))
            }
            d => Some(d),
        }
    }
}

/// True if a blocking restriction may concern the send's debts: it names
/// none (every debt), the send names none (about every debt), or they
/// share a loan or a debt (an account and its loans are one debt).
fn may_touch_debts(view: &BorrowerView<'_>, r: &Restriction, send_loans: &[String]) -> bool {
    if r.loan_ids.is_empty() || send_loans.is_empty() {
        return true;
    }
    let names = Names::new(view);
    let send: Vec<Option<DebtKey>> = send_loans.iter().map(|l| names.debt(view, l)).collect();
    r.loan_ids.iter().any(|rl| {
        let debt = names.debt(view, rl);
        send_loans
            .iter()
            .zip(&send)
            .any(|(sl, sd)| rl == sl || (debt.is_some() && debt == *sd))
    })
}

/// True if a permitting restriction surely names this debt. `None` (the
/// one bucket of a borrower with no known debt) is named only by a
/// restriction for every debt.
pub(super) fn surely_names_debt(
    view: &BorrowerView<'_>,
    r: &Restriction,
    debt: Option<DebtKey>,
    send_loans: &[String],
) -> bool {
    if r.loan_ids.is_empty() {
        return true;
    }
    let Some(debt) = debt else { return false };
    let names = Names::new(view);
    r.loan_ids.iter().any(|rl| match debt {
        DebtKey::Unlisted(i) => send_loans.get(usize::from(i)) == Some(rl),
        _ => names.debt(view, rl) == Some(debt),
    })
}

fn concerns_place(r: &Restriction, kind: ContactKind, value: Option<&str>) -> bool {
    let by_kind = !r.contact_kinds.is_empty()
        && (kind == ContactKind::Unknown || r.contact_kinds.contains(&kind));
    let by_value = !r.contact_values.is_empty()
        && value.is_none_or(|v| r.contact_values.iter().any(|c| c == v));
    by_kind || by_value
}

/// Whether an interaction went to (or came from) a contact point an
/// opt-out names: always for an opt-out naming none; `None` when the
/// interaction's number or address is not recorded.
/// `points` are the opt-out's points as [`contact_hash`]es, hashed once
/// per Check rather than once per entry compared.
fn at_opted_out_point(points: &[ContactHash], x: &Entry) -> Option<bool> {
    if points.is_empty() {
        return Some(true);
    }
    x.contact_value.map(|v| points.contains(&v))
}

/// The exceptions of 12 CFR 1006.14(h)(2) to an opt-out: a communication
/// required by law; one confirmation of an electronic opt-out (subject
/// `electronicConsentOptOut`, never a call); one reply in the barred
/// medium to a communication the borrower initiated through it.
fn opt_out_exception(view: &BorrowerView<'_>, r: &Restriction, p: &Proposal) -> bool {
    if p.required_by_law {
        return true;
    }
    let since = r.received_at.timestamp();
    let points: Vec<ContactHash> = r.contact_values.iter().map(|c| contact_hash(c)).collect();
    if is_electronic(p.channel) && p.subject == Some(Subject::ElectronicConsentOptOut) {
        // One confirmation per opt-out, whichever of its media carried it
        // (an opt-out of texts and emails gets one, not one per medium); a
        // confirmation to a point it does not name (another opted-out
        // number) is not its confirmation, one to an unrecorded point may
        // have been.
        // An opt-out received before the history held whole may have had
        // its confirmation there: taken as confirmed (the strict way).
        let confirmed = since < view.held_from()
            || view.entries_from(since).iter().any(|e| {
                was_sent(e)
                    && r.channels.contains(&e.channel)
                    && view.is_held(e)
                    && e.subject == Some(Subject::ElectronicConsentOptOut)
                    && at_opted_out_point(&points, e) != Some(false)
            });
        if !confirmed {
            return true;
        }
    }
    let Some(prev) = p.previous.as_deref().and_then(|id| view.find(id)) else {
        return false;
    };
    // A deleted interaction has no entry: it was not initiated.
    let Some(inbound) = view.entry_of(prev) else {
        return false;
    };
    let initiated = inbound.direction == Direction::Inbound
        && inbound.channel == p.channel
        && inbound.at >= since
        && at_opted_out_point(&points, inbound) == Some(true);
    initiated
        && !view
            .entries_from(inbound.at)
            .iter()
            .any(|e| was_sent(e) && e.channel == p.channel && e.previous == Some(prev))
}

/// The spans during which restrictions of `kind` block this send. Each
/// kind's exceptions are applied here, so a restriction that an exception
/// lifts gives no span; a rule of a law without Regulation F's exceptions
/// to a cease or an opt-out passes `regulation_f_exceptions: false`.
pub(super) fn blocking_spans(
    view: &BorrowerView<'_>,
    kind: RestrictionKind,
    p: &Proposal,
    regulation_f_exceptions: bool,
) -> Vec<Span> {
    let mut spans = Vec::new();
    for (i, r) in view.restrictions().iter().enumerate() {
        if r.kind != kind {
            continue;
        }
        let touches = match kind {
            RestrictionKind::CeaseCommunication => {
                may_touch_debts(view, r, &p.loans)
                    && !(regulation_f_exceptions
                        && p.subject.is_some_and(|s| CEASE_EXCEPTIONS.contains(&s)))
            }
            RestrictionKind::MediumOptOut => {
                r.channels.contains(&p.channel)
                    && r.concerns_value(p.contact_value.as_deref())
                    && !(regulation_f_exceptions && opt_out_exception(view, r, p))
            }
            RestrictionKind::InconvenientPlace => {
                concerns_place(r, p.contact, p.contact_value.as_deref())
            }
            // An employer's prohibition always covers the workplace's phone
            // (12 CFR 1006.6(b)(3): the consumer's employer prohibits the
            // consumer from receiving it there), whatever else it names: a
            // restriction recorded with only the work email still blocks a
            // call to a work phone.
            RestrictionKind::EmployerProhibitsContact => {
                matches!(p.contact, ContactKind::WorkPhone | ContactKind::Unknown)
                    || concerns_place(r, p.contact, p.contact_value.as_deref())
            }
            RestrictionKind::AttorneyRepresentation => {
                let to_attorney = p
                    .contact_value
                    .as_deref()
                    .is_some_and(|v| r.contact_values.iter().any(|c| c == v));
                may_touch_debts(view, r, &p.loans) && !to_attorney
            }
            RestrictionKind::DoNotInteract => may_touch_debts(view, r, &p.loans),
            // Read as daily windows, or by other rule kinds.
            RestrictionKind::InconvenientTime
            | RestrictionKind::PriorConsentToCall
            | RestrictionKind::ElectronicConsent
            | RestrictionKind::ElectronicNoticeMailed
            | RestrictionKind::ConsentToTime => false,
        };
        if touches && let Some(s) = span_of(r, i, true) {
            spans.push(s);
        }
    }
    spans
}

/// A designated inconvenient time: local `[from, until)` (past midnight
/// when `until <= from`) on the local days of `days`, while the
/// restriction is in force. A window past midnight belongs to the day it
/// starts on; whole days are `00:00`–`00:00` (from midnight to the next).
#[derive(Debug, Clone, Copy)]
pub(super) struct Daily {
    pub from: chrono::NaiveTime,
    pub until: chrono::NaiveTime,
    /// Bit `i` set: the window starts on weekday `i` (Monday is 0); every
    /// day is `0x7f`.
    pub days: u8,
    pub span: Span,
}

/// Every day of the week, as [`Daily::days`].
const EVERY_DAY: u8 = 0x7f;

impl Daily {
    fn starts_on(&self, date: chrono::NaiveDate) -> bool {
        use chrono::Datelike;
        self.days & (1 << date.weekday().num_days_from_monday()) != 0
    }

    /// True if the local wall-clock moment `t` is inside the window.
    pub fn covers_local(&self, t: chrono::NaiveDateTime) -> bool {
        let time = t.time();
        if self.from < self.until {
            self.from <= time && time < self.until && self.starts_on(t.date())
        } else {
            (time >= self.from && self.starts_on(t.date()))
                || (time < self.until && t.date().pred_opt().is_some_and(|d| self.starts_on(d)))
        }
    }
}

/// The designated inconvenient times of the borrower.
pub(super) fn daily_windows(view: &BorrowerView<'_>) -> Vec<Daily> {
    windows_of(view, |r| r.kind == RestrictionKind::InconvenientTime, true)
}

/// The times the borrower agreed to that lift a rule's permitted hours
/// (`consentToTime`, written when the rule asks for writing), in force
/// from the second after receipt, as a consent is.
pub(super) fn consent_windows(view: &BorrowerView<'_>, lift: UnlessConsent) -> Vec<Daily> {
    windows_of(view, |r| lift.lifted_by(r), false)
}

/// The local windows (`from`, `until`, `days`) of the restrictions `pick`
/// chooses, over the span each is in force (rounded the strict way for a
/// block or for a permission, as `blocks` says).
fn windows_of(
    view: &BorrowerView<'_>,
    pick: impl Fn(&Restriction) -> bool,
    blocks: bool,
) -> Vec<Daily> {
    view.restrictions()
        .iter()
        .enumerate()
        .filter(|(_, r)| pick(r))
        .filter_map(|(i, r)| {
            let days = if r.days.is_empty() {
                EVERY_DAY
            } else {
                r.days
                    .iter()
                    .fold(0u8, |m, d| m | (1 << d.num_days_from_monday()))
            };
            let (from, until) = match (r.from, r.until) {
                (Some(f), Some(u)) => (f, u),
                // Whole days: midnight to midnight.
                (None, None) if !r.days.is_empty() => {
                    (chrono::NaiveTime::MIN, chrono::NaiveTime::MIN)
                }
                _ => return None,
            };
            Some(Daily {
                from,
                until,
                days,
                span: span_of(r, i, blocks)?,
            })
        })
        .collect()
}

/// The prior-consent periods (12 CFR 1006.14(b)(3)(i)) for one debt in one
/// zone: from receipt to the earliest of the end of the 7th local day
/// (the day of receipt is day 1), the consent's own end or revocation, and
/// a telephone conversation about the debt after receipt (the call that
/// became that conversation is still inside).
pub(super) fn consent_periods(
    view: &BorrowerView<'_>,
    zone: Tz,
    debt: Option<DebtKey>,
    send_loans: &[String],
    counts_for_debt: impl Fn(&Entry) -> bool,
) -> Vec<Span> {
    let mut spans = Vec::new();
    for (i, r) in view.restrictions().iter().enumerate() {
        if r.kind != RestrictionKind::PriorConsentToCall
            || !surely_names_debt(view, r, debt, send_loans)
        {
            continue;
        }
        // Permits: from the second after receipt (rounded up), until the
        // second it stopped (rounded down).
        let start = ceil_secs(r.received_at);
        let seventh =
            calendar::day_start(zone, calendar::local_day(zone, r.received_at) + 7).timestamp();
        let mut end = r.stop().map_or(seventh, |s| s.timestamp().min(seventh));
        if let Some(conv) = view
            .entries_from(r.received_at.timestamp() + 1)
            .iter()
            .find(|e| e.at < end && is_conversation(e) && counts_for_debt(e))
        {
            end = end.min(conv.at + 1);
        }
        if end > start {
            spans.push(Span {
                start,
                end: Some(end),
                restriction: i,
            });
        }
    }
    spans
}

/// The spans of a permitting restriction kind (a consent, a notice) that
/// surely name this debt and, for a consent naming media, this channel.
pub(super) fn permitting_spans(
    view: &BorrowerView<'_>,
    kind: RestrictionKind,
    channel: Channel,
    debt: Option<DebtKey>,
    send_loans: &[String],
) -> Vec<Span> {
    view.restrictions()
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.kind == kind
                && (r.channels.is_empty() || r.channels.contains(&channel))
                && surely_names_debt(view, r, debt, send_loans)
        })
        .filter_map(|(i, r)| span_of(r, i, false))
        .collect()
}

/// The messages among `picked` (places in `entries`) that no consent of
/// `kind` for `channel` surely covered when they went: consent requests
/// (or breaches). A message is covered when, for each debt it is about, a
/// consent naming that debt was in force, and a message about no debt
/// when a consent for every debt was. Judged against the send's channel,
/// as the per-debt count judges it, so that counting per borrower never
/// counts fewer requests for a debt than counting per debt did. The spans
/// are worked out once per debt met.
pub(super) fn without_consent(
    view: &BorrowerView<'_>,
    kind: RestrictionKind,
    channel: Channel,
    entries: &[Entry],
    mut picked: Vec<usize>,
) -> Vec<usize> {
    let accounts = view.accounts();
    let mut spans: Vec<(Option<DebtKey>, Vec<Span>)> = Vec::new();
    let mut covered = |debt: Option<DebtKey>, at: i64| {
        let i = match spans.iter().position(|(d, _)| *d == debt) {
            Some(i) => i,
            None => {
                spans.push((debt, permitting_spans(view, kind, channel, debt, &[])));
                spans.len() - 1
            }
        };
        spans[i].1.iter().any(|s| s.contains(at))
    };
    picked.retain(|i| {
        let e = &entries[*i];
        let loans = view.loans(e);
        let consented = if loans.is_empty() {
            covered(None, e.at)
        } else {
            loans
                .iter()
                .all(|l| covered(Some(super::as_account(&accounts, view.debt_of(*l))), e.at))
        };
        !consented
    });
    picked
}

/// The spans during which the restrictions that start a cap's count are
/// in force, for one debt (`Some`) or for the send's debts (`None`, a cap
/// per borrower): a restriction that names no debt, or that may name this
/// one (a blocking reading: it limits sends), starts it. Rounded as a
/// block: from the second of receipt.
pub(super) fn since_spans(
    view: &BorrowerView<'_>,
    since: &Since,
    debt: Option<Option<DebtKey>>,
    p: &Proposal,
) -> Vec<Span> {
    view.restrictions()
        .iter()
        .enumerate()
        .filter(|(_, r)| since.started_by(r))
        .filter(|(_, r)| match debt {
            None => may_touch_debts(view, r, &p.loans),
            Some(None) => true,
            Some(Some(d)) => r.loan_ids.is_empty() || surely_names_debt(view, r, Some(d), &p.loans),
        })
        .filter_map(|(i, r)| span_of(r, i, true))
        .collect()
}

/// A moment as a time, for spans' bounds.
pub(super) fn at(ts: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts, 0)
}
