//! The index written whole, by number, and read back: what lets a start
//! after a clean stop skip rebuilding memory from every record in the
//! horizon (issue 15).
//!
//! Rebuilt from the store, a start looks up every interaction's person,
//! id, `externalId` and loans by their texts in tables of millions, a
//! cache miss each: about 1.6 µs an interaction on one core. Written
//! here, the index is its lists of numbers (slots, people with their
//! counting entries, the interned loans and their sets) read back in
//! order, and only its hash tables are filed again, from the keys they
//! held. Hashes made from texts (a contact point's, an `externalId`'s)
//! stay valid because the keys they were made with are written too, and
//! a process that hashes with other keys refuses the file
//! ([`super::entry::adopt_hash_keys`]).
//!
//! The format is this module's own: numbers as LEB128 varints (times and
//! places in creation order as differences from the one before), texts
//! as a length and their bytes, then a CRC-32 of everything before it.
//! A full record (the few memory holds whole) and a restriction go
//! through the caller's encoding ([`Codec`]), so that the domain writes
//! no protobuf. Nothing here decides whether a file may be used; the
//! guard does (`guard::checkpoint`: the store's position, the horizon,
//! the file's own header), and anything this reader does not find
//! exactly as written is [`CheckpointError::Damaged`], never a guess.

use std::io::{Read, Write};

mod bytes;

use bytes::{In, Out};

use super::entry::{ContactHash, Loans};
use super::registry::{ExtOf, Registry, external, own_id};
use super::slots::{
    ExtHash, HELD, Held, Names, PENDING, Slot, SlotId, Times, VACATED, ext_name, id_name,
};
use super::{
    Entry, HashMap, Index, IndexConfig, Interaction, InteractionKey, Interner, LoanSetNumbers,
    NameKey, Person, PersonKey, PersonMore, interned,
};
use crate::model::{
    AgentOutcome, Channel, ContactKind, Direction, Status, StatusDetails, Subject, Theme,
};
use crate::restrictions::Restriction;

/// What the index part of a checkpoint starts with.
const MAGIC: &[u8; 8] = b"CGINDEX\0";
/// The layout written here; any other is refused.
const VERSION: u64 = 1;
/// The most bytes one text or one encoded record may take: far past any
/// id, name or record the API accepts.
const MAX_ITEM: u64 = 16 << 20;
/// The bit that marks a [`Loans`] as a set's number (as `entry.rs`).
const LOAN_SET: u32 = 1 << 31;

/// How the caller encodes what the domain keeps as typed values: a full
/// record held in memory, and a restriction.
pub struct Codec<'a> {
    /// Appends a full record's bytes.
    pub record: &'a dyn Fn(&Interaction, &mut Vec<u8>),
    /// Appends a restriction's bytes.
    pub restriction: &'a dyn Fn(&Restriction, &mut Vec<u8>),
}

impl std::fmt::Debug for Codec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec")
    }
}

/// How the caller decodes what [`Codec`] encoded.
pub struct Decoder<'a> {
    /// A full record from its bytes (on two threads at once).
    pub record: &'a (dyn Fn(&[u8]) -> Result<Interaction, String> + Sync),
    /// A restriction from its bytes.
    pub restriction: &'a dyn Fn(&[u8]) -> Result<Restriction, String>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

/// Why an index could not be written or read back. A start that meets
/// one rebuilds the index from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{action} the index checkpoint: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        #[source]
        cause: std::io::Error,
    },
    /// The bytes are not what this module writes.
    #[error("the index checkpoint is damaged at byte {at}: {what}")]
    Damaged {
        /// Where, from the start of the index part.
        at: u64,
        /// What was found.
        what: String,
    },
    /// Written well, but not usable by this process or this index.
    #[error("the index checkpoint cannot be used: {0}")]
    Unusable(String),
}

