//! The per-borrower index: every interaction, and per borrower a compact,
//! time-ordered list of what counting needs.
//!
//! A decision reads only the entries inside its windows (found by binary
//! search on time), so its cost grows with the interactions in the windows,
//! never with the borrower's whole history or with other borrowers. A
//! status change, a loan change or a delete rewrites the borrower's entry at
//! once, so the very next decision sees it.
//!
//! The index also keeps the two registries counting depends on:
//! - people, with their aliases: a borrower named by our id and by
//!   `ext-<externalId>` is one borrower with one history;
//! - debts: which loans form one debt (an account). By default each loan is
//!   its own debt.

mod checkpoint;
mod chunks;
mod debts;
mod disk;
mod entry;
mod ids;
mod lean;
mod people;
mod query;
mod registry;
mod restrictions;
mod slots;
mod staged;
mod view;
mod write;

use ids::{free_id, generated_number};
use slots::{
    ExtHash, FROM_DISK, GivenIds, HELD, Held, Names, PENDING, RECALLED, SPARED, Slot, VACATED,
};

/// The index's hash maps: foldhash is several times faster than SipHash on
/// short id strings and keeps a per-process random seed, so ids chosen by a
/// caller cannot be crafted to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use chrono::{DateTime, Duration, Utc};

use crate::model::{AnyId, Direction, Interaction, MediaKind, Status, ValidationError};
use crate::restrictions::{MAX_PER_PERSON, Restriction};

pub use checkpoint::{CheckpointError, Codec, Decoder};
use entry::remove_entry;
pub use entry::{ContactHash, Entry, Loans, contact_hash};
pub use lean::{Lean, LeanNames};
pub use people::{PersonNames, Resolved};
pub use query::{
    Cursor, DEFAULT_LIMIT, DiskScope, ListPage, ListQuery, MAX_LIMIT, SortField, TimeBounds,
    page_bounds,
};
pub use view::BorrowerView;

/// The memory of one chunk of interaction slots, in bytes: what memory
/// gives back once every slot of a chunk was emptied by interactions
/// leaving the horizon (see [`Index::chunks_given_back`]).
pub const SLOT_CHUNK_BYTES: u64 = chunks::CHUNK_BYTES;

/// Default history horizon, in days: at least the longest window a rule
/// may use.
pub const DEFAULT_HORIZON_DAYS: u32 = 90;

/// How long after a borrower's message a send citing it is still the reply
/// to it ("responding to a communication from the debtor", RCW 19.16.250):
/// our reading, since the statute names no period.
pub const REPLY_WINDOW_DAYS: i64 = 7;

/// The longest horizon allowed (ten years): window arithmetic stays far
/// from any overflow.
pub const MAX_HORIZON_DAYS: u32 = 3650;

/// How the index is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// Days of history kept for counting. A rule set whose window is longer
    /// is refused, so no rule can silently count less than it says.
    pub horizon_days: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            horizon_days: DEFAULT_HORIZON_DAYS,
        }
    }
}

/// What the walk of [`Index::let_go_in`] lets go of inside the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LetGo {
    /// The full records of interactions that happen before this time
    /// (Unix seconds) may leave memory; later ones stay whole, since a
    /// recent interaction is the one most likely to change (a call's
    /// status once it ends).
    pub before: i64,
}

/// A person, by its place in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonKey(u32);

/// An interaction, by its place in memory: its slot's number plus one,
/// so that an `Option<InteractionKey>` (a counting entry's `previous`)
/// takes 4 bytes. Keys order as their slots do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InteractionKey(std::num::NonZeroU32);

impl InteractionKey {
    /// The key of slot `i` (saturating: memory fills long before 2^32 - 1
    /// slots).
    fn of_slot(i: usize) -> InteractionKey {
        let n = u32::try_from(i).unwrap_or(u32::MAX - 1).saturating_add(1);
        InteractionKey(std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MAX))
    }

    /// Its slot's number.
    fn slot(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

impl Default for InteractionKey {
    /// The first slot's key.
    fn default() -> Self {
        InteractionKey::of_slot(0)
    }
}

/// An interned loan or account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(u32);

/// A particular debt, in the sense of 12 CFR 1006.14(b)(4): a loan, or an
/// account that groups several loans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DebtKey {
    /// A loan that belongs to no declared account: its own debt.
    Loan(NameKey),
    /// A declared account.
    Account(NameKey),
    /// A loan named by a proposed send that the index has never seen; the
    /// number is its place in the send's list.
    Unlisted(u16),
}

