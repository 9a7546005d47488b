//! Input that must be refused (issue 12), end to end over the real gRPC
//! server on 127.0.0.1:0: each refusal is INVALID_ARGUMENT naming the field,
//! each beside a control case that is accepted. Long values are echoed
//! cut short; malformed protobuf is INVALID_ARGUMENT, not INTERNAL; times
//! in the future where only the past makes sense, and times outside what
//! proto3 JSON carries, are refused at the API and still load from disk.

use bytes::{Buf, BufMut, Bytes};
use compliance_guard::pb::{
    AddRestrictionRequest, CheckRequest, CreateInteractionRequest, GetInteractionRequest,
    Interaction, Restriction,
};
use prost::Message;
use prost_types::Timestamp;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::grpc::{PIPELINE_KEY, ready_server};

/// A borrower named by our id.
const P: &str = "BO-AAAA-0001";

/// Every BadRequest violation of a status, as (field, description).
fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// A voice call made at `started` (Unix seconds) with `status`.
fn call(status: &str, started: Option<Timestamp>) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: status.into(),
        started_at: started,
        ..Interaction::default()
    }
}

fn create(person: &str, i: Interaction) -> CreateInteractionRequest {
    CreateInteractionRequest {
        person_id: person.into(),
        interaction: Some(i),
        searchable: false,
    }
}

// ---- long values are echoed cut short -------------------------------------

#[tokio::test]
async fn a_one_mib_person_id_is_refused_with_a_short_message_and_short_details() {
    let server = ready_server().await;
    let mut records = server.records().await;
    let long = format!("BO-{}", "A".repeat(1 << 20));
    let err = records
        .create_interaction(create(&long, call("succeeded", at(now_seconds() - 60))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message().len());
    let shown = format!("BO-{}…", "A".repeat(61));
    assert_eq!(
        err.message(),
        format!(
            "`personId` value `{shown}` is not an id; allowed: `ext-` and an external id, an id like `BO-ABCD-1234`, or a number"
        )
    );
    let v = violations(&err);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, "personId");
    assert_eq!(v[0].1, err.message());
    // The same long id on a read: NOT_FOUND is not what it is (the id is
    // malformed), and the answer is as short.
    let err = records
        .get_interaction(GetInteractionRequest {
            person_id: String::new(),
            interaction_id: format!("ext-{}", "x".repeat(1 << 20)),
            searchable: false,
        })
        .await
        .unwrap_err();
    assert!(err.message().chars().count() < 300, "{}", err.message().len());
    assert!(err.message().contains("…"), "{}", err.message());
    // Control: a short, valid id is accepted and echoed nowhere.
    let ok = records
        .create_interaction(create(P, call("succeeded", at(now_seconds() - 60))))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.created);
    assert_eq!(ok.interaction.unwrap().person_id, P);
}

#[tokio::test]
async fn a_long_restriction_kind_is_echoed_cut_at_64_characters() {
    let server = ready_server().await;
    let mut guard = server.guard().await;
    let kind = "k".repeat(100_000);
    let err = guard
        .add_restriction(AddRestrictionRequest {
            person_id: P.into(),
            restriction: Some(Restriction {
                kind: kind.clone(),
                source: "letter".into(),
                received_at: at(now_seconds() - 60),
                ..Restriction::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = violations(&err);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, "kind");
    assert!(
        v[0].1.contains(&format!("`{}…`", "k".repeat(64))),
        "{}",
        v[0].1
    );
    assert!(v[0].1.chars().count() < 400, "{}", v[0].1.len());
}

// ---- malformed protobuf ---------------------------------------------------

/// A codec that sends and receives message bodies as raw bytes, so that a
/// test can put on the wire what no generated client would.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

/// The encoder and decoder of [`RawCodec`].
#[derive(Debug, Clone, Default)]
pub struct Raw;

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Calls `path` (`/package.Service/Method`) over HTTP/2 with `body` as the
/// one request message and `key`, and reads every answer message: the same
/// call for unary, client-streaming and server-streaming methods.
pub async fn raw_call(
    channel: Channel,
    path: &str,
    key: &str,
    body: Bytes,
) -> Result<Vec<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let mut req = tonic::Request::new(tokio_stream::once(body));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req.set_timeout(std::time::Duration::from_secs(20));
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    let mut stream = grpc.streaming(req, path, RawCodec).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.push(m);
    }
    Ok(out)
}

const CHECK: &str = "/complianceguard.v1.ComplianceGuard/Check";

#[tokio::test]
async fn a_string_field_that_is_not_utf8_is_invalid_argument_not_internal() {
    let server = ready_server().await;
    let channel = server.channel().await;
    // Field 1 (person_id), length-delimited, two bytes that are not UTF-8.
    let bad = Bytes::from_static(&[0x0a, 0x02, 0xff, 0xfe]);
    let err = raw_call(channel.clone(), CHECK, PIPELINE_KEY, bad)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("CheckRequest.person_id"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("not UTF-8"), "{}", err.message());
    // Field 1 with wire type 7, which does not exist.
    let err = raw_call(channel.clone(), CHECK, PIPELINE_KEY, Bytes::from_static(&[0x0f]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("wire type"), "{}", err.message());
    // The same on a client stream (an upload's first message).
    let err = raw_call(
        channel.clone(),
        "/complianceguard.v1.Interactions/UploadInteractionRecording",
        PIPELINE_KEY,
        Bytes::from_static(&[0x0a, 0x02, 0x12, 0x01]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // Control: the same bytes path with a well-formed message is answered.
    let good = CheckRequest {
        person_id: P.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        // Mon 2020-03-02 09:00 in New York.
        at: at(1_583_157_600),
        jurisdictions: vec!["US-NY".into()],
        ..CheckRequest::default()
    }
    .encode_to_vec();
    let answers = raw_call(channel, CHECK, PIPELINE_KEY, good.into())
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    let answer = compliance_guard::pb::CheckResponse::decode(answers[0].clone()).unwrap();
    assert!(answer.allowed, "{answer:?}");
}
