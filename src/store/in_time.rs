//! The store read in the order its records came to be, for what-if
//! replay ([`Store::for_each_in_time`]): an interaction at its creation
//! (in its latest state), anything else when it took effect
//! ([`crate::ledger::Change::effective_at`]), those without a time first.
//!
//! The interactions, most of the store, are read in that order by the
//! index on `created_at` and given one at a time: nothing holds the
//! history in memory. Only the other records (people, loans,
//! restrictions, open reservations: what a server's memory holds anyway)
//! are held, to be sorted by their times and given between the
//! interactions. Conversations and stored answers are not read: what-if
//! decides Checks, and no Check reads either.

use std::ops::ControlFlow;

use rusqlite::{OptionalExtension, params};

use super::{Kind, Store, StoreError, sqlite};
use crate::journal::JournalError;
use crate::pb::journal::Record;

/// A record other than an interaction's, held until its time comes: when
/// it took effect (Unix microseconds, the precision of an interaction's
/// `created_at` column, so that a person registered by the write that
/// recorded its first interaction comes before it, as in the store's
/// order), its group (0: people, loans and restrictions, read
/// before the interactions in the store's order; 2: open reservations,
/// read after them), its place in that order and its bytes.
type Held = (Option<i64>, u8, usize, Vec<u8>);

/// An interaction read before it is given: its creation time (Unix
/// microseconds), its place in creation order and its record's bytes.
type InteractionRow = (i64, i64, Vec<u8>);

/// What a reader of [`Store::for_each_in_time`] answers to a record: read
/// on, or stop (a what-if that decided its every Check).
type Step = Result<ControlFlow<()>, JournalError>;

