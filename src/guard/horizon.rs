//! What leaves memory while the server serves: interactions that fall
//! beyond the counting horizon, once the store (following the journal)
//! holds their latest state. A start does the same for what it reads
//! ([`Guard::open`]); this keeps memory bounded by the horizon between
//! starts too.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::{Guard, GuardError};
use crate::index::LetGo;

/// How many interaction slots [`Guard::let_go`] walks per hold of the
/// write lock (see `benches/decide.rs`, `let-go/walk-one-part`, for what a
/// part costs).
pub const LET_GO_PART: usize = 65_536;

/// How long an interaction's full record stays in memory after it
/// happens (a day), once the store holds it: a recent interaction is the
/// one most likely to be read or changed (a call's status when it ends),
/// and a change to one let go first reads it back from the store. Older
/// ones in the horizon keep only their slot and counting entry
/// ([`crate::index::Index::let_go_in`]).
pub const WHOLE_FOR_SECONDS: i64 = 86_400;

/// What may be let go at `now` (Unix seconds): the full records of
/// interactions that happened more than [`WHOLE_FOR_SECONDS`] before it.
/// The one rule for the minute's walk, a start and a materialization.
pub(super) fn let_go_at(now: i64) -> LetGo {
    LetGo {
        before: now.saturating_sub(WHOLE_FOR_SECONDS),
    }
}

/// Where the store stands against the journal ([`Guard::store_follow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Following {
    /// The journal position the store holds (committed; see
    /// [`crate::store::Follower::position`]).
    pub position: crate::journal::Position,
    /// Journal frames appended that the store does not hold yet.
    pub behind: u64,
    /// The store failed to apply the journal and follows it no more.
    pub failed: bool,
}

impl Guard {
    /// Where the store stands against the journal; `None` when it does
    /// not follow the journal (in memory only, or opened with
    /// [`Guard::open_as`] with [`crate::guard::Follow::Off`]).
    pub fn store_follow(&self) -> Option<Following> {
        let (journal, follower) = (self.journal.as_ref()?, self.follower.as_ref()?);
        // The follower first: a frame appended in between counts as behind.
        let applied = follower.applied();
        let position = follower.position();
        Some(Following {
            position,
            behind: journal.last_seq().saturating_sub(applied),
            failed: follower.failed(),
        })
    }

    /// Lets go of the interactions that happen more than the horizon and
    /// a day before `now`: their records, ids and counting entries leave
    /// memory (no Check reads them: every window ends inside the horizon),
    /// and reads find them in the store. Kept: those with an open
    /// reservation, and those changed in a journal frame the store has not
    /// applied yet. Does nothing without a store, or once the store has
    /// failed to follow the journal. Returns how many left memory.
    ///
    /// Walks the interactions in memory [`LET_GO_PART`] at a time under
    /// the write lock, letting it go in between: the server runs it once
    /// a minute ([`crate::server`]).
    pub fn let_go(&self, now: DateTime<Utc>) -> Result<usize, GuardError> {
        let Some(follower) = &self.follower else {
            return Ok(0);
        };
        if follower.failed() {
            return Ok(0);
        }
        // Read before the lock: every change at or before it is on disk.
        let applied = follower.applied();
        let mut moved = 0;
        let mut start = 0;
        let mut given_back = None;
        loop {
            // A part at a time, the lock let go in between: a Check waits
            // for one part at most.
            let mut ledger = self.write()?;
            let given_back = *given_back.get_or_insert(ledger.index.chunks_given_back());
            let slots = ledger.index.slots();
            if start >= slots {
                let chunks = ledger.index.chunks_given_back().saturating_sub(given_back);
                drop(ledger);
                if chunks > 0 {
                    // The allocator keeps what was freed in its arenas
                    // (a chunk is below glibc's threshold for a mapping
                    // of its own once one was freed): returned here, off
                    // the lock.
                    super::os::give_back_freed_memory();
                    tracing::info!(
                        chunks,
                        bytes = chunks * crate::index::SLOT_CHUNK_BYTES,
                        "memory of slots emptied by the horizon given back"
                    );
                }
                return Ok(moved);
            }
            let horizon = i64::from(ledger.index.config().horizon_days) + 1;
            let cutoff = now.timestamp().saturating_sub(horizon * 86_400);
            let reserved = ledger.reservations().clone();
            let end = start.saturating_add(LET_GO_PART).min(slots);
            let mut chats = Vec::new();
            let let_go = let_go_at(now.timestamp());
            let here = ledger.index.let_go_in(
                start..end,
                cutoff,
                applied,
                let_go,
                |id| reserved.contains_key(id),
                |id| chats.push(id),
            );
            if here > 0 || ledger.index.on_disk() > 0 {
                // What a Check reads starts at the cutoff from now on,
                // before the lock is let go; never earlier than before.
                let from = ledger.index.held_from().max(cutoff);
                ledger.index.set_held_from(from);
                self.memory_from.fetch_max(from, Ordering::SeqCst);
            }
            // Their conversations leave memory with them.
            ledger.forget_convos_of(&chats);
            moved += here;
            start = end;
        }
    }
}
