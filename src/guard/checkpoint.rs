//! The index checkpoint's file (issue 15): `index.checkpoint` in the data
//! directory, written at a clean stop (and by a start that rebuilt
//! memory) and read by the next start, which then skips rebuilding
//! memory from the store.
//!
//! A checkpoint is a copy of memory at one position of the journal (the
//! store's, when it was written): its header names the position and the
//! place in creation order the next interaction takes.
//! - At the store's very position (a clean stop, nothing written since),
//!   it is memory as it was.
//! - Behind it (a start from it, or a start that wrote it, then writes,
//!   then a crash), it is the base
//!   the journal after its position is replayed onto, through the one
//!   interpreter ([`crate::ledger::Ledger::apply`]), as the process that
//!   crashed applied it. The follower keeps that journal although the
//!   store holds it (`Follower::start`'s `keep_for`), for one generation
//!   more ([`crate::store::KEPT_FOR_CHECKPOINT`]); past it, the follower removes
//!   the checkpoint and deletes the journal as before.
//!
//! Anything else rebuilds from the store: a checkpoint missing, damaged,
//! of another version, made for another `--horizon-days`, hashed with
//! other keys, or behind the store without the whole journal after it.
//! A start moves the file aside while it reads it (a read that stops the
//! process is not repeated), puts it back once read, and keeps it as the
//! base of a start after a crash, until the next clean stop replaces it.
//!
//! Two moments write one, each at a position where memory is exactly the
//! store's:
//! - A clean stop, once the journal is closed and the store has applied
//!   all of it (the follower finished without failing), no journal write
//!   failed, and memory was never found to disagree with the journal;
//!   otherwise the stop removes the one it started from, and the next
//!   start rebuilds.
//! - A start that would otherwise serve with none to replay a crash's
//!   journal onto (it rebuilt memory from the store, or the journal after
//!   the one it read was past what is kept), before it serves and before
//!   any write: so a crash of a server that started by rebuilding does
//!   not rebuild again.

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
/// store applied everything, or the end of a start that has none to
/// replay a crash's journal onto (see the module's documentation);
/// `when` names which, for the tests that stop the process part-way
/// (`{when}-checkpoint-flushed`), and in
/// `compliance_guard_checkpoints_total{when}`; `what` is logged once it
/// is in place.
pub(super) fn write_counted(
    dir: &Path,
    ledger: &Ledger,
    at: Position,
    when: &'static str,
    what: &str,
) -> Result<u64, String> {
    let started = std::time::Instant::now();
    let bytes = prepare(dir, ledger, at, when, &|| true)?.install()?;
    metrics::counter!("compliance_guard_checkpoints_total", "when" => when).increment(1);
    tracing::info!(
        bytes,
        interactions = ledger.index.len(),
        ms = started.elapsed().as_millis() as u64,
        "{what}"
    );
    Ok(bytes)
}

/// A checkpoint written and flushed beside its place, not yet renamed
/// into it ([`prepare`]): what a checkpoint built while serving holds
/// while the follower is held still ([`crate::store::Checkpoints::install`]).
#[derive(Debug)]
pub(super) struct Prepared {
    dir: PathBuf,
    tmp: PathBuf,
    bytes: u64,
}

impl Prepared {
    /// Renames it into place, over any older one, then flushes the
    /// directory. Returns its size.
    pub(super) fn install(self) -> Result<u64, String> {
        let dir = self.dir.clone();
        let bytes = self.rename()?;
        flush_dir(&dir)?;
        Ok(bytes)
    }

    /// Renames it into place, over any older one: from here on it is the
    /// checkpoint, whether or not [`flush_dir`] then succeeds. Returns its
    /// size.
    pub(super) fn rename(self) -> Result<u64, String> {
        if let Err(e) = std::fs::rename(&self.tmp, path_in(&self.dir)) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(format!("renaming `{}`: {e}", self.tmp.display()));
        }
        Ok(self.bytes)
    }
}

/// Flushes the data directory after a checkpoint was renamed into it.
pub(super) fn flush_dir(dir: &Path) -> Result<(), String> {
    crate::journal::fsync_dir(dir)
        .map_err(|e| format!("flushing the directory `{}`: {e}", dir.display()))
}

