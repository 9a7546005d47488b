//! The store: the journal materialized in SQLite, so that the journal can
//! be cut short and a start reads state, not every change ever made.
//!
//! The journal stays the source of truth. The store holds the latest
//! state of every thing a journal record names (a person, an account, a
//! restriction, an interaction, an open reservation, a conversation, a
//! stored answer), each as the record that wrote it last, and the journal
//! [`Position`] those records reach, written in the same SQLite
//! transaction as the records. A crash before the commit leaves the old
//! state and the old position, so the journal after the position is
//! replayed again; after it, both moved together. The journal before the
//! position is deleted only once the commit is on disk
//! (`synchronous = FULL`).
//!
//! # Why SQLite
//!
//! `benches/store-choice/` measured redb, fjall and SQLite on this
//! workload (RocksDB's clean build alone took 1,455 s on 2 cores and was
//! excluded): SQLite in WAL mode matched or beat the others on Get, one
//! person's page and the global List with filters, reopens in
//! milliseconds after `kill -9`, caps its cache with one pragma, and adds
//! the least to CI of the two finalists. Its write-ahead log is not our
//! log: the store is rebuilt from the journal, never the other way.
//!
//! # Tables
//!
//! ```text
//! meta(key, value)                 format, the journal position, the next seq
//! state(kind, key, first_seq, last_seq, at, record)
//! interactions(seq, id, person_id, external_id, occurs_at, deleted_at,
//!              media, record, started_at, created_at, company_id)
//! media(storage_key, interaction_id, deleted_at)
//! ```
//!
//! Times are Unix seconds (`occurs_at`) or microseconds (`deleted_at`,
//! `started_at`, `created_at`). The indexes: `interactions` by id, by
//! person, by `occurs_at` (what a start reads), by `externalId`, and by
//! `started_at` and `created_at` (what a listing of everyone's narrows
//! by); `state` by first and last write.
//!
//! `seq` numbers every write to the store in journal order: a thing keeps
//! the `seq` of its first write (an interaction's is its creation order,
//! what a listing by creation reads) and records its last. Reading the
//! store back gives the records in the order recovery needs: people (in
//! the order last written, so that a name a link moved stays where the
//! link put it), accounts, restrictions, interactions, reservations,
//! conversations and answers (each in the order first written).
//!
//! # Where the code is
//!
//! `mod.rs` is the store opened for writing; `load.rs` reads it back at
//! a start ([`Store::load`], the rows read on a thread of their own);
//! `migrate.rs` brings a store of the format before to this one;
//! `fold.rs` folds SQLite's log into the file on a thread of its own
//! while the follower writes;
//! `write.rs` applies the journal's records in one
//! transaction with their position ([`Writing`]); `reader.rs` reads full
//! records while serving ([`Reader`]); `read.rs` reads a data directory's
//! whole history in order, for backup and what-if; `in_time.rs` gives
//! what-if the store's records in the order they came to be, the
//! interactions streamed by the index on `created_at`.

mod fold;
mod follow;
mod in_time;
mod load;
mod migrate;
mod read;
mod reader;
mod write;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use fold::LOG_KEPT_BYTES;
pub use follow::{Checkpoints, Follower, Handed, KEPT_FOR_CHECKPOINT, TAP_BATCHES};
pub use load::{Loaded, Pinned, Span, Texts};
pub use read::{HistoryRead, Source, read_history, read_history_in_time};
pub use reader::{Limits, Listed, Narrow, READERS, Reader, Refused};
pub use write::Writing;

use crate::journal::{JournalError, Position};
use crate::ledger::ApplyError;

/// The store's directory inside a data directory.
pub const STORE_DIR: &str = "store";
/// The store's file inside [`STORE_DIR`].
pub const STORE_FILE: &str = "history.sqlite3";
/// The store format this release writes and reads. Format 2 added the
/// listing's columns (`started_at`, `created_at`, `company_id`) and the
/// indexes on the first two; a store of format 1 is migrated when the
/// server opens it ([`Store::open`]), and the release before, which reads
/// format 1 only, then refuses it.
pub const FORMAT: i64 = 2;

/// The indexes a listing of everyone's reads by (`startedAfter`,
/// `startedBefore`, `createdAfter`, `createdBefore`), made with the
/// tables or by the migration to format 2.
const LISTING_INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS interactions_started ON interactions (started_at, seq);
     CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_at, seq);";
