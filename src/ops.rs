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
//!   the upstream Interaction format, validating each with the API's rules.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::guard::{Guard, GuardError};
use crate::index::IndexConfig;
use crate::journal::{self, Durability, JournalError, Layout};
use crate::model::InteractionInput;
use crate::request::Caller;

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

/// Records a restore into a cluster publishes in one message at most,
/// and the most bytes of them: half the stream's bound on a message.
const PUBLISHED_RECORDS: usize = 4096;
const PUBLISHED_BYTES: usize = 512 * 1024;

/// Restores a backup into a cluster that holds no history yet, through
/// `guard`, a node opened for it: how a single node's history moves into
/// a cluster. The backup is read whole first (a damaged one publishes
/// nothing); its audio is checked against the size and SHA-256 each
/// record names and put in the cluster's object store; then its records
/// are published in order, up to `PUBLISHED_RECORDS` (4,096) records (and
/// `PUBLISHED_BYTES`, 512 KiB) in a message, each stored only right after the one
/// before ([`Guard::replay_published`]) and acknowledged before the next.
/// Start the other nodes once it is done: a node serving meanwhile would
/// answer on part of the history, and its first write stops the restore.
/// `progress` is called with the records published, after each message.
pub async fn restore_published(
    guard: std::sync::Arc<Guard>,
    from: &Path,
    mut progress: impl FnMut(u64),
) -> Result<RestoreReport, OpsError> {
    let task = |e: tokio::task::JoinError| OpsError::Guard(GuardError::Internal(e.to_string()));
    // What the stream holds now, applied here: the restore's first message
    // must come right after it, so a write anywhere from now on stops the
    // restore rather than interleave with it.
    guard.read_barrier().await?;
    let mut after = guard.cluster_state().map_or(0, |s| s.applied);
    let sizes = guard.sizes();
    if sizes.people > 0 || sizes.interactions > 0 {
        return Err(OpsError::ClusterNotEmpty {
            people: sizes.people,
            interactions: sizes.interactions,
        });
    }
    // The whole backup is read and checked first (each record readable,
    // none too large for a message), so that a damaged one publishes
    // nothing.
    let path = from.to_owned();
    let named = tokio::task::spawn_blocking(move || check_backup(&path))
        .await
        .map_err(task)??;
    let (media_files, media_missing) = share_media(&guard, from, &named).await?;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<crate::ledger::Change>)>(4);
    let path = from.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let (mut batch, mut records, mut bytes) = (Vec::new(), 0usize, 0usize);
        let mut number = 0u64;
        let end = journal::read_file(&path, 1, |r| {
            number += 1;
            let size = framed_size(&r);
            if records > 0 && (records >= PUBLISHED_RECORDS || bytes + size > PUBLISHED_BYTES) {
                tx.blocking_send((records as u64, std::mem::take(&mut batch)))
                    .map_err(|_| JournalError::Failed("the restore stopped".into()))?;
                (records, bytes) = (0, 0);
            }
            for change in crate::ledger::changes(r) {
                batch.push(change.map_err(|e| unreadable(&path, number, &e))?);
            }
            records += 1;
            bytes += size;
            Ok(())
        });
        // Only a backup read to its end sends its last batch: the changes
        // of a record read halfway are never published.
        if end.is_ok() && !batch.is_empty() {
            let _ = tx.blocking_send((records as u64, batch));
        }
        end.map(|_| number)
    });
    let mut published = 0u64;
    while let Some((records, batch)) = rx.recv().await {
        after = guard.replay_published(&batch, after).await?;
        published += records;
        progress(published);
    }
    let records = reader.await.map_err(task)??;
    Ok(RestoreReport {
        records,
        media_files,
        media_missing,
    })
}

/// A record's size in a message: its bytes and room for the framing.
fn framed_size(r: &crate::pb::journal::Record) -> usize {
    prost::Message::encoded_len(r) + 16
}

fn unreadable(path: &Path, number: u64, e: &dyn std::fmt::Display) -> JournalError {
    JournalError::Format {
        path: path.to_owned(),
        reason: format!("record {number} cannot be read: {e}"),
    }
}

/// Reads a backup whole before a restore into a cluster publishes any of
/// it: every record whole and readable as changes, none larger than a
/// message may be. Returns the audio its records name.
fn check_backup(path: &Path) -> Result<MediaNamed, OpsError> {
    let mut named = MediaNamed::new();
    let mut number = 0u64;
    let end = journal::read_file(path, 1, |r| {
        number += 1;
        let size = framed_size(&r);
        if size > crate::cluster::MAX_MESSAGE_BYTES {
            return Err(unreadable(
                path,
                number,
                &format!(
                    "it is {size} bytes, more than a message of the cluster's stream may be ({} bytes)",
                    crate::cluster::MAX_MESSAGE_BYTES
                ),
            ));
        }
        media_named(&r, &mut named);
        for change in crate::ledger::changes(r) {
            change.map_err(|e| unreadable(path, number, &e))?;
        }
        Ok(())
    })?;
    match end.torn {
        None => Ok(named),
        Some((offset, reason)) => Err(JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            reason,
        }
        .into()),
    }
}

