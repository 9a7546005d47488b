//! The store following the journal while the server serves: every batch
//! the journal's writer made durable is applied to the store in order,
//! with the position it reaches, in one transaction ([`Follower`]); once
//! the journal rolls and the store holds the generation before, that
//! journal is deleted. So the journal stays short, a start replays only
//! what the store had not applied yet, and what memory lets go of
//! ([`Follower::applied`]) is on disk.
//!
//! The journal stays the source of truth: the store never holds a record
//! the journal does not hold durably, and a store that fails to follow
//! changes no answer (the journal keeps everything; the next start
//! applies it, or says why it cannot).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Store;
use crate::journal::{
    self as jn, Durability, JournalError, Layout, Position, Tap, Tapped, unframe,
};

/// How many batches the writer may hand on before it waits for the store.
pub const TAP_BATCHES: usize = 4096;
/// At most this many batches go into one store transaction.
const BATCHES_PER_COMMIT: usize = 4096;
/// How long the follower gathers batches into one transaction: the store
/// lags the journal by about this much under load.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(1000);

/// What the follower has done, shared with the guard and metrics.
#[derive(Debug, Default)]
struct Shared {
    /// The [`jn::Commit::seq`] of the last frame the store holds.
    applied: AtomicU64,
    /// The store's position.
    position: Mutex<Position>,
    /// Set when the store failed to apply: it follows no more until the
    /// next start.
    failed: AtomicBool,
    /// The journal generation from which journals are kept although the
    /// store holds them: the index checkpoint's, which a start after a
    /// crash replays the journal from (`u64::MAX`: none).
    keep_from: AtomicU64,
    /// The index checkpoint's file, removed once the journal after it
    /// grew past [`KEPT_FOR_CHECKPOINT`] generations.
    checkpoint: Option<std::path::PathBuf>,
    /// The journal generation from which journals are kept for a
    /// checkpoint being built from the store while serving
    /// ([`Checkpoints::pin`]; `u64::MAX`: none).
    pinned: AtomicU64,
    /// Held while a batch is applied: what holds it sees the store
    /// unchanged ([`Checkpoints::hold`]).
    gate: Mutex<()>,
    /// The times SQLite's log started again ([`Checkpoints::log_restarts`]).
    log_restarts: Arc<AtomicU64>,
}

/// How many generations past the index checkpoint's the journal is kept
/// for it: past them, unless a new checkpoint is being built
/// ([`Checkpoints::pin`]), the checkpoint is removed (a start after a
/// crash rebuilds from the store) and the journal is deleted as the store
/// takes it. With `--compact-after` 1,000,000, and a checkpoint built
/// within a generation, a start after a crash replays at most about two
/// million records.
pub const KEPT_FOR_CHECKPOINT: u64 = 1;

/// The thread that applies the journal to the store while serving.
#[derive(Debug)]
pub struct Follower {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The follower's end of the journal's [`Tap`], before it starts.
#[derive(Debug)]
pub struct Handed(Receiver<Tapped>);

impl Follower {
    /// The channel between the journal's writer and the follower: the
    /// [`Tap`] to open the journal with (its open generation holds
    /// `frames` frames; it rolls after `roll_after`, 0: never), and the
    /// end [`Follower::start`] takes.
    pub fn channel(frames: u64, roll_after: u64) -> (Handed, Tap) {
        let (to, from) = std::sync::mpsc::sync_channel(TAP_BATCHES);
        (
            Handed(from),
            Tap {
                to,
                frames,
                roll_after,
            },
        )
    }

