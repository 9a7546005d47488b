//! Reading full records of interactions from the store while serving.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, path_in, sqlite};
use crate::pb::journal::Record;

/// Reading full records of interactions from the store while serving:
/// what memory no longer holds (records beyond the horizon). A few
/// read-only connections, so that concurrent reads do not queue behind
/// one; a read never holds the guard's lock.
#[derive(Debug)]
pub struct Reader {
    conns: Vec<std::sync::Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
    path: PathBuf,
}

/// How many read-only connections a [`Reader`] opens.
pub const READERS: usize = 4;

/// The page cache each reader keeps of its own, in KiB. Small: a page
/// not in it is read from the operating system's page cache (memory the
/// system takes back when it needs it, shared by every connection, and
/// not the process's), and each reader's cache would otherwise hold its
/// own copy of the same pages: four readers at [`super::CACHE_KIB`] grew
/// the process by about 270 MB under a read load (`RssAnon` 575 MB
/// against 316 MB with this cap, at N = 1 M). SQLite's `mmap_size` read
/// a little faster still, but each connection maps the file anew, so
/// `VmRSS` counted the same pages four times: not used.
pub const READER_CACHE_KIB: i64 = 4 * 1024;

impl Reader {
    /// Opens [`READERS`] read-only connections to a data directory's store.
    pub fn open(data_dir: &Path) -> Result<Reader, StoreError> {
        let mut conns = Vec::with_capacity(READERS);
        let mut path = path_in(data_dir);
        for _ in 0..READERS {
            let store = Store::open_read_only(data_dir)?.ok_or_else(|| StoreError::Format {
                path: path.clone(),
                reason: "it is missing".into(),
            })?;
            path = store.path.clone();
            // The listing's columns: a store the server's start migrated.
            store.check_format_in(super::FORMAT..=super::FORMAT)?;
            store
                .conn
                .execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB};"))
                .map_err(sqlite("setting up a reader of", &path))?;
            // A plan made once per statement: without the planner's
            // stability guarantee, SQLite (built with STAT4) prepared a
            // cached statement again whenever `before` changed, every read.
            store
                .conn
                .set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                    true,
                )
                .map_err(sqlite("setting up a reader of", &path))?;
            conns.push(std::sync::Mutex::new(store.conn));
        }
        Ok(Reader {
            conns,
            next: std::sync::atomic::AtomicUsize::new(0),
            path,
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let n = self.conns.len().max(1);
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        // A free connection if there is one, else wait for the next in turn.
        for i in 0..n {
            if let Some(Ok(conn)) = self.conns.get((start + i) % n).map(|m| m.try_lock()) {
                return f(&conn);
            }
        }
        let conn = self.conns[start].lock().map_err(|_| StoreError::Format {
            path: self.path.clone(),
            reason: "a reader's lock is poisoned".into(),
        })?;
        f(&conn)
    }

    fn decode(&self, bytes: &[u8]) -> Result<crate::model::Interaction, StoreError> {
        decode_interaction(&self.path, bytes)
    }

    /// What the store knows of a stored audio file: `None` if no
    /// interaction holds it, otherwise when its interaction was deleted.
    pub fn media_file(
        &self,
        storage_key: &str,
    ) -> Result<Option<Option<chrono::DateTime<chrono::Utc>>>, StoreError> {
        let row: Option<Option<i64>> = self.with(|c| {
            c.query_row(
                "SELECT deleted_at FROM media WHERE storage_key = ?1",
                [storage_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite("reading", &self.path))
        })?;
        Ok(row.map(|d| d.and_then(chrono::DateTime::from_timestamp_micros)))
    }
}

/// An interaction's record as the store holds it.
pub(super) fn decode_interaction(
    path: &Path,
    bytes: &[u8],
) -> Result<crate::model::Interaction, StoreError> {
    let bad = |reason: String| StoreError::Format {
        path: path.to_owned(),
        reason,
    };
    let record = <Record as prost::Message>::decode(bytes)
        .map_err(|e| bad(format!("a record does not decode: {e}")))?;
    match record.op {
        Some(crate::pb::journal::record::Op::Interaction(pb)) => {
            let id = pb.id.clone();
            crate::wire::interaction_from(pb)
                .map_err(|p| bad(format!("interaction `{id}`: {}", p.message)))
        }
        _ => Err(bad("a row of `interactions` is not an interaction".into())),
    }
}

impl Reader {
    /// The answer kept for a reserving Check's request id, stored at or
    /// after `since` (Unix seconds): what a retry is answered from once
    /// the answer left memory.
    pub fn answer(
        &self,
        request_id: &str,
        since: i64,
    ) -> Result<Option<crate::ledger::StoredAnswer>, StoreError> {
        self.state(super::Kind::Answer, request_id, since, |c| match c {
            crate::ledger::Change::Answer { answer, .. } => Some(answer),
            _ => None,
        })
    }

    /// The conversation of an interaction, if it was ever joined or
    /// closed: what memory lets go of with its interaction.
    pub fn convo(&self, interaction_id: &str) -> Result<Option<crate::model::Convo>, StoreError> {
        self.state(super::Kind::Convo, interaction_id, i64::MIN, |c| match c {
            crate::ledger::Change::Convo(c) => Some(c),
            _ => None,
        })
    }

    /// The latest state of one thing of `kind` (its row in `state`, its
    /// time at or after `since`), as `pick` takes it from the change.
    fn state<T>(
        &self,
        kind: super::Kind,
        key: &str,
        since: i64,
        pick: impl Fn(crate::ledger::Change) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<Vec<u8>> = self.with(|c| {
            c.query_row(
                "SELECT record FROM state WHERE kind = ?1 AND key = ?2 AND coalesce(at, 0) >= ?3",
                params![kind as i64, key, since],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite("reading", &self.path))
        })?;
        let Some(bytes) = row else {
            return Ok(None);
        };
        let bad = |reason: String| StoreError::Format {
            path: self.path.clone(),
            reason,
        };
        let record = <Record as prost::Message>::decode(bytes.as_slice())
            .map_err(|e| bad(format!("a stored record does not decode: {e}")))?;
        for change in crate::ledger::changes(record) {
            if let Some(found) = change.ok().and_then(&pick) {
                return Ok(Some(found));
            }
        }
        Err(bad(format!(
            "the row of `{}` holds no record of its kind",
            crate::model::echo(key)
        )))
    }

    /// One interaction by our id or `ext-<externalId>`, with its place in
    /// creation order.
    pub fn get(
        &self,
        any_id: &str,
    ) -> Result<Option<(u64, crate::model::Interaction)>, StoreError> {
        let (sql, key) = match any_id.strip_prefix("ext-") {
            Some(ext) => (
                "SELECT seq, record FROM interactions WHERE external_id = ?1",
                ext,
            ),
            None => ("SELECT seq, record FROM interactions WHERE id = ?1", any_id),
        };
        let row: Option<(i64, Vec<u8>)> = self.with(|c| {
            c.query_row(sql, [key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite("reading", &self.path))
        })?;
        row.map(|(seq, b)| Ok((u64::try_from(seq).unwrap_or(0), self.decode(&b)?)))
            .transpose()
    }

    /// True if an interaction recorded under one of `person_ids` happens
    /// before `before` (Unix seconds).
    pub fn any_of_people(&self, person_ids: &[String], before: i64) -> Result<bool, StoreError> {
        for id in person_ids {
            let found: Option<i64> = self.with(|c| {
                c.query_row(
                    "SELECT 1 FROM interactions WHERE person_id = ?1 AND occurs_at < ?2 LIMIT 1",
                    params![id, before],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite("reading", &self.path))
            })?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every interaction recorded under one of `person_ids` that happens
    /// before `before` (Unix seconds), is within `narrow`, and that `keep`
    /// accepts, with its place in creation order (the caller sorts); read
    /// no further once `limits` would be passed ([`Listed::refused`]).
    /// Read by the person index.
    pub fn of_people(
        &self,
        person_ids: &[String],
        before: i64,
        narrow: &Narrow,
        limits: Limits,
        mut keep: impl FnMut(&crate::model::Interaction) -> bool,
    ) -> Result<Listed, StoreError> {
        let mut listed = Listed::default();
        let sql = format!(
            "SELECT seq, record FROM interactions INDEXED BY interactions_person
             WHERE person_id = ?1 AND occurs_at < ?2 AND {}",
            Narrow::WHERE
        );
        for id in person_ids {
            self.with(|c| {
                let mut stmt = c
                    .prepare_cached(&sql)
                    .map_err(sqlite("reading", &self.path))?;
                let (b, company) = (narrow.bounds(), narrow.company.as_deref());
                let params: [&dyn rusqlite::ToSql; 7] =
                    [id, &before, &b[0], &b[1], &b[2], &b[3], &company];
                let mut rows = stmt
                    .query(&params[..])
                    .map_err(sqlite("reading", &self.path))?;
                self.take(&mut rows, limits, &mut listed, &mut keep)
            })?;
            if listed.refused.is_some() {
                break;
            }
        }
        Ok(listed)
    }

    /// Every interaction in the store that happens before `before` (Unix
    /// seconds), is within `narrow`, and that `keep` accepts, with its
    /// place in creation order (the caller sorts); read no further once
    /// `limits` would be passed ([`Listed::refused`]), so that a listing
    /// of everyone's never holds an unbounded part of the history in
    /// memory nor reads it all.
    ///
    /// Read by the index `narrow` names (`startedAt`, then `createdAt`),
    /// or by the time index (`occurs_at`) without one.
    pub fn scan(
        &self,
        before: i64,
        narrow: &Narrow,
        limits: Limits,
        mut keep: impl FnMut(&crate::model::Interaction) -> bool,
    ) -> Result<Listed, StoreError> {
        let index = narrow.index();
        let sql = format!(
            "SELECT seq, record FROM interactions INDEXED BY {index}
             WHERE occurs_at < ?2 AND {}",
            Narrow::WHERE
        );
        let mut listed = Listed::default();
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&sql)
                .map_err(sqlite("reading", &self.path))?;
            // `?1` (a person's id) is not in the statement.
            let (b, company) = (narrow.bounds(), narrow.company.as_deref());
            let params: [&dyn rusqlite::ToSql; 7] = [
                &rusqlite::types::Null,
                &before,
                &b[0],
                &b[1],
                &b[2],
                &b[3],
                &company,
            ];
            let mut rows = stmt
                .query(&params[..])
                .map_err(sqlite("reading", &self.path))?;
            self.take(&mut rows, limits, &mut listed, &mut keep)
        })?;
        Ok(listed)
    }

    /// Reads `rows` into `listed` until they end or `limits` refuse more.
    fn take(
        &self,
        rows: &mut rusqlite::Rows<'_>,
        limits: Limits,
        listed: &mut Listed,
        keep: &mut dyn FnMut(&crate::model::Interaction) -> bool,
    ) -> Result<(), StoreError> {
        while let Some(row) = rows.next().map_err(sqlite("reading", &self.path))? {
            if listed.examined == limits.examined {
                listed.refused = Some(Refused::Examined(limits.examined));
                return Ok(());
            }
            listed.examined += 1;
            let seq: i64 = row.get(0).map_err(sqlite("reading", &self.path))?;
            let bytes = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(sqlite("reading", &self.path))?;
            let r = self.decode(bytes)?;
            if keep(&r) {
                if listed.found.len() == limits.kept {
                    listed.refused = Some(Refused::Kept(limits.kept));
                    return Ok(());
                }
                listed.found.push((u64::try_from(seq).unwrap_or(0), r));
            }
        }
        Ok(())
    }
}

/// What a listing's filters say of the store's columns, so that rows
/// outside are never read nor decoded: its time bounds (inclusive, in
/// whole microseconds rounded down, so that they only ever let more rows
/// through than the listing's exact filters, which the caller applies to
/// every row read) and the caller's company. Deleted interactions are
/// never listed, and are not read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrow {
    /// `startedAt` and `createdAt` bounds.
    pub times: crate::index::TimeBounds,
    /// Only this company's (a company's key never sees another's).
    pub company: Option<String>,
}

