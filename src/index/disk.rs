//! What the index keeps of interactions on disk only (beyond the
//! horizon, in the store): a count and the largest generated id, and the
//! moves between memory and disk. The history held whole in memory, and
//! what a Check may read of it.

use super::{
    Entry, FROM_DISK, HELD, Index, IndexError, Interaction, InteractionKey, LetGo, PENDING,
    RECALLED, SPARED, Status, VACATED, generated_number,
};

impl Index {
    /// How many interactions are on disk only.
    pub fn on_disk(&self) -> usize {
        self.on_disk
    }

    /// Sets the time from which the history is held whole in memory (see
    /// [`Index::held_from`]): what a start left on disk is before it.
    pub fn set_held_from(&mut self, t: i64) {
        self.held_from = t;
    }

    /// The time (Unix seconds) from which the history is held whole in
    /// memory; `i64::MIN` when all of it is.
    pub fn held_from(&self) -> i64 {
        self.held_from
    }

    /// The counting entry of an interaction a Check may read: live (a
    /// deleted one has none), from the history held whole (see
    /// [`Index::held_from`]), and not brought back from disk. What a Check
    /// reads of an interaction it names (a message it answers) is this
    /// entry, never the full record, which need not be in memory.
    pub(super) fn held(&self, k: InteractionKey) -> Option<&Entry> {
        let slot = self.records.get(k.slot())?;
        if slot.has(FROM_DISK) || slot.at < self.held_from {
            return None;
        }
        let entries = &self.people.get(slot.person.0 as usize)?.entries;
        let pos = entries.partition_point(|e| (e.at, e.key) < (slot.at, k));
        entries.get(pos).filter(|e| e.key == k)
    }

    /// True if an interaction in memory has our id `id`, whole or as its
    /// slot only ([`Index::holds`] tells them apart).
    pub fn knows(&self, id: &str) -> bool {
        self.key_of_id(id).is_some()
    }

    /// Counts the interactions whose records stay on disk (they left the
    /// horizon, so no Check reads them), and nothing else of them stays in
    /// memory: `count` of them, `next_seq` the place in creation order
    /// after all of them, `largest_id` the largest id of the generated
    /// shape among them (generated ids go on after it). Which people have
    /// some is learnt when it matters ([`Index::note_records_on_disk`]).
    pub fn restore_on_disk(&mut self, count: u64, next_seq: u64, largest_id: Option<&str>) {
        self.on_disk += usize::try_from(count).unwrap_or(usize::MAX);
        self.next_seq = self.next_seq.max(next_seq);
        if let Some(n) = largest_id.and_then(|id| generated_number("IT", id)) {
            self.next_interaction = self.next_interaction.max(n);
            self.max_on_disk_generated = self.max_on_disk_generated.max(n);
        }
    }

    /// Notes that the person `name` names has interactions on disk only:
    /// a link then treats it as a person with records.
    pub fn note_records_on_disk(&mut self, name: &str) {
        if let Ok(Some(p)) = self.find_person(name) {
            self.people[p.0 as usize].records_on_disk = true;
        }
    }

