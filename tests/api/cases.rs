//! End-to-end tests of the cases an interaction is linked to (`caseIds`,
//! ours): linked on create and update, paged by `GetInteractionCases` as
//! upstream pages `GET /people/{personId}/interactions/{interactionId}/cases`,
//! the `caseIds` filter of `ListInteractions`, refusals with
//! google.rpc.BadRequest, and the links surviving a restart (journal and
//! store) and an import.

use compliance_guard::journal::Durability;
use compliance_guard::pb::{
    CreateInteractionRequest, GetInteractionCasesRequest, GetInteractionCasesResponse,
    GetInteractionRequest, Interaction, ListInteractionsRequest, UpdateInteractionRequest,
};
use prost_types::{FieldMask, Timestamp};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::ops::durability::{assert_read_from_the_store, assert_store_at};
use crate::support::consts::{AUDITOR_KEY, P, T0};
use crate::support::server::{Interactions, ready_server, start_on};

fn call(cases: &[&str]) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        case_ids: cases.iter().map(|c| (*c).to_owned()).collect(),
        ..Interaction::default()
    }
}

async fn create(records: &mut Interactions, i: Interaction) -> Result<Interaction, Status> {
    Ok(records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: P.into(),
            interaction: Some(i),
        })
        .await?
        .into_inner()
        .interaction
        .unwrap())
}

