//! Reading back: one file record by record, telling a record cut short
//! at the very end by a crash (reported, then cut off) from damage
//! anywhere else (the start is refused), and then a data directory's
//! latest snapshot followed by the journals after it.
//!
//! Apart from the writer: recovery takes no lock and runs before the
//! journal opens, or beside a running server for a backup.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use prost::Message;

use super::format::{
    HEADER_LEN, MAGIC, MAX_RECORD_BYTES, OLDEST_VERSION, VERSION, known, whole_frame_in,
};
use super::{JournalError, Layout, Position, io};
use crate::pb::journal::Record;

/// How a file ended when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEnd {
    /// Whole records read.
    pub records: u64,
    /// Bytes of whole records, header included: where the next record goes.
    pub good_len: u64,
    /// A record cut short at the end: its offset and why.
    pub torn: Option<(u64, String)>,
}

/// Reads every whole record of a file in order, calling `each`. A record
/// cut short (or failing its checksum) at the very end is reported in
/// [`ReadEnd::torn`]; anywhere else it is [`JournalError::Corrupt`].
pub fn read_file(
    path: &Path,
    kind: u16,
    each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<ReadEnd, JournalError> {
    let file = File::open(path).map_err(io("opening", path))?;
    read_open(file, path, kind, 0, each)
}

/// [`read_file`] of a file already open (it may have been deleted since:
/// what was opened is read whole).
///
/// The first `held` records are checked (their frames and checksums) and
/// counted but neither decoded nor given to `each`: records the store
/// already holds, which a start does not read (reading from the store's
/// position, the journal's first part is passed over at the speed of its
/// checksums).
fn read_open(
    file: File,
    path: &Path,
    kind: u16,
    held: u64,
    mut each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<ReadEnd, JournalError> {
    let len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut h = [0u8; 8];
    if len < HEADER_LEN {
        if kind == 0 {
            // A journal created just before a crash, its header not yet on
            // disk: it holds nothing, so it is a torn tail at offset 0.
            return Ok(ReadEnd {
                records: 0,
                good_len: 0,
                torn: Some((0, format!("only {len} bytes, shorter than the header"))),
            });
        }
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!("only {len} bytes, shorter than the header"),
        });
    }
    r.read_exact(&mut h).map_err(io("reading", path))?;
    if &h[..4] != MAGIC {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: "the magic bytes are not `CGJL`".into(),
        });
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!(
                "it is version {version}; this release reads versions {OLDEST_VERSION} to {VERSION}"
            ),
        });
    }
    let file_kind = u16::from_le_bytes([h[6], h[7]]);
    if file_kind != kind {
        return Err(JournalError::Format {
            path: path.to_owned(),
            reason: format!("it is of kind {file_kind}, expected {kind}"),
        });
    }
    let mut offset = HEADER_LEN;
    let mut records = 0;
    let mut payload = Vec::new();
    loop {
        let left = len - offset;
        if left == 0 {
            return Ok(ReadEnd {
                records,
                good_len: offset,
                torn: None,
            });
        }
        let torn = |reason: String| {
            Ok(ReadEnd {
                records,
                good_len: offset,
                torn: Some((offset, reason)),
            })
        };
        if left < 8 {
            return torn(format!("{left} bytes, shorter than a record's frame"));
        }
        let mut f = [0u8; 8];
        r.read_exact(&mut f).map_err(io("reading", path))?;
        let rec_len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
        let crc = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
        let end = offset + 8 + u64::from(rec_len);
        if rec_len == 0 {
            // No record is empty. Zeros here are space the file system
            // allocated but the data never reached (a power cut): a torn
            // tail if only zeros follow, damage otherwise.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).map_err(io("reading", path))?;
            if crc == 0 && rest.iter().all(|b| *b == 0) {
                return torn(format!("{left} zero bytes after the last record"));
            }
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: "an empty record".into(),
            });
        }
        if rec_len > MAX_RECORD_BYTES {
            // No record is this long, and a crash cuts bytes off rather than
            // changing them: this is damage, wherever it is.
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: format!(
                    "a record length of {rec_len} bytes is more than the {MAX_RECORD_BYTES} allowed"
                ),
            });
        }
        if end > len {
            // A record that runs past the end is a torn write only if
            // nothing whole follows it: a damaged length in the middle of
            // the file would otherwise cut off acknowledged records.
            // From the byte after this frame's start: a cut inside the
            // frame header leaves the next record's start among those 8.
            let mut rest = f[1..].to_vec();
            r.read_to_end(&mut rest).map_err(io("reading", path))?;
            if let Some(at) = whole_frame_in(&rest) {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason: format!(
                        "the record says {rec_len} bytes, past the end of the file, but a whole record follows at offset {}",
                        offset + 1 + at
                    ),
                });
            }
            return torn(format!(
                "the record says {rec_len} bytes but the file ends after {}",
                left - 8
            ));
        }
        payload.resize(rec_len as usize, 0);
        r.read_exact(&mut payload).map_err(io("reading", path))?;
        if crc32fast::hash(&payload) != crc {
            let reason = "the checksum does not match".to_owned();
            // A torn tail holds no whole record: one inside the span is
            // damage in the middle of the file.
            let hides = whole_frame_in(&[&f[1..], payload.as_slice()].concat()).is_some();
            return if end == len && !hides {
                torn(reason)
            } else {
                Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason,
                })
            };
        }
        if records < held {
            records += 1;
            offset = end;
            continue;
        }
        let record = Record::decode(payload.as_slice()).map_err(|e| JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: format!("the record does not decode: {e}"),
        })?;
        if !known(&record) {
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason:
                    "a record of a kind this release does not know (written by a newer release?)"
                        .into(),
            });
        }
        // A record that reads but that the reader cannot take (recovery
        // refuses one it cannot apply) is named by its file and offset, as
        // damage is: the operator must know where to look.
        each(record).map_err(|e| match e {
            JournalError::Failed(reason) => JournalError::Corrupt {
                path: path.to_owned(),
                offset,
                reason,
            },
            other => other,
        })?;
        records += 1;
        offset = end;
    }
}

