//! SQLite (bundled amalgamation via rusqlite), WAL mode. Durable commits use
//! synchronous=FULL (the WAL is fsynced at every commit); lazy commits use
//! synchronous=NORMAL (no fsync at commit; the WAL is fsynced at checkpoints).
//! Secondary indexes are SQLite's own, maintained by the upsert.

use std::cell::Cell;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{ListQ, Page, Res, Store, Via};
use crate::workload::*;

pub struct Sqlite {
    conn: Connection,
    synchronous_full: Cell<bool>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS interactions(
  id INTEGER PRIMARY KEY,
  person INTEGER NOT NULL,
  occurred INTEGER NOT NULL,
  channel INTEGER NOT NULL,
  status INTEGER NOT NULL,
  ext TEXT UNIQUE,
  body BLOB NOT NULL
);
-- (person, occurred) + the implicit rowid (= id): the person page index
CREATE INDEX IF NOT EXISTS by_person ON interactions(person, occurred);
-- (occurred, id) carrying channel and status, like the key-value by_time
CREATE INDEX IF NOT EXISTS by_time ON interactions(occurred, id, channel, status);
-- (channel, occurred) + implicit rowid
CREATE INDEX IF NOT EXISTS by_channel ON interactions(channel, occurred);
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
";

pub fn open(dir: &Path, cache_bytes: usize) -> Res<Sqlite> {
    std::fs::create_dir_all(dir)?;
    let conn = Connection::open(dir.join("store.sqlite"))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "FULL")?;
    // negative = KiB
    conn.pragma_update(None, "cache_size", -((cache_bytes / 1024) as i64))?;
    conn.execute_batch(SCHEMA)?;
    Ok(Sqlite { conn, synchronous_full: Cell::new(true) })
}

impl Sqlite {
    pub fn explain(&self) -> Res<Vec<String>> {
        let mut out = vec![];
        for sql in [Q_GET, Q_EXT, Q_PERSON, Q_CHANNEL, Q_TIME_CH, Q_TIME_ALL] {
            let mut st = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let n = st.parameter_count();
            let ps: Vec<i64> = vec![1; n];
            let rows: Vec<String> = st
                .query_map(rusqlite::params_from_iter(ps.iter()), |r| r.get::<_, String>(3))?
                .collect::<Result<_, _>>()?;
            out.push(format!("{} => {}", sql.split_whitespace().collect::<Vec<_>>().join(" "), rows.join(" | ")));
        }
        Ok(out)
    }
}

const Q_GET: &str = "SELECT body FROM interactions WHERE id = ?1";
const Q_EXT: &str = "SELECT id, body FROM interactions WHERE ext = ?1";
const Q_PERSON: &str =
    "SELECT id, body FROM interactions WHERE person = ?1 ORDER BY occurred DESC, id DESC LIMIT ?2";
const Q_CHANNEL: &str = "SELECT id, body FROM interactions INDEXED BY by_channel \
     WHERE channel = ?1 AND occurred >= ?2 AND occurred < ?3 ORDER BY occurred DESC, id DESC LIMIT ?4";
const Q_TIME_CH: &str = "SELECT id, body FROM interactions INDEXED BY by_time \
     WHERE channel = ?1 AND occurred >= ?2 AND occurred < ?3 ORDER BY occurred DESC, id DESC LIMIT ?4";
const Q_TIME_ALL: &str = "SELECT id, body FROM interactions INDEXED BY by_time \
     WHERE occurred >= ?1 AND occurred < ?2 ORDER BY occurred DESC, id DESC LIMIT ?3";

const UPSERT: &str = "INSERT INTO interactions(id, person, occurred, channel, status, ext, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET \
     person = excluded.person, occurred = excluded.occurred, channel = excluded.channel, \
     status = excluded.status, ext = excluded.ext, body = excluded.body";

fn fill_page(rows: &mut rusqlite::Rows<'_>, page: &mut Page) -> Res<()> {
    let mut buf = Vec::with_capacity(1024);
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let b = r.get_ref(1)?.as_blob()?;
        buf.clear();
        buf.extend_from_slice(b);
        page.bytes += buf.len();
        page.ids.push(id as u64);
    }
    page.scanned = page.ids.len();
    Ok(())
}

impl Store for Sqlite {
    fn applied(&self) -> Res<Option<u64>> {
        Ok(self
            .conn
            .query_row("SELECT v FROM meta WHERE k = 'applied'", [], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64))
    }

    fn apply(&mut self, batch: &[Entry], bodies: &[Vec<u8>], sync: bool) -> Res<()> {
        if sync != self.synchronous_full.get() {
            self.conn.pragma_update(None, "synchronous", if sync { "FULL" } else { "NORMAL" })?;
            self.synchronous_full.set(sync);
        }
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(UPSERT)?;
            for (e, body) in batch.iter().zip(bodies) {
                up.execute(params![
                    e.id as i64,
                    e.person as i64,
                    e.occurred,
                    e.channel as i64,
                    e.status as i64,
                    e.ext_str(),
                    body.as_slice()
                ])?;
            }
            let mut m = tx.prepare_cached(
                "INSERT INTO meta(k, v) VALUES('applied', ?1) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            )?;
            m.execute(params![batch.last().unwrap().pos as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, id: u64, out: &mut Vec<u8>) -> Res<bool> {
        let mut st = self.conn.prepare_cached(Q_GET)?;
        let mut rows = st.query(params![id as i64])?;
        match rows.next()? {
            Some(r) => {
                out.clear();
                out.extend_from_slice(r.get_ref(0)?.as_blob()?);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_ext(&self, x: &str, out: &mut Vec<u8>) -> Res<Option<u64>> {
        let mut st = self.conn.prepare_cached(Q_EXT)?;
        let mut rows = st.query(params![x])?;
        match rows.next()? {
            Some(r) => {
                out.clear();
                out.extend_from_slice(r.get_ref(1)?.as_blob()?);
                Ok(Some(r.get::<_, i64>(0)? as u64))
            }
            None => Ok(None),
        }
    }

    fn person_page(&self, person: u64, limit: usize, page: &mut Page) -> Res<()> {
        page.clear();
        let mut st = self.conn.prepare_cached(Q_PERSON)?;
        let mut rows = st.query(params![person as i64, limit as i64])?;
        fill_page(&mut rows, page)
    }

    fn list(&self, q: &ListQ, page: &mut Page) -> Res<()> {
        page.clear();
        match (q.via, q.channel) {
            (Via::ChannelIndex, Some(ch)) => {
                let mut st = self.conn.prepare_cached(Q_CHANNEL)?;
                let mut rows = st.query(params![ch as i64, q.from, q.to, q.limit as i64])?;
                fill_page(&mut rows, page)
            }
            (Via::TimeIndex, Some(ch)) => {
                let mut st = self.conn.prepare_cached(Q_TIME_CH)?;
                let mut rows = st.query(params![ch as i64, q.from, q.to, q.limit as i64])?;
                fill_page(&mut rows, page)
            }
            (Via::TimeIndex, None) => {
                let mut st = self.conn.prepare_cached(Q_TIME_ALL)?;
                let mut rows = st.query(params![q.from, q.to, q.limit as i64])?;
                fill_page(&mut rows, page)
            }
            (Via::ChannelIndex, None) => Err("channel index needs a channel".into()),
        }
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
