//! Folding SQLite's log into the store's file on a thread and a
//! connection of its own, beside the follower.
//!
//! SQLite in WAL mode appends each commit to its log (`-wal`); a fold (a
//! SQLite "checkpoint") copies the log's pages into the file, and once
//! everything is copied the next write transaction starts the log again
//! from its beginning. Left to the follower's commits (SQLite's automatic
//! fold), a fold runs inside the commit that crossed the threshold, with
//! the follower's gate held, while the batches the journal's writer hands
//! on pile up in the tap (4,096 deep; past it the writer waits). That
//! fold is usually a few tens of megabytes, but after a checkpoint
//! build's long read (which keeps the log from being folded), or at the
//! start after a crash during one, the log holds gigabytes: 2.7 to 2.9
//! GB at N = 10 M, which a start used to fold before serving.
//!
//! Here the follower's connection does not fold (unless this thread
//! ended: then its commits fold again, as before). SQLite tells it after
//! each commit how many pages the log holds ([`Folder::after_commit`]);
//! past `every` pages it asks this thread, whose connection folds in
//! SQLite's passive mode: it copies what no reader still needs while the
//! follower goes on applying, and waits for no one. SQLite documents
//! this split (automatic folds off, a thread that folds) for applications
//! that keep the fold off their commits.
//!
//! The log starts again only when a write transaction begins with all of
//! it folded. A follower that commits back to back (the journal ahead of
//! it, each commit as large as it may be) would always begin before the
//! fold under way ends, and the log would grow for as long; so then, past
//! [`HOLD_PAST`] times `every` pages, the follower waits, outside its
//! gate and for at most [`HOLD_AT_MOST`], for a fold asked after its last
//! commit to end: not while the first fold (of what a process before
//! left) is under way, nor, once a hold timed out, until the fold it
//! waited for is done (a long fold after a checkpoint build: each commit
//! would otherwise wait the whole time). A follower that is not behind
//! gathers batches for up to a second before it begins again, and the
//! fold ends meanwhile (or at the next gap, when it is a long one).
//!
//! Folding changes no durability: a commit is durable in the log (or
//! not) as before; a fold flushes the log before it copies it, and the
//! log starts again only after a fold that reached its end flushed the
//! file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, InterruptHandle};

use super::{Store, StoreError, sqlite};

/// How large SQLite's log file is cut back to when it starts again, in
/// bytes: without a limit it keeps its largest size (gigabytes after a
/// checkpoint build's long read) on disk for good.
pub const LOG_KEPT_BYTES: u64 = 64 * 1024 * 1024;
/// Past this many times the fold threshold, the follower waits for a
/// fold before its next transaction (see the module's documentation).
pub const HOLD_PAST: i64 = 4;
/// The longest the follower waits for a fold: a reader that keeps the
/// log from being folded (a checkpoint build) does not hold it up.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(2);

/// How many folds in a row may fail before the thread gives up (and the
/// follower's commits fold again).
const FAILURES_BEFORE_GIVING_UP: u32 = 3;

/// The asks and the folds, numbered.
#[derive(Debug, Default)]
struct Counts {
    /// The number of the latest ask.
    asked: u64,
    /// The number of the latest ask a fold served: the thread takes the
    /// latest number when it begins a fold, and sets it here at its end.
    done: u64,
    /// No hold until `done` reaches this: a hold that timed out waits for
    /// a fold still under way, which the next holds would wait on too.
    no_hold_before: u64,
}

/// What the follower and the folder's thread share.
#[derive(Debug, Default)]
struct Shared {
    /// The pages SQLite's log held after the follower's last commit.
    pages: AtomicI64,
    /// The asks and the folds.
    counts: Mutex<Counts>,
    /// Wakes the thread (a fold asked, or the stop) and the follower (a
    /// fold done).
    moved: Condvar,
    /// Set by [`Folder::stop`].
    stop: AtomicBool,
    /// Held by a test: a fold under way waits for it (one that takes
    /// long, as after a checkpoint build).
    #[cfg(test)]
    stall: Mutex<()>,
    /// Set by a test: each fold fails, as a failing disk would fail it.
    #[cfg(test)]
    fail: AtomicBool,
    /// The folds failed so far, for a test.
    #[cfg(test)]
    failed: std::sync::atomic::AtomicU32,
}