    /// Our ids (the person's own and its aliases) under which `name`'s
    /// interactions may be recorded.
    pub fn person_names_of(&self, name: &str) -> Vec<String> {
        match self.find_person(name) {
            Ok(Some(p)) => {
                let person = &self.people[p.0 as usize];
                std::iter::once(person.id.to_string())
                    .chain(person.more().aliases.iter().cloned())
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// True if the interaction with our id `id` is in memory because a
    /// read or write brought it back from disk: what goes with it (its
    /// conversation) may still be on disk only.
    pub fn came_from_disk(&self, id: &str) -> bool {
        self.key_of_id(id)
            .and_then(|k| self.records.get(k.slot()))
            .is_some_and(|s| s.has(FROM_DISK))
    }

    /// True if the interaction `any_id` names (our id or
    /// `ext-<externalId>`) was brought back from disk and spared by a walk
    /// already: the next walk would let it go ([`Index::renew`]).
    pub fn spared(&self, any_id: &str) -> bool {
        self.slot_of(any_id)
            .is_some_and(|s| (s.has(FROM_DISK) || s.has(RECALLED)) && s.has(SPARED))
    }

    /// Keeps a brought-back interaction in memory for one more walk of
    /// [`Index::let_go_in`]: a write is about to plan from it (a create
    /// checks the `externalId` or `id` it holds), and must find it.
    pub fn renew(&mut self, any_id: &str) {
        let key = self.find_interaction(any_id).ok().flatten();
        if let Some(slot) = key.and_then(|k| self.records.get_mut(k.slot())) {
            slot.set(SPARED, false);
        }
    }

    /// True if `any_id` (our id or `ext-<externalId>`) names an
    /// interaction in the horizon whose full record was let go: its slot
    /// is here, its record in the store ([`Index::load_from_disk`] brings
    /// it back).
    pub fn is_let_go(&self, any_id: &str) -> bool {
        self.slot_of(any_id)
            .is_some_and(|s| !s.has(HELD) && !s.has(VACATED))
    }

    fn slot_of(&self, any_id: &str) -> Option<&super::Slot> {
        let key = self.find_interaction(any_id).ok().flatten()?;
        self.records.get(key.slot())
    }

    /// True if the full record of the interaction with our id `id` may be
    /// on disk only: it is let go in the horizon, or none in memory has it,
    /// some are on disk, and it is not a generated id newer than all of
    /// those.
    pub fn may_be_on_disk(&self, id: &str) -> bool {
        match self.key_of_id(id) {
            Some(k) => self.hot(k).is_none(),
            None => {
                self.on_disk > 0
                    && generated_number("IT", id).is_none_or(|n| n <= self.max_on_disk_generated)
            }
        }
    }

    /// Sets the place in creation order of the next interaction restored:
    /// the store's `seq` of the record about to be applied.
    pub fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }

    /// The place in creation order the next new interaction takes: the
    /// store's next `seq` once it holds every change, which an index
    /// checkpoint is checked against.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Puts an interaction on disk only back in memory, as read from the
    /// store with its place `seq`: a write to it plans from it. Its
    /// counting entry comes back too (outside every window while it is
    /// beyond the horizon). One let go in the horizon gets its full record
    /// back in its slot (its entry never left); one in memory whole is left
    /// as it is.
    pub fn load_from_disk(&mut self, record: Interaction, seq: u64) -> Result<(), IndexError> {
        if let Some(k) = self.key_of_id(&record.id) {
            // Let go in the horizon: the store's row is its latest state
            // (it was let go only once the store held that), and its
            // names, entry and place are still here.
            if let Some(slot) = self.records.get_mut(k.slot())
                && !slot.has(HELD)
                && !slot.has(VACATED)
            {
                slot.set(RECALLED, true);
                slot.set(SPARED, false);
                self.hold(k, record);
                self.let_go = self.let_go.saturating_sub(1);
            }
            return Ok(());
        }
        let next = self.next_seq;
        self.next_seq = seq;
        let id = record.id.clone();
        let restored = self.restore_interaction(record).map(|_| ());
        self.next_seq = next.max(seq.saturating_add(1));
        restored?;
        if let Some(slot) = self
            .key_of_id(&id)
            .and_then(|k| self.records.get_mut(k.slot()))
        {
            slot.set(FROM_DISK, true);
        }
        self.on_disk = self.on_disk.saturating_sub(1);
        Ok(())
    }

    /// Notes the journal frame the changes about to be applied travel in
    /// (the writer's [`crate::journal::Commit::seq`]): an interaction they
    /// change stays in memory until the store holds that frame
    /// ([`Index::move_to_disk`]). 0 (what a start applies): the store has
    /// it.
    pub fn set_frame(&mut self, frame: u64) {
        self.frame = frame;
    }

    /// The journal frame the changes being applied travel in (see
    /// [`Index::set_frame`]).
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Marks an interaction as changed in the current frame (a change
    /// that travels apart from its record, its conversation's): it stays
    /// in memory until the store holds that frame.
    pub fn touch_frame(&mut self, id: &str) {
        if let Some(k) = self.key_of_id(id) {
            let frame = self.frame.max(self.frame_of(k));
            self.put_frame(k, frame);
        }
    }

    /// Moves the interactions that happen before `cutoff` (Unix seconds)
    /// out of memory, except those `keep` names by id and those changed
    /// in a journal frame after `applied` (the store does not hold their
    /// latest state yet): their records, counting entries, ids and audio
    /// leave memory, and they are counted as on disk only. Returns how
    /// many.
    ///
    /// With `let_go`, the full records in the horizon that
    /// [`Index::let_go_in`] would let go leave memory too.
    pub fn move_to_disk(
        &mut self,
        cutoff: i64,
        applied: u64,
        let_go: Option<LetGo>,
        keep: impl Fn(&str) -> bool,
    ) -> usize {
        let all = 0..self.records.len();
        let walk = Walk {
            cutoff,
            applied,
            let_go,
            spare_brought_back: false,
        };
        self.move_out(all, walk, keep, &mut |_| {})
    }

    /// How many interaction slots memory holds (in memory, and emptied by
    /// [`Index::move_to_disk`]): the range [`Index::let_go_in`] walks.
    pub fn slots(&self) -> usize {
        self.records.len()
    }

    /// How many chunks of emptied slots memory has given back to the
    /// allocator since the index was made (a chunk goes once its every
    /// slot is emptied: see `chunks.rs`): a walk that gave some back asks
    /// the allocator to return them to the system.
    pub fn chunks_given_back(&self) -> u64 {
        self.records.given_back()
    }

    /// [`Index::move_to_disk`] while serving, for the interactions in a
    /// range of slots (see [`Index::slots`]), so that a caller can walk
    /// them a part at a time and let others in between; `moved_out` sees
    /// each record that leaves (what goes with it leaves too). An
    /// interaction a write brought back from disk is spared by one walk
    /// and let go by the next: the write that brought it back may not
    /// have planned from it yet, and a plan that finds it gone again reads
    /// it back.
    ///
    /// In the horizon, the full record of an interaction that happens
    /// before `let_go.before` leaves memory once the store holds its
    /// latest state, unless it is deleted, in progress (a reservation's,
    /// which reads it while open), holds audio or `keep` names it:
    /// its slot, names and counting entry stay, which is all a Check
    /// reads. A read or write of it reads the store
    /// ([`IndexError::OnDisk`], [`Index::load_from_disk`]).
    pub fn let_go_in(
        &mut self,
        slots: std::ops::Range<usize>,
        cutoff: i64,
        applied: u64,
        let_go: LetGo,
        keep: impl Fn(&str) -> bool,
        mut moved_out: impl FnMut(String),
    ) -> usize {
        let walk = Walk {
            cutoff,
            applied,
            let_go: Some(let_go),
            spare_brought_back: true,
        };
        self.move_out(slots, walk, keep, &mut moved_out)
    }

    fn move_out(
        &mut self,
        slots: std::ops::Range<usize>,
        walk: Walk,
        keep: impl Fn(&str) -> bool,
        moved_out: &mut impl FnMut(String),
    ) -> usize {
        let Walk { cutoff, let_go, .. } = walk;
        let mut moved: std::collections::HashSet<InteractionKey, foldhash::fast::RandomState> =
            Default::default();
        let mut people = Vec::new();
        let end = slots.end.min(self.records.len());
        let mut next = slots.start.min(end);
        let mut todo = Vec::new();
        // A run of slots in one chunk at a time (chunks given back passed
        // over whole), and in it first the slots there is something to do
        // with, read in one pass: most are let go in the horizon and left
        // as they are.
        while let Some((from, run)) = self.records.kept_run(next, end) {
            next = from + run.len();
            todo.clear();
            todo.extend(
                (from..next)
                    .zip(run)
                    .filter(|(_, s)| !idle(s, cutoff, let_go.is_some()))
                    .map(|(i, _)| i),
            );
            for &i in &todo {
                self.move_out_one(i, walk, &keep, moved_out, &mut moved, &mut people);
            }
        }
        // Each person's lists once, whatever how many of its interactions
        // moved.
        people.sort_unstable();
        people.dedup();
        for p in people {
            let person = &mut self.people[p.0 as usize];
            person.entries.retain(|e| !moved.contains(&e.key));
            person.records.retain(|k| !moved.contains(k));
            person.interactions = u32::try_from(person.records.len()).unwrap_or(u32::MAX);
            person.records_on_disk = true;
        }
        if !moved.is_empty() {
            self.epoch += 1;
        }
        // A burst of writes leaves the frames' table large once the store
        // holds them: give back what is far beyond what it holds now.
        if self.pending.capacity() > 4 * self.pending.len() + 1024 {
            self.pending.shrink_to(2 * self.pending.len());
        }
        self.on_disk += moved.len();
        self.vacated += moved.len();
        moved.len()
    }

    /// [`Index::move_out`] for slot `i`: what the walk does with it (see
    /// [`idle`] for the slots it passes over without a call).
    fn move_out_one(
        &mut self,
        i: usize,
        walk: Walk,
        keep: &impl Fn(&str) -> bool,
        moved_out: &mut impl FnMut(String),
        moved: &mut std::collections::HashSet<InteractionKey, foldhash::fast::RandomState>,
        people: &mut Vec<super::PersonKey>,
    ) {
        let Walk {
            cutoff,
            applied,
            let_go,
            spare_brought_back,
        } = walk;
        let key = InteractionKey::of_slot(i);
        let slot = &self.records[i];
        if slot.has(VACATED) {
            return;
        }
        if slot.has(PENDING) {
            // Its latest change: once the store holds it, the slot
            // need not remember it.
            if self.frame_of(key) > applied {
                return;
            }
            self.put_frame(key, 0);
        }
        let slot = &self.records[i];
        // A record in the horizon: let go once the store holds it,
        // its slot and counting entry staying.
        if slot.at >= cutoff {
            // Looked up only for the few held whole.
            let whole = if slot.has(HELD) { self.hot(key) } else { None };
            if let (Some(r), Some(l)) = (whole, let_go)
                && may_let_go(r, slot.at, l)
                && !slot.has(FROM_DISK)
                && !keep(&r.id)
                && let Some(slot) = self.records.get_mut(i)
            {
                if spare_brought_back && slot.has(RECALLED) && !slot.has(SPARED) {
                    slot.set(SPARED, true);
                } else {
                    slot.set(RECALLED, false);
                    slot.set(SPARED, false);
                    self.unhold(key);
                    self.let_go += 1;
                    self.epoch += 1;
                }
            }
            return;
        }
        let id = slot.id.to_text(key, &self.given_ids);
        if keep(&id) {
            return;
        }
        let Some(slot) = self.records.get_mut(i) else {
            return;
        };
        if spare_brought_back && (slot.has(FROM_DISK) || slot.has(RECALLED)) && !slot.has(SPARED) {
            slot.set(SPARED, true);
            return;
        }
        let p = slot.person;
        match self.unhold(key) {
            Some(r) => {
                for m in [&r.recording, &r.voicemail].into_iter().flatten() {
                    self.media_files.remove(&m.storage_key);
                }
            }
            None => self.let_go = self.let_go.saturating_sub(1),
        }
        self.unname(key);
        // A new generated id never takes one of these.
        if let Some(n) = self.records[i].id.generated() {
            self.max_on_disk_generated = self.max_on_disk_generated.max(n);
            self.next_interaction = self.next_interaction.max(n);
        }
        // The names leave memory with the record; a chunk whose every
        // slot is emptied is given back.
        self.given_ids.remove(&key);
        self.records.vacate(i);
        moved_out(id);
        moved.insert(key);
        people.push(p);
    }

    /// [`Index::let_go_in`]'s rule for the interaction restored last (a
    /// start reading the store, which holds it): its full record leaves
    /// memory if the walk would let it go.
    pub fn let_go_newest(&mut self, let_go: LetGo) {
        let Some(last) = self.records.len().checked_sub(1) else {
            return;
        };
        let newest = last..last + 1;
        let walk = Walk {
            cutoff: i64::MIN,
            applied: 0,
            let_go: Some(let_go),
            spare_brought_back: false,
        };
        self.move_out(newest, walk, |_| false, &mut |_| {});
    }

    /// A number that moves on each time full records leave memory (let go
    /// in the horizon, or moved to disk): a reader that read the store
    /// without the lock, and finds it unchanged under the lock, knows that
    /// every record memory does not hold whole was in the store when it
    /// read.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many interactions in the horizon are in memory as their slot
    /// and counting entry only, their full records let go to the store
    /// ([`Index::let_go_in`]).
    pub fn let_go_count(&self) -> usize {
        self.let_go
    }

    /// True if the interaction with our id `id` is in memory whole (its
    /// full record, not only its slot): the store's row for another name
    /// of it may be stale, while the store's row of one let go is its
    /// latest state.
    pub fn holds(&self, id: &str) -> bool {
        self.key_of_id(id)
            .and_then(|k| self.records.get(k.slot()))
            .is_some_and(|s| s.has(HELD))
    }
}

/// The walk's rule for a record in the horizon that happens at `at`
/// (its counting entry's time), once the store holds its latest state:
/// its full record may leave memory unless it happens after
/// `let_go.before`, is deleted, in progress (a reservation's, which reads
/// it while open) or holds audio. A start's reading thread applies it too
/// ([`super::Lean::of`]), so that what a start lets go as it reads is
/// what the walk would.
pub(super) fn may_let_go(r: &Interaction, at: i64, let_go: LetGo) -> bool {
    at < let_go.before
        && r.deleted_at.is_none()
        && r.status != Status::InProgress
        && r.recording.is_none()
        && r.voicemail.is_none()
}

/// True when [`Index::move_out`] has nothing to do with a slot, read
/// without a lookup: emptied, or in the horizon with no change the store
/// may not hold yet, and either not held whole or in a walk that lets go
/// of no full record. Most slots of a walk are, their full records let go.
fn idle(s: &super::Slot, cutoff: i64, lets_go: bool) -> bool {
    s.has(VACATED) || (!s.has(PENDING) && s.at >= cutoff && (!s.has(HELD) || !lets_go))
}

/// What one walk of [`Index::move_out`] moves and lets go.
#[derive(Debug, Clone, Copy)]
struct Walk {
    /// Interactions before it (Unix seconds) leave memory whole.
    cutoff: i64,
    /// The journal frame the store holds: one changed later stays.
    applied: u64,
    /// Inside the horizon, which full records are let go (none: `None`).
    let_go: Option<LetGo>,
    /// One brought back by a read or write is spared by one walk.
    spare_brought_back: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InteractionInput;
    use chrono::{DateTime, Utc};

    /// A record whose latest change travels in a journal frame the store
    /// does not hold yet stays whole, through a later change of its
    /// conversation too ([`Index::touch_frame`]); once the store holds
    /// that frame, the walk lets it go and forgets the frame.
    #[test]
    fn a_record_stays_whole_until_the_store_holds_its_latest_frame() {
        let now: DateTime<Utc> = "2020-05-01T00:00:00Z".parse().unwrap();
        let mut index = Index::default();
        index.set_frame(7);
        let input = InteractionInput {
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            started_at: Some("2020-04-01T14:00:00Z".into()),
            ..InteractionInput::default()
        };
        let id = index
            .create("BO-0000-00000042", &input, now)
            .unwrap()
            .id
            .clone();
        index.set_frame(0);
        let let_go = LetGo {
            before: now.timestamp(),
        };
        let walk = |index: &mut Index, applied: u64| {
            let slots = 0..index.slots();
            index.let_go_in(slots, i64::MIN, applied, let_go, |_| false, |_| {});
        };
        walk(&mut index, 6);
        assert!(index.holds(&id), "frame 7 is not in the store");
        index.set_frame(9);
        index.touch_frame(&id);
        index.set_frame(0);
        walk(&mut index, 8);
        assert!(index.holds(&id), "frame 9 is not in the store");
        assert_eq!(index.pending.len(), 1);
        walk(&mut index, 9);
        assert!(!index.holds(&id));
        assert!(index.is_let_go(&id));
        assert_eq!(index.let_go_count(), 1);
        assert!(index.pending.is_empty(), "the frame is forgotten");
        assert!(index.whole.is_empty());
        // A change that travels apart from the record (its conversation's)
        // to one let go: its frame is forgotten too, once the store holds
        // it, though nothing of it is held whole.
        index.set_frame(11);
        index.touch_frame(&id);
        index.set_frame(0);
        walk(&mut index, 10);
        assert_eq!(index.pending.len(), 1);
        walk(&mut index, 11);
        assert!(
            index.pending.is_empty(),
            "the let-go one's frame is forgotten"
        );
        assert!(index.is_let_go(&id));
        // A burst of writes: once the store holds them, the frames' table
        // gives its room back.
        index.set_frame(10);
        for _ in 0..5_000 {
            index.create("BO-0000-00000042", &input, now).unwrap();
        }
        index.set_frame(0);
        assert_eq!(index.pending.len(), 5_000);
        walk(&mut index, 10);
        assert!(index.pending.is_empty());
        assert!(
            index.pending.capacity() < 5_000,
            "{}",
            index.pending.capacity()
        );
    }
}
