//! UploadInteractionRecording, UploadInteractionVoicemail,
//! DownloadInteractionRecording and DownloadInteractionVoicemail: the audio
//! of voice interactions. The transfers themselves are
//! [`crate::media::MediaHub`]'s; here messages become its parts and its
//! errors become statuses.

use std::pin::Pin;

use chrono::Utc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use super::status::invalid;
use crate::guard::GuardError;
use crate::media::{Disposition, MediaError, UploadError, UploadHeader, UploadPart};
use crate::model::MediaKind;
use crate::pb;
use crate::wire::{media_pb_of, non_empty, pb_of, ts};

/// The stream a download answers: a header then chunks, or one link.
pub type MediaStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadMediaResponse, Status>> + Send + 'static>>;

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

impl From<UploadError<Status>> for Status {
    fn from(e: UploadError<Status>) -> Status {
        match e {
            UploadError::Busy => Status::resource_exhausted(e.to_string()),
            UploadError::Idle => Status::deadline_exceeded(e.to_string()),
            UploadError::Invalid(problems) => GuardError::Invalid(problems).into(),
            UploadError::Guard(e) => e.into(),
            UploadError::Media(e) => e.into(),
            UploadError::Task(_) => Status::internal(e.to_string()),
            // The transport's own status (a message that does not decode,
            // a cancelled call), as it came.
            UploadError::Stream(status) => status,
        }
    }
}

/// An upload message as the part the upload workflow reads.
fn upload_part_of(message: pb::UploadMediaRequest) -> UploadPart {
    use pb::upload_media_request::Part;
    match message.part {
        Some(Part::Header(h)) => UploadPart::Header(UploadHeader {
            person_id: non_empty(&h.person_id),
            interaction_id: h.interaction_id,
            content_type: h.content_type,
            sha256: non_empty(&h.sha256),
        }),
        Some(Part::Chunk(chunk)) => UploadPart::Chunk(chunk),
        None => UploadPart::Empty,
    }
}

/// An upload stream: the header is read and checked before any audio is
/// taken, then the audio is stored and the interaction's record journaled
/// ([`crate::media::Upload::store`]). A stream that breaks off, or any
/// refusal, leaves nothing.
pub(super) async fn upload(
    service: &Service,
    req: Request<tonic::Streaming<pb::UploadMediaRequest>>,
    kind: MediaKind,
) -> Result<Response<pb::InteractionResponse>, Status> {
    let who = caller(&req)?;
    let hub = service.media()?;
    let parts = req.into_inner().map(|message| message.map(upload_part_of));
    let upload = hub.receive(parts).await?;
    let record = upload.store(service.guard()?, kind, &who).await?;
    Ok(Response::new(pb::InteractionResponse {
        interaction: Some(pb_of(&record)),
        created: false,
        searchable_document: None,
    }))
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
    if r.return_url {
        let (url, expires_at) = hub
            .link(&id, kind, &media, disposition, Utc::now())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let link = pb::DownloadMediaResponse {
            part: Some(Part::Link(pb::MediaLink {
                url,
                expires_at: Some(ts(expires_at)),
            })),
        };
        return Ok(Response::new(Box::pin(tokio_stream::once(Ok(link)))));
    }
    let chunks = hub.read(&id, &media).await?;
    let header = pb::DownloadMediaResponse {
        part: Some(Part::Header(pb::DownloadMediaHeader {
            media: Some(media_pb_of(&media)),
            disposition: disposition.as_str().to_owned(),
            file_name: crate::media::file_name(&id, kind, &media.content_type),
        })),
    };
    let chunks = ReceiverStream::new(chunks).map(|item| {
        item.map(|chunk| pb::DownloadMediaResponse {
            part: Some(Part::Chunk(chunk)),
        })
        .map_err(Status::from)
    });
    Ok(Response::new(Box::pin(
        tokio_stream::once(Ok(header)).chain(chunks),
    )))
}