/// Errors of the index. Each names the id it could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The record failed validation.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The record failed validation in several ways; each is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Problems(Vec<ValidationError>),
    /// No person has this id.
    #[error("no person `{}`", crate::model::echo(.0))]
    UnknownPerson(String),
    /// Audio cannot be stored on this interaction.
    #[error("interaction `{id}` cannot take a {kind}: {why}")]
    MediaRefused {
        /// The interaction.
        id: String,
        /// What was uploaded.
        kind: MediaKind,
        /// Why not.
        why: &'static str,
    },
    /// No interaction in memory has this id, and some are on disk only:
    /// the caller looks in the store, loads what it finds
    /// ([`Index::load_from_disk`]) and asks again, or answers
    /// [`IndexError::UnknownInteraction`].
    #[error("no interaction `{}` in memory for person `{}`", crate::model::echo(.id), crate::model::echo(.person))]
    OnDisk {
        /// The person asked for, as given.
        person: String,
        /// The interaction asked for, as given.
        id: String,
    },
    /// No interaction has this id (for this person).
    #[error("no interaction `{}` for person `{}`", crate::model::echo(.id), crate::model::echo(.person))]
    UnknownInteraction {
        /// The person asked for, as given.
        person: String,
        /// The interaction asked for, as given.
        id: String,
    },
    /// An id or external id that is already taken.
    #[error("`{field}` `{}` is already used by interaction `{existing}`", crate::model::echo(.value))]
    Duplicate {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// Our id of the interaction that has it.
        existing: String,
    },
    /// A link that would merge two people's histories into one.
    #[error(
        "`{}` and `{}` already name two different people (`{a_id}`, `{b_id}`) with their own records; linking them would join two histories",
        crate::model::echo(.a),
        crate::model::echo(.b)
    )]
    WouldJoin {
        /// The first name.
        a: String,
        /// The second name.
        b: String,
        /// Our id of the first person.
        a_id: String,
        /// Our id of the second person.
        b_id: String,
    },
    /// An update that would move an interaction to another person.
    #[error(
        "`personId` `{}` is not the interaction's person `{actual}`; an interaction cannot move to another person",
        crate::model::echo(.given)
    )]
    PersonChange {
        /// The person given.
        given: String,
        /// The person the interaction belongs to.
        actual: String,
    },
    /// A loan declared in two debts.
    #[error("loan `{}` already belongs to debt `{}`; declare `{}` without it first", crate::model::echo(.loan), crate::model::echo(.debt), crate::model::echo(.debt))]
    LoanInTwoDebts {
        /// The loan.
        loan: String,
        /// The account it belongs to.
        debt: String,
    },
    /// Upstream lets lenders delete only the interactions they supplied.
    #[error(
        "interaction `{0}` was not supplied by the lender (`isExternal` is false), so it cannot be deleted"
    )]
    NotExternal(String),
    /// An interaction that was deleted.
    #[error("interaction `{}` was deleted", crate::model::echo(.0))]
    Deleted(String),
    /// No restriction has this id (for this person).
    #[error("no restriction `{}` for person `{}`", crate::model::echo(.id), crate::model::echo(.person))]
    UnknownRestriction {
        /// The person asked for, as given.
        person: String,
        /// The restriction asked for, as given.
        id: String,
    },
    /// A person has as many restrictions as the index keeps.
    #[error("person `{0}` already has {MAX_PER_PERSON} restrictions, the most kept per person")]
    TooManyRestrictions(String),
    /// A start's lean restore ([`Index::restore_lean`]) of a record the
    /// index would have kept whole.
    #[error("interaction `{}` cannot be restored without its full record: {why}", crate::model::echo(.id))]
    LeanRefused {
        /// Its id.
        id: String,
        /// Why it would stay whole.
        why: &'static str,
    },
    /// A malformed debt declaration.
    #[error("debt `{}`: {reason}", crate::model::echo(.debt))]
    BadDebt {
        /// The account id given.
        debt: String,
        /// What is wrong.
        reason: String,
    },
}

