//! The interaction slots by key, in chunks of [`CHUNK`]: a chunk whose
//! every slot was emptied ([`VACATED`], the interaction moved beyond the
//! horizon) is given back to the allocator while the server runs.
//!
//! Keys are numbered in creation order and never reused (a listing and
//! a person's entries order by them), so the slots of interactions that
//! left the horizon cannot be taken by new ones. But interactions leave
//! the horizon about in the order they were created, so the emptied slots
//! gather at the front: whole chunks of them. Before this, every emptied
//! slot stayed (40 bytes each) until the next start, about 13 bytes more
//! an interaction of the horizon 30 days after a start at 10 million.
//!
//! A slot of a chunk given back reads as an emptied slot ([`Slots::get`]
//! returns one that is [`VACATED`] and nothing else): what a reader saw
//! of it before it was given back, since an emptied slot holds nothing
//! ([`Slots::vacate`] clears it), and no lookup reaches it.

use super::slots::{SlotId, VACATED};
use super::{PersonKey, Slot};

/// Slots per chunk (160 KiB of them): small enough that one interaction
/// kept long (scheduled far ahead, or held by a reservation) keeps
/// little else in memory, large enough that the table of chunks is small
/// (about 68 KB at 10 million slots) and a walk passes over a chunk given
/// back at once.
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_BITS: u32 = 12;
/// The bytes of a chunk's slots.
pub(super) const CHUNK_BYTES: u64 = (CHUNK * std::mem::size_of::<Slot>()) as u64;

/// What every slot of a chunk given back reads as.
static EMPTIED: Slot = emptied();

const fn emptied() -> Slot {
    Slot {
        person: PersonKey(0),
        flags: VACATED,
        id: SlotId::EMPTIED,
        ext: None,
        seq: 0,
        at: 0,
    }
}

/// The slots, by key (see the module's doc).
#[derive(Debug, Default)]
pub(super) struct Slots {
    /// Each chunk's slots: [`CHUNK`] of them in all but the last, none in
    /// a chunk given back.
    chunks: Vec<Vec<Slot>>,
    /// How many slots of each chunk are emptied.
    emptied: Vec<u32>,
    /// How many slots there are, given back or not.
    len: usize,
    /// How many chunks were given back, ever: a walk that gave some back
    /// asks the allocator to return the memory to the system.
    given_back: u64,
}

