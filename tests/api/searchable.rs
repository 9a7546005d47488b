//! End-to-end tests of the searchable form (upstream's `searchable=true`
//! on create and get): the interaction flattened into one document for a
//! search index, in `searchable_document`, field for field.

use compliance_guard::pb::{CreateInteractionRequest, GetInteractionRequest, Interaction};
use compliance_guard::wire::{json_of_struct, struct_of, value_of};
use prost_types::Timestamp;
use serde_json::json;

use crate::support::consts::{P, T0};
use crate::support::server::ready_server;

fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// An interaction with every kind of field set: vocabularies, times (one
/// with fractional seconds), loans and cases, flags, contact, and the
/// JSON fields nested two deep.
fn full() -> Interaction {
    Interaction {
        external_id: Some("crm-call-77".into()),
        channel: "voice".into(),
        direction: "outbound".into(),
        theme: Some("opsCollDebt".into()),
        status: "attempted".into(),
        status_details: Some("voiceSpokeWithFirstParty".into()),
        started_at: at(T0, 0),
        ended_at: at(T0 + 95, 250_000_000),
        loan_id: Some("LN-1".into()),
        loan_ids: vec!["LN-1".into(), "LN-2".into()],
        case_ids: vec!["CS-AAAA-0001".into()],
        is_transactional: Some(false),
        contact_external_id: Some("crm-contact-9".into()),
        contact: Some(compliance_guard::pb::Contact {
            kind: "mobilePhone".into(),
            value: "+12125550100".into(),
            name: "Pat".into(),
        }),
        meta_data: Some(struct_of(&json!({
            "campaign": {"name": "spring", "wave": 2},
            "tags": ["a", "b"],
            "dropped": null
        }))),
        content: Some(value_of(
            &json!({"transcript": {"lines": 12}, "summary": "promised to pay"}),
        )),
        borrower: Some(value_of(&json!({"name": {"first": "Pat", "last": "Doe"}}))),
        ..Interaction::default()
    }
}

#[tokio::test]
async fn searchable_flattens_a_full_interaction_on_create_and_get() {
    let server = ready_server().await;
    let mut records = server.interactions().await;

    let created = records
        .create_interaction(CreateInteractionRequest {
            person_id: P.into(),
            interaction: Some(full()),
            searchable: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let stored = created.interaction.unwrap();
    let id = stored.id.clone();
    let person = stored.person_id.clone();
    let created_at = stored.created_at.unwrap();
    let created_at = chrono::DateTime::from_timestamp(created_at.seconds, created_at.nanos as u32)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let expected = json!({
        "id": id,
        "externalId": "crm-call-77",
        "personId": person,
        "channel": "voice",
        "direction": "outbound",
        "theme": "opsCollDebt",
        "status": "attempted",
        "statusDetails": "voiceSpokeWithFirstParty",
        "startedAt": "2020-03-02T14:00:00Z",
        "endedAt": "2020-03-02T14:01:35.250Z",
        "loanId": "LN-1",
        "loanIds": ["LN-1", "LN-2"],
        "caseIds": ["CS-AAAA-0001"],
        "isTransactional": false,
        "isExternal": true,
        "contactExternalId": "crm-contact-9",
        "contact.kind": "mobilePhone",
        "contact.value": "+12125550100",
        "contact.name": "Pat",
        "metaData.campaign.name": "spring",
        "metaData.campaign.wave": 2.0,
        "metaData.tags": ["a", "b"],
        "content.transcript.lines": 12.0,
        "content.summary": "promised to pay",
        "borrower.name.first": "Pat",
        "borrower.name.last": "Doe",
        "createdAt": created_at,
        "createdBy": "pipeline",
        // A voice interaction says whether it holds audio, as upstream's
        // list filters name it.
        "hasRecording": false,
        "hasVoicemail": false,
    });
    let doc = json_of_struct(&created.searchable_document.expect("a searchable document"));
    assert_eq!(doc, expected, "{doc:#}");

    // Get gives the same document; without the flag, none.
    let got = records
        .get_interaction(GetInteractionRequest {
            interaction_id: id.clone(),
            person_id: P.into(),
            searchable: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.interaction.as_ref(), Some(&stored));
    assert_eq!(json_of_struct(&got.searchable_document.unwrap()), expected);
    let plain = records
        .get_interaction(GetInteractionRequest {
            interaction_id: id,
            person_id: P.into(),
            searchable: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.searchable_document, None);

    // A string content is one field; a retried create is searchable too.
    let text = Interaction {
        external_id: Some("crm-text-1".into()),
        channel: "text".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        started_at: at(T0, 0),
        content: Some(value_of(&json!("see you"))),
        ..Interaction::default()
    };
    for created in [true, false] {
        let answer = records
            .create_interaction(CreateInteractionRequest {
                person_id: P.into(),
                interaction: Some(text.clone()),
                searchable: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.created, created);
        let doc = json_of_struct(&answer.searchable_document.unwrap());
        assert_eq!(doc["content"], json!("see you"));
        assert_eq!(doc["externalId"], json!("crm-text-1"));
        assert!(doc.get("contact.kind").is_none());
    }
    server.stop().await.unwrap();
}
