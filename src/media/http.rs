//! The optional HTTP listener that serves signed media links
//! (`--media-listen`): `GET` and `HEAD /media/{interactionId}/{kind}` with
//! the link's query.
//!
//! | answer | when |
//! |---|---|
//! | `200` | the whole audio, checked against its size and SHA-256 before the headers go out |
//! | `206` | one byte range (`Range: bytes=a-b`), for players that seek, served as stored |
//! | `400` | a link of the wrong shape |
//! | `403` | a signature that does not match: forged, altered, or made for content replaced since |
//! | `404` | the interaction was deleted, or its audio purged |
//! | `405` | a method other than GET and HEAD |
//! | `410` | a genuine link past its expiry |
//! | `416` | a range outside the audio |
//! | `500` | the stored audio failed its check |
//!
//! Responses carry `Content-Disposition` as the link says (inline or
//! attachment, with a file name), `Cache-Control: private, no-store` (a
//! link is a credential; shared caches must not keep the audio) and
//! `X-Content-Type-Options: nosniff`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;

use super::{LinkError, LinkSigner, MediaCheck, MediaStore, file_name};
use crate::guard::Guard;

type Body = BoxBody<Bytes, std::io::Error>;

/// Connections served at once; more wait to be accepted. Each holds at
/// most a few chunks in memory, so this bounds what slow or idle clients
/// can hold.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the listener needs: the links' key, the files, and the guard that
/// says what each link's interaction holds now.
#[derive(Debug)]
pub struct LinkServer {
    /// Checks signatures.
    pub signer: Arc<LinkSigner>,
    /// The audio files.
    pub store: Arc<MediaStore>,
    /// The interactions.
    pub guard: Arc<Guard>,
}

/// Serves links on `listener` until `shutdown` completes; connections
/// still open then get `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    server: Arc<LinkServer>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: std::time::Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "media listener: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let server = Arc::clone(&server);
                let service = hyper::service::service_fn(move |req| {
                    let server = Arc::clone(&server);
                    async move { Ok::<_, Infallible>(handle(&server, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "media listener: connection ended with an error");
                    }
                });
            }
        }
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("media downloads still open after the grace period were cut");
    }
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The message may quote the request's path: never let a browser read
    // it as anything but text.
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A 500 for a failure of ours (a task, a file handle), not the audio's.
fn internal(e: &dyn std::fmt::Display) -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error: {e}"),
    )
}

fn count(status: StatusCode) {
    metrics::counter!(
        "compliance_guard_media_link_requests_total",
        "status" => status.as_str().to_owned()
    )
    .increment(1);
}

fn not_stored(target: &super::LinkTarget) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "the {} of interaction `{}` is not stored",
            target.kind, target.interaction_id
        ),
    )
}

async fn handle(server: &LinkServer, req: Request<Incoming>) -> Response<Body> {
    let response = answer(server, &req).await;
    count(response.status());
    response
}

