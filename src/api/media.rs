//! UploadInteractionRecording, UploadInteractionVoicemail,
//! DownloadInteractionRecording and DownloadInteractionVoicemail: the audio
//! of voice interactions.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use super::status::invalid;
use crate::guard::GuardError;
use crate::media::{Disposition, MediaCheck, MediaError};
use crate::model::{Media, MediaKind};
use crate::pb;
use crate::problem::FieldProblem;
use crate::wire::{media_pb_of, non_empty, pb_of, ts};

/// What the recording and voicemail RPCs need besides the guard.
#[derive(Debug)]
pub struct MediaHub {
    /// The audio files.
    pub store: Arc<crate::media::MediaStore>,
    /// Signs links; `None` when no media HTTP listener runs, so that a
    /// `return_url` download is refused rather than answered with a link
    /// nothing serves.
    pub links: Option<Arc<crate::media::LinkSigner>>,
    /// Uploads in progress, at most [`MAX_UPLOADS`]: each may hold up to
    /// the size bound in a temporary file.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// Uploads that may be in progress at once; one more is
/// RESOURCE_EXHAUSTED (retry later).
pub const MAX_UPLOADS: usize = 32;
/// How long an upload may go without a message before it is dropped
/// (nothing is stored).
pub const UPLOAD_IDLE: StdDuration = StdDuration::from_secs(60);

impl MediaHub {
    /// The hub over a store and, with a media listener, a link signer.
    pub fn new(
        store: Arc<crate::media::MediaStore>,
        links: Option<Arc<crate::media::LinkSigner>>,
    ) -> MediaHub {
        MediaHub {
            store,
            links,
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS)),
        }
    }
}

/// The stream a download answers: a header then chunks, or one link.
pub type MediaStream =
    tokio_stream::wrappers::ReceiverStream<Result<pb::DownloadMediaResponse, Status>>;

impl From<MediaError> for Status {
    fn from(e: MediaError) -> Status {
        match &e {
            MediaError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            MediaError::ChecksumMismatch { .. } => invalid("sha256", e.to_string()),
            MediaError::Damaged { .. } => Status::data_loss(e.to_string()),
            // A record names audio that is not on disk: lost, not unknown.
            MediaError::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
                Status::data_loss(format!("the stored audio is missing: {e}"))
            }
            MediaError::Io { .. } | MediaError::Random => Status::internal(e.to_string()),
        }
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("internal error: a file task failed: {e}")))?
        .map_err(Status::from)
}

/// An upload stream: the header, checked before any audio is taken;
/// the audio, bounded and hashed as it arrives into a temporary file;
/// then the file moved into place and the interaction's record
/// journaled. A stream that breaks off, or any refusal, leaves nothing.
pub(super) async fn upload(
    service: &Service,
    req: Request<tonic::Streaming<pb::UploadMediaRequest>>,
    kind: MediaKind,
) -> Result<Response<pb::InteractionResponse>, Status> {
    use pb::upload_media_request::Part;
    let who = caller(&req)?;
    let hub = service.media()?;
    let _slot = Arc::clone(&hub.uploads).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_UPLOADS} uploads are in progress, the most the server takes at once; retry shortly"
            ))
        })?;
    let mut stream = req.into_inner();
    let idle = || {
        Status::deadline_exceeded(format!(
            "no upload message for {} s; nothing was stored",
            UPLOAD_IDLE.as_secs()
        ))
    };
    let first = tokio::time::timeout(UPLOAD_IDLE, stream.message())
        .await
        .map_err(|_| idle())??;
    let header = match first {
        Some(pb::UploadMediaRequest {
            part: Some(Part::Header(h)),
        }) => h,
        _ => {
            return Err(invalid(
                "header",
                "the first message of an upload must be its `header` (interaction id and content type)",
            ));
        }
    };
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| {
        problems.push(FieldProblem {
            field: field.to_owned(),
            message,
        });
    };
    if header.interaction_id.is_empty() {
        problem("interactionId", "`interactionId` is required".into());
    }
    if header.content_type.is_empty() {
        problem(
                "contentType",
                "`contentType` is required; allowed: `audio/<subtype>`, for example `audio/mpeg` or `audio/wav`".into(),
            );
    } else if let Err(m) = crate::media::check_content_type(&header.content_type) {
        problem("contentType", m);
    }
    let expect_sha = non_empty(&header.sha256);
    if let Some(sha) = &expect_sha
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problem(
            "sha256",
            format!(
                "`sha256` value `{}` is not a SHA-256; allowed: 64 hex digits",
                crate::model::echo(sha)
            ),
        );
    }
    if !problems.is_empty() {
        return Err(GuardError::Invalid(problems).into());
    }
    let guard = service.guard()?;
    let person = non_empty(&header.person_id);
    let id = guard.media_target(person.as_deref(), &header.interaction_id, kind, &who)?;
    let store = Arc::clone(&hub.store);
    let key = store.new_key(&id, kind)?;
    let mut writer = {
        let (store, key) = (Arc::clone(&store), key.clone());
        blocking(move || store.begin(&key)).await?
    };
    while let Some(message) = tokio::time::timeout(UPLOAD_IDLE, stream.message())
        .await
        .map_err(|_| idle())??
    {
        match message.part {
            Some(Part::Chunk(chunk)) => {
                writer = blocking(move || {
                    writer.write(&chunk)?;
                    Ok(writer)
                })
                .await?;
            }
            Some(Part::Header(_)) => {
                return Err(invalid(
                    "header",
                    "`header` is sent once, as the first message; the messages after it carry `chunk`",
                ));
            }
            None => {
                return Err(invalid(
                    "part",
                    "an upload message carries `header` (first) or `chunk`; this one carries neither",
                ));
            }
        }
    }
    if writer.size() == 0 {
        return Err(invalid(
            "chunk",
            "the upload holds no audio; send the audio in `chunk` messages after the header",
        ));
    }
    let (key, size, sha256) = blocking(move || writer.finish(expect_sha.as_deref())).await?;
    let media = Media {
        content_type: header.content_type.clone(),
        size_bytes: size,
        sha256,
        uploaded_at: Utc::now(),
        uploaded_by: who.name.clone(),
        storage_key: key.clone(),
    };
    match guard.attach_media(&id, kind, media, &who, Utc::now()).await {
        Ok(record) => {
            metrics::counter!("compliance_guard_media_uploaded_bytes_total").increment(size);
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
                searchable_document: None,
            }))
        }
        Err(e) => {
            // Refused before anything was journaled: nothing names the
            // file, so take it back now. A journal failure (UNAVAILABLE,
            // INTERNAL) may have left a record naming it, so it stays;
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
                let _ = blocking(move || store.remove(&key)).await;
            }
            Err(e.into())
        }
    }
}

