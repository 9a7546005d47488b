//! End-to-end tests of `complianceguard.v1.ComplianceGuardService`: Check, the
//! atomic reserve, request-id retries, reservations, debts and people.

use std::time::Duration;

use compliance_guard::pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use compliance_guard::pb::{
    CancelReservationRequest, CheckRequest, CheckResponse, Contact, CreateInteractionRequest,
    DeclareDebtRequest, Interaction, LinkPersonRequest, ListReservationsRequest,
    UpdateInteractionRequest,
};
use prost_types::{FieldMask, Timestamp};
use tonic::service::interceptor::InterceptedService;
use tonic_types::StatusExt;

use crate::support::consts::{MONDAY_10 as AT, PIPELINE_KEY};
use crate::support::server::{Checks, Interactions, WithKey, checks_on, options, ready_server};

fn at(offset_minutes: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: AT + offset_minutes * 60,
        nanos: 0,
    })
}

fn call(person: &str, loan: &str) -> CheckRequest {
    CheckRequest {
        person_id: person.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        loan_ids: vec![loan.into()],
        // New Jersey, not New York: a borrower known only to be in US-NY
        // may be in New York City, whose rules (2 communications a week,
        // hours from 08:00:01) would answer first. New Jersey has the same
        // zone and no rule of its own, so the rules this test is about decide.
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        contact: Some(Contact {
            kind: "mobilePhone".into(),
            value: "+15555550100".into(),
            name: String::new(),
        }),
        at: at(0),
        ..CheckRequest::default()
    }
}

fn placed_call(loan: &str, minutes: i64) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        status_details: Some("voiceRangNoPickup".into()),
        loan_id: Some(loan.into()),
        started_at: at(minutes),
        ..Interaction::default()
    }
}

async fn record(records: &mut Interactions, person: &str, i: Interaction) -> Interaction {
    records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: person.into(),
            interaction: Some(i),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap()
}

async fn check(checks: &mut Checks, r: CheckRequest) -> CheckResponse {
    checks.check(r).await.unwrap().into_inner()
}

