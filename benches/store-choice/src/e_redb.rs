//! redb: a copy-on-write B-tree in one file. Only `u64`, `&str` and `&[u8]`
//! keys/values are used (their encodings did not change across redb majors;
//! the typed `Option<..>` / tuple encodings did), with our own big-endian keys.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{ListQ, Page, Res, Store, Via};
use crate::workload::*;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const EXT: TableDefinition<&[u8], u64> = TableDefinition::new("ext");
const BY_PERSON: TableDefinition<&[u8], ()> = TableDefinition::new("by_person");
const BY_TIME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("by_time");
const BY_CHANNEL: TableDefinition<&[u8], ()> = TableDefinition::new("by_channel");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub struct Redb {
    db: Database,
    /// `set_quick_repair(true)` on every write transaction: the allocator
    /// state is saved at each commit and 2-phase commit is used, so reopening
    /// after a crash needs no full repair walk.
    quick_repair: bool,
}

pub fn open(dir: &Path, cache_bytes: usize, quick_repair: bool) -> Res<Redb> {
    std::fs::create_dir_all(dir)?;
    let db = Database::builder().set_cache_size(cache_bytes).create(dir.join("store.redb"))?;
    // Make sure every table exists so read transactions can open them.
    let tx = db.begin_write()?;
    {
        tx.open_table(RECORDS)?;
        tx.open_table(EXT)?;
        tx.open_table(BY_PERSON)?;
        tx.open_table(BY_TIME)?;
        tx.open_table(BY_CHANNEL)?;
        tx.open_table(META)?;
    }
    tx.commit()?;
    Ok(Redb { db, quick_repair })
}

struct Old {
    person: u64,
    occurred: i64,
    channel: u8,
    ext: Option<Vec<u8>>,
}

impl Store for Redb {
    fn applied(&self) -> Res<Option<u64>> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(META)?;
        Ok(t.get("applied")?.map(|g| g.value()))
    }

    fn apply(&mut self, batch: &[Entry], bodies: &[Vec<u8>], sync: bool) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_quick_repair(self.quick_repair);
        tx.set_durability(if sync { Durability::Immediate } else { Durability::None })?;
        {
            let mut rec = tx.open_table(RECORDS)?;
            let mut ext = tx.open_table(EXT)?;
            let mut bp = tx.open_table(BY_PERSON)?;
            let mut bt = tx.open_table(BY_TIME)?;
            let mut bc = tx.open_table(BY_CHANNEL)?;
            let mut meta = tx.open_table(META)?;
            for (e, body) in batch.iter().zip(bodies) {
                // Upsert: insert returns the previous value, if any.
                let old = rec.insert(e.id, body.as_slice())?.map(|g| {
                    let h = decode_hdr(g.value());
                    Old { person: h.person, occurred: h.occurred, channel: h.channel, ext: h.ext.map(|x| x.to_vec()) }
                });
                let new_ext = e.ext.as_ref().map(|x| &x[..]);
                let (p_changed, t_changed, c_changed, x_changed) = match &old {
                    None => (true, true, true, true),
                    Some(o) => {
                        let pc = o.person != e.person || o.occurred != e.occurred;
                        let tc = o.occurred != e.occurred;
                        let cc = o.channel != e.channel || o.occurred != e.occurred;
                        let xc = o.ext.as_deref() != new_ext;
                        if pc {
                            bp.remove(&person_key(o.person, o.occurred, e.id)[..])?;
                        }
                        if tc {
                            bt.remove(&time_key(o.occurred, e.id)[..])?;
                        }
                        if cc {
                            bc.remove(&channel_key(o.channel, o.occurred, e.id)[..])?;
                        }
                        if xc {
                            if let Some(x) = &o.ext {
                                ext.remove(x.as_slice())?;
                            }
                        }
                        (pc, tc, cc, xc)
                    }
                };
                let _ = t_changed;
                if p_changed {
                    bp.insert(&person_key(e.person, e.occurred, e.id)[..], ())?;
                }
                // by_time carries (channel, status): rewritten on every upsert.
                bt.insert(&time_key(e.occurred, e.id)[..], &[e.channel, e.status][..])?;
                if c_changed {
                    bc.insert(&channel_key(e.channel, e.occurred, e.id)[..], ())?;
                }
                if x_changed {
                    if let Some(x) = new_ext {
                        ext.insert(x, e.id)?;
                    }
                }
            }
            meta.insert("applied", batch.last().unwrap().pos)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get(&self, id: u64, out: &mut Vec<u8>) -> Res<bool> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(RECORDS)?;
        match t.get(id)? {
            Some(g) => {
                out.clear();
                out.extend_from_slice(g.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_ext(&self, x: &str, out: &mut Vec<u8>) -> Res<Option<u64>> {
        let rx = self.db.begin_read()?;
        let et = rx.open_table(EXT)?;
        let Some(id) = et.get(x.as_bytes())?.map(|g| g.value()) else { return Ok(None) };
        let t = rx.open_table(RECORDS)?;
        if let Some(g) = t.get(id)? {
            out.clear();
            out.extend_from_slice(g.value());
        }
        Ok(Some(id))
    }

    fn person_page(&self, person: u64, limit: usize, page: &mut Page) -> Res<()> {
        page.clear();
        let rx = self.db.begin_read()?;
        let bp = rx.open_table(BY_PERSON)?;
        let lo = person_key(person, i64::MIN, 0);
        let hi = person_key(person, i64::MAX, u64::MAX);
        for kv in bp.range(&lo[..]..=&hi[..])?.rev().take(limit) {
            let (k, _) = kv?;
            page.ids.push(id_from_key_tail(k.value()));
        }
        let t = rx.open_table(RECORDS)?;
        let mut buf = Vec::with_capacity(1024);
        for &id in &page.ids {
            let g = t.get(id)?.expect("index points at a missing record");
            buf.clear();
            buf.extend_from_slice(g.value());
            page.bytes += buf.len();
        }
        Ok(())
    }

    fn list(&self, q: &ListQ, page: &mut Page) -> Res<()> {
        page.clear();
        let rx = self.db.begin_read()?;
        match q.via {
            Via::ChannelIndex => {
                let ch = q.channel.expect("channel index needs a channel");
                let bc = rx.open_table(BY_CHANNEL)?;
                let lo = channel_key(ch, q.from, 0);
                let hi = channel_key(ch, q.to, 0);
                for kv in bc.range(&lo[..]..&hi[..])?.rev().take(q.limit) {
                    let (k, _) = kv?;
                    page.scanned += 1;
                    page.ids.push(id_from_key_tail(k.value()));
                }
            }
            Via::TimeIndex => {
                let bt = rx.open_table(BY_TIME)?;
                let lo = time_key(q.from, 0);
                let hi = time_key(q.to, 0);
                for kv in bt.range(&lo[..]..&hi[..])?.rev() {
                    let (k, v) = kv?;
                    page.scanned += 1;
                    if q.channel.is_none_or(|c| v.value()[0] == c) {
                        page.ids.push(id_from_key_tail(k.value()));
                        if page.ids.len() == q.limit {
                            break;
                        }
                    }
                }
            }
        }
        let t = rx.open_table(RECORDS)?;
        let mut buf = Vec::with_capacity(1024);
        for &id in &page.ids {
            let g = t.get(id)?.expect("index points at a missing record");
            buf.clear();
            buf.extend_from_slice(g.value());
            page.bytes += buf.len();
        }
        Ok(())
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close()?;
        Ok(())
    }
}