/// The thread that folds SQLite's log while the follower writes.
pub(super) struct Folder {
    shared: Arc<Shared>,
    every: i64,
    hold_at_most: Duration,
    interrupt: InterruptHandle,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Folder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Folder")
            .field("shared", &self.shared)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Nothing folded yet, and the first fold asked: what a process
    /// before left in the log.
    fn new() -> Shared {
        Shared {
            counts: Mutex::new(Counts {
                asked: 1,
                done: 0,
                // Not while the first fold, of what a process before left
                // in the log (gigabytes after a crash), is under way: the
                // follower would wait on it while the journal's writer
                // fills the tap.
                no_hold_before: 1,
            }),
            ..Shared::default()
        }
    }
}

impl Folder {
    /// Takes the folds off `store`'s commits and starts the thread that
    /// does them on its own connection, once the log holds `every` pages
    /// ([`super::FOLD_EVERY_PAGES`] for the follower), a hold waiting at
    /// most `hold_at_most` ([`HOLD_AT_MOST`]); the first fold is asked at
    /// once (what a process before left in the log).
    ///
    /// `restarts` counts the times the log started again, as the page
    /// count after a commit not growing shows them.
    pub(super) fn start(
        store: &mut Store,
        every: i64,
        hold_at_most: Duration,
        restarts: Arc<AtomicU64>,
    ) -> Result<Folder, StoreError> {
        Folder::start_sharing(
            store,
            every,
            hold_at_most,
            restarts,
            Arc::new(Shared::new()),
        )
    }

