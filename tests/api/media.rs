//! End-to-end tests of recordings and voicemails: streamed upload and
//! download (`UploadInteractionRecording`, `UploadInteractionVoicemail`,
//! `DownloadInteractionRecording`, `DownloadInteractionVoicemail`) with
//! their sizes and SHA-256 checksums, the refusals of an upload (leaving
//! nothing on disk), signed time-limited links served by the media HTTP
//! listener (GET, HEAD, ranges, tampering, expiry), deletion and the
//! retention sweep, sensitive and company scope, the `hasRecording` and
//! `hasVoicemail` list filters, durability across restarts (journal and
//! store), and damage detection (DATA_LOSS).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compliance_guard::media::MediaConfig;
use compliance_guard::pb::DownloadInteractionRecordingResponse as download_media_response_message;
use compliance_guard::pb::{
    DeleteInteractionRequest, DownloadInteractionRecordingRequest as DownloadMediaRequest,
    DownloadMediaHeader, GetInteractionRequest, Interaction, ListInteractionsRequest, MediaLink,
    UploadInteractionRecordingRequest as UploadMediaRequest, UploadMediaHeader,
    download_interaction_recording_response as download_media_response,
    upload_interaction_recording_request as upload_media_request,
};

/// The recording RPCs' messages, re-read as the voicemail RPCs' (each RPC
/// has types of its own, with the same fields and numbers), so that one
/// helper drives both kinds.
fn same_fields<A: prost::Message, B: prost::Message + Default>(a: &A) -> B {
    B::decode(a.encode_to_vec().as_slice()).unwrap()
}
use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::ops::durability::{assert_read_from_the_store, assert_store_at};
use crate::support::consts::{ACME_KEY, AUDITOR_KEY, GLOBEX_KEY, P, T0};
use crate::support::server::{Interactions, TestServer, options};

/// About 200 KiB: several of the server's 64 KiB chunks.
const AUDIO_LEN: usize = 200 * 1024 + 77;

/// Which audio of an interaction.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Recording,
    Voicemail,
}

// ---- helpers ----------------------------------------------------------------

/// `len` bytes of a xorshift pattern seeded by `seed` (not all alike, not
/// periodic at chunk boundaries).
fn audio(len: usize, seed: u32) -> Vec<u8> {
    let mut x: u32 = (0x9E37_79B9 ^ seed.wrapping_mul(0x85EB_CA6B)) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Lower-case hex SHA-256.
fn sha_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(id: &str, content_type: &str, sha256: &str) -> UploadMediaRequest {
    UploadMediaRequest {
        part: Some(upload_media_request::Part::Header(UploadMediaHeader {
            person_id: P.into(),
            interaction_id: id.into(),
            content_type: content_type.into(),
            sha256: sha256.into(),
        })),
    }
}

fn chunk(bytes: &[u8]) -> UploadMediaRequest {
    UploadMediaRequest {
        part: Some(upload_media_request::Part::Chunk(bytes.to_vec())),
    }
}

/// `bytes` in chunks of uneven sizes.
fn pieces(bytes: &[u8]) -> Vec<UploadMediaRequest> {
    let sizes = [1_000, 65_536, 70_001, 12_345, 40_000];
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        out.push(chunk(&bytes[at..at + n]));
        at += n;
        i += 1;
    }
    out
}

/// A whole upload: the header, then the audio in uneven chunks.
fn upload_of(id: &str, content_type: &str, sha256: &str, bytes: &[u8]) -> Vec<UploadMediaRequest> {
    let mut out = vec![header(id, content_type, sha256)];
    out.extend(pieces(bytes));
    out
}

async fn upload(
    records: &mut Interactions,
    kind: Kind,
    messages: Vec<UploadMediaRequest>,
) -> Result<Interaction, Status> {
    let interaction = match kind {
        Kind::Recording => {
            records
                .upload_interaction_recording(tokio_stream::iter(messages))
                .await?
                .into_inner()
                .interaction
        }
        Kind::Voicemail => {
            let messages: Vec<compliance_guard::pb::UploadInteractionVoicemailRequest> =
                messages.iter().map(same_fields).collect();
            records
                .upload_interaction_voicemail(tokio_stream::iter(messages))
                .await?
                .into_inner()
                .interaction
        }
    };
    Ok(interaction.unwrap())
}

/// Uploads `audio` of `kind` with no checksum given, which must succeed,
/// and returns the stored audio's description.
async fn stored(
    records: &mut Interactions,
    kind: Kind,
    id: &str,
    content_type: &str,
    audio: &[u8],
) -> compliance_guard::pb::InteractionMedia {
    let i = upload(records, kind, upload_of(id, content_type, "", audio))
        .await
        .unwrap();
    match kind {
        Kind::Recording => i.recording,
        Kind::Voicemail => i.voicemail,
    }
    .unwrap()
}

/// What a download stream delivered.
#[derive(Debug, Default)]
struct Got {
    /// The first message, if it was a header.
    header: Option<DownloadMediaHeader>,
    /// Links, wherever they came.
    links: Vec<MediaLink>,
    /// The chunks, concatenated.
    bytes: Vec<u8>,
    /// How many messages arrived.
    messages: usize,
    /// A header that came after the first message (must not happen).
    late_headers: usize,
    /// The error that ended the stream, if one did.
    error: Option<Status>,
}

fn request(id: &str, disposition: &str, return_url: bool) -> DownloadMediaRequest {
    DownloadMediaRequest {
        person_id: P.into(),
        interaction_id: id.into(),
        disposition: disposition.into(),
        return_url,
    }
}