/// Puts the audio a backup's records name in the cluster's object store,
/// each file first checked against the size and SHA-256 its record names.
/// Returns how many were put, and the keys of audio (of interactions not
/// deleted) the backup lacks.
async fn share_media(
    guard: &Guard,
    from: &Path,
    named: &MediaNamed,
) -> Result<(u64, Vec<String>), OpsError> {
    if named.is_empty() {
        return Ok((0, Vec::new()));
    }
    let unavailable = |e: crate::cluster::ClusterError| {
        OpsError::Guard(GuardError::Unavailable(format!(
            "the cluster's audio store: {e}"
        )))
    };
    let Some(link) = guard.cluster_link() else {
        return Err(GuardError::Internal("not a cluster node".into()).into());
    };
    let shared = link.shared_media().await.map_err(unavailable)?;
    let source = media_dir_of(from);
    let (mut files, mut missing) = (0, Vec::new());
    for (key, (size, sha256, deleted)) in named {
        // Keys come from the backup file: never let one name a path.
        storage_key(key, from)?;
        let file = source.join(key);
        let (checked, size, sha256) = (file.clone(), *size, sha256.clone());
        let check = tokio::task::spawn_blocking(move || check_audio(&checked, size, &sha256))
            .await
            .map_err(|e| OpsError::Guard(GuardError::Internal(e.to_string())))?;
        match check {
            Ok(()) => {
                shared.put(key, &file).await.map_err(unavailable)?;
                files += 1;
            }
            Err(OpsError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                // A deleted interaction's audio may have been purged
                // already; the retention keeps what is still there.
                if !deleted {
                    missing.push(key.clone());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok((files, missing))
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
/// externalId and on id. `progress` is called every 100,000 lines. Every
/// record belongs to `company` (`None`: no company), as if a key of that
/// company had created it.
pub fn import(
    data_dir: &Path,
    reader: impl BufRead,
    by: &str,
    company: Option<&str>,
    durability: Durability,
    now: DateTime<Utc>,
    progress: impl FnMut(u64),
) -> Result<ImportReport, OpsError> {
    let (guard, _) = Guard::open(
        IndexConfig::default(),
        data_dir,
        durability,
        u64::MAX,
        |_| {},
    )?;
    let caller = importer(by, company);
    let mut lines = ImportLines::new(reader, progress);
    let mut last = crate::guard::Pending::Done;
    while let Some((number, person, input)) = lines.next_record()? {
        let outcome = guard
            .import(&person, &input, &caller, now)
            .map(|(_, created, commit)| {
                if created {
                    last = commit;
                }
                created
            });
        lines.outcome(number, outcome)?;
        if lines.report.imported.is_multiple_of(10_000) {
            std::mem::replace(&mut last, crate::guard::Pending::Done).wait_blocking()?;
        }
    }
    last.wait_blocking()?;
    Ok(lines.finish())
}

/// Records an import keeps publishing while it reads on: a cluster node's
/// writes wait for the stream's acknowledgement, so one at a time would
/// leave the import at one round trip per line.
pub const IMPORT_IN_FLIGHT: usize = 32;

/// [`import`] into a cluster, through `guard`, a node opened for the
/// import (caught up with the stream): every record is published to the
/// cluster's stream, fenced as any write is, and acknowledged before the
/// import ends. Up to [`IMPORT_IN_FLIGHT`] records are in flight at once,
/// but never two that name the same person (as given), `externalId` or
/// `id`: those go in file order, so the outcome is the one a single
/// node's import gives, whatever the timing. Problems are reported in line
/// order. A write the cluster cannot take (UNAVAILABLE) stops the import:
/// no line is read after it, what was in flight is waited for, and the
/// error says where it stopped.
pub async fn import_published(
    guard: std::sync::Arc<Guard>,
    reader: impl BufRead,
    by: &str,
    company: Option<&str>,
    now: DateTime<Utc>,
    progress: impl FnMut(u64),
) -> Result<ImportReport, OpsError> {
    let caller = importer(by, company);
    let mut lines = ImportLines::new(reader, progress);
    let mut in_flight: tokio::task::JoinSet<Done> = tokio::task::JoinSet::new();
    let mut busy: std::collections::HashMap<String, usize> = Default::default();
    let mut stop: Option<(u64, GuardError)> = None;
    while stop.is_none() {
        let Some((number, person, input)) = lines.next_record()? else {
            break;
        };
        let mut names = vec![format!("p:{person}")];
        names.extend(input.external_id.iter().map(|e| format!("x:{e}")));
        names.extend(input.id.iter().map(|i| format!("i:{i}")));
        while in_flight.len() >= IMPORT_IN_FLIGHT || names.iter().any(|n| busy.contains_key(n)) {
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            settle(done, &mut lines, &mut busy, &mut stop);
        }
        if stop.is_some() {
            break;
        }
        for name in &names {
            *busy.entry(name.clone()).or_default() += 1;
        }
        let (guard, caller) = (std::sync::Arc::clone(&guard), caller.clone());
        in_flight.spawn(async move {
            let outcome = guard
                .import_published(&person, &input, &caller, now)
                .await
                .map(|(_, created)| created);
            (number, names, outcome)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        settle(done, &mut lines, &mut busy, &mut stop);
    }
    match stop {
        None => Ok(lines.finish()),
        Some((line, cause)) => Err(OpsError::ImportStopped {
            line,
            imported: lines.report.imported,
            cause,
        }),
    }
}

/// A record of an import into a cluster, written or refused: its line,
/// the names it kept from other records in flight, and its outcome.
type Done = (u64, Vec<String>, Result<bool, GuardError>);

/// Takes one finished record of [`import_published`]: its outcome tallied,
/// its names free for the lines waiting on them; the first line (in file
/// order) whose write the cluster could not take is where the import
/// stopped.
fn settle<R: BufRead, P: FnMut(u64)>(
    done: Result<Done, tokio::task::JoinError>,
    lines: &mut ImportLines<R, P>,
    busy: &mut std::collections::HashMap<String, usize>,
    stop: &mut Option<(u64, GuardError)>,
) {
    let (number, names, outcome) = match done {
        Ok(done) => done,
        Err(e) => (0, Vec::new(), Err(GuardError::Internal(e.to_string()))),
    };
    for name in names {
        if let Some(n) = busy.get_mut(&name) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&name);
            }
        }
    }
    if let Err(OpsError::Guard(e)) = lines.outcome(number, outcome)
        && stop.as_ref().is_none_or(|(n, _)| *n >= number)
    {
        *stop = Some((number, e));
    }
}

/// The caller an import writes as.
fn importer(by: &str, company: Option<&str>) -> Caller {
    Caller {
        company: company.map(str::to_owned),
        name: by.to_owned(),
        sensitive: true,
        agent: false,
    }
}

/// An import's input, line by line: each read, parsed and checked as an
/// Interaction with its person, and what became of it tallied in the
/// report.
struct ImportLines<R, P> {
    reader: R,
    progress: P,
    raw: Vec<u8>,
    number: u64,
    report: ImportReport,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl<R: BufRead, P: FnMut(u64)> ImportLines<R, P> {
    fn new(reader: R, progress: P) -> Self {
        ImportLines {
            reader,
            progress,
            raw: Vec::new(),
            number: 0,
            report: ImportReport::default(),
            ignored: Default::default(),
        }
    }

    fn refuse(&mut self, line: u64, message: String) {
        self.report.problems.push(LineProblem { line, message });
    }

    /// The next line that holds a record to import, with its number and
    /// person; blank lines are skipped, bad ones reported and skipped.
    fn next_record(&mut self) -> Result<Option<(u64, String, InteractionInput)>, OpsError> {
        loop {
            self.raw.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.raw)
                .map_err(|cause| OpsError::Io {
                    action: "reading",
                    path: PathBuf::from("(input)"),
                    cause,
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            let number = self.number;
            let text = String::from_utf8_lossy(&self.raw).into_owned();
            let line = text.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            self.report.lines += 1;
            if self.report.lines.is_multiple_of(100_000) {
                (self.progress)(self.report.lines);
            }
            if std::str::from_utf8(&self.raw).is_err() {
                self.refuse(number, "the line is not UTF-8 text".into());
                continue;
            }
            let mut value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    self.refuse(number, format!("not JSON: {e}"));
                    continue;
                }
            };
            let Some(object) = value.as_object_mut() else {
                self.refuse(number, "not a JSON object".into());
                continue;
            };
            let unknown: Vec<String> = object.keys().filter(|k| !known_field(k)).cloned().collect();
            for k in unknown {
                object.remove(&k);
                *self.ignored.entry(k).or_default() += 1;
            }
            let input: InteractionInput = match serde_json::from_value(value) {
                Ok(i) => i,
                Err(e) => {
                    self.refuse(number, format!("not an Interaction: {e}"));
                    continue;
                }
            };
            let Some(person) = input.person_id.clone().filter(|p| !p.is_empty()) else {
                self.refuse(number, "`personId` is required".into());
                continue;
            };
            if input.id.is_none() && input.external_id.is_none() {
                self.report.without_ids += 1;
            }
            return Ok(Some((number, person, input)));
        }
    }

    /// Tallies what became of line `number`: recorded (`true`), already
    /// present (`false`), or refused. A guard that can no longer write
    /// stops the import.
    fn outcome(&mut self, number: u64, outcome: Result<bool, GuardError>) -> Result<(), OpsError> {
        match outcome {
            Ok(true) => self.report.imported += 1,
            Ok(false) => self.report.already_present += 1,
            Err(GuardError::Invalid(problems)) => {
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.refuse(number, message);
            }
            Err(GuardError::Unavailable(m) | GuardError::Internal(m)) => {
                return Err(GuardError::Unavailable(m).into());
            }
            Err(e) => self.refuse(number, e.to_string()),
        }
        Ok(())
    }

    fn finish(mut self) -> ImportReport {
        self.report.problems.sort_by_key(|p| p.line);
        self.report.ignored_fields = self.ignored.into_iter().collect();
        self.report
    }
}
