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
    mut each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<HistoryRead, JournalError> {
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let store = Store::open_read_only(data_dir)?;
    // One read transaction for the whole store: a server committing
    // beside it is not seen half-way.
    let mut out = HistoryRead::default();
    if let Some(store) = &store {
        store
            .conn
            .execute_batch("BEGIN")
            .map_err(super::sqlite("reading", store.path()))?;
        out.from = store.position()?;
        if out.from.is_some() {
            out.store_records = store.for_each(&mut each)?;
        }
    }
    out.recovered = journal::recover_from(&layout, out.from, each)?;
    if let Some(store) = &store {
        let _ = store.conn.execute_batch("COMMIT");
    }
    Ok(out)
}