impl Slots {
    /// How many slots there are (emptied ones and those given back
    /// included): one past the largest key's slot.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Slot `i`: `None` past the last.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&Slot> {
        if i >= self.len {
            return None;
        }
        let chunk = self.chunks.get(i >> CHUNK_BITS)?;
        Some(chunk.get(i & (CHUNK - 1)).unwrap_or(&EMPTIED))
    }

    /// Slot `i` to change: `None` past the last, and for a slot of a
    /// chunk given back (emptied, so nothing changes it).
    #[inline]
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Slot> {
        if i >= self.len {
            return None;
        }
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Adds a slot after the last. One emptied already (read from a
    /// checkpoint of a release that wrote them) is kept as an emptied slot
    /// reads, and counted, so that its chunk goes once all of it is.
    #[inline]
    pub(super) fn push(&mut self, slot: Slot) {
        let vacated = slot.has(VACATED);
        let slot = if vacated { emptied() } else { slot };
        // By the count, not the last chunk's length: a last chunk given
        // back holds none.
        match self.chunks.last_mut() {
            Some(chunk) if !self.len.is_multiple_of(CHUNK) => chunk.push(slot),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(slot);
                self.chunks.push(chunk);
                self.emptied.push(0);
            }
        }
        self.len += 1;
        if vacated {
            self.count_emptied((self.len - 1) >> CHUNK_BITS);
        }
    }

    /// Room for `more` slots: only the table of chunks is made ready, as
    /// each chunk is made whole when its first slot comes.
    pub(super) fn reserve(&mut self, more: usize) {
        let chunks = (self.len + more).div_ceil(CHUNK);
        let more_chunks = chunks.saturating_sub(self.chunks.len());
        self.chunks.reserve(more_chunks);
        self.emptied.reserve(more_chunks);
    }

    /// Empties slot `i` (it reads as a slot of a chunk given back does)
    /// and marks it [`VACATED`]; once every slot of its chunk is, the
    /// chunk is given back. An emptied slot is not emptied again.
    pub(super) fn vacate(&mut self, i: usize) {
        let c = i >> CHUNK_BITS;
        let Some(slot) = self.get_mut(i) else {
            return;
        };
        if slot.has(VACATED) {
            return;
        }
        *slot = emptied();
        self.count_emptied(c);
    }

    /// Counts one more emptied slot in chunk `c`, and gives the chunk
    /// back once every slot of it is.
    fn count_emptied(&mut self, c: usize) {
        let (Some(chunk), Some(emptied)) = (self.chunks.get_mut(c), self.emptied.get_mut(c)) else {
            return;
        };
        *emptied += 1;
        if *emptied as usize == CHUNK {
            *chunk = Vec::new();
            self.given_back += 1;
        }
    }

    /// How many chunks were given back since the slots were made.
    pub(super) fn given_back(&self) -> u64 {
        self.given_back
    }

    /// The first slot at or after `i` that is not in a chunk given back
    /// (`len` if none is): what a walk goes on from.
    pub(super) fn next_kept(&self, mut i: usize) -> usize {
        while i < self.len {
            match self.chunks.get(i >> CHUNK_BITS) {
                Some(chunk) if chunk.is_empty() => i = ((i >> CHUNK_BITS) + 1) << CHUNK_BITS,
                _ => return i,
            }
        }
        self.len
    }

    /// The slots from the first at or after `from` that is not in a
    /// chunk given back, up to `end` or the end of its chunk, with the
    /// first's number: `None` when no such slot is before `end`. What a
    /// walk reads a chunk at a time.
    pub(super) fn kept_run(&self, from: usize, end: usize) -> Option<(usize, &[Slot])> {
        let end = end.min(self.len);
        let from = self.next_kept(from);
        if from >= end {
            return None;
        }
        let c = from >> CHUNK_BITS;
        let chunk = self.chunks.get(c)?;
        let to = (end - (c << CHUNK_BITS)).min(chunk.len());
        chunk
            .get(from & (CHUNK - 1)..to)
            .filter(|run| !run.is_empty())
            .map(|run| (from, run))
    }

    /// Every slot not in a chunk given back, in key order (without
    /// their numbers): what a pass over the slots that memory holds reads,
    /// a chunk's slots at a time.
    pub(super) fn kept(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.chunks.iter().flatten()
    }

    /// True if any slot is emptied (given back or not).
    pub(super) fn any_emptied(&self) -> bool {
        self.emptied.iter().any(|&e| e > 0)
    }

    /// Every slot in key order, those given back read as emptied.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.chunks.iter().flat_map(|chunk| {
            // A chunk given back holds no slot, and reads as its
            // `CHUNK` emptied ones.
            let given_back = if chunk.is_empty() { CHUNK } else { 0 };
            chunk
                .iter()
                .chain(std::iter::repeat_n(&EMPTIED, given_back))
        })
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Slot;

    /// Slot `i`, as [`Slots::get`]; panics past the last, as a slice does.
    fn index(&self, i: usize) -> &Slot {
        match self.get(i) {
            Some(slot) => slot,
            None => panic!("slot {i} of {}", self.len),
        }
    }
}