/// How many pages SQLite's log holds before the follower's folder (a
/// thread of its own, `fold.rs`) folds them into the store's file: every
/// 10,000 pages (about 40 MB) rather than SQLite's 1,000, so that the
/// pages every batch touches (the ends of the time and creation-order
/// indexes) are copied once per fold, not ten times.
pub const FOLD_EVERY_PAGES: i64 = 10_000;
/// The page cache SQLite may hold, in KiB: memory stays bounded whatever
/// the store's size.
pub const CACHE_KIB: i64 = 64 * 1024;

/// Errors of the store. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("{action} the store `{path}`: {cause}")]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// The store's file.
        path: PathBuf,
        /// Why it failed.
        cause: rusqlite::Error,
    },
    /// A store of another format, or one that is damaged.
    #[error("the store `{path}` cannot be read: {reason}")]
    Format {
        /// The store's file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A record that cannot be applied.
    #[error("the store `{path}`: {cause}")]
    Apply {
        /// The store's file.
        path: PathBuf,
        /// The record's problem.
        cause: ApplyError,
    },
}

impl From<StoreError> for JournalError {
    fn from(e: StoreError) -> JournalError {
        let path = match &e {
            StoreError::Sqlite { path, .. }
            | StoreError::Format { path, .. }
            | StoreError::Apply { path, .. } => path.clone(),
        };
        JournalError::Store {
            path,
            reason: e.to_string(),
        }
    }
}

/// The kinds of thing kept in `state`, in the order they are read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person = 0,
    Debt = 1,
    Restriction = 2,
    Reservation = 4,
    Convo = 5,
    Answer = 6,
}

/// The store of a data directory, open.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// The size of SQLite's log file (`-wal`) in a data directory's store,
/// in bytes (0 when there is none): what stays on disk until the log is
/// folded whole and started again (cut back to [`LOG_KEPT_BYTES`] then).
pub fn log_bytes(data_dir: &Path) -> u64 {
    std::fs::metadata(log_of(&path_in(data_dir))).map_or(0, |m| m.len())
}

/// SQLite's log file beside the store's `file`: its name with `-wal`.
fn log_of(file: &Path) -> PathBuf {
    let mut log = file.as_os_str().to_owned();
    log.push("-wal");
    PathBuf::from(log)
}

/// The store's file in a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_DIR).join(STORE_FILE)
}