impl Index {
    /// Writes the whole index to `out`, ending with a CRC-32 of what it
    /// wrote; returns how many bytes.
    ///
    /// For a clean stop, once the store holds every change: what was
    /// pending for the store ([`Index::set_frame`]), and the frame the
    /// last changes travelled in, are written as held by it. Refused
    /// while a start stages.
    ///
    /// The slots emptied by moves to disk are left out, and the others
    /// written under keys renumbered in their order ([`Renumber`]): a
    /// start from it holds none of them, as a start that rebuilds from
    /// the store would not. A counting entry whose
    /// `previousInteractionId` names an emptied slot is written naming
    /// none, and an audio file's entry naming one is not written: in
    /// memory both already found nothing (the slot has no counting entry
    /// and no record). Anything else naming an emptied slot (an entry, a
    /// person's list, a table, a record held whole) is memory out of
    /// step with itself, and the index is refused: the next start
    /// rebuilds from the store rather than drop what memory counts.
    pub fn write_checkpoint(
        &self,
        out: impl Write,
        codec: &Codec<'_>,
    ) -> Result<u64, CheckpointError> {
        if self.staged.is_some() {
            return Err(CheckpointError::Unusable(
                "the index is in the middle of a change".into(),
            ));
        }
        let re = Renumber::of(&self.records);
        re.check(self)?;
        let mut w = Out::new(out);
        w.raw(MAGIC);
        w.u(VERSION);
        let [k0, k1] = super::entry::hash_keys();
        w.raw(&k0.to_le_bytes());
        w.raw(&k1.to_le_bytes());
        w.u(u64::from(self.config.horizon_days));
        for n in [
            self.next_person,
            self.next_interaction,
            self.next_restriction,
            self.on_disk as u64,
            // None is written.
            0,
            self.let_go as u64,
            self.epoch,
            self.max_on_disk_generated,
            self.next_seq,
        ] {
            w.u(n);
        }
        w.i(self.held_from);
        // Loan and account names, and the sets of them.
        w.text(&self.names.text);
        w.u(self.names.ends.len() as u64);
        let mut prev = 0;
        for &e in &self.names.ends {
            w.u((e - prev) as u64);
            prev = e;
        }
        w.keys(
            self.names.keys.keys().map(|k| u64::from(k.0)),
            self.names.keys.len(),
        );
        w.u(self.loan_sets.len() as u64);
        for set in &self.loan_sets {
            w.u(set.len() as u64);
            for k in set.iter() {
                w.u(u64::from(k.0));
            }
        }
        let numbers = &self.loan_set_numbers.table;
        w.keys(numbers.iter().map(|n| u64::from(*n)), numbers.len());
        // Slots, and the tables that find them.
        w.u(re.kept as u64);
        let (mut seq, mut at) = (0u64, 0i64);
        for s in self.records.kept().filter(|s| !s.has(VACATED)) {
            w.u(u64::from(s.person.0));
            w.u(u64::from(s.flags & !PENDING));
            w.u(s.id.0);
            w.u(s.ext.map_or(0, |h| h.0.get()));
            w.i(s.seq.wrapping_sub(seq) as i64);
            w.i(s.at.wrapping_sub(at));
            seq = s.seq;
            at = s.at;
            w.spill();
        }
        w.u(self.given_ids.len() as u64);
        for (k, text) in &self.given_ids {
            w.u(re.live(*k));
            w.text(text);
        }
        for table in [&self.ids, &self.external_ids] {
            w.keys(table.keys().map(|k| re.live(k)), table.len());
        }
        // People, with their counting entries and lists.
        w.u(self.people.len() as u64);
        let mut bytes = Vec::new();
        for p in &self.people {
            w.text(&p.id);
            w.u(p.external_ids.len() as u64);
            for x in p.external_ids.iter() {
                w.text(x);
            }
            w.u(u64::from(p.interactions));
            w.u(u64::from(p.records_on_disk));
            w.u(p.entries.len() as u64);
            let mut at = 0i64;
            for e in &p.entries {
                write_entry(&mut w, e, at, &re);
                at = e.at;
                w.spill();
            }
            w.u(p.records.len() as u64);
            for k in &p.records {
                w.u(re.live(*k));
            }
            match p.more.as_deref() {
                None => w.u(0),
                Some(more) => {
                    w.u(1);
                    w.u(more.aliases.len() as u64);
                    for a in &more.aliases {
                        w.text(a);
                    }
                    w.u(more.accounts_of_loans.len() as u64);
                    for (loan, account) in &more.accounts_of_loans {
                        w.u(u64::from(loan.0));
                        w.u(u64::from(account.0));
                    }
                    w.u(more.accounts.len() as u64);
                    for (account, loans) in &more.accounts {
                        w.u(u64::from(account.0));
                        w.u(loans.len() as u64);
                        for l in loans {
                            w.u(u64::from(l.0));
                        }
                    }
                    w.u(more.restrictions.len() as u64);
                    for r in &more.restrictions {
                        bytes.clear();
                        (codec.restriction)(r, &mut bytes);
                        w.bytes(&bytes);
                    }
                }
            }
            w.spill();
        }
        let reg = &self.registry;
        w.keys(reg.ids.keys().map(|k| u64::from(k.0)), reg.ids.len());
        w.u(reg.external.len() as u64);
        for e in reg.external.keys() {
            w.u(u64::from(e.person.0));
            w.u(u64::from(e.n));
        }
        w.u(reg.aliases.len() as u64);
        for (alias, k) in &reg.aliases {
            w.text(alias);
            w.u(u64::from(k.0));
        }
        w.u(self.restriction_ids.len() as u64);
        for (id, k) in &self.restriction_ids {
            w.text(id);
            w.u(u64::from(k.0));
        }
        let media = || {
            self.media_files
                .iter()
                .filter_map(|(file, k)| Some((file, re.key(*k)?)))
        };
        w.u(media().count() as u64);
        for (file, k) in media() {
            w.text(file);
            w.u(k);
        }
        // The full records memory holds, by their slots.
        w.u(self.whole.len() as u64);
        for (k, held) in &self.whole {
            w.u(re.live(*k));
            bytes.clear();
            (codec.record)(&held.record, &mut bytes);
            w.bytes(&bytes);
            w.spill();
        }
        w.finish()
    }

