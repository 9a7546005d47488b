//! Reading the store back at a start ([`Store::load`]): every record in
//! the order recovery applies them. The rows are read, and the
//! interactions prepared, on a thread of their own, on a connection of
//! their own, while the caller applies what was read before: a start's
//! two halves, SQLite and the records' bytes on one side and the index on
//! the other, overlap on two cores.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{CACHE_KIB, Kind, Store, StoreError, sqlite};
use crate::journal::{JournalError, Position};
use crate::pb::journal::Record;

/// How many things the reading thread sends at a time.
const BATCH: usize = 256;
/// How many batches it may read ahead of the one applied: what a start
/// holds besides the index stays small.
const AHEAD: usize = 8;

/// One thing [`Store::load`] gives.
#[derive(Debug)]
pub enum Loaded<'a, P> {
    /// A record, applied as recovery applies the journal's.
    Record(Box<Record>),
    /// An interaction's record, with its place in creation order (the
    /// store's `seq`), applied as recovery applies the journal's.
    Interaction {
        /// Its place in creation order.
        seq: u64,
        /// Its record.
        record: Box<Record>,
    },
    /// An interaction's record, with its place in creation order, as the
    /// reading thread prepared it (`prepare` of [`Store::load`]), its
    /// texts in `texts`.
    Prepared {
        /// Its place in creation order.
        seq: u64,
        /// What `prepare` made of it.
        prepared: P,
        /// The texts `prepare` kept with it.
        texts: &'a Texts,
    },
    /// The interactions whose records stay on disk: how many, the place
    /// in creation order after every interaction's, and the largest id
    /// that looks generated (after every one a new id must come).
    OnDisk {
        /// How many.
        count: u64,
        /// The place in creation order the next new interaction takes.
        next_seq: u64,
        /// The largest id of the `IT-XXXX-XXXXXXXX` shape, if any.
        largest_id: Option<String>,
    },
}

impl Store {
    /// Every record the store holds, in the order recovery applies them
    /// (see the module's documentation). Returns how many.
    ///
    /// Read on this connection, in the caller's thread: inside the read
    /// transaction a caller may have begun on it (a backup or a what-if
    /// beside a server pairs the store's position with the rows, and both
    /// must come from one state of the store).
    pub fn for_each(
        &self,
        mut each: impl FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let path = self.path.as_path();
        read_in_order::<()>(&self.conn, path, None, |row| {
            let record = match row {
                Row::Record(bytes) | Row::Interaction { bytes, .. } => decode(path, Some(bytes))?,
                // Only with a cutoff.
                Row::OnDisk(_) => return Ok(()),
            };
            each(*record)
        })
    }

    /// What a start reads beside an index it did not rebuild (one read
    /// from the index checkpoint): the open reservations, the
    /// conversations (from `cutoff` on, as [`Store::load`] reads them)
    /// and the stored answers, in that order. Returns how many.
    pub fn for_each_beside_index(
        &self,
        cutoff: Option<i64>,
        mut each: impl FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let path = self.path.as_path();
        read_beside_index::<()>(&self.conn, path, cutoff, |row| match row {
            Row::Record(bytes) => each(*decode(path, Some(bytes))?),
            Row::Interaction { .. } | Row::OnDisk(_) => Ok(()),
        })
    }