async fn update(
    records: &mut Interactions,
    id: &str,
    values: Interaction,
    paths: &[&str],
) -> Result<Interaction, Status> {
    Ok(records
        .update_interaction(UpdateInteractionRequest {
            person_id: P.into(),
            interaction_id: id.into(),
            interaction: Some(values),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
        .await?
        .into_inner()
        .interaction
        .unwrap())
}

async fn cases(
    records: &mut Interactions,
    id: &str,
    limit: u32,
    offset: u32,
    starting_after: &str,
    ending_before: &str,
) -> Result<GetInteractionCasesResponse, Status> {
    Ok(records
        .get_interaction_cases(GetInteractionCasesRequest {
            person_id: P.into(),
            interaction_id: id.into(),
            limit,
            starting_after: starting_after.into(),
            ending_before: ending_before.into(),
            offset,
        })
        .await?
        .into_inner())
}

/// The ids of a page, with total and count checked against each other.
fn ids(r: &GetInteractionCasesResponse) -> Vec<String> {
    assert_eq!(r.count as usize, r.data.len(), "{r:?}");
    r.data.iter().map(|c| c.id.clone()).collect()
}

async fn listed(records: &mut Interactions, case_ids: &[&str]) -> Result<Vec<String>, Status> {
    let r = records
        .list_interactions(ListInteractionsRequest {
            person_id: P.into(),
            case_ids: case_ids.iter().map(|c| (*c).to_owned()).collect(),
            ..ListInteractionsRequest::default()
        })
        .await?
        .into_inner();
    Ok(r.data.into_iter().map(|i| i.id).collect())
}

fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

/// `CS-0000-00nn`.
fn case(n: usize) -> String {
    format!("CS-0000-{n:04}")
}

#[tokio::test]
async fn cases_are_linked_on_create_relinked_and_cleared_on_update() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = create(&mut records, call(&["CS-AB12-34CD", "CS-0000-0001"]))
        .await
        .unwrap();
    assert_eq!(stored.case_ids, ["CS-AB12-34CD", "CS-0000-0001"]);
    let got = records
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: stored.id.clone(),
            person_id: P.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(got.case_ids, stored.case_ids);

    // An update that does not name caseIds keeps them.
    let u = update(
        &mut records,
        &stored.id,
        Interaction {
            status: "failed".into(),
            ..Interaction::default()
        },
        &["status"],
    )
    .await
    .unwrap();
    assert_eq!(u.case_ids, stored.case_ids);
    // Relinked, by either name of the field.
    for path in ["case_ids", "caseIds"] {
        let u = update(&mut records, &stored.id, call(&["CS-ZZZZ-9999"]), &[path])
            .await
            .unwrap();
        assert_eq!(u.case_ids, ["CS-ZZZZ-9999"], "{path}");
    }
    // Named in the mask and left unset: cleared.
    let u = update(
        &mut records,
        &stored.id,
        Interaction::default(),
        &["caseIds"],
    )
    .await
    .unwrap();
    assert!(u.case_ids.is_empty(), "{u:?}");
    let r = cases(&mut records, &stored.id, 0, 0, "", "").await.unwrap();
    assert_eq!((r.total, r.count), (0, 0));
}

#[tokio::test]
async fn bad_case_ids_are_refused_field_by_field() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = create(&mut records, call(&["CS-0000-0001"])).await.unwrap();
    for bad in [
        "cs-0000-0001",
        "CS-000-0001",
        "CS-0000-00001",
        "CS-0000_0001",
        "LN-0000-0001",
        "CS-abcd-0001",
        "",
    ] {
        let status = create(&mut records, call(&[bad])).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        let v = violations(&status);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "caseIds");
        assert!(
            v[0].1.contains(&format!("`{bad}`")) && v[0].1.contains("CS-XXXX-XXXX"),
            "{v:?}"
        );
        // Refused on update too, and nothing changed.
        let status = update(&mut records, &stored.id, call(&[bad]), &["caseIds"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert_eq!(violations(&status)[0].0, "caseIds");
        // And as a filter.
        let status = listed(&mut records, &["CS-0000-0001", bad])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert_eq!(violations(&status)[0].0, "caseIds");
    }
    // Each bad value is its own violation.
    let status = create(&mut records, call(&["x", "CS-0000-0002", "y"]))
        .await
        .unwrap_err();
    let v = violations(&status);
    assert_eq!(v.len(), 2, "{v:?}");
    // The same case twice is refused.
    let status = create(&mut records, call(&["CS-0000-0002", "CS-0000-0002"]))
        .await
        .unwrap_err();
    let v = violations(&status);
    assert_eq!(v[0].0, "caseIds");
    assert!(v[0].1.contains("more than once"), "{v:?}");
    // At most 100.
    let many: Vec<String> = (0..101).map(case).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let status = create(&mut records, call(&refs)).await.unwrap_err();
    let v = violations(&status);
    assert_eq!(v[0].0, "caseIds");
    assert!(
        v[0].1.contains("101 entries") && v[0].1.contains("100"),
        "{v:?}"
    );
    let ok = create(&mut records, call(&refs[..100])).await.unwrap();
    assert_eq!(ok.case_ids.len(), 100);
    // Bad cursors and limits of GetInteractionCases.
    let status = cases(&mut records, &stored.id, 0, 0, "nope", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status)[0].0, "startingAfter");
    let status = cases(&mut records, &stored.id, 0, 0, "", "nope")
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "endingBefore");
    let status = cases(&mut records, &stored.id, 101, 0, "", "")
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "limit");
    // A well-formed cursor that is not one of its cases is not found.
    let status = cases(&mut records, &stored.id, 0, 0, "CS-9999-9999", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // Nothing of the refused creates was stored.
    assert_eq!(listed(&mut records, &[]).await.unwrap().len(), 2);
}

