//! An interaction's names as memory keeps them: its id (a generated one as
//! its number) held once, in the interaction's slot, and its `externalId`
//! as a hash ([`ExtHash`]); both found through tables of slot numbers.
//!
//! A table holds 4 bytes per interaction (plus its control byte) instead
//! of a second copy of the string: the names stay in memory when the full
//! record leaves it, because a Check names the interactions it counted and
//! a write finds an interaction by either name.
//!
//! The `externalId` itself is on disk, in the store's row (and in the
//! full record while memory holds it): a caller's identifiers, often 34 to
//! 36 characters, cost about 50 bytes an interaction as strings, and 8 as
//! a hash. A lookup by `externalId` compares the text with the full record
//! when memory holds it, and the hash otherwise: a record let go is then
//! read from the store by the text itself, which finds it exactly.
//!
//! The slot itself ([`Slot`], 40 bytes) is here too, with what only a few
//! slots have, kept beside them and found through the slot's flags: the
//! full record ([`Held`], in `Index::whole`), the journal frame of a
//! change the store may not hold yet (`Index::pending`), and the text of
//! an id a caller chose ([`GivenIds`]).

use hashbrown::HashTable;

use super::ids::generated_number;
use super::{Index, Interaction, InteractionKey, PersonKey};

/// An interaction's id as its slot keeps it, in 8 bytes: one the index
/// generated (`IT-XXXX-XXXXXXXX`, 48 bits) as its number, any other (a
/// caller chose it) as a mark, its text kept beside the slots
/// ([`GivenIds`]). Most ids are generated: the text of the few others is
/// not worth 8 more bytes in every slot (80 MB at 10 million).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotId(pub(super) u64);

/// The mark of a [`SlotId`] whose text is in [`GivenIds`]: past every
/// number a generated id can have.
const GIVEN: u64 = 1 << 63;

/// The texts of the ids a caller chose, by their slot's key.
pub(super) type GivenIds =
    std::collections::HashMap<InteractionKey, Box<str>, foldhash::fast::RandomState>;

impl SlotId {
    /// The id of slot `key`, its text kept in `given` if a caller chose it.
    pub(super) fn of(id: &str, key: InteractionKey, given: &mut GivenIds) -> SlotId {
        match generated_number("IT", id) {
            Some(n) if n < GIVEN => SlotId(n),
            _ => {
                given.insert(key, id.into());
                SlotId(GIVEN)
            }
        }
    }

    /// A slot emptied of its id (its text, if any, taken out of
    /// [`GivenIds`] by the caller).
    pub(super) const EMPTIED: SlotId = SlotId(0);

    /// Its number, for a generated id.
    pub(super) fn generated(self) -> Option<u64> {
        (self.0 & GIVEN == 0).then_some(self.0)
    }

    /// The id of slot `key` as a lookup compares it (`None`: a chosen id
    /// whose text is gone).
    pub(super) fn name(self, key: InteractionKey, given: &GivenIds) -> Option<Name<'_>> {
        match self.generated() {
            Some(n) => Some(Name::Generated(n)),
            None => given.get(&key).map(|t| Name::Given(t)),
        }
    }

    /// The id of slot `key` as written.
    pub(super) fn to_text(self, key: InteractionKey, given: &GivenIds) -> String {
        match self.generated() {
            Some(n) => super::ids::generated_id("IT", n),
            None => given.get(&key).map_or_else(String::new, |t| t.to_string()),
        }
    }
}

/// An `externalId` as a slot keeps it: a 64-bit SipHash-1-3 of the text,
/// with random keys no caller sees ([`super::entry::hash_keys`]), so
/// that no caller can choose two that collide. Two different
/// `externalId`s share a hash with a chance of about 2^-64 per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExtHash(pub(super) std::num::NonZeroU64);

impl ExtHash {
    /// The hash of an `externalId`.
    pub(super) fn of(ext: &str) -> ExtHash {
        ExtHash(super::entry::keyed_hash(ext))
    }
}

/// A name looked up: an id of the generated shape by its number, any
/// other as the text, an `externalId` by its hash. Both the table's
/// hashing and its comparisons use this form, so that a generated id
/// hashes the same from its slot (a number) and from a request (a
/// string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Name<'a> {
    /// An id of the generated shape.
    Generated(u64),
    /// Any other id, or a loan or account id (the interner's).
    Given(&'a str),
    /// An `externalId`, by its [`ExtHash`].
    External(u64),
}