    /// [`Folder::start`], with what the thread and the follower share
    /// made by the caller (a test stalls or fails folds through it, the
    /// first one included).
    fn start_sharing(
        store: &mut Store,
        every: i64,
        hold_at_most: Duration,
        restarts: Arc<AtomicU64>,
        shared: Arc<Shared>,
    ) -> Result<Folder, StoreError> {
        let path = store.path().to_owned();
        let conn = Connection::open(&path).map_err(sqlite("opening a folder of", &path))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(sqlite("setting up a folder of", &path))?;
        let interrupt = conn.get_interrupt_handle();
        // The automatic fold goes first: setting it replaces the hook.
        store.fold_every(0)?;
        store
            .conn
            .execute_batch(&format!("PRAGMA journal_size_limit = {LOG_KEPT_BYTES};"))
            .map_err(sqlite("setting up", &path))?;
        let pages = Arc::clone(&shared);
        store
            .conn
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, n| {
                let n = i64::from(n);
                // A commit adds at least one page: a count that did not
                // grow is a log begun again.
                if pages.pages.swap(n, Ordering::AcqRel) >= n {
                    restarts.fetch_add(1, Ordering::Release);
                }
                Ok(())
            }))
            .map_err(sqlite("setting up", &path))?;
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("store-folder".into())
            .spawn(move || fold(&conn, &path, &theirs))
            .map_err(|e| StoreError::Format {
                path: store.path().to_owned(),
                reason: format!("starting the thread that folds its log: {e}"),
            })?;
        Ok(Folder {
            shared,
            every,
            hold_at_most,
            interrupt,
            thread: Some(thread),
        })
    }

    /// After each of the follower's commits, outside its gate: asks for a
    /// fold once the log holds `every` pages, and, when the follower is
    /// `behind` (its commit took all it may, the next batches waiting)
    /// and the log holds [`HOLD_PAST`] times that, waits (at most
    /// `hold_at_most`) for it to end, so that the next transaction can
    /// start the log again. A follower that is not behind waits for its
    /// next batches before it begins again, and a fold ends meanwhile:
    /// it never waits (a wait would hold the journal's writer once the
    /// tap filled). Returns false once the thread has ended (it gave up
    /// after failing folds, or a lock was poisoned): the caller then
    /// folds on its commits again.
    pub(super) fn after_commit(&self, behind: bool) -> bool {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return false;
        }
        let pages = self.shared.pages.load(Ordering::Acquire);
        if pages < self.every {
            return true;
        }
        let Ok(mut counts) = self.shared.counts.lock() else {
            return false;
        };
        // A fold that begins after this commit: the thread takes the
        // number asked when it begins one (a fold under way may have
        // begun before this commit, and would not reach the log's end).
        counts.asked += 1;
        let wanted = counts.asked;
        self.shared.moved.notify_all();
        if !behind
            || counts.done < counts.no_hold_before
            || pages < self.every.saturating_mul(HOLD_PAST)
        {
            return true;
        }
        let until = Instant::now() + self.hold_at_most;
        while counts.done < wanted && !self.shared.stop.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // A long fold (what a checkpoint build kept from being
                // folded): no more holds until the one asked here is done.
                counts.no_hold_before = wanted;
                break;
            }
            counts = match self.shared.moved.wait_timeout(counts, left) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
        true
    }

    /// Stops the thread: the fold under way is interrupted, unless it
    /// is just beginning (then it ends first). `store`'s commits fold
    /// again as SQLite's default has them (and the follower folds all of
    /// the log at its stop).
    pub(super) fn stop(mut self, store: &mut Store) {
        {
            // Under the lock: the thread is then either waiting (and
            // woken) or yet to look at the flag.
            let _counts = self.shared.counts.lock();
            self.shared.stop.store(true, Ordering::Release);
            self.shared.moved.notify_all();
        }
        self.interrupt.interrupt();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let none: Option<fn(&mut rusqlite::hooks::Wal, std::ffi::c_int) -> rusqlite::Result<()>> =
            None;
        if let Err(e) = store.conn.wal_hook(none) {
            tracing::warn!(error = %e, "the hook that counts SQLite's log could not be removed");
        }
        if let Err(e) = store.fold_every(1000) {
            tracing::warn!(error = %e, "SQLite's automatic fold could not be set back");
        }
    }

    /// The number of the latest ask a fold served (asks made while a
    /// fold is under way are served together by the next).
    #[cfg(test)]
    fn done(&self) -> u64 {
        self.shared.counts.lock().map(|g| g.done).unwrap_or(0)
    }
}

/// The folder's loop: a passive fold for each batch of asks, until
/// stopped.
fn fold(conn: &Connection, path: &Path, shared: &Shared) {
    let folds = metrics::counter!("compliance_guard_store_log_folds_total");
    let mut failures = 0;
    loop {
        let asked = {
            let Ok(mut g) = shared.counts.lock() else {
                return;
            };
            while g.asked == g.done && !shared.stop.load(Ordering::Acquire) {
                g = match shared.moved.wait(g) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            g.asked
        };
        let started = Instant::now();
        match fold_once(conn, path, shared) {
            Ok((log, folded)) => {
                failures = 0;
                folds.increment(1);
                let ms = started.elapsed().as_millis();
                if ms >= 1000 {
                    tracing::info!(
                        pages = log,
                        folded,
                        ms,
                        "folded SQLite's log into the store's file"
                    );
                }
            }
            Err(_) if shared.stop.load(Ordering::Acquire) => return,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "SQLite's log could not be folded into the store's file");
            }
        }
        let Ok(mut g) = shared.counts.lock() else {
            return;
        };
        g.done = g.done.max(asked);
        shared.moved.notify_all();
        if failures == FAILURES_BEFORE_GIVING_UP {
            tracing::error!(
                failures,
                "the thread that folds SQLite's log gives up; the follower's commits fold it"
            );
            return;
        }
    }
}

