//! Stored audio of voice interactions: call recordings and voicemails.
//!
//! Upstream keeps two kinds of audio per voice interaction, with separate
//! download endpoints and list filters ([`MediaKind`]). Here:
//!
//! - **The store** ([`MediaStore`]) keeps each upload as one file in
//!   `<data-dir>/media/`, named by a key unique to the upload. An upload is
//!   written to `media/tmp/`, hashed (SHA-256) and bounded in size as it
//!   arrives, synced, and only then renamed into place; the interaction's
//!   journal record, which names the file, is written after that. A crash
//!   therefore leaves either a temporary file (removed at start) or a file
//!   no record names (removed by the sweep an hour later), never a record
//!   naming a file that is not there.
//! - **Links** ([`LinkSigner`]) are upstream's `returnUrl`: a URL to the
//!   content that anyone holding it may fetch until it expires, signed with
//!   HMAC-SHA256 under a key kept in the data dir. The signature covers the
//!   interaction, the kind, the upload's storage key, the disposition and
//!   the expiry, so a link can be neither extended nor moved to another
//!   file, and a new upload invalidates the old links.
//! - **The HTTP listener** ([`http`]) serves those links.
//! - **Deletion**: a deleted interaction's audio is unreachable at once (by
//!   stream and by link); its file is purged once the retention has passed
//!   ([`sweep`]).

pub mod http;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use ring::digest::{Context, SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::MediaKind;

/// The directory under the data dir that holds the audio.
pub const MEDIA_DIR: &str = "media";
/// Where uploads are written until they are whole and synced.
pub const TMP_DIR: &str = "tmp";
/// The file under [`MEDIA_DIR`] holding the key links are signed with.
pub const LINK_KEY_FILE: &str = "link-key";
/// The default bound on one upload: a two-hour call as 8 kHz 16-bit WAV
/// (115 MB) fits; anything larger is refused while it arrives.
pub const DEFAULT_MAX_BYTES: u64 = 128 * 1024 * 1024;
/// How long a deleted interaction's audio is kept on disk (unreachable)
/// before it is purged, by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a link stays valid, by default.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest a link may be made to live: a link is a bearer credential.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often the sweep looks for audio to purge, by default.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A file that no record names is removed only once it is this old: an
/// upload renames its file into place a moment before its record is
/// journaled, and the sweep must not take it in between.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// The size of the chunks a download streams.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// The longest content type accepted (`audio/` and the subtype).
pub const MAX_CONTENT_TYPE_CHARS: usize = 80;

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A file operation failed.
    #[error("{action} `{path}`: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The upload passed the size bound.
    #[error(
        "the upload is larger than {limit} bytes; allowed: at most {limit} bytes (the server's `--media-max-mib`)"
    )]
    TooLarge {
        /// The bound.
        limit: u64,
    },
    /// The SHA-256 the uploader gave is not the audio's.
    #[error(
        "`sha256` `{given}` is not the SHA-256 of the audio received, `{actual}`; nothing was stored"
    )]
    ChecksumMismatch {
        /// What the uploader gave.
        given: String,
        /// What arrived.
        actual: String,
    },
    /// Stored audio no longer matches its recorded checksum or size.
    #[error("the stored audio `{key}` is damaged: {what}")]
    Damaged {
        /// The storage key.
        key: String,
        /// What differs.
        what: String,
    },
    /// The system's random source failed (new keys need it).
    #[error("the system random source failed")]
    Random,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MediaError + 'a {
    move |cause| MediaError::Io {
        action,
        path: path.to_owned(),
        cause,
    }
}

/// Checks an upload's content type: `audio/<subtype>` with a subtype of
/// lower-case letters, digits and `.+-`. It becomes an HTTP header of the
/// link's response, so nothing else may pass. Returns what is wrong.
pub fn check_content_type(text: &str) -> Result<(), String> {
    let shown: String = crate::model::echo(text);
    let Some(subtype) = text.strip_prefix("audio/") else {
        return Err(format!(
            "`contentType` value `{shown}` is not an audio type; allowed: `audio/<subtype>`, for example `audio/mpeg` or `audio/wav`"
        ));
    };
    let ok = !subtype.is_empty()
        && text.len() <= MAX_CONTENT_TYPE_CHARS
        && subtype
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`contentType` value `{shown}` is not allowed; allowed: `audio/` and a subtype of lower-case letters, digits, `.`, `+` and `-`, at most {MAX_CONTENT_TYPE_CHARS} characters"
        ))
    }
}