/// Refuses a snapshot that holds fewer (or more) records than its count
/// file says it was written with: cut at a record's end, it reads as a
/// whole, shorter snapshot, and recovery must never start with less. No
/// count file: an older release wrote the snapshot, read as it is.
fn check_count(layout: &Layout, g: u64, end: &ReadEnd) -> Result<(), JournalError> {
    let path = layout.snapshot_count(g);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(cause) => {
            return Err(JournalError::Io {
                action: "reading",
                path,
                cause,
            });
        }
    };
    let Ok(written) = text.trim().parse::<u64>() else {
        return Err(JournalError::Corrupt {
            path,
            offset: 0,
            reason: format!(
                "the snapshot's record count `{}` is not a number",
                crate::model::echo(text.trim())
            ),
        });
    };
    if written != end.records {
        return Err(JournalError::Corrupt {
            path: layout.snapshot(g),
            offset: end.good_len,
            reason: format!(
                "the snapshot holds {} whole records, but {written} were written (`{}`): it was cut short or grew after it was written",
                end.records,
                path.display()
            ),
        });
    }
    Ok(())
}

/// What recovery read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The generation now being written.
    pub generation: u64,
    /// Records read from the snapshot, or from the store.
    pub snapshot_records: u64,
    /// Records read from the journal(s) after it.
    pub journal_records: u64,
    /// A torn last record that was cut off: file, offset, reason.
    pub cut: Option<(PathBuf, u64, String)>,
    /// Where the whole records read end: the newest generation read and
    /// how many whole records its journal holds.
    pub end: Position,
}

