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

/// The stream a download answers, of messages `M`: a header then chunks,
/// or one link.
pub type MediaStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

/// What one message of a download stream carries, whichever of the two
/// download RPCs it answers (each has a response type of its own, with the
/// same parts).
#[derive(Debug)]
pub enum DownloadPart {
    /// The first message of a streamed download.
    Header(pb::DownloadMediaHeader),
    /// The next bytes of the audio.
    Chunk(Vec<u8>),
    /// The only message of a download with `return_url`.
    Link(pb::MediaLink),
}

/// A download request's fields, whichever of the two download RPCs it is.
#[derive(Debug)]
pub struct DownloadAsk {
    person_id: String,
    interaction_id: String,
    disposition: String,
    return_url: bool,
}

/// The message types of one audio kind's RPCs, tied to the parts the
/// transfer reads and writes, so that one upload and one download serve
/// both kinds.
macro_rules! media_messages {
    ($upload:ty, $upload_part:ident, $download:ty, $response:ty, $response_part:ident) => {
        impl From<$upload> for UploadPart {
            fn from(message: $upload) -> UploadPart {
                use pb::$upload_part::Part;
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
        }

        impl From<&$download> for DownloadAsk {
            fn from(r: &$download) -> DownloadAsk {
                DownloadAsk {
                    person_id: r.person_id.clone(),
                    interaction_id: r.interaction_id.clone(),
                    disposition: r.disposition.clone(),
                    return_url: r.return_url,
                }
            }
        }

        impl From<DownloadPart> for $response {
            fn from(part: DownloadPart) -> $response {
                use pb::$response_part::Part;
                let part = match part {
                    DownloadPart::Header(h) => Part::Header(h),
                    DownloadPart::Chunk(c) => Part::Chunk(c),
                    DownloadPart::Link(l) => Part::Link(l),
                };
                Self { part: Some(part) }
            }
        }
    };
}

media_messages!(
    pb::UploadInteractionRecordingRequest,
    upload_interaction_recording_request,
    pb::DownloadInteractionRecordingRequest,
    pb::DownloadInteractionRecordingResponse,
    download_interaction_recording_response
);
media_messages!(
    pb::UploadInteractionVoicemailRequest,
    upload_interaction_voicemail_request,
    pb::DownloadInteractionVoicemailRequest,
    pb::DownloadInteractionVoicemailResponse,
    download_interaction_voicemail_response
);

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
            MediaError::Shared(_) => Status::unavailable(e.to_string()),
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

/// An upload stream: the header is read and checked before any audio is
/// taken, then the audio is stored and the interaction's record journaled
/// ([`crate::media::Upload::store`]). A stream that breaks off, or any
/// refusal, leaves nothing.
/// Answers the interaction as stored.
pub(super) async fn upload<M>(
    service: &Service,
    req: Request<tonic::Streaming<M>>,
    kind: MediaKind,
) -> Result<pb::Interaction, Status>
where
    M: Into<UploadPart> + Send + 'static,
{
    let who = caller(&req)?;
    let hub = service.media()?;
    let parts = req.into_inner().map(|message| message.map(Into::into));
    let upload = hub.receive(parts).await?;
    let record = upload.store(service.guard()?, kind, &who).await?;
    Ok(pb_of(&record))
}

/// A download: one link (with `return_url`), or a header and the audio
/// in chunks, checked against its size and SHA-256 as it streams; a
/// stream that fails the check ends in DATA_LOSS.
pub(super) async fn download<R, M>(
    service: &Service,
    req: Request<R>,
    kind: MediaKind,
) -> Result<Response<MediaStream<M>>, Status>
where
    for<'a> DownloadAsk: From<&'a R>,
    M: From<DownloadPart> + Send + 'static,
{
    let who = caller(&req)?;
    let r = DownloadAsk::from(req.get_ref());
    let disposition = Disposition::parse(&r.disposition).map_err(|m| invalid("disposition", m))?;
    if r.interaction_id.is_empty() {
        return Err(invalid("interactionId", "`interactionId` is required"));
    }
    // A read, after the read barrier as every read on a cluster node: audio
    // uploaded through another node is found here.
    service.guard()?.read_barrier().await?;
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
        let link = M::from(DownloadPart::Link(pb::MediaLink {
            url,
            expires_at: Some(ts(expires_at)),
        }));
        return Ok(Response::new(Box::pin(tokio_stream::once(Ok(link)))));
    }
    let chunks = hub.read(&id, &media).await?;
    let header = M::from(DownloadPart::Header(pb::DownloadMediaHeader {
        media: Some(media_pb_of(&media)),
        disposition: disposition.as_str().to_owned(),
        file_name: crate::media::file_name(&id, kind, &media.content_type),
    }));
    let chunks = ReceiverStream::new(chunks).map(|item| {
        item.map(|chunk| M::from(DownloadPart::Chunk(chunk)))
            .map_err(Status::from)
    });
    Ok(Response::new(Box::pin(
        tokio_stream::once(Ok(header)).chain(chunks),
    )))
}