    /// Starts following: `store` is at `at`, the end of the journal as it
    /// opened (a start applies the tail first). `checkpoint` is the index
    /// checkpoint's file, if the guard writes one; with `keep_from`, the
    /// journals from that generation on are kept although the store
    /// holds them, for the checkpoint made there (see
    /// [`KEPT_FOR_CHECKPOINT`]).
    pub fn start(
        mut store: Store,
        layout: Layout,
        at: Position,
        durability: Durability,
        handed: Handed,
        checkpoint: Option<std::path::PathBuf>,
        keep_from: Option<u64>,
    ) -> Result<Follower, JournalError> {
        // What a start read or wrote on this connection (its counts over
        // the time index and the people, the records it read beside a
        // checkpoint, what it materialized) is mostly not what the
        // follower's writes touch: after a start that rebuilt memory at N
        // = 1 M its cache held 25 MB of the count's pages. The cache fills
        // again, up to its cap, with the pages the writes need.
        if let Err(e) = store.release_cache() {
            tracing::warn!(error = %e, "the store's page cache could not be freed after the start; it is used as it is");
        }
        let shared = Arc::new(Shared {
            position: Mutex::new(at),
            keep_from: AtomicU64::new(keep_from.unwrap_or(u64::MAX)),
            checkpoint,
            pinned: AtomicU64::new(u64::MAX),
            ..Shared::default()
        });
        let theirs = Arc::clone(&shared);
        let path = store.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("store-follower".into())
            .spawn(move || follow(&mut store, &layout, durability, &handed.0, &theirs))
            .map_err(|cause| JournalError::Io {
                action: "starting the store's follower thread for",
                path,
                cause,
            })?;
        Ok(Follower {
            shared,
            thread: Some(thread),
        })
    }

    /// The [`jn::Commit::seq`] of the last frame the store holds
    /// (committed and readable by every connection; a power cut may take
    /// the last commits back, and the journal, which still holds them,
    /// gives them again at the next start): a change whose commit is at or
    /// before it can be read from the store.
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    /// The journal position the store holds.
    pub fn position(&self) -> Position {
        self.shared.position.lock().map(|p| *p).unwrap_or_default()
    }

    /// True once the store failed to apply a batch: it follows no more
    /// until the next start, and memory lets nothing more go.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// What a checkpoint built while serving needs of the follower
    /// ([`Checkpoints`]), for a thread beside it.
    pub fn checkpoints(&self) -> Checkpoints {
        Checkpoints(Arc::clone(&self.shared))
    }

