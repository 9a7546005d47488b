//! Operator commands on a data directory: backup, restore and import.
//!
//! - **Backup** reads the snapshot and the journal without the lock, so it
//!   runs while the server writes, and writes one file holding every whole
//!   record: a consistent copy of everything acknowledged when it read the
//!   files (a record being written at that moment is not yet acknowledged
//!   and is left out).
//! - **Restore** puts a backup into an empty data directory as its
//!   snapshot; the server then starts from it.
//! - **Import** loads the history from before the guard, as JSON lines in
//!   the upstream Interaction format, validating each with the API's rules.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::guard::{Caller, Guard, GuardError};
use crate::index::IndexConfig;
use crate::journal::{self, Commit, Durability, JournalError, Layout};
use crate::model::InteractionInput;

/// Errors of the operator commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A file could not be read or written.
    #[error("{action} `{path}`: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Restore into a directory that already holds a journal.
    #[error("`{0}` already holds a journal; restore into an empty data directory")]
    NotEmpty(PathBuf),
    /// A write failed during import.
    #[error("the import stopped: {0}")]
    Guard(#[from] GuardError),
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Records copied.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Copies every whole record of `data_dir` into `to`, atomically (the file
/// appears whole or not at all). Needs no lock: the server may be running.
pub fn backup(data_dir: &Path, to: &Path) -> Result<BackupReport, OpsError> {
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let (snaps, logs) = layout.generations()?;
    if snaps.is_empty() && logs.is_empty() {
        return Err(OpsError::Io {
            action: "reading",
            path: layout.journal_dir(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no journal here"),
        });
    }
    let mut out = journal::FileWriter::create(to, 1)?;
    if let Err(e) = journal::replay(&layout, |r| out.push(&r)) {
        drop(out);
        let _ = std::fs::remove_file(to.with_extension("tmp"));
        return Err(e.into());
    }
    let n = out.finish()?;
    let bytes = std::fs::metadata(to)
        .map_err(|cause| OpsError::Io {
            action: "reading the size of",
            path: to.to_owned(),
            cause,
        })?
        .len();
    Ok(BackupReport { records: n, bytes })
}

/// Restores a backup into an empty data directory, after checking every
/// record of it. Returns the records restored.
pub fn restore(from: &Path, data_dir: &Path) -> Result<u64, OpsError> {
    let _lock = journal::lock(data_dir)?;
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let (snaps, logs) = layout.generations()?;
    if !snaps.is_empty() || !logs.is_empty() {
        return Err(OpsError::NotEmpty(data_dir.to_owned()));
    }
    std::fs::create_dir_all(layout.journal_dir()).map_err(|cause| OpsError::Io {
        action: "creating",
        path: layout.journal_dir(),
        cause,
    })?;
    // Stream the backup into place, checking every record on the way; a
    // damaged backup leaves nothing behind.
    let target = layout.snapshot(0);
    let mut out = journal::FileWriter::create(&target, 1)?;
    let read = journal::read_file(from, 1, |r| out.push(&r));
    let torn = match read {
        Ok(end) => end.torn,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(target.with_extension("tmp"));
            return Err(e.into());
        }
    };
    if let Some((offset, reason)) = torn {
        drop(out);
        let _ = std::fs::remove_file(target.with_extension("tmp"));
        return Err(JournalError::Corrupt {
            path: from.to_owned(),
            offset,
            reason,
        }
        .into());
    }
    Ok(out.finish()?)
}

/// One line of an import that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Interactions recorded.
    pub imported: u64,
    /// Lines already present (same externalId, or same id), left as they are.
    pub already_present: u64,
    /// Lines refused.
    pub problems: Vec<LineProblem>,
    /// Fields not in the Interaction format that were ignored, with how many
    /// lines had each.
    pub ignored_fields: Vec<(String, u64)>,
    /// Lines with neither `id` nor `externalId`: a second import would
    /// record them again.
    pub without_ids: u64,
}

/// The upstream Interaction's fields (camelCase, as upstream spells them),
/// as `InteractionInput` knows them; anything else is ignored and counted.
fn known_field(name: &str) -> bool {
    // `updatedBy` is ours, not upstream's: an import does not take it.
    crate::model::UPDATABLE_FIELDS.contains(&name)
        || (crate::model::READ_ONLY_FIELDS.contains(&name) && name != "updatedBy")
}

/// Imports JSON lines from `reader` into the data directory (which must not
/// be in use by a server). Every line is validated with the API's rules; a
/// bad line is reported and skipped, the good ones are kept. Idempotent on
/// externalId and on id. `progress` is called every 100,000 lines.
pub fn import(
    data_dir: &Path,
    reader: impl BufRead,
    by: &str,
    durability: Durability,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, OpsError> {
    let (guard, _) = Guard::open(
        IndexConfig::default(),
        data_dir,
        durability,
        u64::MAX,
        |_| {},
    )?;
    let caller = Caller {
        company: None,
        name: by.to_owned(),
        sensitive: true,
        agent: false,
    };
    let mut report = ImportReport::default();
    let mut ignored: std::collections::BTreeMap<String, u64> = Default::default();
    let mut last = Commit::none();
    let mut reader = reader;
    let mut raw = Vec::new();
    let mut number = 0u64;
    loop {
        raw.clear();
        let read = reader
            .read_until(b'\n', &mut raw)
            .map_err(|cause| OpsError::Io {
                action: "reading",
                path: PathBuf::from("(input)"),
                cause,
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        if report.lines.is_multiple_of(100_000) {
            progress(report.lines);
        }
        let mut refuse = |message: String| {
            report.problems.push(LineProblem {
                line: number,
                message,
            })
        };
        if std::str::from_utf8(&raw).is_err() {
            refuse("the line is not UTF-8 text".into());
            continue;
        }
        let mut value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                refuse(format!("not JSON: {e}"));
                continue;
            }
        };
        let Some(object) = value.as_object_mut() else {
            refuse("not a JSON object".into());
            continue;
        };
        let unknown: Vec<String> = object.keys().filter(|k| !known_field(k)).cloned().collect();
        for k in unknown {
            object.remove(&k);
            *ignored.entry(k).or_default() += 1;
        }
        let input: InteractionInput = match serde_json::from_value(value) {
            Ok(i) => i,
            Err(e) => {
                refuse(format!("not an Interaction: {e}"));
                continue;
            }
        };
        let Some(person) = input.person_id.clone().filter(|p| !p.is_empty()) else {
            refuse("`personId` is required".into());
            continue;
        };
        if input.id.is_none() && input.external_id.is_none() {
            report.without_ids += 1;
        }
        match guard.import(&person, &input, &caller, now) {
            Ok((_, true, commit)) => {
                report.imported += 1;
                last = commit;
            }
            Ok((_, false, _)) => report.already_present += 1,
            Err(GuardError::Invalid(problems)) => {
                refuse(
                    problems
                        .iter()
                        .map(|p| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            Err(GuardError::Unavailable(m) | GuardError::Internal(m)) => {
                return Err(GuardError::Unavailable(m).into());
            }
            Err(e) => refuse(e.to_string()),
        }
        if report.imported.is_multiple_of(10_000) {
            std::mem::replace(&mut last, Commit::none()).wait_blocking()?;
        }
    }
    last.wait_blocking()?;
    report.ignored_fields = ignored.into_iter().collect();
    Ok(report)
}