/// A borrower as the registry keeps them: 104 bytes, with what few
/// people have boxed apart ([`PersonMore`]) and each text held once (see
/// [`registry`]).
#[derive(Debug, Default)]
struct Person {
    /// Our id (empty: a person emptied by a link, its names moved).
    id: Box<str>,
    /// Their external ids.
    external_ids: registry::Externals,
    entries: Vec<Entry>,
    /// Every interaction of the person in memory, deleted ones included,
    /// in creation order: what a listing by person reads.
    records: Vec<InteractionKey>,
    /// How many of them.
    interactions: u32,
    /// Known to have interactions on disk only
    /// ([`Index::note_records_on_disk`]).
    records_on_disk: bool,
    /// What few people have, boxed: `None` for most (see [`PersonMore`]).
    more: Option<Box<PersonMore>>,
}

/// What a person has only sometimes (linked ids, declared accounts,
/// restrictions), kept apart so that the many who have none of it cost 8
/// bytes for it, not 128 (about 120 MB at a million borrowers).
#[derive(Debug, Default)]
struct PersonMore {
    /// Other ids of ours linked to this person.
    aliases: Vec<String>,
    /// Loan → the account it belongs to.
    accounts_of_loans: HashMap<NameKey, NameKey>,
    /// Account → its loans.
    accounts: HashMap<NameKey, Vec<NameKey>>,
    /// Every restriction recorded for the person, ended ones included, in
    /// the order recorded.
    restrictions: Vec<Restriction>,
}

impl Person {
    /// What the person has only sometimes; empty for most.
    fn more(&self) -> &PersonMore {
        static NONE: std::sync::LazyLock<PersonMore> =
            std::sync::LazyLock::new(PersonMore::default);
        self.more.as_deref().unwrap_or(&NONE)
    }

    /// [`Person::more`], to change (made if the person had none).
    fn more_mut(&mut self) -> &mut PersonMore {
        self.more.get_or_insert_default()
    }
}

/// Loan and account ids, each kept once: a name's key is its place in
/// the list, and the table finds a key from the text through the list
/// itself ([`Names`], as the slots' ids are found), so the text is not
/// held a second time as a map's key. Loan ids are what a borrower's
/// interactions name, one or two a borrower: at a million borrowers, the
/// second copy was about 130 MB.
///
/// The texts follow each other in one buffer, each found by where it
/// ends: a string of its own cost each name 16 bytes of pointer and
/// length and a 32-byte allocation, about 64 MB at two million loans.
#[derive(Debug, Default)]
struct Interner {
    keys: Names<NameKey>,
    /// Every name, one after the other.
    text: String,
    /// Where each name ends in `text`; name `k` starts where `k - 1`
    /// ends.
    ends: Vec<usize>,
}

/// The text of `key` in an [`Interner`]'s `text` and `ends`.
fn name_in<'a>(text: &'a str, ends: &[usize], key: NameKey) -> Option<&'a str> {
    let k = key.0 as usize;
    let end = *ends.get(k)?;
    let start = if k == 0 { 0 } else { *ends.get(k - 1)? };
    text.get(start..end)
}

/// The name of `key`, as [`Interner`]'s table reads it.
fn interned<'a>(text: &'a str, ends: &[usize], key: NameKey) -> Option<slots::Name<'a>> {
    name_in(text, ends, key).map(slots::Name::Given)
}

impl Interner {
    fn intern(&mut self, name: &str) -> NameKey {
        if let Some(k) = self.get(name) {
            return k;
        }
        // INVARIANT: fewer than 2^32 distinct names fit in memory long before
        // this saturates; saturating keeps it panic-free regardless.
        let k = NameKey(u32::try_from(self.ends.len()).unwrap_or(u32::MAX));
        self.text.push_str(name);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.keys
            .insert(slots::Name::Given(name), k, |k| interned(text, ends, k));
        k
    }