impl Narrow {
    /// The conditions, after a statement's first two parameters.
    const WHERE: &'static str = "deleted_at IS NULL
         AND started_at BETWEEN ?3 AND ?4 AND created_at BETWEEN ?5 AND ?6
         AND (?7 IS NULL OR company_id = ?7)";

    /// The index a listing of everyone's reads by: the time it bounds, or
    /// the time index.
    fn index(&self) -> &'static str {
        let t = &self.times;
        if t.started_from.is_some() || t.started_to.is_some() {
            "interactions_started"
        } else if t.created_from.is_some() || t.created_to.is_some() {
            "interactions_created"
        } else {
            "interactions_time"
        }
    }

    /// The bounds of `started_at` and `created_at` (`?3` to `?6`), open
    /// ends as the extremes.
    fn bounds(&self) -> [i64; 4] {
        let t = &self.times;
        [
            t.started_from.unwrap_or(i64::MIN),
            t.started_to.unwrap_or(i64::MAX),
            t.created_from.unwrap_or(i64::MIN),
            t.created_to.unwrap_or(i64::MAX),
        ]
    }
}

/// How much one listing may read from the store: rows read and decoded,
/// and rows kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most rows read (each decoded and filtered).
    pub examined: usize,
    /// Most rows kept (those the filters pass).
    pub kept: usize,
}

/// What a listing read from the store.
#[derive(Debug, Default)]
pub struct Listed {
    /// The rows kept, each with its place in creation order.
    pub found: Vec<(u64, crate::model::Interaction)>,
    /// How many rows were read.
    pub examined: usize,
    /// `Some` when the listing read no further (what it has is partial).
    pub refused: Option<Refused>,
}

/// Why a listing read no further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// More rows than this would have to be read.
    Examined(usize),
    /// More rows than this pass the filters.
    Kept(usize),
}
