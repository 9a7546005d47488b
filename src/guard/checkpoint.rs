//! The index checkpoint's file (issue 15): `index.checkpoint` in the data
//! directory, written at a clean stop and taken (read, then removed) by
//! the next start, which then skips rebuilding memory from the store.
//!
//! A checkpoint is a copy of memory at one position of the journal, the
//! store's, and is trusted only there: its header names the position and
//! the place in creation order the next interaction takes, and a start
//! uses it only when the store says the same. A start that finds it
//! missing, damaged, of another version, made for another
//! `--horizon-days`, or behind the store (a crash after it, or writes by
//! a process that started without it) rebuilds from the store, as
//! before. The start removes the file before it serves, so that no later
//! state of the store can meet it; the position guards a removal a power
//! cut undid.
//!
//! Only a clean stop writes one, once the journal is closed and the store
//! has applied all of it (the follower finished without failing) and
//! memory was never found to disagree with the journal. After `kill -9`
//! there is none, and the start rebuilds.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::index::{Codec, Decoder, Index, IndexConfig};
use crate::journal::Position;
use crate::ledger::Ledger;
use crate::pb;

/// The file's name in the data directory.
pub const FILE: &str = "index.checkpoint";
/// What the file starts with.
const MAGIC: &[u8; 8] = b"CGCKPT\0\0";
/// The header's layout; any other is not read.
const VERSION: u32 = 1;
/// The header's length: magic, version, position (two numbers), the next
/// place in creation order, then its CRC-32.
const HEADER: usize = 8 + 4 + 8 + 8 + 8 + 4;