/// Calls the download and collects its stream until it ends or fails; an
/// error before the stream starts is returned as is.
async fn download(
    records: &mut Interactions,
    kind: Kind,
    req: DownloadMediaRequest,
) -> Result<Got, Status> {
    use download_media_response::Part;
    let mut recording = None;
    let mut voicemail = None;
    match kind {
        Kind::Recording => {
            recording = Some(
                records
                    .download_interaction_recording(req)
                    .await?
                    .into_inner(),
            );
        }
        Kind::Voicemail => {
            let req: compliance_guard::pb::DownloadInteractionVoicemailRequest = same_fields(&req);
            voicemail = Some(
                records
                    .download_interaction_voicemail(req)
                    .await?
                    .into_inner(),
            );
        }
    }
    let mut got = Got::default();
    loop {
        let next = match (&mut recording, &mut voicemail) {
            (Some(s), _) => s.message().await,
            (_, Some(s)) => s
                .message()
                .await
                .map(|m| m.map(|m| same_fields::<_, download_media_response_message>(&m))),
            (None, None) => unreachable!("one of the two streams is open"),
        };
        match next {
            Ok(Some(m)) => {
                match m.part {
                    Some(Part::Header(h)) if got.messages == 0 => got.header = Some(h),
                    Some(Part::Header(_)) => got.late_headers += 1,
                    Some(Part::Chunk(c)) => got.bytes.extend_from_slice(&c),
                    Some(Part::Link(l)) => got.links.push(l),
                    None => {}
                }
                got.messages += 1;
            }
            Ok(None) => break,
            Err(e) => {
                got.error = Some(e);
                break;
            }
        }
    }
    Ok(got)
}

/// Downloads by stream and asserts a whole, clean delivery: a header, then
/// chunks. Returns the header and the bytes.
async fn fetch(records: &mut Interactions, kind: Kind, id: &str) -> (DownloadMediaHeader, Vec<u8>) {
    let got = download(records, kind, request(id, "", false))
        .await
        .unwrap();
    assert!(got.error.is_none(), "{:?}", got.error);
    assert!(got.links.is_empty());
    assert_eq!(got.late_headers, 0);
    assert!(got.messages >= 2, "a header and at least one chunk");
    (got.header.expect("a header first"), got.bytes)
}

fn voice() -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        status_details: Some("voiceRangNoPickup".into()),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..Interaction::default()
    }
}

fn text() -> Interaction {
    Interaction {
        channel: "text".into(),
        direction: "outbound".into(),
        status: "inProgress".into(),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..Interaction::default()
    }
}

async fn create(records: &mut Interactions, i: Interaction) -> Interaction {
    crate::support::server::create_in(records, P, i).await
}

async fn get(records: &mut Interactions, id: &str) -> Interaction {
    records
        .get_interaction(GetInteractionRequest {
            interaction_id: id.into(),
            person_id: P.into(),
            searchable: false,
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap()
}

/// The fields a BadRequest status names.
fn fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Asserts INVALID_ARGUMENT naming `field` (in the details and the text).
fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(status), [field], "{status:?}");
    assert!(status.message().contains(field), "{}", status.message());
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A server on `dir/data` with the harness's keys and `media`.
async fn start(dir: &Path, media: MediaConfig) -> TestServer {
    options()
        .data_dir(dir.join("data"))
        .sync()
        .media(media)
        .serving()
        .await
}

/// A server on `dir/data` with a media listener; returns the listener's
/// address.
async fn start_with_links(dir: &Path, link_ttl: Duration) -> (TestServer, SocketAddr) {
    let server = options()
        .data_dir(dir.join("data"))
        .sync()
        .media(MediaConfig {
            link_ttl,
            ..MediaConfig::default()
        })
        .media_links()
        .serving()
        .await;
    let addr = server.media.unwrap();
    (server, addr)
}

/// An HTTP answer read off the wire.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its close.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    range: Option<&str>,
) -> Answer {
    use std::fmt::Write as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(range) = range {
        write!(req, "Range: {range}\r\n").unwrap();
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the end of the headers");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// The link a `return_url` download answers: exactly one message, a link.
async fn link(records: &mut Interactions, kind: Kind, id: &str, disposition: &str) -> MediaLink {
    let got = download(records, kind, request(id, disposition, true))
        .await
        .unwrap();
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.messages, 1, "one message");
    assert!(got.header.is_none() && got.bytes.is_empty());
    assert_eq!(got.links.len(), 1);
    got.links.into_iter().next().unwrap()
}

/// The path and query of `url` on `addr`.
pub(crate) fn path_of(url: &str, addr: SocketAddr) -> String {
    url.strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("{url} is not on {addr}"))
        .to_owned()
}

fn media_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("data").join("media")
}

/// Asserts what uploads stored: `media/tmp` empty, and `media/` holding
/// exactly the files named by `keys` (besides `tmp` and the link key).
fn assert_stored(dir: &Path, keys: &[&str]) {
    let tmp: Vec<_> = std::fs::read_dir(media_dir(dir).join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "media/tmp holds {tmp:?}");
    let stored: BTreeSet<String> = std::fs::read_dir(media_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "tmp" && n != "link-key")
        .collect();
    let expected: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(stored, expected);
}

// ---- round trips ------------------------------------------------------------

