//! End-to-end tests of `complianceguard.v1.InteractionsService`: the real server on
//! 127.0.0.1:0 and a real tonic client. Create (idempotent on externalId),
//! field-level refusals with google.rpc.BadRequest, Get, Update with an
//! update mask, soft Delete, List with the upstream filters, sorting and
//! paging, sensitive interactions, the previous-interaction chain, and the
//! JSON fields (metaData, content).
//!
//! Times that matter are fixed (March 2020); Checks pass `at` explicitly.

use compliance_guard::pb::{
    CheckRequest, CheckResponse, CreateInteractionRequest, DeleteInteractionRequest,
    GetInteractionRequest, GetPreviousInteractionsRequest, Interaction, ListInteractionsRequest,
    ListInteractionsResponse, UpdateInteractionRequest,
};
use prost_types::{FieldMask, ListValue, Struct, Timestamp, Value, value::Kind};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::consts::{AUDITOR_KEY, HOUR, MINUTE, P, Q, T0};
use crate::support::server::{Checks, Interactions, ready_server};

/// 2023-11-14: any createdAt the server's clock gives is after it.
const LONG_AGO: i64 = 1_700_000_000;
/// The fields an update mask may name, as error messages list them.
const UPDATABLE: &str = "externalId, channel, direction, theme, borrowerSelectedTheme, subject, \
    status, statusDetails, agentOutcome, startedAt, endedAt, scheduledAtFrom, scheduledAtTo, \
    loanId, loanIds, caseIds, isTransactional, sensitive, previousInteractionId, contactId, \
    contactExternalId, contact, borrower, metaData, content, failureDescriptionShort, \
    failureDescriptionLong, complianceGuardRuleId, twilioErrorCode";
/// The upstream themes (and `outOpsLoan`), as error messages list them.
const THEMES: &str = "agentNotification, opsCollDebt, opsCollLocateBorrower, \
    opsCollVerifyEmployment, opsCollContactEmployerNotice, opsServicingDebtValidation, \
    opsServicingNegativeCreditReportNotice, opsServicingTimeBarredNotice, opsServicing, \
    opsAccountCredentials, inbMissingFeature, inbEducation, inbBug, inbRequest, inbHumanLove, \
    inbUnknown, inbOther, inbServicing, inbCollections, inbPayments, inbFraud, \
    inbGeneralInquiry, outOpsLoan";

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// A timestamp as a sortable pair.
fn key(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.expect("a timestamp");
    (t.seconds, t.nanos)
}

/// An outbound voice call that rang unanswered at `started`: a placed call.
fn call(started: i64) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        status_details: Some("voiceRangNoPickup".into()),
        started_at: at(started),
        ..Interaction::default()
    }
}

/// A placed call about loan L1.
fn call_about_l1(started: i64) -> Interaction {
    Interaction {
        loan_ids: vec!["L1".into()],
        ..call(started)
    }
}

fn with_ext(mut i: Interaction, ext: &str) -> Interaction {
    i.external_id = Some(ext.into());
    i
}

async fn create(
    records: &mut Interactions,
    person: &str,
    i: Interaction,
) -> Result<(Interaction, bool), Status> {
    let r = records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: person.into(),
            interaction: Some(i),
        })
        .await?
        .into_inner();
    Ok((r.interaction.unwrap(), r.created))
}

/// Creates a new interaction and returns it as stored.
async fn record(records: &mut Interactions, person: &str, i: Interaction) -> Interaction {
    let (stored, created) = create(records, person, i).await.unwrap();
    assert!(created, "a new interaction was expected");
    stored
}

async fn get(records: &mut Interactions, person: &str, id: &str) -> Result<Interaction, Status> {
    let r = records
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: id.into(),
            person_id: person.into(),
        })
        .await?
        .into_inner();
    assert_eq!(r.searchable_document, None, "asked without searchable");
    Ok(r.interaction.unwrap())
}