/// Where a data directory's checkpoint is.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes memory's index as the checkpoint of `dir` at store position
/// `at` (where the next interaction takes place `next_seq`): to a
/// temporary file, flushed, then renamed over any older one and the
/// directory flushed. Returns its size. For a clean stop, after the
/// store applied everything (see the module's documentation).
pub(super) fn write(dir: &Path, ledger: &Ledger, at: Position) -> Result<u64, String> {
    let tmp = tmp_in(dir);
    let written = write_as(dir, &tmp, ledger, at);
    if written.is_err() {
        // A full disk or a failing write leaves nothing half-written
        // behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where a checkpoint is written before it is renamed into place: a crash
/// meanwhile leaves it there, and the next start removes it.
fn tmp_in(dir: &Path) -> PathBuf {
    path_in(dir).with_extension("checkpoint.tmp")
}

fn write_as(dir: &Path, tmp: &Path, ledger: &Ledger, at: Position) -> Result<u64, String> {
    let path = path_in(dir);
    let fail =
        |action: &str, e: &dyn std::fmt::Display| format!("{action} `{}`: {e}", tmp.display());
    let file = std::fs::File::create(tmp).map_err(|e| fail("creating", &e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = header(at, ledger.index.next_seq());
    out.write_all(&header).map_err(|e| fail("writing", &e))?;
    let record = |r: &crate::model::Interaction, out: &mut Vec<u8>| {
        prost::Message::encode(&crate::wire::pb_of(r), out).unwrap_or_default();
    };
    let restriction = |r: &crate::restrictions::Restriction, out: &mut Vec<u8>| {
        prost::Message::encode(&crate::wire::restriction_pb_of(r), out).unwrap_or_default();
    };
    let codec = Codec {
        record: &record,
        restriction: &restriction,
    };
    let written = ledger
        .index
        .write_checkpoint(&mut out, &codec)
        .map_err(|e| fail("writing", &e))?;
    let file = out.into_inner().map_err(|e| fail("writing", &e.error()))?;
    file.sync_all().map_err(|e| fail("flushing", &e))?;
    drop(file);
    super::recovery::abort_here("checkpoint-flushed");
    std::fs::rename(tmp, &path).map_err(|e| fail("renaming", &e))?;
    crate::journal::fsync_dir(dir).map_err(|e| fail("flushing the directory of", &e))?;
    Ok(written + HEADER as u64)
}

/// The header of a checkpoint at `at`, the next interaction at
/// `next_seq`.
fn header(at: Position, next_seq: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&at.generation.to_le_bytes());
    h.extend_from_slice(&at.records.to_le_bytes());
    h.extend_from_slice(&next_seq.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Takes `dir`'s checkpoint: the index it holds, if it was made at store
/// position `at` (the next interaction at `next_seq`) for `config`, read
/// whole and removed from the directory. `None` when there is none, or
/// it cannot be used: the reason is logged, the file removed, and the
/// caller rebuilds from the store.
pub(super) fn take(dir: &Path, config: IndexConfig, at: Position, next_seq: u64) -> Option<Index> {
    discard_tmp(dir);
    let path = path_in(dir);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the index checkpoint could not be opened; memory is rebuilt from the store");
            return None;
        }
    };
    // Removed before it is read (it is read through the file still
    // open): used, it is memory's now, and any later state of the store
    // would be ahead of it; refused, or a read that stops the process
    // (a damaged count that asks for more memory than there is), the
    // next start does not meet it again.
    if let Err(e) = std::fs::remove_file(&path).and_then(|()| crate::journal::fsync_dir(dir)) {
        tracing::warn!(file = %path.display(), error = %e, "the index checkpoint could not be removed, so it is not used; memory is rebuilt from the store");
        return None;
    }
    super::recovery::abort_here("checkpoint-taken");
    let started = std::time::Instant::now();
    match read(file, config, at, next_seq) {
        Ok(index) => {
            tracing::info!(
                file = %path.display(),
                interactions = index.len(),
                ms = started.elapsed().as_millis() as u64,
                "memory read from the index checkpoint of the last clean stop"
            );
            Some(index)
        }
        Err(why) => {
            tracing::warn!(file = %path.display(), reason = %why, "the index checkpoint is not used; memory is rebuilt from the store");
            None
        }
    }
}

/// Removes `dir`'s checkpoint, if any, unread: a start that does not
/// read one (a new directory, an older layout being migrated) leaves
/// none that a later state of the store could meet.
pub(super) fn discard(dir: &Path) {
    discard_tmp(dir);
    let path = path_in(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(file = %path.display(), "an index checkpoint beside a directory this start does not read it for was removed unread")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "an index checkpoint this start does not read could not be removed")
        }
    }
}

/// Removes what a crash while writing a checkpoint left.
fn discard_tmp(dir: &Path) {
    let _ = std::fs::remove_file(tmp_in(dir));
}

/// The index of a checkpoint file, checked against the store's position
/// and next place in creation order.
fn read(
    mut file: std::fs::File,
    config: IndexConfig,
    at: Position,
    next_seq: u64,
) -> Result<Index, String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut h = [0u8; HEADER];
    file.read_exact(&mut h)
        .map_err(|_| "it is shorter than its header".to_owned())?;
    let expected = header(at, next_seq);
    if h[..8] != expected[..8] {
        return Err("it is not an index checkpoint".into());
    }
    let crc = crc32fast::hash(&h[..HEADER - 4]);
    if h[HEADER - 4..] != crc.to_le_bytes() {
        return Err("its header is damaged".into());
    }
    if h[8..12] != expected[8..12] {
        return Err("its header is of another version".into());
    }
    if h != expected.as_slice() {
        return Err(format!(
            "it was made at another position of the journal than the store's ({}:{}, next interaction {next_seq}): the store moved on after it",
            at.generation, at.records
        ));
    }
    let record = |b: &[u8]| {
        let pb: pb::Interaction = prost::Message::decode(b).map_err(|e| e.to_string())?;
        crate::wire::interaction_from(pb).map_err(|e| e.message)
    };
    let restriction = |b: &[u8]| {
        let pb: pb::Restriction = prost::Message::decode(b).map_err(|e| e.to_string())?;
        crate::wire::restriction_from(pb).map_err(|e| e.message)
    };
    let decoder = Decoder {
        record: &record,
        restriction: &restriction,
    };
    Index::read_checkpoint(config, file, len - HEADER as u64, &decoder).map_err(|e| e.to_string())
}