/// A download: one link (with `return_url`), or a header and the audio
/// in chunks, checked against its size and SHA-256 as it streams; a
/// stream that fails the check ends in DATA_LOSS.
pub(super) async fn download(
    service: &Service,
    req: Request<pb::DownloadMediaRequest>,
    kind: MediaKind,
) -> Result<Response<MediaStream>, Status> {
    use pb::download_media_response::Part;
    let who = caller(&req)?;
    let r = req.get_ref();
    let disposition = Disposition::parse(&r.disposition).map_err(|m| invalid("disposition", m))?;
    if r.interaction_id.is_empty() {
        return Err(invalid("interactionId", "`interactionId` is required"));
    }
    let (id, media) = service.guard()?.media(
        non_empty(&r.person_id).as_deref(),
        &r.interaction_id,
        kind,
        &who,
    )?;
    let hub = service.media()?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    if r.return_url {
        let links = hub.links.as_ref().ok_or_else(|| {
                Status::failed_precondition(
                    "`returnUrl` needs the media HTTP listener, and this server runs none; start it with `--media-listen ADDR`, or download by stream (`returnUrl` false)",
                )
            })?;
        let (url, expires_at) = links.link(&id, kind, &media.storage_key, disposition, Utc::now());
        let _ = tx
            .send(Ok(pb::DownloadMediaResponse {
                part: Some(Part::Link(pb::MediaLink {
                    url,
                    expires_at: Some(ts(expires_at)),
                })),
            }))
            .await;
        return Ok(Response::new(MediaStream::new(rx)));
    }
    let path = hub.store.path(&media.storage_key).ok_or_else(|| {
        Status::from(MediaError::Damaged {
            key: media.storage_key.clone(),
            what: "the storage key is not a file name".into(),
        })
    })?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|cause| {
        Status::from(MediaError::Io {
            action: "cannot open",
            path: path.clone(),
            cause,
        })
    })?;
    let header = pb::DownloadMediaResponse {
        part: Some(Part::Header(pb::DownloadMediaHeader {
            media: Some(media_pb_of(&media)),
            disposition: disposition.as_str().to_owned(),
            file_name: crate::media::file_name(&id, kind, &media.content_type),
        })),
    };
    // Async reads in a task of its own: a slow client holds its stream
    // and a few chunks, never a thread of the blocking pool.
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        if tx.send(Ok(header)).await.is_err() {
            return;
        }
        let mut check = MediaCheck::new(&media);
        loop {
            let mut buf = vec![0u8; crate::media::CHUNK_BYTES];
            let item = match file.read(&mut buf).await {
                Ok(0) => match check.finish() {
                    Ok(()) => return,
                    Err(e) => Err(e),
                },
                Ok(n) => {
                    buf.truncate(n);
                    check.update(&buf).map(|()| buf)
                }
                Err(cause) => Err(MediaError::Io {
                    action: "cannot read",
                    path: path.clone(),
                    cause,
                }),
            };
            let item = match item {
                Ok(chunk) => Ok(pb::DownloadMediaResponse {
                    part: Some(Part::Chunk(chunk)),
                }),
                Err(e) => {
                    tracing::error!(error = %e, interaction = %id, "download: the stored audio failed its check");
                    metrics::counter!("compliance_guard_media_damaged_total").increment(1);
                    Err(Status::from(e))
                }
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    Ok(Response::new(MediaStream::new(rx)))
}