impl<'a> Name<'a> {
    /// An id as a request gives it.
    pub(super) fn id(id: &'a str) -> Name<'a> {
        match generated_number("IT", id) {
            Some(n) => Name::Generated(n),
            None => Name::Given(id),
        }
    }
}

/// Keys found by a name kept elsewhere (see the module's doc): slot
/// numbers by the names their slots hold, and the interner's loan names
/// by their place in its list. Every call passes `name_of`, what a key is
/// named by in this table; the table holds no name of its own.
#[derive(Debug)]
pub(super) struct Names<K = InteractionKey> {
    table: HashTable<K>,
    state: foldhash::fast::RandomState,
}

impl<K> Default for Names<K> {
    fn default() -> Self {
        Names {
            table: HashTable::new(),
            state: foldhash::fast::RandomState::default(),
        }
    }
}

impl<K: Copy + PartialEq> Names<K> {
    fn hash(&self, name: Name<'_>) -> u64 {
        use std::hash::BuildHasher;
        self.state.hash_one(name)
    }

    /// How many keys it holds.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every key it holds, in no order: what an index written to disk
    /// keeps of the table ([`Names::rebuilt`] files them again).
    pub(super) fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.table.iter().copied()
    }

    /// A table of `keys`, each filed under `name_of` (a fresh random
    /// seed: only the keys outlive a process). A key `name_of` does not
    /// name is left out.
    pub(super) fn rebuilt<'s>(
        keys: impl ExactSizeIterator<Item = K>,
        name_of: impl Fn(K) -> Option<Name<'s>>,
    ) -> Names<K> {
        let mut names = Names::default();
        names.reserve(keys.len(), &name_of);
        for k in keys {
            if let Some(name) = name_of(k) {
                names.insert(name, k, &name_of);
            }
        }
        names
    }

    /// Room for `more` names without a rehash.
    pub(super) fn reserve<'s>(&mut self, more: usize, name_of: impl Fn(K) -> Option<Name<'s>>) {
        let state = self.state.clone();
        self.table.reserve(more, |k| {
            use std::hash::BuildHasher;
            name_of(*k).map_or(0, |n| state.hash_one(n))
        });
    }

    /// The key whose slot has this name.
    pub(super) fn get<'s>(
        &self,
        name: Name<'_>,
        name_of: impl Fn(K) -> Option<Name<'s>>,
    ) -> Option<K> {
        self.get_checked(name, name_of, |_| true)
    }

    /// [`Names::get`], of the keys `also` accepts: the others with the
    /// same name are passed over.
    pub(super) fn get_checked<'s>(
        &self,
        name: Name<'_>,
        name_of: impl Fn(K) -> Option<Name<'s>>,
        also: impl Fn(K) -> bool,
    ) -> Option<K> {
        self.table
            .find(self.hash(name), |k| name_of(*k) == Some(name) && also(*k))
            .copied()
    }

    /// Adds `key`, named `name` (its slot's name in this table).
    pub(super) fn insert<'s>(
        &mut self,
        name: Name<'_>,
        key: K,
        name_of: impl Fn(K) -> Option<Name<'s>>,
    ) {
        let state = self.state.clone();
        self.table.insert_unique(self.hash(name), key, |k| {
            use std::hash::BuildHasher;
            name_of(*k).map_or(0, |n| state.hash_one(n))
        });
    }

    /// Removes `key`, found under `name` (the name its slot had when it
    /// was inserted).
    pub(super) fn remove(&mut self, name: Name<'_>, key: K) {
        if let Ok(entry) = self.table.find_entry(self.hash(name), |k| *k == key) {
            entry.remove();
        }
    }
}

/// The name the slot of `k` is filed under in the id table.
#[inline]
pub(super) fn id_name<'a>(
    records: &super::chunks::Slots,
    given: &'a GivenIds,
    k: InteractionKey,
) -> Option<Name<'a>> {
    records.get(k.slot()).and_then(|s| s.id.name(k, given))
}

/// The name the slot of `k` is filed under in the `externalId` table.
#[inline]
pub(super) fn ext_name(records: &super::chunks::Slots, k: InteractionKey) -> Option<Name<'_>> {
    records
        .get(k.slot())
        .and_then(|s| s.ext)
        .map(|h| Name::External(h.0.get()))
}

impl super::Index {
    /// The key of the interaction in memory with our id `id`.
    pub(super) fn key_of_id(&self, id: &str) -> Option<InteractionKey> {
        let (records, given) = (&self.records, &self.given_ids);
        self.ids.get(Name::id(id), |k| id_name(records, given, k))
    }

