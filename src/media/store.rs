//! The audio files themselves: storage keys, and the one way bytes get
//! into `<data-dir>/media/` (written to `media/tmp/`, bounded and hashed as
//! they arrive, synced, renamed into place) and back out (read in chunks
//! and checked against the size and SHA-256 recorded at upload).
//!
//! Apart from the links and the sweep: this is the only code that writes
//! or reads audio, and neither of those needs more from it than a storage
//! key, a path and `remove`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use super::{
    CHUNK_BYTES, LINK_KEY_FILE, MEDIA_DIR, MediaError, TMP_DIR, hex, io, safe_name, sync_dir,
};
use crate::model::MediaKind;

/// A running SHA-256 (ring's context, which has no `Debug`).
#[derive(Clone)]
struct Sha(Context);

impl std::fmt::Debug for Sha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

/// Whether `key` has the shape of the storage keys [`MediaStore::new_key`]
/// makes: a plain file name (letters, digits, `-`, `_`, `.`; not starting
/// with `.`; at most 200 bytes), never a path. Everything that joins a key
/// to a directory checks it first: keys come from the journal and from
/// backups, which are files an attacker might have written.
pub fn is_storage_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The audio files of one data directory.
#[derive(Debug)]
pub struct MediaStore {
    dir: PathBuf,
    tmp: PathBuf,
    max_bytes: u64,
    random: SystemRandom,
    /// On a cluster node, the object store every node's audio is in; this
    /// directory is then its cache ([`MediaStore::share`],
    /// [`MediaStore::ensure_local`]).
    pub(super) shared: Option<crate::cluster::SharedMedia>,
}

impl MediaStore {
    /// Opens (creating) `<data_dir>/media`, and removes what unfinished
    /// uploads left in `media/tmp`. Call it with the data dir's lock held.
    pub fn open(data_dir: &Path, max_bytes: u64) -> Result<MediaStore, MediaError> {
        let dir = data_dir.join(MEDIA_DIR);
        let tmp = dir.join(TMP_DIR);
        std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;
        for entry in std::fs::read_dir(&tmp).map_err(io("cannot read", &tmp))? {
            let entry = entry.map_err(io("cannot read", &tmp))?;
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
        }
        Ok(MediaStore {
            dir,
            tmp,
            max_bytes,
            random: SystemRandom::new(),
            shared: None,
        })
    }

    /// The store of a cluster node: every upload also goes to the
    /// cluster's object store, and audio this node lacks is fetched from
    /// it.
    pub fn with_shared(mut self, shared: crate::cluster::SharedMedia) -> MediaStore {
        self.shared = Some(shared);
        self
    }

    /// Whether this is a cluster node's store, whose audio is shared.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// `media/tmp`, where unfinished files are written.
    pub(super) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Random hex digits for a name no other file has.
    pub(super) fn nonce(&self) -> Result<String, MediaError> {
        let mut nonce = [0u8; 16];
        self.random
            .fill(&mut nonce)
            .map_err(|_| MediaError::Random)?;
        Ok(hex(&nonce))
    }

    /// The bound on one upload, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// `<data-dir>/media`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new storage key for an upload of `kind` to `interaction_id`:
    /// `<id>.<kind>.<32 random hex digits>`, unique to the upload.
    pub fn new_key(&self, interaction_id: &str, kind: MediaKind) -> Result<String, MediaError> {
        Ok(format!(
            "{}.{kind}.{}",
            safe_name(interaction_id),
            self.nonce()?
        ))
    }