    /// The connection [`Store::load`] reads on, its read transaction
    /// already holding one state of the store: beside a writer (an index
    /// checkpoint built while serving), the caller takes it while it holds
    /// the writer still, with its own reads, so both read that state.
    pub fn pin_for_load(&self) -> Result<Pinned, JournalError> {
        let path = self.path.as_path();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite("opening", path))?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}; BEGIN;"))
            .map_err(sqlite("starting to read", path))?;
        // The first read takes the state the transaction reads.
        let reading = Store {
            conn,
            path: path.to_owned(),
        };
        let at = reading.position()?;
        Ok(Pinned {
            conn: reading.conn,
            at,
        })
    }

    /// [`Store::for_each`], but an interaction that happens before
    /// `cutoff` (Unix seconds) is given as what memory keeps of it
    /// ([`Loaded::OnDisk`]), its full record not even read. Returns how
    /// many records and interactions were given.
    ///
    /// The rows are read in one read transaction (one state of the store)
    /// on a second, read-only connection, by a thread of their own that
    /// stays at most [`AHEAD`] batches ahead of `each`. An error on either
    /// side stops both; the first one is returned. (Not inside a
    /// transaction the caller began on this connection: [`Store::for_each`]
    /// is.) That connection is `pinned`, or, for a start (whose process is
    /// the store's only writer), `None`: one opened here.
    ///
    /// The reading thread also gives each interaction's record, its bytes
    /// as stored, to `prepare`: what that returns is given as
    /// [`Loaded::Prepared`] (whatever `prepare` does done on the other
    /// core), and `None` as [`Loaded::Interaction`], decoded by the
    /// caller's thread.
    /// `prepare` keeps what it allocates in the [`Texts`] it is given,
    /// which the caller's thread frees as one, so that what one thread
    /// allocates the other need not free piece by piece.
    pub fn load<P: Send>(
        &self,
        pinned: Option<Pinned>,
        cutoff: Option<i64>,
        prepare: impl Fn(&[u8], &mut Texts) -> Option<P> + Sync,
        mut each: impl FnMut(Loaded<'_, P>) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let pinned = match pinned {
            Some(pinned) => pinned,
            None => self.pin_for_load()?,
        };
        let path = self.path.as_path();
        let conn = pinned.conn;
        let stopped = || JournalError::Failed("a start stopped reading the store".into());
        std::thread::scope(|scope| {
            let (send, receive) = mpsc::sync_channel::<Batch<P>>(AHEAD);
            let prepare = &prepare;
            let reading = std::thread::Builder::new()
                .name("store-load".into())
                .spawn_scoped(scope, move || {
                    let mut batch = Batch::default();
                    let n = read_in_order(&conn, path, cutoff, |row| {
                        batch.push(row, prepare);
                        if batch.rows.len() == BATCH {
                            send.send(std::mem::take(&mut batch))
                                .map_err(|_| stopped())?;
                        }
                        Ok(())
                    })?;
                    if !batch.rows.is_empty() {
                        send.send(batch).map_err(|_| stopped())?;
                    }
                    Ok(n)
                })
                .map_err(|e| {
                    JournalError::Failed(format!("starting a thread to read the store: {e}"))
                })?;
            let mut failed = None;
            'batches: for batch in receive.iter() {
                let mut from = 0;
                for packed in batch.rows {
                    let loaded = match packed {
                        Packed::Record { end } => {
                            let bytes = batch.bytes.get(from..end);
                            from = end;
                            decode(path, bytes).map(Loaded::Record)
                        }
                        Packed::Interaction { seq, end } => {
                            let bytes = batch.bytes.get(from..end);
                            from = end;
                            decode(path, bytes).map(|record| Loaded::Interaction { seq, record })
                        }
                        Packed::Prepared { seq, prepared } => Ok(Loaded::Prepared {
                            seq,
                            prepared,
                            texts: &batch.texts,
                        }),
                        Packed::Other(loaded) => Ok(loaded),
                    };
                    if let Err(e) = loaded.map_err(JournalError::from).and_then(&mut each) {
                        failed = Some(e);
                        break 'batches;
                    }
                }
            }
            // The reading thread's next send fails, and it stops.
            drop(receive);
            let read = reading.join().unwrap_or_else(|_| {
                Err(JournalError::Failed(
                    "the thread reading the store panicked".into(),
                ))
            });
            match failed {
                Some(e) => Err(e),
                None => read,
            }
        })
    }
}

/// A read-only connection whose read transaction holds one state of the
/// store ([`Store::pin_for_load`]).
#[derive(Debug)]
pub struct Pinned {
    conn: Connection,
    at: Option<Position>,
}

impl Pinned {
    /// The position of the state it reads.
    pub fn position(&self) -> Option<Position> {
        self.at
    }
}

/// Texts kept for what [`Store::load`]'s `prepare` made, end to end in
/// one buffer a batch: the thread that reads the store allocates it and
/// the thread that applies the batch frees it, once (a record's many
/// strings freed one by one on the other thread cost the allocator more
/// than decoding them there saved).
#[derive(Debug, Default)]
pub struct Texts {
    text: String,
    spans: Vec<(usize, usize)>,
}