    /// Reads back an index [`Index::write_checkpoint`] wrote, `len` bytes
    /// of `input` (its CRC-32 last), made for `config`. Refused whole
    /// (nothing of it used) if any byte is not as written, if it was made
    /// for another horizon, or if this process hashes with other keys.
    pub fn read_checkpoint(
        config: IndexConfig,
        input: impl Read,
        len: u64,
        decoder: &Decoder<'_>,
    ) -> Result<Index, CheckpointError> {
        let mut r = In::new(input, len)?;
        if r.take(MAGIC.len() as u64)? != MAGIC {
            return Err(r.damaged("not an index checkpoint"));
        }
        let version = r.u()?;
        if version != VERSION {
            return Err(CheckpointError::Unusable(format!(
                "it is of version {version}; this release reads version {VERSION}"
            )));
        }
        let k0 = r.u64_le()?;
        let k1 = r.u64_le()?;
        let horizon = r.u()?;
        if horizon != u64::from(config.horizon_days) {
            return Err(CheckpointError::Unusable(format!(
                "it was made with `--horizon-days` {horizon}, and this start has {}",
                config.horizon_days
            )));
        }
        let mut index = Index::new(config);
        let mut counters = [0u64; 9];
        for c in &mut counters {
            *c = r.u()?;
        }
        let [
            np,
            ni,
            nr,
            on_disk,
            vacated,
            let_go,
            epoch,
            max_gen,
            next_seq,
        ] = counters;
        (
            index.next_person,
            index.next_interaction,
            index.next_restriction,
        ) = (np, ni, nr);
        index.on_disk = r.usize_of(on_disk)?;
        index.vacated = r.usize_of(vacated)?;
        index.let_go = r.usize_of(let_go)?;
        (index.epoch, index.max_on_disk_generated, index.next_seq) = (epoch, max_gen, next_seq);
        index.held_from = r.i()?;
        // Loan and account names, and the sets of them.
        let text = r.text()?;
        let n = r.count(1)?;
        let mut ends = Vec::with_capacity(n);
        let mut end = 0usize;
        for _ in 0..n {
            end = end
                .checked_add(r.usize()?)
                .filter(|e| *e <= text.len() && text.is_char_boundary(*e))
                .ok_or_else(|| r.damaged("a loan name past the names' text"))?;
            ends.push(end);
        }
        let name_keys = r.key_list(|k| u32::try_from(k).ok().map(NameKey))?;
        let keys = {
            let (t, e) = (&text, &ends);
            Names::rebuilt(name_keys.iter().copied(), |k| interned(t, e, k))
        };
        r.same_count(keys.len(), name_keys.len(), "loan names")?;
        index.names = Interner { keys, text, ends };
        let loan_names = index.names.ends.len();
        let n = r.count(1)?;
        let mut sets = Vec::with_capacity(n);
        for _ in 0..n {
            let m = r.count(1)?;
            let mut set = Vec::with_capacity(m);
            for _ in 0..m {
                set.push(r.name_key(loan_names)?);
            }
            sets.push(set.into_boxed_slice());
        }
        index.loan_sets = sets;
        let set_numbers = r.key_list(|k| u32::try_from(k).ok())?;
        let mut numbers = LoanSetNumbers::default();
        {
            use std::hash::BuildHasher;
            let (sets, state) = (&index.loan_sets, numbers.state.clone());
            let set_of = |n: &u32| sets.get((*n as usize).wrapping_sub(1));
            numbers.table.reserve(set_numbers.len(), |n| {
                set_of(n).map_or(0, |s| state.hash_one(&**s))
            });
            for n in &set_numbers {
                let Some(set) = set_of(n) else {
                    return Err(r.damaged("a loan set's number past the sets"));
                };
                numbers
                    .table
                    .insert_unique(state.hash_one(&**set), *n, |n| {
                        set_of(n).map_or(0, |s| state.hash_one(&**s))
                    });
            }
        }
        index.loan_set_numbers = numbers;
        // Slots, and the tables that find them.
        let n = r.count(6)?;
        let mut records = super::chunks::Slots::default();
        records.reserve(n);
        let (mut seq, mut at) = (0u64, 0i64);
        for _ in 0..n {
            let person = PersonKey(r.u32()?);
            // An emptied slot (written by an earlier release; this one
            // writes none, see `Renumber`) is kept as emptied.
            let flags = u8::try_from(r.u()?).map_err(|_| r.damaged("a slot's flags"))?;
            let id = SlotId(r.u()?);
            let ext = std::num::NonZeroU64::new(r.u()?).map(ExtHash);
            seq = seq.wrapping_add(r.i()? as u64);
            at = at.wrapping_add(r.i()?);
            records.push(Slot {
                person,
                flags,
                id,
                ext,
                seq,
                at,
            });
        }
        index.records = records;
        let slots = index.records.len();
        let n = r.count(2)?;
        for _ in 0..n {
            let k = r.key(slots)?;
            let text = r.text()?;
            index.given_ids.insert(k, text.into_boxed_str());
        }
        let id_keys = r.key_list(|k| slot_key(k, slots))?;
        let ext_keys = r.key_list(|k| slot_key(k, slots))?;
        let (ids, exts) = (id_keys.len(), ext_keys.len());
        let id_keys = in_key_order(id_keys, slots);
        let ext_keys = in_key_order(ext_keys, slots);
        {
            let (records, given) = (&index.records, &index.given_ids);
            index.ids = Names::rebuilt(id_keys.iter().copied(), |k| id_name(records, given, k));
            index.external_ids = Names::rebuilt(ext_keys.iter().copied(), |k| ext_name(records, k));
        }
        r.same_count(index.ids.len(), ids, "ids")?;
        r.same_count(index.external_ids.len(), exts, "external ids")?;
        drop((id_keys, ext_keys));
        // People, with their counting entries and lists.
        let n = r.count(6)?;
        let mut people = Vec::with_capacity(n);
        for _ in 0..n {
            people.push(read_person(
                &mut r,
                slots,
                loan_names,
                index.loan_sets.len(),
                decoder,
            )?);
        }
        index.people = people;
        let persons = index.people.len();
        if let Some(s) = index
            .records
            .iter()
            .find(|s| s.person.0 as usize >= persons)
        {
            return Err(r.damaged(&format!("a slot of person {} past the people", s.person.0)));
        }
        let own = r.key_list(|k| u32::try_from(k).ok().map(PersonKey))?;
        let n = r.count(2)?;
        let mut exts = Vec::with_capacity(n);
        for _ in 0..n {
            let person = PersonKey(r.u32()?);
            let n = r.u32()?;
            exts.push(ExtOf { person, n });
        }
        let people = &index.people;
        let mut registry = Registry {
            ids: Names::rebuilt(own.iter().copied(), |k| own_id(people, k)),
            external: Names::rebuilt(exts.iter().copied(), |e| external(people, e)),
            aliases: HashMap::default(),
        };
        r.same_count(registry.ids.len(), own.len(), "people's ids")?;
        r.same_count(registry.external.len(), exts.len(), "people's external ids")?;
        let n = r.count(2)?;
        for _ in 0..n {
            let alias = r.text()?;
            let k = r.person(persons)?;
            registry.aliases.insert(alias.into_boxed_str(), k);
        }
        index.registry = registry;
        let n = r.count(2)?;
        for _ in 0..n {
            let id = r.text()?;
            let k = r.person(persons)?;
            index.restriction_ids.insert(id, k);
        }
        let n = r.count(2)?;
        for _ in 0..n {
            let file = r.text()?;
            let k = r.key(slots)?;
            index.media_files.insert(file, k);
        }
        // The full records memory holds, by their slots: read a chunk at
        // a time, and decoded half on a second thread.
        let n = r.count(2)?;
        index.whole.reserve(n);
        let mut chunk = Vec::with_capacity(n.min(WHOLE_CHUNK));
        let mut left = n;
        while left > 0 {
            chunk.clear();
            for _ in 0..left.min(WHOLE_CHUNK) {
                let k = r.key(slots)?;
                let bytes = r.bytes()?.to_vec();
                chunk.push((k, r.at(), bytes));
            }
            left -= chunk.len();
            index.whole.extend(decode_whole(decoder, &chunk)?);
        }
        let held = index.records.kept().filter(|s| s.has(HELD)).count();
        r.same_count(index.whole.len(), held, "records held whole")?;
        r.finish()?;
        if !super::entry::adopt_hash_keys([k0, k1]) {
            return Err(CheckpointError::Unusable(
                "this process already hashes contact points with other keys".into(),
            ));
        }
        Ok(index)
    }
}