    fn get(&self, name: &str) -> Option<NameKey> {
        let (text, ends) = (&self.text, &self.ends);
        self.keys
            .get(slots::Name::Given(name), |k| interned(text, ends, k))
    }

    fn name(&self, key: NameKey) -> &str {
        name_in(&self.text, &self.ends, key).unwrap_or("")
    }

    /// Every name, in key order: what a test compares two interners by.
    #[cfg(test)]
    fn names(&self) -> Vec<&str> {
        (0..self.ends.len())
            .map(|k| self.name(NameKey(u32::try_from(k).unwrap_or(u32::MAX))))
            .collect()
    }
}

/// The in-memory index of interactions, people and debts.
#[derive(Debug, Default)]
pub struct Index {
    config: IndexConfig,
    people: Vec<Person>,
    /// People by their names ([`registry::Registry`]).
    registry: registry::Registry,
    /// The interactions in memory, by key (emptied ones given back a
    /// chunk at a time: [`chunks`]).
    records: chunks::Slots,
    /// The interactions in memory by our id ([`Index::key_of_id`]).
    ids: Names,
    /// The ids callers chose, of the slots that hold one ([`SlotId`]).
    given_ids: GivenIds,
    /// The interactions in memory by `externalId` ([`Index::key_of_ext`]).
    external_ids: Names,
    names: Interner,
    next_person: u64,
    next_interaction: u64,
    next_restriction: u64,
    /// Restriction id → its person.
    restriction_ids: HashMap<String, PersonKey>,
    /// The sets of loans entries name that are not one loan, each once
    /// (see [`Loans`]): set `n` is at `n - 1` (set 0 is none).
    loan_sets: Vec<Box<[NameKey]>>,
    /// Each set's number, found through the set in `loan_sets` (held
    /// once, as names are in [`Names`]).
    loan_set_numbers: LoanSetNumbers,
    /// Storage key of stored audio → the interaction holding it, so that
    /// the media sweep need not walk every record.
    media_files: HashMap<String, InteractionKey>,
    /// Interactions on disk only: counted, nothing else of them in memory.
    on_disk: usize,
    /// Slots emptied by [`Index::move_to_disk`].
    vacated: usize,
    /// Slots in the horizon whose full records were let go
    /// ([`Index::let_go_count`]).
    let_go: usize,
    /// Moves on each time full records leave memory ([`Index::epoch`]).
    epoch: u64,
    /// The full records memory holds, by their slots' keys (flag
    /// [`HELD`]), with their times: what a listing of everyone's reads
    /// from memory, without visiting every slot (tens of millions, most
    /// let go to the store), nor a record its times leave out ([`Times`]).
    whole: std::collections::HashMap<InteractionKey, Held, foldhash::fast::RandomState>,
    /// The journal frame of the latest change of each slot whose change
    /// the store may not hold yet (flag [`PENDING`]; see
    /// [`Index::set_frame`]): set by a write, dropped by the walk once the
    /// store holds it.
    pending: std::collections::HashMap<InteractionKey, u64, foldhash::fast::RandomState>,
    /// The time (Unix seconds) from which the history is held whole in
    /// memory (`i64::MIN`: all of it). An interaction before it is as if
    /// on disk for what a Check reads ([`Index::held`]), even when a write
    /// or a read brought it back: the interactions around it (the answer
    /// to a message, a confirmation) may still be on disk only.
    held_from: i64,
    /// The largest generated id number of an interaction on disk only: a
    /// generated id past it is surely not on disk.
    max_on_disk_generated: u64,
    /// The place in creation order the next new interaction takes (one
    /// past the largest seen; the store's numbering, see [`Slot::seq`]).
    next_seq: u64,
    /// The journal frame the changes being applied travel in
    /// ([`Index::set_frame`]; 0: in the store already).
    frame: u64,
    /// What a start has restored and not yet given to its people
    /// ([`Index::begin_start`]).
    staged: Option<staged::Staged>,
}

