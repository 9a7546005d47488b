//! The journal appended to while serving: records framed under the
//! guard's lock, one writer thread that writes and flushes each batch
//! (group commit), the [`Durability`] it waits for, the [`Commit`] a caller
//! waits on before answering, and the writer's [`Stats`].
//!
//! Apart from the files and recovery: this is the only part that runs
//! while the server serves, and the only one with a thread.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::files::sync_dir;
use super::format::{frame_operation, header};
use super::{JournalError, Layout, io};
use crate::pb::journal::{Record, record::Op};

/// What a write waits for before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fdatasync` before the answer: survives a process crash and a power
    /// cut. The default.
    #[default]
    Sync,
    /// `write` to the operating system before the answer, no flush: survives
    /// a process crash (`kill -9`) but not a power cut or kernel crash. For
    /// tests and benchmarks.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Durability::Sync),
            "buffered" => Ok(Durability::Buffered),
            other => Err(format!(
                "unknown durability `{other}`; allowed: sync, buffered"
            )),
        }
    }
}

/// The durable point: every record up to `seq` is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Durable {
    seq: u64,
    failed: bool,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    records: u64,
    next_seq: u64,
    closed: bool,
    failure: Option<String>,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    durable_now: Mutex<Durable>,
    durable_cv: Condvar,
    stats: Mutex<Stats>,
}

/// Counters of the writer, for metrics and the figures of docs/performance.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches written (one flush each in `Sync` mode).
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// The largest batch, in records.
    pub largest_batch: u64,
}

/// Where the writer hands what it made durable, so that the store
/// follows the journal while the server serves ([`crate::store::Follower`]),
/// and when it rolls to a new generation.
#[derive(Debug)]
pub struct Tap {
    /// Receives every durable batch and every roll, in the journal's
    /// order. Bounded: a store that falls far behind slows the writer
    /// down rather than growing memory.
    pub to: SyncSender<Tapped>,
    /// Frames the open generation already holds when it opens.
    pub frames: u64,
    /// Roll to a new generation once the open one holds this many frames,
    /// so that the journal the store has applied can be deleted while the
    /// server runs (0: never).
    pub roll_after: u64,
}

/// What the writer hands on ([`Tap`]).
#[derive(Debug)]
pub enum Tapped {
    /// Whole frames, durable as the journal's [`Durability`] makes them.
    Frames {
        /// Their generation.
        generation: u64,
        /// The frames' bytes, as in the file.
        bytes: Vec<u8>,
        /// How many frames the generation holds after these.
        end: u64,
        /// The [`Commit::seq`] of the last of them.
        seq: u64,
    },
    /// The journal rolled: every frame of the generation before was handed
    /// on (and flushed to disk); the next frames are of `generation`.
    Rolled {
        /// The new generation.
        generation: u64,
    },
}

/// A write that will be durable: wait on it before answering.
#[derive(Debug)]
pub struct Commit {
    seq: u64,
    shared: Option<Arc<Shared>>,
}

impl Commit {
    /// Its place in the order of everything appended since the journal
    /// opened (0: none): what the store has applied is measured against it
    /// ([`Tapped::Frames`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// A commit with nothing to wait for (no journal).
    pub fn none() -> Commit {
        Commit {
            seq: 0,
            shared: None,
        }
    }

    /// Waits until the records are durable.
    pub async fn wait(self) -> Result<(), JournalError> {
        let Some(shared) = self.shared else {
            return Ok(());
        };
        let mut rx = shared.durable.subscribe();
        let seq = self.seq;
        let d = *rx
            .wait_for(|d| d.seq >= seq || d.failed)
            .await
            .map_err(|_| JournalError::Failed("the journal writer stopped".into()))?;
        if d.seq >= seq {
            Ok(())
        } else {
            Err(failure(&shared))
        }
    }

    /// Waits until the records are durable, blocking the thread (for
    /// commands that run outside an async runtime).
    pub fn wait_blocking(self) -> Result<(), JournalError> {
        let Some(shared) = self.shared else {
            return Ok(());
        };
        let mut d = shared
            .durable_now
            .lock()
            .map_err(|_| JournalError::Failed("lock poisoned".into()))?;
        while d.seq < self.seq && !d.failed {
            d = shared
                .durable_cv
                .wait(d)
                .map_err(|_| JournalError::Failed("lock poisoned".into()))?;
        }
        if d.seq >= self.seq {
            Ok(())
        } else {
            drop(d);
            Err(failure(&shared))
        }
    }
}

fn failure(shared: &Shared) -> JournalError {
    let why = shared
        .pending
        .lock()
        .ok()
        .and_then(|p| p.failure.clone())
        .unwrap_or_else(|| "unknown".into());
    JournalError::Failed(why)
}

/// An open journal: the data directory's lock and the writer thread.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// The data directory's lock, held while the journal is open.
    lock: Option<File>,
    layout: Layout,
}