#[tokio::test]
async fn an_allowed_check_and_a_blocked_one_with_its_rule_id() {
    let server = ready_server().await;
    let (mut checks, mut records) = (server.checks().await, server.interactions().await);
    let first = check(&mut checks, call("ext-b-1", "L1")).await;
    assert!(first.allowed);
    assert_eq!(first.compliance_guard_rule_id, "");
    assert!(first.violations.is_empty());
    // 21:00 EST that day is 02:00 UTC the next day.
    assert_eq!(
        first.valid_until,
        Some(Timestamp {
            seconds: AT + 11 * 3600,
            nanos: 0
        })
    );
    assert_eq!(
        first.applied_rule_ids,
        [
            "policy-do-not-interact",
            "policy-us-federal-holidays",
            "us-regf-7-calls-in-7-days",
            "us-regf-attorney-representation",
            "us-regf-cease-communication",
            "us-regf-designated-inconvenient-place",
            "us-regf-designated-inconvenient-time",
            "us-regf-employer-prohibits-contact",
            "us-regf-hours",
            "us-regf-medium-opt-out",
            "us-regf-quiet-after-conversation"
        ]
    );
    assert_eq!(first.interaction_id, "", "a plain Check records nothing");
    assert_eq!(first.rules_version.len(), 16);

    let mut ids = Vec::new();
    for m in 0..7 {
        ids.push(
            record(&mut records, "ext-b-1", placed_call("L1", -60 - m))
                .await
                .id,
        );
    }
    let blocked = check(&mut checks, call("ext-b-1", "L1")).await;
    assert!(!blocked.allowed);
    assert_eq!(
        blocked.compliance_guard_rule_id,
        "us-regf-7-calls-in-7-days"
    );
    let v = &blocked.violations[0];
    assert_eq!((v.count, v.limit), (7, 7));
    let w = v.window.as_ref().unwrap();
    assert_eq!(
        (
            w.days,
            w.start_date.as_str(),
            w.end_date.as_str(),
            w.time_zone.as_str()
        ),
        (7, "2025-11-25", "2025-12-01", "America/New_York")
    );
    assert_eq!(v.debt, "L1");
    assert_eq!(v.citation, "12 CFR 1006.14(b)(2)(i)(A), (b)(2)(ii)");
    let mut counted = v.counted_interaction_ids.clone();
    counted.sort();
    ids.sort();
    assert_eq!(counted, ids);
    // Frees at 00:00 EST Dec 8; the hours rule moves it to 08:00 EST.
    assert_eq!(
        blocked.next_allowed_at,
        Some(Timestamp {
            seconds: AT + 7 * 86_400 - 2 * 3600,
            nanos: 0
        })
    );
    assert_eq!(blocked.valid_until, None);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn fifty_concurrent_reserving_checks_yield_exactly_seven_allows() {
    let server = ready_server().await;
    let channel = server.channel().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut checks = checks_on(channel.clone(), Some(PIPELINE_KEY));
        tasks.push(tokio::spawn(async move {
            let mut r = call("BO-RACE-0001", "L1");
            r.reserve = true;
            r.request_id = format!("race-{i}");
            checks.check(r).await.unwrap().into_inner()
        }));
    }
    let mut allowed = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.allowed {
            assert!(r.interaction_id.starts_with("IT-"), "{}", r.interaction_id);
            allowed.push(r.interaction_id);
        } else {
            assert_eq!(r.compliance_guard_rule_id, "us-regf-7-calls-in-7-days");
            assert_eq!(r.interaction_id, "");
        }
    }
    assert_eq!(allowed.len(), 7);
    let mut checks = server.checks().await;
    let open = checks
        .list_reservations(ListReservationsRequest {
            person_id: "BO-RACE-0001".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut listed: Vec<String> = open
        .reservations
        .iter()
        .map(|r| r.interaction_id.clone())
        .collect();
    listed.sort();
    allowed.sort();
    assert_eq!(listed, allowed);
    assert!(
        open.reservations
            .iter()
            .all(|r| r.reserved_by == "pipeline" && r.channel == "voice" && r.loan_ids == ["L1"])
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_gets_the_first_answer_and_no_second_slot() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let mut r = call("BO-RTRY-0001", "L1");
    r.reserve = true;
    r.request_id = "send-42".into();
    let first = check(&mut checks, r.clone()).await;
    assert!(first.allowed && !first.replayed);
    let again = check(&mut checks, r.clone()).await;
    assert!(again.replayed);
    assert_eq!(again.interaction_id, first.interaction_id);
    assert_eq!(
        CheckResponse {
            replayed: false,
            ..again
        },
        first
    );
    let open = checks
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.reservations.len(), 1);
    assert_eq!(open.reservations[0].request_id, "send-42");
    // The same request id for another person is a caller's mistake.
    let mut other = r.clone();
    other.person_id = "BO-RTRY-0002".into();
    let err = checks.check(other).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let bad = err.get_details_bad_request().unwrap();
    assert_eq!(bad.field_violations[0].field, "requestId");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_update_to_failed_or_a_cancel_releases_the_slot() {
    let server = ready_server().await;
    let (mut checks, mut records) = (server.checks().await, server.interactions().await);
    let mut reserved = Vec::new();
    for i in 0..7 {
        let mut r = call("BO-FREE-0001", "L1");
        r.reserve = true;
        r.at = at(i);
        let answer = check(&mut checks, r).await;
        assert!(answer.allowed, "reservation {i}");
        reserved.push(answer.interaction_id);
    }
    let mut r = call("BO-FREE-0001", "L1");
    r.reserve = true;
    r.at = at(10);
    assert!(
        !check(&mut checks, r.clone()).await.allowed,
        "the 8th is blocked"
    );

    // The reservation is recorded in progress, so it already counts.
    let got = records
        .get_interaction(compliance_guard::pb::GetInteractionRequest {
            searchable: false,
            interaction_id: reserved[0].clone(),
            person_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(got.status, "inProgress");
    assert_eq!(got.created_by.as_deref(), Some("pipeline"));
    assert_eq!(got.is_external, Some(false));

    // The pipeline reports the call failed to start: the slot is free again.
    records
        .update_interaction(UpdateInteractionRequest {
            person_id: "BO-FREE-0001".into(),
            interaction_id: reserved[0].clone(),
            interaction: Some(Interaction {
                status: "failed".into(),
                status_details: Some("voiceFailedToInitiate".into()),
                ..Interaction::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into(), "status_details".into()],
            }),
        })
        .await
        .unwrap();
    let freed = check(&mut checks, r.clone()).await;
    assert!(freed.allowed, "{freed:?}");
    assert!(
        !check(&mut checks, r.clone()).await.allowed,
        "and taken again"
    );

    // An update closes the reservation; a cancel releases another slot.
    let open = checks
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.reservations.len(), 7);
    assert!(
        !open
            .reservations
            .iter()
            .any(|x| x.interaction_id == reserved[0])
    );
    let canceled = checks
        .cancel_reservation(CancelReservationRequest {
            interaction_id: reserved[1].clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(canceled.status, "canceled");
    assert_eq!(canceled.updated_by.as_deref(), Some("pipeline"));
    assert!(check(&mut checks, r.clone()).await.allowed);
    let err = checks
        .cancel_reservation(CancelReservationRequest {
            interaction_id: reserved[1].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    server.stop().await.unwrap();
}

/// Comment 14(b)(3)(ii)-1: a call that rang unanswered connected, so a
/// dialer's `failed` with `voiceRangNoPickup` keeps the reservation's slot;
/// only a call that nothing says connected releases it.
#[tokio::test]
async fn an_update_to_failed_keeps_the_slot_of_a_call_that_rang() {
    let server = ready_server().await;
    let (mut checks, mut records) = (server.checks().await, server.interactions().await);
    let mut reserved = Vec::new();
    for i in 0..7 {
        let mut r = call("BO-RANG-0001", "L1");
        r.reserve = true;
        r.at = at(i);
        let answer = check(&mut checks, r).await;
        assert!(answer.allowed, "reservation {i}");
        reserved.push(answer.interaction_id);
    }
    let mut r = call("BO-RANG-0001", "L1");
    r.at = at(10);
    let report = |details: &str| UpdateInteractionRequest {
        person_id: "BO-RANG-0001".into(),
        interaction_id: reserved[0].clone(),
        interaction: Some(Interaction {
            status: "failed".into(),
            status_details: Some(details.into()),
            ..Interaction::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["status".into(), "status_details".into()],
        }),
    };
    records
        .update_interaction(report("voiceRangNoPickup"))
        .await
        .unwrap();
    let blocked = check(&mut checks, r.clone()).await;
    assert!(!blocked.allowed, "{blocked:?}");
    assert_eq!(
        blocked.compliance_guard_rule_id,
        "us-regf-7-calls-in-7-days"
    );
    let counted = &blocked.violations[0].counted_interaction_ids;
    assert_eq!(counted.len(), 7, "{counted:?}");
    assert!(counted.contains(&reserved[0]), "{counted:?}");
    // The control: the dialer now says the line was busy and never rang.
    records
        .update_interaction(report("voiceLineBusyNoRing"))
        .await
        .unwrap();
    let freed = check(&mut checks, r).await;
    assert!(freed.allowed, "{freed:?}");
    server.stop().await.unwrap();
}

/// A ComplianceGuard transport over one bare HTTP/2 connection. Unlike a
/// tonic `Channel`, it never enforces a request's `grpc-timeout` itself,
/// so a deadline that passes is met by the server, not cut short by the
/// client before the server has answered.
#[derive(Clone)]
struct Bare(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for Bare {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// A ComplianceGuard client with the pipeline's key over a [`Bare`]
/// connection to `addr`.
async fn bare_checks(
    addr: std::net::SocketAddr,
) -> ComplianceGuardServiceClient<InterceptedService<Bare, WithKey>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    ComplianceGuardServiceClient::with_origin(
        InterceptedService::new(Bare(send), WithKey(Some(PIPELINE_KEY))),
        format!("http://{addr}").parse().unwrap(),
    )
}

/// A reserving Check whose deadline (1 ns) passes before its commit is
/// answered DEADLINE_EXCEEDED by the guard and records nothing. The client
/// never cuts the call itself (see [`Bare`]); tonic's own server-side timer
/// may still cut one first (CANCELLED: the handler had not run), so the
/// call is repeated until the guard's answer is seen, and nothing may be
/// recorded either way.
#[tokio::test]
async fn a_reservation_whose_deadline_passed_before_the_commit_records_nothing() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let mut bare = bare_checks(server.addr).await;
    let mut r = call("BO-LATE-0001", "L1");
    r.reserve = true;
    r.request_id = "late-1".into();
    let mut cut_by_tonic = 0;
    let refused = loop {
        let mut req = tonic::Request::new(r.clone());
        req.set_timeout(Duration::from_nanos(1));
        let err = bare.check(req).await.unwrap_err();
        let open = checks
            .list_reservations(ListReservationsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(open.reservations.is_empty(), "{err:?}: {open:?}");
        if err.code() == tonic::Code::DeadlineExceeded {
            break err;
        }
        assert_eq!(err.code(), tonic::Code::Cancelled, "{err:?}");
        cut_by_tonic += 1;
        assert!(
            cut_by_tonic < 100,
            "the guard never saw the deadline: {err:?}"
        );
    };
    assert_eq!(
        refused.message(),
        "the deadline passed before the reservation was committed; nothing was recorded"
    );
    // The retry is a fresh request: nothing was stored under its id.
    let retry = check(&mut checks, r).await;
    assert!(retry.allowed && !retry.replayed, "{retry:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_check_fields_are_invalid_argument_with_field_violations() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let mut r = call("BO-BAD-0001", "L1");
    r.channel = "voise".into();
    r.time_zones = vec!["America/New_Yrok".into()];
    r.jurisdictions = vec!["US-XX".into()];
    r.balance = "12,5".into();
    r.postal_code = "1000".into();
    let err = checks.check(r).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let bad = err.get_details_bad_request().unwrap();
    let fields: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "channel",
            "timeZones",
            "jurisdictions",
            "balance",
            "postalCode"
        ]
    );
    assert_eq!(
        bad.field_violations[4].description,
        "`postalCode` value `1000` is not a US ZIP code; allowed: five digits (`10001`) or ZIP+4 (`10001-1234`)"
    );
    assert!(
        bad.field_violations[0].description.contains("`voise`")
            && bad.field_violations[0]
                .description
                .contains("did you mean `voice`")
    );
    assert!(
        bad.field_violations[1]
            .description
            .contains("`America/New_Yrok`")
    );
    let err = checks
        .check(CheckRequest {
            person_id: "BO-BAD-0001".into(),
            ..CheckRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "channel"
    );
    let err = checks
        .check(CheckRequest {
            channel: "voice".into(),
            ..CheckRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "personId"
    );
    server.stop().await.unwrap();
}

/// Every answer says which zones and jurisdictions were weighed and why,
/// read from the request and from the contact (its number's area code,
/// the postal code), and a retry's stored answer says the same.
#[tokio::test]
async fn the_answer_says_which_zones_were_weighed_and_why() {
    use compliance_guard::pb::{WeighedJurisdiction, WeighedZone};
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let mut r = call("BO-WHERE-0001", "L1");
    r.jurisdictions = vec!["US-CA".into()];
    r.time_zones = Vec::new();
    r.contact = Some(Contact {
        kind: "mobilePhone".into(),
        value: "+1 212 555 0100".into(),
        name: String::new(),
    });
    r.postal_code = "02108-1234".into();
    r.reserve = true;
    r.request_id = "where-1".into();
    let zone = |z: &str, reasons: &[&str]| WeighedZone {
        time_zone: z.into(),
        reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
    };
    let first = check(&mut checks, r.clone()).await;
    assert_eq!(
        first.zones_weighed,
        [
            zone("America/Los_Angeles", &["from US-CA"]),
            zone(
                "America/New_York",
                &["from area code 212", "from postal code 02108"]
            ),
        ]
    );
    assert_eq!(
        first.jurisdictions_weighed,
        [
            WeighedJurisdiction {
                jurisdiction: "US-CA".into(),
                reasons: vec!["given".into()],
            },
            WeighedJurisdiction {
                jurisdiction: "US-MA".into(),
                reasons: vec!["from postal code 02108".into()],
            },
        ]
    );
    assert_eq!(
        first.location_explanation,
        "America/Los_Angeles from US-CA; America/New_York from area code 212 and from postal code 02108"
    );
    // Massachusetts' rules bind through the postal code.
    assert!(
        first
            .applied_rule_ids
            .iter()
            .any(|id| id.starts_with("us-ma-")),
        "{:?}",
        first.applied_rule_ids
    );
    let again = check(&mut checks, r).await;
    assert!(again.replayed);
    assert_eq!(
        (
            again.zones_weighed,
            again.jurisdictions_weighed,
            again.location_explanation
        ),
        (
            first.zones_weighed,
            first.jurisdictions_weighed,
            first.location_explanation
        )
    );
    let rules = checks
        .list_rules(compliance_guard::pb::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rules.location_data_version,
        "phonenumbers 9.0.43; zipcodes 3.0.1"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn linked_ids_share_one_history_and_debts_group_loans() {
    let server = ready_server().await;
    let (mut checks, mut records) = (server.checks().await, server.interactions().await);
    let linked = checks
        .link_person(LinkPersonRequest {
            person_id: "12345".into(),
            external_id: "crm-77".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(linked.person_id, "12345");
    checks
        .declare_debt(DeclareDebtRequest {
            person_id: "12345".into(),
            debt_id: "ACCT-1".into(),
            loan_ids: vec!["SL1".into(), "SL2".into()],
        })
        .await
        .unwrap();
    for m in 0..4 {
        record(&mut records, "12345", placed_call("SL1", -60 - m)).await;
        record(&mut records, "ext-crm-77", placed_call("SL2", -120 - m)).await;
    }
    let blocked = check(&mut checks, call("ext-crm-77", "SL1")).await;
    assert!(
        !blocked.allowed,
        "8 calls about one account through both names"
    );
    assert_eq!(blocked.violations[0].debt, "ACCT-1");
    assert_eq!(blocked.violations[0].count, 8);
    assert!(check(&mut checks, call("12345", "CAR")).await.allowed);
    // Joining two people who both have records is refused.
    record(&mut records, "BO-OTHR-0001", placed_call("X", -10)).await;
    record(&mut records, "ext-other-ext", placed_call("Y", -10)).await;
    let err = checks
        .link_person(LinkPersonRequest {
            person_id: "BO-OTHR-0001".into(),
            external_id: "other-ext".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("would join two histories"),
        "{}",
        err.message()
    );
    let err = checks
        .declare_debt(DeclareDebtRequest {
            person_id: "12345".into(),
            debt_id: "ACCT-2".into(),
            loan_ids: vec!["SL1".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    server.stop().await.unwrap();
}

/// A reservation is recorded at its `at`: one named in the past would count
/// in the past's windows while the send goes out now, so a cap could be
/// exceeded. The server refuses it beyond the tolerance (clock skew), with
/// the field named. (`tests/library/regressions.rs` covers the accepted cases at a
/// fixed clock.)
#[tokio::test]
async fn a_reserve_named_in_the_past_is_refused_beyond_the_clock_tolerance() {
    let server = options()
        .reserve_tolerance(compliance_guard::guard::DEFAULT_RESERVE_TOLERANCE)
        .serving()
        .await;
    let mut checks = server.checks().await;
    // Eight days ago: outside every window that contains the real send.
    let mut stale = call("ext-stale-1", "L1");
    stale.at = Some(Timestamp {
        seconds: chrono::Utc::now().timestamp() - 8 * 86_400,
        nanos: 0,
    });
    stale.reserve = true;
    let status = checks.check(stale.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let bad = status.get_details_bad_request().unwrap();
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "at");
    assert!(
        bad.field_violations[0].description.contains(
            "a reserving Check is for a send now or later; allowed: at most 300 s before it"
        ),
        "{}",
        bad.field_violations[0].description
    );
    // Without reserve it is a question about the past, and is answered
    // for that moment, recording nothing.
    stale.reserve = false;
    let answer = checks.check(stale.clone()).await.unwrap().into_inner();
    assert_eq!(answer.at, stale.at, "{answer:?}");
    assert!(answer.interaction_id.is_empty(), "{answer:?}");
}

/// CheckBaseline decides nothing but authenticates like Check and answers an
/// allow as large as a real one: the floor the load generator compares
/// Check with.
#[tokio::test]
async fn check_baseline_answers_a_fixed_allow_behind_the_same_key() {
    let server = ready_server().await;
    let mut checks = server.checks().await;
    let listed = checks
        .list_rules(compliance_guard::pb::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    let baseline =
        |check: CheckRequest| compliance_guard::pb::CheckBaselineRequest { check: Some(check) };
    let base = checks
        .check_baseline(baseline(call("BO-BASE-0001", "L1")))
        .await
        .unwrap()
        .into_inner()
        .answer
        .unwrap();
    assert!(base.allowed);
    assert_eq!(base.rules_version, listed.rules_version);
    assert_eq!(
        base.applied_rule_ids,
        listed
            .rules
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    );
    assert!(base.violations.is_empty() && base.interaction_id.is_empty());
    // It records nothing, even when asked to reserve.
    let mut reserve = call("BO-BASE-0001", "L1");
    reserve.reserve = true;
    checks.check_baseline(baseline(reserve)).await.unwrap();
    let open = checks
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(open.reservations.is_empty());
    let err = server
        .checks_without_key()
        .await
        .check_baseline(baseline(call("BO-BASE-0001", "L1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}
