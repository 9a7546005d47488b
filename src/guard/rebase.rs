//! The index checkpoint moved forward while serving (issue 15): a thread
//! beside the follower that, once the journal after the checkpoint has
//! filled a generation, builds a new checkpoint from the store, as a
//! start that rebuilds would read it, and puts it in place. A start
//! after a crash then replays at most about a generation of journal onto
//! it, however long the server ran.
//!
//! The new checkpoint is built from one state of the store, never from
//! memory: memory is never locked for it, and no write waits on it.
//! - The follower is held still ([`Checkpoints::hold`]) while two read
//!   transactions take the store's state and its position `P` (the one
//!   the counts are read on, and the one the rows are,
//!   [`Store::pin_for_load`]), and the journal from `P`'s generation is
//!   pinned (kept although the store holds it): a few milliseconds; the
//!   journal's writer goes on meanwhile.
//! - Memory as a start at `P` would hold it is then read from that state
//!   ([`load_store`], the start's own reading), and written to the
//!   checkpoint's temporary file, flushed.
//! - With the follower held still again, it is renamed into place and the
//!   journal is kept from `P` on for it ([`Checkpoints::install`]), so
//!   the follower's removal of a checkpoint too far behind never removes
//!   the new one.
//! - A build the journal outpaces (it rolled [`ABANDON_AFTER`]
//!   generations past `P` meanwhile) is abandoned, its pin let go, and
//!   tried again a minute later: it would otherwise keep the journal
//!   since, and a read of the store that stops SQLite's log from being
//!   folded back, for as long as it ran.
//!
//! The cost is a second index while one is built: about what a start that
//! rebuilds peaks at, and a core for as long (see docs/operating.md).
//! It is one thread, one build at a time, stopped (a build under way
//! abandoned) before a clean stop writes its own checkpoint. The reading
//! and writing run on threads at the idle scheduling class (`SCHED_IDLE`:
//! only on a core nothing else wants; what holds the follower still stays
//! at the normal one), and the memory the second index held is given
//! back to the system once it is written (`malloc_trim`), where the
//! allocator would otherwise keep it for the thread that freed it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checkpoint::Prepared;
use super::horizon::let_go_at;
use super::recovery::{load_store, memory_cutoff};
use crate::hooks::hold_here;
use crate::index::IndexConfig;
use crate::journal::{JournalError, Position};
use crate::ledger::Ledger;
use crate::store::{Checkpoints, Pinned, Store};

/// How often the thread looks at how far the journal after the
/// checkpoint has grown.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long it waits after a build failed before it tries again.
const AFTER_FAILURE: Duration = Duration::from_secs(60);
/// The longest the next build waits, after one, for SQLite's log to
/// start again (see [`run`]).
const FOLD_AT_MOST: Duration = Duration::from_secs(60);
/// A build is abandoned once the journal rolled this many generations
/// past its position: it holds the journal since and a read of the
/// store's state, and could not keep up with the writes.
const ABANDON_AFTER: u64 = 2;

