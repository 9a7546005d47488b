//! A backup restored into a cluster whose stream holds no history: how a
//! single node's history moves into a cluster. The backup is read and
//! checked whole, its audio put in the cluster's object store, then its
//! records published in order, each message stored only right after the
//! one before.

use std::path::Path;

use super::{
    MediaNamed, OpsError, RestoreReport, check_audio, media_dir_of, media_named, storage_key,
};
use crate::guard::{Guard, GuardError};
use crate::journal::{self, JournalError};

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
