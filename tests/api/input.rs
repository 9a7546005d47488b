//! Input that must be refused (issue 12), end to end over the real gRPC
//! server on 127.0.0.1:0: each refusal is INVALID_ARGUMENT naming the field,
//! each beside a control case that is accepted. Long values are echoed
//! cut short; malformed protobuf is INVALID_ARGUMENT, not INTERNAL; times
//! in the future where only the past makes sense, and times outside what
//! proto3 JSON carries, are refused at the API and still load from disk.

use bytes::{Buf, BufMut, Bytes};
use compliance_guard::pb::{
    AddRestrictionRequest, CheckRequest, CreateInteractionRequest, EndRestrictionRequest,
    GetInteractionRequest, Interaction, Restriction,
};
use prost::Message;
use prost_types::Timestamp;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::consts::{MONDAY_10, P, PIPELINE_KEY};
use crate::support::server::ready_server;

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
    let mut records = server.interactions().await;
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
    assert!(
        err.message().chars().count() < 300,
        "{}",
        err.message().len()
    );
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
    let mut checks = server.checks().await;
    let kind = "k".repeat(100_000);
    let err = checks
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

const CHECK: &str = "/complianceguard.v1.ComplianceGuardService/Check";

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
    let err = raw_call(
        channel.clone(),
        CHECK,
        PIPELINE_KEY,
        Bytes::from_static(&[0x0f]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("wire type"), "{}", err.message());
    // The same on a client stream (an upload's first message).
    let err = raw_call(
        channel.clone(),
        "/complianceguard.v1.InteractionsService/UploadInteractionRecording",
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

// ---- times in the future where only the past makes sense -------------------

const YEAR: i64 = 365 * 86_400;

fn field_of(err: &Status) -> Vec<String> {
    violations(err).into_iter().map(|(f, _)| f).collect()
}

#[tokio::test]
async fn a_completed_interaction_starting_in_the_future_is_refused_on_create_and_update() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let now = now_seconds();
    for (status, article) in [("attempted", "an"), ("succeeded", "a"), ("failed", "a")] {
        let err = records
            .create_interaction(create(P, call(status, at(now + YEAR))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{status}: {err:?}");
        assert_eq!(field_of(&err), ["startedAt"], "{status}");
        let m = err.message();
        assert!(
            m.starts_with("`startedAt` value `")
                && m.contains(&format!(
                    "{article} `{status}` interaction has already started"
                ))
                && m.contains("allowed: at most 300 s after it (clock skew)"),
            "{m}"
        );
    }
    // Ten minutes ahead is past the skew too.
    let err = records
        .create_interaction(create(P, call("succeeded", at(now + 600))))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["startedAt"]);
    // Controls: within the skew, and a send still to come.
    for (status, started) in [
        ("succeeded", now + 60),
        ("scheduled", now + YEAR),
        ("inProgress", now + YEAR),
    ] {
        records
            .create_interaction(create(P, call(status, at(started))))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
    }
    // An update to a completed status of a record starting next year is
    // refused, and so is moving a completed one's start into the future.
    let coming = records
        .create_interaction(create(P, call("inProgress", at(now + YEAR))))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    let update =
        |interaction: Interaction, paths: &[&str]| compliance_guard::pb::UpdateInteractionRequest {
            person_id: P.into(),
            interaction_id: coming.id.clone(),
            interaction: Some(interaction),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        };
    let err = records
        .update_interaction(update(call("attempted", None), &["status"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), ["startedAt"]);
    // Control: the same update restating when it started.
    let done = records
        .update_interaction(update(
            call("attempted", at(now - 60)),
            &["status", "started_at"],
        ))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(done.status, "attempted");
    let err = records
        .update_interaction(update(call("attempted", at(now + YEAR)), &["startedAt"]))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["startedAt"]);
}

/// A retried create gets its first answer: the future-start check comes
/// after the externalId retry, as every other check of the record does.
#[tokio::test]
async fn a_retried_create_gets_its_first_answer_before_the_future_start_check() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let now = now_seconds();
    let mut first = call("scheduled", at(now + YEAR));
    first.external_id = Some("dialer-retry-1".into());
    let created = records
        .create_interaction(create(P, first.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let mut retry = first;
    retry.status = "succeeded".into();
    let again = records
        .create_interaction(create(P, retry.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.interaction.unwrap().status, "scheduled");
    // The control: the same record under a new externalId is refused.
    retry.external_id = Some("dialer-retry-2".into());
    let err = records
        .create_interaction(create(P, retry))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["startedAt"]);
}

/// The end of a restriction is an event like its receipt: from 1900 on.
#[tokio::test]
async fn a_restriction_received_in_1950_can_be_ended_in_1950() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    const JAN_1950: i64 = -631_152_000;
    let r = checks
        .add_restriction(AddRestrictionRequest {
            person_id: P.into(),
            restriction: Some(Restriction {
                kind: "ceaseCommunication".into(),
                source: "letter".into(),
                received_at: at(JAN_1950),
                ..Restriction::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .restriction
        .unwrap();
    let end = |seconds: i64| EndRestrictionRequest {
        person_id: P.into(),
        restriction_id: r.id.clone(),
        ended_at: at(seconds),
        end_reason: String::new(),
    };
    let err = checks.end_restriction(end(BEFORE_1900)).await.unwrap_err();
    assert_eq!(field_of(&err), ["endedAt"]);
    let ended = checks
        .end_restriction(end(JAN_1950 + 86_400 * 150))
        .await
        .unwrap()
        .into_inner()
        .restriction
        .unwrap();
    assert_eq!(ended.ended_at, at(JAN_1950 + 86_400 * 150));
}

#[tokio::test]
async fn a_restriction_received_in_the_future_is_refused() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let now = now_seconds();
    let add = |received: i64| AddRestrictionRequest {
        person_id: P.into(),
        restriction: Some(Restriction {
            kind: "ceaseCommunication".into(),
            source: "letter".into(),
            received_at: at(received),
            ..Restriction::default()
        }),
    };
    let err = checks.add_restriction(add(now + YEAR)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), ["receivedAt"]);
    let m = err.message();
    assert!(
        m.starts_with("`receivedAt` value `")
            && m.contains("after the server's clock")
            && m.contains("allowed: at most 300 s after it (clock skew)")
            && m.ends_with("; leave `receivedAt` out for a restriction received now"),
        "{m}"
    );
    // Controls: within the skew, and yesterday.
    for received in [now + 60, now - 86_400] {
        let r = checks
            .add_restriction(add(received))
            .await
            .unwrap()
            .into_inner()
            .restriction
            .unwrap();
        assert_eq!(r.received_at, at(received));
    }
    // Left out, it is the server's now, and the restriction is in force.
    let mut left_out = add(now);
    left_out.restriction.as_mut().unwrap().received_at = None;
    let r = checks
        .add_restriction(left_out)
        .await
        .unwrap()
        .into_inner()
        .restriction
        .unwrap();
    let got = r.received_at.unwrap().seconds;
    assert!((now..=now_seconds()).contains(&got), "{got} not in {now}..");
    assert!(r.in_force);
}

// ---- times outside what the API can carry ----------------------------------

/// 0000-01-01T00:00:00Z, a year proto3 JSON cannot write.
const YEAR_ZERO: i64 = -62_167_219_200;
/// 1899-12-31T23:59:59Z.
const BEFORE_1900: i64 = -2_208_988_801;

#[tokio::test]
async fn times_outside_proto3_json_or_events_before_1900_are_refused_naming_the_field() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let err = records
        .create_interaction(create(P, call("succeeded", at(YEAR_ZERO))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "`startedAt` value `0000-01-01T00:00:00Z` is out of range; allowed: 1900-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
    );
    assert_eq!(field_of(&err), ["startedAt"]);
    let err = records
        .create_interaction(create(P, call("succeeded", at(BEFORE_1900))))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["startedAt"]);
    let mut ended = call("succeeded", at(now_seconds() - 60));
    ended.ended_at = Some(Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    });
    let err = records
        .create_interaction(create(P, ended))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "`endedAt` value `+10000-01-01T00:00:00Z` is out of range; allowed: 1900-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
    );
    let bad_nanos = call(
        "succeeded",
        Some(Timestamp {
            seconds: now_seconds() - 60,
            nanos: 1_000_000_000,
        }),
    );
    let err = records
        .create_interaction(create(P, bad_nanos))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["startedAt"]);
    assert!(
        err.message().contains("ns` is out of range"),
        "{}",
        err.message()
    );
    // A query time is not an event: 1850 is a fine bound, year 0 is not.
    let list = |after: i64| compliance_guard::pb::ListInteractionsRequest {
        person_id: P.into(),
        started_at_after: at(after),
        ..Default::default()
    };
    let err = records
        .list_interactions(list(YEAR_ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "`startedAtAfter` value `0000-01-01T00:00:00Z` is out of range; allowed: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
    );
    // Restrictions: receivedAt is an event; endsAt only has the hard bound.
    let mut checks = server.checks().await;
    let restriction = |received: i64, ends: Option<Timestamp>| AddRestrictionRequest {
        person_id: P.into(),
        restriction: Some(Restriction {
            kind: "priorConsentToCall".into(),
            source: "call".into(),
            received_at: at(received),
            ends_at: ends,
            ..Restriction::default()
        }),
    };
    let err = checks
        .add_restriction(restriction(BEFORE_1900, None))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["receivedAt"]);
    let err = checks
        .add_restriction(restriction(
            now_seconds() - 60,
            Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
        ))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), ["endsAt"]);
    // Controls: 1900-01-01 exactly is an event time; 1850 a query bound.
    let first = records
        .create_interaction(create(P, call("succeeded", at(BEFORE_1900 + 1))))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    let listed = records
        .list_interactions(list(-3_786_825_600))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].id, first.id);
    checks
        .add_restriction(restriction(BEFORE_1900 + 1, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn stored_records_outside_the_bounds_still_load_count_and_are_reported() {
    use compliance_guard::guard::Guard;
    use compliance_guard::index::IndexConfig;
    use compliance_guard::journal::Durability;
    use compliance_guard::model::InteractionInput;
    use compliance_guard::request::Caller;
    let dir = tempfile::tempdir().unwrap();
    let caller = Caller {
        name: "import".into(),
        sensitive: true,
        agent: false,
        company: None,
    };
    // Read back from the journal (the store not following it): every
    // record is loaded, whatever its time.
    let open = || {
        Guard::open_as(
            IndexConfig::default(),
            dir.path(),
            Durability::Sync,
            u64::MAX,
            compliance_guard::guard::Follow::Off,
            |_| {},
        )
        .unwrap()
        .0
    };
    let now = chrono::Utc::now();
    let placed = |ext: &str, started: &str| InteractionInput {
        external_id: Some(ext.into()),
        channel: Some("voice".into()),
        direction: Some("outbound".into()),
        status: Some("succeeded".into()),
        started_at: Some(started.into()),
        ..InteractionInput::default()
    };
    {
        let guard = open();
        // Through the library's import, which takes records as they are
        // (a history from before the bounds): year 0, 1850, next year, and
        // one of yesterday.
        let yesterday = (now - chrono::Duration::days(1)).to_rfc3339();
        for (ext, started) in [
            ("year-0", "0000-06-01T00:00:00Z"),
            ("y1850", "1850-01-01T00:00:00Z"),
            ("future", "2099-01-01T00:00:00Z"),
            ("ok", yesterday.as_str()),
        ] {
            let (_, created, commit) = guard
                .import(P, &placed(ext, started), &caller, now)
                .unwrap();
            assert!(created, "{ext}");
            commit.wait().await.unwrap();
        }
        assert_eq!(guard.out_of_range_records().unwrap(), 2);
    }
    // Start-up loads every one of them and reports the two out of range.
    let guard = open();
    assert_eq!(guard.len(), 4);
    assert_eq!(guard.out_of_range_records().unwrap(), 2);
    let old = guard.get(Some(P), "ext-year-0", &caller).unwrap();
    assert_eq!(old.started_at.to_rfc3339(), "0000-06-01T00:00:00+00:00");
    let future = guard.get(Some(P), "ext-future", &caller).unwrap();
    assert_eq!(future.started_at.to_rfc3339(), "2099-01-01T00:00:00+00:00");
}

// ---- agentOutcome voiceDisconnectedWhileQueuedOnHold -----------------------

const ON_HOLD: &str = "voiceDisconnectedWhileQueuedOnHold";

#[tokio::test]
async fn the_on_hold_outcome_of_the_reference_prose_is_accepted_and_filtered_on() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut i = call("attempted", at(now_seconds() - 3_600));
    i.agent_outcome = Some(ON_HOLD.into());
    let stored = records
        .create_interaction(create(P, i))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(stored.agent_outcome.as_deref(), Some(ON_HOLD));
    let listed = records
        .list_interactions(compliance_guard::pb::ListInteractionsRequest {
            person_id: P.into(),
            agent_outcome: vec![ON_HOLD.into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].id, stored.id);
    // Control: an outcome in neither the enum nor the prose is refused.
    let mut i = call("attempted", at(now_seconds() - 3_600));
    i.agent_outcome = Some("voiceHungUpOnHold".into());
    let err = records.create_interaction(create(P, i)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), ["agentOutcome"]);
}

/// What a call Check at [`MONDAY_10`] answers after seven calls in the six
/// hours before, each with `details` and `outcome`, for a borrower of its
/// own: whether it is allowed, and each violated rule with its count.
async fn after_seven_calls(
    records: &mut crate::support::server::Interactions,
    checks: &mut crate::support::server::Checks,
    person: &str,
    details: Option<&str>,
    outcome: Option<&str>,
) -> (bool, Vec<(String, u32)>) {
    for k in 1..=7 {
        let i = Interaction {
            status_details: details.map(str::to_owned),
            agent_outcome: outcome.map(str::to_owned),
            loan_id: Some("L1".into()),
            ..call("attempted", at(MONDAY_10 - k * 50 * 60))
        };
        records.create_interaction(create(person, i)).await.unwrap();
    }
    let answer = checks
        .check(crate::api::interactions::check_call(person, MONDAY_10))
        .await
        .unwrap()
        .into_inner();
    let violated = answer
        .violations
        .iter()
        .map(|v| (v.rule_id.clone(), v.count))
        .collect();
    (answer.allowed, violated)
}

#[tokio::test]
async fn the_on_hold_outcome_makes_no_count_more_permissive() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut checks = server.checks().await;
    // Beside each statusDetails (none, a call that rang, one that did not
    // connect), the outcome never allows what no outcome blocks. A caller
    // dropped while queued on hold was answered, so the call connected:
    // beside a busy line (the fields conflict) it counts, the strict way.
    for (n, details) in [None, Some("voiceRangNoPickup"), Some("voiceLineBusyNoRing")]
        .into_iter()
        .enumerate()
    {
        let with = after_seven_calls(
            &mut records,
            &mut checks,
            &format!("BO-HOLD-{n:04}"),
            details,
            Some(ON_HOLD),
        )
        .await;
        let without = after_seven_calls(
            &mut records,
            &mut checks,
            &format!("BO-NONE-{n:04}"),
            details,
            None,
        )
        .await;
        // Seven placed calls: the eighth is blocked by the weekly cap.
        assert!(!with.0, "{details:?}: {with:?}");
        assert!(
            with.1
                .contains(&("us-regf-7-calls-in-7-days".to_owned(), 7)),
            "{details:?}: {with:?}"
        );
        if details == Some("voiceLineBusyNoRing") {
            // Without the outcome, calls that never connected are not
            // placed calls.
            assert!(without.0, "{without:?}");
        } else {
            assert_eq!(with, without, "{details:?}");
        }
    }
}