/// [`write_counted`] up to the rename: memory's index written to the temporary
/// file and flushed. A failure leaves nothing half-written behind.
///
/// `keep_going` is asked before every mebibyte is written: once it says
/// no, the write stops and fails (a build while serving abandoned).
pub(super) fn prepare(
    dir: &Path,
    ledger: &Ledger,
    at: Position,
    when: &str,
    keep_going: &dyn Fn() -> bool,
) -> Result<Prepared, String> {
    let tmp = tmp_in(dir);
    match write_tmp(&tmp, ledger, at, when, keep_going) {
        Ok(bytes) => Ok(Prepared {
            dir: dir.to_owned(),
            tmp,
            bytes,
        }),
        Err(e) => {
            // A full disk or a failing write leaves nothing half-written
            // behind.
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Where a checkpoint is written before it is renamed into place: a crash
/// meanwhile leaves it there, and the next start removes it.
fn tmp_in(dir: &Path) -> PathBuf {
    path_in(dir).with_extension("checkpoint.tmp")
}

fn write_tmp(
    tmp: &Path,
    ledger: &Ledger,
    at: Position,
    when: &str,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, String> {
    let fail =
        |action: &str, e: &dyn std::fmt::Display| format!("{action} `{}`: {e}", tmp.display());
    let file = std::fs::File::create(tmp).map_err(|e| fail("creating", &e))?;
    let mut out = BufWriter::with_capacity(1 << 20, Abandonable { file, keep_going });
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
    let file = out
        .into_inner()
        .map_err(|e| fail("writing", &e.error()))?
        .file;
    file.sync_all().map_err(|e| fail("flushing", &e))?;
    drop(file);
    crate::hooks::abort_here(&format!("{when}-checkpoint-flushed"));
    Ok(written + HEADER as u64)
}

/// The file a checkpoint is written to, failing every write once
/// `keep_going` says no.
struct Abandonable<'a> {
    file: std::fs::File,
    keep_going: &'a dyn Fn() -> bool,
}

impl Write for Abandonable<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !(self.keep_going)() {
            return Err(std::io::Error::other("abandoned"));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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

/// Reads `dir`'s checkpoint: the index it holds and the position it was
/// made at, if it can be used with the store at position `at` (the next
/// interaction at `next_seq`), for `config`. `None` when there is none,
/// or it cannot be used: the reason is logged, the file removed, and the
/// caller rebuilds from the store.
///
/// One made at `at` itself (a clean stop's, the store unchanged since) is
/// memory as it was. One made before `at` is the base a start after a
/// crash replays the journal from: only when `journal_from` says the
/// journal still holds every generation from its position on (the
/// follower keeps them, see `Follower::start`'s `keep_for`). The file stays, as the base of a
/// start after a crash, until a clean stop writes the next one.
pub(super) fn take(
    dir: &Path,
    config: IndexConfig,
    at: Position,
    next_seq: u64,
    journal_from: impl Fn(Position) -> bool,
) -> Option<(Index, Position)> {
    discard_tmp(dir);
    let path = path_in(dir);
    let reading = reading_in(dir);
    if std::fs::remove_file(&reading).is_ok() {
        // A start that stopped while reading it (a damaged count that
        // asked for more memory than there is): never read again.
        tracing::warn!(file = %reading.display(), "an index checkpoint a start stopped reading was removed; memory is rebuilt from the store");
    }
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the index checkpoint could not be opened; memory is rebuilt from the store");
            return None;
        }
    };
    // Moved aside while it is read: a read that stops the process leaves
    // it there, and the next start removes it unread.
    if let Err(e) = std::fs::rename(&path, &reading).and_then(|()| crate::journal::fsync_dir(dir)) {
        tracing::warn!(file = %path.display(), error = %e, "the index checkpoint could not be moved aside to be read, so it is not used; memory is rebuilt from the store");
        discard(dir, "it could not be moved aside to be read");
        return None;
    }
    crate::hooks::abort_here("checkpoint-taken");
    let started = std::time::Instant::now();
    match read(file, config, at, next_seq, journal_from) {
        Ok((index, made_at)) => {
            tracing::info!(
                file = %path.display(),
                interactions = index.len(),
                made_at = %format!("{}:{}", made_at.generation, made_at.records),
                store_at = %format!("{}:{}", at.generation, at.records),
                ms = started.elapsed().as_millis() as u64,
                "memory read from the index checkpoint"
            );
            if let Err(e) =
                std::fs::rename(&reading, &path).and_then(|()| crate::journal::fsync_dir(dir))
            {
                // Memory is right; only the base of a later start after a
                // crash is lost.
                tracing::warn!(file = %path.display(), error = %e, "the index checkpoint could not be put back after it was read; a start after a crash rebuilds");
                let _ = std::fs::remove_file(&reading);
            }
            Some((index, made_at))
        }
        Err(why) => {
            tracing::warn!(file = %path.display(), reason = %why, "the index checkpoint is not used; memory is rebuilt from the store");
            let _ = std::fs::remove_file(&reading);
            None
        }
    }
}

/// Where a checkpoint is while a start reads it.
fn reading_in(dir: &Path) -> PathBuf {
    path_in(dir).with_extension("checkpoint.reading")
}

/// Removes `dir`'s checkpoint, if any, saying `why` in the log: a start
/// that does not read one (a new directory, an older layout being
/// migrated), or one that no start may read again, leaves none that a
/// later state of the store could meet.
pub(super) fn discard(dir: &Path, why: &str) {
    discard_tmp(dir);
    let _ = std::fs::remove_file(reading_in(dir));
    let path = path_in(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(file = %path.display(), why, "the index checkpoint was removed: the next start without one rebuilds memory from the store")
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

/// The position a checkpoint file was made at and the next place in
/// creation order it holds, from its header (checked: magic, CRC,
/// version); the file is left just past it.
fn read_header(file: &mut std::fs::File) -> Result<(Position, u64), String> {
    let mut h = [0u8; HEADER];
    file.read_exact(&mut h)
        .map_err(|_| "it is shorter than its header".to_owned())?;
    if h[..8] != MAGIC[..] {
        return Err("it is not an index checkpoint".into());
    }
    let crc = crc32fast::hash(&h[..HEADER - 4]);
    if h[HEADER - 4..] != crc.to_le_bytes() {
        return Err("its header is damaged".into());
    }
    let number = |from: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[from..from + 8]);
        u64::from_le_bytes(b)
    };
    if h[8..12] != VERSION.to_le_bytes() {
        return Err("its header is of another version".into());
    }
    let made_at = Position {
        generation: number(12),
        records: number(20),
    };
    Ok((made_at, number(28)))
}

/// True when `dir`'s checkpoint was made at `at` with the next
/// interaction at `next_seq`: a clean stop with nothing written since the
/// one in place (a start's, or one built while serving) need not write
/// it again. Memory then differs from it only by what the walk let go
/// since, which a start from it lets go again.
pub(super) fn is_at(dir: &Path, at: Position, next_seq: u64) -> bool {
    std::fs::File::open(path_in(dir))
        .map_err(|e| e.to_string())
        .and_then(|mut f| read_header(&mut f))
        .is_ok_and(|(made_at, made_next)| {
            (made_at.generation, made_at.records, made_next)
                == (at.generation, at.records, next_seq)
        })
}

/// The index of a checkpoint file and the position it was made at,
/// checked against the store's position and next place in creation
/// order (see [`take`]).
fn read(
    mut file: std::fs::File,
    config: IndexConfig,
    at: Position,
    next_seq: u64,
    journal_from: impl Fn(Position) -> bool,
) -> Result<(Index, Position), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let (made_at, made_next) = read_header(&mut file)?;
    let key = |p: Position| (p.generation, p.records);
    let usable = if key(made_at) == key(at) {
        made_next == next_seq
    } else {
        key(made_at) < key(at) && made_next <= next_seq && journal_from(made_at)
    };
    if !usable {
        return Err(format!(
            "it was made at {}:{} (next interaction {made_next}), and the store is at {}:{} (next interaction {next_seq}) with no journal from its position on",
            made_at.generation, made_at.records, at.generation, at.records
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
    let index = Index::read_checkpoint(config, file, len - HEADER as u64, &decoder)
        .map_err(|e| e.to_string())?;
    Ok((index, made_at))
}