#[tokio::test]
async fn cases_page_with_limit_cursors_and_offset() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let all: Vec<String> = (1..=30).map(case).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let stored = create(&mut records, call(&refs)).await.unwrap();
    let id = stored.id.as_str();
    let page = |from: usize, to: usize| all[from..to].to_vec();

    // Default limit 25, in the order linked.
    let r = cases(&mut records, id, 0, 0, "", "").await.unwrap();
    assert_eq!((r.total, ids(&r)), (30, page(0, 25)));
    let r = cases(&mut records, id, 10, 0, "", "").await.unwrap();
    assert_eq!(ids(&r), page(0, 10));
    let r = cases(&mut records, id, 100, 0, "", "").await.unwrap();
    assert_eq!(ids(&r), page(0, 30));
    // Offset from the start, and past the end.
    let r = cases(&mut records, id, 10, 25, "", "").await.unwrap();
    assert_eq!(ids(&r), page(25, 30));
    let r = cases(&mut records, id, 10, 30, "", "").await.unwrap();
    assert_eq!((r.total, r.count), (30, 0));
    // startingAfter, with an offset; after the last is empty.
    let r = cases(&mut records, id, 5, 0, &all[9], "").await.unwrap();
    assert_eq!(ids(&r), page(10, 15));
    let r = cases(&mut records, id, 5, 2, &all[9], "").await.unwrap();
    assert_eq!(ids(&r), page(12, 17));
    let r = cases(&mut records, id, 5, 0, &all[27], "").await.unwrap();
    assert_eq!(ids(&r), page(28, 30));
    let r = cases(&mut records, id, 5, 0, &all[29], "").await.unwrap();
    assert!(ids(&r).is_empty());
    // endingBefore, with an offset; before the first is empty.
    let r = cases(&mut records, id, 5, 0, "", &all[9]).await.unwrap();
    assert_eq!(ids(&r), page(4, 9));
    let r = cases(&mut records, id, 5, 2, "", &all[9]).await.unwrap();
    assert_eq!(ids(&r), page(2, 7));
    let r = cases(&mut records, id, 5, 0, "", &all[2]).await.unwrap();
    assert_eq!(ids(&r), page(0, 2));
    let r = cases(&mut records, id, 5, 0, "", &all[0]).await.unwrap();
    assert!(ids(&r).is_empty());
    // Both cursors: startingAfter decides, as in ListInteractions.
    let r = cases(&mut records, id, 3, 0, &all[0], &all[20])
        .await
        .unwrap();
    assert_eq!(ids(&r), page(1, 4));
    // Walking forward page by page visits every case once.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let r = cases(&mut records, id, 7, 0, &after, "").await.unwrap();
        if r.data.is_empty() {
            break;
        }
        seen.extend(ids(&r));
        after = seen.last().unwrap().clone();
    }
    assert_eq!(seen, all);

    // Unknown interactions are not found; so is a sensitive one without
    // the right, which the auditor may read.
    let status = cases(&mut records, "IT-0000-99999999", 0, 0, "", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let secret = create(
        &mut records,
        Interaction {
            sensitive: Some(true),
            ..call(&["CS-SECR-0001"])
        },
    )
    .await
    .unwrap();
    let status = cases(&mut records, &secret.id, 0, 0, "", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let r = cases(&mut auditor, &secret.id, 0, 0, "", "").await.unwrap();
    assert_eq!(ids(&r), ["CS-SECR-0001"]);
}

#[tokio::test]
async fn the_case_ids_filter_matches_any_of_several() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let a = create(&mut records, call(&["CS-AAAA-0001", "CS-SHAR-0001"]))
        .await
        .unwrap();
    let b = create(&mut records, call(&["CS-BBBB-0001", "CS-SHAR-0001"]))
        .await
        .unwrap();
    let c = create(&mut records, call(&["CS-CCCC-0001"])).await.unwrap();
    let none = create(&mut records, call(&[])).await.unwrap();
    assert_eq!(
        listed(&mut records, &[]).await.unwrap(),
        [
            a.id.as_str(),
            b.id.as_str(),
            c.id.as_str(),
            none.id.as_str()
        ]
    );
    assert_eq!(
        listed(&mut records, &["CS-AAAA-0001"]).await.unwrap(),
        [a.id.as_str()]
    );
    assert_eq!(
        listed(&mut records, &["CS-SHAR-0001"]).await.unwrap(),
        [a.id.as_str(), b.id.as_str()]
    );
    assert_eq!(
        listed(&mut records, &["CS-AAAA-0001", "CS-CCCC-0001"])
            .await
            .unwrap(),
        [a.id.as_str(), c.id.as_str()]
    );
    assert!(
        listed(&mut records, &["CS-ZZZZ-0001"])
            .await
            .unwrap()
            .is_empty()
    );
    // A relink moves an interaction in and out of the filter.
    update(&mut records, &c.id, call(&["CS-SHAR-0001"]), &["caseIds"])
        .await
        .unwrap();
    assert_eq!(
        listed(&mut records, &["CS-SHAR-0001"]).await.unwrap(),
        [a.id.as_str(), b.id.as_str(), c.id.as_str()]
    );
    assert!(
        listed(&mut records, &["CS-CCCC-0001"])
            .await
            .unwrap()
            .is_empty()
    );
}

