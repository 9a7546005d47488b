//! Authentication on every RPC the server offers, enumerated from the
//! descriptors rather than listed by hand: our two services, health, and
//! reflection v1 and v1alpha.
//!
//! Each method is called in its own shape (unary, client-streaming,
//! server-streaming or bidi) with an empty message, which is a valid
//! encoding of any protobuf message, through a codec that sends and
//! receives raw bytes. A table names the right each method needs; a
//! method the descriptors have and the table lacks (a new RPC), or the
//! other way round, fails the test by name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::support::consts::PIPELINE_KEY;
use crate::support::server::options;

/// What a method asks of the caller's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Right {
    /// Nothing: no key needed (health).
    None,
    /// A valid key.
    Key,
    /// A valid key with the agent right.
    Agent,
}

const GUARD: &str = "complianceguard.v1.ComplianceGuardService";
const RECORDS: &str = "complianceguard.v1.InteractionsService";
const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Every method the server offers (service, method), with the right it
/// needs.
const TABLE: &[(&str, &str, Right)] = &[
    (GUARD, "Check", Right::Key),
    (GUARD, "CheckBaseline", Right::Key),
    (GUARD, "DeclareDebt", Right::Key),
    (GUARD, "LinkPerson", Right::Key),
    (GUARD, "ListReservations", Right::Key),
    (GUARD, "CancelReservation", Right::Key),
    (GUARD, "ListRules", Right::Key),
    (GUARD, "AddRestriction", Right::Key),
    (GUARD, "EndRestriction", Right::Key),
    (GUARD, "ListRestrictions", Right::Key),
    (GUARD, "ExplainRestrictions", Right::Key),
    (RECORDS, "CreateInteraction", Right::Key),
    (RECORDS, "GetInteraction", Right::Key),
    (RECORDS, "UpdateInteraction", Right::Key),
    (RECORDS, "DeleteInteraction", Right::Key),
    (RECORDS, "ListInteractions", Right::Key),
    (RECORDS, "GetPreviousInteractions", Right::Key),
    (RECORDS, "GetInteractionCases", Right::Key),
    (RECORDS, "GetInteractionConvo", Right::Key),
    (RECORDS, "JoinInteractionConvo", Right::Agent),
    (RECORDS, "CloseInteractionConvo", Right::Key),
    (RECORDS, "LeaveInteractionConvo", Right::Key),
    (RECORDS, "UploadInteractionRecording", Right::Key),
    (RECORDS, "UploadInteractionVoicemail", Right::Key),
    (RECORDS, "DownloadInteractionRecording", Right::Key),
    (RECORDS, "DownloadInteractionVoicemail", Right::Key),
    (HEALTH, "Check", Right::None),
    (HEALTH, "Watch", Right::None),
    (REFLECTION_V1, "ServerReflectionInfo", Right::Key),
    (REFLECTION_V1ALPHA, "ServerReflectionInfo", Right::Key),
];

/// A key with no right beyond being valid.
const PLAIN_KEY: &str = PIPELINE_KEY;
/// A key with every right (sensitive and agent).
const ALL_RIGHTS_KEY: &str = "all-rights-key-0123456789abcdef012345678";
/// A key no one was given.
const WRONG_KEY: &str = "not-a-real-key-not-a-real-key-0000000000";

/// A method as the descriptors give it.
#[derive(Debug, Clone)]
struct Method {
    client_streaming: bool,
    server_streaming: bool,
}