/// How many full records a checkpoint's reading decodes at a time: a few
/// megabytes of their bytes.
const WHOLE_CHUNK: usize = 8192;

/// A checkpoint's full records (each with where its bytes end, for the
/// error that names it) decoded, half of them on a second thread: a start
/// from a checkpoint that holds a busy day's records whole spends most of
/// its reading on them, and has two cores.
fn decode_whole(
    decoder: &Decoder<'_>,
    chunk: &[(InteractionKey, u64, Vec<u8>)],
) -> Result<Vec<(InteractionKey, Held)>, CheckpointError> {
    let decode = |part: &[(InteractionKey, u64, Vec<u8>)]| {
        part.iter()
            .map(|(k, at, bytes)| {
                let record = (decoder.record)(bytes).map_err(|e| CheckpointError::Damaged {
                    at: *at,
                    what: e.chars().take(200).collect(),
                })?;
                let times = Times::of(&record);
                Ok((
                    *k,
                    Held {
                        times,
                        record: Box::new(record),
                    },
                ))
            })
            .collect::<Result<Vec<_>, CheckpointError>>()
    };
    let (first, second) = chunk.split_at(chunk.len() / 2);
    std::thread::scope(|scope| {
        // Without a second thread, this one decodes both halves.
        let other = std::thread::Builder::new()
            .name("checkpoint-decode".into())
            .spawn_scoped(scope, || decode(first));
        let second = decode(second);
        // The first half's error first: it is the earlier in the file.
        let mut first = match other {
            Ok(thread) => thread.join().unwrap_or_else(|_| {
                Err(CheckpointError::Unusable(
                    "the thread decoding its full records stopped".into(),
                ))
            }),
            Err(_) => decode(first),
        }?;
        first.extend(second?);
        Ok(first)
    })
}