impl FromIterator<Slot> for Slots {
    fn from_iter<I: IntoIterator<Item = Slot>>(slots: I) -> Slots {
        let mut all = Slots::default();
        for slot in slots {
            all.push(slot);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Slots};
    use crate::index::slots::{HELD, SlotId, VACATED};
    use crate::index::{PersonKey, Slot};

    fn slot(n: u64) -> Slot {
        Slot {
            person: PersonKey(u32::try_from(n % 7).unwrap()),
            flags: HELD,
            id: SlotId(n + 1),
            ext: None,
            seq: n,
            at: i64::try_from(n).unwrap() * 10,
        }
    }

    /// A chunk is given back once its every slot is emptied, and not
    /// before; its slots then read as emptied, a walk passes over them,
    /// and the others (before, after, and in the last chunk) are kept as
    /// they were.
    #[test]
    fn a_chunk_goes_once_every_slot_of_it_is_emptied() {
        let n = 3 * CHUNK + 5;
        let mut slots: Slots = (0..n as u64).map(slot).collect();
        assert_eq!(slots.len(), n);
        // The second chunk, all but one slot, and the one slot twice.
        for i in CHUNK..2 * CHUNK - 1 {
            slots.vacate(i);
            slots.vacate(i);
        }
        assert_eq!(slots.given_back(), 0);
        assert!(slots.get(2 * CHUNK - 2).unwrap().has(VACATED));
        assert_eq!(slots.next_kept(CHUNK), CHUNK);
        slots.vacate(2 * CHUNK - 1);
        assert_eq!(slots.given_back(), 1);
        assert_eq!(slots.next_kept(CHUNK + 7), 2 * CHUNK);
        assert_eq!(slots.next_kept(0), 0);
        for i in CHUNK..2 * CHUNK {
            let s = &slots[i];
            assert!(s.has(VACATED) && !s.has(HELD), "slot {i}");
            assert_eq!(s.id, SlotId::EMPTIED);
            assert!(slots.get_mut(i).is_none());
        }
        // The others are untouched.
        for i in (0..CHUNK).chain(2 * CHUNK..n) {
            let s = &slots[i];
            assert_eq!(
                (s.seq, s.at, s.id),
                (i as u64, i as i64 * 10, SlotId(i as u64 + 1))
            );
            assert!(!s.has(VACATED));
        }
        // The iterator yields every slot, those given back as emptied.
        let flags: Vec<bool> = slots.iter().map(|s| s.has(VACATED)).collect();
        assert_eq!(flags.len(), n);
        assert!(
            flags
                .iter()
                .enumerate()
                .all(|(i, v)| *v == (CHUNK..2 * CHUNK).contains(&i))
        );
        assert!(slots.get(n).is_none());
        // The last chunk, not whole, is never given back; a slot pushed
        // after goes on in it.
        for i in 3 * CHUNK..n {
            slots.vacate(i);
        }
        slots.push(slot(n as u64));
        assert_eq!(slots.given_back(), 1);
        assert_eq!(slots[n].seq, n as u64);
        assert_eq!(slots.next_kept(n), n);
        assert_eq!(slots.next_kept(n + 1), n + 1);
    }

    /// A walk's runs: within one chunk each, up to its end, chunks given
    /// back passed over, none past the end.
    #[test]
    fn a_walk_reads_runs_of_one_chunk_passing_over_those_given_back() {
        let n = 3 * CHUNK + 5;
        let mut slots: Slots = (0..n as u64).map(slot).collect();
        for i in CHUNK..2 * CHUNK {
            slots.vacate(i);
        }
        let runs = |from: usize, end: usize| {
            let mut runs = Vec::new();
            let mut next = from;
            while let Some((at, run)) = slots.kept_run(next, end) {
                assert!(run.iter().zip(at..).all(|(s, i)| s.seq == i as u64));
                runs.push((at, run.len()));
                next = at + run.len();
            }
            runs
        };
        assert_eq!(runs(0, n), [(0, CHUNK), (2 * CHUNK, CHUNK), (3 * CHUNK, 5)]);
        assert_eq!(runs(10, CHUNK + 7), [(10, CHUNK - 10)]);
        assert_eq!(runs(CHUNK + 3, 2 * CHUNK + 2), [(2 * CHUNK, 2)]);
        assert_eq!(runs(CHUNK, 2 * CHUNK), []);
        assert_eq!(runs(3 * CHUNK + 1, n + 100), [(3 * CHUNK + 1, 4)]);
        assert_eq!(runs(n, n + 1), []);
    }

    /// The last chunks given back: a walk from before them ends at the
    /// end.
    #[test]
    fn a_walk_past_the_last_chunks_given_back_ends_at_the_end() {
        let mut slots: Slots = (0..2 * CHUNK as u64).map(slot).collect();
        for i in 0..2 * CHUNK {
            slots.vacate(i);
        }
        assert_eq!(slots.given_back(), 2);
        assert_eq!(slots.next_kept(0), 2 * CHUNK);
        assert_eq!(slots.iter().filter(|s| s.has(VACATED)).count(), 2 * CHUNK);
        // A slot pushed after a last chunk given back starts a chunk of
        // its own, under its own key.
        for n in 2 * CHUNK..2 * CHUNK + 3 {
            slots.push(slot(n as u64));
        }
        for n in 2 * CHUNK..2 * CHUNK + 3 {
            assert_eq!(slots[n].seq, n as u64);
            assert!(slots.get_mut(n).is_some());
        }
        assert!((0..2 * CHUNK).all(|i| slots[i].has(VACATED) && slots.get_mut(i).is_none()));
        assert_eq!(slots.next_kept(0), 2 * CHUNK);
    }

    /// Slots pushed emptied (a checkpoint of a release that wrote them)
    /// read as emptied, and a chunk of them goes once it is whole.
    #[test]
    fn slots_pushed_emptied_are_counted_and_their_chunk_goes() {
        let emptied = |n: u64| {
            let mut s = slot(n);
            s.set(VACATED, true);
            s
        };
        let mut slots: Slots = (0..CHUNK as u64 - 1).map(emptied).collect();
        assert_eq!(slots.given_back(), 0);
        assert_eq!(slots[3].id, SlotId::EMPTIED);
        assert!(!slots[3].has(HELD));
        slots.push(emptied(CHUNK as u64 - 1));
        assert_eq!(slots.given_back(), 1);
        slots.push(slot(CHUNK as u64));
        assert_eq!(slots[CHUNK].seq, CHUNK as u64);
        assert_eq!(slots.next_kept(0), CHUNK);
    }
}