/// A text kept in [`Texts`]: its place there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(usize);

impl Texts {
    /// Keeps `text`; returns where it is.
    pub fn push(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        self.spans.push((start, self.text.len()));
        Span(self.spans.len() - 1)
    }

    /// The text kept at `span` (empty for a span of other texts).
    pub fn get(&self, span: Span) -> &str {
        self.spans
            .get(span.0)
            .and_then(|&(from, to)| self.text.get(from..to))
            .unwrap_or("")
    }

    /// The `n` texts kept one after the other from `first`.
    pub fn run(&self, first: Span, n: usize) -> impl Iterator<Item = &str> + '_ {
        (first.0..first.0.saturating_add(n)).map(|i| self.get(Span(i)))
    }
}

/// Rows read ahead, their records' bytes end to end in one buffer:
/// decoded by the thread that applies them, so that what is allocated for
/// a record is freed by the thread that allocated it (a free from another
/// thread costs the allocator more than the decoding saved); or prepared
/// by the reading thread, their texts in `texts` (see [`Texts`]).
struct Batch<P> {
    bytes: Vec<u8>,
    texts: Texts,
    rows: Vec<Packed<P>>,
}

impl<P> Default for Batch<P> {
    fn default() -> Self {
        Batch {
            bytes: Vec::new(),
            texts: Texts::default(),
            rows: Vec::new(),
        }
    }
}

enum Packed<P> {
    Record { end: usize },
    Interaction { seq: u64, end: usize },
    Prepared { seq: u64, prepared: P },
    Other(Loaded<'static, P>),
}

impl<P> Batch<P> {
    fn push(&mut self, row: Row<'_, P>, prepare: &impl Fn(&[u8], &mut Texts) -> Option<P>) {
        let packed = match row {
            Row::Record(bytes) => {
                self.bytes.extend_from_slice(bytes);
                Packed::Record {
                    end: self.bytes.len(),
                }
            }
            Row::Interaction { seq, bytes } => {
                if let Some(prepared) = prepare(bytes, &mut self.texts) {
                    self.rows.push(Packed::Prepared { seq, prepared });
                    return;
                }
                self.bytes.extend_from_slice(bytes);
                Packed::Interaction {
                    seq,
                    end: self.bytes.len(),
                }
            }
            Row::OnDisk(loaded) => Packed::Other(loaded),
        };
        self.rows.push(packed);
    }
}

fn decode(path: &Path, bytes: Option<&[u8]>) -> Result<Box<Record>, StoreError> {
    let bytes = bytes.ok_or_else(|| StoreError::Format {
        path: path.to_owned(),
        reason: "a batch read ahead lost a record's bytes".into(),
    })?;
    <Record as prost::Message>::decode(bytes)
        .map(Box::new)
        .map_err(|e| StoreError::Format {
            path: path.to_owned(),
            reason: format!("a record does not decode: {e}"),
        })
}

fn next_interaction_seq(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'next_interaction_seq'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(sqlite("reading", path))?
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(1))
}