/// The table that finds a set of loans' number (see `Index::loan_sets`).
#[derive(Debug, Default)]
struct LoanSetNumbers {
    table: hashbrown::HashTable<u32>,
    state: foldhash::fast::RandomState,
}

/// One problem as `Invalid`, several as `Problems`.
fn invalid(mut all: Vec<ValidationError>) -> IndexError {
    if all.len() == 1 {
        IndexError::Invalid(all.swap_remove(0))
    } else {
        IndexError::Problems(all)
    }
}

impl Index {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Index {
        Index {
            config,
            ..Index::default()
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> IndexConfig {
        self.config
    }

    /// How many interactions it knows, deleted ones and those on disk
    /// only included.
    pub fn len(&self) -> usize {
        self.records.len() - self.vacated + self.on_disk
    }

    /// True when it knows no interaction.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for about `interactions` more interactions and `people`
    /// more people, so that a recovery of millions does not copy and
    /// rehash as it grows, nor keep the unused half of a last doubling.
    pub fn reserve(&mut self, interactions: usize, people: usize) {
        self.records.reserve(interactions);
        self.reserve_names(interactions);
        self.people.reserve_exact(people);
        self.registry.reserve(&self.people, people);
    }

    /// Every interaction in memory (deleted ones included), in creation
    /// order; those on disk only are not read.
    pub fn interactions(&self) -> impl Iterator<Item = &Interaction> + '_ {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, s)| s.has(HELD))
            .filter_map(|(i, _)| self.hot(InteractionKey::of_slot(i)))
    }

    /// Every interaction in memory, as [`Index::interactions`], in no
    /// particular order: what a start's scans of memory (the latest time,
    /// the times out of range) read, without visiting every slot (tens of
    /// millions, most of them entries only; 0.5 s a scan at 11.6 million
    /// with 1.8 million held whole).
    pub fn held_records(&self) -> impl Iterator<Item = &Interaction> + '_ {
        self.whole.values().map(|h| &*h.record)
    }

    /// The person an interaction belongs to.
    fn owner(&self, k: InteractionKey) -> Option<PersonKey> {
        self.records.get(k.slot()).map(|s| s.person)
    }

    /// The full record of an interaction in memory.
    fn hot(&self, k: InteractionKey) -> Option<&Interaction> {
        self.whole.get(&k).map(|h| &*h.record)
    }

    /// An interaction's place in creation order.
    fn seq(&self, k: InteractionKey) -> u64 {
        self.records.get(k.slot()).map_or(u64::MAX, |s| s.seq)
    }

    /// The full record of an interaction in memory, or
    /// [`IndexError::OnDisk`] naming it as `any_id`.
    fn record_of(&self, k: InteractionKey, any_id: &str) -> Result<&Interaction, IndexError> {
        self.hot(k).ok_or_else(|| IndexError::OnDisk {
            person: "*".into(),
            id: any_id.to_owned(),
        })
    }

    /// Puts an interaction back in its exact stored state (the journal's
    /// latest state of it): a new id is inserted, a known one replaced.
    /// Returns it as stored.
    pub fn restore_interaction(&mut self, record: Interaction) -> Result<&Interaction, IndexError> {
        let p = match self.registry.by_id(&self.people, &record.person_id) {
            Some(p) => p,
            None => self.register_person(&record.person_id)?,
        };
        let existing = self.key_of_id(&record.id);
        let at = record.occurs_at().timestamp();
        let ext = record.external_id.as_deref().map(ExtHash::of);
        let key = match existing {
            Some(k) => {
                // Whole: a caller brings one let go back first.
                let old = self.record_of(k, &record.id)?;
                let old_media: Vec<String> = [&old.recording, &old.voicemail]
                    .into_iter()
                    .flatten()
                    .map(|m| m.storage_key.clone())
                    .collect();
                for m in old_media {
                    self.media_files.remove(&m);
                }
                // The old record goes now (the new one takes its place
                // below): a lookup by `externalId` while the new entry is
                // made compares with the slot's hash, as for a new slot,
                // not with the old text.
                self.unhold(k);
                // The lists it changes are whole first.
                self.give_staged();
                let old_at = self.records[k.slot()].at;
                remove_entry(&mut self.people[p.0 as usize].entries, old_at, k);
                self.unname_ext(k);
                if let Some(slot) = self.records.get_mut(k.slot()) {
                    slot.ext = ext;
                }
                self.name_ext(k);
                k
            }
            None => self.new_slot(p, &record.id, ext, at),
        };
        // Before the history held whole, no Check reads an entry (see
        // `held_from`); one written there (an import of old history, a
        // change to an old interaction) is kept all the same, as before.
        if record.deleted_at.is_none() {
            let entry = self.entry_for(key, &record);
            self.put_entry(p, entry);
        }
        for m in [&record.recording, &record.voicemail].into_iter().flatten() {
            self.media_files.insert(m.storage_key.clone(), key);
        }
        if let Some(slot) = self.records.get_mut(key.slot()) {
            slot.at = at;
        }
        self.put_frame(key, self.frame);
        self.hold(key, record);
        if existing.is_none() {
            self.name_id(key);
        }
        self.record_of(key, "")
    }