/// The keys a checkpoint writes slots under: each slot in memory but
/// those emptied by moves to disk ([`VACATED`]), numbered again in their
/// order, so that order between keys (a person's entries are sorted by
/// time, then key) is kept. Where none was emptied (a checkpoint built
/// from the store, or written by a start that rebuilt), every key is its
/// own, and no map is made; otherwise the map takes 4 bytes a slot while
/// the checkpoint is written (53 MB at 13.3 million slots), and
/// [`Renumber::check`] a pass over every key memory holds.
struct Renumber {
    /// The new number of each slot's key (0: emptied), or `None` when
    /// every key is its own.
    map: Option<Vec<u32>>,
    /// How many slots are written.
    kept: usize,
}

impl Renumber {
    fn of(records: &super::chunks::Slots) -> Renumber {
        if !records.any_emptied() {
            return Renumber {
                map: None,
                kept: records.len(),
            };
        }
        let mut next = 0u32;
        let mut map = Vec::with_capacity(records.len());
        map.extend(records.iter().map(|s| {
            if s.has(VACATED) {
                0
            } else {
                next = next.saturating_add(1);
                next
            }
        }));
        Renumber {
            map: Some(map),
            kept: next as usize,
        }
    }

    /// The number `k` is written as; `None` for an emptied slot (or a
    /// key past the slots, which nothing holds).
    fn key(&self, k: InteractionKey) -> Option<u64> {
        let n = match &self.map {
            None => k.0.get(),
            Some(map) => *map.get(k.slot())?,
        };
        (n != 0).then_some(u64::from(n))
    }