impl Journal {
    /// Opens generation `generation` for appending (created if missing), cut
    /// to `good_len` bytes if a torn record was found there, with the lock
    /// already taken.
    pub fn open(
        layout: &Layout,
        lock: File,
        generation: u64,
        cut_to: Option<u64>,
        durability: Durability,
        tap: Option<Tap>,
    ) -> Result<Journal, JournalError> {
        let dir = layout.journal_dir();
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = layout.journal(generation);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        let len = file
            .metadata()
            .map_err(io("reading the size of", &path))?
            .len();
        let mut len = len;
        if let Some(good) = cut_to
            && good < len
        {
            file.set_len(good).map_err(io("cutting", &path))?;
            file.sync_all().map_err(io("flushing", &path))?;
            len = good;
        }
        if len == 0 {
            file.write_all(&header(0)).map_err(io("writing", &path))?;
            file.sync_all().map_err(io("flushing", &path))?;
            sync_dir(&dir)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io("seeking", &path))?;
        let (tx, _) = watch::channel(Durable::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                next_seq: 1,
                ..Pending::default()
            }),
            wake: Condvar::new(),
            durable: tx,
            durable_now: Mutex::new(Durable::default()),
            durable_cv: Condvar::new(),
            stats: Mutex::new(Stats::default()),
        });
        let writer_shared = Arc::clone(&shared);
        let open = Open {
            file,
            path,
            layout: layout.clone(),
            generation,
            durability,
            tap,
            fail_with: crate::hooks::fail_write_with(),
        };
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_loop(&writer_shared, open))
            .map_err(io("starting the writer thread for", &layout.dir))?;
        Ok(Journal {
            shared,
            writer: Some(writer),
            lock: Some(lock),
            layout: layout.clone(),
        })
    }

    /// Appends records; the returned [`Commit`] resolves once they are
    /// durable. With no records it resolves once everything appended before
    /// is durable. Fails at once if the writer has failed before.
    pub fn append(&self, records: &[Record]) -> Result<Commit, JournalError> {
        let mut p = self
            .shared
            .pending
            .lock()
            .map_err(|_| JournalError::Failed("lock poisoned".into()))?;
        if let Some(why) = &p.failure {
            return Err(JournalError::Failed(why.clone()));
        }
        if p.closed {
            return Err(JournalError::Failed("the journal is closed".into()));
        }
        if records.is_empty() {
            // A barrier: wait for everything appended before.
            let seq = p.next_seq - 1;
            return Ok(Commit {
                seq,
                shared: Some(Arc::clone(&self.shared)),
            });
        }
        // A kind an older release must refuse travels alone: inside a
        // batch, an older backup would copy it emptied instead.
        if records.len() > 1
            && records
                .iter()
                .any(|r| matches!(r.op, Some(Op::RestrictionV2(_))))
        {
            return Err(JournalError::Failed(
                "a restriction_v2 record must be appended on its own, never in a batch".into(),
            ));
        }
        frame_operation(records, &mut p.buf);
        p.records += records.len() as u64;
        let seq = p.next_seq;
        p.next_seq += 1;
        drop(p);
        self.shared.wake.notify_one();
        Ok(Commit {
            seq,
            shared: Some(Arc::clone(&self.shared)),
        })
    }

    /// The [`Commit::seq`] of the last frame appended (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.shared
            .pending
            .lock()
            .map_or(0, |p| p.next_seq.saturating_sub(1))
    }

    /// True once a write has failed: the guard then answers no Check.
    pub fn failed(&self) -> bool {
        self.shared
            .pending
            .lock()
            .map_or(true, |p| p.failure.is_some())
    }

    /// The writer's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The files this journal writes.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Writes out everything appended and stops the writer.
    pub fn close(mut self) {
        self.stop();
    }

    /// [`Journal::close`], keeping the data directory's lock: for a
    /// caller with more to finish before another process may open the
    /// directory (the store applying the journal's last batches). Also
    /// says whether every frame appended was written: `false` once a
    /// write failed, when what was appended after it is not in the
    /// journal (though the caller may have applied it).
    pub fn close_keeping_lock(mut self) -> (Option<File>, bool) {
        self.stop();
        (self.lock.take(), !self.failed())
    }

    fn stop(&mut self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.closed = true;
        }
        self.shared.wake.notify_all();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The file the writer writes and what it hands on.
struct Open {
    file: File,
    path: PathBuf,
    layout: Layout,
    generation: u64,
    durability: Durability,
    tap: Option<Tap>,
    /// The bytes whose batch fails to be written
    /// ([`crate::hooks::fail_write_with`]).
    fail_with: Option<Vec<u8>>,
}

impl Open {
    /// True if `batch` is to fail ([`crate::hooks::fail_write_with`]).
    fn fails(&self, batch: &[u8]) -> bool {
        self.fail_with
            .as_deref()
            .is_some_and(|m| batch.windows(m.len()).any(|w| w == m))
    }

