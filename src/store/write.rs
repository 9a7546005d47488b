//! Writing to the store: the records of the journal applied in one
//! transaction with the position they reach ([`Writing`]).

use std::path::PathBuf;

use rusqlite::{Transaction, params};

use super::{Kind, StoreError, sqlite};
use crate::journal::Position;
use crate::ledger::{Change, changes};
use crate::pb::journal::Record;

/// An interaction's `started_at` and `created_at` columns (Unix
/// microseconds, rounded down): written with each row, and filled by the
/// migration to format 2, the same way.
pub(super) fn listing_times(i: &crate::model::Interaction) -> (i64, i64) {
    (
        i.started_at.timestamp_micros(),
        i.created_at.timestamp_micros(),
    )
}

/// Records being written to the store, in one transaction.
#[derive(Debug)]
pub struct Writing<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) path: PathBuf,
    pub(super) seq: i64,
    /// The next new interaction's place in creation order (`interactions.seq`):
    /// counted apart from `seq`, so that an index numbering the
    /// interactions it records from [`Store::next_interaction_seq`] gives
    /// them the places the store will.
    pub(super) interaction_seq: i64,
    pub(super) records: u64,
}

impl Writing<'_> {
    /// Runs one statement, prepared once per connection and kept (the
    /// follower runs the same few for every batch).
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params))
            .map_err(sqlite("writing", &self.path))
    }

    /// Applies one journal record (a batch: each of its records in turn):
    /// each thing it names now holds the state it gives.
    pub fn apply(&mut self, record: Record) -> Result<(), StoreError> {
        for change in changes(record) {
            let change = change.map_err(|cause| StoreError::Apply {
                path: self.path.clone(),
                cause,
            })?;
            self.apply_change(&change)?;
        }
        Ok(())
    }

    fn apply_change(&mut self, change: &Change) -> Result<(), StoreError> {
        self.seq += 1;
        self.records += 1;
        let record = prost::Message::encode_to_vec(&change.record());
        match change {
            Change::Person { names, .. } => {
                // A name now an alias of this person no longer names a
                // person of its own.
                for alias in &names.aliases {
                    self.delete(Kind::Person, alias)?;
                }
                self.put(Kind::Person, &names.id, None, &record)
            }
            Change::Debt {
                person_id, debt_id, ..
            } => self.put(
                Kind::Debt,
                &format!("{person_id}\n{debt_id}"),
                None,
                &record,
            ),
            Change::Restriction(r) => self.put(Kind::Restriction, &r.id, None, &record),
            Change::Interaction(i) => {
                let at = i.occurs_at().timestamp();
                let deleted_at = i.deleted_at.map(|t| t.timestamp_micros());
                let media: Vec<&str> = [&i.recording, &i.voicemail]
                    .into_iter()
                    .flatten()
                    .map(|m| m.storage_key.as_str())
                    .collect();
                let media = (!media.is_empty()).then(|| media.join(" "));
                // A new one takes the next place in creation order; a
                // known one keeps its place and takes the new state.
                let (started_at, created_at) = listing_times(i);
                let values: [&dyn rusqlite::ToSql; 11] = [
                    &self.interaction_seq,
                    &i.id,
                    &i.person_id,
                    &i.external_id,
                    &at,
                    &deleted_at,
                    &media,
                    &record,
                    &started_at,
                    &created_at,
                    &i.company_id,
                ];
                let inserted = self.run(
                    "INSERT OR IGNORE INTO interactions
                             (seq, id, person_id, external_id, occurs_at, deleted_at, media, record,
                              started_at, created_at, company_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    &values[..],
                )?;
                if inserted == 1 {
                    self.interaction_seq += 1;
                } else {
                    // The same values but the place, which it keeps.
                    self.run(
                        "UPDATE interactions SET person_id = ?2, external_id = ?3,
                                 occurs_at = ?4, deleted_at = ?5, media = ?6, record = ?7,
                                 started_at = ?8, created_at = ?9, company_id = ?10
                             WHERE id = ?1",
                        &values[1..],
                    )?;
                }
                // The audio it names, for the media sweep: which record
                // holds a file, and whether that record is deleted (a new
                // one has no rows there yet).
                if inserted != 1 {
                    self.run("DELETE FROM media WHERE interaction_id = ?1", [&i.id])?;
                }
                for m in [&i.recording, &i.voicemail].into_iter().flatten() {
                    self.run(
                        "INSERT INTO media (storage_key, interaction_id, deleted_at)
                             VALUES (?1, ?2, ?3)
                             ON CONFLICT (storage_key) DO UPDATE SET
                                 interaction_id = excluded.interaction_id,
                                 deleted_at = excluded.deleted_at",
                        params![m.storage_key, i.id, deleted_at],
                    )?;
                }
                Ok(())
            }
            Change::ReservationOpened(r) => {
                self.put(Kind::Reservation, &r.interaction_id, None, &record)
            }
            Change::ReservationClosed(id) => self.delete(Kind::Reservation, id),
            Change::Answer { request_id, answer } => self.put(
                Kind::Answer,
                request_id,
                Some(answer.stored_at.timestamp()),
                &record,
            ),
            Change::Convo(c) => self.put(Kind::Convo, &c.interaction_id, None, &record),
        }
    }

    fn put(
        &mut self,
        kind: Kind,
        key: &str,
        at: Option<i64>,
        record: &[u8],
    ) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO state (kind, key, first_seq, last_seq, at, record)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5)
                 ON CONFLICT (kind, key) DO UPDATE SET last_seq = excluded.last_seq,
                     at = excluded.at, record = excluded.record",
            params![kind as i64, key, self.seq, at, record],
        )
        .map(|_| ())
    }

    fn delete(&mut self, kind: Kind, key: &str) -> Result<(), StoreError> {
        self.run(
            "DELETE FROM state WHERE kind = ?1 AND key = ?2",
            params![kind as i64, key],
        )
        .map(|_| ())
    }

    /// Forgets stored answers older than `before` (Unix seconds): a retry
    /// is answered from them for [`crate::ledger::REQUEST_ID_TTL_HOURS`]
    /// only, so the store need not keep them longer.
    pub fn forget_answers_before(&mut self, before: i64) -> Result<u64, StoreError> {
        self.run(
            "DELETE FROM state WHERE kind = ?1 AND at < ?2",
            params![Kind::Answer as i64, before],
        )
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Writes the position with the records, and commits: durable when it
    /// returns. Returns the changes applied.
    pub fn commit(self, at: Position) -> Result<u64, StoreError> {
        let Writing {
            tx,
            path,
            seq,
            interaction_seq,
            records,
        } = self;
        let (Ok(generation), Ok(at_records)) =
            (i64::try_from(at.generation), i64::try_from(at.records))
        else {
            return Err(StoreError::Format {
                path,
                reason: format!(
                    "the position ({}, {}) does not fit",
                    at.generation, at.records
                ),
            });
        };
        for (key, value) in [
            ("generation", generation),
            ("records", at_records),
            ("next_seq", seq),
            ("next_interaction_seq", interaction_seq),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(sqlite("writing", &path))?;
        }
        tx.commit().map_err(sqlite("committing", &path))?;
        Ok(records)
    }
}