/// One fold; in a test, stalled or failed as the test asks.
fn fold_once(conn: &Connection, path: &Path, shared: &Shared) -> Result<(i64, i64), StoreError> {
    #[cfg(test)]
    {
        let _stalled = shared.stall.lock();
        if shared.fail.load(Ordering::Acquire) {
            shared.failed.fetch_add(1, Ordering::AcqRel);
            return Err(StoreError::Format {
                path: path.to_owned(),
                reason: "a fold failed, as the test asked".into(),
            });
        }
    }
    #[cfg(not(test))]
    let _ = shared;
    passive(conn, path)
}

/// One passive fold: the pages the log holds, and how many of them are
/// in the file now (fewer while a reader still reads an older state).
fn passive(conn: &Connection, path: &Path) -> Result<(i64, i64), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
    .map_err(sqlite("folding the log of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's file, in bytes.
    fn file_len(dir: &Path) -> u64 {
        std::fs::metadata(super::super::path_in(dir)).map_or(0, |m| m.len())
    }

    /// One commit of about `pages` pages on the store's connection.
    fn commit(store: &Store, pages: i64) {
        store
            .conn
            .execute(
                "INSERT INTO filler (bytes) VALUES (zeroblob(?1))",
                [pages * 4000],
            )
            .unwrap();
    }

    /// The pages past which the store's own commits fold (0: never).
    fn fold_every(store: &Store) -> i64 {
        store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap()
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let waited = Instant::now();
        while !done() {
            assert!(waited.elapsed().as_secs() < 20, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The store's commits never fold: the folder's thread does, the
    /// log then starts again, and commits back to back (as a follower the
    /// journal outruns makes them) wait for a fold past `HOLD_PAST` times
    /// the threshold, so that the log stays bounded. Once stopped, the
    /// commits fold as SQLite's default has them.
    #[test]
    fn the_folder_folds_off_the_commits_and_bounds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE filler (bytes BLOB)")
            .unwrap();
        store.checkpoint().unwrap();
        let before = file_len(dir.path());
        // Far past SQLite's threshold: a fold on a commit would grow the file.
        store.fold_every(0).unwrap();
        for _ in 0..30 {
            commit(&store, 40);
        }
        assert_eq!(file_len(dir.path()), before, "no commit folded");

        // The first fold, asked at the start, takes the log whole; the
        // next commit starts it again.
        // A hold long enough for any disk: the bound below is the holds'.
        let restarts = Arc::new(AtomicU64::new(0));
        let folder = Folder::start(
            &mut store,
            200,
            Duration::from_secs(60),
            Arc::clone(&restarts),
        )
        .unwrap();
        wait_for("the first fold", || folder.done() >= 1);
        assert!(file_len(dir.path()) > before + 4_000_000);
        commit(&store, 40);
        commit(&store, 40);
        let pages = folder.shared.pages.load(Ordering::Acquire);
        assert!(pages < 100, "the log started again: {pages} pages");

        // Back to back, many times past the threshold: bounded by the
        // holds, and the commits themselves fold nothing (the file grows
        // only as folds end).
        // Each commit is past the hold: each next one starts the log again.
        let mut most = 0;
        for _ in 0..60 {
            commit(&store, 1000);
            most = most.max(folder.shared.pages.load(Ordering::Acquire));
            assert!(folder.after_commit(true));
        }
        assert!(most < 1100, "the log held {most} pages");
        assert!(
            restarts.load(Ordering::Acquire) >= 59,
            "each commit began it again"
        );
        assert!(
            folder.done() >= 60,
            "the latest ask served: {}",
            folder.done()
        );

        folder.stop(&mut store);
        assert_eq!(
            fold_every(&store),
            1000,
            "the commits fold again once stopped"
        );
    }

    /// A store with a table to fill, and its folder folding past 10
    /// pages (holds past 40), a hold waiting at most `hold`, sharing
    /// `shared` (which the test may have stalled first).
    fn folded(dir: &Path, hold: Duration, shared: &Arc<Shared>) -> (Store, Folder) {
        let mut store = Store::open(dir).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE filler (bytes BLOB)")
            .unwrap();
        let restarts = Arc::new(AtomicU64::new(0));
        let folder =
            Folder::start_sharing(&mut store, 10, hold, restarts, Arc::clone(shared)).unwrap();
        (store, folder)
    }

    /// How long `after_commit(behind)` took, and what it returned.
    fn timed(folder: &Folder, behind: bool) -> (Duration, bool) {
        let started = Instant::now();
        let on = folder.after_commit(behind);
        (started.elapsed(), on)
    }

    /// While a fold is under way (stalled): a follower that is not
    /// behind never waits; one that is waits `hold_at_most`, once, and
    /// then not again until the fold it waited for is done; after that
    /// it waits again.
    #[test]
    fn a_hold_waits_only_when_behind_and_once_a_fold() {
        let dir = tempfile::tempdir().unwrap();
        let hold = Duration::from_secs(2);
        let shared = Arc::new(Shared::new());
        let (mut store, folder) = folded(dir.path(), hold, &shared);
        wait_for("the first fold", || folder.done() >= 1);
        let stall = shared.stall.lock().unwrap();
        commit(&store, 50);
        // Any hold lasts `hold` whole: no fold can end while stalled.
        let (took, on) = timed(&folder, false);
        assert!(on && took < hold, "not behind: no wait ({took:?})");
        let (took, on) = timed(&folder, true);
        assert!(
            on && took >= hold,
            "behind: a wait that timed out ({took:?})"
        );
        commit(&store, 50);
        let (took, on) = timed(&folder, true);
        assert!(on && took < hold, "no second wait on that fold ({took:?})");
        drop(stall);
        let waited_on = folder.shared.counts.lock().unwrap().no_hold_before;
        wait_for("the fold waited on", || folder.done() >= waited_on);
        // Holds again, on a fold asked after the commit (stalled, so the
        // wait is seen whole).
        let stall = shared.stall.lock().unwrap();
        commit(&store, 50);
        let (took, on) = timed(&folder, true);
        assert!(on && took >= hold, "a wait again ({took:?})");
        drop(stall);
        folder.stop(&mut store);
    }

    /// The first fold (of what a process before left in the log, which
    /// may be gigabytes) is never waited for, behind or not.
    #[test]
    fn the_first_fold_is_never_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let hold = Duration::from_secs(2);
        let shared = Arc::new(Shared::new());
        let stall = shared.stall.lock().unwrap();
        let (mut store, folder) = folded(dir.path(), hold, &shared);
        commit(&store, 50);
        let pages = shared.pages.load(Ordering::Acquire);
        assert!(pages >= HOLD_PAST * 10, "past the hold: {pages} pages");
        let (took, on) = timed(&folder, true);
        assert!(on && took < hold, "no wait on the first fold ({took:?})");
        assert_eq!(folder.done(), 0, "the first fold still under way");
        drop(stall);
        wait_for("the first fold", || folder.done() >= 1);
        folder.stop(&mut store);
    }

    /// Folds that keep failing end the thread after
    /// `FAILURES_BEFORE_GIVING_UP`: `after_commit` then says so (the
    /// follower folds on its commits again), and the stop sets SQLite's
    /// own fold back.
    #[test]
    fn failing_folds_end_the_thread_and_the_commits_fold_again() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared::new());
        shared.fail.store(true, Ordering::Release);
        let (mut store, folder) = folded(dir.path(), Duration::from_secs(2), &shared);
        commit(&store, 50);
        // The thread ends after its third failed fold (asks made while a
        // fold is under way are served by the next).
        wait_for("the thread to give up", || !folder.after_commit(false));
        assert!(folder.thread.as_ref().is_some_and(JoinHandle::is_finished));
        assert_eq!(
            shared.failed.load(Ordering::Acquire),
            FAILURES_BEFORE_GIVING_UP,
            "folds failed before it gave up"
        );
        folder.stop(&mut store);
        assert_eq!(fold_every(&store), 1000, "the commits fold again");
    }
}
