//! The journal: an append-only log under the in-memory index, so that
//! nothing acknowledged is lost on a restart, a crash (`kill -9`) or, with
//! the default durability, a power cut.
//!
//! # Files
//!
//! ```text
//! DATA_DIR/LOCK                        held by the running server (flock)
//! DATA_DIR/store/history.sqlite3       the state the journal reaches (crate::store)
//! DATA_DIR/journal/journal-GGGGGGGG.log    every change after the store's position
//! DATA_DIR/journal/snapshot-GGGGGGGG.snap  an earlier release's full state at the
//!                                      start of generation G (read once, migrated)
//! ```
//!
//! Each file starts with an 8-byte header: `CGJL`, the format version (u16,
//! little-endian) and the kind (u16: 0 journal, 1 snapshot). Journals are
//! written as version 2 ([`VERSION`]: the history before them is in the
//! store, so a release that reads only version 1 must refuse them);
//! snapshots and backups as version 1 ([`SNAPSHOT_VERSION`]). Both are
//! read. Then records, each framed as `[length u32][crc32 u32][payload]`
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
//! At start the store (`DATA_DIR/store/`, [`crate::store`]) is read, then
//! the journal after the [`Position`] it reaches; a data directory of an
//! older release, with no store, is read from its latest snapshot, then
//! the journal after it, and migrated into the store. A
//! record cut short at the very end of the last file (a crash mid-write) is
//! reported with its offset and cut off. A checksum failure anywhere else
//! stops the start with the file and offset: nothing is silently skipped.
//!
//! # Where the code is
//!
//! `format.rs` is the bytes: the file header and the frame of one record.
//! `files.rs` is the files: generations and their names, whole files
//! written atomically, the data directory's lock. `recovery.rs` reads them
//! back: one file and its torn tail, then a data directory's snapshot and
//! journals. `writer.rs` is the journal appended to while serving: group
//! commit, [`Durability`], [`Commit`] and [`Stats`].

mod files;
mod format;
mod recovery;
mod writer;

use std::path::{Path, PathBuf};

pub(crate) use files::fsync_dir;
pub use files::{
    CLUSTER_MARKER, FileWriter, Layout, header_version, lock, remove_files, remove_journals_before,
    write_file, write_snapshot,
};
pub use format::{
    MAGIC, MAX_RECORD_BYTES, OLDEST_VERSION, SNAPSHOT_VERSION, VERSION, frame, frame_operation,
    unframe,
};
pub use recovery::{Opened, ReadEnd, Recovered, open_from, read_file, recover, recover_from};

/// A place in the journal: the first `records` records (frames: a batch is
/// one) of generation `generation`, and every generation before it. The
/// store ([`crate::store`]) records the position its state reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The generation.
    pub generation: u64,
    /// Records of that generation's journal.
    pub records: u64,
}
pub use writer::{Commit, Durability, Journal, Stats, Tap, Tapped};

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
    #[error("`{path}` is not a compliance-guard journal this release reads: {reason}")]
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
    /// The store (the journal materialized) could not be read or written,
    /// or does not fit the journal beside it.
    #[error("{reason}")]
    Store {
        /// The store's file.
        path: PathBuf,
        /// What is wrong, naming the file.
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
