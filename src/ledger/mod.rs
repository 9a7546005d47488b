//! The ledger: the state behind the guard's one lock, and the one
//! interpreter of the journal.
//!
//! It holds the index, the answers kept for request-id retries, the open
//! reservations and the conversations. It changes only by
//! [`Ledger::apply`]ing a [`Change`]: the guard's writes (after the change
//! is journaled), start-up recovery (the journal read back) and what-if
//! (the journal read back as of each decision) all go through it, so a
//! record means the same thing everywhere. [`Ledger::apply_lenient`] is
//! the same interpreter for a reader that must go on past a bad record,
//! and it counts what it skipped.

mod change;

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

pub use change::{ApplyError, Change, changes};

use crate::index::{Index, IndexConfig, PersonNames};
use crate::model::{Channel, Convo};
use crate::pb::journal::Record;
use crate::request::CheckOutcome;

/// How long a reserving Check's answer is kept for retries with the same
/// `request_id`.
pub const REQUEST_ID_TTL_HOURS: i64 = 24;
/// Most stored answers kept in memory; beyond it the oldest leave memory
/// and, while they are younger than [`REQUEST_ID_TTL_HOURS`], a retry
/// finds them in the store.
pub const MAX_STORED_ANSWERS: usize = 1_000_000;

/// An open reservation: recorded by a reserving Check and never updated
/// since, so it holds its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The interaction recorded.
    pub interaction_id: String,
    /// Our id of the person.
    pub person_id: String,
    /// The request id of the Check, if any.
    pub request_id: Option<String>,
    /// When it was recorded.
    pub reserved_at: DateTime<Utc>,
    /// Who reserved it.
    pub reserved_by: String,
    /// Its channel.
    pub channel: Channel,
    /// The loans it is about.
    pub loan_ids: Vec<String>,
}

/// A reserving Check's answer, kept for retries with its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// Our id of the person it was for (or the name given, for a person
    /// the guard did not know).
    pub person_id: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// The answer.
    pub outcome: CheckOutcome,
}

/// What [`Ledger::apply_lenient`] skipped: counts by record kind, and the
/// first reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Records skipped, by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// The first [`Skipped::KEPT_REASONS`] reasons, in order.
    pub reasons: Vec<String>,
}

impl Skipped {
    /// How many reasons are kept.
    pub const KEPT_REASONS: usize = 10;

    /// How many records were skipped.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    fn note(&mut self, e: ApplyError) {
        *self.by_kind.entry(e.kind).or_default() += 1;
        if self.reasons.len() < Self::KEPT_REASONS {
            self.reasons.push(e.to_string());
        }
    }
}

