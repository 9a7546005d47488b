//! Input that must be refused (issue 12), end to end over the real gRPC
//! server on 127.0.0.1:0: each refusal is INVALID_ARGUMENT naming the field,
//! each beside a control case that is accepted. Long values are echoed
//! cut short; malformed protobuf is INVALID_ARGUMENT, not INTERNAL; times
//! in the future where only the past makes sense, and times outside what
//! proto3 JSON carries, are refused at the API and still load from disk.

use compliance_guard::pb::{
    AddRestrictionRequest, CreateInteractionRequest, GetInteractionRequest, Interaction,
    Restriction,
};
use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::grpc::ready_server;

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