    /// Waits for the follower to apply everything the writer handed on;
    /// it ends once the journal has closed. Returns the position the
    /// store then holds, or `None` if it failed to apply a batch (the
    /// store is behind the journal).
    pub fn finish(mut self) -> Option<Position> {
        self.join();
        (!self.failed()).then(|| self.position())
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The follower's side of an index checkpoint built from the store while
/// serving (the guard's `rebase`): the store held still while a reader
/// takes its state, the journal from that state's position kept while
/// the checkpoint is built, and the checkpoint put in place as the base
/// a start after a crash replays the journal onto.
#[derive(Debug, Clone)]
pub struct Checkpoints(Arc<Shared>);

impl Checkpoints {
    /// The store's position.
    pub fn position(&self) -> Position {
        self.0.position.lock().map(|p| *p).unwrap_or_default()
    }

    /// How many times SQLite's log started again from its beginning
    /// (folded whole by the follower's folder, and cut back to
    /// [`super::LOG_KEPT_BYTES`]): after a build, whose read keeps the
    /// log from starting again, the next build waits for one.
    pub fn log_restarts(&self) -> u64 {
        self.0.log_restarts.load(Ordering::Acquire)
    }

    /// True once the store stopped following the journal.
    pub fn failed(&self) -> bool {
        self.0.failed.load(Ordering::Acquire)
    }

    /// The generation of the checkpoint the journal is kept for, if any.
    pub fn base(&self) -> Option<u64> {
        match self.0.keep_from.load(Ordering::Acquire) {
            u64::MAX => None,
            g => Some(g),
        }
    }

    /// Holds the store still: no batch is applied until the guard
    /// returned is dropped (the journal's writer goes on; what it hands on
    /// waits in the tap, [`TAP_BATCHES`] batches deep).
    pub fn hold(&self) -> std::sync::MutexGuard<'_, ()> {
        self.0.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the journals from `generation` on (none is deleted from
    /// there) until [`Checkpoints::unpin`] or [`Checkpoints::install`].
    /// Call it holding the store still ([`Checkpoints::hold`]), with the
    /// store at or past `generation`: the follower deletes a journal only
    /// when it has applied a later one.
    pub fn pin(&self, generation: u64) {
        self.0.pinned.store(generation, Ordering::Release);
    }

    /// Lets go of what [`Checkpoints::pin`] kept.
    pub fn unpin(&self) {
        self.0.pinned.store(u64::MAX, Ordering::Release);
    }

    /// Puts a checkpoint made at `generation` (pinned) in place: `rename`
    /// runs with the store held still, so the follower never removes the
    /// new file as the old one; then the journal is kept from
    /// `generation` for it, and the pin let go. (The caller flushes the
    /// directory after: once renamed, the new file is the base.)
    pub fn install<T, E>(
        &self,
        generation: u64,
        rename: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let _still = self.hold();
        let renamed = rename()?;
        self.0.keep_from.store(generation, Ordering::Release);
        self.unpin();
        Ok(renamed)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.join();
    }
}

/// Has the follower's commits fold SQLite's log every
/// [`super::FOLD_EVERY_PAGES`]: without the folder's thread (it could not
/// start, or it ended).
fn fold_on_commits(store: &Store) {
    if let Err(e) = store.fold_every(super::FOLD_EVERY_PAGES) {
        tracing::warn!(error = %e, "how often SQLite's log is folded into the store's file could not be set; it keeps SQLite's default");
    }
}

/// The follower's loop: batches as they come, several to a transaction,
/// until the journal closes. A failure is logged and ends the following;
/// what is handed on after it is received and dropped, so that the
/// journal's writer never waits on a store that no longer moves.
fn follow(
    store: &mut Store,
    layout: &Layout,
    durability: Durability,
    from: &Receiver<Tapped>,
    shared: &Shared,
) {
    let behind = metrics::gauge!("compliance_guard_store_batches_per_commit");
    // SQLite's log is folded into the file by a thread of its own, off
    // the commits below (and what a process before left there, from
    // now on); failing that, by the commits every `FOLD_EVERY_PAGES`.
    let mut folder = super::fold::Folder::start(
        store,
        super::FOLD_EVERY_PAGES,
        super::fold::HOLD_AT_MOST,
        Arc::clone(&shared.log_restarts),
    )
        .inspect_err(|e| tracing::warn!(error = %e, "the thread that folds SQLite's log into the store's file could not be started; the follower's commits fold it"))
        .ok();
    if folder.is_none() {
        fold_on_commits(store);
    }
    let mut at = shared.position.lock().map(|p| *p).unwrap_or_default();
    while let Ok(first) = from.recv() {
        // What comes within the window goes into one transaction: SQLite
        // rewrites each page a transaction touches once, so a few large
        // transactions cost far less than many small ones.
        let until = Instant::now() + COMMIT_WINDOW;
        let mut batch = vec![first];
        while batch.len() < BATCHES_PER_COMMIT {
            match from.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        behind.set(batch.len() as f64);
        // All it may take in one commit: more is waiting.
        let behind_now = batch.len() == BATCHES_PER_COMMIT;
        match apply(store, layout, durability, at, batch, shared) {
            Ok((position, seq)) => {
                at = position;
                if let Ok(mut p) = shared.position.lock() {
                    *p = at;
                }
                if seq > 0 {
                    shared.applied.store(seq, Ordering::Release);
                }
                // Outside the gate: a fold asked, or waited for.
                if folder.as_ref().is_some_and(|f| !f.after_commit(behind_now)) {
                    if let Some(f) = folder.take() {
                        f.stop(store);
                    }
                    tracing::warn!(
                        "the thread that folds SQLite's log into the store's file ended; the follower's commits fold it from now on"
                    );
                    fold_on_commits(store);
                }
            }
            Err(e) => {
                shared.failed.store(true, Ordering::Release);
                metrics::counter!("compliance_guard_store_failures_total").increment(1);
                tracing::error!(error = %e, "the store could not apply the journal and stops following it; answers are unchanged (the journal keeps every write), memory keeps what it holds, and the next start applies the journal or says why it cannot");
                if let Some(folder) = folder {
                    folder.stop(store);
                }
                while from.recv().is_ok() {}
                return;
            }
        }
    }
    behind.set(0.0);
    if let Some(folder) = folder {
        folder.stop(store);
    }
    // The journal closed: everything SQLite's own log holds goes into the
    // store's file, so that a copy of the file alone is whole.
    if let Err(e) = store.checkpoint() {
        tracing::warn!(error = %e, "the store could not be checkpointed at shutdown; its log is read at the next start");
    }
}

/// Applies batches in one transaction; returns the position reached and
/// the commit seq of the last frame applied (0: none). After a roll, the
/// journals the store now holds are deleted.
fn apply(
    store: &mut Store,
    layout: &Layout,
    durability: Durability,
    mut at: Position,
    batch: Vec<Tapped>,
    shared: &Shared,
) -> Result<(Position, u64), JournalError> {
    let _still = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
    let mut seq = 0;
    let mut rolled = false;
    let path = store.path().to_owned();
    if durability == Durability::Buffered {
        // What the writer only wrote is flushed before the store holds
        // it: the store never holds what a power cut takes from the
        // journal.
        let newest = batch.iter().fold(at.generation, |g, t| match t {
            Tapped::Frames { generation, .. } | Tapped::Rolled { generation } => g.max(*generation),
        });
        for g in at.generation..=newest {
            let journal = layout.journal(g);
            std::fs::File::open(&journal)
                .and_then(|f| f.sync_data())
                .map_err(|cause| JournalError::Io {
                    action: "flushing",
                    path: journal,
                    cause,
                })?;
        }
    }
    // A commit that leads to deleting journals is flushed
    // (`synchronous = FULL`, which flushes every commit before it too);
    // the others are not (`NORMAL`): a power cut may take the last of
    // them back, with their position, and the next start applies them
    // again from the journal, which still holds them.
    let rolls = batch.iter().any(|t| matches!(t, Tapped::Rolled { .. }));
    store.set_synchronous(rolls)?;
    let mut writing = store.begin()?;
    for tapped in batch {
        match tapped {
            Tapped::Frames {
                generation,
                bytes,
                end,
                seq: last,
            } => {
                for record in unframe(&bytes) {
                    let record = record.map_err(|reason| JournalError::Store {
                        path: path.clone(),
                        reason: format!("a batch handed on by the journal's writer: {reason}"),
                    })?;
                    writing.apply(record)?;
                }
                at = Position {
                    generation,
                    records: end,
                };
                seq = last;
            }
            Tapped::Rolled { generation } => {
                at = Position {
                    generation,
                    records: 0,
                };
                rolled = true;
            }
        }
    }
    if rolled {
        // Stored answers are kept for the retry period only.
        let before =
            chrono::Utc::now() - chrono::Duration::hours(crate::ledger::REQUEST_ID_TTL_HOURS);
        writing.forget_answers_before(before.timestamp())?;
    }
    writing.commit(at).map_err(JournalError::from)?;
    if rolled {
        let keep_from = &shared.keep_from;
        let keep = keep_from.load(Ordering::Acquire);
        // Not while a checkpoint is being built (pinned): the one in place
        // stays the base until the new one replaces it.
        let building = shared.pinned.load(Ordering::Acquire) != u64::MAX;
        if keep != u64::MAX && !building && at.generation > keep.saturating_add(KEPT_FOR_CHECKPOINT)
        {
            // Too long to replay: the checkpoint goes, then the journal.
            let checkpoint = shared.checkpoint.clone().unwrap_or_default();
            match std::fs::remove_file(&checkpoint) {
                Ok(()) => {
                    tracing::info!(file = %checkpoint.display(), "the index checkpoint was removed: the journal after it grew past what a start after a crash replays; such a start rebuilds from the store")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(JournalError::Io {
                        action: "removing",
                        path: checkpoint,
                        cause: e,
                    });
                }
            }
            jn::fsync_dir(&layout.dir).map_err(|cause| JournalError::Io {
                action: "flushing",
                path: layout.dir.clone(),
                cause,
            })?;
            keep_from.store(u64::MAX, Ordering::Release);
        }
        let keep = keep_from
            .load(Ordering::Acquire)
            .min(shared.pinned.load(Ordering::Acquire));
        jn::remove_journals_before(layout, at.generation.min(keep))?;
    }
    Ok((at, seq))
}
