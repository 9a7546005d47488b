//! The journal: an append-only log under the in-memory index, so that
//! nothing acknowledged is lost on a restart, a crash (`kill -9`) or, with
//! the default durability, a power cut.
//!
//! # Files
//!
//! ```text
//! DATA_DIR/LOCK                        held by the running server (flock)
//! DATA_DIR/journal/snapshot-GGGGGGGG.snap  full state at the start of generation G
//! DATA_DIR/journal/journal-GGGGGGGG.log    every change since, in order
//! ```
//!
//! Each file starts with an 8-byte header: `CGJL`, the format version (u16,
//! little-endian; this is version 1) and the kind (u16: 0 journal, 1
//! snapshot). Then records, each framed as `[length u32][crc32 u32][payload]`
//! (little-endian), the payload a protobuf `complianceguard.journal.v1.Record`
//! holding the full new state of one thing.
//!
//! # Writing
//!
//! Writers append under the guard's lock, so the file order is the order
//! the changes were made in. A single writer thread takes everything
//! appended so far, writes it, and (in [`Durability::Sync`]) calls
//! `fdatasync` once for the whole batch: concurrent writers share one
//! flush (group commit). A caller answers OK only after its record is
//! durable. Because the log is sequential, a durable record implies that
//! every record before it is durable too. Each batch's write-and-flush time
//! and record count go to the `compliance_guard_journal_sync_seconds` and
//! `compliance_guard_journal_batch_records` histograms: the flush is what
//! a reserving Check waits for, and the batch size shows how much group
//! commit is sharing it.
//!
//! # Reading
//!
//! At start the latest snapshot is read, then the journal after it. A
//! record cut short at the very end of the last file (a crash mid-write) is
//! reported with its offset and cut off. A checksum failure anywhere else
//! stops the start with the file and offset: nothing is silently skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use prost::Message;
use tokio::sync::watch;

use crate::pb::journal::{Batch, Record, record::Op};

/// The file header's magic bytes.
pub const MAGIC: &[u8; 4] = b"CGJL";
/// The format version this release writes and reads.
pub const VERSION: u16 = 1;
/// Largest record accepted, in bytes; a longer length is corruption.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
const HEADER_LEN: u64 = 8;

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

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file operation failed.
    #[error("{action} `{path}`: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        cause: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error(
        "the data directory `{0}` is in use by another compliance-guard process (it holds `LOCK`); stop it first, or use another --data-dir"
    )]
    Locked(PathBuf),
    /// A file is not a journal of ours, or of a format we do not read.
    #[error("`{path}` is not a compliance-guard journal of format version {VERSION}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A damaged record before the end of a file.
    #[error(
        "`{path}` is damaged at byte offset {offset}: {reason}; the start is refused so that nothing is silently skipped (restore from a backup, or move the file away to start without it)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The writer failed earlier; nothing more can be made durable.
    #[error("the journal failed to write and is closed: {0}")]
    Failed(String),
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |cause| JournalError::Io {
        action,
        path: path.to_owned(),
        cause,
    }
}

/// Frames one record: length, checksum, payload.
pub fn frame(record: &Record, out: &mut Vec<u8>) {
    let payload = record.encode_to_vec();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

fn header(kind: u16) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[6..].copy_from_slice(&kind.to_le_bytes());
    h
}

/// How a file ended when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEnd {
    /// Whole records read.
    pub records: u64,
    /// Bytes of whole records, header included: where the next record goes.
    pub good_len: u64,
    /// A record cut short at the end: its offset and why.
    pub torn: Option<(u64, String)>,
}

