//! An upload, as the recording and voicemail RPCs receive it: a header,
//! checked before any audio is taken; the audio, bounded and hashed as it
//! arrives into a temporary file; then the file moved into place and the
//! interaction's record journaled ([`Guard::attach_media`]). A stream that
//! breaks off, goes quiet for [`UPLOAD_IDLE`], or is refused anywhere
//! leaves nothing.
//!
//! The transport is not known here: the API hands over its messages as
//! [`UploadPart`]s, and gets its own error back untouched in
//! [`UploadError::Stream`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::{Stream, StreamExt};

use super::{MediaError, MediaHub, MediaStore, check_content_type};
use crate::guard::{Guard, GuardError};
use crate::model::{Interaction, Media, MediaKind};
use crate::problem::FieldProblem;
use crate::request::Caller;

/// Uploads that may be in progress at once; one more is refused
/// ([`UploadError::Busy`]) before it sends any audio, since each may hold
/// up to the size bound in a temporary file.
pub const MAX_UPLOADS: usize = 32;
/// How long an upload may go without a message before it is dropped
/// (nothing is stored), so that a stalled uploader does not hold a slot
/// and a temporary file for ever.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// The first message of an upload: which interaction the audio is for,
/// and what it is, so that it can be refused before any audio arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadHeader {
    /// The borrower, when the caller names one (the interaction must be
    /// theirs).
    pub person_id: Option<String>,
    /// The interaction, by our id or `ext-<externalId>`.
    pub interaction_id: String,
    /// `audio/<subtype>`; it becomes the link response's content type.
    pub content_type: String,
    /// The SHA-256 the uploader computed, if it sent one: the audio is
    /// refused if what arrived differs.
    pub sha256: Option<String>,
}

