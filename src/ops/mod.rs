//! Operator commands on a data directory: backup, restore and import.
//!
//! - **Backup** reads the store and the journal after it (or an older
//!   release's snapshot and journal) without the lock, so it runs while
//!   the server writes, and writes one file holding every whole
//!   record: a consistent copy of everything acknowledged when it read the
//!   files (a record being written at that moment is not yet acknowledged
//!   and is left out).
//! - **Restore** puts a backup into an empty data directory as its
//!   snapshot; the server then starts from it, moving it into the store.
//! - **Import** loads the history from before the guard, as JSON lines in
//!   the upstream Interaction format, validating each with the API's rules
//!   (`import.rs`: into a data directory, or into a running cluster).
//! - **Restore into a cluster** publishes a backup into a cluster's stream
//!   that holds no history (`published.rs`).
//!
//! This file holds backup and restore of a data directory, with what the
//! others share: the errors, the reports and the checks of audio.

mod import;
mod published;

pub use import::{IMPORT_IN_FLIGHT, ImportReport, LineProblem, import, import_published};
pub use published::restore_published;

use std::path::{Path, PathBuf};

use crate::guard::GuardError;
use crate::journal::{self, JournalError, Layout};

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
    /// Audio in a backup that does not match its record.
    #[error("`{path}` is damaged: expected {expected}, found {actual}; nothing was restored")]
    DamagedAudio {
        /// The file.
        path: PathBuf,
        /// What its record names.
        expected: String,
        /// What the file holds.
        actual: String,
    },
    /// A write failed during import.
    #[error("the import stopped: {0}")]
    Guard(#[from] GuardError),
    /// A restore into a cluster that already holds history: its records
    /// would be applied after what the cluster decided without them.
    #[error(
        "the cluster already holds history ({people} people, {interactions} interactions); a backup is restored only into a cluster with none (a new --cluster-stream)"
    )]
    ClusterNotEmpty {
        /// People the cluster holds.
        people: usize,
        /// Interactions it holds.
        interactions: usize,
    },
    /// An import into a cluster stopped: a write the cluster could not
    /// take. What was acknowledged before is recorded; the same file
    /// imported again skips it by `id` and `externalId`.
    #[error(
        "the import stopped at line {line} ({imported} lines recorded before it stopped; importing the file again skips them by `id` and `externalId`): {cause}"
    )]
    ImportStopped {
        /// The line whose write failed.
        line: u64,
        /// Lines recorded.
        imported: u64,
        /// Why.
        cause: GuardError,
    },
    /// Audio a record names could not be fetched from the cluster's
    /// object store for the backup.
    #[error("stored audio `{key}` could not be fetched from the cluster: {why}")]
    Fetch {
        /// The storage key.
        key: String,
        /// Why.
        why: String,
    },
}

/// Fetches audio the data dir lacks from elsewhere (a cluster's object
/// store) into a file: the storage key, the size its record names (more
/// than that need not be written: the check that follows refuses it) and
/// the file. `Ok(true)` once the file holds it, `Ok(false)` when there is
/// none to fetch.
pub type FetchAudio<'a> = dyn FnMut(&str, u64, &Path) -> Result<bool, String> + 'a;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Records copied.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Recordings and voicemails copied into the media directory beside
    /// the backup file ([`media_dir_of`]).
    pub media_files: u64,
    /// Their bytes.
    pub media_bytes: u64,
    /// Audio the records name that was not on disk (purged after its
    /// interaction's deletion, or lost): storage keys, of interactions
    /// not deleted only.
    pub media_missing: Vec<String>,
}

/// What a restore put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records restored.
    pub records: u64,
    /// Recordings and voicemails restored, each checked against the size
    /// and SHA-256 its record names.
    pub media_files: u64,
    /// Audio of interactions not deleted that the backup's media directory
    /// did not hold.
    pub media_missing: Vec<String>,
}

/// The directory that holds a backup's audio: `<backup file>.media`.
pub fn media_dir_of(backup: &Path) -> PathBuf {
    let mut name = backup.file_name().unwrap_or_default().to_os_string();
    name.push(".media");
    backup.with_file_name(name)
}

/// Stored audio the records name: storage key → (size, SHA-256, whether
/// the interaction is deleted), the latest state of each interaction.
type MediaNamed = std::collections::BTreeMap<String, (u64, String, bool)>;

