//! One borrower's history as the engine reads it: the counting entries in
//! time order, restrictions, and the debts a send's loans belong to.

use super::{DebtKey, Entry, Index, InteractionKey, NameKey, Person, PersonKey, REPLY_WINDOW_DAYS};
use crate::restrictions::Restriction;

/// One borrower's history as the engine reads it.
#[derive(Debug, Clone, Copy)]
pub struct BorrowerView<'a> {
    pub(super) index: &'a Index,
    pub(super) person_key: Option<PersonKey>,
    pub(super) person: Option<&'a Person>,
}

impl<'a> BorrowerView<'a> {
    /// The borrower's restrictions, ended ones included.
    pub fn restrictions(&self) -> &'a [Restriction] {
        self.person
            .map_or(&[], |p| p.more().restrictions.as_slice())
    }

    /// The counting entry of one of this borrower's interactions, if it
    /// is live and a Check may read it; `None` for a deleted one, one of
    /// another borrower, or one before the history held whole (on disk
    /// only, or brought back from it: what reads it treats it as not
    /// there, the strict way).
    pub fn entry_of(&self, key: InteractionKey) -> Option<&'a Entry> {
        let p = self.person_key?;
        (self.index.owner(key) == Some(p))
            .then(|| self.index.held(key))
            .flatten()
    }

    /// True if a Check may read this entry as the borrower's live history
    /// (see [`BorrowerView::entry_of`]).
    pub fn is_held(&self, e: &Entry) -> bool {
        self.index.held(e.key).is_some()
    }

    /// The time (Unix seconds) from which the borrower's history is held
    /// whole in memory (`i64::MIN`: all of it): what a count since an
    /// earlier moment cannot know.
    pub fn held_from(&self) -> i64 {
        self.index.held_from()
    }

    /// The key of one of this borrower's interactions, by our id or
    /// `ext-<externalId>`.
    pub fn find(&self, any_id: &str) -> Option<InteractionKey> {
        let k = self.index.find_interaction(any_id).ok()??;
        let owner = self.index.owner(k)?;
        (Some(owner) == self.person_key).then_some(k)
    }

    /// The debt a loan id names, if the index knows the loan.
    pub fn debt_of_name(&self, loan: &str) -> Option<DebtKey> {
        self.index.names.get(loan).map(|k| self.debt_of(k))
    }

    /// Every counting entry, in time order.
    pub fn entries(&self) -> &'a [Entry] {
        self.person.map_or(&[], |p| p.entries.as_slice())
    }

    /// The entries at or after `from` (Unix seconds), in time order.
    pub fn entries_from(&self, from: i64) -> &'a [Entry] {
        let all = self.entries();
        &all[all.partition_point(|e| e.at < from)..]
    }

    /// True if an entry is the reply to a communication from the borrower:
    /// its previousInteractionId names one of the borrower's live inbound
    /// interactions, it happens within [`REPLY_WINDOW_DAYS`] after it, and
    /// it is the first interaction that cites it. Citing an old message, or
    /// answering one message many times, does not make a send a reply.
    pub fn answers_borrower(&self, e: &Entry) -> bool {
        let (Some(prev), Some(p)) = (e.previous, self.person_key) else {
            return false;
        };
        if !self.index.key_is_inbound_of(p, prev) {
            return false;
        }
        let Some(inbound) = self.index.held(prev) else {
            return false;
        };
        let inbound_at = inbound.at;
        if e.at < inbound_at || e.at - inbound_at > REPLY_WINDOW_DAYS * 86_400 {
            return false;
        }
        !self
            .entries_from(inbound_at)
            .iter()
            .take_while(|x| (x.at, x.key) < (e.at, e.key))
            .any(|x| x.previous == Some(prev))
    }

    /// The loans an entry names; empty: it counts for every debt.
    pub fn loans(&self, e: &'a Entry) -> &'a [NameKey] {
        self.index.loans(&e.loans)
    }

    /// Our id of an interaction, from its slot (the full record need not
    /// be in memory).
    pub fn interaction_id(&self, key: InteractionKey) -> String {
        self.index.id_text(key)
    }

    /// The debt a loan belongs to: its account if declared, else itself.
    pub fn debt_of(&self, loan: NameKey) -> DebtKey {
        match self
            .person
            .and_then(|p| p.more().accounts_of_loans.get(&loan))
        {
            Some(account) => DebtKey::Account(*account),
            None => DebtKey::Loan(loan),
        }
    }

    /// The debts a proposed send names, from its loan ids. A loan the index
    /// has never seen is a debt of its own ([`DebtKey::Unlisted`]).
    pub fn debts_of_loans(&self, loans: &[String]) -> Vec<DebtKey> {
        let mut debts = Vec::with_capacity(loans.len());
        for (i, name) in loans.iter().enumerate() {
            let debt = match self.index.names.get(name) {
                Some(k) => self.debt_of(k),
                None => DebtKey::Unlisted(u16::try_from(i).unwrap_or(u16::MAX)),
            };
            if !debts.contains(&debt) {
                debts.push(debt);
            }
        }
        debts
    }

    /// The declared accounts of this borrower.
    pub fn accounts(&self) -> Vec<DebtKey> {
        self.person.map_or_else(Vec::new, |p| {
            p.more()
                .accounts
                .keys()
                .map(|k| DebtKey::Account(*k))
                .collect()
        })
    }

    /// A debt's id for messages: the loan or account id, or the loan's
    /// place in the send for an unlisted one.
    pub fn debt_name(&self, debt: DebtKey, send_loans: &[String]) -> String {
        match debt {
            DebtKey::Loan(k) | DebtKey::Account(k) => self.index.names.name(k).to_owned(),
            DebtKey::Unlisted(i) => send_loans.get(usize::from(i)).cloned().unwrap_or_default(),
        }
    }
}
