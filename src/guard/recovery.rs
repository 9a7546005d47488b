//! Opening a data directory: the snapshot and journal read back into a
//! ledger (through [`Ledger::apply_record`], the one interpreter),
//! compaction into a new snapshot when the journal has grown, and the
//! journal reopened for writing.

use std::path::Path;

use super::{Guard, GuardError};
use crate::index::IndexConfig;
use crate::journal::{self as jn, Durability, Journal, JournalError, Layout, Recovered};
use crate::ledger::Ledger;

impl Guard {
    /// Opens a data directory: takes its lock (a second server is refused),
    /// reads the snapshot and the journal back into memory, compacts them
    /// into a new snapshot when the journal has grown past `compact_after`
    /// records (and half the snapshot), and opens the journal for writing.
    /// `progress` is called every 1,000,000 records.
    pub fn open(
        config: IndexConfig,
        data_dir: &Path,
        durability: Durability,
        compact_after: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<(Guard, Recovered), JournalError> {
        let lock = jn::lock(data_dir)?;
        let layout = Layout {
            dir: data_dir.to_owned(),
        };
        let mut ledger = Ledger::new(config);
        // About 160 bytes a record on disk: make room up front.
        let (snaps, logs) = layout.generations()?;
        let bytes: u64 = snaps
            .iter()
            .map(|g| layout.snapshot(*g))
            .chain(logs.iter().map(|g| layout.journal(*g)))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        ledger
            .index
            .reserve(usize::try_from(bytes / 160).unwrap_or(0));
        let mut n = 0u64;
        let replayed = jn::recover(&layout, |record| {
            ledger
                .apply_record(record)
                .map_err(|e| JournalError::Failed(e.to_string()))?;
            n += 1;
            if n.is_multiple_of(1_000_000) {
                progress(n);
            }
            Ok(())
        })?;
        let mut generation = replayed.generation;
        let mut cut_to = replayed.cut.as_ref().map(|(_, offset, _)| *offset);
        if let Some((path, offset, reason)) = &replayed.cut {
            tracing::warn!(file = %path.display(), offset, reason, "a record cut short at the end of the journal (a crash mid-write) was dropped");
        }
        let (snaps, logs) = layout.generations()?;
        if replayed.journal_records > compact_after.max(replayed.snapshot_records / 2) {
            let next = generation + 1;
            let written = jn::write_snapshot(&layout, next, ledger.snapshot())?;
            tracing::info!(
                records = written,
                generation = next,
                "compacted the journal into a snapshot"
            );
            for g in snaps
                .iter()
                .chain(logs.iter())
                .copied()
                .filter(|g| *g < next)
            {
                for path in [
                    layout.snapshot(g),
                    layout.snapshot_count(g),
                    layout.journal(g),
                ] {
                    if path.exists() {
                        std::fs::remove_file(&path).map_err(|cause| JournalError::Io {
                            action: "removing",
                            path: path.clone(),
                            cause,
                        })?;
                    }
                }
            }
            generation = next;
            cut_to = None;
        }
        let journal = Journal::open(&layout, lock, generation, cut_to, durability)?;
        let out_of_range = out_of_range_records(&ledger);
        if out_of_range > 0 {
            tracing::warn!(
                records = out_of_range,
                "records with a time outside what the API now accepts (an event before 1900, a time past 9999 or before year 1) were loaded as stored and count as usual; proto3 JSON clients cannot read them"
            );
        } else {
            tracing::info!(
                records = 0,
                "no record has a time outside what the API accepts"
            );
        }
        Ok((Guard::over(ledger, Some(journal)), replayed))
    }

    /// How many records (interactions and restrictions) hold a time
    /// outside what a request may give now
    /// ([`crate::model::Interaction::has_time_out_of_range`], a
    /// restriction's `receivedAt` or end before 1900 or past 9999): stored
    /// before the bound, loaded and counted as they are. [`Guard::open`]
    /// logs it.
    pub fn out_of_range_records(&self) -> Result<u64, GuardError> {
        Ok(out_of_range_records(&*self.read()?))
    }
}

fn out_of_range_records(ledger: &Ledger) -> u64 {
    let index = &ledger.index;
    let interactions = index
        .interactions()
        .filter(|r| r.has_time_out_of_range())
        .count();
    let restrictions = index
        .person_keys()
        .flat_map(|k| index.person_restrictions(k).iter())
        .filter(|r| {
            crate::model::out_of_range(r.received_at)
                || r.ended_at.is_some_and(crate::model::out_of_range)
                || r.ends_at.is_some_and(crate::model::outside_proto_json)
                || crate::model::outside_proto_json(r.recorded_at)
        })
        .count();
    u64::try_from(interactions + restrictions).unwrap_or(u64::MAX)
}