async fn update(
    records: &mut Interactions,
    id: &str,
    values: Interaction,
    paths: &[&str],
) -> Result<Interaction, Status> {
    let r = records
        .update_interaction(UpdateInteractionRequest {
            person_id: String::new(),
            interaction_id: id.into(),
            interaction: Some(values),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
        .await?
        .into_inner();
    Ok(r.interaction.unwrap())
}

async fn delete(records: &mut Interactions, person: &str, id: &str) -> Result<Interaction, Status> {
    let r = records
        .delete_interaction(DeleteInteractionRequest {
            person_id: person.into(),
            interaction_id: id.into(),
        })
        .await?
        .into_inner();
    Ok(r.interaction.unwrap())
}

async fn list(records: &mut Interactions, q: ListInteractionsRequest) -> ListInteractionsResponse {
    let r = records.list_interactions(q).await.unwrap().into_inner();
    assert_eq!(r.count as usize, r.data.len());
    r
}

async fn list_err(records: &mut Interactions, q: ListInteractionsRequest) -> Status {
    records.list_interactions(q).await.unwrap_err()
}

/// How many interactions the caller can list, over every person.
async fn total(records: &mut Interactions) -> u32 {
    list(records, ListInteractionsRequest::default())
        .await
        .total
}

fn of(person: &str) -> ListInteractionsRequest {
    ListInteractionsRequest {
        person_id: person.into(),
        ..ListInteractionsRequest::default()
    }
}

fn ids(r: &ListInteractionsResponse) -> Vec<String> {
    r.data.iter().map(|i| i.id.clone()).collect()
}

fn ids_of(items: &[&Interaction]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

async fn previous(
    records: &mut Interactions,
    person: &str,
    id: &str,
) -> Result<Vec<String>, Status> {
    let r = records
        .get_previous_interactions(GetPreviousInteractionsRequest {
            company_id: String::new(),
            interaction_id: id.into(),
            person_id: person.into(),
        })
        .await?
        .into_inner();
    Ok(r.data.into_iter().map(|i| i.id).collect())
}

/// The google.rpc.BadRequest field violations of a status, as (field,
/// description).
fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .expect("google.rpc.BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

/// Asserts INVALID_ARGUMENT with exactly one field violation.
fn assert_invalid(status: &Status, field: &str, description: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        violations(status),
        vec![(field.to_owned(), description.to_owned())],
        "{status:?}"
    );
    // Each description names its field, so the summary is the description.
    assert_eq!(status.message(), description);
}

/// A Check for an outbound voice call about L1 in New Jersey (Eastern
/// time).
pub(crate) fn check_call(person: &str, at_seconds: i64) -> CheckRequest {
    CheckRequest {
        person_id: person.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        loan_ids: vec!["L1".into()],
        // New Jersey, not New York: a borrower known only to be in US-NY
        // may be in New York City, whose rules (2 communications a week,
        // hours from 08:00:01) would answer first. New Jersey has the same
        // zone and no rule of its own, so the rules this test is about decide.
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        at: at(at_seconds),
        ..CheckRequest::default()
    }
}

async fn check(checks: &mut Checks, r: CheckRequest) -> CheckResponse {
    checks.check(r).await.unwrap().into_inner()
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn object(fields: &[(&str, Value)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

// ---- CreateInteraction -----------------------------------------------------

#[tokio::test]
async fn create_returns_our_id_the_person_the_creator_and_defaults_started_at_to_now() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut i = call(T0);
    i.started_at = None;
    let (stored, created) = create(&mut records, P, i).await.unwrap();
    assert!(created);
    assert_eq!(stored.id, "IT-0000-00000001");
    assert_eq!(stored.person_id, P);
    assert_eq!(stored.created_by.as_deref(), Some("pipeline"));
    assert_eq!(stored.updated_by, None);
    assert_eq!(stored.updated_at, None);
    assert_eq!(stored.deleted_at, None);
    assert!(
        key(&stored.created_at).0 > LONG_AGO,
        "{:?}",
        stored.created_at
    );
    // startedAt and createdAt both take the moment of recording.
    assert_eq!(stored.started_at, stored.created_at);
    assert_eq!(stored.channel, "voice");
    assert_eq!(stored.direction, "outbound");
    assert_eq!(stored.status, "attempted");
    assert_eq!(stored.status_details.as_deref(), Some("voiceRangNoPickup"));
    // Lender-supplied unless said otherwise.
    assert_eq!(stored.is_external, Some(true));

    // A given startedAt is kept; the next id follows.
    let second = record(&mut records, P, call(T0)).await;
    assert_eq!(second.id, "IT-0000-00000002");
    assert_eq!(second.started_at, at(T0));
    assert_ne!(second.created_at, at(T0));

    // Read-only fields in the request are ignored: the server sets them.
    let mut forged = call(T0);
    forged.id = "IT-9999-99999999".into();
    forged.person_id = Q.into();
    forged.created_by = Some("mallory".into());
    forged.created_at = at(T0);
    forged.deleted_at = at(T0);
    let third = record(&mut records, P, forged).await;
    assert_eq!(third.id, "IT-0000-00000003");
    assert_eq!(third.person_id, P);
    assert_eq!(third.created_by.as_deref(), Some("pipeline"));
    assert_ne!(third.created_at, at(T0));
    assert_eq!(third.deleted_at, None);

    // Another key's name becomes createdBy.
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let fourth = record(&mut auditor, P, call(T0)).await;
    assert_eq!(fourth.created_by.as_deref(), Some("auditor"));
    assert_eq!(total(&mut records).await, 4);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn create_for_an_ext_person_gives_the_person_an_id_of_ours() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let first = record(&mut records, "ext-lender-7", call(T0)).await;
    assert_eq!(first.person_id, "BO-0000-00000001");
    // The ext- name and our id now name one person.
    let second = record(&mut records, "BO-0000-00000001", call(T0 + HOUR)).await;
    assert_eq!(second.person_id, "BO-0000-00000001");
    let third = record(&mut records, "ext-lender-7", call(T0 + 2 * HOUR)).await;
    assert_eq!(third.person_id, "BO-0000-00000001");
    assert_eq!(list(&mut records, of("ext-lender-7")).await.total, 3);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn create_is_idempotent_on_external_id_for_the_same_person() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let first = record(&mut records, P, with_ext(call(T0), "dialer-1")).await;
    assert_eq!(first.external_id.as_deref(), Some("dialer-1"));
    assert_eq!(total(&mut records).await, 1);

    // The same externalId again, even with other values: the existing record
    // as it is, and nothing new.
    let mut again = with_ext(call(T0 + HOUR), "dialer-1");
    again.status = "succeeded".into();
    again.status_details = Some("voiceSpokeWithFirstParty".into());
    let (existing, created) = create(&mut records, P, again).await.unwrap();
    assert!(!created);
    assert_eq!(existing, first);
    assert_eq!(total(&mut records).await, 1);

    // The same person by another name is the same person.
    let mut linked = server.interactions().await;
    let by_ext = record(&mut linked, "ext-crm-9", with_ext(call(T0), "dialer-2")).await;
    let (same, created) = create(
        &mut linked,
        &by_ext.person_id,
        with_ext(call(T0), "dialer-2"),
    )
    .await
    .unwrap();
    assert!(!created);
    assert_eq!(same, by_ext);
    assert_eq!(total(&mut records).await, 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn create_with_the_external_id_of_another_persons_interaction_is_already_exists() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let first = record(&mut records, P, with_ext(call(T0), "dialer-1")).await;
    let err = create(&mut records, Q, with_ext(call(T0), "dialer-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(
        err.message(),
        "`externalId` `dialer-1` belongs to an interaction of another person"
    );
    assert_eq!(total(&mut records).await, 1);
    assert_eq!(list(&mut records, of(Q)).await.total, 0);
    assert_eq!(get(&mut records, "", "ext-dialer-1").await.unwrap(), first);
    server.stop().await.unwrap();
}

// ---- field violations ------------------------------------------------------

#[tokio::test]
async fn bad_fields_are_invalid_argument_with_bad_request_details_and_store_nothing() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    record(&mut records, P, call(T0)).await;
    let base = || Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        ..Interaction::default()
    };
    let cases: Vec<(&str, &str, Interaction, &str, String)> =
        vec![
        (
            "channel typo",
            P,
            Interaction {
                channel: "voise".into(),
                ..base()
            },
            "channel",
            "`channel` value `voise` is not allowed; allowed: voice, email, fax, text, chat, \
             mail, gui, document (did you mean `voice`?)"
                .into(),
        ),
        (
            "emailDelivered needs succeeded",
            P,
            Interaction {
                channel: "email".into(),
                status: "attempted".into(),
                status_details: Some("emailDelivered".into()),
                ..base()
            },
            "statusDetails",
            "`statusDetails` `emailDelivered` requires `status` `succeeded`, not `attempted`"
                .into(),
        ),
        (
            "emailDelivered is not a voice detail",
            P,
            Interaction {
                status: "succeeded".into(),
                status_details: Some("emailDelivered".into()),
                ..base()
            },
            "statusDetails",
            "`statusDetails` `emailDelivered` is for `channel` `email`, not `voice`".into(),
        ),
        (
            "voiceNumberDisconnected is outbound only",
            P,
            Interaction {
                direction: "inbound".into(),
                status: "failed".into(),
                status_details: Some("voiceNumberDisconnected".into()),
                ..base()
            },
            "statusDetails",
            "`statusDetails` `voiceNumberDisconnected` is only for `direction` `outbound`, not \
             `inbound`"
                .into(),
        ),
        (
            "freeForm needs a theme",
            P,
            Interaction {
                channel: "email".into(),
                status: "succeeded".into(),
                subject: Some("freeForm".into()),
                ..base()
            },
            "theme",
            "`subject` `freeForm` has no implicit theme, so `theme` is required".into(),
        ),
        (
            "externalId of 256 characters",
            P,
            Interaction {
                external_id: Some("x".repeat(256)),
                ..base()
            },
            "externalId",
            "`externalId` has 256 characters; allowed: 1 to 255".into(),
        ),
        (
            "empty externalId",
            P,
            Interaction {
                external_id: Some(String::new()),
                ..base()
            },
            "externalId",
            "`externalId` has 0 characters; allowed: 1 to 255".into(),
        ),
        (
            "twilioErrorCode of 11 characters",
            P,
            Interaction {
                twilio_error_code: Some("12345678901".into()),
                ..base()
            },
            "twilioErrorCode",
            "`twilioErrorCode` has 11 characters; allowed: 0 to 10".into(),
        ),
        (
            "missing status",
            P,
            Interaction {
                status: String::new(),
                ..base()
            },
            "status",
            "`status` is required".into(),
        ),
        (
            "missing channel",
            P,
            Interaction {
                channel: String::new(),
                ..base()
            },
            "channel",
            "`channel` is required".into(),
        ),
        (
            "status null",
            P,
            Interaction {
                status: "null".into(),
                ..base()
            },
            "status",
            "`status` value `null` is a query value, not a status; omit the field instead".into(),
        ),
        (
            "unknown theme",
            P,
            Interaction {
                theme: Some("opsCollDebts".into()),
                ..base()
            },
            "theme",
            format!(
                "`theme` value `opsCollDebts` is not allowed; allowed: {THEMES} (did you mean \
                 `opsCollDebt`?)"
            ),
        ),
        (
            "previousInteractionId not an id",
            P,
            Interaction {
                previous_interaction_id: Some("not an id".into()),
                ..base()
            },
            "previousInteractionId",
            "`previousInteractionId` value `not an id` is not an id; allowed: `ext-` and an \
             external id, an id like `BO-ABCD-1234`, or a number"
                .into(),
        ),
        (
            "scheduledAtTo before scheduledAtFrom",
            P,
            Interaction {
                status: "scheduled".into(),
                scheduled_at_from: at(T0),
                scheduled_at_to: at(T0 - HOUR),
                ..base()
            },
            "scheduledAtTo",
            "`scheduledAtTo` `2020-03-02 13:00:00 UTC` is before `scheduledAtFrom` \
             `2020-03-02 14:00:00 UTC`"
                .into(),
        ),
        (
            "person not an id",
            "nobody",
            base(),
            "personId",
            "`personId` value `nobody` is not an id; allowed: `ext-` and an external id, an id \
             like `BO-ABCD-1234`, or a number"
                .into(),
        ),
        ("person missing", "", base(), "personId", "`personId` is required".into()),
    ];
    for (label, person, interaction, field, description) in cases {
        let err = create(&mut records, person, interaction)
            .await
            .expect_err(label);
        assert_eq!(err.code(), Code::InvalidArgument, "{label}: {err:?}");
        assert_eq!(
            violations(&err),
            vec![(field.to_owned(), description.clone())],
            "{label}"
        );
        assert_eq!(err.message(), description, "{label}");
        assert_eq!(total(&mut records).await, 1, "{label}: nothing stored");
    }

    // Several bad fields at once: refused, and nothing stored.
    let err = create(
        &mut records,
        P,
        Interaction {
            channel: "voise".into(),
            direction: "outbound".into(),
            status: "bogus".into(),
            ..Interaction::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(total(&mut records).await, 1);
    let fields: Vec<String> = violations(&err).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["channel", "status"], "every problem is listed");

    let err = records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: P.into(),
            interaction: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "interaction", "`interaction` is required");
    assert_eq!(total(&mut records).await, 1);
    // Nor was a person registered by a refused create.
    assert_eq!(list(&mut records, of("ext-never")).await.total, 0);
    server.stop().await.unwrap();
}

// ---- GetInteraction --------------------------------------------------------

#[tokio::test]
async fn get_by_our_id_and_by_ext_id_with_and_without_the_person() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = record(&mut records, P, with_ext(call(T0), "dialer-1")).await;
    record(&mut records, Q, call(T0)).await;
    for (person, id) in [
        ("", stored.id.as_str()),
        ("", "ext-dialer-1"),
        (P, stored.id.as_str()),
        (P, "ext-dialer-1"),
    ] {
        assert_eq!(
            get(&mut records, person, id).await.unwrap(),
            stored,
            "{person} {id}"
        );
    }
    // The person by an ext- name of theirs works too.
    let ext_person = record(&mut records, "ext-crm-1", with_ext(call(T0), "dialer-2")).await;
    assert_eq!(
        get(&mut records, "ext-crm-1", "ext-dialer-2")
            .await
            .unwrap(),
        ext_person
    );
    assert_eq!(
        get(&mut records, &ext_person.person_id, &ext_person.id)
            .await
            .unwrap(),
        ext_person
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn get_with_a_wrong_person_or_an_unknown_id_is_not_found_and_a_bad_id_is_invalid() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = record(&mut records, P, with_ext(call(T0), "dialer-1")).await;
    record(&mut records, Q, call(T0)).await;
    for (person, id) in [
        (Q, stored.id.as_str()),
        (Q, "ext-dialer-1"),
        ("BO-ZZZZ-9999", stored.id.as_str()),
        ("ext-nobody", stored.id.as_str()),
        ("", "IT-0000-00009999"),
        ("", "ext-dialer-404"),
        (P, "ext-dialer-404"),
    ] {
        let err = get(&mut records, person, id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{person} {id}: {err:?}");
    }
    let err = get(&mut records, Q, &stored.id).await.unwrap_err();
    assert_eq!(
        err.message(),
        format!("no interaction `{}` for person `{Q}`", stored.id)
    );

    let err = get(&mut records, "", "hello").await.unwrap_err();
    assert_invalid(
        &err,
        "interactionId",
        "`interactionId` value `hello` is not an id; allowed: `ext-` and an external id, an id \
         like `BO-ABCD-1234`, or a number",
    );
    let err = get(&mut records, "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err)[0].0, "interactionId");
    server.stop().await.unwrap();
}

// ---- UpdateInteraction -----------------------------------------------------

#[tokio::test]
async fn update_changes_only_the_fields_in_the_mask() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut original = call(T0);
    original.theme = Some("opsCollDebt".into());
    original.status = "inProgress".into();
    original.status_details = None;
    original.loan_ids = vec!["L1".into()];
    let stored = {
        let mut auditor = server.interactions_as(AUDITOR_KEY).await;
        record(&mut auditor, P, original).await
    };
    assert_eq!(stored.created_by.as_deref(), Some("auditor"));

    // The message sets more than the mask lists: only the listed fields move.
    let values = Interaction {
        status: "failed".into(),
        status_details: Some("voiceFailedToInitiate".into()),
        theme: Some("opsServicing".into()),
        channel: "email".into(),
        loan_ids: vec!["L2".into()],
        ..Interaction::default()
    };
    let updated = update(
        &mut records,
        &stored.id,
        values,
        &["status", "status_details"],
    )
    .await
    .unwrap();
    assert_eq!(updated.status, "failed");
    assert_eq!(
        updated.status_details.as_deref(),
        Some("voiceFailedToInitiate")
    );
    assert_eq!(updated.theme.as_deref(), Some("opsCollDebt"));
    assert_eq!(updated.channel, "voice");
    assert_eq!(updated.loan_ids, vec!["L1".to_owned()]);
    assert_eq!(updated.updated_by.as_deref(), Some("pipeline"));
    assert!(
        key(&updated.updated_at).0 > LONG_AGO,
        "{:?}",
        updated.updated_at
    );
    // What the guard set at creation stays.
    assert_eq!(updated.id, stored.id);
    assert_eq!(updated.person_id, P);
    assert_eq!(updated.created_at, stored.created_at);
    assert_eq!(updated.created_by.as_deref(), Some("auditor"));
    assert_eq!(updated.started_at, at(T0));
    // Everything else is as it was.
    let expected = Interaction {
        status: "failed".into(),
        status_details: Some("voiceFailedToInitiate".into()),
        updated_at: updated.updated_at,
        updated_by: Some("pipeline".into()),
        ..stored.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(get(&mut records, P, &stored.id).await.unwrap(), updated);

    // Another key's name becomes updatedBy.
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let by_auditor = update(
        &mut auditor,
        &stored.id,
        Interaction {
            agent_outcome: Some("voiceFailedToInitiate".into()),
            ..Interaction::default()
        },
        &["agent_outcome"],
    )
    .await
    .unwrap();
    assert_eq!(by_auditor.updated_by.as_deref(), Some("auditor"));
    assert_eq!(
        by_auditor.agent_outcome.as_deref(),
        Some("voiceFailedToInitiate")
    );
    assert_eq!(total(&mut records).await, 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn update_takes_camel_case_paths_and_by_ext_ids() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = record(&mut records, P, with_ext(call(T0), "dialer-1")).await;
    let updated = update(
        &mut records,
        "ext-dialer-1",
        Interaction {
            status: "succeeded".into(),
            status_details: Some("voiceSpokeWithFirstParty".into()),
            agent_outcome: Some("voiceSpokeWithFirstParty".into()),
            ended_at: at(T0 + 5 * MINUTE),
            ..Interaction::default()
        },
        &["status", "statusDetails", "agentOutcome", "endedAt"],
    )
    .await
    .unwrap();
    assert_eq!(updated.id, stored.id);
    assert_eq!(updated.status, "succeeded");
    assert_eq!(
        updated.status_details.as_deref(),
        Some("voiceSpokeWithFirstParty")
    );
    assert_eq!(
        updated.agent_outcome.as_deref(),
        Some("voiceSpokeWithFirstParty")
    );
    assert_eq!(updated.ended_at, at(T0 + 5 * MINUTE));

    // With the person given, by our id or an ext- name, it must match.
    let err = records
        .update_interaction(UpdateInteractionRequest {
            person_id: Q.into(),
            interaction_id: stored.id.clone(),
            interaction: Some(Interaction::default()),
            update_mask: Some(FieldMask {
                paths: vec!["theme".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let ok = records
        .update_interaction(UpdateInteractionRequest {
            person_id: P.into(),
            interaction_id: stored.id.clone(),
            interaction: Some(Interaction {
                theme: Some("opsCollDebt".into()),
                ..Interaction::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["theme".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.interaction.unwrap().theme.as_deref(),
        Some("opsCollDebt")
    );
    let err = update(
        &mut records,
        "IT-0000-00009999",
        Interaction::default(),
        &["theme"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn update_clears_a_listed_field_that_the_message_leaves_unset() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut original = call(T0);
    original.theme = Some("opsCollDebt".into());
    original.loan_ids = vec!["L1".into()];
    original.twilio_error_code = Some("30003".into());
    let stored = record(&mut records, P, original).await;
    let cleared = update(
        &mut records,
        &stored.id,
        Interaction::default(),
        &["theme", "loan_ids", "twilioErrorCode"],
    )
    .await
    .unwrap();
    assert_eq!(cleared.theme, None);
    assert_eq!(cleared.loan_ids, Vec::<String>::new());
    assert_eq!(cleared.twilio_error_code, None);
    assert_eq!(cleared.status, "attempted");
    assert_eq!(cleared.status_details.as_deref(), Some("voiceRangNoPickup"));
    assert_eq!(get(&mut records, "", &stored.id).await.unwrap(), cleared);
    // A message left out altogether clears the listed fields too.
    let r = records
        .update_interaction(UpdateInteractionRequest {
            person_id: String::new(),
            interaction_id: stored.id.clone(),
            interaction: None,
            update_mask: Some(FieldMask {
                paths: vec!["status_details".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.interaction.unwrap().status_details, None);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn update_refuses_a_missing_unknown_or_read_only_mask() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let stored = record(&mut records, P, call(T0)).await;
    let values = || Interaction {
        status: "failed".into(),
        ..Interaction::default()
    };
    let required = "`updateMask` is required: list the fields to change, for example `status`, \
                    `status_details`";
    let err = update(&mut records, &stored.id, values(), &[])
        .await
        .unwrap_err();
    assert_invalid(&err, "updateMask", required);
    let err = records
        .update_interaction(UpdateInteractionRequest {
            person_id: String::new(),
            interaction_id: stored.id.clone(),
            interaction: Some(values()),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "updateMask", required);

    let err = update(&mut records, &stored.id, values(), &["stauts"])
        .await
        .unwrap_err();
    assert_invalid(
        &err,
        "updateMask",
        &format!(
            "`updateMask` value `stauts` is not allowed; allowed: {UPDATABLE} (did you mean \
             `status`?)"
        ),
    );
    // One bad path refuses the whole update.
    let err = update(&mut records, &stored.id, values(), &["status", "colour"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err)[0].0, "updateMask");

    for (path, field) in [
        ("created_at", "createdAt"),
        ("createdAt", "createdAt"),
        ("id", "id"),
        ("person_id", "personId"),
        ("created_by", "createdBy"),
        ("updatedAt", "updatedAt"),
        ("updated_by", "updatedBy"),
        ("deleted_at", "deletedAt"),
    ] {
        let err = update(&mut records, &stored.id, values(), &[path])
            .await
            .unwrap_err();
        assert_invalid(
            &err,
            field,
            &format!("`{field}` cannot be updated; it is set by the guard"),
        );
    }
    assert_eq!(get(&mut records, "", &stored.id).await.unwrap(), stored);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn update_validates_as_create_and_leaves_a_refused_record_unchanged() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut original = call(T0);
    original.theme = Some("opsCollDebt".into());
    let stored = record(&mut records, P, original).await;
    let cases: Vec<(Interaction, Vec<&str>, &str, &str)> = vec![
        (
            Interaction {
                status: "succeeded".into(),
                status_details: Some("emailDelivered".into()),
                ..Interaction::default()
            },
            vec!["status", "status_details"],
            "statusDetails",
            "`statusDetails` `emailDelivered` is for `channel` `email`, not `voice`",
        ),
        (
            Interaction {
                status_details: Some("voiceSpokeWithFirstPary".into()),
                ..Interaction::default()
            },
            vec!["statusDetails"],
            "statusDetails",
            "`statusDetails` value `voiceSpokeWithFirstPary` is not allowed; allowed: one of the \
             62 upstream values (did you mean `voiceSpokeWithFirstParty`?)",
        ),
        (
            Interaction::default(),
            vec!["status"],
            "status",
            "`status` is required",
        ),
        (
            Interaction {
                subject: Some("freeForm".into()),
                ..Interaction::default()
            },
            vec!["subject", "theme"],
            "theme",
            "`subject` `freeForm` has no implicit theme, so `theme` is required",
        ),
        (
            Interaction {
                direction: "inbound".into(),
                status: "failed".into(),
                status_details: Some("voiceNumberDisconnected".into()),
                ..Interaction::default()
            },
            vec!["direction", "status", "statusDetails"],
            "statusDetails",
            "`statusDetails` `voiceNumberDisconnected` is only for `direction` `outbound`, not \
             `inbound`",
        ),
        (
            Interaction {
                twilio_error_code: Some("12345678901".into()),
                ..Interaction::default()
            },
            vec!["twilio_error_code"],
            "twilioErrorCode",
            "`twilioErrorCode` has 11 characters; allowed: 0 to 10",
        ),
    ];
    for (values, paths, field, description) in cases {
        let err = update(&mut records, &stored.id, values, &paths)
            .await
            .unwrap_err();
        assert_invalid(&err, field, description);
        assert_eq!(
            get(&mut records, "", &stored.id).await.unwrap(),
            stored,
            "{paths:?}: unchanged"
        );
    }

    // An externalId taken by another interaction is refused too.
    record(&mut records, P, with_ext(call(T0), "dialer-2")).await;
    let err = update(
        &mut records,
        &stored.id,
        with_ext(Interaction::default(), "dialer-2"),
        &["external_id"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(get(&mut records, "", &stored.id).await.unwrap(), stored);
    server.stop().await.unwrap();
}

// ---- DeleteInteraction -----------------------------------------------------

#[tokio::test]
async fn delete_is_soft_and_a_deleted_interaction_is_no_longer_listed() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let kept = record(&mut records, P, call(T0)).await;
    let gone = record(&mut records, P, with_ext(call(T0 + HOUR), "dialer-1")).await;
    assert_eq!(list(&mut records, of(P)).await.total, 2);

    let deleted = delete(&mut records, P, "ext-dialer-1").await.unwrap();
    assert_eq!(deleted.id, gone.id);
    assert!(
        key(&deleted.deleted_at).0 > LONG_AGO,
        "{:?}",
        deleted.deleted_at
    );
    assert_eq!(
        deleted,
        Interaction {
            deleted_at: deleted.deleted_at,
            ..gone.clone()
        }
    );
    // Get still shows it, with deletedAt.
    assert_eq!(get(&mut records, "", &gone.id).await.unwrap(), deleted);
    assert_eq!(get(&mut records, P, "ext-dialer-1").await.unwrap(), deleted);
    // List does not.
    let listed = list(&mut records, of(P)).await;
    assert_eq!(ids(&listed), vec![kept.id.clone()]);
    assert_eq!(listed.total, 1);
    assert_eq!(total(&mut records).await, 1);
    // A deleted interaction cannot be changed.
    let err = update(
        &mut records,
        &gone.id,
        Interaction {
            status: "succeeded".into(),
            ..Interaction::default()
        },
        &["status"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(get(&mut records, "", &gone.id).await.unwrap(), deleted);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn delete_of_a_non_external_or_deleted_interaction_is_failed_precondition() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut ours = call(T0);
    ours.is_external = Some(false);
    let ours = record(&mut records, P, ours).await;
    assert_eq!(ours.is_external, Some(false));
    let err = delete(&mut records, P, &ours.id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(get(&mut records, "", &ours.id).await.unwrap(), ours);

    // isExternal says who supplied the record; an update cannot change it,
    // so the refusal above cannot be talked around.
    let err = update(
        &mut records,
        &ours.id,
        Interaction {
            is_external: Some(true),
            ..Interaction::default()
        },
        &["isExternal"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "`isExternal` cannot be updated; it is set by the guard"
    );
    assert_eq!(
        delete(&mut records, P, &ours.id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let theirs = record(&mut records, P, call(T0)).await;
    let first = delete(&mut records, "", &theirs.id).await.unwrap();
    let err = delete(&mut records, "", &theirs.id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // The second delete changed nothing.
    assert_eq!(get(&mut records, "", &theirs.id).await.unwrap(), first);

    // Unknown, or another person's: not found.
    let err = delete(&mut records, "", "IT-0000-00009999")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let other = record(&mut records, Q, call(T0)).await;
    let err = delete(&mut records, P, &other.id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        get(&mut records, "", &other.id).await.unwrap().deleted_at,
        None
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_deleted_interaction_stops_counting_in_check() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut checks = server.checks().await;
    let mut calls = Vec::new();
    for n in 0..7 {
        calls.push(record(&mut records, P, call_about_l1(T0 + n * MINUTE)).await);
    }
    // 15:00 in New York on the same day.
    let question = check_call(P, T0 + 6 * HOUR);
    let blocked = check(&mut checks, question.clone()).await;
    assert!(!blocked.allowed, "{blocked:?}");
    assert_eq!(
        blocked.compliance_guard_rule_id,
        "us-regf-7-calls-in-7-days"
    );
    let v = blocked
        .violations
        .iter()
        .find(|v| v.rule_id == "us-regf-7-calls-in-7-days")
        .unwrap();
    assert_eq!((v.count, v.limit), (7, 7));
    let mut counted = v.counted_interaction_ids.clone();
    counted.sort();
    let all: Vec<&Interaction> = calls.iter().collect();
    assert_eq!(counted, ids_of(&all));

    delete(&mut records, P, &calls[3].id).await.unwrap();
    let allowed = check(&mut checks, question).await;
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.compliance_guard_rule_id, "");
    assert_eq!(allowed.violations, vec![]);
    server.stop().await.unwrap();
}

// ---- ListInteractions ------------------------------------------------------

#[tokio::test]
async fn list_by_person_our_id_or_ext_id() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let p1 = record(&mut records, P, call(T0)).await;
    let p2 = record(&mut records, P, call(T0 + HOUR)).await;
    let e1 = record(&mut records, "ext-crm-5", call(T0)).await;
    let q1 = record(&mut records, Q, call(T0)).await;
    assert_eq!(e1.person_id, "BO-0000-00000001");

    let r = list(&mut records, of(P)).await;
    assert_eq!(ids(&r), ids_of(&[&p1, &p2]));
    assert_eq!((r.total, r.count), (2, 2));
    assert_eq!(
        ids(&list(&mut records, of("ext-crm-5")).await),
        ids_of(&[&e1])
    );
    assert_eq!(
        ids(&list(&mut records, of("BO-0000-00000001")).await),
        ids_of(&[&e1])
    );
    assert_eq!(ids(&list(&mut records, of(Q)).await), ids_of(&[&q1]));
    let everyone = list(&mut records, ListInteractionsRequest::default()).await;
    assert_eq!(ids(&everyone), ids_of(&[&p1, &p2, &e1, &q1]));
    // An unknown person has no interactions.
    for unknown in ["BO-ZZZZ-9999", "ext-nobody"] {
        let r = list(&mut records, of(unknown)).await;
        assert_eq!((r.total, r.count), (0, 0), "{unknown}");
    }
    let err = list_err(&mut records, of("nobody")).await;
    assert_invalid(
        &err,
        "personId",
        "`personId` value `nobody` is not an id; allowed: `ext-` and an external id, an id like \
         `BO-ABCD-1234`, or a number",
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn has_no_person_true_lists_nothing_and_false_lists_everything() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let a = record(&mut records, P, call(T0)).await;
    let b = record(&mut records, Q, call(T0)).await;
    // Every interaction belongs to a person here (CreateInteraction requires
    // personId), so "only unassociated interactions" is always empty.
    let none = list(
        &mut records,
        ListInteractionsRequest {
            has_no_person: Some(true),
            ..ListInteractionsRequest::default()
        },
    )
    .await;
    assert_eq!((none.total, none.count), (0, 0));
    let all = list(
        &mut records,
        ListInteractionsRequest {
            has_no_person: Some(false),
            ..ListInteractionsRequest::default()
        },
    )
    .await;
    assert_eq!(ids(&all), ids_of(&[&a, &b]));
    assert_eq!(all.total, 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_filters_on_the_vocabulary_fields_with_null_for_missing_values() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let r1 = record(
        &mut records,
        P,
        Interaction {
            theme: Some("opsCollDebt".into()),
            agent_outcome: Some("voiceRangNoPickup".into()),
            ..call(T0)
        },
    )
    .await;
    let r2 = record(
        &mut records,
        P,
        Interaction {
            channel: "email".into(),
            direction: "outbound".into(),
            status: "succeeded".into(),
            status_details: Some("emailDelivered".into()),
            subject: Some("paymentDueDateReminder".into()),
            started_at: at(T0 + HOUR),
            ..Interaction::default()
        },
    )
    .await;
    let r3 = record(
        &mut records,
        P,
        Interaction {
            channel: "voice".into(),
            direction: "inbound".into(),
            status: "succeeded".into(),
            agent_outcome: Some("voiceSpokeWithFirstParty".into()),
            theme: Some("inbPayments".into()),
            started_at: at(T0 + 2 * HOUR),
            ..Interaction::default()
        },
    )
    .await;
    let r4 = record(
        &mut records,
        P,
        Interaction {
            channel: "text".into(),
            direction: "outbound".into(),
            status: "failed".into(),
            status_details: Some("textNumberDisconnected".into()),
            subject: Some("freeForm".into()),
            theme: Some("opsServicing".into()),
            started_at: at(T0 + 3 * HOUR),
            ..Interaction::default()
        },
    )
    .await;
    let r5 = record(
        &mut records,
        P,
        Interaction {
            channel: "mail".into(),
            direction: "outbound".into(),
            status: "scheduled".into(),
            subject: Some("locStatementGenerated".into()),
            scheduled_at_from: at(T0 + 24 * HOUR),
            started_at: at(T0 + 4 * HOUR),
            ..Interaction::default()
        },
    )
    .await;
    // The deprecated subject is stored as its replacement.
    assert_eq!(r5.subject.as_deref(), Some("statementGenerated"));

    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let cases: Vec<(&str, ListInteractionsRequest, Vec<&Interaction>)> = vec![
        (
            "channel voice",
            ListInteractionsRequest {
                channel: s(&["voice"]),
                ..of(P)
            },
            vec![&r1, &r3],
        ),
        (
            "channel voice or email",
            ListInteractionsRequest {
                channel: s(&["voice", "email"]),
                ..of(P)
            },
            vec![&r1, &r2, &r3],
        ),
        (
            "direction inbound",
            ListInteractionsRequest {
                direction: "inbound".into(),
                ..of(P)
            },
            vec![&r3],
        ),
        (
            "channel voice and direction outbound",
            ListInteractionsRequest {
                channel: s(&["voice"]),
                direction: "outbound".into(),
                ..of(P)
            },
            vec![&r1],
        ),
        (
            "status succeeded",
            ListInteractionsRequest {
                status: s(&["succeeded"]),
                ..of(P)
            },
            vec![&r2, &r3],
        ),
        (
            "status failed or scheduled",
            ListInteractionsRequest {
                status: s(&["failed", "scheduled"]),
                ..of(P)
            },
            vec![&r4, &r5],
        ),
        (
            "status null (every record has one)",
            ListInteractionsRequest {
                status: s(&["null"]),
                ..of(P)
            },
            vec![],
        ),
        (
            "statusDetails emailDelivered",
            ListInteractionsRequest {
                status_details: s(&["emailDelivered"]),
                ..of(P)
            },
            vec![&r2],
        ),
        (
            "statusDetails null",
            ListInteractionsRequest {
                status_details: s(&["null"]),
                ..of(P)
            },
            vec![&r3, &r5],
        ),
        (
            "statusDetails voiceRangNoPickup or null",
            ListInteractionsRequest {
                status_details: s(&["voiceRangNoPickup", "null"]),
                ..of(P)
            },
            vec![&r1, &r3, &r5],
        ),
        (
            "agentOutcome voiceSpokeWithFirstParty",
            ListInteractionsRequest {
                agent_outcome: s(&["voiceSpokeWithFirstParty"]),
                ..of(P)
            },
            vec![&r3],
        ),
        (
            "agentOutcome null",
            ListInteractionsRequest {
                agent_outcome: s(&["null"]),
                ..of(P)
            },
            vec![&r2, &r4, &r5],
        ),
        (
            "subject null",
            ListInteractionsRequest {
                subject: s(&["null"]),
                ..of(P)
            },
            vec![&r1, &r3],
        ),
        (
            "subject freeForm or paymentDueDateReminder",
            ListInteractionsRequest {
                subject: s(&["freeForm", "paymentDueDateReminder"]),
                ..of(P)
            },
            vec![&r2, &r4],
        ),
        (
            "subject by its deprecated name",
            ListInteractionsRequest {
                subject: s(&["locStatementGenerated"]),
                ..of(P)
            },
            vec![&r5],
        ),
        (
            "theme opsCollDebt",
            ListInteractionsRequest {
                theme: s(&["opsCollDebt"]),
                ..of(P)
            },
            vec![&r1],
        ),
        (
            "theme inbPayments or opsServicing",
            ListInteractionsRequest {
                theme: s(&["inbPayments", "opsServicing"]),
                ..of(P)
            },
            vec![&r3, &r4],
        ),
        (
            "theme null",
            ListInteractionsRequest {
                theme: s(&["null"]),
                ..of(P)
            },
            vec![&r2, &r5],
        ),
        (
            "no match",
            ListInteractionsRequest {
                channel: s(&["fax"]),
                ..of(P)
            },
            vec![],
        ),
    ];
    for (label, q, expected) in cases {
        let r = list(&mut records, q).await;
        assert_eq!(ids(&r), ids_of(&expected), "{label}");
        assert_eq!(r.total as usize, expected.len(), "{label}");
    }

    // A value outside a vocabulary is refused, naming the filter.
    let err = list_err(
        &mut records,
        ListInteractionsRequest {
            channel: s(&["voise"]),
            ..of(P)
        },
    )
    .await;
    assert_invalid(
        &err,
        "channel",
        "`channel` value `voise` is not allowed; allowed: \"null\" or voice, email, fax, text, chat, mail, gui, \
         document (did you mean `voice`?)",
    );
    let err = list_err(
        &mut records,
        ListInteractionsRequest {
            direction: "sideways".into(),
            ..of(P)
        },
    )
    .await;
    assert_invalid(
        &err,
        "direction",
        "`direction` value `sideways` is not allowed; allowed: outbound, inbound",
    );
    let err = list_err(
        &mut records,
        ListInteractionsRequest {
            status_details: s(&["emailDelivred"]),
            ..of(P)
        },
    )
    .await;
    assert_invalid(
        &err,
        "statusDetails",
        "`statusDetails` value `emailDelivred` is not allowed; allowed: \"null\" or one of the 62 upstream values (did \
         you mean `emailDelivered`?)",
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_created_at_and_started_at_ranges_are_strict() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let a = record(&mut records, P, call(T0)).await;
    let b = record(&mut records, P, call(T0 + HOUR)).await;
    let c = record(&mut records, P, call(T0 + 2 * HOUR)).await;
    let all = [&a, &b, &c];

    // startedAt: fixed times.
    let started = |before: Option<i64>, after: Option<i64>| ListInteractionsRequest {
        started_at_before: before.and_then(at),
        started_at_after: after.and_then(at),
        ..of(P)
    };
    for (before, after, expected) in [
        (Some(T0 + HOUR), None, vec![&a]),
        (Some(T0 + HOUR + 1), None, vec![&a, &b]),
        (None, Some(T0 + HOUR), vec![&c]),
        (None, Some(T0 + HOUR - 1), vec![&b, &c]),
        (Some(T0 + 2 * HOUR), Some(T0), vec![&b]),
        (Some(T0), None, vec![]),
    ] {
        let r = list(&mut records, started(before, after)).await;
        assert_eq!(ids(&r), ids_of(&expected), "{before:?} {after:?}");
        assert_eq!(r.total as usize, expected.len());
    }

    // createdAt is the server's clock: the bounds are the stored values,
    // and the expectation is computed from them, not from the order of the
    // calls.
    let created = |i: &Interaction| key(&i.created_at);
    let plus_one_ns = |t: Option<Timestamp>| {
        let t = t.unwrap();
        let n = i64::from(t.nanos) + 1;
        Some(Timestamp {
            seconds: t.seconds + n / 1_000_000_000,
            nanos: i32::try_from(n % 1_000_000_000).unwrap(),
        })
    };
    let r = list(
        &mut records,
        ListInteractionsRequest {
            created_at_before: b.created_at,
            ..of(P)
        },
    )
    .await;
    let expected: Vec<&Interaction> = all
        .iter()
        .copied()
        .filter(|i| created(i) < created(&b))
        .collect();
    assert_eq!(ids(&r), ids_of(&expected));
    assert!(!ids(&r).contains(&b.id), "createdAtBefore is strict");
    let r = list(
        &mut records,
        ListInteractionsRequest {
            created_at_before: plus_one_ns(b.created_at),
            ..of(P)
        },
    )
    .await;
    assert!(ids(&r).contains(&b.id));
    let r = list(
        &mut records,
        ListInteractionsRequest {
            created_at_after: b.created_at,
            ..of(P)
        },
    )
    .await;
    let expected: Vec<&Interaction> = all
        .iter()
        .copied()
        .filter(|i| created(i) > created(&b))
        .collect();
    assert_eq!(ids(&r), ids_of(&expected));
    assert!(!ids(&r).contains(&b.id), "createdAtAfter is strict");
    let r = list(
        &mut records,
        ListInteractionsRequest {
            created_at_after: a.created_at,
            created_at_before: c.created_at,
            ..of(P)
        },
    )
    .await;
    let expected: Vec<&Interaction> = all
        .iter()
        .copied()
        .filter(|i| created(i) > created(&a) && created(i) < created(&c))
        .collect();
    assert_eq!(ids(&r), ids_of(&expected));
    assert!(!ids(&r).contains(&a.id) && !ids(&r).contains(&c.id));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_scheduled_ranges_are_inclusive() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let scheduled = |from: i64, to: i64| Interaction {
        status: "scheduled".into(),
        status_details: None,
        scheduled_at_from: at(from),
        scheduled_at_to: at(to),
        ..call(T0)
    };
    let s1 = record(&mut records, P, scheduled(T0, T0 + HOUR)).await;
    let s2 = record(&mut records, P, scheduled(T0 + 2 * HOUR, T0 + 3 * HOUR)).await;
    // Not scheduled: no scheduled range matches it.
    record(&mut records, P, call(T0)).await;

    let q = |from_before: Option<i64>,
             from_after: Option<i64>,
             to_before: Option<i64>,
             to_after: Option<i64>| ListInteractionsRequest {
        scheduled_at_from_before: from_before.and_then(at),
        scheduled_at_from_after: from_after.and_then(at),
        scheduled_at_to_before: to_before.and_then(at),
        scheduled_at_to_after: to_after.and_then(at),
        ..of(P)
    };
    for (label, req, expected) in [
        (
            "fromBefore = s1.from",
            q(Some(T0), None, None, None),
            vec![&s1],
        ),
        (
            "fromBefore < s1.from",
            q(Some(T0 - 1), None, None, None),
            vec![],
        ),
        (
            "fromBefore = s2.from",
            q(Some(T0 + 2 * HOUR), None, None, None),
            vec![&s1, &s2],
        ),
        (
            "fromAfter = s2.from",
            q(None, Some(T0 + 2 * HOUR), None, None),
            vec![&s2],
        ),
        (
            "fromAfter = s1.from",
            q(None, Some(T0), None, None),
            vec![&s1, &s2],
        ),
        (
            "fromAfter > s2.from",
            q(None, Some(T0 + 2 * HOUR + 1), None, None),
            vec![],
        ),
        (
            "toBefore = s1.to",
            q(None, None, Some(T0 + HOUR), None),
            vec![&s1],
        ),
        (
            "toBefore < s1.to",
            q(None, None, Some(T0 + HOUR - 1), None),
            vec![],
        ),
        (
            "toAfter = s2.to",
            q(None, None, None, Some(T0 + 3 * HOUR)),
            vec![&s2],
        ),
        (
            "toAfter = s1.to",
            q(None, None, None, Some(T0 + HOUR)),
            vec![&s1, &s2],
        ),
        (
            "from in [s1.from, s2.from - 1] and to in [s1.to, s1.to]",
            q(
                Some(T0 + 2 * HOUR - 1),
                Some(T0),
                Some(T0 + HOUR),
                Some(T0 + HOUR),
            ),
            vec![&s1],
        ),
    ] {
        let r = list(&mut records, req).await;
        assert_eq!(ids(&r), ids_of(&expected), "{label}");
        assert_eq!(r.total as usize, expected.len(), "{label}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_filters_on_sensitive_and_is_external() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let plain = record(&mut records, P, call(T0)).await;
    let ours = record(
        &mut records,
        P,
        Interaction {
            sensitive: Some(false),
            is_external: Some(false),
            ..call(T0)
        },
    )
    .await;
    let secret = record(
        &mut records,
        P,
        Interaction {
            sensitive: Some(true),
            ..call(T0)
        },
    )
    .await;
    let q = |sensitive: Option<bool>, is_external: Option<bool>| ListInteractionsRequest {
        sensitive,
        is_external,
        ..of(P)
    };
    for (label, req, pipeline, audit) in [
        (
            "no filter",
            q(None, None),
            vec![&plain, &ours],
            vec![&plain, &ours, &secret],
        ),
        ("sensitive", q(Some(true), None), vec![], vec![&secret]),
        (
            "not sensitive",
            q(Some(false), None),
            vec![&plain, &ours],
            vec![&plain, &ours],
        ),
        (
            "external",
            q(None, Some(true)),
            vec![&plain],
            vec![&plain, &secret],
        ),
        (
            "not external",
            q(None, Some(false)),
            vec![&ours],
            vec![&ours],
        ),
        (
            "sensitive and external",
            q(Some(true), Some(true)),
            vec![],
            vec![&secret],
        ),
        (
            "sensitive and not external",
            q(Some(true), Some(false)),
            vec![],
            vec![],
        ),
    ] {
        let r = list(&mut records, req.clone()).await;
        assert_eq!(ids(&r), ids_of(&pipeline), "pipeline, {label}");
        assert_eq!(r.total as usize, pipeline.len(), "pipeline, {label}");
        let r = list(&mut auditor, req).await;
        assert_eq!(ids(&r), ids_of(&audit), "auditor, {label}");
        assert_eq!(r.total as usize, audit.len(), "auditor, {label}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_content_contains_matches_the_content_json() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let letter = record(
        &mut records,
        P,
        Interaction {
            content: Some(Value {
                kind: Some(Kind::StructValue(object(&[
                    ("body", string("Your payment of $50 is due")),
                    ("lang", string("en")),
                ]))),
            }),
            ..call(T0)
        },
    )
    .await;
    let note = record(
        &mut records,
        P,
        Interaction {
            content: Some(string("hello world")),
            ..call(T0)
        },
    )
    .await;
    let empty = record(&mut records, P, call(T0)).await;
    let q = |needle: &str| ListInteractionsRequest {
        content_contains: needle.into(),
        ..of(P)
    };
    for (needle, expected) in [
        ("payment of $50", vec![&letter]),
        ("hello", vec![&note]),
        ("o", vec![&letter, &note]),
        ("goodbye", vec![]),
        ("", vec![&letter, &note, &empty]),
    ] {
        let r = list(&mut records, q(needle)).await;
        assert_eq!(ids(&r), ids_of(&expected), "{needle:?}");
        assert_eq!(r.total as usize, expected.len(), "{needle:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_limit_defaults_to_25_honours_1_to_100_and_refuses_101() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut all = Vec::new();
    for n in 0..105 {
        all.push(record(&mut records, P, call(T0 + n * MINUTE)).await);
    }
    let first = |n: usize| all.iter().take(n).map(|i| i.id.clone()).collect::<Vec<_>>();
    let r = list(&mut records, of(P)).await;
    assert_eq!((r.total, r.count), (105, 25));
    assert_eq!(ids(&r), first(25));
    for limit in [1u32, 2, 50, 99, 100] {
        let r = list(&mut records, ListInteractionsRequest { limit, ..of(P) }).await;
        assert_eq!((r.total, r.count), (105, limit), "limit {limit}");
        assert_eq!(ids(&r), first(limit as usize), "limit {limit}");
    }
    for limit in [101u32, 1000] {
        let err = list_err(&mut records, ListInteractionsRequest { limit, ..of(P) }).await;
        assert_invalid(
            &err,
            "limit",
            &format!("`limit` value {limit} is not allowed; allowed: 1 to 100"),
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_pages_with_offset_starting_after_and_ending_before() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut all = Vec::new();
    for n in 0..10 {
        all.push(
            record(
                &mut records,
                P,
                with_ext(call(T0 + n * MINUTE), &format!("call-{n}")),
            )
            .await,
        );
    }
    let slice = |from: usize, to: usize| {
        all[from..to]
            .iter()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };
    let page = |limit: u32, offset: u32, after: &str, before: &str| ListInteractionsRequest {
        limit,
        offset,
        starting_after: after.into(),
        ending_before: before.into(),
        ..of(P)
    };
    let cases: Vec<(&str, ListInteractionsRequest, Vec<String>)> = vec![
        ("offset 3, limit 2", page(2, 3, "", ""), slice(3, 5)),
        ("offset 8, default limit", page(0, 8, "", ""), slice(8, 10)),
        ("offset past the end", page(0, 10, "", ""), vec![]),
        ("after our id", page(3, 0, &all[2].id, ""), slice(3, 6)),
        (
            "after an ext- id",
            page(3, 0, "ext-call-2", ""),
            slice(3, 6),
        ),
        (
            "after, then offset",
            page(2, 1, "ext-call-2", ""),
            slice(4, 6),
        ),
        ("after the last", page(3, 0, "ext-call-9", ""), vec![]),
        ("before our id", page(3, 0, "", &all[7].id), slice(4, 7)),
        (
            "before an ext- id",
            page(3, 0, "", "ext-call-7"),
            slice(4, 7),
        ),
        (
            "before, near the start",
            page(3, 0, "", "ext-call-1"),
            slice(0, 1),
        ),
        ("before the first", page(3, 0, "", "ext-call-0"), vec![]),
        (
            "before, default limit",
            page(0, 0, "", "ext-call-9"),
            slice(0, 9),
        ),
    ];
    for (label, q, expected) in cases {
        let r = list(&mut records, q).await;
        assert_eq!(ids(&r), expected, "{label}");
        assert_eq!(r.total, 10, "{label}: total counts every match");
        assert_eq!(r.count as usize, expected.len(), "{label}");
    }

    // With ending_before, an offset moves the page away from the cursor, as
    // with starting_after.
    for (label, q, expected) in [
        (
            "before, then offset",
            page(3, 2, "", "ext-call-7"),
            slice(2, 5),
        ),
        (
            "before, offset near the start",
            page(3, 2, "", "ext-call-4"),
            slice(0, 2),
        ),
        (
            "before, offset past the start",
            page(3, 5, "", "ext-call-4"),
            vec![],
        ),
    ] {
        let r = list(&mut records, q).await;
        assert_eq!(ids(&r), expected, "{label}");
        assert_eq!(r.total, 10, "{label}");
    }

    // Cursors follow the sort order.
    let r = list(
        &mut records,
        ListInteractionsRequest {
            sort_by: vec!["-startedAt".into()],
            ..page(3, 0, "ext-call-5", "")
        },
    )
    .await;
    let mut expected = slice(2, 5);
    expected.reverse();
    assert_eq!(ids(&r), expected);

    // A cursor that is not in the list: not found.
    let err = list_err(&mut records, page(3, 0, "ext-call-404", "")).await;
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let other = record(&mut records, Q, call(T0)).await;
    let err = list_err(&mut records, page(3, 0, &other.id, "")).await;
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_sorts_by_started_at_with_no_prefix_meaning_descending() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let x1 = record(&mut records, P, call(T0 + 2 * HOUR)).await;
    let x2 = record(&mut records, P, call(T0)).await;
    let x3 = record(&mut records, P, call(T0 + HOUR)).await;
    let x4 = record(
        &mut records,
        P,
        Interaction {
            channel: "email".into(),
            status_details: None,
            ..call(T0 + HOUR)
        },
    )
    .await;
    let q = |sort: &[&str]| ListInteractionsRequest {
        sort_by: sort.iter().map(|s| (*s).to_owned()).collect(),
        ..of(P)
    };
    for (sort, expected) in [
        (vec![], vec![&x1, &x2, &x3, &x4]),
        (vec!["-startedAt"], vec![&x1, &x3, &x4, &x2]),
        (vec!["startedAt"], vec![&x1, &x3, &x4, &x2]),
        (vec!["+startedAt"], vec![&x2, &x3, &x4, &x1]),
        (vec!["-id"], vec![&x4, &x3, &x2, &x1]),
        (vec!["+id"], vec![&x1, &x2, &x3, &x4]),
        // Ties broken by the next key, then by creation order.
        (vec!["+startedAt", "-channel"], vec![&x2, &x3, &x4, &x1]),
        (vec!["+startedAt", "+channel"], vec![&x2, &x4, &x3, &x1]),
        (vec!["+channel"], vec![&x4, &x1, &x2, &x3]),
    ] {
        let r = list(&mut records, q(&sort)).await;
        assert_eq!(ids(&r), ids_of(&expected), "{sort:?}");
    }
    let err = list_err(&mut records, q(&["-startedat"])).await;
    assert_invalid(
        &err,
        "sortBy",
        "`sortBy` value `-startedat` is not a sort field; allowed: id, createdAt, startedAt, scheduledAtFrom, \
         scheduledAtTo, channel, direction, status, contactName (did you mean `startedAt`?) with an optional + or - prefix",
    );
    let err = list_err(&mut records, q(&["+startedAt", "colour"])).await;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err)[0].0, "sortBy");
    server.stop().await.unwrap();
}

// ---- sensitive interactions -----------------------------------------------

#[tokio::test]
async fn sensitive_interactions_are_hidden_from_the_pipeline_but_not_the_auditor() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let plain = record(&mut records, P, call(T0)).await;
    let secret = record(
        &mut records,
        P,
        with_ext(
            Interaction {
                sensitive: Some(true),
                ..call(T0 + HOUR)
            },
            "secret-1",
        ),
    )
    .await;
    assert_eq!(secret.sensitive, Some(true));

    for id in [secret.id.as_str(), "ext-secret-1"] {
        let err = get(&mut records, "", id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err:?}");
        let err = get(&mut records, P, id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err:?}");
        assert_eq!(get(&mut auditor, "", id).await.unwrap(), secret);
        assert_eq!(get(&mut auditor, P, id).await.unwrap(), secret);
    }
    let r = list(&mut records, of(P)).await;
    assert_eq!(ids(&r), ids_of(&[&plain]));
    assert_eq!(r.total, 1);
    let r = list(&mut auditor, of(P)).await;
    assert_eq!(ids(&r), ids_of(&[&plain, &secret]));
    assert_eq!(r.total, 2);

    // Nor can the pipeline change or delete it.
    let err = update(&mut records, &secret.id, Interaction::default(), &["theme"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = delete(&mut records, "", &secret.id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(get(&mut auditor, "", &secret.id).await.unwrap(), secret);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sensitive_interactions_still_count_in_the_pipelines_check() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut checks = server.checks().await;
    let mut secrets = Vec::new();
    for n in 0..7 {
        secrets.push(
            record(
                &mut records,
                P,
                Interaction {
                    sensitive: Some(true),
                    ..call_about_l1(T0 + n * MINUTE)
                },
            )
            .await,
        );
    }
    assert_eq!(list(&mut records, of(P)).await.total, 0);
    let r = check(&mut checks, check_call(P, T0 + 6 * HOUR)).await;
    assert!(!r.allowed, "{r:?}");
    assert_eq!(r.compliance_guard_rule_id, "us-regf-7-calls-in-7-days");
    let v = r
        .violations
        .iter()
        .find(|v| v.rule_id == "us-regf-7-calls-in-7-days")
        .unwrap();
    assert_eq!((v.count, v.limit), (7, 7));
    let mut counted = v.counted_interaction_ids.clone();
    counted.sort();
    let all: Vec<&Interaction> = secrets.iter().collect();
    assert_eq!(counted, ids_of(&all));
    server.stop().await.unwrap();
}

// ---- GetPreviousInteractions ----------------------------------------------

#[tokio::test]
async fn previous_interactions_are_the_chain_nearest_first() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let a = record(
        &mut records,
        P,
        Interaction {
            direction: "inbound".into(),
            status: "succeeded".into(),
            status_details: Some("voiceSpokeWithFirstParty".into()),
            ..call(T0)
        },
    )
    .await;
    let b = record(
        &mut records,
        P,
        Interaction {
            previous_interaction_id: Some(a.id.clone()),
            ..call(T0 + HOUR)
        },
    )
    .await;
    let c = record(
        &mut records,
        P,
        Interaction {
            previous_interaction_id: Some(b.id.clone()),
            ..call(T0 + 2 * HOUR)
        },
    )
    .await;
    let chain = ids_of(&[&b, &a]);
    assert_eq!(previous(&mut records, "", &c.id).await.unwrap(), chain);
    assert_eq!(previous(&mut records, P, &c.id).await.unwrap(), chain);
    assert_eq!(
        previous(&mut records, "", &b.id).await.unwrap(),
        ids_of(&[&a])
    );
    assert_eq!(
        previous(&mut records, "", &a.id).await.unwrap(),
        Vec::<String>::new()
    );
    // The full records come back.
    let full = records
        .get_previous_interactions(GetPreviousInteractionsRequest {
            company_id: String::new(),
            interaction_id: c.id.clone(),
            person_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.data, vec![b.clone(), a.clone()]);

    let err = previous(&mut records, Q, &c.id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = previous(&mut records, "", "IT-0000-00009999")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = previous(&mut records, "", "hello").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn previous_interactions_follow_ext_links() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let a = record(&mut records, P, with_ext(call(T0), "a-1")).await;
    let b = record(
        &mut records,
        P,
        with_ext(
            Interaction {
                previous_interaction_id: Some("ext-a-1".into()),
                ..call(T0 + HOUR)
            },
            "b-1",
        ),
    )
    .await;
    let c = record(
        &mut records,
        P,
        with_ext(
            Interaction {
                previous_interaction_id: Some("ext-b-1".into()),
                ..call(T0 + 2 * HOUR)
            },
            "c-1",
        ),
    )
    .await;
    let chain = ids_of(&[&b, &a]);
    assert_eq!(previous(&mut records, "", "ext-c-1").await.unwrap(), chain);
    assert_eq!(previous(&mut records, P, &c.id).await.unwrap(), chain);
    assert_eq!(previous(&mut records, P, "ext-c-1").await.unwrap(), chain);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn previous_interactions_leave_out_a_sensitive_link_for_the_pipeline() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let mut auditor = server.interactions_as(AUDITOR_KEY).await;
    let a = record(&mut records, P, call(T0)).await;
    let b = record(
        &mut records,
        P,
        Interaction {
            sensitive: Some(true),
            previous_interaction_id: Some(a.id.clone()),
            ..call(T0 + HOUR)
        },
    )
    .await;
    let c = record(
        &mut records,
        P,
        Interaction {
            previous_interaction_id: Some(b.id.clone()),
            ..call(T0 + 2 * HOUR)
        },
    )
    .await;
    assert_eq!(
        previous(&mut records, "", &c.id).await.unwrap(),
        ids_of(&[&a])
    );
    assert_eq!(
        previous(&mut auditor, "", &c.id).await.unwrap(),
        ids_of(&[&b, &a])
    );
    // The sensitive interaction itself is not found for the pipeline.
    let err = previous(&mut records, "", &b.id).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        previous(&mut auditor, "", &b.id).await.unwrap(),
        ids_of(&[&a])
    );
    server.stop().await.unwrap();
}

// ---- JSON fields -----------------------------------------------------------

#[tokio::test]
async fn meta_data_content_and_contact_round_trip() {
    let server = ready_server().await;
    let mut records = server.interactions().await;
    let meta_data = object(&[
        ("campaign", string("spring-2020")),
        ("attempt", number(3.0)),
        ("score", number(0.25)),
        (
            "flags",
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![
                        Value {
                            kind: Some(Kind::BoolValue(true)),
                        },
                        Value {
                            kind: Some(Kind::NullValue(0)),
                        },
                        string("x"),
                    ],
                })),
            },
        ),
        (
            "dialer",
            Value {
                kind: Some(Kind::StructValue(object(&[
                    ("name", string("acme")),
                    ("line", number(7.0)),
                ]))),
            },
        ),
    ]);
    let content = Value {
        kind: Some(Kind::StructValue(object(&[
            ("transcript", string("Hello, this is Acme.")),
            (
                "turns",
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![
                            Value {
                                kind: Some(Kind::StructValue(object(&[
                                    ("who", string("agent")),
                                    ("seconds", number(12.5)),
                                ]))),
                            },
                            Value {
                                kind: Some(Kind::StructValue(object(&[]))),
                            },
                        ],
                    })),
                },
            ),
        ]))),
    };
    let contact = compliance_guard::pb::Contact {
        kind: "mobilePhone".into(),
        value: "+15555550100".into(),
        name: "Jo Borrower".into(),
    };
    let stored = record(
        &mut records,
        P,
        Interaction {
            meta_data: Some(meta_data.clone()),
            content: Some(content.clone()),
            contact: Some(contact.clone()),
            ..call(T0)
        },
    )
    .await;
    assert_eq!(stored.meta_data.as_ref(), Some(&meta_data));
    assert_eq!(stored.content.as_ref(), Some(&content));
    assert_eq!(stored.contact.as_ref(), Some(&contact));
    let got = get(&mut records, P, &stored.id).await.unwrap();
    assert_eq!(got.meta_data, Some(meta_data.clone()));
    assert_eq!(got.content, Some(content.clone()));
    assert_eq!(got.contact, Some(contact));
    assert_eq!(got, stored);

    // A content that is not an object, and a metaData replaced by update.
    let new_meta = object(&[("campaign", string("summer-2020"))]);
    let updated = update(
        &mut records,
        &stored.id,
        Interaction {
            meta_data: Some(new_meta.clone()),
            content: Some(string("plain text")),
            ..Interaction::default()
        },
        &["metaData", "content"],
    )
    .await
    .unwrap();
    assert_eq!(updated.meta_data, Some(new_meta.clone()));
    assert_eq!(updated.content, Some(string("plain text")));
    let got = get(&mut records, "", &stored.id).await.unwrap();
    assert_eq!(got.meta_data, Some(new_meta));
    assert_eq!(got.content, Some(string("plain text")));
    server.stop().await.unwrap();
}
