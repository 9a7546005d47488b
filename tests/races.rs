//! The cap under truly parallel reserving Checks: a multi-threaded runtime
//! (the server on it too), several connections, many rounds, each round
//! with a cap of its own, and one debt reached by different routes (two
//! loans of one declared account, two names of one person).
//!
//! The cap is Regulation F's `us-regf-7-calls-in-7-days` (rules/us-reg-f.yaml:
//! 7 placed calls in 7 days per debt). A reserving Check records the send it
//! allows, so each round must end with exactly 7 allows and exactly 7 open
//! reservations, however the Checks interleave.

use std::collections::BTreeSet;
use std::sync::Arc;

use compliance_guard::pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use compliance_guard::pb::{
    CheckRequest, CheckResponse, Contact, DeclareDebtRequest, LinkPersonRequest,
    ListReservationsRequest,
};
use prost_types::Timestamp;
use tokio::sync::Barrier;

use crate::support::consts::PIPELINE_KEY;
use crate::support::server::{Checks, TestServer, WithKey, ready_server};

/// `us-regf-7-calls-in-7-days`: its limit and id.
const CAP: usize = 7;
const RULE: &str = "us-regf-7-calls-in-7-days";
/// Rounds per test; each has its own cap (a fresh person, loan or debt).
const ROUNDS: usize = 50;
/// Reserving Checks per round, all released at once.
const PER_ROUND: usize = 24;
/// Separate connections (tonic Channels) the Checks are spread over.
const CONNECTIONS: usize = 4;
/// Mon 2025-12-01 10:00 EST (15:00 UTC): inside the calling hours.
const AT: i64 = 1_764_601_200;

/// A reserving Check for one placed call about `loan`.
fn reserve(person: &str, loan: &str, request_id: String) -> CheckRequest {
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
        at: Some(Timestamp {
            seconds: AT,
            nanos: 0,
        }),
        reserve: true,
        request_id,
        ..CheckRequest::default()
    }
}

/// One client per connection, each on a Channel of its own.
async fn clients(server: &TestServer) -> Vec<Checks> {
    let mut all = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        all.push(ComplianceGuardServiceClient::with_interceptor(
            server.channel().await,
            WithKey(Some(PIPELINE_KEY)),
        ));
    }
    all
}

/// Sends every request at once, spread over the connections: each task
/// waits at one barrier, so all are in flight together.
async fn race(clients: &[Checks], requests: Vec<CheckRequest>) -> Vec<CheckResponse> {
    let start = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut checks = clients[i % clients.len()].clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                checks.check(r).await.unwrap().into_inner()
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// Checks one round's answers: exactly [`CAP`] allows, each with its own
/// reservation; every block by the cap on `debt`, having counted exactly
/// the round's allowed reservations. Returns the allowed ids, sorted.
fn exactly_the_cap(round: &str, debt: &str, answers: &[CheckResponse]) -> Vec<String> {
    let allowed: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.allowed)
        .map(|a| a.interaction_id.clone())
        .collect();
    let allows = answers.iter().filter(|a| a.allowed).count();
    assert_eq!(allows, CAP, "{round}: allows");
    assert_eq!(allowed.len(), CAP, "{round}: distinct reservations");
    assert!(
        allowed.iter().all(|id| id.starts_with("IT-")),
        "{round}: {allowed:?}"
    );
    for a in answers.iter().filter(|a| !a.allowed) {
        assert_eq!(a.compliance_guard_rule_id, RULE, "{round}: {a:?}");
        assert_eq!(a.interaction_id, "", "{round}: a block records nothing");
        let v = &a.violations[0];
        assert_eq!((v.count, v.limit), (7, 7), "{round}: {v:?}");
        assert_eq!(v.debt, debt, "{round}: {v:?}");
        let counted: BTreeSet<String> = v.counted_interaction_ids.iter().cloned().collect();
        assert_eq!(counted, allowed, "{round}: the block counted the allows");
    }
    allowed.into_iter().collect()
}

