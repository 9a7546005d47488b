//! Which entries of the borrower's history a rule counts: the debts a
//! per-debt rule checks, the entries that count for a debt, and each
//! rule's filter, tested once per class of entries that share the facts
//! it reads rather than once per entry.
//!
//! Apart from the constraints: nothing here depends on a time zone, so it
//! runs once per rule and debt, before any constraint is built.

use crate::index::{BorrowerView, DebtKey, Entry};
use crate::model::{AgentOutcome, Channel, ContactKind, Direction, Status, StatusDetails, Theme};
use crate::rules::{Counting, Filter, Rule, RuleKind, is_conversation};

/// A debt as the rules count it: the index reads a declared account's own
/// id as a loan of its own, but a send or a record naming the account
/// number is about the account, the same particular debt as its loans.
pub(super) fn as_account(accounts: &[DebtKey], d: DebtKey) -> DebtKey {
    match d {
        DebtKey::Loan(k) if accounts.contains(&DebtKey::Account(k)) => DebtKey::Account(k),
        d => d,
    }
}

pub(super) fn counts_for_debt(view: &BorrowerView<'_>, e: &Entry, debt: Option<DebtKey>) -> bool {
    match debt {
        None => true,
        // An account counts what names one of its loans or its own id.
        Some(d) => {
            let loans = view.loans(e);
            loans.is_empty()
                || loans
                    .iter()
                    .any(|l| view.debt_of(*l) == d || d == DebtKey::Account(*l))
        }
    }
}

/// The debts a per-debt rule checks: those the send names; when it names
/// none, every debt of the borrower that the windowed history or the
/// declared accounts know of; when there is none, one bucket that counts
/// everything.
pub(super) fn debts_to_check(
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
        for l in view.loans(e) {
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
pub(super) fn reads(rule: &Rule) -> bool {
    matches!(
        rule.kind,
        RuleKind::FrequencyCap { .. }
            | RuleKind::PeriodCap { .. }
            | RuleKind::CoolDown { .. }
            | RuleKind::ConsentRequired { .. }
    )
}

/// The facts of a history entry that a rule's filter over the history
/// reads ([`passes`]): everything but when it happens, which interaction
/// it is and which debts it names (read apart, per debt). Whether it
/// answers the borrower is read from the live history once per decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    channel: Channel,
    direction: Direction,
    theme: Option<Theme>,
    status: Status,
    details: Option<StatusDetails>,
    outcome: Option<AgentOutcome>,
    contact: ContactKind,
    transactional: Option<bool>,
    pub(super) answers: bool,
}

/// The windowed entries grouped by their [`Facts`]: entries with the same
/// facts pass the same filters, so each rule tests one entry per class
/// instead of every entry (a history has a few kinds of interaction,
/// repeated).
#[derive(Debug, Default)]
pub(super) struct Classes {
    /// Per entry, its class: a place in `kinds`.
    class_of: Vec<usize>,
    /// Per class, its facts and the place of its first entry.
    pub(super) kinds: Vec<(Facts, usize)>,
}

impl Classes {
    /// Classes searched for an entry's facts; past this many, an entry
    /// whose facts are not among them is a class of its own (still exact,
    /// and the grouping stays linear in the history).
    const SEARCHED: usize = 32;

    pub(super) fn group(view: &BorrowerView<'_>, entries: &[Entry]) -> Classes {
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
pub(super) fn debt_mask<'m>(
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
pub(super) fn passes(rule: &Rule, e: &Entry, answers: bool) -> bool {
    match &rule.kind {
        RuleKind::FrequencyCap { counting, .. } | RuleKind::PeriodCap { counting, .. } => {
            counting.counts(e) && counting.covers_entry(&rule.applies, e, answers)
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
pub(super) fn select(
    rule: &Rule,
    view: &BorrowerView<'_>,
    entries: &[Entry],
    debt: Option<DebtKey>,
) -> Vec<usize> {
    let keep = |e: &Entry| match &rule.kind {
        RuleKind::FrequencyCap { counting, .. } | RuleKind::PeriodCap { counting, .. } => {
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
    if !reads(rule) {
        return Vec::new();
    }
    let mut picked = Vec::with_capacity(entries.len());
    picked.extend((0..entries.len()).filter(|i| keep(&entries[*i])));
    picked
}

/// [`select`], by class: `verdicts[c]` is the rule's verdict on class `c`
/// of `classes` ([`passes`]); for a debt, `mask[i]` says whether
/// `entries[i]` counts for it ([`debt_mask`]).
pub(super) fn select_grouped(
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

fn counted(view: &BorrowerView<'_>, applies: &Filter, counting: &Counting, e: &Entry) -> bool {
    counting.counts(e)
        && counting.covers_entry(applies, e, e.previous.is_some() && view.answers_borrower(e))
}
