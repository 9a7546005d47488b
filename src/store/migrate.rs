//! A store of format 1 brought to format 2 ([`super::FORMAT`]): the
//! columns a listing narrows by (`started_at`, `created_at`,
//! `company_id`), filled from each row's record, and the indexes on the
//! first two.
//!
//! The whole migration is one SQLite transaction: a crash (`kill -9`, a
//! power cut) at any point leaves the store of format 1 as it was, and the
//! next start migrates again. Once committed, the store says format 2,
//! which the release before refuses ("it is of format 2; this release
//! reads format 1"): it never reads a store whose rows it would not keep
//! up to date. SQLite's own log holds the rewritten table until the
//! commit is checkpointed: the migration needs free disk about the size
//! of the store's file.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{LISTING_INDEXES, StoreError, sqlite};

/// How many rows the migration reads, then writes, at a time: a read and
/// the writes to the same table are never interleaved in one statement.
const CHUNK: i64 = 10_000;

/// Whether the store needs [`to_format_2`]: it says format 1, or it was
/// being created by the release before and says nothing yet while its
/// table of interactions lacks the new columns. A store of another format
/// is left to the format check, which refuses it.
pub(super) fn needs_format_2(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let format: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sqlite("reading", path))?;
    match format {
        Some(1) => Ok(true),
        Some(_) => Ok(false),
        None => {
            let table: Option<String> = conn
                .query_row(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'interactions'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite("reading", path))?;
            Ok(table.is_some() && !has_column(conn, path, "started_at")?)
        }
    }
}

fn has_column(conn: &Connection, path: &Path, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare("SELECT 1 FROM pragma_table_info('interactions') WHERE name = ?1")
        .map_err(sqlite("reading", path))?;
    stmt.exists([column]).map_err(sqlite("reading", path))
}

/// Migrates a store of format 1 to format 2 in one transaction (see the
/// module's documentation), and logs it. Returns how many interactions'
/// rows it filled.
pub(super) fn to_format_2(conn: &mut Connection, path: &Path) -> Result<u64, StoreError> {
    let started = std::time::Instant::now();
    tracing::info!(
        store = %path.display(),
        "migrating the store from format 1 to format 2 (the listing's columns and indexes); releases before this one refuse it afterwards"
    );
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("migrating", path))?;
    // A crash after the columns were added, before the commit, took them
    // back with the transaction: they are added here or not at all.
    for column in [
        "started_at INTEGER",
        "created_at INTEGER",
        "company_id TEXT",
    ] {
        let name = column.split(' ').next().unwrap_or(column);
        if !has_column(&tx, path, name)? {
            tx.execute_batch(&format!("ALTER TABLE interactions ADD COLUMN {column};"))
                .map_err(sqlite("migrating", path))?;
        }
    }
    let mut filled = 0u64;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut read = tx
                .prepare_cached(
                    "SELECT seq, record FROM interactions WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(sqlite("migrating", path))?;
            read.query_map(params![after, CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(sqlite("migrating", path))?
        };
        let Some(last) = rows.last().map(|(seq, _)| *seq) else {
            break;
        };
        let mut write = tx
            .prepare_cached(
                "UPDATE interactions SET started_at = ?2, created_at = ?3, company_id = ?4
                 WHERE seq = ?1",
            )
            .map_err(sqlite("migrating", path))?;
        for (seq, bytes) in rows {
            let i = super::reader::decode_interaction(path, &bytes)?;
            let (started_at, created_at) = super::write::listing_times(&i);
            write
                .execute(params![seq, started_at, created_at, i.company_id])
                .map_err(sqlite("migrating", path))?;
            filled += 1;
        }
        after = last;
    }
    tx.execute_batch(LISTING_INDEXES)
        .map_err(sqlite("migrating", path))?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('format', 2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [],
    )
    .map_err(sqlite("migrating", path))?;
    // A crash just before the commit: the test's (see `tests/compat.rs`).
    crate::hooks::abort_here("store-format-2");
    tx.commit().map_err(sqlite("migrating", path))?;
    tracing::info!(
        store = %path.display(),
        interactions = filled,
        seconds = started.elapsed().as_secs_f64(),
        "migrated the store to format 2"
    );
    Ok(filled)
}