/// The thread that moves the index checkpoint forward while serving.
#[derive(Debug)]
pub(super) struct Rebase {
    stop: Arc<AtomicBool>,
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Rebase {
    /// Starts the thread for the data directory `dir`, whose store the
    /// follower behind `follower` writes.
    pub(super) fn start(
        dir: &Path,
        config: IndexConfig,
        follower: Checkpoints,
    ) -> Result<Rebase, JournalError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::channel();
        let theirs_dir = dir.to_owned();
        let theirs = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("index-rebase".into())
            .spawn(move || run(&theirs_dir, config, &follower, &theirs, &woken))
            .map_err(|cause| JournalError::Io {
                action: "starting the index checkpoint's thread for",
                path: dir.to_owned(),
                cause,
            })?;
        Ok(Rebase {
            stop,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Stops the thread, abandoning a build under way (its temporary
    /// file is removed; the checkpoint in place stays), and waits for it.
    pub(super) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Rebase {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The thread's loop: a build whenever one is due, until stopped.
///
/// After a build, the next one waits (at most [`FOLD_AT_MOST`]), while
/// SQLite's log file is larger than [`crate::store::LOG_KEPT_BYTES`],
/// until the log has started again ([`Checkpoints::log_restarts`]):
/// folded whole by the follower's folder, then started again and cut
/// back by the follower's next transaction. A build's read keeps the log
/// from being folded past it; a build begun at once after the one before
/// (the writes outran it by a generation, as at 6,000 creates a second
/// at N = 11.6 M, where a build took 268 s) read before the log could
/// start again, and back-to-back builds let it grow without end (9 GB in
/// that run).
fn run(
    dir: &Path,
    config: IndexConfig,
    follower: &Checkpoints,
    stop: &AtomicBool,
    woken: &Receiver<()>,
) {
    let mut wait = LOOK_EVERY;
    // After a build: the log's restarts then, and until when to wait for
    // one more.
    let mut restarted_by: Option<(u64, Instant)> = None;
    loop {
        match woken.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        wait = LOOK_EVERY;
        if stop.load(Ordering::Acquire) || follower.failed() {
            continue;
        }
        let at = follower.position();
        let due = follower.base().is_none_or(|base| at.generation > base);
        if !due {
            continue;
        }
        if let Some((restarts, until)) = restarted_by {
            let log_bytes = || crate::store::log_bytes(dir);
            match after_build(
                restarts,
                follower.log_restarts(),
                log_bytes,
                Instant::now(),
                until,
            ) {
                AfterBuild::Wait => continue,
                AfterBuild::Build => {}
                AfterBuild::BuildLate => tracing::warn!(
                    "SQLite's log did not start again within a minute of the last checkpoint build; the next is built all the same, and the log grows while it runs"
                ),
            }
            restarted_by = None;
        }
        let started = Instant::now();
        match build(dir, config, follower, stop) {
            Ok(Some((at, bytes, interactions))) => {
                restarted_by = Some((follower.log_restarts(), Instant::now() + FOLD_AT_MOST));
                metrics::counter!("compliance_guard_checkpoints_total", "when" => "serving")
                    .increment(1);
                // Generations the journal rolled while it was built: more
                // than one, and builds cannot keep up with the writes.
                let rolled = follower.position().generation.saturating_sub(at.generation);
                tracing::info!(
                    bytes,
                    interactions,
                    made_at = %format!("{}:{}", at.generation, at.records),
                    rolled,
                    ms = started.elapsed().as_millis() as u64,
                    "index checkpoint written while serving, from the store: a start after a crash replays the journal from its position"
                );
            }
            Ok(None) => return,
            Err(e) => {
                metrics::counter!("compliance_guard_checkpoint_failures_total").increment(1);
                tracing::warn!(error = %e, "the index checkpoint could not be moved forward; the one in place stays, and this is tried again in a minute");
                wait = AFTER_FAILURE;
            }
        }
    }
}

/// Lets go of the journal pinned for a build that did not finish.
struct Unpin<'a>(&'a Checkpoints);

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        self.0.unpin();
    }
}

/// One build (see the module's documentation): the position it was made
/// at, its size and how many interactions it holds; `None` when stopped.
/// This thread, at the normal scheduling class, holds the follower still
/// and puts the checkpoint in place; the reading and writing between run
/// on a thread of their own at the idle class (a thread cannot leave the
/// idle class without a privilege, and one that held the follower still
/// while waiting for an idle core would hold the writes up).
fn build(
    dir: &Path,
    config: IndexConfig,
    follower: &Checkpoints,
    stop: &AtomicBool,
) -> Result<Option<(Position, u64, usize)>, String> {
    let store = Store::open_read_only(dir)
        .map_err(|e| e.to_string())?
        .ok_or("the data directory has no store")?;
    // Both connections take their state with the follower held still:
    // a few milliseconds; the counting and reading after run beside it.
    let (at, pinned) = {
        let _still = follower.hold();
        let at = store
            .begin_read()
            .map_err(|e| e.to_string())?
            .ok_or("the store holds no position")?;
        let pinned = store.pin_for_load().map_err(|e| e.to_string())?;
        if pinned.position() != Some(at) {
            return Err(format!(
                "the store moved while it was held still (at {}:{}, then {:?})",
                at.generation,
                at.records,
                pinned.position()
            ));
        }
        follower.pin(at.generation);
        (at, pinned)
    };
    tracing::info!(
        made_at = %format!("{}:{}", at.generation, at.records),
        "building the index checkpoint from the store while serving"
    );
    let _unpin = Unpin(follower);
    let prepared = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("index-rebase-build".into())
            .spawn_scoped(scope, move || {
                // The thread that reads the store, started from this one,
                // inherits the class.
                if let Err(e) = super::os::run_when_idle() {
                    tracing::warn!(error = %e, "the index checkpoint's build could not be given the idle scheduling class; it runs at the normal one");
                }
                prepare(dir, config, store, pinned, at, stop, follower)
            })
            .map_err(|e| format!("starting the build's thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the build's thread panicked".into()))
    });
    // From this thread, at the normal class: it holds each of the
    // allocator's arenas a moment.
    super::os::give_back_freed_memory();
    let prepared = prepared?;
    let Some((prepared, interactions)) = prepared else {
        return Ok(None);
    };
    let bytes = follower.install(at.generation, || prepared.rename())?;
    // In place: a failed flush is logged, the new file stays the base
    // (a power cut may take the rename back, leaving the old file, whose
    // journal the follower may have deleted since: that start rebuilds).
    if let Err(e) = super::checkpoint::flush_dir(dir) {
        tracing::warn!(error = %e, "the index checkpoint built while serving is in place, but its directory could not be flushed");
    }
    Ok(Some((at, bytes, interactions)))
}

/// Memory as a start at `at` would read it from `store` (in a read
/// transaction at `at`) and `pinned`, written to the checkpoint's
/// temporary file and flushed; with how many interactions it holds.
/// `None` when stopped.
fn prepare(
    dir: &Path,
    config: IndexConfig,
    store: Store,
    pinned: Pinned,
    at: Position,
    stop: &AtomicBool,
    follower: &Checkpoints,
) -> Result<Option<(Prepared, usize)>, String> {
    let rolled = || follower.position().generation.saturating_sub(at.generation);
    let keep_going = || !stop.load(Ordering::Acquire) && rolled() <= ABANDON_AFTER;
    let why = || match stop.load(Ordering::Acquire) {
        true => None,
        false => Some(format!(
            "abandoned: the journal rolled {} generations past its position while it was built (the writes outpace it)",
            rolled()
        )),
    };
    let mut ledger = Ledger::new(config);
    let loaded = load_store(
        &mut ledger,
        &store,
        config,
        0,
        Some(let_go_at(chrono::Utc::now().timestamp())),
        &mut || match keep_going() {
            true => Ok(()),
            false => Err(JournalError::Failed("stopped".into())),
        },
        Some(pinned),
    );
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(_) if !keep_going() => return why().map_or(Ok(None), Err),
        Err(e) => return Err(format!("reading the store: {e}")),
    };
    let _ = store.end_read();
    drop(store);
    // Memory as a start at `at` holds it: history from the horizon's
    // cutoff when some is on disk only.
    if ledger.index.on_disk() > 0 {
        let cutoff = memory_cutoff(&ledger, config, loaded.now, loaded.latest);
        ledger.index.set_held_from(cutoff);
    }
    let interactions = ledger.index.len();
    hold_here("serving-checkpoint-read", &keep_going);
    match super::checkpoint::prepare(dir, &ledger, at, "serving", &keep_going) {
        Ok(prepared) => Ok(Some((prepared, interactions))),
        Err(_) if !keep_going() => why().map_or(Ok(None), Err),
        Err(e) => Err(e),
    }
}

