//! Regressions found in review: each test reproduces a bug that was fixed.

use chrono::{DateTime, TimeZone, Utc};
use compliance_guard::guard::Guard;
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::Durability;
use compliance_guard::model::InteractionInput;
use compliance_guard::request::{Caller, CheckInput};
use compliance_guard::rules::{LoadOptions, RuleSet};
use std::path::Path;
use std::sync::Arc;

use crate::support::library::open_with;

fn caller() -> Caller {
    Caller {
        company: None,
        name: "review".into(),
        sensitive: true,
        agent: false,
    }
}
fn rules() -> Arc<RuleSet> {
    Arc::new(RuleSet::load_dir(Path::new("rules"), &LoadOptions::default()).unwrap())
}
/// The guard on `dir`, with the shipped rules.
fn open(dir: &Path, compact_after: u64) -> Guard {
    let (g, _) = open_with(dir, compact_after).unwrap();
    g.set_rules(rules());
    g
}
fn check_input(person: &str, at: DateTime<Utc>) -> CheckInput {
    CheckInput {
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
        at: Some(at),
        ..CheckInput::default()
    }
}

/// What a call Check answers the day after a conversation about `L1`
/// (`conversation`): blocked by the quiet period through Sun 2025-12-07,
/// until 08:00 on Mon 2025-12-08 in New York, counting that conversation.
fn assert_quiet_after(d: &compliance_guard::engine::Decision, conversation: &str, what: &str) {
    assert!(!d.allowed, "{what}: {d:?}");
    assert_eq!(
        d.rule_id.as_deref(),
        Some("us-regf-quiet-after-conversation"),
        "{what}"
    );
    assert_eq!(
        d.next_allowed_at,
        Some(Utc.with_ymd_and_hms(2025, 12, 8, 13, 0, 0).unwrap()),
        "{what}"
    );
    assert_eq!(d.violations.len(), 1, "{what}: {:?}", d.violations);
    assert_eq!(
        d.violations[0].counted_interaction_ids,
        [conversation],
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_link_then_compaction_loses_history() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    let conversation;
    {
        let g = open(dir.path(), u64::MAX);
        let conv = InteractionInput {
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            status_details: Some("voiceSpokeWithFirstParty".into()),
            loan_id: Some("L1".into()),
            started_at: Some("2025-12-01T15:00:00Z".into()),
            ..InteractionInput::default()
        };
        conversation = g
            .create("BO-AAAA-00000001", &conv, &caller(), now)
            .await
            .unwrap()
            .0
            .id;
        g.link_person("BO-BBBB-00000002", "Y", now).await.unwrap();
        g.link_person("BO-AAAA-00000001", "Y", now).await.unwrap();
        let d = g
            .check(&check_input("ext-Y", now), &caller(), now, None)
            .await
            .unwrap()
            .decision;
        assert_quiet_after(&d, &conversation, "live");
    }
    {
        let g = open(dir.path(), 0); // replay journal, then compact into a snapshot
        let d = g
            .check(&check_input("ext-Y", now), &caller(), now, None)
            .await
            .unwrap()
            .decision;
        assert_quiet_after(&d, &conversation, "after replay, then compaction");
    }
    {
        let g = open(dir.path(), u64::MAX); // start from the snapshot
        let d = g
            .check(&check_input("ext-Y", now), &caller(), now, None)
            .await
            .unwrap()
            .decision;
        assert_quiet_after(&d, &conversation, "ext-Y from the snapshot");
        let d2 = g
            .check(&check_input("BO-AAAA-00000001", now), &caller(), now, None)
            .await
            .unwrap()
            .decision;
        assert_quiet_after(&d2, &conversation, "our id from the snapshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_far_future_at_poisons_lock() {
    let g = Guard::new(IndexConfig::default());
    g.set_rules(rules());
    let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(10) - chrono::Duration::hours(20);
    let mut input = check_input("BO-AAAA-00000001", far);
    input.reserve = true;
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    let g = Arc::new(g);
    let g2 = g.clone();
    let r = tokio::spawn(async move {
        g2.check(&input, &caller(), now, None)
            .await
            .map(|o| o.decision.allowed)
    })
    .await;
    let after = g
        .check(&check_input("BO-AAAA-00000001", now), &caller(), now, None)
        .await;
    let err = r.unwrap().unwrap_err();
    assert!(
        matches!(err, compliance_guard::guard::GuardError::Invalid(_)),
        "{err:?}"
    );
    // The guard still answers, and from an unchanged history: allowed at
    // 10:00 in New York, until 21:00.
    let after = after.expect("the guard still answers").decision;
    assert!(after.allowed, "{after:?}");
    assert_eq!(after.rule_id, None);
    assert!(after.violations.is_empty(), "{:?}", after.violations);
    assert_eq!(
        after.valid_until,
        Some(Utc.with_ymd_and_hms(2025, 12, 3, 2, 0, 0).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_request_id_retry_of_blocked_check_for_new_person() {
    let g = Guard::new(IndexConfig::default());
    g.set_rules(rules());
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    // 22:30 in New York: blocked by the hours rule, nothing recorded.
    let mut input = check_input(
        "ext-newcomer",
        Utc.with_ymd_and_hms(2025, 12, 3, 3, 30, 0).unwrap(),
    );
    input.reserve = true;
    input.request_id = "send-1".into();
    let first = g.check(&input, &caller(), now, None).await.unwrap();
    assert!(!first.decision.allowed);
    assert_eq!(first.decision.rule_id.as_deref(), Some("us-regf-hours"));
    // 08:00 the next morning in New York.
    assert_eq!(
        first.decision.next_allowed_at,
        Some(Utc.with_ymd_and_hms(2025, 12, 3, 13, 0, 0).unwrap())
    );
    assert!(!first.repeated && first.interaction_id.is_none());
    let retry = g.check(&input, &caller(), now, None).await.unwrap();
    assert!(
        retry.repeated,
        "the retry is answered from the first answer"
    );
    assert_eq!(retry.decision, first.decision);
    assert_eq!(retry.interaction_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_corrupt_length_mid_journal_is_silently_cut() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    {
        let g = open(dir.path(), u64::MAX);
        for i in 0..3 {
            let call = InteractionInput {
                channel: Some("voice".into()),
                direction: Some("outbound".into()),
                status: Some("attempted".into()),
                status_details: Some("voiceRangNoPickup".into()),
                loan_id: Some("L1".into()),
                external_id: Some(format!("c{i}")),
                started_at: Some("2025-12-01T15:00:00Z".into()),
                ..InteractionInput::default()
            };
            g.create("BO-AAAA-00000001", &call, &caller(), now)
                .await
                .unwrap();
        }
        assert_eq!(g.len(), 3);
    }
    let path = dir.path().join("journal/journal-00000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let before = bytes.len();
    // One bit flip in the high byte of the FIRST record's length field.
    bytes[8 + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let r = Guard::open(
        IndexConfig::default(),
        dir.path(),
        Durability::Sync,
        u64::MAX,
        |_| {},
    );
    match r {
        Ok((g, replayed)) => panic!(
            "a damaged length was taken for a torn tail: {} interactions, cut {:?}",
            g.len(),
            replayed.cut
        ),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("is damaged at byte offset 8"), "{text}");
            assert!(text.contains("a whole record follows"), "{text}");
            assert_eq!(
                std::fs::read(&path).unwrap().len(),
                before,
                "a refused start leaves the file as it is"
            );
        }
    }
}

/// A reserve named in the past was recorded there, outside the windows of
/// the send that really went out now, so two such sends could go over a
/// cap. Now: refused beyond the tolerance, with an exact message; accepted
/// within it, unset, or scheduled later; a retry still gets its first
/// answer after the clock has moved on; and `None` accepts any `at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_reserve_in_the_past_escaped_the_current_windows() {
    let g = Guard::new(IndexConfig::default());
    g.set_rules(rules());
    // Tue 2025-12-02 10:00 in New York.
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    let reserve = |at: Option<DateTime<Utc>>, request: &str| {
        let mut input = check_input("BO-PAST-00000001", now);
        input.at = at;
        input.reserve = true;
        input.request_id = request.into();
        input
    };
    let stale = reserve(Some(now - chrono::Duration::days(8)), "send-stale");
    let Err(compliance_guard::guard::GuardError::Invalid(problems)) =
        g.check(&stale, &caller(), now, None).await
    else {
        panic!("a reserve 8 days back was not refused");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "at");
    assert_eq!(
        problems[0].message,
        "`at` 2025-11-24T15:00:00+00:00 is 691200 s before the server's clock \
         (2025-12-02T15:00:00+00:00); a reserving Check is for a send now or later; \
         allowed: at most 300 s before it (leave `at` unset to mean now)"
    );
    let edge = reserve(Some(now - chrono::Duration::seconds(301)), "send-301");
    let Err(compliance_guard::guard::GuardError::Invalid(problems)) =
        g.check(&edge, &caller(), now, None).await
    else {
        panic!("a reserve 301 s back was not refused");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].field, "at");
    assert!(
        problems[0]
            .message
            .contains("is 301 s before the server's clock"),
        "{}",
        problems[0].message
    );

    let mut ids = Vec::new();
    for (at, request) in [
        (Some(now - chrono::Duration::seconds(300)), "send-300"),
        (None, "send-now"),
        (Some(now + chrono::Duration::hours(1)), "send-later"),
    ] {
        let input = reserve(at, request);
        let first = g.check(&input, &caller(), now, None).await.unwrap();
        assert!(first.decision.allowed, "{request}: {:?}", first.decision);
        let id = first.interaction_id.clone().unwrap();
        // An hour later the retry is beyond the tolerance, but it is a
        // retry: it gets the first answer, and no second slot.
        let later = now + chrono::Duration::hours(1);
        let again = g.check(&input, &caller(), later, None).await.unwrap();
        assert!(again.repeated);
        assert_eq!(again.interaction_id.as_deref(), Some(id.as_str()));
        ids.push(id);
    }
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "three sends, three reservations: {ids:?}"
    );

    g.set_reserve_tolerance(None);
    let backfill = reserve(Some(now - chrono::Duration::days(8)), "send-backfill");
    assert!(
        g.check(&backfill, &caller(), now, None)
            .await
            .unwrap()
            .decision
            .allowed
    );
}

/// A cease recorded under one name must still bind after that name is
/// linked to another person's history, in memory, after a journal replay
/// and after a snapshot: restrictions follow the names they were recorded
/// under (found in review of the restriction API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_link_keeps_restrictions() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap();
    let cease = compliance_guard::restrictions::RestrictionInput {
        kind: "ceaseCommunication".into(),
        source: "letter".into(),
        received_at: "2025-12-01T15:00:00Z".into(),
        ..Default::default()
    };
    let blocked = |g: &Guard, person: &str| {
        let input = check_input(person, now);
        let view = decide_blocking(g, &input, now);
        assert!(!view.0, "{person}: a cease must block");
        assert_eq!(view.1.as_deref(), Some("us-regf-cease-communication"));
    };
    let id;
    {
        let g = open(dir.path(), u64::MAX);
        id = g
            .add_restriction("BO-AAAA-0001", &cease, &caller(), now)
            .await
            .unwrap()
            .id;
        let record = InteractionInput {
            channel: Some("email".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            started_at: Some("2025-11-30T15:00:00Z".into()),
            ..InteractionInput::default()
        };
        g.create("ext-X1", &record, &caller(), now).await.unwrap();
        g.link_person("BO-AAAA-0001", "X1", now).await.unwrap();
        blocked(&g, "ext-X1");
        blocked(&g, "BO-AAAA-0001");
    }
    for compact_after in [u64::MAX, 0, u64::MAX] {
        let g = open(dir.path(), compact_after);
        let listed = g.restrictions("ext-X1", true, now).unwrap();
        assert_eq!(
            listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        blocked(&g, "ext-X1");
        blocked(&g, "BO-AAAA-0001");
    }
}

/// A Check without reserve, decided synchronously for the test: whether it
/// was allowed, and the deciding rule.
fn decide_blocking(g: &Guard, input: &CheckInput, now: DateTime<Utc>) -> (bool, Option<String>) {
    let rt = tokio::runtime::Handle::current();
    let out =
        tokio::task::block_in_place(|| rt.block_on(g.check(input, &caller(), now, None))).unwrap();
    (out.decision.allowed, out.decision.rule_id)
}
