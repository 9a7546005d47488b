//! End-to-end tests of company scope: a key's `company` (keys file), the
//! company each interaction is created in (`companyId`, from the key, never
//! from the body), `GetPreviousInteractions` scoped by `company_id` as
//! upstream's `GET /companies/{companyId}/interactions/{id}/previous`, and
//! a company's key seeing only its company's interactions (get, update,
//! delete, list), and the company surviving restarts (journal and
//! store).

use compliance_guard::api::auth::Keys;
use compliance_guard::pb::{
    CreateInteractionRequest, DeleteInteractionRequest, GetInteractionRequest,
    GetPreviousInteractionsRequest, Interaction, ListInteractionsRequest, ListInteractionsResponse,
    UpdateInteractionRequest,
};
use compliance_guard::wire::json_of_struct;
use prost_types::{FieldMask, Timestamp};
use tonic::Code;

use crate::ops::durability::{assert_read_from_the_store, assert_store_at};
use crate::support::consts::{ACME_KEY, GLOBEX_KEY, P, PIPELINE_KEY, T0};
use crate::support::server::{Interactions, start_on};

fn call(previous: Option<&str>) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        started_at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        previous_interaction_id: previous.map(str::to_owned),
        ..Interaction::default()
    }
}

async fn create(records: &mut Interactions, i: Interaction) -> Interaction {
    crate::support::server::create_in(records, P, i).await
}

async fn previous(
    records: &mut Interactions,
    id: &str,
    company: &str,
) -> Result<Vec<String>, tonic::Status> {
    Ok(records
        .get_previous_interactions(GetPreviousInteractionsRequest {
            interaction_id: id.into(),
            person_id: P.into(),
            company_id: company.into(),
        })
        .await?
        .into_inner()
        .data
        .into_iter()
        .map(|i| i.id)
        .collect())
}

async fn company_of(records: &mut Interactions, id: &str) -> Option<String> {
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
        .company_id
}