#[tokio::test]
async fn a_recording_and_a_voicemail_round_trip_by_stream_and_stay_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let rec = audio(AUDIO_LEN, 1);
    let vm = audio(AUDIO_LEN - 5_000, 2);
    let rec_sha = sha_hex(&rec);
    let vm_sha = sha_hex(&vm);
    assert_ne!(rec_sha, vm_sha);

    let before = now_secs();
    let after_rec = upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", &rec_sha, &rec),
    )
    .await
    .unwrap();
    let m = after_rec.recording.clone().expect("a recording");
    assert_eq!(m.content_type, "audio/mpeg");
    assert_eq!(m.size_bytes, rec.len() as u64);
    assert_eq!(m.sha256, rec_sha);
    assert_eq!(m.uploaded_by, "pipeline");
    assert!(!m.storage_key.is_empty());
    let at = m.uploaded_at.expect("uploaded_at").seconds;
    assert!(at >= before - 1 && at <= now_secs() + 1, "{at}");
    assert!(after_rec.voicemail.is_none());
    assert_eq!(get(&mut records, &call.id).await.recording, Some(m.clone()));

    let (h, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
    assert_eq!(h.media, Some(m.clone()));
    assert_eq!(h.disposition, "attachment");
    assert_eq!(h.file_name, format!("{}-recording.mp3", call.id));
    assert_eq!(bytes.len(), rec.len());
    assert!(bytes == rec, "the recording's bytes differ");

    // The voicemail has no SHA-256 given: the server computes it.
    let after_vm = upload(
        &mut records,
        Kind::Voicemail,
        upload_of(&call.id, "audio/wav", "", &vm),
    )
    .await
    .unwrap();
    let v = after_vm.voicemail.clone().expect("a voicemail");
    assert_eq!(v.content_type, "audio/wav");
    assert_eq!(v.size_bytes, vm.len() as u64);
    assert_eq!(v.sha256, vm_sha);
    assert_eq!(v.uploaded_by, "pipeline");
    assert_ne!(v.storage_key, m.storage_key);
    assert_eq!(after_vm.recording, Some(m.clone()), "the recording is kept");
    let both = get(&mut records, &call.id).await;
    assert_eq!(both.recording, Some(m.clone()));
    assert_eq!(both.voicemail, Some(v.clone()));

    let (h, bytes) = fetch(&mut records, Kind::Voicemail, &call.id).await;
    assert_eq!(h.media, Some(v.clone()));
    assert_eq!(h.disposition, "attachment");
    assert_eq!(h.file_name, format!("{}-voicemail.wav", call.id));
    assert!(bytes == vm, "the voicemail's bytes differ");
    let (_, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
    assert!(bytes == rec, "the recording is still its own");

    // Inline is echoed in the header.
    let got = download(
        &mut records,
        Kind::Recording,
        request(&call.id, "inline", false),
    )
    .await
    .unwrap();
    assert_eq!(got.header.unwrap().disposition, "inline");
    assert_stored(dir.path(), &[&m.storage_key, &v.storage_key]);
    server.stop().await.unwrap();
}

// ---- refusals -----------------------------------------------------------------

#[tokio::test]
async fn refused_uploads_store_nothing_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        MediaConfig {
            max_bytes: 100_000,
            ..MediaConfig::default()
        },
    )
    .await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let small = audio(90_000, 3);
    let big = audio(AUDIO_LEN, 4);
    let small_sha = sha_hex(&small);

    let no_recording = |i: &Interaction| i.recording.is_none() && i.voicemail.is_none();

    // The first message is a chunk.
    let mut messages = pieces(&small);
    messages.push(header(&call.id, "audio/mpeg", ""));
    let e = upload(&mut records, Kind::Recording, messages)
        .await
        .unwrap_err();
    assert_invalid(&e, "header");
    assert!(e.message().contains("first message"), "{}", e.message());
    assert!(no_recording(&get(&mut records, &call.id).await));

    // Content types that are not allowed.
    for bad in ["video/mp4", "audio/MPEG"] {
        let e = upload(
            &mut records,
            Kind::Recording,
            upload_of(&call.id, bad, "", &small),
        )
        .await
        .unwrap_err();
        assert_invalid(&e, "contentType");
        assert!(e.message().contains(bad), "{}", e.message());
        assert!(no_recording(&get(&mut records, &call.id).await), "{bad}");
    }

    // A SHA-256 that is not the audio's.
    let other_sha = sha_hex(b"something else");
    let e = upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", &other_sha, &small),
    )
    .await
    .unwrap_err();
    assert_invalid(&e, "sha256");
    assert!(e.message().contains(&other_sha), "{}", e.message());
    assert!(e.message().contains(&small_sha), "{}", e.message());
    assert!(no_recording(&get(&mut records, &call.id).await));

    // A header and no audio.
    let e = upload(
        &mut records,
        Kind::Recording,
        vec![header(&call.id, "audio/mpeg", "")],
    )
    .await
    .unwrap_err();
    assert_invalid(&e, "chunk");
    assert!(e.message().contains("no audio"), "{}", e.message());
    assert!(no_recording(&get(&mut records, &call.id).await));

    // Above the size bound.
    let e = upload(
        &mut records,
        Kind::Voicemail,
        upload_of(&call.id, "audio/wav", "", &big),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("100000 bytes"), "{}", e.message());
    assert!(no_recording(&get(&mut records, &call.id).await));

    // A text interaction holds no audio.
    let sms = create(&mut records, text()).await;
    let e = upload(
        &mut records,
        Kind::Recording,
        upload_of(&sms.id, "audio/mpeg", "", &small),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("only voice"), "{}", e.message());
    assert!(no_recording(&get(&mut records, &sms.id).await));

    // An unknown interaction.
    let e = upload(
        &mut records,
        Kind::Recording,
        upload_of("ext-no-such-call", "audio/mpeg", "", &small),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // One recording is stored; a second is refused and the first kept.
    let first = upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", &small_sha, &small),
    )
    .await
    .unwrap()
    .recording
    .unwrap();
    let e = upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", "", &audio(50_000, 5)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(
        e.message().contains("already has a recording"),
        "{}",
        e.message()
    );
    assert_eq!(
        get(&mut records, &call.id).await.recording,
        Some(first.clone())
    );
    let (_, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
    assert!(bytes == small);

    assert_stored(dir.path(), &[&first.storage_key]);
    server.stop().await.unwrap();
}