/// The open reservations listed under `person`, as sorted ids, keeping
/// only those about one of `loans`.
async fn open_reservations(checks: &mut Checks, person: &str, loans: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = checks
        .list_reservations(ListReservationsRequest {
            person_id: person.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .reservations
        .into_iter()
        .filter(|r| r.loan_ids.iter().any(|l| loans.contains(&l.as_str())))
        .map(|r| r.interaction_id)
        .collect();
    ids.sort();
    ids
}

/// 50 rounds of 24 reserving Checks over 4 connections on 4 worker
/// threads: even rounds for a person never seen (the Checks race to
/// register them too), odd rounds for a fresh loan of one person whose
/// history grows every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reserves_over_separate_connections_allow_exactly_the_cap_every_round() {
    let server = ready_server().await;
    let clients = clients(&server).await;
    let mut checks = server.checks().await;
    let mut many = Vec::new();
    for round in 0..ROUNDS {
        let (person, loan) = if round % 2 == 0 {
            (format!("BO-RACE-{round:04}"), "L1".to_owned())
        } else {
            ("BO-RACE-MANY".to_owned(), format!("L{round}"))
        };
        let requests = (0..PER_ROUND)
            .map(|i| reserve(&person, &loan, format!("race-{round}-{i}")))
            .collect();
        let answers = race(&clients, requests).await;
        let name = format!("round {round} ({person}, {loan})");
        let allowed = exactly_the_cap(&name, &loan, &answers);
        assert_eq!(
            open_reservations(&mut checks, &person, &[&loan]).await,
            allowed,
            "{name}: open reservations"
        );
        if round % 2 == 1 {
            many.extend(allowed);
        }
    }
    let mut all: Vec<String> = checks
        .list_reservations(ListReservationsRequest {
            person_id: "BO-RACE-MANY".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .reservations
        .into_iter()
        .map(|r| r.interaction_id)
        .collect();
    all.sort();
    many.sort();
    assert_eq!(all, many, "one person, one cap per loan");
    server.stop().await.unwrap();
}

/// One account declared over two loans is one debt (12 CFR
/// 1006.14(b)(4)): half the Checks name one loan, half the other, all at
/// once, and together they get the cap once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reserves_on_two_loans_of_one_account_share_its_cap() {
    let server = ready_server().await;
    let clients = clients(&server).await;
    let mut checks = server.checks().await;
    for round in 0..ROUNDS {
        let (person, account) = (format!("BO-DEBT-{round:04}"), format!("ACCT-{round}"));
        checks
            .declare_debt(DeclareDebtRequest {
                person_id: person.clone(),
                debt_id: account.clone(),
                loan_ids: vec!["SL1".into(), "SL2".into()],
            })
            .await
            .unwrap();
        let requests = (0..PER_ROUND)
            .map(|i| {
                let loan = if i % 2 == 0 { "SL1" } else { "SL2" };
                reserve(&person, loan, format!("debt-{round}-{i}"))
            })
            .collect();
        let answers = race(&clients, requests).await;
        let name = format!("round {round} ({person}, {account})");
        let allowed = exactly_the_cap(&name, &account, &answers);
        assert_eq!(
            open_reservations(&mut checks, &person, &["SL1", "SL2"]).await,
            allowed,
            "{name}: open reservations"
        );
    }
    server.stop().await.unwrap();
}

/// Our id and `ext-<externalId>`, linked, are one person with one
/// history: half the Checks use each name, all at once, and together they
/// get the cap once; the reservations are listed under either name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_reserves_through_two_names_of_one_person_share_the_cap() {
    let server = ready_server().await;
    let clients = clients(&server).await;
    let mut checks = server.checks().await;
    for round in 0..ROUNDS {
        let (ours, external) = (format!("BO-ALIAS-{round:04}"), format!("crm-{round}"));
        let linked = checks
            .link_person(LinkPersonRequest {
                person_id: ours.clone(),
                external_id: external.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(linked.person_id, ours);
        let theirs = format!("ext-{external}");
        let requests = (0..PER_ROUND)
            .map(|i| {
                let name = if i % 2 == 0 { &ours } else { &theirs };
                reserve(name, "L1", format!("alias-{round}-{i}"))
            })
            .collect();
        let answers = race(&clients, requests).await;
        let name = format!("round {round} ({ours} = {theirs})");
        let allowed = exactly_the_cap(&name, "L1", &answers);
        for person in [&ours, &theirs] {
            assert_eq!(
                open_reservations(&mut checks, person, &["L1"]).await,
                allowed,
                "{name}: open reservations listed under {person}"
            );
        }
    }
    server.stop().await.unwrap();
}