/// The file extension for a content type, for the file name a download
/// suggests.
pub fn extension(content_type: &str) -> &'static str {
    match content_type.strip_prefix("audio/").unwrap_or_default() {
        "mpeg" | "mp3" => "mp3",
        "wav" | "wave" | "x-wav" => "wav",
        "ogg" => "ogg",
        "opus" => "opus",
        "webm" => "webm",
        "mp4" | "x-m4a" | "m4a" => "m4a",
        "aac" => "aac",
        "flac" | "x-flac" => "flac",
        "amr" => "amr",
        "basic" => "au",
        _ => "audio",
    }
}

/// The file name a download suggests: `<interaction id>-<kind>.<ext>`.
pub fn file_name(interaction_id: &str, kind: MediaKind, content_type: &str) -> String {
    format!(
        "{}-{kind}.{}",
        safe_name(interaction_id),
        extension(content_type)
    )
}

/// `text` with everything but ASCII letters, digits and `-` replaced by
/// `_`, cut to 64 characters: safe, and short, in a file name and in a
/// header (an imported id may be 259 characters of anything).
fn safe_name(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How a link's response asks the browser to treat the content (upstream
/// `disposition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Open it in the default manner (an audio player).
    Inline,
    /// Download it.
    Attachment,
}

impl Disposition {
    /// The disposition named `text`; empty is `attachment`, upstream's
    /// default behaviour for a file download.
    pub fn parse(text: &str) -> Result<Disposition, String> {
        match text {
            "inline" => Ok(Disposition::Inline),
            "" | "attachment" => Ok(Disposition::Attachment),
            other => Err(format!(
                "`disposition` value `{}` is not allowed; allowed: `inline`, `attachment` (the default)",
                crate::model::echo(other)
            )),
        }
    }

    /// Its name, as in the request and the link.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Inline => "inline",
            Disposition::Attachment => "attachment",
        }
    }
}