impl Store {
    /// Gives `each` every record of the store in the order they came to
    /// be (see the module's documentation), with interactions from `from`
    /// on only (Unix seconds): those created from then on, and those
    /// created before that happen from then on (a send scheduled ahead);
    /// `None` gives them all; until `each` says to stop. Times are compared to the microsecond, and
    /// equal times keep the store's order: people, loans and restrictions,
    /// then interactions (by their place in creation order), then open
    /// reservations. Returns how many records were given.
    ///
    /// A store of format 1 (a server of the release before, not yet
    /// started on this one) has no `created_at` column: its interactions
    /// are read whole and sorted in memory, as before.
    ///
    /// Read on this connection, inside the read transaction the caller
    /// may have begun on it (a what-if beside a server pairs the store's
    /// position with the rows).
    pub fn for_each_in_time(
        &self,
        from: Option<i64>,
        mut each: impl FnMut(Record) -> Result<ControlFlow<()>, JournalError>,
    ) -> Result<u64, JournalError> {
        let mut held = self.held_records()?;
        held.sort_by_key(|(at, group, n, _)| (*at, *group, *n));
        let mut held = held.into_iter().peekable();
        let given = std::cell::Cell::new(0u64);
        let give = |bytes: &[u8], each: &mut dyn FnMut(Record) -> Step| -> Step {
            given.set(given.get() + 1);
            each(self.decode_row(bytes)?)
        };
        let mut interaction =
            |created_at: i64, bytes: &[u8], each: &mut dyn FnMut(Record) -> Step| -> Step {
                // What came before it, and at its time what the store's
                // order gives first.
                while let Some((_, _, _, b)) =
                    held.next_if(|(at, group, _, _)| (*at, *group) < (Some(created_at), 1))
                {
                    if give(&b, each)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                give(bytes, each)
            };
        // Those read and sorted here first (a store of format 1: all of
        // them), then, from a store of format 2, those streamed from
        // `from` on by the creation index.
        let (first, streamed) = if self.meta("format")?.unwrap_or(super::FORMAT) < 2 {
            (self.format_1_interactions(from)?, None)
        } else {
            self.every_row_has_its_creation()?;
            let micros = from.map(|s| s.saturating_mul(1_000_000));
            (self.early_interactions(from)?, Some(micros))
        };
        let mut interactions = ControlFlow::Continue(());
        for (created_at, _, bytes) in first {
            interactions = interaction(created_at, &bytes, &mut each)?;
            if interactions.is_break() {
                break;
            }
        }
        if let (true, Some(micros)) = (interactions.is_continue(), streamed) {
            interactions = self.rows(
                "SELECT created_at, seq, record FROM interactions INDEXED BY interactions_created
                 WHERE created_at >= ?1 ORDER BY created_at, seq",
                params![micros.unwrap_or(i64::MIN)],
                |created_at, _, bytes| interaction(created_at, bytes, &mut each),
            )?;
        }
        if interactions.is_continue() {
            for (_, _, _, bytes) in held {
                if give(&bytes, &mut each)?.is_break() {
                    break;
                }
            }
        }
        Ok(given.get())
    }

    /// The interactions created before `from` (Unix seconds) that happen
    /// from then on, each with its creation time (Unix microseconds) and
    /// place, sorted: few (a send scheduled far ahead, an import keeping
    /// its upstream time), found by the indexes alone
    /// ([`Store::created_before_happening_from`]); none without `from`.
    fn early_interactions(&self, from: Option<i64>) -> Result<Vec<InteractionRow>, JournalError> {
        let Some(from) = from else {
            return Ok(Vec::new());
        };
        let micros = from.saturating_mul(1_000_000);
        let mut early = Vec::new();
        for seq in self.created_before_happening_from(from, micros)? {
            // Gathered whole: nothing here stops.
            let _gathered = self.rows(
                "SELECT created_at, seq, record FROM interactions
                 WHERE seq = ?1 AND occurs_at >= ?2 AND created_at < ?3",
                params![seq, from, micros],
                |created_at, seq, bytes| {
                    early.push((created_at, seq, bytes.to_vec()));
                    Ok(ControlFlow::Continue(()))
                },
            )?;
        }
        early.sort_by_key(|(created_at, seq, _)| (*created_at, *seq));
        Ok(early)
    }

    /// The places in creation order of the interactions that may have
    /// been created before `from` (Unix seconds; `micros` the same in
    /// microseconds) and happen from then on, read from the indexes only
    /// (a row is read only for those it gives, most of them such).
    ///
    /// Places (`seq`) are unique, and `created_at` mostly grows with them
    /// (not for an import, which keeps its upstream time). Every
    /// interaction placed before the first one created from `from` on was
    /// created before it: those happening from then on are found in the
    /// time index by their place. Every place is below the largest plus
    /// one, so when the places from the first on are exactly as many as
    /// the interactions created from `from` on, none of them was created
    /// before it; otherwise those are found in the creation index by
    /// their place.
    fn created_before_happening_from(
        &self,
        from: i64,
        micros: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let read = |e| sqlite("reading", &self.path)(e);
        let (first, created_from): (Option<i64>, i64) = self
            .conn
            .query_row(
                "SELECT min(seq), count(*) FROM interactions INDEXED BY interactions_created
                 WHERE created_at >= ?1",
                [micros],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(read)?;
        let first = first.unwrap_or(i64::MAX);
        let next: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM interactions",
                [],
                |r| r.get(0),
            )
            .map_err(read)?;
        let mut seqs = Vec::new();
        let mut collect = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            let mut stmt = self.conn.prepare(sql).map_err(read)?;
            let rows = stmt
                .query_map(params, |r| r.get::<_, i64>(0))
                .map_err(read)?;
            for seq in rows {
                seqs.push(seq.map_err(read)?);
            }
            Ok::<(), StoreError>(())
        };
        collect(
            "SELECT seq FROM interactions INDEXED BY interactions_time
             WHERE occurs_at >= ?1 AND seq < ?2",
            &[&from, &first],
        )?;
        let placed_after = next.saturating_sub(first).max(0);
        if first != i64::MAX && placed_after != created_from {
            collect(
                "SELECT seq FROM interactions INDEXED BY interactions_created
                 WHERE created_at < ?1 AND seq >= ?2",
                &[&micros, &first],
            )?;
        }
        Ok(seqs)
    }

