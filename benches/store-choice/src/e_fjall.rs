//! fjall 3: an LSM-tree with one journal shared by its keyspaces; a write
//! batch across keyspaces is atomic. Durable commits persist the journal with
//! SyncAll; lazy commits with Buffer (write(2) to the OS, no fsync). Default
//! keyspace options (LZ4 on the last level; our random bodies don't compress).

use std::collections::HashMap;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use crate::store::{ListQ, Page, Res, Store, Via};
use crate::workload::*;

pub struct Fjall {
    db: Database,
    rec: Keyspace,
    ext: Keyspace,
    bp: Keyspace,
    bt: Keyspace,
    bc: Keyspace,
    meta: Keyspace,
}

pub fn open(dir: &Path, cache_bytes: usize) -> Res<Fjall> {
    std::fs::create_dir_all(dir)?;
    let db = Database::builder(dir.join("store.fjall")).cache_size(cache_bytes as u64).open()?;
    let ks = |n: &str| db.keyspace(n, KeyspaceCreateOptions::default);
    Ok(Fjall {
        rec: ks("records")?,
        ext: ks("ext")?,
        bp: ks("by_person")?,
        bt: ks("by_time")?,
        bc: ks("by_channel")?,
        meta: ks("meta")?,
        db,
    })
}

#[derive(Clone)]
struct Old {
    person: u64,
    occurred: i64,
    channel: u8,
    ext: Option<Vec<u8>>,
}

impl Store for Fjall {
    fn applied(&self) -> Res<Option<u64>> {
        Ok(self.meta.get("applied")?.map(|v| u64::from_be_bytes(v[..8].try_into().unwrap())))
    }

    fn apply(&mut self, batch: &[Entry], bodies: &[Vec<u8>], sync: bool) -> Res<()> {
        // A write batch does not read its own writes: keep this batch's
        // records' index fields aside for a later update of the same id.
        let mut pending: HashMap<u64, Old> = HashMap::new();
        let mut wb = self.db.batch().durability(Some(if sync { PersistMode::SyncAll } else { PersistMode::Buffer }));
        for (e, body) in batch.iter().zip(bodies) {
            let old = if e.is_update {
                match pending.get(&e.id) {
                    Some(o) => Some(o.clone()),
                    None => self.rec.get(e.id.to_be_bytes())?.map(|v| {
                        let h = decode_hdr(&v);
                        Old { person: h.person, occurred: h.occurred, channel: h.channel, ext: h.ext.map(|x| x.to_vec()) }
                    }),
                }
            } else {
                None
            };
            let new_ext = e.ext.as_ref().map(|x| &x[..]);
            let (pc, cc, xc) = match &old {
                None => (true, true, true),
                Some(o) => {
                    let pc = o.person != e.person || o.occurred != e.occurred;
                    let tc = o.occurred != e.occurred;
                    let cc = o.channel != e.channel || o.occurred != e.occurred;
                    let xc = o.ext.as_deref() != new_ext;
                    if pc {
                        wb.remove(&self.bp, person_key(o.person, o.occurred, e.id));
                    }
                    if tc {
                        wb.remove(&self.bt, time_key(o.occurred, e.id));
                    }
                    if cc {
                        wb.remove(&self.bc, channel_key(o.channel, o.occurred, e.id));
                    }
                    if xc {
                        if let Some(x) = &o.ext {
                            wb.remove(&self.ext, x.clone());
                        }
                    }
                    (pc, cc, xc)
                }
            };
            wb.insert(&self.rec, e.id.to_be_bytes(), body.as_slice());
            if pc {
                wb.insert(&self.bp, person_key(e.person, e.occurred, e.id), []);
            }
            wb.insert(&self.bt, time_key(e.occurred, e.id), [e.channel, e.status]);
            if cc {
                wb.insert(&self.bc, channel_key(e.channel, e.occurred, e.id), []);
            }
            if xc {
                if let Some(x) = new_ext {
                    wb.insert(&self.ext, x, e.id.to_be_bytes());
                }
            }
            pending.insert(
                e.id,
                Old { person: e.person, occurred: e.occurred, channel: e.channel, ext: new_ext.map(|x| x.to_vec()) },
            );
        }
        wb.insert(&self.meta, "applied", batch.last().unwrap().pos.to_be_bytes());
        wb.commit()?;
        Ok(())
    }

    fn get(&self, id: u64, out: &mut Vec<u8>) -> Res<bool> {
        match self.rec.get(id.to_be_bytes())? {
            Some(v) => {
                out.clear();
                out.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_ext(&self, x: &str, out: &mut Vec<u8>) -> Res<Option<u64>> {
        let snap = self.db.snapshot();
        let Some(v) = snap.get(&self.ext, x.as_bytes())? else { return Ok(None) };
        let id = u64::from_be_bytes(v[..8].try_into().unwrap());
        if let Some(r) = snap.get(&self.rec, id.to_be_bytes())? {
            out.clear();
            out.extend_from_slice(&r);
        }
        Ok(Some(id))
    }

    fn person_page(&self, person: u64, limit: usize, page: &mut Page) -> Res<()> {
        page.clear();
        let snap = self.db.snapshot();
        let lo = person_key(person, i64::MIN, 0);
        let hi = person_key(person, i64::MAX, u64::MAX);
        for g in snap.range(&self.bp, lo..=hi).rev().take(limit) {
            let k = g.key()?;
            page.ids.push(id_from_key_tail(&k));
        }
        let mut buf = Vec::with_capacity(1024);
        for &id in &page.ids {
            let v = snap.get(&self.rec, id.to_be_bytes())?.expect("index points at a missing record");
            buf.clear();
            buf.extend_from_slice(&v);
            page.bytes += buf.len();
        }
        Ok(())
    }

    fn list(&self, q: &ListQ, page: &mut Page) -> Res<()> {
        page.clear();
        let snap = self.db.snapshot();
        match q.via {
            Via::ChannelIndex => {
                let ch = q.channel.expect("channel index needs a channel");
                let lo = channel_key(ch, q.from, 0);
                let hi = channel_key(ch, q.to, 0);
                for g in snap.range(&self.bc, lo..hi).rev().take(q.limit) {
                    let k = g.key()?;
                    page.scanned += 1;
                    page.ids.push(id_from_key_tail(&k));
                }
            }
            Via::TimeIndex => {
                let lo = time_key(q.from, 0);
                let hi = time_key(q.to, 0);
                for g in snap.range(&self.bt, lo..hi).rev() {
                    let (k, v) = g.into_inner()?;
                    page.scanned += 1;
                    if q.channel.is_none_or(|c| v[0] == c) {
                        page.ids.push(id_from_key_tail(&k));
                        if page.ids.len() == q.limit {
                            break;
                        }
                    }
                }
            }
        }
        let mut buf = Vec::with_capacity(1024);
        for &id in &page.ids {
            let v = snap.get(&self.rec, id.to_be_bytes())?.expect("index points at a missing record");
            buf.clear();
            buf.extend_from_slice(&v);
            page.bytes += buf.len();
        }
        Ok(())
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.persist(PersistMode::SyncAll)?;
        drop(self);
        Ok(())
    }
}
