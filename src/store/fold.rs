//! Folding SQLite's log into the store's file on a thread and a
//! connection of its own, beside the follower.
//!
//! SQLite in WAL mode appends each commit to its log (`-wal`); a fold (a
//! SQLite "checkpoint") copies the log's pages into the file so that the
//! log can start again. Left to the follower's commits (SQLite's
//! automatic fold), a fold runs inside the commit that crossed the
//! threshold, with the follower's gate held: the batches the journal's
//! writer hands on wait behind it. That fold is usually a few tens of
//! megabytes, but after a checkpoint build's long read (which keeps the
//! log from being folded), or at the start after a crash during one, the
//! log holds gigabytes: 2.7 GB at N = 10 M, about 1.5 s to fold, which a
//! start used to spend before serving.
//!
//! Here the follower's connection never folds. After each of its commits
//! SQLite tells it how many pages the log holds; past
//! [`super::FOLD_EVERY_PAGES`] a nudge wakes this thread, whose
//! connection folds in SQLite's passive mode: it copies what no reader
//! still needs while the follower goes on committing, and waits for no
//! one. SQLite documents this split (automatic folds off, a thread that
//! folds) for applications that keep the fold off their commits.
//!
//! Folding changes no durability: a commit is durable in the log (or
//! not) as before, and the fold flushes the log before copying it and
//! the file after.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::Connection;

#[cfg(doc)]
use super::FOLD_EVERY_PAGES;
use super::{Store, StoreError, sqlite};

/// How large SQLite's log file is left once it has been folded and starts
/// again, in bytes: without a limit it keeps its largest size (gigabytes
/// after a checkpoint build's long read) on disk for good.
pub const LOG_KEPT_BYTES: i64 = 64 * 1024 * 1024;

/// The thread that folds SQLite's log while the follower writes.
#[derive(Debug)]
pub(super) struct Folder {
    thread: Option<JoinHandle<()>>,
}

impl Folder {
    /// Takes the folds off `store`'s commits and starts the thread that
    /// does them on its own connection, once the log holds `every` pages
    /// ([`FOLD_EVERY_PAGES`] for the follower); the first fold starts at
    /// once (what a process before left in the log).
    pub(super) fn start(store: &mut Store, every: i64) -> Result<Folder, StoreError> {
        let path = store.path().to_owned();
        let conn = Connection::open(&path).map_err(sqlite("opening a folder of", &path))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(sqlite("setting up a folder of", &path))?;
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        // The automatic fold goes first: setting it replaces the hook.
        store.fold_every(0)?;
        store
            .conn
            .execute_batch(&format!("PRAGMA journal_size_limit = {LOG_KEPT_BYTES};"))
            .map_err(sqlite("setting up", &path))?;
        let hook = nudge.clone();
        store
            .conn
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
                if i64::from(pages) >= every {
                    // Full: a nudge is already waiting. Gone: the thread
                    // ended (it logged why); the log then grows until the
                    // next start folds it.
                    let _ = hook.try_send(());
                }
                Ok(())
            }))
            .map_err(sqlite("setting up", &path))?;
        let _ = nudge.try_send(());
        drop(nudge);
        let thread = std::thread::Builder::new()
            .name("store-folder".into())
            .spawn(move || fold(&conn, &path, &nudged))
            .map_err(|e| StoreError::Format {
                path: store.path().to_owned(),
                reason: format!("starting the thread that folds its log: {e}"),
            })?;
        Ok(Folder {
            thread: Some(thread),
        })
    }

    /// Stops the thread, after the fold under way: the hook that nudges
    /// it goes, and with it the last sender. `store`'s commits fold
    /// again as SQLite's default has them.
    pub(super) fn stop(mut self, store: &mut Store) {
        let none: Option<fn(&mut rusqlite::hooks::Wal, std::ffi::c_int) -> rusqlite::Result<()>> =
            None;
        if let Err(e) = store.conn.wal_hook(none) {
            tracing::warn!(error = %e, "the hook that wakes the store's folder could not be removed");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = store.fold_every(1000) {
            tracing::warn!(error = %e, "SQLite's automatic fold could not be set back");
        }
    }
}

/// The folder's loop: a passive fold per nudge, until no sender is left.
fn fold(conn: &Connection, path: &Path, nudged: &Receiver<()>) {
    let folds = metrics::counter!("compliance_guard_store_log_folds_total");
    while nudged.recv().is_ok() {
        let started = Instant::now();
        match passive(conn, path) {
            Ok((log, folded)) => {
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
            Err(e) => {
                tracing::warn!(error = %e, "SQLite's log could not be folded into the store's file; the next nudge tries again");
            }
        }
    }
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

    /// The store's file and its log, in bytes.
    fn sizes(dir: &Path) -> (u64, u64) {
        let file = super::super::path_in(dir);
        let log = file.with_extension("sqlite3-wal");
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        (len(&file), len(&log))
    }

    /// Commits of about 40 pages each, on the store's connection.
    fn commit(store: &Store, n: usize) {
        for _ in 0..n {
            store
                .conn
                .execute("INSERT INTO filler (bytes) VALUES (zeroblob(160000))", [])
                .unwrap();
        }
    }

    /// The store's commits never fold: the folder's thread does, once
    /// the log holds the pages it was given, and after it stopped the
    /// commits fold as SQLite's default has them.
    #[test]
    fn the_folder_folds_off_the_commits_and_hands_back_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE filler (bytes BLOB)")
            .unwrap();
        store.checkpoint().unwrap();
        let (file_before, _) = sizes(dir.path());
        // Far past the threshold: a fold on the commit would grow the file.
        store.fold_every(0).unwrap();
        commit(&store, 30);
        let (file, log) = sizes(dir.path());
        assert_eq!(file, file_before, "no commit folded");
        assert!(log > 4_000_000, "the log holds the commits: {log}");

        // The folder's first fold (at its start) takes the log as it is.
        let folder = Folder::start(&mut store, 200).unwrap();
        let waited = Instant::now();
        while sizes(dir.path()).0 < file_before + 4_000_000 {
            assert!(waited.elapsed().as_secs() < 20, "the folder never folded");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Its later ones come with the commits that fill the log again;
        // the commits themselves still fold nothing.
        let (file, _) = sizes(dir.path());
        commit(&store, 10);
        while sizes(dir.path()).0 < file + 1_500_000 {
            assert!(waited.elapsed().as_secs() < 20, "no fold after the commits");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        folder.stop(&mut store);
        let pages: i64 = store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, 1000, "the commits fold again once stopped");
    }
}
