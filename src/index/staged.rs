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
}

impl Index {
    /// Stages what the restores that follow add to people's lists, until
    /// [`Index::finish_start`] (see the module's documentation); `about`
    /// is how many interactions are coming.
    pub fn begin_start(&mut self, about: usize) {
        let mut staged = Staged::default();
        staged.entries.reserve(about);
        staged.records.reserve(about);
        self.staged = Some(staged);
    }

    /// Gives every person what was staged for them, in lists of exactly
    /// their size, and stages no more.
    pub fn finish_start(&mut self) {
        self.give_staged();
        self.staged = None;
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
