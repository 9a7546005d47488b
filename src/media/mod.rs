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
//!
//! - **Transfers** ([`MediaHub`]): the workflows of the recording and
//!   voicemail RPCs, an upload from its header to the journaled record
//!   ([`MediaHub::receive`], [`Upload::store`]) and a download as a link or
//!   as checked chunks ([`MediaHub::link`], [`MediaHub::read`]). They know
//!   nothing of gRPC: the API layer translates messages and maps their
//!   typed errors ([`UploadError`], [`NoLinkListener`], [`MediaError`]) to
//!   statuses.
//!
//! The code is split along those lines: `store.rs` holds the files and
//! the bytes (write, hash, rename, read back and check), `link.rs` the
//! signed links, `retention.rs` the sweep, `http.rs` the listener,
//! `upload.rs` and `download.rs` the transfers. This file keeps what they
//! share: the limits and file names, the errors, content types and
//! dispositions, hex, and the [`MediaHub`].

mod download;
pub mod http;
mod link;
mod retention;
mod shared;
mod store;
mod upload;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::model::MediaKind;
pub use download::NoLinkListener;
pub use link::{LinkError, LinkSigner, LinkTarget};
pub use retention::{Swept, sweep, sweep_shared, trim_cache};
pub use store::{MediaCheck, MediaReader, MediaStore, MediaWriter, is_storage_key, verify_file};
pub use upload::{MAX_UPLOADS, UPLOAD_IDLE, Upload, UploadError, UploadHeader, UploadPart};

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
/// How long a cluster node keeps its copy of audio nobody asked it for,
/// by default: the cluster's object store holds the audio, and a copy
/// removed is fetched again when asked for.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
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
    /// The cluster's object store, which every node's audio is in, did not
    /// answer or refused: nothing was stored, or the audio cannot be read
    /// on this node now.
    #[error("the cluster's audio store is unavailable: {0}")]
    Shared(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MediaError + 'a {
    move |cause| MediaError::Io {
        action,
        path: path.to_owned(),
        cause,
    }
}

fn sync_dir(dir: &Path) -> Result<(), MediaError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync", dir))
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

/// Where and how long audio is kept, and how links are served.
#[derive(Debug)]
pub struct MediaConfig {
    /// The bound on one upload.
    pub max_bytes: u64,
    /// How long a deleted interaction's audio stays on disk.
    pub retention: Duration,
    /// How often the sweep runs.
    pub sweep_every: Duration,
    /// On a cluster node, how long its copy of audio nobody asked for is
    /// kept ([`trim_cache`]); a single node keeps its audio, the only copy.
    pub cache_for: Duration,
    /// How long links live.
    pub link_ttl: Duration,
    /// The HTTP listener for links, bound by the caller; `None`: no links
    /// (a `return_url` download is refused).
    pub listener: Option<tokio::net::TcpListener>,
    /// The base URL links start with (`https://media.example.com`); `None`:
    /// `http://` and the listener's address.
    pub public_url: Option<String>,
    /// Counts the sweep's finished passes, whatever they removed; `None`
    /// counts nothing. A test waits on it to know that a pass ran, instead
    /// of sleeping and hoping.
    pub sweep_passes: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            retention: DEFAULT_RETENTION,
            sweep_every: DEFAULT_SWEEP_EVERY,
            cache_for: DEFAULT_CACHE_FOR,
            link_ttl: DEFAULT_LINK_TTL,
            listener: None,
            public_url: None,
            sweep_passes: None,
        }
    }
}

/// What the recording and voicemail RPCs need besides the guard: the
/// files, the link signer, and the bound on uploads in progress. The
/// transfers are its methods (`upload.rs`, `download.rs`).
#[derive(Debug)]
pub struct MediaHub {
    /// The audio files.
    pub store: Arc<MediaStore>,
    /// Signs links; `None` when no media HTTP listener runs, so that a
    /// `return_url` download is refused rather than answered with a link
    /// nothing serves.
    pub links: Option<Arc<LinkSigner>>,
    /// Uploads in progress, at most [`MAX_UPLOADS`]: each may hold up to
    /// the size bound in a temporary file.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl MediaHub {
    /// The hub over a store and, with a media listener, a link signer.
    pub fn new(store: Arc<MediaStore>, links: Option<Arc<LinkSigner>>) -> MediaHub {
        MediaHub {
            store,
            links,
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