    /// The key of the interaction in memory with this `externalId`: the
    /// text compared with the full record where memory holds it, the hash
    /// alone where the record was let go (see the module's doc).
    pub(super) fn key_of_ext(&self, ext: &str) -> Option<InteractionKey> {
        let (records, whole) = (&self.records, &self.whole);
        let name = Name::External(ExtHash::of(ext).0.get());
        self.external_ids.get_checked(
            name,
            |k| ext_name(records, k),
            |k| {
                whole
                    .get(&k)
                    .is_none_or(|h| h.record.external_id.as_deref() == Some(ext))
            },
        )
    }

    /// Files the slot `key` (already in place) under its id.
    pub(super) fn name_id(&mut self, key: InteractionKey) {
        let (records, given) = (&self.records, &self.given_ids);
        if let Some(name) = id_name(records, given, key) {
            self.ids.insert(name, key, |k| id_name(records, given, k));
        }
    }

    /// Files the slot `key` under its `externalId`, if it has one.
    pub(super) fn name_ext(&mut self, key: InteractionKey) {
        let records = &self.records;
        if let Some(name) = ext_name(records, key) {
            self.external_ids
                .insert(name, key, |k| ext_name(records, k));
        }
    }

    /// Takes the slot `key`'s `externalId` out of the table, and out of
    /// the slot.
    pub(super) fn unname_ext(&mut self, key: InteractionKey) {
        let Some(slot) = self.records.get_mut(key.slot()) else {
            return;
        };
        if let Some(ext) = slot.ext.take() {
            self.external_ids.remove(Name::External(ext.0.get()), key);
        }
    }

    /// Takes the slot `key` out of both tables, and its `externalId` out
    /// of the slot; its id stays in the slot, for the caller to clear.
    pub(super) fn unname(&mut self, key: InteractionKey) {
        self.unname_ext(key);
        if let Some(name) = id_name(&self.records, &self.given_ids, key) {
            self.ids.remove(name, key);
        }
    }

    /// Room for `more` interactions in both tables.
    pub(super) fn reserve_names(&mut self, more: usize) {
        let (records, given) = (&self.records, &self.given_ids);
        self.ids.reserve(more, |k| id_name(records, given, k));
        self.external_ids
            .reserve(more / 2, |k| ext_name(records, k));
    }

    /// Our id of the interaction `key`, as written.
    pub(super) fn id_text(&self, key: InteractionKey) -> String {
        self.records
            .get(key.slot())
            .map_or_else(String::new, |s| s.id.to_text(key, &self.given_ids))
    }
}

/// One interaction in memory, in 40 bytes: what every interaction of the
/// horizon costs, most of them let go to the store. What only a few have
/// is kept beside the slots: the full record of one held whole
/// ([`Index::whole`], flag [`HELD`]), the journal frame of a change the
/// store may not hold yet ([`Index::pending`], flag [`PENDING`]) and the
/// text of an id a caller chose ([`GivenIds`]).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) person: PersonKey,
    /// What is true of it, as bits: [`FROM_DISK`], [`VACATED`],
    /// [`RECALLED`], [`SPARED`], [`HELD`] and [`PENDING`].
    pub(super) flags: u8,
    /// Our id (see [`SlotId`]), found through [`Index::key_of_id`].
    pub(super) id: SlotId,
    /// Its `externalId`'s hash, found through [`Index::key_of_ext`] (the
    /// text is in the full record, and in the store).
    pub(super) ext: Option<ExtHash>,
    /// Its place in creation order: the store's `seq` for one read from
    /// the store, the next number after every one seen for one recorded
    /// since. A listing orders by it, so that interactions in memory and
    /// on disk only interleave as they were created.
    pub(super) seq: u64,
    /// When it happens (its counting entry's `at`): where its entry is in
    /// its person's list.
    pub(super) at: i64,
}

/// Brought back from disk ([`Index::load_from_disk`]): no Check reads it
/// (the interactions that cite it may be on disk only, or cite it by a
/// key it no longer has), whatever its time becomes.
pub(super) const FROM_DISK: u8 = 1;
/// Emptied by [`Index::move_to_disk`]: nothing of it is in memory; its
/// ids left memory with it, so no lookup reaches the slot again.
pub(super) const VACATED: u8 = 1 << 1;
/// Let go in the horizon and brought back by a read or write
/// ([`Index::load_from_disk`]): let go again as one brought back from
/// disk is (see [`SPARED`]).
pub(super) const RECALLED: u8 = 1 << 2;
/// Brought back, and spared by one walk of [`Index::let_go_in`]: the next
/// walk lets it go again, once the store holds its latest state. A read
/// that is about to plan a write from it renews it ([`Index::renew`]).
pub(super) const SPARED: u8 = 1 << 3;
/// Its full record is in memory, in [`Index::whole`].
pub(super) const HELD: u8 = 1 << 4;
/// Its latest change travels in a journal frame the store may not hold
/// yet, kept in [`Index::pending`]: its record may leave memory only once
/// the store holds that frame.
pub(super) const PENDING: u8 = 1 << 5;