#[tokio::test]
async fn interactions_belong_to_the_key_company_and_previous_is_scoped_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut acme = server.interactions_as(ACME_KEY).await;
    let mut globex = server.interactions_as(GLOBEX_KEY).await;
    let mut plain = server.interactions().await;

    // A chain across companies: a1 (acme) <- b1 (globex) <- a2 (acme) <- n1
    // (no company). The body's companyId is ignored: the key decides.
    let a1 = create(&mut acme, call(None)).await;
    let b1 = create(
        &mut globex,
        Interaction {
            company_id: Some("acme".into()),
            ..call(Some(&a1.id))
        },
    )
    .await;
    let a2 = create(&mut acme, call(Some(&b1.id))).await;
    let n1 = create(&mut plain, call(Some(&a2.id))).await;
    assert_eq!(a1.company_id.as_deref(), Some("acme"));
    assert_eq!(b1.company_id.as_deref(), Some("globex"));
    assert_eq!(a2.company_id.as_deref(), Some("acme"));
    assert_eq!(n1.company_id, None);

    // Another company's key does not see the interaction at all: get,
    // update and delete answer NOT_FOUND, as for an unknown id.
    let update = |company: &str| UpdateInteractionRequest {
        person_id: P.into(),
        interaction_id: a1.id.clone(),
        interaction: Some(Interaction {
            loan_id: Some("LN-9".into()),
            company_id: Some(company.into()),
            ..Interaction::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["loanId".into()],
        }),
    };
    let e = globex
        .update_interaction(update("globex"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = globex
        .delete_interaction(DeleteInteractionRequest {
            person_id: P.into(),
            interaction_id: a1.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    for (id, who) in [(&b1.id, "globex's"), (&n1.id, "no company's")] {
        let e = acme
            .get_interaction(GetInteractionRequest {
                interaction_id: id.clone(),
                person_id: P.into(),
                searchable: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{who}: {e:?}");
    }
    // An update by its own company's key keeps the company, whatever the
    // body says.
    acme.update_interaction(update("globex")).await.unwrap();
    assert_eq!(company_of(&mut acme, &a1.id).await.as_deref(), Some("acme"));
    // A key with no company sees every company's interactions.
    assert_eq!(
        company_of(&mut plain, &b1.id).await.as_deref(),
        Some("globex")
    );
    // A listing shows a company's key only its company's interactions.
    let listed =
        |page: ListInteractionsResponse| page.data.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let list = ListInteractionsRequest {
        person_id: P.into(),
        sort_by: vec!["+createdAt".into()],
        ..ListInteractionsRequest::default()
    };
    assert_eq!(
        listed(
            acme.list_interactions(list.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        [a1.id.as_str(), a2.id.as_str()]
    );
    assert_eq!(
        listed(
            globex
                .list_interactions(list.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        [b1.id.as_str()]
    );
    assert_eq!(
        listed(plain.list_interactions(list).await.unwrap().into_inner()).len(),
        4
    );

    // Creating again with an externalId another company recorded is
    // refused without returning that company's record.
    let created = globex
        .create_interaction(CreateInteractionRequest {
            person_id: P.into(),
            interaction: Some(Interaction {
                external_id: Some("shared-ext-1".into()),
                ..call(None)
            }),
            searchable: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.created, "a new externalId is created");
    let shared = created.interaction.unwrap();
    assert_eq!(shared.company_id.as_deref(), Some("globex"));
    assert_eq!(shared.external_id.as_deref(), Some("shared-ext-1"));
    let e = acme
        .create_interaction(CreateInteractionRequest {
            person_id: P.into(),
            interaction: Some(Interaction {
                external_id: Some("shared-ext-1".into()),
                ..call(None)
            }),
            searchable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("another company"), "{e:?}");
    assert!(!e.message().contains(&shared.id), "{e:?}");
    // Unscoped, the chain is the person's whole chain, as before.
    assert_eq!(
        previous(&mut plain, &n1.id, "").await.unwrap(),
        [a2.id.as_str(), b1.id.as_str(), a1.id.as_str()]
    );
    // Unscoped, an acme key sees only acme's links of the chain too.
    assert_eq!(
        previous(&mut acme, &a2.id, "").await.unwrap(),
        [a1.id.as_str()]
    );
    // Scoped to acme by an acme key: only acme's interactions.
    assert_eq!(
        previous(&mut acme, &a2.id, "acme").await.unwrap(),
        [a1.id.as_str()]
    );
    // Another company's key, or a key with no company, may not ask for
    // acme's chain.
    for (records, who) in [(&mut globex, "globex"), (&mut plain, "no company")] {
        let e = previous(records, &a2.id, "acme").await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{who}: {e:?}");
    }
    // An interaction of another company is not found in one's own.
    let e = previous(&mut globex, &a2.id, "globex").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = previous(&mut acme, &n1.id, "acme").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // The searchable form names the company.
    let doc = acme
        .get_interaction(GetInteractionRequest {
            interaction_id: a2.id.clone(),
            person_id: P.into(),
            searchable: true,
        })
        .await
        .unwrap()
        .into_inner()
        .searchable_document
        .unwrap();
    assert_eq!(json_of_struct(&doc)["companyId"], serde_json::json!("acme"));
    server.stop().await.unwrap();

    // Replayed from the journal (the store empty, at generation 0); then
    // the same, and materialized into the store at start (compact_after 0),
    // the journal rolled over to an empty generation 1; then from the
    // store alone: the company is kept in each.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = start_on(dir.path(), compact_after).await;
        let mut acme = server.interactions_as(ACME_KEY).await;
        let mut globex = server.interactions_as(GLOBEX_KEY).await;
        let mut plain = server.interactions().await;
        assert_eq!(company_of(&mut acme, &a1.id).await.as_deref(), Some("acme"));
        assert_eq!(
            company_of(&mut plain, &b1.id).await.as_deref(),
            Some("globex")
        );
        assert_eq!(company_of(&mut plain, &n1.id).await, None);
        assert_eq!(
            previous(&mut acme, &a2.id, "acme").await.unwrap(),
            [a1.id.as_str()],
            "{compact_after}"
        );
        let e = previous(&mut globex, &a2.id, "acme").await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the
    // person and its five interactions (a1, b1, a2, n1 and globex's
    // shared-ext-1), the journal after it empty.
    assert_read_from_the_store(&data, 6);
}

#[test]
fn keys_files_without_company_stay_valid_and_a_bad_company_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.yaml");
    std::fs::write(
        &path,
        format!("keys:\n  - name: pipeline\n    key: {PIPELINE_KEY}\n"),
    )
    .unwrap();
    let keys = Keys::load_file(&path).unwrap();
    assert_eq!(keys.verify(PIPELINE_KEY).unwrap().company, None);
    std::fs::write(
        &path,
        format!("keys:\n  - name: acme\n    key: {ACME_KEY}\n    company: acme\n"),
    )
    .unwrap();
    let keys = Keys::load_file(&path).unwrap();
    assert_eq!(
        keys.verify(ACME_KEY).unwrap().company.as_deref(),
        Some("acme")
    );
    std::fs::write(
        &path,
        format!("keys:\n  - name: acme\n    key: {ACME_KEY}\n    company: \"\"\n"),
    )
    .unwrap();
    let e = Keys::load_file(&path).unwrap_err().to_string();
    assert!(e.contains("`company` must have 1 to 100"), "{e}");
}

/// An import names the company its records belong to; a company's key
/// then sees them as its own, and another company's key does not.
#[tokio::test]
async fn an_import_puts_its_records_in_the_company_given() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!(
        "{{\"externalId\":\"imp-1\",\"personId\":\"{P}\",\"channel\":\"voice\",\"direction\":\"outbound\",\"status\":\"attempted\",\"startedAt\":\"2020-03-02T14:00:00Z\"}}\n"
    );
    let report = compliance_guard::ops::import(
        &dir.path().join("data"),
        line.as_bytes(),
        "importer",
        Some("acme"),
        compliance_guard::journal::Durability::Sync,
        chrono::Utc::now(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.imported, 1, "{report:?}");
    let server = start_on(dir.path(), 1_000_000).await;
    let mut acme = server.interactions_as(ACME_KEY).await;
    let mut globex = server.interactions_as(GLOBEX_KEY).await;
    assert_eq!(
        company_of(&mut acme, "ext-imp-1").await.as_deref(),
        Some("acme")
    );
    let e = globex
        .get_interaction(GetInteractionRequest {
            interaction_id: "ext-imp-1".into(),
            person_id: P.into(),
            searchable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    server.stop().await.unwrap();
}

/// A reserving Check records its interaction in the checking key's
/// company, as CreateInteraction does; another company's key does not
/// find it, and it still counts for every company's Checks.
#[tokio::test]
async fn a_reserved_interaction_belongs_to_the_checking_key_company() {
    use compliance_guard::pb::CheckRequest;
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut acme_guard = server.checks_as(ACME_KEY).await;
    let check = CheckRequest {
        person_id: P.into(),
        channel: "email".into(),
        // New Jersey, not New York: a borrower known only to be in US-NY
        // may be in New York City, whose rules (2 communications a week,
        // hours from 08:00:01) would answer first. New Jersey has the same
        // zone and no rule of its own, so the rules this test is about decide.
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        reserve: true,
        request_id: "acme-send-1".into(),
        // A weekday at 09:00 in New York, not the test's clock.
        at: Some(Timestamp {
            seconds: T0,
            nanos: 0,
        }),
        ..CheckRequest::default()
    };
    let answer = acme_guard.check(check).await.unwrap().into_inner();
    assert!(answer.allowed, "{answer:?}");
    let id = answer.interaction_id;
    let mut acme = server.interactions_as(ACME_KEY).await;
    assert_eq!(company_of(&mut acme, &id).await.as_deref(), Some("acme"));
    let mut globex = server.interactions_as(GLOBEX_KEY).await;
    let e = globex
        .get_interaction(GetInteractionRequest {
            interaction_id: id.clone(),
            person_id: P.into(),
            searchable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // Its reservation is listed for acme and a key with no company, not for
    // globex, and globex cannot cancel it.
    use compliance_guard::pb::{CancelReservationRequest, ListReservationsRequest};
    let listed = |r: compliance_guard::pb::ListReservationsResponse| {
        r.reservations
            .into_iter()
            .map(|r| r.interaction_id)
            .collect::<Vec<_>>()
    };
    let mut plain_guard = server.checks().await;
    let mut globex_guard = server.checks_as(GLOBEX_KEY).await;
    let all = ListReservationsRequest::default();
    assert_eq!(
        listed(
            acme_guard
                .list_reservations(all.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        [id.as_str()]
    );
    assert_eq!(
        listed(
            plain_guard
                .list_reservations(all.clone())
                .await
                .unwrap()
                .into_inner()
        ),
        [id.as_str()]
    );
    assert!(
        listed(
            globex_guard
                .list_reservations(all)
                .await
                .unwrap()
                .into_inner()
        )
        .is_empty()
    );
    let e = globex_guard
        .cancel_reservation(CancelReservationRequest {
            interaction_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // A conversation acme had counts in globex's Checks: what a borrower
    // was told is not split by who told it.
    let talk = create(
        &mut acme,
        Interaction {
            status: "succeeded".into(),
            status_details: Some("voiceSpokeWithFirstParty".into()),
            ..call(None)
        },
    )
    .await;
    let answer = globex_guard
        .check(CheckRequest {
            person_id: P.into(),
            channel: "voice".into(),
            // New Jersey, not New York: a borrower known only to be in US-NY
            // may be in New York City, whose rules (2 communications a week,
            // hours from 08:00:01) would answer first. New Jersey has the same
            // zone and no rule of its own, so the rules this test is about decide.
            jurisdictions: vec!["US-NJ".into()],
            time_zones: vec!["America/New_York".into()],
            at: Some(Timestamp {
                seconds: T0 + 86_400,
                nanos: 0,
            }),
            ..CheckRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.allowed);
    assert_eq!(
        answer.compliance_guard_rule_id,
        "us-regf-quiet-after-conversation"
    );
    assert_eq!(answer.violations[0].counted_interaction_ids, [talk.id]);
    server.stop().await.unwrap();
}