/// The state behind one lock.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Interactions, people, debts and restrictions.
    pub index: Index,
    answers: HashMap<String, StoredAnswer>,
    /// The answers in memory in the order they came: when stored, the
    /// request id, and the journal frame the answer was written in (0:
    /// read back from the store).
    answer_order: VecDeque<(DateTime<Utc>, String, u64)>,
    /// Most answers kept in memory (`None`: [`MAX_STORED_ANSWERS`]).
    answers_in_memory: Option<usize>,
    /// Until when an answer that left memory for room may still be
    /// answered from (the store holds it for its 24 hours).
    answers_on_disk_until: Option<DateTime<Utc>>,
    /// The latest journal frame of an answer that left memory for room
    /// within its 24 hours: the store holds every such answer once it
    /// has applied that frame.
    answers_left_at_frame: u64,
    reservations: BTreeMap<String, Reservation>,
    /// The conversations of text and chat interactions that have been
    /// joined or closed, by our interaction id.
    convos: BTreeMap<String, Convo>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(config: IndexConfig) -> Ledger {
        Ledger {
            index: Index::new(config),
            ..Ledger::default()
        }
    }

    /// Forgets answers older than [`REQUEST_ID_TTL_HOURS`], and the oldest
    /// beyond [`MAX_STORED_ANSWERS`]. Not a change: a recovered ledger
    /// forgets them the same way at its next reserving Check.
    pub fn expire_answers(&mut self, now: DateTime<Utc>) {
        let ttl = Duration::hours(REQUEST_ID_TTL_HOURS);
        let cutoff = now - ttl;
        let most = self.answers_in_memory.unwrap_or(MAX_STORED_ANSWERS);
        while let Some((t, id, frame)) = self.answer_order.front() {
            if *t >= cutoff && self.answer_order.len() <= most {
                break;
            }
            if *t >= cutoff {
                // Still within its 24 hours: a retry reads it from the store.
                let until = *t + ttl;
                self.answers_on_disk_until =
                    Some(self.answers_on_disk_until.map_or(until, |u| u.max(until)));
                self.answers_left_at_frame = self.answers_left_at_frame.max(*frame);
            }
            self.answers.remove(id);
            self.answer_order.pop_front();
        }
    }

    /// True if [`Ledger::expire_answers`] would forget anything now.
    pub fn answers_to_expire(&self, now: DateTime<Utc>) -> bool {
        let cutoff = now - Duration::hours(REQUEST_ID_TTL_HOURS);
        let most = self.answers_in_memory.unwrap_or(MAX_STORED_ANSWERS);
        self.answer_order.len() > most
            || self
                .answer_order
                .front()
                .is_some_and(|(t, _, _)| *t < cutoff)
    }

    /// Sets the most answers kept in memory (at least one; see
    /// [`MAX_STORED_ANSWERS`]).
    pub fn set_answers_in_memory(&mut self, most: usize) {
        self.answers_in_memory = Some(most.max(1));
    }

    /// True if the answer for `request_id` is not in memory but may be in
    /// the store: an answer still within its 24 hours left memory for
    /// room ([`Ledger::expire_answers`]).
    pub fn answer_may_be_on_disk(&self, request_id: &str, now: DateTime<Utc>) -> bool {
        !self.answers.contains_key(request_id)
            && self.answers_on_disk_until.is_some_and(|until| now < until)
    }

    /// The journal frame the store must have applied before a request id
    /// it does not hold can be taken for new: every answer that left
    /// memory within its 24 hours was written in it or before
    /// ([`Ledger::expire_answers`]; 0: none left).
    pub fn answers_left_at_frame(&self) -> u64 {
        self.answers_left_at_frame
    }

    /// Keeps in memory an answer read back from the store (not a change:
    /// the journal and the store hold it already).
    pub fn recall_answer(&mut self, request_id: String, answer: StoredAnswer) {
        if self.answers.contains_key(&request_id) {
            return;
        }
        self.answer_order
            .push_back((answer.stored_at, request_id.clone(), 0));
        self.answers.insert(request_id, answer);
    }

    /// The answer kept for a request id.
    pub fn answer(&self, request_id: &str, now: DateTime<Utc>) -> Option<&StoredAnswer> {
        // An answer read back from the store sits behind younger ones in
        // the order of expiry: its own time decides.
        let cutoff = now - Duration::hours(REQUEST_ID_TTL_HOURS);
        self.answers
            .get(request_id)
            .filter(|a| a.stored_at >= cutoff)
    }

    /// The open reservations, by interaction id.
    pub fn reservations(&self) -> &BTreeMap<String, Reservation> {
        &self.reservations
    }

    /// Keeps in memory a conversation read back from the store (not a
    /// change: the journal and the store hold it already); one memory
    /// holds already is newer and stays.
    pub fn recall_convo(&mut self, convo: Convo) {
        self.convos
            .entry(convo.interaction_id.clone())
            .or_insert(convo);
    }

    /// Lets go of the conversations of these interactions, which left
    /// memory (the store holds them).
    pub fn forget_convos_of(&mut self, interaction_ids: &[String]) {
        for id in interaction_ids {
            self.convos.remove(id);
        }
    }

    /// Lets go of the conversations of every interaction memory does not
    /// hold (a start, once it left history on disk). Returns how many
    /// went.
    pub fn forget_convos_on_disk(&mut self) -> usize {
        let before = self.convos.len();
        let index = &self.index;
        self.convos.retain(|id, _| index.knows(id));
        before - self.convos.len()
    }

    /// The conversation of an interaction, if it was ever joined or closed.
    pub fn convo(&self, interaction_id: &str) -> Option<&Convo> {
        self.convos.get(interaction_id)
    }

    /// Applies one change: the only way the ledger changes.
    pub fn apply(&mut self, change: Change) -> Result<(), ApplyError> {
        match change {
            Change::Person { names, .. } => {
                self.index.restore(&names);
            }
            Change::Debt {
                person_id,
                debt_id,
                loan_ids,
                ..
            } => self
                .index
                .declare_debt(&person_id, &debt_id, &loan_ids)
                .map_err(|e| ApplyError::new("debt", e.to_string()))?,
            Change::Interaction(r) => {
                self.index
                    .restore_interaction(*r)
                    .map_err(|e| ApplyError::new("interaction", e.to_string()))?;
            }
            Change::Restriction(r) => {
                self.index
                    .put_restriction(*r)
                    .map_err(|e| ApplyError::new("restriction", e.to_string()))?;
            }
            Change::ReservationOpened(r) => {
                self.reservations.insert(r.interaction_id.clone(), r);
            }
            Change::ReservationClosed(id) => {
                self.reservations.remove(&id);
            }
            Change::Answer { request_id, answer } => {
                // Applied again (a start that replays the journal from an
                // index checkpoint behind the store, whose answers it read
                // from the store), it keeps its place in the order.
                if self.answers.get(&request_id) != Some(&answer) {
                    self.answer_order.push_back((
                        answer.stored_at,
                        request_id.clone(),
                        self.index.frame(),
                    ));
                }
                self.answers.insert(request_id, answer);
            }
            Change::Convo(c) => {
                // The interaction stays in memory until the store holds
                // its conversation's change too.
                self.index.touch_frame(&c.interaction_id);
                self.convos.insert(c.interaction_id.clone(), c);
            }
        }
        Ok(())
    }

    /// Applies a journal record (a batch: each of its records in turn),
    /// stopping at the first that cannot be read or applied: recovery,
    /// where starting with less than was acknowledged is never an option.
    pub fn apply_record(&mut self, record: Record) -> Result<(), ApplyError> {
        for change in changes(record) {
            self.apply(change?)?;
        }
        Ok(())
    }

    /// Applies what it can of a journal record and counts what it skips
    /// (a record, or a record of a batch, that cannot be read or applied):
    /// for what-if, which must go on through a journal a newer release
    /// wrote, or one with a damaged record, and say so.
    pub fn apply_lenient(&mut self, record: Record, skipped: &mut Skipped) {
        self.apply_lenient_changes(changes(record), skipped);
    }

    /// [`Ledger::apply_lenient`] of a record already read as changes.
    pub fn apply_lenient_changes(
        &mut self,
        changes: Vec<Result<Change, ApplyError>>,
        skipped: &mut Skipped,
    ) {
        for change in changes {
            if let Err(e) = change.and_then(|c| self.apply(c)) {
                skipped.note(e);
            }
        }
    }

    /// The full state as journal records, in an order recovery accepts:
    /// people, then accounts, then restrictions, then interactions, then
    /// reservations, conversations and stored answers. This is a
    /// snapshot's content; each record is encoded from the state in
    /// place, without copying it first.
    pub fn snapshot(&self) -> impl Iterator<Item = Record> + '_ {
        let index = &self.index;
        // A person emptied by a link (its names moved to another) has
        // nothing left to restore.
        let people = index
            .person_keys()
            .filter(move |k| !index.person_id(*k).is_empty())
            .map(move |k| {
                let (id, aliases, external_ids) = index.person_names(k);
                let names = PersonNames {
                    id,
                    aliases,
                    external_ids,
                };
                change::person_record(&names, None)
            });
        let debts = index.person_keys().flat_map(move |k| {
            let person_id = index.person_id(k).to_owned();
            index
                .person_debts(k)
                .into_iter()
                .map(move |(debt_id, loan_ids)| {
                    Change::Debt {
                        person_id: person_id.clone(),
                        debt_id,
                        loan_ids,
                        at: None,
                    }
                    .record()
                })
        });
        let restrictions = index.person_keys().flat_map(move |k| {
            index
                .person_restrictions(k)
                .iter()
                .map(change::restriction_record)
        });
        let interactions = index.interactions().map(change::interaction_record);
        let reservations = self.reservations.values().map(change::reservation_record);
        let convos = self
            .convos
            .values()
            .map(|c| Change::Convo(c.clone()).record());
        let answers = self.answer_order.iter().filter_map(move |(_, id, _)| {
            self.answers.get(id).map(|a| change::answer_record(id, a))
        });
        people
            .chain(debts)
            .chain(restrictions)
            .chain(interactions)
            .chain(reservations)
            .chain(convos)
            .chain(answers)
    }
}
