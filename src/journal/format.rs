//! The bytes on disk: the 8-byte header every file starts with, the
//! frame around one record (`[length u32][crc32 u32][payload]`,
//! little-endian), and which records this release accepts.
//!
//! Apart from the files, the writer and recovery, so that the format is
//! in one place: what is written here is exactly what recovery reads
//! back, and changing it is a new format version.

use prost::Message;

use crate::pb::journal::{Record, record::Op};

/// The file header's magic bytes.
pub const MAGIC: &[u8; 4] = b"CGJL";
/// The format version of the journals this release writes: 2, a journal
/// whose history before it lives in the store (`crate::store`). A release
/// that reads only version 1 refuses it, and so refuses a data directory
/// whose history it would not see, instead of starting empty.
pub const VERSION: u16 = 2;
/// The format version of snapshots and backups: a whole history in one
/// file, the same as before the store, so that an older release still
/// restores a backup this one writes.
pub const SNAPSHOT_VERSION: u16 = 1;
/// The oldest version this release reads.
pub const OLDEST_VERSION: u16 = 1;
/// Largest record accepted, in bytes; a longer length is corruption.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
pub(super) const HEADER_LEN: u64 = 8;

/// Frames one record: length, checksum, payload.
pub fn frame(record: &Record, out: &mut Vec<u8>) {
    let payload = record.encode_to_vec();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Frames one operation's records: a lone record as itself, several as
/// one batch, so that a crash never leaves half of an operation behind.
/// The journal's writer frames each append so, and a cluster's message
/// holds the frames of one operation.
pub fn frame_operation(records: &[Record], out: &mut Vec<u8>) {
    if let [one] = records {
        frame(one, out);
    } else {
        let batch = Record {
            op: Some(Op::Batch(crate::pb::journal::Batch {
                records: records.to_vec(),
            })),
        };
        frame(&batch, out);
    }
}

/// The records of whole frames as [`frame`] wrote them, in order: what
/// the writer hands on ([`super::Tapped::Frames`]). A frame that is cut
/// short, fails its checksum or does not decode ends it with an error.
pub fn unframe(mut bytes: &[u8]) -> impl Iterator<Item = Result<Record, String>> + '_ {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let Some((head, rest)) = bytes.split_first_chunk::<8>() else {
            bytes = &[];
            return Some(Err("a frame cut short in its header".into()));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some((payload, rest)) = rest.split_at_checked(len) else {
            bytes = &[];
            return Some(Err(format!("a frame of {len} bytes cut short")));
        };
        bytes = rest;
        if crc32fast::hash(payload) != crc {
            bytes = &[];
            return Some(Err("a frame whose checksum does not match".into()));
        }
        Some(Record::decode(payload).map_err(|e| {
            bytes = &[];
            format!("a frame that does not decode: {e}")
        }))
    })
}

pub(super) fn header(kind: u16) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(MAGIC);
    let version = if kind == 0 { VERSION } else { SNAPSHOT_VERSION };
    h[4..6].copy_from_slice(&version.to_le_bytes());
    h[6..].copy_from_slice(&kind.to_le_bytes());
    h
}

/// True if this release knows the record's kind, and the kind of every
/// record in it (a batch's). An unknown kind decodes as no `op` at all
/// (a newer release's record); reading on would drop it silently, and a
/// backup would copy it emptied.
pub(super) fn known(record: &Record) -> bool {
    match &record.op {
        None => false,
        Some(Op::Batch(b)) => b.records.iter().all(known),
        Some(_) => true,
    }
}

/// The offset of the first whole, checksummed frame in `bytes`, if any.
pub(super) fn whole_frame_in(bytes: &[u8]) -> Option<u64> {
    let n = bytes.len();
    (0..n.saturating_sub(8)).find_map(|p| {
        let len = u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
        let crc = u32::from_le_bytes([bytes[p + 4], bytes[p + 5], bytes[p + 6], bytes[p + 7]]);
        let end = p + 8 + len as usize;
        (len > 0
            && len <= MAX_RECORD_BYTES
            && end <= n
            && crc32fast::hash(&bytes[p + 8..end]) == crc)
            .then_some(p as u64)
    })
}