/// Reads every whole record of a file in order, calling `each`. A record
/// cut short (or failing its checksum) at the very end is reported in
/// [`ReadEnd::torn`]; anywhere else it is [`JournalError::Corrupt`].
pub fn read_file(
    path: &Path,
    kind: u16,
    mut each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<ReadEnd, JournalError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut h = [0u8; 8];
    if len < HEADER_LEN {
        if kind == 0 {
            // A journal created just before a crash, its header not yet on
            // disk: it holds nothing, so it is a torn tail at offset 0.
            return Ok(ReadEnd {
                records: 0,
                good_len: 0,
                torn: Some((0, format!("only {len} bytes, shorter than the header"))),
            });
        }
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!("only {len} bytes, shorter than the header"),
        });
    }
    r.read_exact(&mut h).map_err(io("reading", path))?;
    if &h[..4] != MAGIC {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: "the magic bytes are not `CGJL`".into(),
        });
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!("it is version {version}"),
        });
    }
    let file_kind = u16::from_le_bytes([h[6], h[7]]);
    if file_kind != kind {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!("it is of kind {file_kind}, expected {kind}"),
        });
    }
    let mut offset = HEADER_LEN;
    let mut records = 0;
    let mut payload = Vec::new();
    loop {
        let left = len - offset;
        if left == 0 {
            return Ok(ReadEnd {
                records,
                good_len: offset,
                torn: None,
            });
        }
        let torn = |reason: String| {
            Ok(ReadEnd {
                records,
                good_len: offset,
                torn: Some((offset, reason)),
            })
        };
        if left < 8 {
            return torn(format!("{left} bytes, shorter than a record's frame"));
        }
        let mut f = [0u8; 8];
        r.read_exact(&mut f).map_err(io("reading", path))?;
        let rec_len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        let crc = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        let end = offset + 8 + u64::from(rec_len);
        if rec_len == 0 {
            // No record is empty. Zeros here are space the file system
            // allocated but the data never reached (a power cut): a torn
            // tail if only zeros follow, damage otherwise.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(io("reading", path))?;
            if crc == 0 && rest.iter().all(|b| *b == 0) {
                return torn(format!("{left} zero bytes after the last record"));
            }
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: "an empty record".into(),
            });
        }
        if rec_len > MAX_RECORD_BYTES {
            // No record is this long, and a crash cuts bytes off rather than
            // changing them: this is damage, wherever it is.
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: format!(
                    "a record length of {rec_len} bytes is more than the {MAX_RECORD_BYTES} allowed"
                ),
            });
        }
        if end > len {
            // A record that runs past the end is a torn write only if
            // nothing whole follows it: a damaged length in the middle of
            // the file would otherwise cut off acknowledged records.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(io("reading", path))?;
            if let Some(at) = whole_frame_in(&rest) {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason: format!(
                        "the record says {rec_len} bytes, past the end of the file, but a whole record follows at offset {}",
                        offset + 8 + at
                    ),
                });
            }
            return torn(format!(
                "the record says {rec_len} bytes but the file ends after {}",
                left - 8
            ));
        }
        payload.resize(rec_len as usize, 0);
        r.read_exact(&mut payload).map_err(io("reading", path))?;
        if crc32fast::hash(&payload) != crc {
            let reason = "the checksum does not match".to_owned();
            return if end == len {
                torn(reason)
            } else {
                Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason,
                })
            };
        }
        let record = Record::decode(payload.as_slice()).map_err(|e| JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: format!("the record does not decode: {e}"),
        })?;
        if !known(&record) {
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason:
                    "a record of a kind this release does not know (written by a newer release?)"
                        .into(),
            });
        }
        each(record)?;
        records += 1;
        offset = end;
    }
}

/// True if this release knows the record's kind, and the kind of every
/// record in it (a batch's). An unknown kind decodes as no `op` at all
/// (a newer release's record); reading on would drop it silently, and a
/// backup would copy it emptied.
fn known(record: &Record) -> bool {
    match &record.op {
        None => false,
        Some(Op::Batch(b)) => b.records.iter().all(known),
        Some(_) => true,
    }
}

/// The offset of the first whole, checksummed frame in `bytes`, if any.
fn whole_frame_in(bytes: &[u8]) -> Option<u64> {
    let n = bytes.len();
    (0..n.saturating_sub(8)).find_map(|p| {
        let len = u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
        let crc = u32::from_le_bytes([bytes[p + 4], bytes[p + 5], bytes[p + 6], bytes[p + 7]]);
        let end = p + 8 + len as usize;
        (len > 0
            && len <= MAX_RECORD_BYTES
            && end <= n
            && crc32fast::hash(&bytes[p + 8..end]) == crc)
            .then_some(p as u64)
    })
}