/// `text` with every byte but ASCII letters, digits and `-_.~` as `%XX`,
/// for a path segment (imported ids may hold anything).
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or
/// text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

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
        })
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
        let mut nonce = [0u8; 16];
        self.random
            .fill(&mut nonce)
            .map_err(|_| MediaError::Random)?;
        Ok(format!(
            "{}.{kind}.{}",
            safe_name(interaction_id),
            hex(&nonce)
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

fn sync_dir(dir: &Path) -> Result<(), MediaError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync", dir))
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

/// What a link names, once its signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The interaction's id (ours).
    pub interaction_id: String,
    /// Which audio.
    pub kind: MediaKind,
    /// How the response presents it.
    pub disposition: Disposition,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not a link of ours: a wrong path, a missing or malformed parameter.
    #[error("not a media link: {0}")]
    Malformed(String),
    /// The signature does not match (or the content it was made for is
    /// gone or replaced).
    #[error("the link is not valid")]
    BadSignature,
    /// A genuine link past its expiry.
    #[error("the link expired at {0}")]
    Expired(String),
}

/// Signs and checks links to stored audio.
#[derive(Debug)]
pub struct LinkSigner {
    key: hmac::Key,
    base: String,
    ttl: Duration,
}

impl LinkSigner {
    /// Loads the data dir's link key, creating it (32 random bytes, mode
    /// 0600) at first start, so links survive a restart. Deleting the file
    /// and restarting revokes every link. `base` is the listener's public
    /// URL (`http://host:port`), `ttl` how long links live.
    pub fn load_or_create(
        data_dir: &Path,
        base: &str,
        ttl: Duration,
    ) -> Result<LinkSigner, MediaError> {
        let dir = data_dir.join(MEDIA_DIR);
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        let path = dir.join(LINK_KEY_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => unhex(text.trim()).filter(|k| k.len() >= 32).ok_or_else(|| {
                MediaError::Damaged {
                    key: LINK_KEY_FILE.into(),
                    what: format!(
                        "`{}` does not hold 64 or more hex digits; delete it to make a new key (links given out stop working)",
                        path.display()
                    ),
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut secret)
                    .map_err(|_| MediaError::Random)?;
                // Written whole to a temporary file, then renamed: a crash
                // never leaves an empty or partial key behind.
                let tmp = dir.join(format!("{LINK_KEY_FILE}.tmp"));
                let _ = std::fs::remove_file(&tmp);
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut file = options.open(&tmp).map_err(io("cannot create", &tmp))?;
                file.write_all(format!("{}\n", hex(&secret)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io("cannot write", &tmp))?;
                std::fs::rename(&tmp, &path).map_err(io("cannot move into place", &path))?;
                sync_dir(&dir)?;
                secret
            }
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        Ok(LinkSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            base: base.trim_end_matches('/').to_owned(),
            ttl: ttl.min(MAX_LINK_TTL),
        })
    }

    /// How long links live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn message(target: &LinkTarget, storage_key: &str) -> String {
        format!(
            "compliance-guard media link v1\n{}\n{}\n{}\n{}\n{}",
            target.interaction_id,
            target.kind,
            storage_key,
            target.disposition.as_str(),
            target.expires_at.timestamp()
        )
    }

    /// A link to the audio of `kind` of `interaction_id`, stored under
    /// `storage_key`, valid from `now` for the configured time.
    pub fn link(
        &self,
        interaction_id: &str,
        kind: MediaKind,
        storage_key: &str,
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let expires_at = now
            + chrono::Duration::from_std(self.ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let target = LinkTarget {
            interaction_id: interaction_id.to_owned(),
            kind,
            disposition,
            expires_at,
        };
        let tag = hmac::sign(&self.key, Self::message(&target, storage_key).as_bytes());
        let url = format!(
            "{}/media/{}/{kind}?disposition={}&expires={}&signature={}",
            self.base,
            percent_encode(interaction_id),
            disposition.as_str(),
            expires_at.timestamp(),
            hex(tag.as_ref())
        );
        (url, expires_at)
    }

    /// Reads a link's path and query (`/media/{id}/{kind}?...`) without
    /// checking its signature: the caller looks up the storage key the
    /// link must have been made for, then calls [`LinkSigner::verify`].
    pub fn parse(path: &str, query: &str) -> Result<(LinkTarget, Vec<u8>), LinkError> {
        let rest = path.strip_prefix("/media/").ok_or_else(|| {
            LinkError::Malformed("the path is not /media/{interactionId}/{kind}".into())
        })?;
        let (id, kind) = rest.split_once('/').ok_or_else(|| {
            LinkError::Malformed("the path is not /media/{interactionId}/{kind}".into())
        })?;
        let kind = MediaKind::parse(kind).ok_or_else(|| {
            LinkError::Malformed("the kind is not `recording` or `voicemail`".into())
        })?;
        let id = percent_decode(id)
            .filter(|id| !id.is_empty() && id.chars().count() <= crate::model::MAX_ID_CHARS + 4)
            .ok_or_else(|| LinkError::Malformed("the interaction id is not one of ours".into()))?;
        let id = id.as_str();
        let (mut disposition, mut expires, mut signature) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "disposition" => &mut disposition,
                "expires" => &mut expires,
                "signature" => &mut signature,
                _ => {
                    return Err(LinkError::Malformed(format!(
                        "unknown parameter `{}`",
                        crate::model::echo(k)
                    )));
                }
            };
            if slot.replace(v).is_some() {
                return Err(LinkError::Malformed(format!("`{k}` is given twice")));
            }
        }
        let disposition = Disposition::parse(disposition.unwrap_or("attachment"))
            .map_err(LinkError::Malformed)?;
        let expires_at = expires
            .and_then(|e| e.parse::<i64>().ok())
            .and_then(|e| DateTime::from_timestamp(e, 0))
            .ok_or_else(|| {
                LinkError::Malformed("`expires` is missing or not a Unix time".into())
            })?;
        let signature = signature
            .and_then(unhex)
            .ok_or_else(|| LinkError::Malformed("`signature` is missing or not hex".into()))?;
        Ok((
            LinkTarget {
                interaction_id: id.to_owned(),
                kind,
                disposition,
                expires_at,
            },
            signature,
        ))
    }

    /// Checks a parsed link against the storage key of the content it
    /// names now (`None`: nothing stored, which no signature matches), in
    /// constant time, then its expiry.
    pub fn verify(
        &self,
        target: &LinkTarget,
        signature: &[u8],
        storage_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let Some(storage_key) = storage_key else {
            return Err(LinkError::BadSignature);
        };
        hmac::verify(
            &self.key,
            Self::message(target, storage_key).as_bytes(),
            signature,
        )
        .map_err(|_| LinkError::BadSignature)?;
        if now >= target.expires_at {
            return Err(LinkError::Expired(
                target
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        Ok(())
    }
}

/// Where and how long audio is kept, and how links are served.
#[derive(Debug)]
pub struct MediaConfig {
    /// The bound on one upload.
    pub max_bytes: u64,
    /// How long a deleted interaction's audio stays on disk.
    pub retention: Duration,
    /// How often the sweep runs.
    pub sweep_every: Duration,
    /// How long links live.
    pub link_ttl: Duration,
    /// The HTTP listener for links, bound by the caller; `None`: no links
    /// (a `return_url` download is refused).
    pub listener: Option<tokio::net::TcpListener>,
    /// The base URL links start with (`https://media.example.com`); `None`:
    /// `http://` and the listener's address.
    pub public_url: Option<String>,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            retention: DEFAULT_RETENTION,
            sweep_every: DEFAULT_SWEEP_EVERY,
            link_ttl: DEFAULT_LINK_TTL,
            listener: None,
            public_url: None,
        }
    }
}

/// What the sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Audio of interactions deleted longer ago than the retention.
    pub purged: usize,
    /// Files no record names, older than [`ORPHAN_GRACE`].
    pub orphans: usize,
}

/// One pass of the sweep: removes the audio of interactions deleted more
/// than `retention` before `now`, and files no interaction names that are
/// older than [`ORPHAN_GRACE`]. `status(key)` says what the index knows of
/// a storage key: `None` if no interaction names it, `Some(deleted_at)`
/// otherwise; when it cannot say (`Err`), the sweep stops and removes
/// nothing more: a file is never taken for an orphan because the index
/// could not be read.
pub fn sweep(
    store: &MediaStore,
    now: DateTime<Utc>,
    retention: Duration,
    status: impl Fn(&str) -> Result<Option<Option<DateTime<Utc>>>, String>,
) -> Result<Swept, MediaError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let now_sys = SystemTime::from(now);
    let mut swept = Swept::default();
    for (key, modified) in store.stored()? {
        let known = status(&key).map_err(|why| MediaError::Damaged {
            key: key.clone(),
            what: format!("the index cannot be read ({why}); the sweep stopped"),
        })?;
        match known {
            Some(Some(deleted_at))
                if deleted_at
                    .checked_add_signed(retention)
                    .is_some_and(|purge_at| purge_at <= now) =>
            {
                store.remove(&key)?;
                swept.purged += 1;
            }
            Some(_) => {}
            None => {
                let age = now_sys.duration_since(modified).unwrap_or_default();
                if age >= ORPHAN_GRACE {
                    store.remove(&key)?;
                    swept.orphans += 1;
                }
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn signer(dir: &Path) -> LinkSigner {
        LinkSigner::load_or_create(dir, "http://127.0.0.1:9/", Duration::from_secs(60)).unwrap()
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.strip_prefix("http://127.0.0.1:9").unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        (path.to_owned(), query.to_owned())
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_only_for_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer(dir.path());
        let (url, expires) = s.link(
            "IT-0000-00000001",
            MediaKind::Recording,
            "k1",
            Disposition::Inline,
            at(1_000),
        );
        assert_eq!(expires, at(1_060));
        let (path, query) = split(&url);
        assert_eq!(path, "/media/IT-0000-00000001/recording");
        let (target, sig) = LinkSigner::parse(&path, &query).unwrap();
        assert_eq!(target.disposition, Disposition::Inline);
        assert_eq!(s.verify(&target, &sig, Some("k1"), at(1_059)), Ok(()));
        // Expired at the second it names.
        assert!(matches!(
            s.verify(&target, &sig, Some("k1"), at(1_060)),
            Err(LinkError::Expired(_))
        ));
        // Another upload, or nothing stored: not valid.
        assert_eq!(
            s.verify(&target, &sig, Some("k2"), at(1_000)),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            s.verify(&target, &sig, None, at(1_000)),
            Err(LinkError::BadSignature)
        );
        // Any altered part: not valid.
        for altered in [
            query.replace("disposition=inline", "disposition=attachment"),
            query.replace("expires=1060", "expires=9999"),
        ] {
            let (t, sig) = LinkSigner::parse(&path, &altered).unwrap();
            assert_eq!(
                s.verify(&t, &sig, Some("k1"), at(1_000)),
                Err(LinkError::BadSignature)
            );
        }
        let (t, sig) = LinkSigner::parse("/media/IT-0000-00000001/voicemail", &query).unwrap();
        assert_eq!(
            s.verify(&t, &sig, Some("k1"), at(1_000)),
            Err(LinkError::BadSignature)
        );
        // The key survives a restart; links stay valid.
        let again = signer(dir.path());
        assert_eq!(
            again.verify(&target, &sig_of(&query), Some("k1"), at(1_000)),
            Ok(())
        );
    }

    fn sig_of(query: &str) -> Vec<u8> {
        let hexsig = query.split("signature=").nth(1).unwrap();
        unhex(hexsig).unwrap()
    }

    #[test]
    fn any_imported_id_gets_a_short_key_and_a_working_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 10).unwrap();
        let s = signer(dir.path());
        for id in [
            "IT-AAAA-0001.2".to_owned(),
            format!("ext-{}", "x/é ?#%".repeat(30)),
            format!("IT-{}", "A".repeat(250)),
        ] {
            let key = store.new_key(&id, MediaKind::Voicemail).unwrap();
            assert!(is_storage_key(&key) && key.len() <= 120, "{key}");
            let (url, _) = s.link(
                &id,
                MediaKind::Voicemail,
                &key,
                Disposition::Attachment,
                at(0),
            );
            let (path, query) = split(&url);
            let (target, sig) = LinkSigner::parse(&path, &query).unwrap();
            assert_eq!(target.interaction_id, id);
            assert_eq!(s.verify(&target, &sig, Some(&key), at(1)), Ok(()));
        }
        assert!(!is_storage_key("../x") && !is_storage_key("/etc/passwd") && !is_storage_key(""));
    }

    #[test]
    fn malformed_links_are_refused_by_name() {
        for (path, query, says) in [
            ("/other/IT-1/recording", "", "path"),
            ("/media/IT-1/photo", "", "kind"),
            ("/media/%ZZ/recording", "", "interaction id"),
            (
                "/media/IT-1/recording",
                "expires=1&signature=zz",
                "signature",
            ),
            ("/media/IT-1/recording", "signature=00", "expires"),
            (
                "/media/IT-1/recording",
                "expires=1&expires=2&signature=00",
                "twice",
            ),
            (
                "/media/IT-1/recording",
                "disposition=x&expires=1&signature=00",
                "disposition",
            ),
            (
                "/media/IT-1/recording",
                "expires=1&signature=00&x=1",
                "unknown parameter",
            ),
        ] {
            let e = LinkSigner::parse(path, query).unwrap_err().to_string();
            assert!(e.contains(says), "{path}?{query}: {e}");
        }
    }

    #[test]
    fn a_damaged_link_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(MEDIA_DIR)).unwrap();
        std::fs::write(dir.path().join(MEDIA_DIR).join(LINK_KEY_FILE), "short").unwrap();
        let e = LinkSigner::load_or_create(dir.path(), "http://x", DEFAULT_LINK_TTL).unwrap_err();
        assert!(e.to_string().contains("delete it to make a new key"), "{e}");
    }

    #[test]
    fn content_types_are_audio_tokens_only() {
        for ok in [
            "audio/mpeg",
            "audio/wav",
            "audio/x-m4a",
            "audio/vnd.wave",
            "audio/ogg+opus",
        ] {
            assert_eq!(check_content_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "audio/",
            "video/mp4",
            "audio/MPEG",
            "audio/mpeg; codecs=x",
            "audio/mpeg\r\nSet-Cookie: a=b",
        ] {
            assert!(check_content_type(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            file_name("IT-1", MediaKind::Voicemail, "audio/wav"),
            "IT-1-voicemail.wav"
        );
        assert_eq!(
            file_name("a/b\"c", MediaKind::Recording, "audio/zz"),
            "a_b_c-recording.audio"
        );
    }

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

    #[test]
    fn the_sweep_purges_after_retention_and_spares_young_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 100).unwrap();
        for key in ["kept", "deleted-long-ago", "deleted-just-now", "orphan"] {
            let mut w = store.begin(key).unwrap();
            w.write(b"x").unwrap();
            w.finish(None).unwrap();
        }
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        let status = |key: &str| {
            Ok(match key {
                "kept" => Some(None),
                "deleted-long-ago" => Some(Some(now - chrono::Duration::days(2))),
                "deleted-just-now" => Some(Some(now)),
                _ => None,
            })
        };
        // An index that cannot be read stops the sweep: nothing is taken
        // for an orphan, however old.
        let e = sweep(
            &store,
            now + chrono::Duration::days(9),
            Duration::ZERO,
            |_| Err("poisoned".to_owned()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the sweep stopped"), "{e}");
        assert_eq!(store.stored().unwrap().len(), 4);
        let swept = sweep(&store, now, day, status).unwrap();
        assert_eq!(
            swept,
            Swept {
                purged: 1,
                orphans: 0
            }
        );
        let mut left: Vec<String> = store
            .stored()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        left.sort();
        assert_eq!(left, ["deleted-just-now", "kept", "orphan"]);
        // An hour on, the orphan goes too; retention zero purges at once.
        let later = now + chrono::Duration::hours(2);
        let swept = sweep(&store, later, Duration::ZERO, status).unwrap();
        assert_eq!(
            swept,
            Swept {
                purged: 1,
                orphans: 1
            }
        );
        // A retention too long to add never purges (and never panics).
        let swept = sweep(&store, later, Duration::MAX, status).unwrap();
        assert_eq!(swept, Swept::default());
    }
}
