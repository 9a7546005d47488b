//! The files of a data directory: where each generation's journal and
//! snapshot live, writing a whole file atomically (a temporary file,
//! flushed, renamed into place, the directory flushed), and the data
//! directory's lock.
//!
//! Apart from the writer: these files are written whole, once (a
//! snapshot, a backup, a restore), not appended to while serving.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{frame, header};
use super::{JournalError, io};
use crate::pb::journal::Record;

/// The files of a data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The data directory.
    pub dir: PathBuf,
}

/// The file that marks a data directory as a cluster node's (holding the
/// cluster's stream name): its store alone is its history, at the
/// stream's sequence it reached, and it has no journal. A single node
/// refuses it, and a node of another stream too.
pub const CLUSTER_MARKER: &str = "CLUSTER";

impl Layout {
    /// The cluster marker's path ([`CLUSTER_MARKER`]).
    pub fn cluster_marker(&self) -> PathBuf {
        self.dir.join(CLUSTER_MARKER)
    }

    /// True for a cluster node's data directory.
    pub fn is_cluster_node(&self) -> bool {
        self.cluster_marker().exists()
    }

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
    /// How many records the snapshot of generation `g` holds, written
    /// before the snapshot is renamed into place: a snapshot cut exactly at
    /// a record's end reads as a whole, shorter one, and only this count
    /// tells (a file beside it, so that the snapshot's own bytes, and what
    /// older releases read, stay as they were). A snapshot without one (an
    /// older release wrote it) is read as before.
    pub fn snapshot_count(&self, g: u64) -> PathBuf {
        self.journal_dir().join(format!("snapshot-{g:08}.count"))
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

/// The format version in a file's header; `None` when the file is
/// missing or shorter than its header.
pub fn header_version(path: &Path) -> Result<Option<u16>, JournalError> {
    use std::io::Read;
    let mut h = [0u8; 8];
    match File::open(path).and_then(|mut f| f.read_exact(&mut h)) {
        Ok(()) => Ok(Some(u16::from_le_bytes([h[4], h[5]]))),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(None)
        }
        Err(cause) => Err(JournalError::Io {
            action: "reading",
            path: path.to_owned(),
            cause,
        }),
    }
}

/// Writes a snapshot of generation `g` from `records` atomically.
pub fn write_snapshot(
    layout: &Layout,
    g: u64,
    records: impl Iterator<Item = Record>,
) -> Result<u64, JournalError> {
    let mut w = FileWriter::create(&layout.snapshot(g), 1)?;
    for r in records {
        w.push(&r)?;
    }
    w.finish_counted(&layout.snapshot_count(g))
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

    /// [`FileWriter::finish`] for a snapshot: first writes how many records
    /// it holds to `count` (whole, flushed, renamed into place), so that a
    /// snapshot in place always has its count ([`Layout::snapshot_count`]).
    pub fn finish_counted(self, count: &Path) -> Result<u64, JournalError> {
        let mut tmp = count.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(format!("{}\n", self.n).as_bytes())
            .map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("flushing", &tmp))?;
        std::fs::rename(&tmp, count).map_err(io("renaming", &tmp))?;
        self.finish()
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

/// Deletes the journals of generations before `generation` (what the
/// store holds), and flushes the directory. A journal already gone is
/// not an error: a crash may have stopped an earlier deletion half-way.
pub fn remove_journals_before(layout: &Layout, generation: u64) -> Result<usize, JournalError> {
    let (_, logs) = layout.generations()?;
    let old = logs.into_iter().filter(|g| *g < generation);
    let removed = remove_files(old.map(|g| layout.journal(g)))?;
    if removed > 0 {
        sync_dir(&layout.journal_dir())?;
    }
    Ok(removed)
}

/// Deletes files; one already gone is not an error. Returns how many it
/// deleted.
pub fn remove_files(paths: impl IntoIterator<Item = PathBuf>) -> Result<usize, JournalError> {
    let mut removed = 0;
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(cause) => {
                return Err(JournalError::Io {
                    action: "removing",
                    path,
                    cause,
                });
            }
        }
    }
    Ok(removed)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    fsync_dir(dir).map_err(io("flushing the directory", dir))
}

/// Makes a directory's entries (new names, renames) durable: a file renamed
/// into place survives a power cut only once its directory is flushed. The
/// rules archive uses it too.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
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