impl Store {
    /// Opens (creating if missing) the store of a data directory for
    /// writing. Only the holder of the data directory's lock calls it.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = path_in(data_dir);
        let dir = data_dir.join(STORE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Format {
            path: path.clone(),
            reason: format!("creating its directory: {e}"),
        })?;
        let conn = Connection::open(&path).map_err(sqlite("opening", &path))?;
        let mut store = Store { conn, path };
        store
            .conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA journal_size_limit = {LOG_KEPT_BYTES};
                 PRAGMA cache_size = -{CACHE_KIB};
                 CREATE TABLE IF NOT EXISTS meta (
                     key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
            ))
            .map_err(sqlite("creating the tables of", &store.path))?;
        // A store of format 1 (the release before) gains the listing's
        // columns first, in one transaction of its own.
        if migrate::needs_format_2(&store.conn, &store.path)? {
            migrate::to_format_2(&mut store.conn, &store.path)?;
        }
        // Another format (a later release's) is refused before anything
        // is made in it.
        if store.meta("format")?.is_some() {
            store.check_format()?;
        }
        store
            .conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS state (
                     kind INTEGER NOT NULL, key TEXT NOT NULL,
                     first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
                     at INTEGER, record BLOB NOT NULL,
                     PRIMARY KEY (kind, key)) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS state_first ON state (kind, first_seq);
                 CREATE INDEX IF NOT EXISTS state_last ON state (kind, last_seq);
                 CREATE TABLE IF NOT EXISTS interactions (
                     seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                     person_id TEXT NOT NULL, external_id TEXT,
                     occurs_at INTEGER NOT NULL, deleted_at INTEGER,
                     media TEXT, record BLOB NOT NULL,
                     started_at INTEGER, created_at INTEGER, company_id TEXT);
                 CREATE INDEX IF NOT EXISTS interactions_person ON interactions (person_id, seq);
                 CREATE INDEX IF NOT EXISTS interactions_time ON interactions (occurs_at, seq);
                 {LISTING_INDEXES}
                 CREATE TABLE IF NOT EXISTS media (
                     storage_key TEXT PRIMARY KEY, interaction_id TEXT NOT NULL,
                     deleted_at INTEGER) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS media_interaction ON media (interaction_id);
                 CREATE INDEX IF NOT EXISTS interactions_external ON interactions (external_id)
                     WHERE external_id IS NOT NULL;
                 INSERT OR IGNORE INTO meta (key, value) VALUES ('format', {FORMAT});"
            ))
            .map_err(sqlite("creating the tables of", &store.path))?;
        store.check_format()?;
        Ok(store)
    }

    /// Opens the store of a data directory for reading, beside a server
    /// that may be writing it (a backup, a what-if replay); `None` when
    /// the directory has none (an older release's layout). A store of
    /// format 1 is read too (beside a server of the release before, not
    /// yet upgraded): what these read, every row's record, is the same in
    /// both formats. Only the server's start migrates it.
    pub fn open_read_only(data_dir: &Path) -> Result<Option<Store>, StoreError> {
        let path = path_in(data_dir);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite("opening", &path))?;
        let store = Store { conn, path };
        store
            .conn
            .execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB};"))
            .map_err(sqlite("setting up", &store.path))?;
        store.check_format_in(1..=FORMAT)?;
        Ok(Some(store))
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> Result<(), StoreError> {
        self.check_format_in(FORMAT..=FORMAT)
    }

    /// Refuses a store of a format outside `read`.
    pub(crate) fn check_format_in(
        &self,
        read: std::ops::RangeInclusive<i64>,
    ) -> Result<(), StoreError> {
        let format = self.meta("format")?;
        if !format.is_some_and(|f| read.contains(&f)) {
            return Err(StoreError::Format {
                path: self.path.clone(),
                reason: match format {
                    Some(f) => format!("it is of format {f}; this release reads format {FORMAT}"),
                    None => "it has no format".into(),
                },
            });
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sqlite("reading", &self.path))
    }

    /// The journal position the store's records reach: `None` for a store
    /// that was never written (a start must then read the older layout's
    /// snapshot, or nothing).
    pub fn position(&self) -> Result<Option<Position>, StoreError> {
        let (Some(generation), Some(records)) = (self.meta("generation")?, self.meta("records")?)
        else {
            return Ok(None);
        };
        match (u64::try_from(generation), u64::try_from(records)) {
            (Ok(generation), Ok(records)) => Ok(Some(Position {
                generation,
                records,
            })),
            _ => Err(StoreError::Format {
                path: self.path.clone(),
                reason: format!("its position ({generation}, {records}) is negative"),
            }),
        }
    }

    /// Starts writing: records applied through the returned [`Writing`]
    /// take effect together, with their position, at
    /// [`Writing::commit`], or not at all.
    pub fn begin(&mut self) -> Result<Writing<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite("starting a transaction on", &path))?;
        let seq = tx
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(sqlite("reading", &path))?
            .unwrap_or(1);
        let interaction_seq = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'next_interaction_seq'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(sqlite("reading", &path))?
            .unwrap_or(1);
        Ok(Writing {
            tx,
            path,
            seq,
            interaction_seq,
            records: 0,
        })
    }

    /// Begins a read transaction on this connection and returns the
    /// position of the state it reads: every later read on it sees that
    /// state, whatever a writer beside it commits, until
    /// [`Store::end_read`].
    pub fn begin_read(&self) -> Result<Option<Position>, StoreError> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(sqlite("reading", &self.path))?;
        self.position()
    }

    /// Ends what [`Store::begin_read`] began.
    pub fn end_read(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(sqlite("reading", &self.path))
    }

    /// The place in creation order the next new interaction takes: an
    /// index numbers the interactions it records from it, as the store
    /// will when they reach it.
    pub fn next_interaction_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("next_interaction_seq")?
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(1))
    }

    /// Whether each commit is flushed to disk before it returns
    /// (`synchronous = FULL`, as opened) or only written to SQLite's log
    /// (`NORMAL`: a power cut may take the last commits back, with their
    /// position). The follower flushes only the commits after which
    /// journals are deleted.
    pub fn set_synchronous(&self, flushed: bool) -> Result<(), StoreError> {
        let mode = if flushed { "FULL" } else { "NORMAL" };
        self.conn
            .execute_batch(&format!("PRAGMA synchronous = {mode};"))
            .map_err(sqlite("setting up", &self.path))
    }

    /// Moves the position without a record (the journal rolled over to a
    /// new, empty generation).
    pub fn set_position(&mut self, at: Position) -> Result<(), StoreError> {
        self.begin()?.commit(at).map(|_| ())
    }

    /// The time of the latest interaction at or before `now` (Unix
    /// seconds), if any.
    pub fn latest_at_or_before(&self, now: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT occurs_at FROM interactions WHERE occurs_at <= ?1
                 ORDER BY occurs_at DESC LIMIT 1",
                [now],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite("reading", &self.path))
    }

    /// How many pages SQLite's log may hold before a commit on this
    /// connection folds them into the store's file (SQLite's 1,000 as
    /// opened; 0: never, while the follower's folder folds them;
    /// [`FOLD_EVERY_PAGES`] for a follower without one).
    pub fn fold_every(&self, pages: i64) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages};"))
            .map_err(sqlite("setting up", &self.path))
    }

    /// Frees the pages this connection's cache holds but does not need
    /// now (SQLite's `shrink_memory`): what a start read, so that the
    /// process does not keep them until the cap is reached by other use.
    pub fn release_cache(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA shrink_memory;")
            .map_err(sqlite("freeing the page cache of", &self.path))
    }

    /// Flushes SQLite's log file to disk: what a process before committed
    /// there without flushing (`synchronous = NORMAL`) is then as durable
    /// as the position a start read from it.
    pub fn flush_log(&self) -> Result<(), StoreError> {
        let log = log_of(&self.path);
        match std::fs::File::open(&log) {
            Ok(f) => f.sync_data().map_err(|e| StoreError::Format {
                path: self.path.clone(),
                reason: format!("flushing its log `{}`: {e}", log.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Format {
                path: self.path.clone(),
                reason: format!("opening its log `{}`: {e}", log.display()),
            }),
        }
    }

    /// Moves everything SQLite's own log holds into the store's file and
    /// empties the log: done before the writer closes, since the readers
    /// left open beside it cannot (a copy of the file alone is then whole).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(sqlite("checkpointing", &self.path))
    }

    /// How many interactions happen at or after `from` (Unix seconds; all
    /// of them for `None`), deleted ones included: from the time index, or
    /// from the places in creation order.
    pub fn interactions_from(&self, from: Option<i64>) -> Result<u64, StoreError> {
        match from {
            None => Ok(self.next_interaction_seq()?.saturating_sub(1)),
            Some(t) => self
                .conn
                .query_row(
                    "SELECT count(*) FROM interactions WHERE occurs_at >= ?1",
                    [t],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(sqlite("counting in", &self.path)),
        }
    }

    /// How many people the store holds: room a start makes for them
    /// before it reads them, so that the registry is not left a quarter
    /// to a half unused by its last doubling.
    pub fn people(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM state WHERE kind = ?1",
                [Kind::Person as i64],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sqlite("counting people in", &self.path))
    }

    /// The largest generated `IT-` id whose first four hex digits are
    /// `node` (a cluster node's range, [`crate::index::Index::use_id_range`]).
    pub fn largest_interaction_of_node(&self, node: u16) -> Result<Option<String>, StoreError> {
        let low = format!("IT-{node:04X}-00000000");
        let high = format!("IT-{node:04X}-FFFFFFFF");
        self.conn
            .query_row(
                "SELECT max(id) FROM interactions WHERE id BETWEEN ?1 AND ?2 AND id GLOB
                 'IT-[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]'",
                [&low, &high],
                |r| r.get(0),
            )
            .map_err(sqlite("reading", &self.path))
    }

    /// How many interactions the store holds, deleted ones included.
    pub fn interactions(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM interactions", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sqlite("counting in", &self.path))
    }
}

pub(crate) fn sqlite<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |cause| StoreError::Sqlite {
        action,
        path: path.to_owned(),
        cause,
    }
}