/// Notes the audio a record names (through the journal's one reader,
/// [`crate::ledger::changes`]); a later state of an interaction replaces
/// an earlier one's.
fn media_named(record: &crate::pb::journal::Record, out: &mut MediaNamed) {
    for change in crate::ledger::changes(record.clone()).iter().flatten() {
        for (m, deleted) in change.media() {
            out.insert(
                m.storage_key.clone(),
                (m.size_bytes, m.sha256.clone(), deleted),
            );
        }
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> OpsError + 'a {
    move |cause| OpsError::Io {
        action,
        path: path.to_owned(),
        cause,
    }
}

/// Copies `from` to `to` and syncs it, returning its size. Always a copy,
/// never a hard link: a backup that shares its blocks with the original is
/// lost with it. A file already at `to` is removed first (copying onto a
/// hard link of `from` would truncate `from`).
fn copy_audio(from: &Path, to: &Path) -> Result<u64, std::io::Error> {
    match std::fs::remove_file(to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let n = std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<(), OpsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

/// Copies every whole record of `data_dir` into `to`, atomically (the file
/// appears whole or not at all), and the recordings and voicemails the
/// records name into `<to>.media/` first, so that a backup file never
/// names audio its directory lacks. Needs no lock: the server may be
/// running.
pub fn backup(data_dir: &Path, to: &Path) -> Result<BackupReport, OpsError> {
    backup_fetching(data_dir, to, &mut |_, _, _| Ok(false))
}

/// [`backup`] of a cluster node's data dir, whose `media/` is only a cache
/// of the cluster's object store: audio a record names that the node does
/// not hold is fetched (`fetch`) into the backup, and checked against the
/// size and SHA-256 recorded, so that the backup holds every recording
/// and voicemail, as a single node's does.
pub fn backup_fetching(
    data_dir: &Path,
    to: &Path,
    fetch: &mut FetchAudio<'_>,
) -> Result<BackupReport, OpsError> {
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let (snaps, logs) = layout.generations()?;
    if snaps.is_empty() && logs.is_empty() && !crate::store::path_in(data_dir).exists() {
        return Err(OpsError::Io {
            action: "reading",
            path: layout.journal_dir(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no journal here"),
        });
    }
    let mut out = journal::FileWriter::create(to, 1)?;
    let mut named = MediaNamed::new();
    if let Err(e) = crate::store::read_history(data_dir, |r| {
        media_named(&r, &mut named);
        out.push(&r)
    }) {
        drop(out);
        let _ = std::fs::remove_file(to.with_extension("tmp"));
        return Err(e.into());
    }
    let (media_files, media_bytes, media_missing) = match copy_media(data_dir, to, &named, fetch) {
        Ok(copied) => copied,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(to.with_extension("tmp"));
            return Err(e);
        }
    };
    let n = out.finish()?;
    let bytes = std::fs::metadata(to)
        .map_err(io_err("reading the size of", to))?
        .len();
    Ok(BackupReport {
        records: n,
        bytes,
        media_files,
        media_bytes,
        media_missing,
    })
}

/// Copies the named audio into `<to>.media` (replacing an older one
/// whole): into a temporary directory, each file and the directory
/// synced, renamed into place at the end.
fn copy_media(
    data_dir: &Path,
    to: &Path,
    named: &MediaNamed,
    fetch: &mut FetchAudio<'_>,
) -> Result<(u64, u64, Vec<String>), OpsError> {
    let dir = media_dir_of(to);
    if named.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let mut tmp = dir.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    let source = data_dir.join(crate::media::MEDIA_DIR);
    let (mut files, mut bytes, mut missing) = (0, 0, Vec::new());
    for (key, (size, sha256, deleted)) in named {
        storage_key(key, &source)?;
        let from = source.join(key);
        match copy_audio(&from, &tmp.join(key)) {
            Ok(n) => {
                files += 1;
                bytes += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let to = tmp.join(key);
                let fetched = fetch(key, *size, &to);
                if !matches!(fetched, Ok(true)) {
                    // Whatever a failed fetch left is not the audio.
                    let _ = std::fs::remove_file(&to);
                }
                let fetched = fetched.map_err(|why| OpsError::Fetch {
                    key: key.clone(),
                    why,
                })?;
                if fetched {
                    check_audio(&to, *size, sha256)?;
                    std::fs::File::open(&to)
                        .and_then(|f| f.sync_all())
                        .map_err(io_err("syncing", &to))?;
                    files += 1;
                    bytes += size;
                } else if !deleted {
                    // A deleted interaction's audio may have been purged.
                    missing.push(key.clone());
                }
            }
            Err(cause) => {
                return Err(OpsError::Io {
                    action: "copying",
                    path: from,
                    cause,
                });
            }
        }
    }
    sync_dir(&tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io_err("moving into place", &dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok((files, bytes, missing))
}

/// Restores a backup into an empty data directory, after checking every
/// record of it, with the recordings and voicemails of `<from>.media/`,
/// each checked against the size and SHA-256 its record names.
pub fn restore(from: &Path, data_dir: &Path) -> Result<RestoreReport, OpsError> {
    let _lock = journal::lock(data_dir)?;
    let layout = Layout {
        dir: data_dir.to_owned(),
    };
    let (snaps, logs) = layout.generations()?;
    if !snaps.is_empty() || !logs.is_empty() || crate::store::path_in(data_dir).exists() {
        return Err(OpsError::NotEmpty(data_dir.to_owned()));
    }
    std::fs::create_dir_all(layout.journal_dir())
        .map_err(io_err("creating", &layout.journal_dir()))?;
    // Stream the backup into place, checking every record on the way; a
    // damaged backup leaves nothing behind.
    let target = layout.snapshot(0);
    let mut out = journal::FileWriter::create(&target, 1)?;
    let mut named = MediaNamed::new();
    let read = journal::read_file(from, 1, |r| {
        media_named(&r, &mut named);
        out.push(&r)
    });
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
    let (media_files, media_missing, placed) = match restore_media(from, data_dir, &named) {
        Ok(r) => r,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(target.with_extension("tmp"));
            return Err(e);
        }
    };
    let records = match out.finish_counted(&layout.snapshot_count(0)) {
        Ok(n) => n,
        Err(e) => {
            for path in placed {
                let _ = std::fs::remove_file(path);
            }
            return Err(e.into());
        }
    };
    Ok(RestoreReport {
        records,
        media_files,
        media_missing,
    })
}

/// Puts a backup's audio into `<data_dir>/media`, checking each file; on
/// any failure it removes what it put there, so that a failed restore
/// leaves the data directory as it found it.
fn restore_media(
    from: &Path,
    data_dir: &Path,
    named: &MediaNamed,
) -> Result<(u64, Vec<String>, Vec<PathBuf>), OpsError> {
    let dest = data_dir.join(crate::media::MEDIA_DIR);
    let mut placed = Vec::new();
    let result = place_media(from, &dest, named, &mut placed).and_then(|r| {
        sync_dir(&dest)
            .and_then(|()| sync_dir(data_dir))
            .map(|()| r)
    });
    match result {
        Ok((files, missing)) => Ok((files, missing, placed)),
        Err(e) => {
            for path in placed {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

/// Refuses a storage key that is not a plain file name (records and
/// backups are files an attacker may have written: a key must never name
/// a path); `path` is the file or directory it was read from.
fn storage_key(key: &str, path: &Path) -> Result<(), OpsError> {
    if crate::media::is_storage_key(key) {
        return Ok(());
    }
    Err(OpsError::DamagedAudio {
        path: path.to_owned(),
        expected: "a storage key that is a plain file name".into(),
        actual: format!("`{}`", crate::model::echo(key)),
    })
}

/// Checks the audio file at `file` against the size and SHA-256 its record
/// names, reading it in chunks.
fn check_audio(file: &Path, size: u64, sha256: &str) -> Result<(), OpsError> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(io_err("reading", file))?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err("reading", file))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        read += n as u64;
    }
    let actual = crate::media::hex(hash.finish().as_ref());
    if read != size || actual != sha256 {
        return Err(OpsError::DamagedAudio {
            path: file.to_owned(),
            expected: format!("{size} bytes, SHA-256 {sha256}"),
            actual: format!("{read} bytes, SHA-256 {actual}"),
        });
    }
    Ok(())
}

fn place_media(
    from: &Path,
    dest: &Path,
    named: &MediaNamed,
    placed: &mut Vec<PathBuf>,
) -> Result<(u64, Vec<String>), OpsError> {
    let source = media_dir_of(from);
    std::fs::create_dir_all(dest).map_err(io_err("creating", dest))?;
    let (mut files, mut missing) = (0, Vec::new());
    for (key, (size, sha256, deleted)) in named {
        // Keys come from the backup file: never let one name a path.
        storage_key(key, from)?;
        let file = source.join(key);
        match check_audio(&file, *size, sha256) {
            Ok(()) => {}
            Err(OpsError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                if !deleted {
                    missing.push(key.clone());
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let to = dest.join(key);
        copy_audio(&file, &to).map_err(io_err("copying", &file))?;
        placed.push(to);
        files += 1;
    }
    Ok((files, missing))
}