    /// Starts an upload into a temporary file.
    pub fn begin(&self, key: &str) -> Result<MediaWriter, MediaError> {
        let path = self.tmp.join(key);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("cannot create", &path))?;
        Ok(MediaWriter {
            file,
            tmp_path: Some(path),
            dir: self.dir.clone(),
            key: key.to_owned(),
            hasher: Sha(Context::new(&SHA256)),
            size: 0,
            max_bytes: self.max_bytes,
        })
    }

    /// The path of a stored file; `None` for a key that is not one of ours
    /// (it could name a path outside the directory).
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        is_storage_key(key).then(|| self.dir.join(key))
    }

    /// Opens a stored file for reading.
    pub fn open_file(&self, key: &str) -> Result<File, MediaError> {
        let path = self.path(key).ok_or_else(|| MediaError::Damaged {
            key: key.to_owned(),
            what: "the storage key is not a file name".into(),
        })?;
        File::open(&path).map_err(io("cannot open", &path))
    }

    /// Every stored file, with its modification time.
    pub fn stored(&self) -> Result<Vec<(String, SystemTime)>, MediaError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("cannot read", &self.dir))? {
            let entry = entry.map_err(io("cannot read", &self.dir))?;
            let meta = entry.metadata().map_err(io("cannot read", &entry.path()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !meta.is_file() || name == LINK_KEY_FILE {
                continue;
            }
            out.push((name, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
        Ok(out)
    }

    /// Removes a stored file; a file already gone is not an error, a key
    /// that is not a file name is.
    pub fn remove(&self, key: &str) -> Result<(), MediaError> {
        let Some(path) = self.path(key) else {
            return Err(MediaError::Damaged {
                key: crate::model::echo(key),
                what: "the storage key is not a file name".into(),
            });
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(MediaError::Io {
                action: "cannot remove",
                path,
                cause: e,
            }),
            _ => Ok(()),
        }
    }
}

/// An upload in progress: bytes go to a temporary file and into the
/// checksum; [`MediaWriter::finish`] makes it durable under its key.
/// Dropped unfinished, it removes its temporary file.
#[derive(Debug)]
pub struct MediaWriter {
    file: File,
    tmp_path: Option<PathBuf>,
    dir: PathBuf,
    key: String,
    hasher: Sha,
    size: u64,
    max_bytes: u64,
}

impl MediaWriter {
    /// Appends a chunk; refuses one that would pass the size bound.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.max_bytes {
            return Err(MediaError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let path = self.tmp_path.clone().unwrap_or_default();
        self.file
            .write_all(chunk)
            .map_err(io("cannot write", &path))?;
        self.hasher.0.update(chunk);
        self.size = size;
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the file, checks it against the SHA-256 the uploader gave (if
    /// any), and renames it into the store, syncing the directory. Returns
    /// the storage key, the size and the SHA-256 (lower-case hex).
    pub fn finish(
        mut self,
        expect_sha256: Option<&str>,
    ) -> Result<(String, u64, String), MediaError> {
        let actual = hex(self.hasher.0.clone().finish().as_ref());
        if let Some(given) = expect_sha256
            && !given.eq_ignore_ascii_case(&actual)
        {
            return Err(MediaError::ChecksumMismatch {
                given: crate::model::echo(given),
                actual,
            });
        }
        let tmp = self.tmp_path.clone().unwrap_or_default();
        // The sweep spares a file no record names for an hour from its
        // modification time; that hour must start now, when the file goes
        // into place, not at the last chunk (an uploader may idle before
        // closing its stream).
        self.file
            .set_modified(SystemTime::now())
            .map_err(io("cannot touch", &tmp))?;
        self.file.sync_all().map_err(io("cannot sync", &tmp))?;
        let to = self.dir.join(&self.key);
        std::fs::rename(&tmp, &to).map_err(io("cannot move into place", &to))?;
        self.tmp_path = None;
        sync_dir(&self.dir)?;
        Ok((std::mem::take(&mut self.key), self.size, actual))
    }
}

impl Drop for MediaWriter {
    fn drop(&mut self) {
        if let Some(path) = self.tmp_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Checks audio as it is read: the running size and SHA-256 against what
/// was recorded at upload. Shared by the blocking reader and the async
/// streams, which read the file themselves.
#[derive(Debug)]
pub struct MediaCheck {
    key: String,
    hasher: Sha,
    read: u64,
    size: u64,
    sha256: String,
}

impl MediaCheck {
    /// A check of the audio `media` describes.
    pub fn new(media: &crate::model::Media) -> MediaCheck {
        MediaCheck {
            key: media.storage_key.clone(),
            hasher: Sha(Context::new(&SHA256)),
            read: 0,
            size: media.size_bytes,
            sha256: media.sha256.clone(),
        }
    }

    /// Takes the next bytes read; refuses more than were recorded.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        self.hasher.0.update(chunk);
        self.read += chunk.len() as u64;
        if self.read > self.size {
            return Err(MediaError::Damaged {
                key: self.key.clone(),
                what: format!("more than the {} bytes recorded", self.size),
            });
        }
        Ok(())
    }

    /// At the end of the file: whether all of it was there, unchanged.
    pub fn finish(&self) -> Result<(), MediaError> {
        if self.read != self.size {
            return Err(MediaError::Damaged {
                key: self.key.clone(),
                what: format!("{} bytes stored, {} recorded", self.read, self.size),
            });
        }
        let actual = hex(self.hasher.0.clone().finish().as_ref());
        if actual != self.sha256 {
            return Err(MediaError::Damaged {
                key: self.key.clone(),
                what: format!("SHA-256 `{actual}`, `{}` recorded", self.sha256),
            });
        }
        Ok(())
    }
}

/// Reads stored audio in chunks on the calling thread and checks, at the
/// end, that it is whole ([`MediaCheck`]).
#[derive(Debug)]
pub struct MediaReader {
    file: File,
    check: MediaCheck,
}

impl MediaReader {
    /// Reads the file `file` as the audio `media` describes.
    pub(super) fn of_file(file: File, media: &crate::model::Media) -> MediaReader {
        MediaReader {
            file,
            check: MediaCheck::new(media),
        }
    }

    /// Opens the audio `media` names.
    pub fn open(
        store: &MediaStore,
        media: &crate::model::Media,
    ) -> Result<MediaReader, MediaError> {
        Ok(MediaReader {
            file: store.open_file(&media.storage_key)?,
            check: MediaCheck::new(media),
        })
    }

    /// The next chunk, or `None` at the end once the audio has passed its
    /// check.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, MediaError> {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let n = self.file.read(&mut buf).map_err(|cause| MediaError::Io {
            action: "cannot read",
            path: PathBuf::from(&self.check.key),
            cause,
        })?;
        if n == 0 {
            self.check.finish()?;
            return Ok(None);
        }
        buf.truncate(n);
        self.check.update(&buf)?;
        Ok(Some(buf))
    }
}

/// Reads stored audio whole and checks it against its recorded size and
/// SHA-256: what a response with a `Content-Length` must do before it
/// sends its headers, since it cannot report damage after them.
pub fn verify_file(store: &MediaStore, media: &crate::model::Media) -> Result<(), MediaError> {
    let mut reader = MediaReader::open(store, media)?;
    while reader.next_chunk()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_bounded_hashed_and_in_place_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 10).unwrap();
        let key = store.new_key("IT-1", MediaKind::Recording).unwrap();
        assert!(key.starts_with("IT-1.recording.") && key.len() == "IT-1.recording.".len() + 32);
        let mut w = store.begin(&key).unwrap();
        w.write(b"hello").unwrap();
        assert!(
            store.stored().unwrap().is_empty(),
            "not in place before finish"
        );
        let e = w.write(b", world").unwrap_err();
        assert!(matches!(e, MediaError::TooLarge { limit: 10 }), "{e}");
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path().join("media/tmp"))
                .unwrap()
                .count(),
            0
        );

        let mut w = store.begin(&key).unwrap();
        w.write(b"hello").unwrap();
        let e = w.finish(Some(&"0".repeat(64))).unwrap_err();
        assert!(matches!(e, MediaError::ChecksumMismatch { .. }), "{e}");
        assert!(store.stored().unwrap().is_empty());

        let mut w = store.begin(&key).unwrap();
        w.write(b"hello").unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let (k, size, got) = w.finish(Some(&sha.to_uppercase())).unwrap();
        assert_eq!((k.as_str(), size, got.as_str()), (key.as_str(), 5, sha));
        assert_eq!(store.stored().unwrap().len(), 1);
        assert!(store.path("../etc/passwd").is_none());
        assert!(store.path(".hidden").is_none());
    }
}