    fn is_inbound_of(&self, p: PersonKey, any_id: &str) -> bool {
        self.find_interaction(any_id)
            .ok()
            .flatten()
            .is_some_and(|k| self.key_is_inbound_of(p, k))
    }

    /// True if `k` is a live inbound interaction of person `p`.
    /// One on disk only is not (strict: it left the horizon, and the
    /// reply window is shorter).
    fn key_is_inbound_of(&self, p: PersonKey, k: InteractionKey) -> bool {
        self.owner(k) == Some(p)
            && self
                .held(k)
                .is_some_and(|e| e.direction == Direction::Inbound)
    }

    /// True if a send at `at` citing this previousInteractionId is the reply
    /// to the borrower: the id names one of the borrower's live inbound
    /// interactions from the [`REPLY_WINDOW_DAYS`] before `at`, and nothing
    /// has answered it yet. Otherwise the send counts like any other (the
    /// stricter reading).
    pub fn is_reply(&self, person: &str, previous_interaction_id: &str, at: DateTime<Utc>) -> bool {
        let Ok(Some(p)) = self.find_person(person) else {
            return false;
        };
        let Ok(Some(k)) = self.find_interaction(previous_interaction_id) else {
            return false;
        };
        if !self.key_is_inbound_of(p, k) {
            return false;
        }
        let Some(inbound) = self.held(k) else {
            return false;
        };
        let inbound_at = inbound.at;
        let t = at.timestamp();
        if t < inbound_at || t - inbound_at > REPLY_WINDOW_DAYS * 86_400 {
            return false;
        }
        let person = &self.people[p.0 as usize];
        let from = person.entries.partition_point(|e| e.at < inbound_at);
        !person.entries[from..].iter().any(|e| e.previous == Some(k))
    }

    /// True if `previous_interaction_id` names one of the person's live
    /// inbound interactions (with no time window: see [`Index::is_reply`]
    /// for what a decision uses). An id we cannot find is not an answer.
    pub fn answers_borrower(&self, person: &str, previous_interaction_id: &str) -> bool {
        match self.find_person(person) {
            Ok(Some(p)) => self.is_inbound_of(p, previous_interaction_id),
            _ => false,
        }
    }

    fn find_interaction(&self, any_id: &str) -> Result<Option<InteractionKey>, IndexError> {
        Ok(match AnyId::parse("interactionId", any_id)? {
            AnyId::Ours(id) => self.key_of_id(id),
            AnyId::External(ext) => self.key_of_ext(ext),
        })
    }

    fn locate(
        &self,
        person: Option<&str>,
        interaction: &str,
    ) -> Result<InteractionKey, IndexError> {
        let unknown = || IndexError::UnknownInteraction {
            person: person.unwrap_or("*").to_owned(),
            id: interaction.to_owned(),
        };
        let Some(key) = self.find_interaction(interaction)? else {
            return Err(if self.on_disk > 0 {
                IndexError::OnDisk {
                    person: person.unwrap_or("*").to_owned(),
                    id: interaction.to_owned(),
                }
            } else {
                unknown()
            });
        };
        if let Some(person) = person {
            let p = self.find_person(person)?.ok_or_else(unknown)?;
            if self.owner(key) != Some(p) {
                return Err(unknown());
            }
        }
        Ok(key)
    }