/// What the next build may do after one ([`run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterBuild {
    /// Wait: SQLite's log has not started again since the last build.
    Wait,
    /// Build: the log started again, or its file is no larger than it is
    /// cut back to (a log that small holds nothing up).
    Build,
    /// Build all the same, and say so: the log did not start again
    /// within [`FOLD_AT_MOST`].
    BuildLate,
}

/// After a build at which the log had started again `restarts_then`
/// times, whether the next may begin now (`now`, the wait ending at
/// `until`): only once the log has started again, unless its file
/// (`log_bytes`, read only when needed) is within
/// [`crate::store::LOG_KEPT_BYTES`].
fn after_build(
    restarts_then: u64,
    restarts_now: u64,
    log_bytes: impl FnOnce() -> u64,
    now: Instant,
    until: Instant,
) -> AfterBuild {
    if restarts_now != restarts_then || log_bytes() <= crate::store::LOG_KEPT_BYTES {
        AfterBuild::Build
    } else if now < until {
        AfterBuild::Wait
    } else {
        AfterBuild::BuildLate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next build waits for SQLite's log to start again, but not
    /// for a log already cut back, and not past its bound (then it says
    /// so); the log's file is not looked at once the log started again.
    #[test]
    fn the_next_build_waits_for_the_log_to_start_again() {
        let now = Instant::now();
        let later = now + FOLD_AT_MOST;
        let big = crate::store::LOG_KEPT_BYTES + 1;
        let unread = || -> u64 { panic!("the log's file was read") };
        assert_eq!(after_build(3, 4, unread, now, later), AfterBuild::Build);
        assert_eq!(after_build(3, 3, || big, now, later), AfterBuild::Wait);
        let kept = crate::store::LOG_KEPT_BYTES;
        assert_eq!(after_build(3, 3, || kept, now, later), AfterBuild::Build);
        assert_eq!(
            after_build(3, 3, || big, later, later),
            AfterBuild::BuildLate
        );
    }
}
