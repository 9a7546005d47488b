//! A start's people, given their lists at once.
//!
//! A start restores millions of interactions in creation order, each
//! adding a counting entry and a key to its person's lists. Grown one at
//! a time, each list is copied several times on the way (a borrower's
//! ten entries made seven allocations) and keeps up to a quarter (the
//! entries) or a half (the keys) of its last growth unused, a pattern the
//! allocator then cannot hand back.
//!
//! Between [`Index::begin_start`] and [`Index::finish_start`], what a
//! start restores is staged instead: each entry and key beside its
//! person's number, in two lists that grow by doubling (one allocation
//! each, given back whole). [`Index::finish_start`] then gives every
//! person lists of exactly their size, in the order
//! [`super::entry::insert_sorted`] and a push would have left: the state
//! is the same; only its allocations differ.
//!
//! A start also settles the interaction id counter once, at its end
//! ([`IdRun`]): stored one at a time, each generated id looked up the id
//! after it (a miss into a table of millions, a tenth of a start's time).
//!
//! While anything is staged, a person's lists are incomplete: nothing
//! may read them. A start reads none (it only adds), and a restore that
//! replaces an interaction already in memory gives what is staged first
//! ([`Index::give_staged`]).

use super::{Entry, Index, InteractionKey, PersonKey};

/// What a start has restored and not yet given to its people.
#[derive(Debug, Default)]
pub(super) struct Staged {
    entries: Vec<(PersonKey, Entry)>,
    records: Vec<(PersonKey, InteractionKey)>,
    ids: IdRun,
}

/// The generated interaction ids a start stored after the counter it
/// began with: one bit each, so that [`Index::finish_start`] moves the
/// counter over the run they make with one pass, where
/// [`Index::advance_counter`] would look up the next id after every one.
/// The counter it leaves is the one the id-by-id path leaves (the
/// longest run of taken ids after it, or more where the counter was moved
/// past it meanwhile): the bits only say how far to go before looking.
#[derive(Debug, Default)]
pub(super) struct IdRun {
    /// The counter when the start began.
    base: u64,
    /// Bit `i` (of word `i / 64`): generated number `base + 1 + i` stored.
    bits: Vec<u64>,
    /// The most bits kept: a run is never longer than what the start
    /// restores, and an id far past it (a caller may choose one that
    /// looks generated) must not make a large set.
    cap: u64,
}

impl IdRun {
    fn new(base: u64, about: usize) -> IdRun {
        let cap = (about as u64).saturating_add(1024);
        IdRun {
            base,
            bits: Vec::with_capacity(usize::try_from(cap / 64 + 1).unwrap_or(0)),
            cap,
        }
    }

    /// Notes generated number `n` stored.
    fn note(&mut self, n: u64) {
        let Some(i) = n.checked_sub(self.base.saturating_add(1)) else {
            return;
        };
        if i >= self.cap {
            return;
        }
        let (word, bit) = ((i / 64) as usize, i % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    /// The counter after the run of numbers noted from `base + 1` on.
    fn end(&self) -> u64 {
        let mut n = self.base;
        for &w in &self.bits {
            let ones = u64::from(w.trailing_ones());
            n += ones;
            if ones < 64 {
                break;
            }
        }
        n
    }
}

impl Index {
    /// Stages what the restores that follow add to people's lists, until
    /// [`Index::finish_start`] (see the module's documentation); `about`
    /// is how many interactions are coming.
    pub fn begin_start(&mut self, about: usize) {
        let mut staged = Staged::default();
        staged.entries.reserve(about);
        staged.records.reserve(about);
        staged.ids = IdRun::new(self.next_interaction, about);
        self.staged = Some(staged);
    }

    /// Gives every person what was staged for them, in lists of exactly
    /// their size, and stages no more.
    pub fn finish_start(&mut self) {
        self.give_staged();
        if let Some(staged) = self.staged.take() {
            self.settle_counter(staged.ids.end());
        }
    }

    /// Notes, while a start stages, a generated interaction id just
    /// stored: `true` if it was noted (the counter moves at the start's
    /// end, [`Index::finish_start`]), `false` if nothing is staged.
    pub(super) fn note_staged_id(&mut self, n: Option<u64>) -> bool {
        match self.staged.as_mut() {
            Some(s) => {
                if let Some(n) = n {
                    s.ids.note(n);
                }
                true
            }
            None => false,
        }
    }

    /// Adds `entry` to person `p`'s counting entries, or stages it.
    pub(super) fn put_entry(&mut self, p: PersonKey, entry: Entry) {
        match self.staged.as_mut() {
            Some(s) => s.entries.push((p, entry)),
            None => {
                if let Some(person) = self.people.get_mut(p.0 as usize) {
                    super::entry::insert_sorted(&mut person.entries, entry);
                }
            }
        }
    }

    /// Adds `key` to person `p`'s interactions, or stages it.
    pub(super) fn put_record(&mut self, p: PersonKey, key: InteractionKey) {
        match self.staged.as_mut() {
            Some(s) => s.records.push((p, key)),
            None => {
                if let Some(person) = self.people.get_mut(p.0 as usize) {
                    person.records.push(key);
                }
            }
        }
    }

    /// Gives every person what is staged for them (and goes on staging,
    /// if it was).
    pub(super) fn give_staged(&mut self) {
        let Some(staged) = self.staged.as_mut() else {
            return;
        };
        let entries = std::mem::take(&mut staged.entries);
        let records = std::mem::take(&mut staged.records);
        let people = &mut self.people;
        give(people, entries, |p| &mut p.entries, |e| (e.at, e.key));
        give(people, records, |p| &mut p.records, |k| *k);
    }
}

/// Appends each staged item to its person's list, each list grown once
/// to exactly its new size, then puts in order the lists that are not.
fn give<T, K: Ord>(
    people: &mut [super::Person],
    items: Vec<(PersonKey, T)>,
    list: impl Fn(&mut super::Person) -> &mut Vec<T>,
    order: impl Fn(&T) -> K + Copy,
) {
    if items.is_empty() {
        return;
    }
    let mut counts = vec![0u32; people.len()];
    for (p, _) in &items {
        if let Some(c) = counts.get_mut(p.0 as usize) {
            *c += 1;
        }
    }
    for (person, &c) in people.iter_mut().zip(&counts) {
        if c > 0 {
            list(person).reserve_exact(c as usize);
        }
    }
    for (p, item) in items {
        if let Some(person) = people.get_mut(p.0 as usize) {
            list(person).push(item);
        }
    }
    for (person, &c) in people.iter_mut().zip(&counts) {
        let l = list(person);
        if c > 0 && !l.is_sorted_by_key(order) {
            l.sort_unstable_by_key(order);
        }
    }
}