/// The files of a data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The data directory.
    pub dir: PathBuf,
}

impl Layout {
    /// The journal directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.dir.join("journal")
    }
    /// The journal of generation `g`.
    pub fn journal(&self, g: u64) -> PathBuf {
        self.journal_dir().join(format!("journal-{g:08}.log"))
    }
    /// The snapshot of generation `g`.
    pub fn snapshot(&self, g: u64) -> PathBuf {
        self.journal_dir().join(format!("snapshot-{g:08}.snap"))
    }

    /// The generations present: `(snapshots, journals)`, each sorted.
    pub fn generations(&self) -> Result<(Vec<u64>, Vec<u64>), JournalError> {
        let dir = self.journal_dir();
        let mut snaps = Vec::new();
        let mut logs = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((snaps, logs)),
            Err(e) => {
                return Err(JournalError::Io {
                    action: "listing",
                    path: dir,
                    cause: e,
                });
            }
        };
        for entry in entries {
            let name = entry.map_err(io("listing", &dir))?.file_name();
            let name = name.to_string_lossy();
            let generation_of = |prefix: &str, suffix: &str| {
                name.strip_prefix(prefix)?
                    .strip_suffix(suffix)?
                    .parse::<u64>()
                    .ok()
            };
            if let Some(g) = generation_of("snapshot-", ".snap") {
                snaps.push(g);
            } else if let Some(g) = generation_of("journal-", ".log") {
                logs.push(g);
            }
        }
        snaps.sort_unstable();
        logs.sort_unstable();
        Ok((snaps, logs))
    }
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// The generation now being written.
    pub generation: u64,
    /// Records read from the snapshot.
    pub snapshot_records: u64,
    /// Records read from the journal(s) after it.
    pub journal_records: u64,
    /// A torn last record that was cut off: file, offset, reason.
    pub cut: Option<(PathBuf, u64, String)>,
}

/// Reads a data directory's snapshot and journals in order, calling `each`
/// for every record. Needs no lock: a reader (backup, replay) may run while
/// a server writes; a torn last record is then simply not read.
pub fn replay(
    layout: &Layout,
    mut each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<Replayed, JournalError> {
    let (snaps, logs) = layout.generations()?;
    let mut out = Replayed::default();
    let base = snaps.last().copied();
    if let Some(g) = base {
        let end = read_file(&layout.snapshot(g), 1, &mut each)?;
        if let Some((offset, reason)) = end.torn {
            // Snapshots are written whole and renamed into place; a torn one
            // is damage, not a crash mid-write.
            return Err(JournalError::Corrupt {
                path: layout.snapshot(g),
                offset,
                reason,
            });
        }
        out.snapshot_records = end.records;
        out.generation = g;
    }
    let logs: Vec<u64> = logs
        .into_iter()
        .filter(|g| base.is_none_or(|b| *g >= b))
        .collect();
    for (i, g) in logs.iter().enumerate() {
        let path = layout.journal(*g);
        let end = read_file(&path, 0, &mut each)?;
        out.journal_records += end.records;
        out.generation = out.generation.max(*g);
        if let Some((offset, reason)) = end.torn {
            if i + 1 != logs.len() {
                return Err(JournalError::Corrupt {
                    path,
                    offset,
                    reason,
                });
            }
            out.cut = Some((path, offset, reason));
        }
    }
    Ok(out)
}

/// Writes a snapshot of generation `g` from `records` atomically.
pub fn write_snapshot(
    layout: &Layout,
    g: u64,
    records: impl Iterator<Item = Record>,
) -> Result<u64, JournalError> {
    write_file(&layout.snapshot(g), 1, records)
}

/// Writes a file of `kind` (0 journal, 1 snapshot or backup) atomically: a
/// temporary file beside it, flushed, renamed into place, and the
/// directory flushed. Returns the records written.
pub fn write_file(
    path: &Path,
    kind: u16,
    records: impl Iterator<Item = Record>,
) -> Result<u64, JournalError> {
    let mut w = FileWriter::create(path, kind)?;
    for r in records {
        w.push(&r)?;
    }
    w.finish()
}

/// A file written record by record and put in place whole at the end: a
/// backup or restore streams through it without holding the history in
/// memory.
#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    tmp: PathBuf,
    w: BufWriter<File>,
    buf: Vec<u8>,
    n: u64,
}