    /// Hands durable frames on; a follower that has stopped is let go.
    fn hand_on(&mut self, bytes: Vec<u8>, frames: u64, seq: u64) {
        let Some(tap) = &mut self.tap else {
            return;
        };
        tap.frames += frames;
        let sent = tap.to.send(Tapped::Frames {
            generation: self.generation,
            bytes,
            end: tap.frames,
            seq,
        });
        if sent.is_err() {
            tracing::error!(
                "the store stopped following the journal; the journal keeps every write, and the next start applies it"
            );
            self.tap = None;
        }
    }

    /// Rolls to the next generation once the open one holds enough frames:
    /// the old file is flushed (no torn record may end a generation that
    /// is not the newest), the new one created with its header and
    /// flushed, with the directory. A failure keeps writing the old file.
    fn roll_if_due(&mut self) {
        let Some(tap) = &mut self.tap else {
            return;
        };
        if tap.roll_after == 0 || tap.frames < tap.roll_after {
            return;
        }
        let next = self.generation + 1;
        let path = self.layout.journal(next);
        let mut created = false;
        let opened = self.file.sync_all().and_then(|()| {
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)?;
            created = true;
            f.write_all(&header(0))?;
            f.sync_all()?;
            Ok(f)
        });
        let rolled = opened
            .map_err(io("creating", &path))
            .and_then(|f| sync_dir(&self.layout.journal_dir()).map(|()| f));
        if rolled.is_err() && created {
            // The next generation half made is taken away: the writer goes
            // on in this one, which must stay the newest (a torn record
            // may end only the newest), and the next roll creates it anew.
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::error!(error = %e, file = %path.display(), "a journal generation half made by a failed roll could not be removed; remove it before the next start");
            }
        }
        match rolled {
            Ok(f) => {
                self.file = f;
                self.path = path;
                self.generation = next;
                tap.frames = 0;
                if tap.to.send(Tapped::Rolled { generation: next }).is_err() {
                    self.tap = None;
                }
            }
            Err(e) => {
                // Try again after as many frames more.
                tap.roll_after = tap.frames.saturating_add(tap.roll_after);
                tracing::error!(error = %e, "the journal could not roll to a new generation; it keeps growing until it can");
            }
        }
    }
}

fn write_loop(shared: &Shared, mut open: Open) {
    let mut batch = Vec::new();
    let mut handed_seq = 0u64;
    // The handles are taken once, not per batch: the recorder is installed
    // before the journal opens (`serve`), so these are the live ones.
    let sync_seconds = metrics::histogram!("compliance_guard_journal_sync_seconds");
    let batch_records = metrics::histogram!("compliance_guard_journal_batch_records");
    loop {
        let (records, last_seq) = {
            let Ok(mut p) = shared.pending.lock() else {
                return;
            };
            while p.buf.is_empty() && !p.closed {
                p = match shared.wake.wait(p) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            if p.buf.is_empty() && p.closed {
                return;
            }
            std::mem::swap(&mut batch, &mut p.buf);
            let records = std::mem::take(&mut p.records);
            (records, p.next_seq - 1)
        };
        let started = std::time::Instant::now();
        let result = if open.fails(&batch) {
            Err(std::io::Error::other(format!(
                "failed by {}",
                crate::hooks::FAIL_WRITE_WITH
            )))
        } else {
            let file = &mut open.file;
            file.write_all(&batch).and_then(|()| match open.durability {
                Durability::Sync => file.sync_data(),
                Durability::Buffered => Ok(()),
            })
        };
        let durable = match result {
            Ok(()) => {
                sync_seconds.record(started.elapsed().as_secs_f64());
                batch_records.record(records as f64);
                if let Ok(mut s) = shared.stats.lock() {
                    s.batches += 1;
                    s.records += records;
                    s.largest_batch = s.largest_batch.max(records);
                }
                Durable {
                    seq: last_seq,
                    failed: false,
                }
            }
            Err(e) => {
                let why = format!("writing `{}`: {e}", open.path.display());
                tracing::error!("{why}; no further write will be acknowledged");
                if let Ok(mut p) = shared.pending.lock() {
                    p.failure = Some(why);
                }
                Durable {
                    seq: 0,
                    failed: true,
                }
            }
        };
        if durable.failed {
            batch.clear();
        } else {
            // Handed on before the waiters wake: the store never lags
            // an answer by more than the follower's own work.
            let frames = last_seq - handed_seq;
            handed_seq = last_seq;
            if open.tap.is_some() {
                let room = batch.capacity();
                let bytes = std::mem::replace(&mut batch, Vec::with_capacity(room));
                open.hand_on(bytes, frames, last_seq);
            } else {
                batch.clear();
            }
        }
        if let Ok(mut d) = shared.durable_now.lock() {
            *d = Durable {
                seq: d.seq.max(durable.seq),
                failed: durable.failed,
            };
        }
        shared.durable_cv.notify_all();
        shared.durable.send_modify(|d| {
            *d = Durable {
                seq: d.seq.max(durable.seq),
                failed: durable.failed,
            }
        });
        if durable.failed {
            return;
        }
        open.roll_if_due();
    }
}