    /// An interaction by our id or `ext-<externalId>`, optionally checked to
    /// belong to `person`. Deleted interactions are returned too, with their
    /// `deletedAt`, because an audit must be able to see them. One not in
    /// memory while some are on disk only is [`IndexError::OnDisk`].
    pub fn get(&self, person: Option<&str>, interaction: &str) -> Result<&Interaction, IndexError> {
        let key = self.locate(person, interaction)?;
        self.record_of(key, interaction)
    }

    /// What the index knows of a stored file: `None` if no interaction
    /// holds it, otherwise when its interaction was deleted (`None`: not).
    pub fn media_file(&self, storage_key: &str) -> Option<Option<DateTime<Utc>>> {
        let key = self.media_files.get(storage_key)?;
        Some(self.hot(*key)?.deleted_at)
    }

    /// The chain of earlier interactions linked through
    /// previousInteractionId, nearest first. A link to an unknown id or to
    /// another person's interaction ends the chain; a cycle is cut at its
    /// first repeat. Memory only: a link to an interaction on disk only ends
    /// it (the guard's walk reads the store too).
    pub fn previous_chain(
        &self,
        person: Option<&str>,
        interaction: &str,
    ) -> Result<Vec<&Interaction>, IndexError> {
        let key = self.locate(person, interaction)?;
        let mut seen = vec![key];
        let mut chain = Vec::new();
        let owner = self.owner(key);
        let mut cur = self.record_of(key, interaction)?;
        while let Some(prev) = cur.previous_interaction_id.as_deref() {
            let Ok(Some(k)) = self.find_interaction(prev) else {
                break;
            };
            // The chain stays within the person's own history.
            if seen.contains(&k) || self.owner(k) != owner {
                break;
            }
            seen.push(k);
            cur = self.record_of(k, prev)?;
            chain.push(cur);
        }
        Ok(chain)
    }

    /// Drops the counting entries that ended more than the horizon before
    /// `now`; the records themselves stay. Future entries (reservations,
    /// scheduled sends) are kept whatever their distance.
    pub fn prune(&mut self, now: DateTime<Utc>) -> usize {
        let cutoff = (now - Duration::days(i64::from(self.config.horizon_days) + 1)).timestamp();
        let mut dropped = 0;
        for person in &mut self.people {
            let n = person.entries.partition_point(|e| e.at < cutoff);
            dropped += n;
            person.entries.drain(..n);
        }
        dropped
    }

    /// What the counting entries take in memory, for measurement.
    pub fn counting_memory(&self) -> CountingMemory {
        let mut m = CountingMemory {
            entries: 0,
            inline_bytes: 0,
            spare_bytes: 0,
            loan_heap_bytes: 0,
        };
        let size = std::mem::size_of::<Entry>();
        for p in &self.people {
            m.entries += p.entries.len();
            m.inline_bytes += p.entries.len() * size;
            m.spare_bytes += (p.entries.capacity() - p.entries.len()) * size;
        }
        m.loan_heap_bytes = self
            .loan_sets
            .iter()
            .map(|keys| std::mem::size_of_val::<[NameKey]>(keys))
            .sum();
        m
    }

    /// What the engine reads of one borrower. A person we have never seen
    /// has an empty history.
    pub fn view(&self, person: &str) -> Result<BorrowerView<'_>, IndexError> {
        let p = self.find_person(person)?;
        Ok(BorrowerView {
            index: self,
            person_key: p,
            person: p.and_then(|k| self.people.get(k.0 as usize)),
        })
    }
}

/// What the counting entries take in memory ([`Index::counting_memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountingMemory {
    /// Counting entries (one per live interaction in the horizon).
    pub entries: usize,
    /// Their own bytes (`size_of::<Entry>()` each).
    pub inline_bytes: usize,
    /// Bytes allocated for entries but unused (the lists' spare capacity).
    pub spare_bytes: usize,
    /// Heap bytes of the sets of loans kept once (see [`Loans`]; before
    /// the allocator's own overhead and the table that numbers them).
    pub loan_heap_bytes: usize,
}