impl FileWriter {
    /// Starts a temporary file beside `path`, with the header of `kind`.
    pub fn create(path: &Path, kind: u16) -> Result<FileWriter, JournalError> {
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(io("creating", &tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(&header(kind)).map_err(io("writing", &tmp))?;
        Ok(FileWriter {
            path: path.to_owned(),
            tmp,
            w,
            buf: Vec::new(),
            n: 0,
        })
    }

    /// Appends one record.
    pub fn push(&mut self, r: &Record) -> Result<(), JournalError> {
        self.buf.clear();
        frame(r, &mut self.buf);
        self.w
            .write_all(&self.buf)
            .map_err(io("writing", &self.tmp))?;
        self.n += 1;
        Ok(())
    }

    /// Flushes the file, renames it into place and flushes the directory.
    /// Returns the records written.
    pub fn finish(self) -> Result<u64, JournalError> {
        let FileWriter {
            path, tmp, w, n, ..
        } = self;
        let file = w.into_inner().map_err(|e| JournalError::Io {
            action: "writing",
            path: tmp.clone(),
            cause: e.into_error(),
        })?;
        file.sync_all().map_err(io("flushing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming", &tmp))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(dir)?;
        }
        Ok(n)
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    fsync_dir(dir).map_err(io("flushing the directory", dir))
}

/// Makes a directory's entries (new names, renames) durable: a file renamed
/// into place survives a power cut only once its directory is flushed. The
/// rules archive uses it too.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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

/// A write that will be durable: wait on it before answering.
#[derive(Debug)]
pub struct Commit {
    seq: u64,
    shared: Option<Arc<Shared>>,
}

impl Commit {
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
    _lock: File,
    layout: Layout,
    generation: u64,
}

/// Takes the data directory's lock, or says who holds it.
pub fn lock(dir: &Path) -> Result<File, JournalError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(JournalError::Io {
            action: "locking",
            path,
            cause: e,
        }),
    }
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
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_loop(&writer_shared, file, &path, durability))
            .map_err(io("starting the writer thread for", &layout.dir))?;
        Ok(Journal {
            shared,
            writer: Some(writer),
            _lock: lock,
            layout: layout.clone(),
            generation,
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
        // One operation's records travel as one frame, so that a crash
        // never leaves half of an operation in the journal.
        if let [one] = records {
            frame(one, &mut p.buf);
        } else {
            // A kind an older release must refuse travels alone: inside a
            // batch, an older backup would copy it emptied instead.
            if records
                .iter()
                .any(|r| matches!(r.op, Some(Op::RestrictionV2(_))))
            {
                return Err(JournalError::Failed(
                    "a restriction_v2 record must be appended on its own, never in a batch".into(),
                ));
            }
            let batch = Record {
                op: Some(Op::Batch(Batch {
                    records: records.to_vec(),
                })),
            };
            frame(&batch, &mut p.buf);
        }
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

    /// The generation being written.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Writes out everything appended and stops the writer.
    pub fn close(mut self) {
        self.stop();
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

fn write_loop(shared: &Shared, mut file: File, path: &Path, durability: Durability) {
    let mut batch = Vec::new();
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
        let result = file.write_all(&batch).and_then(|()| match durability {
            Durability::Sync => file.sync_data(),
            Durability::Buffered => Ok(()),
        });
        batch.clear();
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
                let why = format!("writing `{}`: {e}", path.display());
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
    }
}