// ---- links --------------------------------------------------------------------

#[tokio::test]
async fn a_signed_link_serves_the_audio_with_headers_ranges_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(15 * 60);
    let (server, media) = start_with_links(dir.path(), ttl).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let rec = audio(AUDIO_LEN, 6);
    let size = rec.len();
    upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", &sha_hex(&rec), &rec),
    )
    .await
    .unwrap();
    let vm = audio(30_000, 7);
    stored(&mut records, Kind::Voicemail, &call.id, "audio/wav", &vm).await;

    let before = now_secs();
    let l = link(&mut records, Kind::Recording, &call.id, "").await;
    let prefix = format!("http://{media}/media/{}/recording?", call.id);
    assert!(l.url.starts_with(&prefix), "{}", l.url);
    let expires = l.expires_at.expect("expires_at").seconds;
    let ttl_secs = i64::try_from(ttl.as_secs()).unwrap();
    assert!(
        expires >= before + ttl_secs - 2 && expires <= now_secs() + ttl_secs + 2,
        "{expires}"
    );
    let path = path_of(&l.url, media);

    let got = http(media, "GET", &path, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.body == rec, "the body differs from the audio");
    assert_eq!(got.header("content-type"), Some("audio/mpeg"));
    assert_eq!(
        got.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(
        got.header("content-disposition"),
        Some(format!("attachment; filename=\"{}-recording.mp3\"", call.id).as_str())
    );

    let inline = link(&mut records, Kind::Recording, &call.id, "inline").await;
    let got = http(media, "GET", &path_of(&inline.url, media), None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        got.header("content-disposition"),
        Some(format!("inline; filename=\"{}-recording.mp3\"", call.id).as_str())
    );
    assert!(got.body == rec);

    let got = http(media, "HEAD", &path, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("audio/mpeg"));
    assert_eq!(
        got.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert!(got.header("content-disposition").is_some());
    assert!(got.body.is_empty(), "HEAD has no body");

    let got = http(media, "GET", &path, Some("bytes=10-19")).await;
    assert_eq!(got.status, 206, "{}", got.text());
    assert_eq!(
        got.header("content-range"),
        Some(format!("bytes 10-19/{size}").as_str())
    );
    assert_eq!(got.header("content-length"), Some("10"));
    assert_eq!(got.body, rec[10..20]);

    let got = http(media, "GET", &path, Some(&format!("bytes={size}-"))).await;
    assert_eq!(got.status, 416, "{}", got.text());
    assert_eq!(
        got.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );

    // A signature with one hex digit changed.
    let mut forged = path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let got = http(media, "GET", &forged, None).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert!(got.text().contains("not valid"), "{}", got.text());

    // A later expiry.
    let later = path.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    assert_ne!(later, path);
    let got = http(media, "GET", &later, None).await;
    assert_eq!(got.status, 403, "{}", got.text());

    // The recording's signature on the voicemail's path.
    let swapped = path.replace("/recording?", "/voicemail?");
    assert_ne!(swapped, path);
    let got = http(media, "GET", &swapped, None).await;
    assert_eq!(got.status, 403, "{}", got.text());

    // The voicemail's own link serves the voicemail.
    let vl = link(&mut records, Kind::Voicemail, &call.id, "").await;
    let got = http(media, "GET", &path_of(&vl.url, media), None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type"), Some("audio/wav"));
    assert!(got.body == vm);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_link_past_its_expiry_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let rec = audio(AUDIO_LEN, 8);
    let Linked {
        server,
        media,
        path,
        ..
    } = linked_recording(dir.path(), Duration::from_secs(1), &rec).await;
    // Served until it expires (the expiry is a whole second), then 410.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let gone = loop {
        let got = http(media, "GET", &path, None).await;
        match got.status {
            200 => assert!(got.body == rec),
            410 => break got,
            other => panic!("status {other}: {}", got.text()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(gone.text().contains("expired"), "{}", gone.text());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_link_without_the_media_listener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    upload(
        &mut records,
        Kind::Recording,
        upload_of(&call.id, "audio/mpeg", "", &audio(AUDIO_LEN, 9)),
    )
    .await
    .unwrap();
    let e = download(&mut records, Kind::Recording, request(&call.id, "", true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("--media-listen"), "{}", e.message());
    server.stop().await.unwrap();
}

// ---- deletion and retention -------------------------------------------------

async fn delete(records: &mut Interactions, id: &str) {
    records
        .delete_interaction(DeleteInteractionRequest {
            person_id: P.into(),
            interaction_id: id.into(),
        })
        .await
        .unwrap();
}

/// Waits until the sweep has finished `n` passes in all; fails after a
/// minute (only a sweep that never runs takes that long).
async fn sweep_passes(passes: &AtomicU64, n: u64) {
    let limit = tokio::time::Instant::now() + Duration::from_secs(60);
    while passes.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < limit,
            "the sweep finished {} passes, not {n}",
            passes.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a whole pass of the sweep has run after this moment: the
/// second pass to finish from now (the first may have begun before).
async fn a_whole_sweep(passes: &AtomicU64) {
    let now = passes.load(Ordering::SeqCst);
    sweep_passes(passes, now + 2).await;
}

/// Starts a server with links and the given retention (sweeping every
/// 100 ms), uploads a recording to a new external call, takes a link,
/// deletes the call, and checks the audio is unreachable. Returns the
/// server, the stored file's path, and the sweep's count of passes.
async fn upload_link_delete(
    dir: &Path,
    retention: Duration,
) -> (TestServer, std::path::PathBuf, Arc<AtomicU64>) {
    let passes = Arc::new(AtomicU64::new(0));
    let server = options()
        .data_dir(dir.join("data"))
        .sync()
        .media(MediaConfig {
            retention,
            sweep_every: Duration::from_millis(100),
            sweep_passes: Some(Arc::clone(&passes)),
            ..MediaConfig::default()
        })
        .media_links()
        .serving()
        .await;
    let media = server.media.unwrap();
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    assert_eq!(call.is_external, Some(true), "an external call");
    let rec = audio(AUDIO_LEN, 10);
    let m = stored(&mut records, Kind::Recording, &call.id, "audio/mpeg", &rec).await;
    let file = media_dir(dir).join(&m.storage_key);
    assert!(file.exists());
    let l = link(&mut records, Kind::Recording, &call.id, "").await;
    let path = path_of(&l.url, media);
    assert_eq!(http(media, "GET", &path, None).await.status, 200);

    delete(&mut records, &call.id).await;
    let e = download(&mut records, Kind::Recording, request(&call.id, "", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("deleted"), "{}", e.message());
    let got = http(media, "GET", &path, None).await;
    assert_eq!(got.status, 404, "{}", got.text());
    assert!(got.text().contains("deleted"), "{}", got.text());
    (server, file, passes)
}

#[tokio::test]
async fn a_deleted_interaction_audio_is_unreachable_and_purged_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file, passes) = upload_link_delete(dir.path(), Duration::ZERO).await;
    a_whole_sweep(&passes).await;
    assert!(!file.exists(), "a whole sweep left {}", file.display());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_deleted_interaction_audio_is_kept_on_disk_during_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (server, file, passes) =
        upload_link_delete(dir.path(), Duration::from_secs(30 * 24 * 3600)).await;
    a_whole_sweep(&passes).await;
    assert!(file.exists(), "purged before its retention");
    server.stop().await.unwrap();
}

// ---- scope ----------------------------------------------------------------------

#[tokio::test]
async fn a_sensitive_interaction_audio_needs_the_sensitive_right() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut pipeline = server.interactions().await;
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let secret = create(
        &mut auditor,
        Interaction {
            sensitive: Some(true),
            ..voice()
        },
    )
    .await;
    only_the_right_key_reaches_the_audio(&mut pipeline, &mut auditor, &secret.id, "auditor", 11)
        .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn another_company_key_does_not_find_the_audio() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut acme = server.interactions_as(ACME_KEY).await;
    let mut globex = server.interactions_as(GLOBEX_KEY).await;
    let call = create(&mut acme, voice()).await;
    assert_eq!(call.company_id.as_deref(), Some("acme"));
    only_the_right_key_reaches_the_audio(&mut globex, &mut acme, &call.id, "acme-pipeline", 12)
        .await;
    server.stop().await.unwrap();
}

/// `denied` finds neither upload nor download of interaction `id`'s
/// recording (NOT_FOUND, as for an unknown id); `allowed` (named
/// `allowed_name`) uploads it and reads it back whole.
async fn only_the_right_key_reaches_the_audio(
    denied: &mut Interactions,
    allowed: &mut Interactions,
    id: &str,
    allowed_name: &str,
    seed: u32,
) {
    let rec = audio(AUDIO_LEN, seed);
    let e = upload(
        denied,
        Kind::Recording,
        upload_of(id, "audio/mpeg", "", &rec),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let m = stored(allowed, Kind::Recording, id, "audio/mpeg", &rec).await;
    assert_eq!(m.uploaded_by, allowed_name);
    let e = download(denied, Kind::Recording, request(id, "", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let (h, bytes) = fetch(allowed, Kind::Recording, id).await;
    assert_eq!(h.media, Some(m));
    assert!(bytes == rec);
}

// ---- list filters -----------------------------------------------------------------

#[tokio::test]
async fn has_recording_and_has_voicemail_filter_voice_interactions_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let with_rec = create(&mut records, voice()).await;
    let with_vm = create(&mut records, voice()).await;
    let neither = create(&mut records, voice()).await;
    let sms = create(&mut records, text()).await;
    upload(
        &mut records,
        Kind::Recording,
        upload_of(&with_rec.id, "audio/mpeg", "", &audio(AUDIO_LEN, 13)),
    )
    .await
    .unwrap();
    upload(
        &mut records,
        Kind::Voicemail,
        upload_of(&with_vm.id, "audio/wav", "", &audio(AUDIO_LEN, 14)),
    )
    .await
    .unwrap();

    let list = |channel: &[&str], has_recording: Option<bool>, has_voicemail: Option<bool>| {
        ListInteractionsRequest {
            channel: channel.iter().map(|c| (*c).to_owned()).collect(),
            has_recording,
            has_voicemail,
            ..ListInteractionsRequest::default()
        }
    };
    let ids = |r: tonic::Response<compliance_guard::pb::ListInteractionsResponse>| {
        r.into_inner()
            .data
            .into_iter()
            .map(|i| i.id)
            .collect::<BTreeSet<_>>()
    };
    let set = |v: &[&Interaction]| v.iter().map(|i| i.id.clone()).collect::<BTreeSet<_>>();
    let cases = [
        (list(&["voice"], Some(true), None), set(&[&with_rec])),
        (
            list(&["voice"], Some(false), None),
            set(&[&with_vm, &neither]),
        ),
        (list(&["voice"], None, Some(true)), set(&[&with_vm])),
        (
            list(&["voice"], None, Some(false)),
            set(&[&with_rec, &neither]),
        ),
        (list(&["voice"], Some(false), Some(false)), set(&[&neither])),
        (
            list(&["voice"], None, None),
            set(&[&with_rec, &with_vm, &neither]),
        ),
    ];
    for (q, expected) in cases {
        let shown = format!("{q:?}");
        let got = ids(records.list_interactions(q).await.unwrap());
        assert_eq!(got, expected, "{shown}");
        assert!(!got.contains(&sms.id));
    }

    for (q, field) in [
        (list(&[], Some(true), None), "hasRecording"),
        (list(&["voice", "text"], Some(true), None), "hasRecording"),
        (list(&["text"], Some(false), None), "hasRecording"),
        (list(&[], None, Some(true)), "hasVoicemail"),
        (list(&["voice", "text"], None, Some(false)), "hasVoicemail"),
    ] {
        let e = records.list_interactions(q).await.unwrap_err();
        assert_invalid(&e, field);
    }
    server.stop().await.unwrap();
}

// ---- durability and damage ----------------------------------------------------------

/// The audio's description (storage key, size, checksum) is part of the
/// interaction's record, the bytes are files beside it: both are found
/// after restarts from the journal, and from the store once the journal
/// is materialized into it.
#[tokio::test]
async fn the_audio_survives_restarts_through_the_journal_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // The store does not follow the journal: the restarts below read it
    // from the journal first.
    let server = options()
        .data_dir(dir.path().join("data"))
        .sync()
        .unfollowed()
        .serving()
        .await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let rec = audio(AUDIO_LEN, 15);
    let vm = audio(AUDIO_LEN / 2, 16);
    let m = stored(&mut records, Kind::Recording, &call.id, "audio/mpeg", &rec).await;
    let v = stored(&mut records, Kind::Voicemail, &call.id, "audio/wav", &vm).await;
    drop(records);
    server.stop().await.unwrap();

    // Replayed from the journal (the store empty, at generation 0); then
    // the same, and materialized into the store at start (compact_after 0),
    // the journal rolled over to an empty generation 1; then from the
    // store alone.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = options()
            .data_dir(dir.path().join("data"))
            .sync()
            .unfollowed()
            .compact_after(compact_after)
            .serving()
            .await;
        let mut records = server.interactions().await;
        let i = get(&mut records, &call.id).await;
        assert_eq!(i.recording, Some(m.clone()), "{compact_after}");
        assert_eq!(i.voicemail, Some(v.clone()), "{compact_after}");
        let (h, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
        assert_eq!(h.media, Some(m.clone()));
        assert!(bytes == rec, "{compact_after}");
        let (_, bytes) = fetch(&mut records, Kind::Voicemail, &call.id).await;
        assert!(bytes == vm, "{compact_after}");
        drop(records);
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the
    // person and the call, the journal after it empty.
    assert_read_from_the_store(&data, 2);
    assert_stored(dir.path(), &[&m.storage_key, &v.storage_key]);
}

#[tokio::test]
async fn damaged_stored_audio_ends_the_download_in_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let rec = audio(AUDIO_LEN, 17);
    let m = stored(&mut records, Kind::Recording, &call.id, "audio/mpeg", &rec).await;
    let file = media_dir(dir.path()).join(&m.storage_key);
    let mut stored = std::fs::read(&file).unwrap();
    assert!(stored == rec);
    stored[100_000] ^= 0x5a;
    std::fs::write(&file, &stored).unwrap();

    let got = download(&mut records, Kind::Recording, request(&call.id, "", false))
        .await
        .unwrap();
    assert!(got.header.is_some(), "the header comes first");
    let e = got.error.expect("the stream ends in an error");
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    assert!(e.message().contains("damaged"), "{}", e.message());
    assert!(e.message().contains(&m.storage_key), "{}", e.message());
    server.stop().await.unwrap();
}

// ---- updates ------------------------------------------------------------------------

#[tokio::test]
async fn updates_and_upserts_keep_the_audio_and_the_body_cannot_set_it() {
    use compliance_guard::pb::{InteractionMedia, UpdateInteractionRequest};
    use prost_types::FieldMask;
    // No statusDetails, which would tie the call to voice by itself.
    let plain = || Interaction {
        status_details: None,
        ..voice()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let forged = InteractionMedia {
        content_type: "audio/mpeg".into(),
        size_bytes: 3,
        sha256: sha_hex(b"abc"),
        uploaded_at: None,
        uploaded_by: "someone".into(),
        storage_key: "../../etc/passwd".into(),
    };
    let call = create(
        &mut records,
        Interaction {
            external_id: Some("media-call-1".into()),
            recording: Some(forged.clone()),
            ..plain()
        },
    )
    .await;
    assert_eq!(call.recording, None, "the body's recording is ignored");

    // Uploaded and downloaded through the ext- alias; names use our id.
    let rec = audio(AUDIO_LEN, 18);
    let m = stored(
        &mut records,
        Kind::Recording,
        "ext-media-call-1",
        "audio/mpeg",
        &rec,
    )
    .await;
    let (h, bytes) = fetch(&mut records, Kind::Recording, "ext-media-call-1").await;
    assert_eq!(h.file_name, format!("{}-recording.mp3", call.id));
    assert!(bytes == rec);

    let update = |i: Interaction, path: &str| UpdateInteractionRequest {
        person_id: P.into(),
        interaction_id: call.id.clone(),
        interaction: Some(i),
        update_mask: Some(FieldMask {
            paths: vec![path.into()],
        }),
    };
    let updated = records
        .update_interaction(update(
            Interaction {
                loan_id: Some("LN-7".into()),
                recording: None,
                ..Interaction::default()
            },
            "loanId",
        ))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(updated.loan_id.as_deref(), Some("LN-7"));
    assert_eq!(updated.recording, Some(m.clone()), "an update keeps it");

    let e = records
        .update_interaction(update(
            Interaction {
                channel: "text".into(),
                ..Interaction::default()
            },
            "channel",
        ))
        .await
        .unwrap_err();
    assert_invalid(&e, "channel");
    assert!(e.message().contains("recording"), "{}", e.message());

    // The same externalId again: the stored interaction, with its audio.
    let again = create(
        &mut records,
        Interaction {
            external_id: Some("media-call-1".into()),
            recording: Some(forged),
            ..plain()
        },
    )
    .await;
    assert_eq!(again.id, call.id);
    assert_eq!(again.recording, Some(m.clone()));
    let i = get(&mut records, &call.id).await;
    assert_eq!(i.recording, Some(m));
    assert_eq!(i.channel, "voice");
    let (_, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
    assert!(bytes == rec);
    server.stop().await.unwrap();
}

// ---- the sweep after a restart --------------------------------------------------------

/// Sets a file's modification time `age` into the past.
fn age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[tokio::test]
async fn after_a_restart_the_sweep_keeps_named_audio_and_removes_only_old_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MediaConfig::default()).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let rec = audio(AUDIO_LEN, 19);
    let m = stored(&mut records, Kind::Recording, &call.id, "audio/mpeg", &rec).await;
    drop(records);
    server.stop().await.unwrap();

    // The uploaded file and an orphan, both two hours old (past the
    // orphans' grace of an hour), and a young orphan.
    let two_hours = Duration::from_secs(2 * 3600);
    let named = media_dir(dir.path()).join(&m.storage_key);
    age(&named, two_hours);
    let old_orphan =
        media_dir(dir.path()).join(format!("{}.voicemail.{}", call.id, "0".repeat(32)));
    std::fs::write(&old_orphan, b"left over").unwrap();
    age(&old_orphan, two_hours);
    let young_orphan =
        media_dir(dir.path()).join(format!("{}.voicemail.{}", call.id, "1".repeat(32)));
    std::fs::write(&young_orphan, b"being written").unwrap();

    let passes = Arc::new(AtomicU64::new(0));
    let server = start(
        dir.path(),
        MediaConfig {
            sweep_every: Duration::from_millis(100),
            sweep_passes: Some(Arc::clone(&passes)),
            ..MediaConfig::default()
        },
    )
    .await;
    // The files were there before the start: the first pass saw them all.
    sweep_passes(&passes, 1).await;
    assert!(!old_orphan.exists(), "the sweep left the old orphan");
    assert!(
        named.exists(),
        "the sweep removed audio an interaction names"
    );
    assert!(young_orphan.exists(), "the sweep removed a young file");
    let mut records = server.interactions().await;
    let (_, bytes) = fetch(&mut records, Kind::Recording, &call.id).await;
    assert!(bytes == rec);
    drop(records);
    server.stop().await.unwrap();
}

/// A server with a link listener (links living `ttl`), one voice
/// interaction with `rec` as its recording, and a link to it.
struct Linked {
    server: TestServer,
    media: SocketAddr,
    stored: compliance_guard::pb::InteractionMedia,
    /// The link's path and query, to GET from `media`.
    path: String,
}

async fn linked_recording(dir: &Path, ttl: Duration, rec: &[u8]) -> Linked {
    let (server, media) = start_with_links(dir, ttl).await;
    let mut records = server.interactions().await;
    let call = create(&mut records, voice()).await;
    let stored = stored(&mut records, Kind::Recording, &call.id, "audio/mpeg", rec).await;
    let l = link(&mut records, Kind::Recording, &call.id, "").await;
    let path = path_of(&l.url, media);
    Linked {
        server,
        media,
        stored,
        path,
    }
}

// ---- regressions found in review -------------------------------------------

/// A link's response carries a Content-Length, so damage cannot be
/// reported after its headers: the whole audio is checked first, and
/// damaged audio is a 500, never a 200 with the damaged bytes.
#[tokio::test]
async fn a_link_to_damaged_audio_is_refused_before_any_byte() {
    let dir = tempfile::tempdir().unwrap();
    let Linked {
        server,
        media,
        stored: m,
        path,
    } = linked_recording(dir.path(), Duration::from_secs(600), &audio(AUDIO_LEN, 6)).await;
    assert_eq!(http(media, "GET", &path, None).await.status, 200);
    // Same size, one byte changed.
    let file = media_dir(dir.path()).join(&m.storage_key);
    let mut stored = std::fs::read(&file).unwrap();
    stored[100_000] ^= 0x5a;
    std::fs::write(&file, &stored).unwrap();
    let got = http(media, "GET", &path, None).await;
    assert_eq!(got.status, 500, "{}", got.text());
    assert!(got.text().contains("is damaged"), "{}", got.text());
    assert!(
        got.text().contains("restore it from a backup"),
        "{}",
        got.text()
    );
    // Gone from disk while its interaction lives: not stored.
    std::fs::remove_file(&file).unwrap();
    let got = http(media, "GET", &path, None).await;
    assert_eq!(got.status, 404, "{}", got.text());
    assert!(got.text().contains("is not stored"), "{}", got.text());
    server.stop().await.unwrap();
}

/// Range edges: a zero-length suffix is unsatisfiable (RFC 9110); numbers
/// with a sign are not a byte range (the whole audio is served).
#[tokio::test]
async fn range_edges_follow_rfc_9110() {
    let dir = tempfile::tempdir().unwrap();
    let Linked {
        server,
        media,
        path: p,
        ..
    } = linked_recording(dir.path(), Duration::from_secs(600), &audio(1000, 6)).await;
    for (range, status, len, content_range) in [
        ("bytes=0-0", 206, 1, Some("bytes 0-0/1000")),
        ("bytes=-0", 416, 0, Some("bytes */1000")),
        ("bytes=-5000", 206, 1000, Some("bytes 0-999/1000")),
        ("bytes=999-", 206, 1, Some("bytes 999-999/1000")),
        ("bytes=1000-", 416, 0, Some("bytes */1000")),
        ("bytes=+5-+6", 200, 1000, None),
        ("bytes=5-3", 200, 1000, None),
    ] {
        let got = http(media, "GET", &p, Some(range)).await;
        assert_eq!(got.status, status, "{range}");
        assert_eq!(got.header("content-range"), content_range, "{range}");
        if status != 416 {
            assert_eq!(got.body.len(), len, "{range}");
        }
    }
    server.stop().await.unwrap();
}

/// Ids an import kept, whatever their length or characters, get a short
/// storage key, a stream download and a link that works.
#[tokio::test]
async fn imported_ids_of_any_shape_store_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let ids = [
        format!("IT-AAAA-{}", "X".repeat(170)),
        "IT-AAAA-7 legacy/é?#%".to_owned(),
        "IT-AAAA-0001.2".to_owned(),
    ];
    let mut lines = String::new();
    for id in &ids {
        lines.push_str(&format!(
            "{{\"id\":\"{id}\",\"personId\":\"{P}\",\"channel\":\"voice\",\"direction\":\"outbound\",\"status\":\"attempted\",\"startedAt\":\"2020-03-02T14:00:00Z\"}}\n"
        ));
    }
    let report = compliance_guard::ops::import(
        &dir.path().join("data"),
        lines.as_bytes(),
        "importer",
        None,
        compliance_guard::journal::Durability::Sync,
        chrono::Utc::now(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.imported, 3, "{report:?}");
    let (server, media) = start_with_links(dir.path(), Duration::from_secs(600)).await;
    let mut records = server.interactions().await;
    for (i, id) in ids.iter().enumerate() {
        let rec = audio(5000, i as u32);
        let m = stored(&mut records, Kind::Recording, id, "audio/mpeg", &rec).await;
        assert!(m.storage_key.len() <= 120, "{}", m.storage_key);
        let (_, bytes) = fetch(&mut records, Kind::Recording, id).await;
        assert!(bytes == rec, "{id}: stream download");
        let l = link(&mut records, Kind::Recording, id, "").await;
        let got = http(media, "GET", &path_of(&l.url, media), None).await;
        assert_eq!(got.status, 200, "{id}: {}", got.text());
        assert!(got.body == rec, "{id}: link download");
    }
    server.stop().await.unwrap();
}

/// An upload whose last chunk came long before its stream closed is not
/// taken for an orphan between its rename and its journal record: the
/// hour of grace starts when the file goes into place.
#[test]
fn a_finished_upload_is_young_whatever_its_last_write() {
    use compliance_guard::media::{MediaStore, sweep};
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path(), 1 << 20).unwrap();
    let key = "IT-1.recording.00";
    let mut w = store.begin(key).unwrap();
    w.write(b"audio").unwrap();
    let tmp = dir.path().join("media/tmp").join(key);
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let (k, _, _) = w.finish(None).unwrap();
    let swept = sweep(
        &store,
        chrono::Utc::now(),
        Duration::from_secs(86400),
        |_| Ok(None),
    )
    .unwrap();
    assert_eq!(swept.orphans, 0);
    assert!(dir.path().join("media").join(&k).exists());
}

/// Storage keys in a backup are never followed out of the data directory.
#[test]
fn a_restore_refuses_a_storage_key_that_is_a_path() {
    use compliance_guard::pb::InteractionMedia;
    use compliance_guard::pb::journal::{Record, record::Op};
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("b.cgj");
    let payload = b"not audio, an arbitrary file".to_vec();
    let rec = Interaction {
        id: "IT-0000-00000001".into(),
        person_id: P.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        created_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        recording: Some(InteractionMedia {
            content_type: "audio/mpeg".into(),
            size_bytes: payload.len() as u64,
            sha256: sha_hex(&payload),
            uploaded_at: Some(Timestamp {
                seconds: T0,
                nanos: 0,
            }),
            uploaded_by: "x".into(),
            storage_key: "../../escaped".into(),
        }),
        ..Interaction::default()
    };
    let mut w = compliance_guard::journal::FileWriter::create(&backup, 1).unwrap();
    w.push(&Record {
        op: Some(Op::Interaction(rec)),
    })
    .unwrap();
    w.finish().unwrap();
    std::fs::create_dir_all(root.path().join("b.cgj.media")).unwrap();
    std::fs::create_dir_all(root.path().join("sub")).unwrap();
    let data = root.path().join("sub/data");
    let e = compliance_guard::ops::restore(&backup, &data).unwrap_err();
    assert!(e.to_string().contains("plain file name"), "{e}");
    assert!(!root.path().join("escaped").exists());
    assert!(!root.path().join("sub/escaped").exists());
}