impl UploadHeader {
    /// Every problem of the header at once, so that an uploader fixes them
    /// in one round.
    pub fn check(&self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        if self.interaction_id.is_empty() {
            problems.push(FieldProblem::required("interactionId"));
        }
        if self.content_type.is_empty() {
            problems.push(FieldProblem::new(
                "contentType",
                "`contentType` is required; allowed: `audio/<subtype>`, for example `audio/mpeg` or `audio/wav`",
            ));
        } else if let Err(m) = check_content_type(&self.content_type) {
            problems.push(FieldProblem::new("contentType", m));
        }
        if let Some(sha) = &self.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            problems.push(FieldProblem::new(
                "sha256",
                format!(
                    "`sha256` value `{}` is not a SHA-256; allowed: 64 hex digits",
                    crate::model::echo(sha)
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// One message of an upload stream, as the transport delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadPart {
    /// The header: first, and only first.
    Header(UploadHeader),
    /// Audio, in order.
    Chunk(Vec<u8>),
    /// A message that carries neither (refused).
    Empty,
}

/// Why an upload was not stored; nothing of it is kept. `E` is the
/// transport's own error, handed back as it came.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError<E> {
    /// [`MAX_UPLOADS`] uploads are already in progress.
    #[error(
        "{MAX_UPLOADS} uploads are in progress, the most the server takes at once; retry shortly"
    )]
    Busy,
    /// No message came for [`UPLOAD_IDLE`].
    #[error("no upload message for {} s; nothing was stored", UPLOAD_IDLE.as_secs())]
    Idle,
    /// The header, or the shape of the stream, is wrong; each problem
    /// names its field.
    #[error("{}", crate::problem::joined(.0))]
    Invalid(Vec<FieldProblem>),
    /// The guard refused the audio (no such interaction, not voice, one
    /// stored already) or could not record it.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The audio could not be stored (too large, not the SHA-256 given, a
    /// file error).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// A file task of the blocking pool failed.
    #[error("internal error: a file task failed: {0}")]
    Task(String),
    /// The transport's stream failed.
    #[error("the upload stream failed: {0}")]
    Stream(E),
}

/// One problem of the stream's shape.
fn shape<E>(field: &str, message: &str) -> UploadError<E> {
    UploadError::Invalid(vec![FieldProblem::new(field, message)])
}

/// The next message, waiting at most [`UPLOAD_IDLE`]; `None` at the end
/// of the stream.
async fn next<S, E>(parts: &mut S) -> Result<Option<UploadPart>, UploadError<E>>
where
    S: Stream<Item = Result<UploadPart, E>> + Unpin,
{
    match tokio::time::timeout(UPLOAD_IDLE, parts.next()).await {
        Err(_) => Err(UploadError::Idle),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(UploadError::Stream(e)),
        Ok(Some(Ok(part))) => Ok(Some(part)),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static, E>(
    work: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, UploadError<E>> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| UploadError::Task(e.to_string()))?
        .map_err(UploadError::Media)
}

impl MediaHub {
    /// Starts an upload: takes one of the [`MAX_UPLOADS`] slots, then
    /// reads the header and checks it, before any audio is taken.
    pub async fn receive<S, E>(&self, mut parts: S) -> Result<Upload<S>, UploadError<E>>
    where
        S: Stream<Item = Result<UploadPart, E>> + Unpin,
    {
        let slot = Arc::clone(&self.uploads)
            .try_acquire_owned()
            .map_err(|_| UploadError::Busy)?;
        let header = match next(&mut parts).await? {
            Some(UploadPart::Header(h)) => h,
            _ => {
                return Err(shape(
                    "header",
                    "the first message of an upload must be its `header` (interaction id and content type)",
                ));
            }
        };
        header.check().map_err(UploadError::Invalid)?;
        Ok(Upload {
            header,
            parts,
            store: Arc::clone(&self.store),
            _slot: slot,
        })
    }
}

/// An upload whose header has been read and checked, holding its slot
/// until it is stored or dropped.
pub struct Upload<S> {
    header: UploadHeader,
    parts: S,
    store: Arc<MediaStore>,
    _slot: OwnedSemaphorePermit,
}

impl<S> std::fmt::Debug for Upload<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<S, E> Upload<S>
where
    S: Stream<Item = Result<UploadPart, E>> + Unpin,
{
    /// Takes the audio and stores it as the interaction's `kind`: checks
    /// with the guard that it may be stored there, writes the chunks to a
    /// temporary file (bounded, hashed), moves the file into place, and
    /// journals the record. Returns the interaction as recorded.
    pub async fn store(
        mut self,
        guard: &Guard,
        kind: MediaKind,
        caller: &Caller,
    ) -> Result<Interaction, UploadError<E>> {
        let id = guard.media_target(
            self.header.person_id.as_deref(),
            &self.header.interaction_id,
            kind,
            caller,
        )?;
        let store = Arc::clone(&self.store);
        let key = store.new_key(&id, kind)?;
        let mut writer = {
            let (store, key) = (Arc::clone(&store), key.clone());
            blocking(move || store.begin(&key)).await?
        };
        while let Some(part) = next(&mut self.parts).await? {
            match part {
                UploadPart::Chunk(chunk) => {
                    writer = blocking(move || {
                        writer.write(&chunk)?;
                        Ok(writer)
                    })
                    .await?;
                }
                UploadPart::Header(_) => {
                    return Err(shape(
                        "header",
                        "`header` is sent once, as the first message; the messages after it carry `chunk`",
                    ));
                }
                UploadPart::Empty => {
                    return Err(shape(
                        "part",
                        "an upload message carries `header` (first) or `chunk`; this one carries neither",
                    ));
                }
            }
        }
        if writer.size() == 0 {
            return Err(shape(
                "chunk",
                "the upload holds no audio; send the audio in `chunk` messages after the header",
            ));
        }
        let expect_sha = self.header.sha256.clone();
        let (key, size, sha256) = blocking(move || writer.finish(expect_sha.as_deref())).await?;
        // On a cluster node, every node must find the audio before any
        // node can find a record naming it.
        if let Err(e) = store.share(&key).await {
            let _ = blocking::<_, E>(move || store.remove(&key)).await;
            return Err(e.into());
        }
        let media = Media {
            content_type: self.header.content_type.clone(),
            size_bytes: size,
            sha256,
            uploaded_at: Utc::now(),
            uploaded_by: caller.name.clone(),
            storage_key: key.clone(),
        };
        match guard
            .attach_media(&id, kind, media, caller, Utc::now())
            .await
        {
            Ok(record) => {
                metrics::counter!("compliance_guard_media_uploaded_bytes_total").increment(size);
                Ok(record)
            }
            Err(e) => {
                // Refused before anything was journaled: nothing names the
                // file, so take it back now. A journal failure (Unavailable,
                // Internal) may have left a record naming it, so it stays;
                // the sweep removes it later if nothing does.
                let refused = matches!(
                    e,
                    GuardError::Invalid(_)
                        | GuardError::NotFound(_)
                        | GuardError::AlreadyExists(_)
                        | GuardError::FailedPrecondition(_)
                        | GuardError::PermissionDenied(_)
                );
                if refused {
                    store.unshare(&key).await;
                    let _ = blocking::<_, E>(move || store.remove(&key)).await;
                }
                Err(e.into())
            }
        }
    }
}