    /// The number of `k`, a key [`Renumber::check`] found in a slot
    /// written (0, which no start reads back, where it was not: never
    /// after the check).
    fn live(&self, k: InteractionKey) -> u64 {
        self.key(k).unwrap_or(0)
    }

    /// Refuses an index in which anything but a counting entry's
    /// `previous` or an audio file's entry names an emptied slot (or a
    /// slot past the last): such a name would be dropped from the
    /// checkpoint while memory still counts by it. With no slot emptied,
    /// nothing is renumbered and nothing checked: a key past the slots is
    /// written as it is, and the start that reads it refuses the file.
    fn check(&self, index: &Index) -> Result<(), CheckpointError> {
        if self.map.is_none() {
            return Ok(());
        }
        let people = index.people.iter().flat_map(|p| {
            p.entries
                .iter()
                .map(|e| e.key)
                .chain(p.records.iter().copied())
        });
        let named = index
            .given_ids
            .keys()
            .copied()
            .chain(index.ids.keys())
            .chain(index.external_ids.keys())
            .chain(index.whole.keys().copied())
            .chain(people);
        for k in named {
            if self.key(k).is_none() {
                return Err(CheckpointError::Unusable(format!(
                    "slot {} was emptied by a move to disk but memory still names it: the next start rebuilds memory from the store",
                    k.0
                )));
            }
        }
        Ok(())
    }
}

/// `keys` (each below `slots`) in key order, each once. A table filed
/// from them in that order reads their slots one after another, where the
/// order written (the table's own, random) reads each slot from anywhere
/// in memory, a cache miss each: at 10 million, about a tenth of a start
/// from the checkpoint. A key written twice is kept once, so the count's
/// check refuses the file.
fn in_key_order(mut keys: Vec<InteractionKey>, slots: usize) -> Vec<InteractionKey> {
    let mut marks = vec![0u64; slots.div_ceil(64)];
    for k in &keys {
        let s = k.slot();
        if let Some(m) = marks.get_mut(s / 64) {
            *m |= 1 << (s % 64);
        }
    }
    keys.clear();
    for (w, &m) in marks.iter().enumerate() {
        let mut m = m;
        while m != 0 {
            keys.push(InteractionKey::of_slot(
                w * 64 + m.trailing_zeros() as usize,
            ));
            m &= m - 1;
        }
    }
    keys
}

/// An interaction's key from its number, if a slot has it.
fn slot_key(raw: u64, slots: usize) -> Option<InteractionKey> {
    let n = u32::try_from(raw).ok()?;
    let k = InteractionKey(std::num::NonZeroU32::new(n)?);
    (k.slot() < slots).then_some(k)
}

fn write_entry<W: Write>(w: &mut Out<W>, e: &Entry, before: i64, re: &Renumber) {
    w.i(e.at.wrapping_sub(before));
    w.u(re.live(e.key));
    w.u(e.channel.index() as u64);
    w.u(e.direction.index() as u64);
    w.u(e.theme.map_or(0, |t| t.index() as u64 + 1));
    w.u(e.status.index() as u64);
    w.u(e.details.map_or(0, |t| t.index() as u64 + 1));
    w.u(e.outcome.map_or(0, |t| t.index() as u64 + 1));
    w.u(ContactKind::NAMED
        .iter()
        .position(|(k, _)| *k == e.contact)
        .map_or(0, |i| i as u64 + 1));
    w.u(e.contact_value.map_or(0, |h| h.0.get()));
    w.u(e.subject.map_or(0, |t| t.index() as u64 + 1));
    w.u(e.transactional.map_or(0, |t| u64::from(t) + 1));
    w.u(e.previous.and_then(|k| re.key(k)).unwrap_or(0));
    w.u(u64::from(e.loans.0.0));
}