/// Every method of every service the server offers, by full name
/// (`/package.Service/Method`).
fn described_methods() -> BTreeMap<String, Method> {
    let sets: [&[u8]; 4] = [
        compliance_guard::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = BTreeMap::new();
    for set in sets {
        let set = prost_types::FileDescriptorSet::decode(set).unwrap();
        for file in set.file {
            for service in &file.service {
                let service_name = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                for m in &service.method {
                    methods.insert(
                        format!("/{service_name}/{}", m.name()),
                        Method {
                            client_streaming: m.client_streaming(),
                            server_streaming: m.server_streaming(),
                        },
                    );
                }
            }
        }
    }
    methods
}

/// Sends bytes as they are and receives them as they come: an empty
/// message for every request type, whatever the response type.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
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

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A request carrying `key` as a bearer token, if given.
fn request<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(key) = key {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    req
}

/// Calls `name` in its shape with one empty message and `key`; returns
/// the status: the call's error, the first streamed message's error, or
/// OK (an answer, or a first streamed message).
async fn call(channel: &Channel, name: &str, m: &Method, key: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = name.parse().unwrap();
    let one = || tokio_stream::iter([Bytes::new()]);
    let outcome = match (m.client_streaming, m.server_streaming) {
        (false, false) => grpc
            .unary(request(Bytes::new(), key), path, Raw)
            .await
            .map(drop),
        (true, false) => grpc
            .client_streaming(request(one(), key), path, Raw)
            .await
            .map(drop),
        (false, true) => match grpc
            .server_streaming(request(Bytes::new(), key), path, Raw)
            .await
        {
            Ok(stream) => stream.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
        (true, true) => match grpc.streaming(request(one(), key), path, Raw).await {
            Ok(stream) => stream.into_inner().message().await.map(drop),
            Err(status) => Err(status),
        },
    };
    outcome.err().unwrap_or_else(|| tonic::Status::ok(""))
}

/// Every method, with no key, a wrong key, a valid key without the right
/// the method needs, and a key with every right: UNAUTHENTICATED without
/// a valid key everywhere but health; PERMISSION_DENIED exactly where the
/// table names a right the key lacks; with a key that has what the method
/// needs, OK or INVALID_ARGUMENT (the empty message as a request).
#[tokio::test]
async fn every_rpc_asks_for_a_key_and_the_right_it_needs() {
    let described = described_methods();
    let table: BTreeMap<String, Right> = TABLE
        .iter()
        .map(|(service, method, right)| (format!("/{service}/{method}"), *right))
        .collect();
    assert_eq!(table.len(), TABLE.len(), "a method listed twice");
    let unlisted: Vec<&String> = described
        .keys()
        .filter(|n| !table.contains_key(*n))
        .collect();
    let gone: Vec<&String> = table
        .keys()
        .filter(|n| !described.contains_key(n.as_str()))
        .collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "methods in the descriptors but not in TABLE (list each with the right it needs): {unlisted:?}; in TABLE but in no descriptor: {gone:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "keys:\n  - name: pipeline\n    key: {PLAIN_KEY}\n  - name: everything\n    key: {ALL_RIGHTS_KEY}\n    sensitive: true\n    agent: true\n"
    );
    let server = options()
        .data_dir(dir.path().join("data"))
        .keys(&keys)
        .serving()
        .await;
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Reflection advertises no service the table does not know.
    let mut advertised = reflected_services(&channel).await;
    advertised.retain(|s| !TABLE.iter().any(|(service, ..)| service == s));
    assert!(
        advertised.is_empty(),
        "services advertised by reflection with no method in TABLE: {advertised:?}"
    );

    let mut wrong = Vec::new();
    for (name, method) in &described {
        let right = table[name];
        let mut got = Vec::new();
        for (who, key) in [
            ("no key", None),
            ("a wrong key", Some(WRONG_KEY)),
            ("a key without rights", Some(PLAIN_KEY)),
            ("a key with every right", Some(ALL_RIGHTS_KEY)),
        ] {
            let status =
                tokio::time::timeout(Duration::from_secs(10), call(&channel, name, method, key))
                    .await
                    .unwrap_or_else(|_| panic!("{name} with {who}: no answer in 10 s"));
            got.push((who, status));
        }
        for (who, status) in &got {
            let (code, message) = (status.code(), status.message());
            let fine = match (right, *who) {
                (Right::None, _) => code == Code::Ok,
                (_, "no key") => code == Code::Unauthenticated && message.starts_with("no API key"),
                (_, "a wrong key") => {
                    code == Code::Unauthenticated && message == "the API key is not valid"
                }
                (Right::Agent, "a key without rights") => code == Code::PermissionDenied,
                // Past the key and the right: answered, or the empty
                // message refused as a request (never UNAUTHENTICATED,
                // PERMISSION_DENIED, UNIMPLEMENTED or INTERNAL).
                _ => matches!(code, Code::Ok | Code::InvalidArgument),
            };
            if !fine {
                wrong.push(format!(
                    "{name} (needs {right:?}) with {who}: {code:?} {message:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected statuses:\n{}",
        wrong.join("\n")
    );
    drop(channel);
    server.stop().await.unwrap();
}

/// The services reflection v1 and v1alpha list.
async fn reflected_services(channel: &Channel) -> BTreeSet<String> {
    use tonic_reflection::pb::{v1, v1alpha};
    let mut names = BTreeSet::new();
    let ask = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut stream = client
        .server_reflection_info(request(tokio_stream::iter([ask]), Some(PLAIN_KEY)))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("reflection v1 did not list services")
    };
    names.extend(list.service.into_iter().map(|s| s.name));
    let ask = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut stream = client
        .server_reflection_info(request(tokio_stream::iter([ask]), Some(PLAIN_KEY)))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("reflection v1alpha did not list services")
    };
    names.extend(list.service.into_iter().map(|s| s.name));
    names
}
