//! The operations issue 15 needs from a store, one implementation per engine.

use crate::workload::Entry;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A page of List results: the ids in order, and the record bytes copied out
/// (as a decoder would) into one scratch buffer.
#[derive(Default)]
pub struct Page {
    pub ids: Vec<u64>,
    pub bytes: usize,
    pub scanned: usize,
}
impl Page {
    pub fn clear(&mut self) {
        self.ids.clear();
        self.bytes = 0;
        self.scanned = 0;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// (channel, occurred_at, id) index: one range per channel.
    ChannelIndex,
    /// (occurred_at, id) -> (channel, status) index: range over time, filter on channel.
    TimeIndex,
}

#[derive(Clone, Copy, Debug)]
pub struct ListQ {
    pub channel: Option<u8>,
    /// occurred_at in [from, to)
    pub from: i64,
    pub to: i64,
    pub limit: usize,
    pub via: Via,
}

pub trait Store {
    /// The log position recorded by the last committed apply, if any.
    fn applied(&self) -> Res<Option<u64>>;
    /// One write transaction: upsert every record of the batch, maintain the
    /// secondary indexes, record the batch's last log position. `sync`: the
    /// commit is durable (fsync) when this returns.
    fn apply(&mut self, batch: &[Entry], bodies: &[Vec<u8>], sync: bool) -> Res<()>;
    /// Copy record `id` into `out`; false if absent.
    fn get(&self, id: u64, out: &mut Vec<u8>) -> Res<bool>;
    /// externalId -> id -> record (one read transaction / snapshot).
    fn get_ext(&self, ext: &str, out: &mut Vec<u8>) -> Res<Option<u64>>;
    /// The `limit` newest records of one person (occurred_at desc, id desc).
    fn person_page(&self, person: u64, limit: usize, page: &mut Page) -> Res<()>;
    /// The `limit` newest records with occurred_at in [from, to) and the channel.
    fn list(&self, q: &ListQ, page: &mut Page) -> Res<()>;
    /// Flush/close cleanly.
    fn close(self: Box<Self>) -> Res<()>;
}
