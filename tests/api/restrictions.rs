//! End-to-end tests of the restriction RPCs of
//! `complianceguard.v1.ComplianceGuardService` (AddRestriction, EndRestriction,
//! ListRestrictions, ExplainRestrictions): the real server on 127.0.0.1:0
//! and a real tonic client. Add, list and end with the history kept;
//! "in force" at a moment; field-level refusals with google.rpc.BadRequest;
//! the caller's name from the credential; a restart on the same data
//! directory (journal and store); the rules each restriction is read by;
//! and a Check blocked by a cease letter.
//!
//! Times that matter are fixed (March 2020); Checks pass `at` explicitly.

use std::path::Path;

use compliance_guard::pb::{
    AddRestrictionRequest, CheckRequest, EndRestrictionRequest, ExplainRestrictionsRequest,
    ListRestrictionsRequest, Restriction,
};
use prost_types::Timestamp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::ops::durability::{assert_read_from_the_store, assert_store_at, frames, store_records};
use crate::support::consts::{AUDITOR_KEY, DAY, HOUR, MINUTE, P, Q, T0};
use crate::support::server::{Checks, ready_server, start_on};

/// The Reg F rule that honours a cease (rules/us-reg-f.yaml).
const CEASE_RULE: &str = "us-regf-cease-communication";

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A restriction of `kind` received at `received` (Unix seconds), told by
/// letter.
fn given(kind: &str, received: i64) -> Restriction {
    Restriction {
        kind: kind.into(),
        source: "letter".into(),
        received_at: at(received),
        ..Restriction::default()
    }
}

/// A cease letter about loan L1, received at `received`.
fn cease(received: i64) -> Restriction {
    Restriction {
        loan_ids: vec!["L1".into()],
        ..given("ceaseCommunication", received)
    }
}

async fn add_result(
    checks: &mut Checks,
    person: &str,
    r: Restriction,
) -> Result<Restriction, Status> {
    Ok(checks
        .add_restriction(AddRestrictionRequest {
            person_id: person.into(),
            restriction: Some(r),
        })
        .await?
        .into_inner()
        .restriction
        .expect("a restriction in the answer"))
}

async fn add(checks: &mut Checks, person: &str, r: Restriction) -> Restriction {
    add_result(checks, person, r).await.unwrap()
}

async fn end_result(
    checks: &mut Checks,
    person: &str,
    id: &str,
    ended_at: Option<Timestamp>,
    reason: &str,
) -> Result<Restriction, Status> {
    Ok(checks
        .end_restriction(EndRestrictionRequest {
            person_id: person.into(),
            restriction_id: id.into(),
            ended_at,
            end_reason: reason.into(),
        })
        .await?
        .into_inner()
        .restriction
        .expect("a restriction in the answer"))
}

async fn list_result(
    checks: &mut Checks,
    person: &str,
    include_ended: bool,
    when: Option<Timestamp>,
) -> Result<Vec<Restriction>, Status> {
    Ok(checks
        .list_restrictions(ListRestrictionsRequest {
            person_id: person.into(),
            include_ended,
            at: when,
        })
        .await?
        .into_inner()
        .restrictions)
}

async fn list(
    checks: &mut Checks,
    person: &str,
    include_ended: bool,
    when: Option<Timestamp>,
) -> Vec<Restriction> {
    list_result(checks, person, include_ended, when)
        .await
        .unwrap()
}