/// One row as [`read_in_order`] reads it: a record's bytes, not decoded.
enum Row<'a, P> {
    Record(&'a [u8]),
    Interaction { seq: u64, bytes: &'a [u8] },
    OnDisk(Loaded<'static, P>),
}

/// What [`Store::load`]'s reading thread does: every query, in order, on
/// its own connection, each row given to `each` as it is read.
fn read_in_order<P>(
    conn: &Connection,
    path: &Path,
    cutoff: Option<i64>,
    mut each: impl FnMut(Row<'_, P>) -> Result<(), JournalError>,
) -> Result<u64, JournalError> {
    let n = std::cell::Cell::new(0u64);
    let read = |sql: &str, each: &mut dyn FnMut(Row<'_, P>) -> Result<(), JournalError>| {
        n.set(n.get() + read_records(conn, path, sql, &[], each)?);
        Ok::<(), JournalError>(())
    };
    let kind = kind_sql;
    read(&kind(Kind::Person, "last_seq"), &mut each)?;
    read(&kind(Kind::Debt, "first_seq"), &mut each)?;
    read(&kind(Kind::Restriction, "first_seq"), &mut each)?;
    // Interactions from the cutoff on, and an open reservation's
    // whatever its time (the reservation holds a slot, and its listing
    // reads it), in full and in creation order, found by the time
    // index and read by their place; of the others only how many
    // there are and the largest id they took, from the indexes,
    // without visiting them.
    let mut loaded = 0u64;
    {
        let mut row_read = |seq: i64, bytes: &[u8]| {
            n.set(n.get() + 1);
            loaded += 1;
            each(Row::Interaction {
                seq: u64::try_from(seq).unwrap_or(0),
                bytes,
            })
        };
        match cutoff {
            None => read_rows(
                conn,
                path,
                "SELECT seq, record FROM interactions ORDER BY seq",
                &[],
                |seq, row| row_read(seq, record_of(row, path)?).map(|()| true),
            )?,
            Some(c) => read_in_full(conn, path, c, &mut row_read)?,
        }
    }
    if cutoff.is_some() {
        // Places in creation order are 1, 2, ... one per interaction:
        // those not read are the ones before the next place.
        let next_seq = next_interaction_seq(conn, path)?;
        let count = next_seq.saturating_sub(1).saturating_sub(loaded);
        // The largest generated id (fixed-width upper-case hex sorts
        // as its number), from the end of the id index.
        let largest: Option<String> = conn
            .query_row(
                "SELECT id FROM interactions
                 WHERE id BETWEEN 'IT-0000-00000000' AND 'IT-FFFF-FFFFFFFF'
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite("reading", path))?;
        // Another id in that range (`IT-0000-0000000G`) sorts among
        // them: then the largest of the exact shape, read in full.
        let largest = match largest {
            Some(id) if is_generated(&id) => Some(id),
            Some(_) => conn
                .query_row(
                    "SELECT max(id) FROM interactions WHERE id GLOB
                     'IT-[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sqlite("reading", path))?,
            None => None,
        };
        n.set(n.get() + count);
        each(Row::OnDisk(Loaded::OnDisk {
            count,
            next_seq,
            largest_id: largest,
        }))?;
    }
    n.set(n.get() + read_beside_index(conn, path, cutoff, &mut each)?);
    Ok(n.get())
}

/// What [`read_in_order`] reads after the index's records: open
/// reservations, conversations (with a cutoff, only those of the
/// interactions read in full) and stored answers. Returns how many.
fn read_beside_index<P>(
    conn: &Connection,
    path: &Path,
    cutoff: Option<i64>,
    mut each: impl FnMut(Row<'_, P>) -> Result<(), JournalError>,
) -> Result<u64, JournalError> {
    let mut n = 0;
    let mut read_with =
        |sql: &str,
         params: &[&dyn rusqlite::ToSql],
         each: &mut dyn FnMut(Row<'_, P>) -> Result<(), JournalError>| {
            n += read_records(conn, path, sql, params, each)?;
            Ok::<(), JournalError>(())
        };
    let kind = kind_sql;
    read_with(&kind(Kind::Reservation, "first_seq"), &[], &mut each)?;
    match cutoff {
        None => read_with(&kind(Kind::Convo, "first_seq"), &[], &mut each)?,
        // The conversations of the interactions read in full only:
        // memory keeps no other (see `Ledger::forget_convos_on_disk`),
        // and a start need not visit them.
        Some(c) => read_with(
            &format!(
                "SELECT record FROM state WHERE kind = {convo} AND key IN (
                     SELECT id FROM interactions WHERE occurs_at >= ?1
                     UNION
                     SELECT key FROM state WHERE kind = {reservation})
                 ORDER BY first_seq",
                convo = Kind::Convo as i64,
                reservation = Kind::Reservation as i64
            ),
            &[&c],
            &mut each,
        )?,
    }
    read_with(&kind(Kind::Answer, "first_seq"), &[], &mut each)?;
    Ok(n)
}

/// The records of kind `k` in the order `order` names.
pub(super) fn kind_sql(k: Kind, order: &str) -> String {
    format!(
        "SELECT record FROM state WHERE kind = {} ORDER BY {order}",
        k as i64
    )
}

/// Runs `sql` (its one column a record's bytes) with `params` and gives
/// each row to `each`; returns how many.
fn read_records<P>(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    each: &mut dyn FnMut(Row<'_, P>) -> Result<(), JournalError>,
) -> Result<u64, JournalError> {
    let mut stmt = conn.prepare(sql).map_err(sqlite("reading", path))?;
    let mut rows = stmt.query(params).map_err(sqlite("reading", path))?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(sqlite("reading", path))? {
        let bytes = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(sqlite("reading", path))?;
        n += 1;
        each(Row::Record(bytes))?;
    }
    Ok(n)
}

/// Runs `sql` with `params` and gives each row's `seq` (its first column)
/// and the row to `each`, until the rows end or `each` says `false`; the
/// row's `record` (its second column, [`record_of`]) is read only if
/// `each` asks for it, so that a row passed over never has its record's
/// overflow pages read.
fn read_rows(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    mut each: impl FnMut(i64, &rusqlite::Row<'_>) -> Result<bool, JournalError>,
) -> Result<(), JournalError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite("reading", path))?;
    let mut rows = stmt.query(params).map_err(sqlite("reading", path))?;
    while let Some(row) = rows.next().map_err(sqlite("reading", path))? {
        let seq = row.get::<_, i64>(0).map_err(sqlite("reading", path))?;
        if !each(seq, row)? {
            break;
        }
    }
    Ok(())
}

/// The `record` of a row [`read_rows`] gives.
fn record_of<'r>(row: &'r rusqlite::Row<'_>, path: &Path) -> Result<&'r [u8], JournalError> {
    Ok(row
        .get_ref(1)
        .and_then(|v| Ok(v.as_blob()?))
        .map_err(sqlite("reading", path))?)
}

/// Rows of `interactions` between two places in creation order that are
/// not wanted but cheaper to read past than to seek over: a run of wanted
/// places with gaps up to this long is read as one range.
const READ_PAST: i64 = 64;

/// Gives `each` every interaction that happens from `cutoff` on, and every
/// open reservation's whatever its time, in creation order.
///
/// Their places are read first from the time index (and the
/// reservations'), then sorted in memory, and the rows read by ranges of
/// places: in the order the table is laid out, each range a scan, and no
/// row outside the ranges read. Asking SQLite for those rows in creation
/// order (`seq IN (… UNION …) ORDER BY seq`) built a temporary B-tree of
/// every place before the first row came (3.3 s at N = 10 M, while the
/// thread applying the rows had nothing to do).
fn read_in_full(
    conn: &Connection,
    path: &Path,
    cutoff: i64,
    mut each: impl FnMut(i64, &[u8]) -> Result<(), JournalError>,
) -> Result<(), JournalError> {
    let mut wanted: Vec<i64> = Vec::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT seq FROM interactions WHERE occurs_at >= ?1
                 UNION ALL
                 SELECT seq FROM interactions
                     WHERE id IN (SELECT key FROM state WHERE kind = ?2)",
            )
            .map_err(sqlite("reading", path))?;
        let rows = stmt
            .query_map(params![cutoff, Kind::Reservation as i64], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sqlite("reading", path))?;
        for seq in rows {
            wanted.push(seq.map_err(sqlite("reading", path))?);
        }
    }
    // Mostly in order already (the time index follows creation closely).
    wanted.sort_unstable();
    wanted.dedup();
    let mut rest = wanted.as_slice();
    while let Some(&first) = rest.first() {
        // The run: wanted places no further apart than `READ_PAST`.
        let mut end = 1;
        while end < rest.len() && rest[end] - rest[end - 1] <= READ_PAST {
            end += 1;
        }
        let (run, after) = rest.split_at(end);
        let last = run[run.len() - 1];
        let mut next = run.iter().copied().peekable();
        read_rows(
            conn,
            path,
            "SELECT seq, record FROM interactions WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            &[&first, &last],
            |seq, row| {
                while next.next_if(|&w| w < seq).is_some() {}
                if next.next_if_eq(&seq).is_some() {
                    each(seq, record_of(row, path)?)?;
                }
                Ok(next.peek().is_some())
            },
        )?;
        rest = after;
    }
    Ok(())
}

/// True for an id of the shape generated ids have (`IT-XXXX-XXXXXXXX`,
/// upper-case hex).
fn is_generated(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 16
        && id.starts_with("IT-")
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .filter(|(i, _)| *i >= 3 && *i != 7)
            .all(|(_, c)| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}
