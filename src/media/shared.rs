//! A cluster node's audio: every recording and voicemail is in the
//! cluster's object store ([`crate::cluster::SharedMedia`]), and a node's
//! `media/` directory is a cache of it.
//!
//! - An upload is put in the object store once its file is in place here
//!   and before its record is published ([`MediaStore::share`]), so that no
//!   node ever holds a record naming audio the cluster lacks.
//! - A download or a link on a node that lacks the file fetches it first
//!   ([`MediaStore::ensure_local`]): into `media/tmp`, bounded by the size
//!   recorded, checked against that size and the SHA-256 recorded at
//!   upload, and only then moved into place. Audio that fails the check
//!   is never served, and never kept.
//!
//! On a single node both are no-ops.

use std::path::Path;

use super::{MediaError, MediaStore, io, sync_dir};
use crate::model::Media;

/// The error for a storage key that is not one of ours.
fn not_a_key(key: &str) -> MediaError {
    MediaError::Damaged {
        key: crate::model::echo(key),
        what: "the storage key is not a file name".into(),
    }
}

impl MediaStore {
    /// Puts the stored file `key` (an upload just moved into place) in the
    /// cluster's object store, and returns once the object store has
    /// acknowledged all of it; does nothing on a single node. On an error
    /// the caller removes the file and records nothing.
    pub async fn share(&self, key: &str) -> Result<(), MediaError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let path = self.path(key).ok_or_else(|| not_a_key(key))?;
        shared
            .put(key, &path)
            .await
            .map_err(|e| MediaError::Shared(e.to_string()))
    }

    /// Removes the object store's copy of an upload that was refused, so
    /// that no record names it; does nothing on a single node. A failure
    /// is logged only: the sweep removes what no record names after
    /// [`super::ORPHAN_GRACE`].
    pub async fn unshare(&self, key: &str) {
        if let Some(shared) = &self.shared
            && let Err(e) = shared.remove(key).await
        {
            tracing::warn!(error = %e, key = %key, "a refused upload's audio stays in the cluster's object store until the sweep");
        }
    }

    /// Opens the audio `media` names, at `path` in this directory, after
    /// [`MediaStore::ensure_local`]; on a cluster node, a copy trimmed
    /// between the two ([`super::trim_cache`]) is fetched again, once.
    pub async fn open_local(
        &self,
        media: &Media,
        path: &Path,
    ) -> Result<tokio::fs::File, MediaError> {
        let mut tries = 0;
        loop {
            self.ensure_local(media).await?;
            match tokio::fs::File::open(path).await {
                Ok(file) => return Ok(file),
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && self.shared.is_some()
                        && tries == 0 =>
                {
                    tries += 1;
                }
                Err(cause) => {
                    return Err(MediaError::Io {
                        action: "cannot open",
                        path: path.to_owned(),
                        cause,
                    });
                }
            }
        }
    }

    /// Makes sure the audio `media` names is in this node's directory: on
    /// a cluster node that lacks the file, it is fetched from the object
    /// store and checked ([`super::MediaCheck`]) before it is moved into
    /// place. A single node, or a file already here, does nothing; audio
    /// the object store lacks too is left missing, and the caller's open
    /// finds no file.
    pub async fn ensure_local(&self, media: &Media) -> Result<(), MediaError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let key = &media.storage_key;
        let path = self.path(key).ok_or_else(|| not_a_key(key))?;
        if touch(&path).await {
            return Ok(());
        }
        let tmp = Removed(self.tmp().join(format!("fetch.{}", self.nonce()?)));
        let tmp = &tmp.0;
        let fetched = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(io("cannot create", tmp))?;
            // One byte past the size recorded is enough to know it is not
            // the audio recorded; the rest is not written.
            let found = shared
                .get(key, &mut file, media.size_bytes.saturating_add(1))
                .await
                .map_err(|e| match e {
                    crate::cluster::ClusterError::Damaged { what, .. } => MediaError::Damaged {
                        key: key.clone(),
                        what: format!("the cluster's copy: {what}"),
                    },
                    e => MediaError::Shared(e.to_string()),
                })?;
            if found {
                file.sync_all().await.map_err(io("cannot sync", tmp))?;
            }
            Ok::<bool, MediaError>(found)
        }
        .await;
        let placed = match fetched {
            Ok(true) => {
                let (tmp, path, media) = (tmp.clone(), path.clone(), media.clone());
                tokio::task::spawn_blocking(move || place(&tmp, &path, &media))
                    .await
                    .unwrap_or_else(|e| Err(MediaError::Shared(format!("a file task failed: {e}"))))
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = &placed {
            tracing::error!(error = %e, key = %key, "the cluster's copy of audio could not be fetched");
        }
        placed
    }
}

/// Whether the file at `path` is there; if it is, its modification time
/// becomes now, so that the trim of a cluster node's copies
/// ([`super::trim_cache`]) keeps audio that is asked for.
async fn touch(path: &Path) -> bool {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A temporary file, removed when dropped: a fetch whose download is
/// dropped halfway (the client went away) leaves nothing in `media/tmp`.
struct Removed(std::path::PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks the fetched file `tmp` against what was recorded of `media`,
/// then moves it to `path` and syncs the directory.
fn place(tmp: &Path, path: &Path, media: &Media) -> Result<(), MediaError> {
    let file = std::fs::File::open(tmp).map_err(io("cannot open", tmp))?;
    let mut reader = super::MediaReader::of_file(file, media);
    while reader.next_chunk()?.is_some() {}
    // Its time is when it was fetched, not when its last chunk came: the
    // trim of a node's copies must not take one being put in place.
    std::fs::File::options()
        .append(true)
        .open(tmp)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .map_err(io("cannot touch", tmp))?;
    std::fs::rename(tmp, path).map_err(io("cannot move into place", path))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}