impl Slot {
    /// True if `flag` is set.
    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sets `flag`, or clears it.
    pub(super) fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// A record memory holds whole, with its `startedAt` and `createdAt`
/// ([`Times`]): what a listing of everyone's reads from memory.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) times: Times,
    pub(super) record: Box<Interaction>,
}

/// A record's `startedAt` and `createdAt` in Unix microseconds (rounded
/// down), beside its key in [`Index`]'s set of records held whole: a
/// listing bounded by time passes over a record outside its
/// [`TimeBounds`] without reading the record itself (a cache miss each,
/// about 110,000 a page when memory holds a day of 10 million).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Times {
    pub(super) started: i64,
    pub(super) created: i64,
}

impl Times {
    pub(super) fn of(r: &Interaction) -> Times {
        Times {
            started: r.started_at.timestamp_micros(),
            created: r.created_at.timestamp_micros(),
        }
    }
}

impl Index {
    /// Keeps the full record of slot `k` in memory (in [`Index::whole`]).
    pub(super) fn hold(&mut self, k: InteractionKey, record: Interaction) {
        if let Some(slot) = self.records.get_mut(k.slot()) {
            slot.set(HELD, true);
            let times = Times::of(&record);
            self.whole.insert(
                k,
                Held {
                    times,
                    record: Box::new(record),
                },
            );
        }
    }

    /// Takes the full record of slot `k` out of memory; returns it.
    pub(super) fn unhold(&mut self, k: InteractionKey) -> Option<Box<Interaction>> {
        if let Some(slot) = self.records.get_mut(k.slot()) {
            slot.set(HELD, false);
        }
        self.whole.remove(&k).map(|h| h.record)
    }

    /// Puts the journal frame of slot `k`'s latest change at `frame` (0:
    /// in the store already).
    pub(super) fn put_frame(&mut self, k: InteractionKey, frame: u64) {
        if let Some(slot) = self.records.get_mut(k.slot()) {
            if frame != 0 {
                self.pending.insert(k, frame);
            } else if slot.has(PENDING) {
                // Only a slot flagged has a frame to forget: most are
                // restored at frame 0, and look nothing up.
                self.pending.remove(&k);
            }
            slot.set(PENDING, frame != 0);
        }
    }

    /// The journal frame of slot `k`'s latest change (0: in the store).
    pub(super) fn frame_of(&self, k: InteractionKey) -> u64 {
        match self.records.get(k.slot()) {
            Some(slot) if slot.has(PENDING) => self.pending.get(&k).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// A new slot for interaction `id` of person `p`, next in creation
    /// order, filed by its `externalId` (`ext`) but not yet by its id: the
    /// caller makes its entry, then files it by id ([`Index::name_id`]).
    /// One citing its own `externalId` then cites itself (it is then
    /// answered, the strict way), as it always has. Shared by
    /// [`Index::restore_interaction`] and [`Index::restore_lean`].
    pub(super) fn new_slot(
        &mut self,
        p: PersonKey,
        id: &str,
        ext: Option<ExtHash>,
        at: i64,
    ) -> InteractionKey {
        let key = InteractionKey::of_slot(self.records.len());
        self.advance_counter("IT", id);
        self.records.push(Slot {
            person: p,
            id: SlotId::of(id, key, &mut self.given_ids),
            flags: 0,
            ext,
            seq: self.next_seq,
            at,
        });
        self.next_seq += 1;
        self.name_ext(key);
        let person = &mut self.people[p.0 as usize];
        person.interactions = person.interactions.saturating_add(1);
        self.put_record(p, key);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::{ExtHash, SlotId};

    /// An interaction's slot stays small: 40 bytes, its id a number, its
    /// `externalId` an 8-byte hash, and no string of its own.
    #[test]
    fn a_slot_is_small() {
        assert_eq!(std::mem::size_of::<Option<ExtHash>>(), 8);
        assert_eq!(std::mem::size_of::<SlotId>(), 8);
        assert_eq!(std::mem::size_of::<super::super::Slot>(), 40);
    }

    /// A person stays small too: 104 bytes, its texts held once (see
    /// `registry`).
    #[test]
    fn a_person_is_small() {
        assert_eq!(std::mem::size_of::<super::super::Person>(), 104);
    }

    #[test]
    fn an_external_id_hashes_the_same_every_time_and_apart_from_others() {
        assert_eq!(ExtHash::of("SM-1"), ExtHash::of("SM-1"));
        assert_ne!(ExtHash::of("SM-1"), ExtHash::of("SM-2"));
    }
}