fn read_entry<R: Read>(
    r: &mut In<R>,
    before: i64,
    slots: usize,
    loan_names: usize,
    loan_sets: usize,
) -> Result<Entry, CheckpointError> {
    let at = before.wrapping_add(r.i()?);
    let key = r.key(slots)?;
    let channel = r.vocab(Channel::ALL)?;
    let direction = r.vocab(Direction::ALL)?;
    let theme = r.maybe(Theme::ALL)?;
    let status = r.vocab(Status::ALL)?;
    let details = r.maybe(StatusDetails::ALL)?;
    let outcome = r.maybe(AgentOutcome::ALL)?;
    let contact = match r.u()? {
        0 => ContactKind::Unknown,
        n => ContactKind::NAMED
            .get((n - 1) as usize)
            .map(|(k, _)| *k)
            .ok_or_else(|| r.damaged("a contact kind"))?,
    };
    let contact_value = std::num::NonZeroU64::new(r.u()?).map(ContactHash);
    let subject = r.maybe(Subject::ALL)?;
    let transactional = match r.u()? {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return Err(r.damaged("an entry's isTransactional")),
    };
    let previous = match r.u()? {
        0 => None,
        n => Some(slot_key(n, slots).ok_or_else(|| r.damaged("an entry's previous"))?),
    };
    let raw = r.u32()?;
    let fits = if raw & LOAN_SET == 0 {
        (raw as usize) < loan_names
    } else {
        ((raw & !LOAN_SET) as usize) <= loan_sets
    };
    if !fits {
        return Err(r.damaged("an entry's loans"));
    }
    Ok(Entry {
        at,
        key,
        channel,
        direction,
        theme,
        status,
        details,
        outcome,
        contact,
        contact_value,
        subject,
        transactional,
        previous,
        loans: Loans(NameKey(raw)),
    })
}

fn read_person<R: Read>(
    r: &mut In<R>,
    slots: usize,
    loan_names: usize,
    loan_sets: usize,
    decoder: &Decoder<'_>,
) -> Result<Person, CheckpointError> {
    let id = r.text()?.into_boxed_str();
    let n = r.count(1)?;
    let mut externals = Vec::with_capacity(n);
    for _ in 0..n {
        externals.push(r.text()?);
    }
    let interactions = r.u32()?;
    let records_on_disk = match r.u()? {
        0 => false,
        1 => true,
        _ => return Err(r.damaged("a person's records_on_disk")),
    };
    let n = r.count(14)?;
    let mut entries = Vec::with_capacity(n);
    let mut at = 0;
    for _ in 0..n {
        let e = read_entry(r, at, slots, loan_names, loan_sets)?;
        at = e.at;
        entries.push(e);
    }
    let n = r.count(1)?;
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        records.push(r.key(slots)?);
    }
    let more = match r.u()? {
        0 => None,
        1 => {
            let mut more = PersonMore::default();
            let n = r.count(1)?;
            for _ in 0..n {
                more.aliases.push(r.text()?);
            }
            let n = r.count(2)?;
            for _ in 0..n {
                let loan = r.name_key(loan_names)?;
                let account = r.name_key(loan_names)?;
                more.accounts_of_loans.insert(loan, account);
            }
            let n = r.count(2)?;
            for _ in 0..n {
                let account = r.name_key(loan_names)?;
                let m = r.count(1)?;
                let mut loans = Vec::with_capacity(m);
                for _ in 0..m {
                    loans.push(r.name_key(loan_names)?);
                }
                more.accounts.insert(account, loans);
            }
            let n = r.count(1)?;
            for _ in 0..n {
                let bytes = r.bytes()?;
                let restriction = (decoder.restriction)(bytes).map_err(|e| r.damaged(&e))?;
                more.restrictions.push(restriction);
            }
            Some(Box::new(more))
        }
        _ => return Err(r.damaged("a person's more")),
    };
    Ok(Person {
        id,
        external_ids: super::registry::Externals::of(externals.iter().map(String::as_str)),
        entries,
        records,
        interactions,
        records_on_disk,
        more,
    })
}

#[cfg(test)]
mod tests;