/// Reads a data directory's snapshot and journals in order, calling `each`
/// for every record. Needs no lock: a reader (backup, what-if) may run while
/// a server writes; a torn last record is then simply not read.
pub fn recover(
    layout: &Layout,
    each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<Recovered, JournalError> {
    recover_from(layout, None, each)
}

/// [`recover`], or, `from` a position (what the store holds), only the
/// journal after it: snapshots are then ignored (the store replaced them),
/// as are the journals before the position's generation, and the first
/// records of its own are checked (frames and checksums) but not decoded.
/// A journal shorter than the position is refused:
/// the store would hold what the journal lost, and the next write would
/// take a place the store counts as applied.
pub fn recover_from(
    layout: &Layout,
    from: Option<Position>,
    each: impl FnMut(Record) -> Result<(), JournalError>,
) -> Result<Recovered, JournalError> {
    open_from(layout, from)?.read(each)
}

/// The files [`recover_from`] reads, opened: a reader beside a running
/// server opens them as soon as it has taken the store's position, so
/// that a journal the server deletes after (the store has applied it) is
/// still read whole.
#[derive(Debug)]
pub struct Opened {
    from: Option<Position>,
    /// An older layout's snapshot: its generation and file.
    snapshot: Option<(u64, PathBuf, File)>,
    /// The journals to read, in order.
    logs: Vec<(u64, PathBuf, File)>,
    /// The snapshot's count file, read at once.
    layout: Layout,
}

/// Opens what [`recover_from`] reads (see [`Opened`]).
pub fn open_from(layout: &Layout, from: Option<Position>) -> Result<Opened, JournalError> {
    let (snaps, logs) = layout.generations()?;
    let base = match from {
        Some(p) => Some(p.generation),
        None => snaps.last().copied(),
    };
    let logs: Vec<u64> = logs
        .into_iter()
        .filter(|g| base.is_none_or(|b| *g >= b))
        .collect();
    // The store's journal missing: it held records the store does not,
    // or a later journal shows that the store is older than the journals
    // beside it (a store put back from a copy, or a reader that took the
    // store's position before the server moved it and removed the
    // journal).
    if let Some(p) = from
        && !logs.contains(&p.generation)
        && (p.records > 0 || logs.iter().any(|g| *g > p.generation))
    {
        return Err(JournalError::Corrupt {
            path: layout.journal(p.generation),
            offset: 0,
            reason: if p.records > 0 {
                format!(
                    "the store holds {} records of this journal, which is missing",
                    p.records
                )
            } else {
                "the store reaches the start of this journal, which is missing while later ones are here: the store is older than the journals beside it (put back from a copy), or the server moved on while this was read (read again)".into()
            },
        });
    }
    let open = |path: PathBuf| match File::open(&path) {
        Ok(f) => Ok((path, f)),
        // Listed, then gone: a server beside this reader deleted it once
        // its store held it. Read again from the store's new position.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(JournalError::Corrupt {
            path,
            offset: 0,
            reason: "it was deleted while this was read: the server moved on (read again)".into(),
        }),
        Err(e) => Err(io("opening", &path)(e)),
    };
    let snapshot = match (base, from) {
        (Some(g), None) => {
            let (path, f) = open(layout.snapshot(g))?;
            Some((g, path, f))
        }
        _ => None,
    };
    let logs = logs
        .into_iter()
        .map(|g| open(layout.journal(g)).map(|(path, f)| (g, path, f)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Opened {
        from,
        snapshot,
        logs,
        layout: layout.clone(),
    })
}

impl Opened {
    /// Reads what was opened, in order, calling `each` for every record
    /// after the position.
    pub fn read(
        self,
        mut each: impl FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<Recovered, JournalError> {
        let Opened {
            from,
            snapshot,
            logs,
            layout,
        } = self;
        let mut out = Recovered::default();
        if let Some(p) = from {
            out.generation = p.generation;
            out.end = p;
        }
        if let Some((g, path, file)) = snapshot {
            let end = read_open(file, &path, 1, 0, &mut each)?;
            if let Some((offset, reason)) = end.torn {
                // Snapshots are written whole and renamed into place; a
                // torn one is damage, not a crash mid-write.
                return Err(JournalError::Corrupt {
                    path,
                    offset,
                    reason,
                });
            }
            check_count(&layout, g, &end)?;
            out.snapshot_records = end.records;
            out.generation = g;
            out.end = Position {
                generation: g,
                records: 0,
            };
        }
        let last = logs.len();
        for (i, (g, path, file)) in logs.into_iter().enumerate() {
            let skip = from.filter(|p| p.generation == g).map_or(0, |p| p.records);
            let end = read_open(file, &path, 0, skip, &mut each)?;
            if end.records < skip {
                return Err(JournalError::Corrupt {
                    path,
                    offset: end.good_len,
                    reason: format!(
                        "the store holds {skip} records of this journal, but it has only {} whole records",
                        end.records
                    ),
                });
            }
            out.journal_records += end.records - skip;
            out.generation = out.generation.max(g);
            out.end = Position {
                generation: g,
                records: end.records,
            };
            if let Some((offset, reason)) = end.torn {
                if i + 1 != last {
                    return Err(JournalError::Corrupt {
                        path,
                        offset,
                        reason,
                    });
                }
                out.cut = Some((path, offset, reason));
            }
        }
        Ok(out)
    }
}