/// One byte range of `size` bytes from `Range: bytes=...`: `Ok(None)` for
/// no header or one that is not a single byte range (then the whole audio
/// is served, as RFC 9110 allows), `Err(())` for a range outside it.
fn range(req: &Request<Incoming>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    // Digits only: `u64::from_str` would also take a `+`.
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = match (number(a), number(b)) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Some(s), None) if b.is_empty() => (s, size.saturating_sub(1)),
        // A suffix of zero bytes selects nothing (RFC 9110 14.1.2).
        (None, Some(0)) if a.is_empty() => return Err(()),
        (None, Some(n)) if a.is_empty() => (size.saturating_sub(n), size.saturating_sub(1)),
        _ => return Ok(None),
    };
    if size == 0 || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn answer(server: &LinkServer, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method `{}` is not allowed; allowed: GET, HEAD",
                req.method()
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    if !path.starts_with("/media/") {
        return text(
            StatusCode::NOT_FOUND,
            format!("no such page `{}`", crate::model::echo(path)),
        );
    }
    let (target, signature) = match LinkSigner::parse(path, req.uri().query().unwrap_or_default()) {
        Ok(parsed) => parsed,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let now = Utc::now();
    // On a cluster node, a link is read as any read is: after catching up
    // with the stream, so that a link another node just gave out is found
    // and audio just deleted elsewhere is not served.
    if let Err(e) = server.guard.read_barrier().await {
        return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let found = server
        .guard
        .media_for_link(&target.interaction_id, target.kind);
    let key = found.as_ref().map(|(m, _)| m.storage_key.as_str());
    match server.signer.verify(&target, &signature, key, now) {
        Ok(()) => {}
        Err(e @ LinkError::Expired(_)) => return text(StatusCode::GONE, e.to_string()),
        Err(e) => return text(StatusCode::FORBIDDEN, e.to_string()),
    }
    let Some((media, deleted_at)) = found else {
        return text(StatusCode::FORBIDDEN, LinkError::BadSignature.to_string());
    };
    if deleted_at.is_some() {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "interaction `{}` is deleted; its {} is no longer available",
                target.interaction_id, target.kind
            ),
        );
    }
    let Some(path) = server.store.path(&media.storage_key) else {
        return not_stored(&target);
    };
    // Opened once: a cluster node's copy trimmed after this is still read
    // whole through the handle.
    let mut file = match server.store.open_local(&media, &path).await {
        Ok(file) => file,
        Err(super::MediaError::Io { cause, .. })
            if cause.kind() == std::io::ErrorKind::NotFound =>
        {
            return not_stored(&target);
        }
        Err(e @ super::MediaError::Shared(_)) => {
            return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e) => {
            metrics::counter!("compliance_guard_media_damaged_total").increment(1);
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the stored {} of interaction `{}` could not be read ({e})",
                    target.kind, target.interaction_id
                ),
            );
        }
    };
    let size = media.size_bytes;
    let span = match range(req, size) {
        Ok(span) => span,
        Err(()) => {
            let mut r = text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside the {size} bytes of audio"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    if req.method() == Method::GET && span.is_none() {
        // A response with a Content-Length cannot report damage once its
        // headers are out (the client would take what arrived as whole),
        // so the whole audio is checked first. A range is served as
        // stored: a part cannot be checked against the whole's checksum.
        let copy = match file.try_clone().await {
            Ok(copy) => copy.into_std().await,
            Err(e) => {
                return internal(&e);
            }
        };
        let checked = media.clone();
        let verified = tokio::task::spawn_blocking(move || {
            let mut reader = super::MediaReader::of_file(copy, &checked);
            while reader.next_chunk()?.is_some() {}
            Ok::<(), super::MediaError>(())
        })
        .await;
        match verified {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, interaction = %target.interaction_id, "media link: the stored audio failed its check");
                metrics::counter!("compliance_guard_media_damaged_total").increment(1);
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the stored {} of interaction `{}` is damaged ({e}); restore it from a backup",
                        target.kind, target.interaction_id
                    ),
                );
            }
            Err(e) => {
                return internal(&e);
            }
        }
    }
    // The check read the file through a handle sharing this one's offset.
    if let Err(e) = file.seek(std::io::SeekFrom::Start(0)).await {
        return internal(&e);
    }
    let name = file_name(&target.interaction_id, target.kind, &media.content_type);
    let length = span.map_or(size, |(a, b)| b - a + 1);
    let body: Body = if req.method() == Method::HEAD {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        stream_body(file, span.map_or(0, |(a, _)| a), length, &media)
    };
    let mut r = Response::new(body);
    *r.status_mut() = if span.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = r.headers_mut();
    // The content type was checked at upload (audio/ and a token), and the
    // file name is made of safe characters, so these values are valid.
    let headers = [
        (header::CONTENT_TYPE, media.content_type.clone()),
        (header::CONTENT_LENGTH, length.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("{}; filename=\"{name}\"", target.disposition.as_str()),
        ),
        (header::CACHE_CONTROL, "private, no-store".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::ETAG, format!("\"{}\"", media.sha256)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    if let Some((a, b)) = span
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// `length` bytes of the audio from `start` as a streamed body, read with
/// async file I/O in a task of its own: a slow client holds its connection
/// and a few chunks, never a thread. The whole audio is counted and hashed
/// as it goes, a range only counted; a file that ends early or runs long
/// ends the body in an error, which cuts the connection.
fn stream_body(
    mut file: tokio::fs::File,
    start: u64,
    length: u64,
    media: &crate::model::Media,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let mut check = (start == 0 && length == media.size_bytes).then(|| MediaCheck::new(media));
    tokio::spawn(async move {
        if start > 0
            && let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await
        {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let mut left = length;
        let mut buf = vec![0u8; super::CHUNK_BYTES];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = match file.read(&mut buf[..want]).await {
                Ok(0) => {
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the stored audio is shorter than recorded",
                        )))
                        .await;
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if let Some(c) = check.as_mut()
                && let Err(e) = c.update(&buf[..n])
            {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
            left -= n as u64;
            if tx
                .send(Ok(Frame::data(Bytes::copy_from_slice(&buf[..n]))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}