    /// The interaction with our id `id` as this connection's read
    /// transaction sees it, with its place in creation order: what a
    /// what-if that let its full record go reads back before a change in
    /// the journal after the store's position applies to it.
    pub fn interaction(
        &self,
        id: &str,
    ) -> Result<Option<(u64, crate::model::Interaction)>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, record FROM interactions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sqlite("reading", &self.path))?;
        row.map(|(seq, bytes)| {
            let record = super::reader::decode_interaction(&self.path, &bytes)?;
            Ok((u64::try_from(seq).unwrap_or(0), record))
        })
        .transpose()
    }

    /// The records [`Store::for_each_in_time`] holds and sorts, with the
    /// time each took effect.
    fn held_records(&self) -> Result<Vec<Held>, JournalError> {
        let mut held = Vec::new();
        for (group, kind, order) in [
            (0, Kind::Person, "last_seq"),
            (0, Kind::Debt, "first_seq"),
            (0, Kind::Restriction, "first_seq"),
            (2, Kind::Reservation, "first_seq"),
        ] {
            let mut stmt = self
                .conn
                .prepare(&super::load::kind_sql(kind, order))
                .map_err(sqlite("reading", &self.path))?;
            let mut rows = stmt.query([]).map_err(sqlite("reading", &self.path))?;
            while let Some(row) = rows.next().map_err(sqlite("reading", &self.path))? {
                let bytes: Vec<u8> = row.get(0).map_err(sqlite("reading", &self.path))?;
                let at = crate::ledger::changes(self.decode_row(&bytes)?)
                    .into_iter()
                    .filter_map(|c| c.ok()?.effective_at())
                    .max()
                    .map(|t| t.timestamp_micros());
                held.push((at, group, held.len(), bytes));
            }
        }
        Ok(held)
    }

    /// Runs `sql` (its columns `created_at`, `seq` and `record`) and gives
    /// each row to `each`, until the rows end or `each` stops.
    fn rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut each: impl FnMut(i64, i64, &[u8]) -> Step,
    ) -> Step {
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(sqlite("reading", &self.path))?;
        let mut rows = stmt.query(params).map_err(sqlite("reading", &self.path))?;
        while let Some(row) = rows.next().map_err(sqlite("reading", &self.path))? {
            let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, i64)> {
                Ok((row.get(0)?, row.get(1)?))
            };
            let (created_at, seq) = read(row).map_err(sqlite("reading", &self.path))?;
            let bytes = row
                .get_ref(2)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(sqlite("reading", &self.path))?;
            if each(created_at, seq, bytes)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The interactions of a store of format 1 created from `from` on or
    /// happening from then on, each with its creation time (Unix
    /// microseconds) and place, sorted: read whole and held, since that
    /// format has no index on the creation time.
    fn format_1_interactions(
        &self,
        from: Option<i64>,
    ) -> Result<Vec<InteractionRow>, JournalError> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT seq, record FROM interactions ORDER BY seq")
            .map_err(sqlite("reading", &self.path))?;
        let mut rows = stmt.query([]).map_err(sqlite("reading", &self.path))?;
        while let Some(row) = rows.next().map_err(sqlite("reading", &self.path))? {
            let seq: i64 = row.get(0).map_err(sqlite("reading", &self.path))?;
            let bytes: Vec<u8> = row.get(1).map_err(sqlite("reading", &self.path))?;
            let record = super::reader::decode_interaction(&self.path, &bytes)?;
            let created_at = record.created_at.timestamp_micros();
            let wanted = from.is_none_or(|from| {
                created_at >= from.saturating_mul(1_000_000)
                    || record.occurs_at().timestamp() >= from
            });
            if wanted {
                out.push((created_at, seq, bytes));
            }
        }
        out.sort_by_key(|(created_at, seq, _)| (*created_at, *seq));
        Ok(out)
    }

    /// Every row of store format 2 has its `created_at` (written with the
    /// row, or filled by the migration to format 2); one without would not
    /// be read by its index, so the store is refused rather than read in
    /// part.
    fn every_row_has_its_creation(&self) -> Result<(), StoreError> {
        let missing: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM interactions WHERE created_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(sqlite("reading", &self.path))?;
        if missing > 0 {
            return Err(StoreError::Format {
                path: self.path.clone(),
                reason: format!("{missing} interactions have no `created_at`"),
            });
        }
        Ok(())
    }

    /// A row's record.
    fn decode_row(&self, bytes: &[u8]) -> Result<Record, StoreError> {
        <Record as prost::Message>::decode(bytes).map_err(|e| StoreError::Format {
            path: self.path.clone(),
            reason: format!("a record does not decode: {e}"),
        })
    }
}
