//! Reading a data directory's whole history, in the order recovery
//! applies it: the store and the journal after its position, or, in an
//! older release's layout, the snapshot and the journals after it. Backup
//! and what-if read through it, beside a running server.

use std::path::Path;

use super::Store;
use crate::journal::{self, JournalError, Layout, Position, Recovered};
use crate::pb::journal::Record;

/// What [`read_history`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryRead {
    /// The store's position, when the history started from the store.
    pub from: Option<Position>,
    /// Records read from the store.
    pub store_records: u64,
    /// What the journal (and an older layout's snapshot) gave.
    pub recovered: Recovered,
}

/// Calls `each` for every record of the data directory's history, in
/// order. Needs no lock.
pub fn read_history(
    data_dir: &Path,
    each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<HistoryRead, JournalError> {
    read(data_dir, false, each)
}

/// [`read_history`], with the store's records in the order they came to
/// be (an interaction at its creation, in its latest state; anything else
/// when it took effect, [`crate::ledger::Change::effective_at`]; those
/// without a time first, then as stored) rather than by kind: for a reader
/// that decides, between them, what was asked then (what-if), as the
/// journal gave them before the store took them. Holds the store's
/// records in memory while it sorts them.
pub fn read_history_in_time(
    data_dir: &Path,
    each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<HistoryRead, JournalError> {
    read(data_dir, true, each)
}

fn read(
    data_dir: &Path,
    in_time: bool,
    mut each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<HistoryRead, JournalError> {
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let store = Store::open_read_only(data_dir)?;
    let cluster = layout.is_cluster_node();
    // One read transaction for the whole store: a server committing
    // beside it is not seen half-way.
    let mut out = HistoryRead::default();
    let mut attempts = 0;
    let opened = loop {
        if let Some(store) = &store {
            store
                .conn
                .execute_batch("BEGIN")
                .map_err(super::sqlite("reading", store.path()))?;
            out.from = store.position()?;
        }
        // Opened at once: a journal the server deletes while the store is
        // read (it has applied it since) is still read whole. One deleted
        // between the position and the opening (the server rolled just
        // then) is read again from the store's new position.
        // A cluster node has no journal: its store is its whole history.
        let journal_from = if cluster { None } else { out.from };
        match journal::open_from(&layout, journal_from) {
            Ok(opened) => break opened,
            Err(JournalError::Corrupt { .. }) if attempts < 10 && store.is_some() => {
                attempts += 1;
                if let Some(store) = &store {
                    let _ = store.conn.execute_batch("COMMIT");
                }
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(store) = &store
        && out.from.is_some()
    {
        if in_time {
            let mut base = Vec::new();
            out.store_records = store.for_each(|record| {
                // An interaction existed from its creation (the store
                // holds its latest state); anything else from when it
                // took effect.
                let at = crate::ledger::changes(record.clone())
                    .into_iter()
                    .filter_map(|c| match c.ok()? {
                        crate::ledger::Change::Interaction(i) => Some(i.created_at),
                        other => other.effective_at(),
                    })
                    .max();
                base.push((at, record));
                Ok(())
            })?;
            // Stable: equal times keep the store's order.
            base.sort_by_key(|(at, _)| *at);
            for (_, record) in base {
                each(record)?;
            }
        } else {
            out.store_records = store.for_each(&mut each)?;
        }
    }
    out.recovered = opened.read(each)?;
    if let Some(store) = &store {
        let _ = store.conn.execute_batch("COMMIT");
    }
    Ok(out)
}