/// The case links are part of the interaction's record: a start reads
/// them back from the journal, and from the store once the journal is
/// materialized into it.
#[tokio::test]
async fn case_links_survive_restarts_from_the_journal_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut records = server.interactions().await;
    let a = create(&mut records, call(&["CS-AAAA-0001", "CS-AAAA-0002"]))
        .await
        .unwrap();
    let b = create(&mut records, call(&["CS-BBBB-0001"])).await.unwrap();
    update(&mut records, &b.id, call(&["CS-BBBB-0002"]), &["caseIds"])
        .await
        .unwrap();
    server.stop().await.unwrap();

    // Replayed from the journal (the store empty, at generation 0); then
    // the same, and materialized into the store at start (compact_after 0),
    // the journal rolled over to an empty generation 1; then from the
    // store alone.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = start_on(dir.path(), compact_after).await;
        let mut records = server.interactions().await;
        let r = cases(&mut records, &a.id, 0, 0, "", "").await.unwrap();
        assert_eq!(ids(&r), ["CS-AAAA-0001", "CS-AAAA-0002"], "{compact_after}");
        let r = cases(&mut records, &b.id, 0, 0, "", "").await.unwrap();
        assert_eq!(ids(&r), ["CS-BBBB-0002"], "{compact_after}");
        assert_eq!(
            listed(&mut records, &["CS-AAAA-0002", "CS-BBBB-0002"])
                .await
                .unwrap(),
            [a.id.as_str(), b.id.as_str()]
        );
        assert!(
            listed(&mut records, &["CS-BBBB-0001"])
                .await
                .unwrap()
                .is_empty()
        );
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the
    // person and the two interactions, the journal after it empty.
    assert_read_from_the_store(&data, 3);
}

#[tokio::test]
async fn an_import_takes_case_ids_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lines = format!(
        "{{\"externalId\":\"imp-1\",\"personId\":\"{P}\",\"channel\":\"voice\",\"direction\":\"outbound\",\"status\":\"attempted\",\"startedAt\":\"2020-03-02T14:00:00Z\",\"caseIds\":[\"CS-IMPO-0001\",\"CS-IMPO-0002\"]}}\n\
         {{\"externalId\":\"imp-2\",\"personId\":\"{P}\",\"channel\":\"voice\",\"direction\":\"outbound\",\"status\":\"attempted\",\"startedAt\":\"2020-03-02T14:00:00Z\",\"caseIds\":[\"CS-bad\"]}}\n"
    );
    let report = compliance_guard::ops::import(
        &dir.path().join("data"),
        lines.as_bytes(),
        "importer",
        None,
        Durability::Sync,
        chrono::Utc::now(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.imported, 1, "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.ignored_fields.is_empty(), "{report:?}");
    let server = start_on(dir.path(), 1_000_000).await;
    let mut records = server.interactions().await;
    let r = cases(&mut records, "ext-imp-1", 0, 0, "", "")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["CS-IMPO-0001", "CS-IMPO-0002"]);
    server.stop().await.unwrap();
}