fn ids(list: &[Restriction]) -> Vec<&str> {
    list.iter().map(|r| r.id.as_str()).collect()
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

fn fields(status: &Status) -> Vec<String> {
    violations(status).into_iter().map(|(f, _)| f).collect()
}

/// The description of the violation of `field`.
fn about(status: &Status, field: &str) -> String {
    violations(status)
        .into_iter()
        .find(|(f, _)| f == field)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no violation of `{field}` in {status:?}"))
}

// ---- add, list, end ---------------------------------------------------------

#[tokio::test]
async fn add_then_list_then_end_keeps_the_ended_restriction_in_the_history() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let added = add(&mut checks, P, cease(T0)).await;
    assert!(added.id.starts_with("RS-"), "{added:?}");
    assert_eq!(added.person_id, P);
    assert_eq!(added.kind, "ceaseCommunication");
    assert_eq!(added.source, "letter");
    assert_eq!(added.received_at, at(T0));
    assert_eq!(added.loan_ids, vec!["L1".to_owned()]);
    assert_eq!(added.recorded_by, "pipeline");
    let recorded = added.recorded_at.expect("recordedAt").seconds;
    assert!((recorded - now_seconds()).abs() < 60, "{recorded}");
    assert!(added.in_force, "received in the past: in force now");
    assert_eq!(added.ended_at, None);

    // A second one, so that the order recorded shows.
    let second = add(
        &mut checks,
        P,
        Restriction {
            channels: vec!["voice".into()],
            source: "call".into(),
            ..given("mediumOptOut", T0 + HOUR)
        },
    )
    .await;
    assert_ne!(second.id, added.id);
    let in_force = list(&mut checks, P, false, None).await;
    assert_eq!(ids(&in_force), vec![added.id.as_str(), second.id.as_str()]);
    assert_eq!(in_force[0], added, "listed as added");

    let ended = end_result(
        &mut checks,
        P,
        &added.id,
        at(T0 + 2 * HOUR),
        "  borrower withdrew the letter  ",
    )
    .await
    .unwrap();
    assert_eq!(ended.id, added.id);
    assert_eq!(ended.ended_at, at(T0 + 2 * HOUR));
    assert_eq!(ended.ended_by, "pipeline");
    assert_eq!(ended.end_reason, "borrower withdrew the letter");
    assert!(!ended.in_force);
    assert_eq!(ended.recorded_by, "pipeline", "the recorder is kept");
    assert_eq!(ended.recorded_at, added.recorded_at);

    // Without include_ended: only what is in force now.
    assert_eq!(
        ids(&list(&mut checks, P, false, None).await),
        vec![second.id.as_str()]
    );
    // With it: both, in the order recorded, each with in_force for now.
    let all = list(&mut checks, P, true, None).await;
    assert_eq!(ids(&all), vec![added.id.as_str(), second.id.as_str()]);
    assert_eq!(all[0], ended);
    assert!(all[1].in_force);
    // Before its end, the ended one was in force.
    let then = list(&mut checks, P, false, at(T0 + HOUR + MINUTE)).await;
    assert_eq!(ids(&then), vec![added.id.as_str(), second.id.as_str()]);
    assert!(then.iter().all(|r| r.in_force));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn in_force_is_judged_at_the_moment_asked_about() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    // Received two minutes ahead of the server's clock: within the clock
    // skew AddRestriction allows (a receivedAt further ahead is refused).
    let soon = now_seconds() + 2 * MINUTE;
    let later = add(&mut checks, P, cease(soon)).await;
    assert!(!later.in_force, "received in two minutes: not in force now");
    assert!(list(&mut checks, P, false, None).await.is_empty());
    let all = list(&mut checks, P, true, None).await;
    assert_eq!(ids(&all), vec![later.id.as_str()]);
    assert!(!all[0].in_force);
    let then = list(&mut checks, P, false, at(soon + HOUR)).await;
    assert_eq!(ids(&then), vec![later.id.as_str()]);
    assert!(then[0].in_force);
    // The moment of receipt is in force; the second before is not.
    assert_eq!(list(&mut checks, P, false, at(soon)).await.len(), 1);
    assert!(list(&mut checks, P, false, at(soon - 1)).await.is_empty());

    // A period with its own end is in force until then, not at it.
    let period = add(
        &mut checks,
        Q,
        Restriction {
            reason: "dispute".into(),
            ends_at: at(T0 + DAY),
            source: "lender".into(),
            ..given("doNotInteract", T0)
        },
    )
    .await;
    assert_eq!(period.ends_at, at(T0 + DAY));
    assert_eq!(period.reason, "dispute");
    assert_eq!(
        ids(&list(&mut checks, Q, false, at(T0 + DAY - 1)).await),
        vec![period.id.as_str()]
    );
    assert!(list(&mut checks, Q, false, at(T0 + DAY)).await.is_empty());
    assert!(list(&mut checks, Q, false, None).await.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_borrower_by_external_id_gets_an_id_of_ours_and_is_listed_by_either() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let added = add(&mut checks, "ext-crm-77", cease(T0)).await;
    assert!(added.person_id.starts_with("BO-"), "{added:?}");
    let by_ext = list(&mut checks, "ext-crm-77", true, None).await;
    let by_ours = list(&mut checks, &added.person_id, true, None).await;
    assert_eq!(ids(&by_ext), vec![added.id.as_str()]);
    assert_eq!(by_ext, by_ours);
    // Ended by the external id too.
    let ended = end_result(&mut checks, "ext-crm-77", &added.id, None, "")
        .await
        .unwrap();
    let ended_at = ended.ended_at.expect("endedAt defaults to now").seconds;
    assert!((ended_at - now_seconds()).abs() < 60, "{ended_at}");
    assert_eq!(ended.end_reason, "");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn recorded_by_and_ended_by_come_from_the_credential_never_the_message() {
    let server = ready_server().await;
    let mut pipeline = server.checks().await;
    let mut auditor = server.checks_as(AUDITOR_KEY).await;
    let forged = Restriction {
        recorded_by: "mallory".into(),
        recorded_at: at(T0 - DAY),
        in_force: false,
        person_id: P.into(),
        ..cease(T0)
    };
    let added = add(&mut pipeline, P, forged).await;
    assert_eq!(added.recorded_by, "pipeline");
    assert_ne!(added.recorded_at, at(T0 - DAY));
    assert!(added.in_force);
    let ended = end_result(&mut auditor, P, &added.id, None, "revoked by phone")
        .await
        .unwrap();
    assert_eq!(ended.recorded_by, "pipeline");
    assert_eq!(ended.ended_by, "auditor");
    // Without a key: nothing.
    let mut anonymous = server.checks_without_key().await;
    for status in [
        add_result(&mut anonymous, P, cease(T0)).await.unwrap_err(),
        list_result(&mut anonymous, P, true, None)
            .await
            .unwrap_err(),
        end_result(&mut anonymous, P, &added.id, None, "")
            .await
            .unwrap_err(),
        anonymous
            .explain_restrictions(ExplainRestrictionsRequest {
                person_id: P.into(),
                at: None,
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(list(&mut pipeline, P, true, None).await.len(), 1);
    server.stop().await.unwrap();
}

// ---- refusals ---------------------------------------------------------------

#[tokio::test]
async fn bad_fields_are_invalid_argument_listing_every_field_and_store_nothing() {
    let server = ready_server().await;
    let mut checks = server.checks().await;

    // An unknown kind (with a suggestion), no source, no receivedAt, and
    // the fields the guard sets.
    let status = add_result(
        &mut checks,
        P,
        Restriction {
            id: "RS-0000-00000001".into(),
            kind: "ceaseComunication".into(),
            ended_at: at(T0),
            ..Restriction::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        fields(&status),
        vec!["id", "endedAt", "kind", "source"],
        "{status:?}"
    );
    let kind = about(&status, "kind");
    assert!(
        kind.starts_with("`kind` value `ceaseComunication` is not allowed; allowed: ceaseCommunication, mediumOptOut,"),
        "{kind}"
    );
    assert!(
        kind.ends_with("(did you mean `ceaseCommunication`?)"),
        "{kind}"
    );
    // A left-out receivedAt is now, so it is not among the problems.
    assert!(
        about(&status, "id").contains("set by the guard"),
        "{status:?}"
    );
    assert!(
        about(&status, "endedAt").contains("EndRestriction"),
        "{status:?}"
    );
    // Each description names its field, so the summary lists them all.
    for (field, description) in violations(&status) {
        assert!(description.contains(&format!("`{field}`")), "{description}");
        assert!(status.message().contains(&description), "{status:?}");
    }

    // loanIds on an opt-out (which covers every debt); no receivedAt is now.
    let status = add_result(
        &mut checks,
        P,
        Restriction {
            kind: "mediumOptOut".into(),
            source: "stopReply".into(),
            channels: vec!["text".into()],
            loan_ids: vec!["L1".into()],
            ..Restriction::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), vec!["loanIds"], "{status:?}");
    assert_eq!(
        about(&status, "loanIds"),
        "`loanIds` is not allowed for `kind` `mediumOptOut`: an opt-out covers every debt (comment 14(h)(1)-3.ii)"
    );

    // endsAt on a cease (it lasts until ended), a bad channel, a person
    // other than the request's.
    let status = add_result(
        &mut checks,
        P,
        Restriction {
            ends_at: at(T0 + DAY),
            channels: vec!["telegram".into()],
            person_id: Q.into(),
            ..cease(T0)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        fields(&status),
        vec!["personId", "channels", "channels", "endsAt"],
        "{status:?}"
    );
    assert!(
        about(&status, "endsAt")
            .starts_with("`endsAt` is not allowed for `kind` `ceaseCommunication`"),
        "{status:?}"
    );

    // No restriction at all; no person.
    let status = checks
        .add_restriction(AddRestrictionRequest {
            person_id: P.into(),
            restriction: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        vec![(
            "restriction".to_owned(),
            "`restriction` is required".to_owned()
        )]
    );
    let status = add_result(&mut checks, "", cease(T0)).await.unwrap_err();
    assert_eq!(fields(&status), vec!["personId"], "{status:?}");

    // Nothing was stored, and no person was registered.
    let status = list_result(&mut checks, P, true, None).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), format!("no person `{P}`"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ending_twice_an_unknown_id_or_before_receipt_is_refused() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let added = add(&mut checks, P, cease(T0)).await;
    add(&mut checks, Q, cease(T0)).await;

    // Before its receipt: INVALID_ARGUMENT on endedAt.
    let status = end_result(&mut checks, P, &added.id, at(T0 - 1), "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), vec!["endedAt"]);
    assert!(
        about(&status, "endedAt").contains("is before the restriction's `receivedAt`"),
        "{status:?}"
    );
    // Missing ids; a reason too long.
    let status = end_result(&mut checks, "", "", None, &"x".repeat(2_001))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&status),
        vec!["personId", "restrictionId", "endReason"],
        "{status:?}"
    );
    // Unknown id, or another person's: NOT_FOUND.
    let status = end_result(&mut checks, P, "RS-0000-DEADBEEF", None, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("RS-0000-DEADBEEF"), "{status:?}");
    let status = end_result(&mut checks, Q, &added.id, None, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = list_result(&mut checks, "BO-CCCC-0003", true, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Ended at its receipt: never in force.
    let ended = end_result(&mut checks, P, &added.id, at(T0), "entered by mistake")
        .await
        .unwrap();
    assert_eq!(ended.ended_at, at(T0));
    // A second end: FAILED_PRECONDITION, and the first end stays.
    let status = end_result(&mut checks, P, &added.id, None, "again")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("already ended"), "{status:?}");
    let all = list(&mut checks, P, true, at(T0)).await;
    assert_eq!(all, vec![ended]);
    server.stop().await.unwrap();
}

// ---- explain ----------------------------------------------------------------

#[tokio::test]
async fn explain_names_the_rules_that_read_each_restriction_and_what_it_does() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let letter = add(&mut checks, P, cease(T0)).await;
    let stop = add(
        &mut checks,
        P,
        Restriction {
            source: "stopReply".into(),
            channels: vec!["text".into()],
            contact_values: vec!["+1 (555) 555-0100".into()],
            ..given("mediumOptOut", T0)
        },
    )
    .await;
    assert_eq!(stop.contact_values, vec!["5555550100".to_owned()]);
    end_result(&mut checks, P, &stop.id, at(T0 + HOUR), "")
        .await
        .unwrap();
    let effects = checks
        .explain_restrictions(ExplainRestrictionsRequest {
            person_id: P.into(),
            at: at(T0 + DAY),
        })
        .await
        .unwrap()
        .into_inner()
        .effects;
    assert_eq!(effects.len(), 2, "{effects:?}");
    let cease_effect = &effects[0];
    assert_eq!(cease_effect.restriction.as_ref().unwrap().id, letter.id);
    assert!(cease_effect.in_force);
    assert!(
        cease_effect.rule_ids.iter().any(|r| r == CEASE_RULE),
        "{cease_effect:?}"
    );
    assert_eq!(
        cease_effect.effect,
        "no communication about loan `L1` except subjects ceaseCommunicationAcknowledgement and ceaseCommunicationRefuseToPay (12 CFR 1006.6(c)(2))"
    );
    let opt_out = &effects[1];
    assert_eq!(opt_out.restriction.as_ref().unwrap().id, stop.id);
    assert!(!opt_out.in_force, "ended: listed, not in force");
    assert!(!opt_out.restriction.as_ref().unwrap().in_force);
    assert!(
        opt_out
            .effect
            .starts_with("no `text` communication to `5555550100`, for any debt; exceptions:"),
        "{opt_out:?}"
    );
    assert!(
        !opt_out.rule_ids.iter().any(|r| r == CEASE_RULE),
        "{opt_out:?}"
    );
    let status = checks
        .explain_restrictions(ExplainRestrictionsRequest {
            person_id: Q.into(),
            at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    server.stop().await.unwrap();
}

// ---- Check ------------------------------------------------------------------

/// An email about L1 to a borrower in New York at `seconds`.
fn email_about_l1(seconds: i64) -> CheckRequest {
    CheckRequest {
        person_id: P.into(),
        channel: "email".into(),
        direction: "outbound".into(),
        loan_ids: vec!["L1".into()],
        jurisdictions: vec!["US-NY".into()],
        at: at(seconds),
        ..CheckRequest::default()
    }
}

#[tokio::test]
async fn a_cease_letter_blocks_a_check_from_its_receipt_except_its_acknowledgement() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let letter = add(&mut checks, P, cease(T0)).await;

    // 10:00 in New York, an hour after receipt.
    let blocked = checks
        .check(email_about_l1(T0 + HOUR))
        .await
        .unwrap()
        .into_inner();
    assert!(!blocked.allowed, "{blocked:?}");
    assert_eq!(blocked.compliance_guard_rule_id, CEASE_RULE, "{blocked:?}");
    let violation = blocked
        .violations
        .iter()
        .find(|v| v.rule_id == CEASE_RULE)
        .expect("the cease rule's violation");
    assert_eq!(violation.restriction_id, letter.id);
    assert_eq!(violation.next_allowed_at, None, "{violation:?}");
    assert_eq!(blocked.next_allowed_at, None, "a cease has no end");

    // The acknowledgement the rule allows.
    let acknowledgement = checks
        .check(CheckRequest {
            subject: "ceaseCommunicationAcknowledgement".into(),
            ..email_about_l1(T0 + HOUR)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(acknowledgement.allowed, "{acknowledgement:?}");

    // Before receipt (08:30 in New York), the letter does not apply yet.
    let before = checks
        .check(email_about_l1(T0 - 30 * MINUTE))
        .await
        .unwrap()
        .into_inner();
    assert!(before.allowed, "{before:?}");

    // Once ended, it blocks no more.
    end_result(&mut checks, P, &letter.id, at(T0 + 2 * HOUR), "")
        .await
        .unwrap();
    let after = checks
        .check(email_about_l1(T0 + 3 * HOUR))
        .await
        .unwrap()
        .into_inner();
    assert!(after.allowed, "{after:?}");
    server.stop().await.unwrap();
}

// ---- durability -------------------------------------------------------------

/// A restriction, its end (when, by whom, why) and the person it names
/// (one known by an external id too) are read back from the journal, and
/// from the store once the journal is materialized into it; an end is
/// never undone by a restart, and new ids never reuse restored ones.
#[tokio::test]
async fn restrictions_and_their_ends_survive_restarts_from_the_journal_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.checks().await;
    let mut auditor = server.checks_as(AUDITOR_KEY).await;
    let letter = add(&mut pipeline, P, cease(T0)).await;
    let hours = add(
        &mut pipeline,
        "ext-crm-9",
        Restriction {
            from: "21:00".into(),
            until: "09:30".into(),
            note: "night shift".into(),
            source: "call".into(),
            ..given("inconvenientTime", T0)
        },
    )
    .await;
    assert_eq!(
        (hours.from.as_str(), hours.until.as_str()),
        ("21:00", "09:30")
    );
    let ended = end_result(
        &mut auditor,
        P,
        &letter.id,
        at(T0 + DAY),
        "attorney consented",
    )
    .await
    .unwrap();
    let before_p = list(&mut pipeline, P, true, at(T0 + HOUR)).await;
    let before_ext = list(&mut pipeline, "ext-crm-9", true, at(T0 + HOUR)).await;
    assert_eq!(before_p.len(), 1);
    assert_eq!(before_p[0].ended_by, "auditor");
    assert_eq!(before_p[0].ended_at, ended.ended_at);
    server.stop().await.unwrap();

    // From the journal (the store empty, at generation 0); then the same,
    // and materialized into the store at start (compact_after 0), the
    // journal rolled over to an empty generation 1; then from the store
    // alone.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = start_on(dir.path(), compact_after).await;
        let mut pipeline = server.checks().await;
        assert_eq!(
            list(&mut pipeline, P, true, at(T0 + HOUR)).await,
            before_p,
            "compact_after {compact_after}"
        );
        assert_eq!(
            list(&mut pipeline, "ext-crm-9", true, at(T0 + HOUR)).await,
            before_ext,
            "compact_after {compact_after}"
        );
        // A second end is still refused: the end was restored.
        let status = end_result(&mut pipeline, P, &letter.id, None, "")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the two
    // people (P, and the one ext-crm-9 registered) and the two restrictions,
    // the journal after it empty.
    assert_read_from_the_store(&data, 4);

    // New ids after a restart never reuse a restored one.
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.checks().await;
    let next = add(&mut pipeline, Q, cease(T0)).await;
    assert!(next.id != letter.id && next.id != hours.id, "{next:?}");
    server.stop().await.unwrap();
}

// ---- designated times by day of week (comment 6(b)(1)-1) --------------------

/// A designated inconvenient time on `days`, told by phone; `window` is
/// `(from, until)`, none for whole days.
fn on_days(days: &[&str], window: Option<(&str, &str)>, received: i64) -> Restriction {
    let (from, until) = window.unwrap_or_default();
    Restriction {
        source: "call".into(),
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        from: from.into(),
        until: until.into(),
        ..given("inconvenientTime", received)
    }
}

#[tokio::test]
async fn restriction_days_round_trip_through_list_and_explain() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    // Groups are expanded, repeats dropped, Monday first.
    let afternoons = add(
        &mut checks,
        P,
        on_days(
            &["thursday", "weekdays", "tuesday"],
            Some(("15:00", "17:00")),
            T0,
        ),
    )
    .await;
    assert_eq!(
        afternoons.days,
        ["monday", "tuesday", "wednesday", "thursday", "friday"]
    );
    assert_eq!(
        (afternoons.from.as_str(), afternoons.until.as_str()),
        ("15:00", "17:00")
    );
    let weekends = add(
        &mut checks,
        P,
        Restriction {
            ends_at: at(T0 + 30 * DAY),
            ..on_days(&["sunday", "saturday"], None, T0)
        },
    )
    .await;
    assert_eq!(weekends.days, ["saturday", "sunday"]);
    assert_eq!((weekends.from.as_str(), weekends.until.as_str()), ("", ""));
    assert_eq!(weekends.ends_at, at(T0 + 30 * DAY));
    let listed = list(&mut checks, P, true, at(T0 + HOUR)).await;
    let want: Vec<Restriction> = [&afternoons, &weekends]
        .into_iter()
        .map(|r| Restriction {
            in_force: true,
            ..r.clone()
        })
        .collect();
    assert_eq!(listed, want);

    let effects = checks
        .explain_restrictions(ExplainRestrictionsRequest {
            person_id: P.into(),
            at: at(T0 + HOUR),
        })
        .await
        .unwrap()
        .into_inner()
        .effects;
    let texts: Vec<&str> = effects.iter().map(|e| e.effect.as_str()).collect();
    assert_eq!(
        texts,
        [
            "no communication between 15:00 and 17:00 local time on weekdays (Monday to Friday) (12 CFR 1006.6(b)(1))",
            "no communication at any time on weekends (Saturday and Sunday), local time (midnight to midnight), until 2020-04-01T14:00:00Z (12 CFR 1006.6(b)(1))",
        ]
    );
    assert!(
        effects.iter().all(|e| e
            .rule_ids
            .iter()
            .any(|r| r == "us-regf-designated-inconvenient-time")),
        "{effects:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_restriction_days_are_invalid_argument_naming_days() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let refused = async |checks: &mut Checks, r: Restriction| {
        let status = add_result(checks, P, r).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status
    };

    let status = refused(&mut checks, on_days(&["Tuesday"], None, T0)).await;
    assert_eq!(fields(&status), ["days"]);
    assert_eq!(
        about(&status, "days"),
        "`days` value `Tuesday` is not allowed; allowed: monday, tuesday, wednesday, thursday, friday, saturday, sunday, weekdays, weekends (did you mean `tuesday`?)"
    );

    let status = refused(
        &mut checks,
        on_days(&["monday", "tues"], Some(("15:00", "17:00")), T0),
    )
    .await;
    assert_eq!(fields(&status), ["days"]);
    assert!(about(&status, "days").contains("`tues`"), "{status:?}");

    let eight = ["monday"; 8];
    let status = refused(&mut checks, on_days(&eight, None, T0)).await;
    assert_eq!(
        about(&status, "days"),
        "`days` has 8 entries; allowed: at most 7, each day once (`weekdays` names five, `weekends` two)"
    );

    // Only a designated time has days.
    let status = refused(
        &mut checks,
        Restriction {
            days: vec!["monday".into()],
            ..cease(T0)
        },
    )
    .await;
    assert_eq!(fields(&status), ["days"]);
    assert!(
        about(&status, "days")
            .contains("only `inconvenientTime` and `consentToTime` have days of the week"),
        "{status:?}"
    );

    // A window needs both ends; whole days need neither; no days needs both.
    let status = refused(&mut checks, on_days(&["monday"], Some(("15:00", "")), T0)).await;
    assert_eq!(fields(&status), ["until"]);
    let status = refused(&mut checks, on_days(&[], None, T0)).await;
    assert_eq!(fields(&status), ["from"]);
    let status = refused(
        &mut checks,
        on_days(&["monday"], Some(("15:00", "15:00")), T0),
    )
    .await;
    assert_eq!(fields(&status), ["until"]);

    // Nothing was stored.
    let status = list_result(&mut checks, P, true, None).await;
    assert!(status.as_ref().map_or(true, Vec::is_empty), "{status:?}");
    server.stop().await.unwrap();
}

/// How a release without `restriction_v2` (and without `days`) decodes the
/// journal's records: the generated code of the previous
/// `journal.proto`, field for field. prost keeps no unknown field, so
/// what it does not know is gone, and an unknown oneof member is `op:
/// None`.
mod old_release {
    use compliance_guard::pb;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(oneof = "Op", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
        pub op: Option<Op>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    #[allow(clippy::large_enum_variant, reason = "as prost generates it")]
    pub enum Op {
        #[prost(message, tag = "1")]
        Interaction(pb::Interaction),
        #[prost(message, tag = "2")]
        Person(pb::journal::Person),
        #[prost(message, tag = "3")]
        Debt(pb::journal::Debt),
        #[prost(message, tag = "4")]
        ReservationOpened(pb::journal::ReservationOpened),
        #[prost(string, tag = "5")]
        ReservationClosed(String),
        #[prost(message, tag = "6")]
        Answer(pb::journal::StoredAnswer),
        #[prost(message, tag = "7")]
        Batch(Batch),
        #[prost(message, tag = "8")]
        Restriction(Restriction),
        #[prost(message, tag = "9")]
        Convo(pb::InteractionConvo),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Batch {
        #[prost(message, repeated, tag = "1")]
        pub records: Vec<Record>,
    }

    /// `complianceguard.v1.Restriction` before `days` (21).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Restriction {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub person_id: String,
        #[prost(string, tag = "3")]
        pub kind: String,
        #[prost(string, tag = "4")]
        pub source: String,
        #[prost(message, optional, tag = "5")]
        pub received_at: Option<prost_types::Timestamp>,
        #[prost(message, optional, tag = "6")]
        pub ends_at: Option<prost_types::Timestamp>,
        #[prost(string, repeated, tag = "7")]
        pub loan_ids: Vec<String>,
        #[prost(string, repeated, tag = "8")]
        pub channels: Vec<String>,
        #[prost(string, repeated, tag = "9")]
        pub contact_values: Vec<String>,
        #[prost(string, repeated, tag = "10")]
        pub contact_kinds: Vec<String>,
        #[prost(string, tag = "11")]
        pub from: String,
        #[prost(string, tag = "12")]
        pub until: String,
        #[prost(string, tag = "13")]
        pub reason: String,
        #[prost(string, tag = "14")]
        pub note: String,
        #[prost(string, tag = "15")]
        pub recorded_by: String,
        #[prost(message, optional, tag = "16")]
        pub recorded_at: Option<prost_types::Timestamp>,
        #[prost(message, optional, tag = "17")]
        pub ended_at: Option<prost_types::Timestamp>,
        #[prost(string, tag = "18")]
        pub ended_by: String,
        #[prost(string, tag = "19")]
        pub end_reason: String,
        #[prost(bool, tag = "20")]
        pub in_force: bool,
    }

    /// Why the old reader refuses a file.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Refused {
        /// The header's format version is not 1, the only one it reads
        /// (its `VERSION`): the whole file, before any record.
        Version(u16),
        /// A record with no `op` (a kind it does not know), at the offset
        /// of its frame.
        Record(u64),
    }

    /// What the old reader does with a file: a header of a version other
    /// than 1 refused (`Refused::Version`); then every frame decoded as
    /// its `Record`, refused at the first one with no `op` (its check on
    /// each record it reads, `Refused::Record`); otherwise the records.
    /// Also asserts that each record it accepts re-encodes to the very
    /// bytes read: nothing in it was dropped unseen.
    pub fn read(path: &std::path::Path) -> Result<Vec<Record>, Refused> {
        use prost::Message;
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..4], b"CGJL");
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != 1 {
            return Err(Refused::Version(version));
        }
        let mut offset = 8;
        let mut records = Vec::new();
        while offset < bytes.len() {
            let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            let payload = &bytes[offset + 8..offset + 8 + len];
            let record = Record::decode(payload).unwrap();
            if record.op.is_none() {
                return Err(Refused::Record(offset as u64));
            }
            assert_eq!(
                record.encode_to_vec(),
                payload,
                "{path:?} at {offset}: the old reader drops part of {record:?}"
            );
            records.push(record);
            offset += 8 + len;
        }
        Ok(records)
    }
}

/// The records of a journal file as this release reads them.
fn read_records(path: &Path) -> Vec<compliance_guard::pb::journal::Record> {
    let mut out = Vec::new();
    compliance_guard::journal::read_file(path, 0, |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

/// The header of a journal of version 1, the only version a release
/// before the store reads (this release writes its journals as version 2;
/// its backups and snapshots are version 1). Records put under it are
/// what such a release reads past its header: the records of a backup,
/// which are framed as the journal's are.
const VERSION_1_JOURNAL_HEADER: &[u8; 8] = b"CGJL\x01\x00\x00\x00";

/// Where the frame of the first `restriction_v2` of a file of `kind` (0
/// journal, 1 backup) starts.
fn first_v2_frame(bytes: &[u8], kind: u16) -> u64 {
    use compliance_guard::pb::journal::record::Op;
    frames(bytes, kind)
        .iter()
        .find(|f| matches!(f.record.op, Some(Op::RestrictionV2(_))))
        .expect("a restriction_v2")
        .start
}

fn files_named(dir: &Path, prefix: &str, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    files.sort();
    files
}

/// A restriction with days of the week is journaled as `restriction_v2`,
/// a record kind the release before it does not know, so that release
/// refuses it rather than reading the designation without its days (a
/// wider one). Since the store, a journal of this release is of version
/// 2, which that release (reading version 1 only) refuses at the header,
/// before any record; the record kind stays as it was, so a file it does
/// get past the header of (a backup, version 1) is still refused at that
/// record. The restriction survives restarts from the journal and from the
/// store, which holds it as `restriction_v2` too, and a backup and restore.
#[tokio::test]
async fn a_restriction_with_days_is_a_record_an_older_release_refuses_and_survives_restarts() {
    use compliance_guard::pb::journal::record::Op;

    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("data").join("journal");
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.checks().await;
    // Borrowers not seen before: each add also registers the person.
    let daily = add(
        &mut pipeline,
        "ext-crm-1",
        on_days(&[], Some(("21:00", "08:00")), T0),
    )
    .await;
    let tue_thu = add(
        &mut pipeline,
        "ext-crm-2",
        on_days(&["tuesday", "thursday"], None, T0),
    )
    .await;
    let ended = end_result(&mut pipeline, "ext-crm-2", &tue_thu.id, at(T0 + DAY), "")
        .await
        .unwrap();
    let before_1 = list(&mut pipeline, "ext-crm-1", true, at(T0 + HOUR)).await;
    let before_2 = list(&mut pipeline, "ext-crm-2", true, at(T0 + HOUR)).await;
    assert_eq!(before_2.len(), 1);
    assert_eq!(before_2[0].days, ["tuesday", "thursday"]);
    assert_eq!(before_2[0].ended_at, ended.ended_at);
    server.stop().await.unwrap();

    // This release: the one without days is `restriction` (8), inside the
    // batch that registered its person; the one with days is
    // `restriction_v2` (10), added and ended, each a record of its own.
    let journals = files_named(&journal_dir, "journal-", ".log");
    assert_eq!(journals.len(), 1, "{journals:?}");
    let records = read_records(&journals[0]);
    let v2: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.op {
            Some(Op::RestrictionV2(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(v2.len(), 2, "{records:?}");
    assert!(
        v2.iter()
            .all(|r| r.id == tue_thu.id && r.days == ["tuesday", "thursday"])
    );
    let batched: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.op {
            Some(Op::Batch(b)) => Some(b),
            _ => None,
        })
        .flat_map(|b| &b.records)
        .collect();
    assert!(
        batched
            .iter()
            .any(|r| matches!(&r.op, Some(Op::Restriction(x)) if x.id == daily.id)),
        "{records:?}"
    );
    assert!(
        !batched
            .iter()
            .any(|r| matches!(r.op, Some(Op::RestrictionV2(_)))),
        "a restriction_v2 inside a batch: {records:?}"
    );

    // The previous release refuses this release's journal at its header,
    // before any record: it is of version 2, and it reads version 1 only.
    let journal = std::fs::read(&journals[0]).unwrap();
    assert_eq!(u16::from_le_bytes([journal[4], journal[5]]), 2);
    assert_eq!(
        old_release::read(&journals[0]).map(|r| r.len()),
        Err(old_release::Refused::Version(2))
    );
    // And the record kind stays: the same records under a header of
    // version 1 are read up to the first designation with days, every
    // byte of them, and that one refused, at its own frame.
    let first_v2 = first_v2_frame(&journal, 0);
    let as_version_1 = dir.path().join("as-version-1.log");
    let mut bytes = VERSION_1_JOURNAL_HEADER.to_vec();
    bytes.extend_from_slice(&journal[8..]);
    std::fs::write(&as_version_1, &bytes).unwrap();
    assert_eq!(
        old_release::read(&as_version_1).map(|r| r.len()),
        Err(old_release::Refused::Record(first_v2))
    );
    // The records without days stay readable by the previous release: the
    // same records, under a header of version 1, with the designation
    // left out.
    let without_days = dir.path().join("without-days.log");
    let mut bytes = VERSION_1_JOURNAL_HEADER.to_vec();
    for r in records
        .iter()
        .filter(|r| !matches!(r.op, Some(Op::RestrictionV2(_))))
    {
        compliance_guard::journal::frame(r, &mut bytes);
    }
    std::fs::write(&without_days, &bytes).unwrap();
    let old_records = old_release::read(&without_days).unwrap();
    assert_eq!(old_records.len(), records.len() - 2);
    assert!(old_records.iter().any(|r| matches!(
        &r.op,
        Some(old_release::Op::Batch(b)) if b.records.iter().any(|x| matches!(
            &x.op,
            Some(old_release::Op::Restriction(x)) if x.id == daily.id && x.from == "21:00"
        ))
    )));

    // Restarts: from the journal (the store empty, at generation 0); then
    // the same, and materialized into the store at start (compact_after
    // 0), the journal rolled over to an empty generation 1; then from the
    // store alone.
    let data = dir.path().join("data");
    for (compact_after, generation) in [(1_000_000, 0), (0, 1), (1_000_000, 1)] {
        let server = start_on(dir.path(), compact_after).await;
        let mut pipeline = server.checks().await;
        assert_eq!(
            list(&mut pipeline, "ext-crm-1", true, at(T0 + HOUR)).await,
            before_1,
            "compact_after {compact_after}"
        );
        assert_eq!(
            list(&mut pipeline, "ext-crm-2", true, at(T0 + HOUR)).await,
            before_2,
            "compact_after {compact_after}"
        );
        server.stop().await.unwrap();
        assert_store_at(&data, generation, &format!("compact_after {compact_after}"));
    }
    // A start now reads it all from the store, as the last one did: the two
    // people and the two restrictions, the journal after it empty.
    assert_read_from_the_store(&data, 4);
    // The store holds the one with days as `restriction_v2` too (its
    // latest state, ended), the other as `restriction`.
    let stored = store_records(&data);
    assert_eq!(
        stored
            .iter()
            .filter_map(|r| match &r.op {
                Some(Op::RestrictionV2(x)) => Some((x.id.as_str(), x.ended_at.is_some())),
                _ => None,
            })
            .collect::<Vec<_>>(),
        [(tue_thu.id.as_str(), true)],
        "{stored:?}"
    );
    assert_eq!(
        stored
            .iter()
            .filter_map(|r| match &r.op {
                Some(Op::Restriction(x)) => Some(x.id.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        [daily.id.as_str()],
        "{stored:?}"
    );
    // The previous release, started on this data directory, finds only
    // the journal of generation 1 (it knows no store), and refuses it at
    // its header instead of starting with nothing.
    let journals = files_named(&journal_dir, "journal-", ".log");
    assert_eq!(journals, [journal_dir.join("journal-00000001.log")]);
    assert_eq!(
        old_release::read(&journals[0]).map(|r| r.len()),
        Err(old_release::Refused::Version(2))
    );

    // A backup (version 1, a whole history) copies it as it is, as
    // `restriction_v2`: the previous release gets past its header and
    // refuses it at that record; this one restores it whole.
    let backup = dir.path().join("backup.cgb");
    compliance_guard::ops::backup(&data, &backup).unwrap();
    let backup_bytes = std::fs::read(&backup).unwrap();
    let backed_up: Vec<_> = frames(&backup_bytes, 1)
        .into_iter()
        .map(|f| f.record)
        .collect();
    assert_eq!(backed_up.len(), 4, "{backed_up:?}");
    assert_eq!(
        old_release::read(&backup).map(|r| r.len()),
        Err(old_release::Refused::Record(first_v2_frame(
            &backup_bytes,
            1
        )))
    );
    let restored = tempfile::tempdir().unwrap();
    compliance_guard::ops::restore(&backup, &restored.path().join("data")).unwrap();
    let server = start_on(restored.path(), 1_000_000).await;
    let mut pipeline = server.checks().await;
    assert_eq!(
        list(&mut pipeline, "ext-crm-2", true, at(T0 + HOUR)).await,
        before_2
    );
    server.stop().await.unwrap();
}

/// This release refuses a record of a kind it does not know wherever it
/// is, inside a batch too, naming the file and the offset of its frame.
#[test]
fn an_unknown_record_kind_inside_a_batch_is_refused_with_file_and_offset() {
    use compliance_guard::pb::journal::{Batch, Record, record::Op};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal-00000001.log");
    let person = Record {
        op: Some(Op::ReservationClosed("IT-1".into())),
    };
    let mut bytes = b"CGJL\x01\x00\x00\x00".to_vec();
    compliance_guard::journal::frame(&person, &mut bytes);
    let second = bytes.len();
    // What a newer release's record kind decodes as: no `op`.
    let unknown = Record {
        op: Some(Op::Batch(Batch {
            records: vec![person.clone(), Record { op: None }],
        })),
    };
    compliance_guard::journal::frame(&unknown, &mut bytes);
    compliance_guard::journal::frame(&person, &mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let err = compliance_guard::journal::read_file(&path, 0, |_| Ok(())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("damaged at byte offset {second}"))
            && text.contains("journal-00000001.log")
            && text.contains("a record of a kind this release does not know"),
        "{text}"
    );
}

// ---- a cease's mail type, a consent to another time (issue 17) --------------

/// A cease's `mailType` and a `consentToTime` with `written` round-trip
/// through AddRestriction, ListRestrictions and ExplainRestrictions; bad
/// ones are INVALID_ARGUMENT naming the field. In the journal the cease is
/// a `restriction` carrying its mail type (a release without the field
/// reads it as unknown, the strict way); the consent, a kind an older
/// release does not know, is a `restriction_v2` of its own, which such a
/// release refuses. Both survive restarts from the journal and a snapshot.
#[tokio::test]
async fn a_mail_type_and_a_written_consent_are_kept_and_journaled() {
    use compliance_guard::pb::journal::record::Op;

    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("data").join("journal");
    let server = start_on(dir.path(), 1_000_000).await;
    let mut pipeline = server.checks().await;
    let certified = add(
        &mut pipeline,
        "ext-crm-la",
        Restriction {
            mail_type: "certified".into(),
            ..cease(T0)
        },
    )
    .await;
    assert_eq!(certified.mail_type, "certified");
    let agreed = add(
        &mut pipeline,
        "ext-crm-mi",
        Restriction {
            from: "21:00".into(),
            until: "22:00".into(),
            written: true,
            ..given("consentToTime", T0)
        },
    )
    .await;
    assert!(agreed.written);
    assert_eq!(
        (agreed.from.as_str(), agreed.until.as_str()),
        ("21:00", "22:00")
    );

    let effects = pipeline
        .explain_restrictions(ExplainRestrictionsRequest {
            person_id: "ext-crm-la".into(),
            at: at(T0 + DAY),
        })
        .await
        .unwrap()
        .into_inner()
        .effects;
    assert!(
        effects[0].effect.ends_with(
            "; sent by certified mail, so a Louisiana creditor may send at most one mail notice a month and make at most four personal contacts in all from receipt (La. R.S. 9:3562(3))"
        ),
        "{effects:?}"
    );
    assert!(
        effects[0]
            .rule_ids
            .iter()
            .any(|r| r == "us-la-rs-9-3562-3-4-personal-contacts"),
        "{effects:?}"
    );
    let effects = pipeline
        .explain_restrictions(ExplainRestrictionsRequest {
            person_id: "ext-crm-mi".into(),
            at: at(T0 + DAY),
        })
        .await
        .unwrap()
        .into_inner()
        .effects;
    assert_eq!(
        effects[0].effect,
        "the borrower agreed to communications at 21:00–22:00, local time; given in writing, so it lifts Michigan's hours (MCL 445.252(n)) and Florida's night ban (Fla. Stat. 559.72(17)) there; it lifts no other hours rule, designated time or cap"
    );
    assert_eq!(
        effects[0].rule_ids,
        ["us-fl-559.72-17-hours", "us-mi-mcl-445.252n-hours"]
    );

    for (r, field) in [
        (
            Restriction {
                mail_type: "certified".into(),
                source: "call".into(),
                ..cease(T0)
            },
            "mailType",
        ),
        (
            Restriction {
                mail_type: "express".into(),
                ..cease(T0)
            },
            "mailType",
        ),
        (
            Restriction {
                written: true,
                ..given("priorConsentToCall", T0)
            },
            "written",
        ),
        (given("consentToTime", T0), "from"),
    ] {
        let status = add_result(&mut pipeline, P, r).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(fields(&status), [field], "{status:?}");
    }
    let before_la = list(&mut pipeline, "ext-crm-la", true, at(T0 + HOUR)).await;
    let before_mi = list(&mut pipeline, "ext-crm-mi", true, at(T0 + HOUR)).await;
    server.stop().await.unwrap();

    let journals = files_named(&journal_dir, "journal-", ".log");
    let records = read_records(&journals[0]);
    let in_batches: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.op {
            Some(Op::Batch(b)) => Some(b),
            _ => None,
        })
        .flat_map(|b| &b.records)
        .collect();
    assert!(
        in_batches.iter().any(|r| matches!(
            &r.op,
            Some(Op::Restriction(x)) if x.id == certified.id && x.mail_type == "certified"
        )),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| matches!(
            &r.op,
            Some(Op::RestrictionV2(x)) if x.id == agreed.id && x.written
        )),
        "{records:?}"
    );
    assert!(
        !in_batches
            .iter()
            .any(|r| matches!(r.op, Some(Op::RestrictionV2(_)))),
        "a restriction_v2 inside a batch: {records:?}"
    );
    // The previous release refuses the consent, a record of its own, in a
    // file it gets past the header of (version 1, as a backup is; this
    // release's journal, of version 2, it refuses whole).
    let v2_only = dir.path().join("v2-only.log");
    let mut bytes = VERSION_1_JOURNAL_HEADER.to_vec();
    for r in records
        .iter()
        .filter(|r| matches!(r.op, Some(Op::RestrictionV2(_))))
    {
        compliance_guard::journal::frame(r, &mut bytes);
    }
    std::fs::write(&v2_only, &bytes).unwrap();
    assert_eq!(
        old_release::read(&v2_only),
        Err(old_release::Refused::Record(8))
    );
    // It reads the cease with its mail type dropped (as its snapshot would
    // write it back), which this release then reads as unknown: the
    // Louisiana rules read an unknown mail type as certified.
    let pb_cease = in_batches
        .iter()
        .find_map(|r| match &r.op {
            Some(Op::Restriction(x)) if x.id == certified.id => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    let old: old_release::Restriction =
        prost::Message::decode(prost::Message::encode_to_vec(&pb_cease).as_slice()).unwrap();
    let back: compliance_guard::pb::Restriction =
        prost::Message::decode(prost::Message::encode_to_vec(&old).as_slice()).unwrap();
    assert_eq!(back.mail_type, "");
    let read = compliance_guard::wire::restriction_from(back).unwrap();
    assert_eq!(read.mail_type, None);
    assert_eq!(
        compliance_guard::wire::restriction_from(pb_cease)
            .unwrap()
            .mail_type,
        Some(compliance_guard::restrictions::MailType::Certified)
    );

    for compact_after in [1_000_000, 0, 1_000_000] {
        let server = start_on(dir.path(), compact_after).await;
        let mut pipeline = server.checks().await;
        assert_eq!(
            list(&mut pipeline, "ext-crm-la", true, at(T0 + HOUR)).await,
            before_la,
            "compact_after {compact_after}"
        );
        assert_eq!(
            list(&mut pipeline, "ext-crm-mi", true, at(T0 + HOUR)).await,
            before_mi,
            "compact_after {compact_after}"
        );
        server.stop().await.unwrap();
    }
}