#[cfg(test)]
mod counters {
    use super::*;
    use crate::model::InteractionInput;

    fn call(id: Option<&str>) -> InteractionInput {
        InteractionInput {
            id: id.map(str::to_owned),
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            started_at: Some("2020-04-01T14:00:00Z".into()),
            ..InteractionInput::default()
        }
    }

    /// Generated ids skip the ones a caller chose, and an index recovered
    /// from the same records, in any order, generates exactly the ids the
    /// live one would next: a restart changes no id.
    #[test]
    fn generated_ids_are_the_same_live_and_recovered() {
        let now = DateTime::UNIX_EPOCH;
        let mut live = Index::default();
        let mut ids = Vec::new();
        for given in [Some("IT-0000-00000002"), None, None, None] {
            ids.push(
                live.create("BO-0000-00000042", &call(given), now)
                    .unwrap()
                    .id
                    .clone(),
            );
        }
        assert_eq!(
            ids,
            [
                "IT-0000-00000002",
                "IT-0000-00000001",
                "IT-0000-00000003",
                "IT-0000-00000004"
            ]
        );
        let ext = live.register_person("ext-crm-1").unwrap();
        assert_eq!(
            live.person_id(ext),
            "BO-0000-00000001",
            "a chosen BO id moves nothing"
        );
        let records: Vec<Interaction> = live.interactions().cloned().collect();
        for order in [[3, 0, 1, 2], [1, 2, 3, 0], [0, 1, 2, 3]] {
            let mut recovered = Index::default();
            recovered.restore_person("BO-0000-00000042", &[], &[]);
            recovered.restore_person("BO-0000-00000001", &[], &["crm-1".to_owned()]);
            for i in order {
                recovered.restore_interaction(records[i].clone()).unwrap();
            }
            let next = |index: &mut Index| {
                index
                    .create("BO-0000-00000042", &call(None), now)
                    .unwrap()
                    .id
                    .clone()
            };
            assert_eq!(next(&mut recovered), "IT-0000-00000005", "{order:?}");
            let ext = recovered.register_person("ext-crm-2").unwrap();
            assert_eq!(recovered.person_id(ext), "BO-0000-00000002", "{order:?}");
        }
        assert_eq!(
            live.create("BO-0000-00000042", &call(None), now)
                .unwrap()
                .id,
            "IT-0000-00000005"
        );
    }
}

#[cfg(test)]
mod times {
    use super::slots::Times;
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A record's times pass over it only when its exact times could not
    /// pass the filters: finer than a microsecond, a time just after a
    /// bound (or just before) is kept for the exact filter to judge.
    #[test]
    fn a_record_is_passed_over_only_outside_its_bounds() {
        let record = at("2024-03-15T15:00:00.000000500Z");
        let times = Times {
            started: record.timestamp_micros(),
            created: record.timestamp_micros(),
        };
        let may_match = |q: &ListQuery| q.time_bounds().admits(times.started, times.created);
        let q = |after: &str, before: &str| ListQuery {
            started_after: Some(at(after)),
            started_before: Some(at(before)),
            created_after: Some(at(after)),
            created_before: Some(at(before)),
            ..ListQuery::default()
        };
        // Inside the bounds by 400 and 400 nanoseconds: kept.
        assert!(may_match(&q(
            "2024-03-15T15:00:00.000000100Z",
            "2024-03-15T15:00:00.000000900Z"
        )));
        // A microsecond outside either: passed over.
        assert!(!may_match(&q(
            "2024-03-15T15:00:00.000001000Z",
            "2024-03-15T16:00:00Z"
        )));
        assert!(!may_match(&q(
            "2024-03-15T14:00:00Z",
            "2024-03-15T14:59:59.999999999Z"
        )));
        // No bounds: kept.
        assert!(may_match(&ListQuery::default()));
    }
}
