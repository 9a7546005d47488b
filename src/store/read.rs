//! Reading a data directory's whole history, in the order recovery
//! applies it: the store and the journal after its position, or, in an
//! older release's layout, the snapshot and the journals after it. Backup
//! and what-if read through it, beside a running server.

use std::ops::ControlFlow;
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
    read(data_dir, None, |record, _| {
        each(record).map(|()| ControlFlow::Continue(()))
    })
}

/// [`read_history`], with the store's records in the order they came to
/// be rather than by kind ([`Store::for_each_in_time`]: an interaction at
/// its creation, in its latest state; anything else when it took effect;
/// equal times in the store's order), the interactions from `from` on
/// only (Unix seconds; `None`: all): for a reader that decides, between
/// them, what was asked then (what-if), as the journal gave them before
/// the store took them. The interactions are streamed, not held.
///
/// `each` is given, with each record, where it was read ([`Source`]); it
/// may stop the reading (a what-if that decided its every Check): a stop
/// while the store is read ends it without the rest of the store nor the
/// journal; the journal, short, is read to its end whatever `each` says.
/// Conversations and stored answers are not given (see `in_time.rs`).
pub fn read_history_in_time(
    data_dir: &Path,
    from: Option<i64>,
    mut each: impl FnMut(Record, Source<'_>) -> Result<ControlFlow<()>, JournalError>,
) -> Result<HistoryRead, JournalError> {
    read(data_dir, Some(from), &mut each)
}

/// Where a record [`read_history_in_time`] gives was read.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The store.
    Store,
    /// The journal after the store's position, with the store as the same
    /// read transaction sees it ([`Store::interaction`]): a reader that let
    /// go of an interaction's full record reads it back there before the
    /// journal's change to it.
    JournalAfter(&'a Store),
    /// The journal (and snapshot) of a data directory with no store (an
    /// older release's layout): the whole history, nothing to read back.
    JournalOnly,
}

/// Reads the history; `in_time` is `Some` (with the interactions' `from`)
/// for [`read_history_in_time`].
fn read(
    data_dir: &Path,
    in_time: Option<Option<i64>>,
    mut each: impl FnMut(Record, Source<'_>) -> Result<ControlFlow<()>, JournalError>,
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
        let stopped = std::cell::Cell::new(false);
        let mut from_store = |record| {
            let step = each(record, Source::Store)?;
            stopped.set(step.is_break());
            Ok(step)
        };
        out.store_records = match in_time {
            Some(from) => store.for_each_in_time(from, &mut from_store)?,
            None => store.for_each(|record| from_store(record).map(|_| ()))?,
        };
        if stopped.get() {
            let _ = store.conn.execute_batch("COMMIT");
            return Ok(out);
        }
    }
    let source = store
        .as_ref()
        .map_or(Source::JournalOnly, Source::JournalAfter);
    // A reader that stops here has what it needs; the journal after the
    // store's position is short (a generation at most) and read to its end.
    out.recovered = opened.read(|record| each(record, source).map(|_| ()))?;
    if let Some(store) = &store {
        let _ = store.conn.execute_batch("COMMIT");
    }
    Ok(out)
}
