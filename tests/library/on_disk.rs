//! History on disk (issue 15), through the library API: a start that
//! materialized the journal into the store leaves the full records of
//! interactions that happen more than the horizon (90 days) and a day
//! before the latest one on disk only, and every read, write and Check
//! answers as it did while they were in memory — or, for a Check that
//! needs them, refuses.
//!
//! Every history here is at fixed times: old records in January 2023, a
//! recent batch up to [`LATEST`] (2024-03-15T15:00Z), which is the
//! latest interaction at or before the real clock, so that memory keeps
//! what happens from [`cutoff`] (2023-12-15T15:00Z) on.
//!
//! Most tests build the same history twice: one data directory restarted
//! with `compact_after` 0 (the old records go to disk), the other
//! restarted with `compact_after` `u64::MAX` (the journal replayed,
//! everything in memory, as before the store), and every answer of the
//! first is compared with the second's, and with the answers recorded
//! before the restart.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use compliance_guard::guard::{Guard, GuardError};
use compliance_guard::index::{ListQuery, SortField, TimeBounds};
use compliance_guard::model::{
    Channel, ContactInput, Interaction, InteractionInput, Media, MediaKind, Status,
};
use compliance_guard::request::{Caller, CheckInput, CheckOutcome};
use compliance_guard::restrictions::RestrictionInput;
use compliance_guard::rules::{LoadOptions, RuleSet};
use compliance_guard::store::{Limits, Listed, Loaded, Narrow, Reader, Refused, Store};

use crate::ops::durability::journal_files as journals;
use crate::support::library::open_with;

/// The latest interaction of every history here.
const LATEST: &str = "2024-03-15T15:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// What memory keeps after a start: the horizon (90 days) and a day
/// before [`LATEST`].
fn cutoff() -> DateTime<Utc> {
    t(LATEST) - Duration::days(91)
}

/// A key with every right.
fn caller() -> Caller {
    Caller {
        company: None,
        name: "on-disk".into(),
        sensitive: true,
        agent: true,
    }
}

/// A key without the sensitive right.
fn plain() -> Caller {
    Caller {
        sensitive: false,
        agent: false,
        ..caller()
    }
}

/// A record of the lender's history.
fn record(channel: &str, direction: &str, status: &str, started: &str) -> InteractionInput {
    InteractionInput {
        channel: Some(channel.into()),
        direction: Some(direction.into()),
        status: Some(status.into()),
        status_details: (channel == "voice" && direction == "outbound")
            .then(|| "voiceRangNoPickup".into()),
        started_at: Some(started.into()),
        loan_id: Some("L1".into()),
        ..InteractionInput::default()
    }
}

/// Records `input` for `person`, created an hour after it starts.
async fn create(g: &Guard, person: &str, input: InteractionInput) -> Interaction {
    let now = t(input.started_at.as_deref().unwrap()) + Duration::hours(1);
    let (r, created) = g.create(person, &input, &caller(), now).await.unwrap();
    assert!(created, "{r:?}");
    r
}

/// Collects what a start logs (JSON lines).
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A guard opened on a data directory, with how many interactions its
/// start logged in memory and on disk only. The guard has no accessor
/// for them: the start's log line "interactions loaded" is the only
/// public account.
struct Opened {
    g: Guard,
    in_memory: u64,
    on_disk: u64,
}

impl std::ops::Deref for Opened {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.g
    }
}

fn open(dir: &Path, compact_after: u64) -> Opened {
    open_logged(|| open_with(dir, compact_after))
}

/// [`open`] as a server opens: the store following the journal, so that
/// a clean stop writes the index checkpoint; with `horizon_days`.
fn open_serving(dir: &Path, horizon_days: u32) -> Opened {
    open_rolling(dir, horizon_days, 0)
}

/// [`open_serving`], the journal rolling after `compact_after` records.
fn open_rolling(dir: &Path, horizon_days: u32, compact_after: u64) -> Opened {
    open_logged(|| {
        Guard::open(
            compliance_guard::index::IndexConfig { horizon_days },
            dir,
            compliance_guard::journal::Durability::Sync,
            compact_after,
            |_| {},
        )
    })
}

/// A guard `opener` opens, with the counts its start logged.
fn open_logged(
    opener: impl FnOnce() -> Result<
        (Guard, compliance_guard::journal::Recovered),
        compliance_guard::journal::JournalError,
    >,
) -> Opened {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let (g, _) = tracing::subscriber::with_default(subscriber, opener).unwrap();
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let loaded = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "interactions loaded")
        .unwrap_or_else(|| panic!("no `interactions loaded` in the start's log:\n{text}"));
    Opened {
        g,
        in_memory: loaded["fields"]["in_memory"].as_u64().unwrap(),
        on_disk: loaded["fields"]["on_disk_only"].as_u64().unwrap(),
    }
}

fn shipped_rules() -> RuleSet {
    RuleSet::load_dir(Path::new("rules"), &LoadOptions::default()).unwrap()
}

/// Only Regulation F's opt-out (its window is 0 days: a Check at any
/// time from the cutoff on is answered).
fn opt_out_rules() -> Arc<RuleSet> {
    Arc::new(shipped_rules().subset(&["us-regf-medium-opt-out"]).unwrap())
}

fn rules_from(yaml: &str) -> Arc<RuleSet> {
    Arc::new(
        RuleSet::compile(
            &[("test.yaml".into(), yaml.into())],
            &LoadOptions::default(),
        )
        .unwrap(),
    )
}

/// A Check of a send to `person` at `at` (New York, a state without rules
/// of its own).
fn send(person: &str, channel: &str, at: &str) -> CheckInput {
    CheckInput {
        person_id: person.into(),
        channel: channel.into(),
        direction: "outbound".into(),
        loan_ids: vec!["L1".into()],
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        at: Some(t(at)),
        ..CheckInput::default()
    }
}

async fn check(g: &Guard, input: &CheckInput) -> Result<CheckOutcome, GuardError> {
    let now = input.at.unwrap();
    g.check(input, &caller(), now, None).await
}

fn on_disk_in_store(dir: &Path) -> (u64, u64) {
    let store = Store::open_read_only(dir).unwrap().unwrap();
    let mut on_disk = 0;
    store
        .load(
            None,
            Some(cutoff().timestamp()),
            |_, _| None::<()>,
            |l| {
                if let Loaded::OnDisk { count, .. } = l {
                    on_disk += count;
                }
                Ok(())
            },
        )
        .unwrap();
    (store.interactions().unwrap(), on_disk)
}

const ANN: &str = "BO-AAAA-00000001";
const BOB: &str = "BO-BBBB-00000002";

/// The history most tests read: Ann's and Bob's records of January 2023
/// (eight, on disk after a materializing start), a reservation of Bob's
/// then that is still open (in memory whatever its time), and a recent
/// batch in March 2024.
#[derive(Debug, Clone)]
struct History {
    /// Ann's voice call, `ext-old-1`, external, with content and cases.
    o1: Interaction,
    /// Ann's text, `ext-old-2`, not external (it cannot be deleted).
    o2: Interaction,
    /// Ann's failed email, `ext-old-3`, external, answering o1.
    o3: Interaction,
    /// Ann's inbound call, sensitive.
    o4: Interaction,
    /// Ann's text, answering o3.
    o5: Interaction,
    /// Ann's voice call with a recording.
    o6: Interaction,
    /// Bob's call and text.
    b1: Interaction,
    b2: Interaction,
    /// Bob's open reservation of January 2023.
    reserved: String,
    /// Ann's call, text (answering o5) and failed email of March 2024.
    r1: Interaction,
    r2: Interaction,
    r3: Interaction,
    /// Bob's call at [`LATEST`].
    r4: Interaction,
}

impl History {
    fn old(&self) -> [&Interaction; 8] {
        [
            &self.o1, &self.o2, &self.o3, &self.o4, &self.o5, &self.o6, &self.b1, &self.b2,
        ]
    }
    fn ann(&self) -> Vec<&Interaction> {
        vec![
            &self.o1, &self.o2, &self.o3, &self.o4, &self.o5, &self.o6, &self.r1, &self.r2,
            &self.r3,
        ]
    }
}

fn recording() -> Media {
    Media {
        content_type: "audio/mpeg".into(),
        size_bytes: 1234,
        sha256: "ab".repeat(32),
        uploaded_at: t("2023-01-07T17:00:00Z"),
        uploaded_by: "on-disk".into(),
        storage_key: "rec-o6-0001".into(),
    }
}

/// Writes [`History`] into a new data directory; returns the guard still
/// open (nothing restarted yet: everything is in memory).
async fn build(dir: &Path) -> (Opened, History) {
    let g = open(dir, u64::MAX);
    assert_eq!((g.in_memory, g.on_disk), (0, 0));
    g.set_rules(opt_out_rules());
    let o1 = create(
        &g,
        ANN,
        InteractionInput {
            external_id: Some("old-1".into()),
            is_external: Some(true),
            content: Some(serde_json::json!({"note": "first call", "n": [1.5, 2.5, null]})),
            meta_data: Some(serde_json::json!({"campaign": "jan"})),
            case_ids: Some(vec!["CS-AAAA-0001".into(), "CS-AAAA-0002".into()]),
            contact: Some(ContactInput {
                kind: Some("mobilePhone".into()),
                value: Some("+1 555 000 1111".into()),
                name: None,
            }),
            ..record("voice", "outbound", "attempted", "2023-01-02T15:00:00Z")
        },
    )
    .await;
    let o2 = create(
        &g,
        ANN,
        InteractionInput {
            external_id: Some("old-2".into()),
            is_external: Some(false),
            ..record("text", "outbound", "attempted", "2023-01-03T15:00:00Z")
        },
    )
    .await;
    let o3 = create(
        &g,
        ANN,
        InteractionInput {
            external_id: Some("old-3".into()),
            is_external: Some(true),
            previous_interaction_id: Some(o1.id.clone()),
            ..record("email", "outbound", "failed", "2023-01-04T15:00:00Z")
        },
    )
    .await;
    let o4 = create(
        &g,
        ANN,
        InteractionInput {
            sensitive: Some(true),
            ..record("voice", "inbound", "succeeded", "2023-01-05T15:00:00Z")
        },
    )
    .await;
    let o5 = create(
        &g,
        ANN,
        InteractionInput {
            previous_interaction_id: Some(format!("ext-{}", "old-3")),
            ..record("text", "outbound", "attempted", "2023-01-06T15:00:00Z")
        },
    )
    .await;
    let o6 = create(
        &g,
        ANN,
        record("voice", "outbound", "attempted", "2023-01-07T15:00:00Z"),
    )
    .await;
    let o6 = g
        .attach_media(
            &o6.id,
            MediaKind::Recording,
            recording(),
            &caller(),
            t("2023-01-07T17:00:00Z"),
        )
        .await
        .unwrap();
    let b1 = create(
        &g,
        BOB,
        InteractionInput {
            external_id: Some("old-b1".into()),
            ..record("voice", "outbound", "attempted", "2023-01-08T15:00:00Z")
        },
    )
    .await;
    let b2 = create(
        &g,
        BOB,
        record("text", "outbound", "attempted", "2023-01-09T15:00:00Z"),
    )
    .await;
    g.set_reserve_tolerance(None);
    let reserved = g
        .check(
            &CheckInput {
                reserve: true,
                request_id: "req-old".into(),
                ..send(BOB, "voice", "2023-01-20T15:00:00Z")
            },
            &caller(),
            t("2023-01-20T15:00:00Z"),
            None,
        )
        .await
        .unwrap()
        .interaction_id
        .unwrap();
    let r1 = create(
        &g,
        ANN,
        InteractionInput {
            external_id: Some("new-1".into()),
            ..record("voice", "outbound", "attempted", "2024-03-10T15:00:00Z")
        },
    )
    .await;
    let r2 = create(
        &g,
        ANN,
        InteractionInput {
            previous_interaction_id: Some(o5.id.clone()),
            ..record("text", "outbound", "attempted", "2024-03-11T15:00:00Z")
        },
    )
    .await;
    let r3 = create(
        &g,
        ANN,
        record("email", "outbound", "failed", "2024-03-12T15:00:00Z"),
    )
    .await;
    let r4 = create(&g, BOB, record("voice", "outbound", "attempted", LATEST)).await;
    let h = History {
        o1,
        o2,
        o3,
        o4,
        o5,
        o6,
        b1,
        b2,
        reserved,
        r1,
        r2,
        r3,
        r4,
    };
    (g, h)
}

fn ids(list: &[Interaction]) -> Vec<&str> {
    list.iter().map(|r| r.id.as_str()).collect()
}

fn query(person: Option<&str>) -> ListQuery {
    ListQuery {
        person: person.map(str::to_owned),
        limit: 100,
        ..ListQuery::default()
    }
}

/// The listings compared before and after: one person's and everyone's,
/// each with filters, sorts and pages whose bounds cross from memory to
/// disk.
fn listings(h: &History) -> Vec<(String, ListQuery, Caller)> {
    let mut out = Vec::new();
    for person in [Some(ANN), Some("ext-nobody"), None] {
        let q = || query(person);
        let name = |what: &str| format!("{person:?}: {what}");
        out.push((name("all"), q(), caller()));
        out.push((name("without the sensitive right"), q(), plain()));
        out.push((
            name("voice"),
            ListQuery {
                channels: vec![Channel::Voice],
                ..q()
            },
            caller(),
        ));
        out.push((
            name("failed"),
            ListQuery {
                statuses: vec![Some(Status::Failed)],
                ..q()
            },
            caller(),
        ));
        out.push((
            name("createdAfter"),
            ListQuery {
                created_after: Some(t("2023-01-05T15:30:00Z")),
                ..q()
            },
            caller(),
        ));
        out.push((
            name("createdAfter, createdBefore"),
            ListQuery {
                created_after: Some(t("2023-01-03T00:00:00Z")),
                created_before: Some(t("2024-03-11T00:00:00Z")),
                ..q()
            },
            caller(),
        ));
        out.push((
            name("startingAfter o5, 2"),
            ListQuery {
                starting_after: Some(h.o5.id.clone()),
                limit: 2,
                ..q()
            },
            caller(),
        ));
        out.push((
            name("startingAfter ext-old-3, offset 1, 3"),
            ListQuery {
                starting_after: Some("ext-old-3".into()),
                offset: 1,
                limit: 3,
                ..q()
            },
            caller(),
        ));
        out.push((
            name("endingBefore r2, 2"),
            ListQuery {
                ending_before: Some(h.r2.id.clone()),
                limit: 2,
                ..q()
            },
            caller(),
        ));
        out.push((
            name("endingBefore ext-new-1, 3"),
            ListQuery {
                ending_before: Some("ext-new-1".into()),
                limit: 3,
                ..q()
            },
            caller(),
        ));
        out.push((
            name("startedAt descending, offset 2, 4"),
            ListQuery {
                sort: vec![(SortField::StartedAt, true)],
                offset: 2,
                limit: 4,
                ..q()
            },
            caller(),
        ));
        out.push((
            name("channel, then createdAt descending"),
            ListQuery {
                sort: vec![(SortField::Channel, false), (SortField::CreatedAt, true)],
                ..q()
            },
            caller(),
        ));
        out.push((
            name("text, startingAfter o2"),
            ListQuery {
                channels: vec![Channel::Text],
                starting_after: Some(h.o2.id.clone()),
                ..q()
            },
            caller(),
        ));
        out.push((
            name("startingAfter the sensitive o4 without the right"),
            ListQuery {
                starting_after: Some(h.o4.id.clone()),
                ..q()
            },
            plain(),
        ));
        out.push((
            name("caseIds"),
            ListQuery {
                case_ids: vec!["CS-AAAA-0002".into()],
                ..q()
            },
            caller(),
        ));
        out.push((
            name("contentContains"),
            ListQuery {
                content_contains: Some("first call".into()),
                ..q()
            },
            caller(),
        ));
        out.push((
            name("hasRecording"),
            ListQuery {
                channels: vec![Channel::Voice],
                has_recording: Some(true),
                ..q()
            },
            caller(),
        ));
    }
    out
}

type Answers = Vec<(String, Result<(usize, Vec<Interaction>), GuardError>)>;

fn list_all(g: &Guard, h: &History) -> Answers {
    listings(h)
        .into_iter()
        .map(|(name, q, who)| {
            let answer = g.list(&q, &who);
            (name, answer)
        })
        .collect()
}

fn gets(g: &Guard, h: &History) -> Vec<Result<Interaction, GuardError>> {
    let mut out = Vec::new();
    for r in h.old().into_iter().chain([&h.r1, &h.r4]) {
        out.push(g.get(None, &r.id, &caller()));
        out.push(g.get(Some(&r.person_id), &r.id, &caller()));
        out.push(g.get(None, &r.id, &plain()));
        let other = if r.person_id == ANN { BOB } else { ANN };
        out.push(g.get(Some(other), &r.id, &caller()));
        if let Some(ext) = &r.external_id {
            out.push(g.get(None, &format!("ext-{ext}"), &caller()));
            out.push(g.get(Some(other), &format!("ext-{ext}"), &caller()));
        }
    }
    out.push(g.get(None, "ext-no-such", &caller()));
    out
}

/// Items 1, 2, 3, 5, 6 and 8: after a start with `compact_after` 0 the
/// eight old records are on disk only (the open reservation's stays in
/// memory), and Get, List, the chain, an idempotent create and the media
/// answer exactly as before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_history_on_disk_reads_as_before_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (g, h) = build(dir.path()).await;
    // Before the restart: what each read answers.
    let listed = list_all(&g, &h);
    let got = gets(&g, &h);
    let chain_r2 = g.previous(None, &h.r2.id, None, &caller());
    let chain_o5 = g.previous(Some(ANN), &h.o5.id, None, &caller());
    let retry = InteractionInput {
        external_id: Some("old-1".into()),
        ..record("voice", "outbound", "attempted", "2023-01-02T15:00:00Z")
    };
    let at = t("2024-03-20T12:00:00Z");
    let same_person = g.create(ANN, &retry, &caller(), at).await;
    let other_person = g.create(BOB, &retry, &caller(), at).await;
    let media = g.media(None, &h.o6.id, MediaKind::Recording, &caller());
    let link = g.media_for_link(&h.o6.id, MediaKind::Recording);
    let file = g.media_file("rec-o6-0001");
    let cases = g.cases(None, "ext-old-1", 1, 0, None, None, &caller());
    let sizes = g.sizes();
    drop(g);

    let g = open(dir.path(), 0);
    // 1. Exactly the eight old records left memory; Bob's reservation of
    //    January 2023 stayed.
    assert_eq!((g.in_memory, g.on_disk), (5, 8));
    // The same sizes, but for what memory holds whole: a start holds the
    // records of the horizon that are more than a day old as their
    // counting entries and names only.
    let (now_sizes, whole) = (g.sizes(), g.sizes().whole_in_memory);
    assert_eq!(
        compliance_guard::guard::Sizes {
            whole_in_memory: sizes.whole_in_memory,
            ..now_sizes
        },
        sizes
    );
    assert_eq!((sizes.whole_in_memory, whole), (13, 1), "the reservation's");
    assert_eq!(g.len(), 13);
    assert_eq!(on_disk_in_store(dir.path()), (13, 8));
    let reservations = g.reservations(None, &caller()).unwrap();
    assert_eq!(
        reservations
            .iter()
            .map(|r| r.interaction_id.as_str())
            .collect::<Vec<_>>(),
        [h.reserved.as_str()]
    );

    // 2. Get: by our id and `ext-`, the exact record as created.
    for r in h.old() {
        assert_eq!(g.get(None, &r.id, &caller()).unwrap(), *r, "{}", r.id);
        assert_eq!(
            g.get(Some(&r.person_id), &r.id, &caller()).unwrap(),
            *r,
            "{}",
            r.id
        );
        if let Some(ext) = &r.external_id {
            assert_eq!(
                g.get(None, &format!("ext-{ext}"), &caller()).unwrap(),
                *r,
                "ext-{ext}"
            );
        }
    }
    assert_eq!(
        g.get(Some(BOB), &h.o1.id, &caller()),
        Err(GuardError::NotFound(format!(
            "no interaction `{}` for person `{BOB}`",
            h.o1.id
        )))
    );
    assert_eq!(
        g.get(None, &h.o4.id, &plain()),
        Err(GuardError::NotFound(format!(
            "no interaction `{}`",
            h.o4.id
        )))
    );
    assert_eq!(gets(&g, &h), got, "every Get answers as before the restart");
    // (That a Get or a List leaves the record on disk only is seen in
    // `an_opt_out_reply_used_long_ago_stays_used_when_the_message_is_read_back`.)

    // 3. List: the same answers as before the restart.
    let now_listed = list_all(&g, &h);
    for ((name, before), (_, after)) in listed.iter().zip(&now_listed) {
        assert_eq!(after, before, "{name}");
    }
    // And exactly these.
    let answer = |name: &str| {
        now_listed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listing {name}"))
            .1
            .clone()
            .unwrap()
    };
    let ann = format!("{:?}", Some(ANN));
    let all = "None";
    let want = |rs: &[&Interaction]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let (total, data) = answer(&format!("{ann}: all"));
    assert_eq!(
        (total, ids(&data)),
        (9, want(&h.ann()).iter().map(String::as_str).collect())
    );
    assert_eq!(data.iter().collect::<Vec<_>>(), h.ann());
    let (total, data) = answer(&format!("{ann}: without the sensitive right"));
    assert_eq!(total, 8);
    assert!(!ids(&data).contains(&h.o4.id.as_str()));
    let (total, data) = answer(&format!("{ann}: voice"));
    assert_eq!(
        (total, ids(&data)),
        (4, vec![&*h.o1.id, &*h.o4.id, &*h.o6.id, &*h.r1.id])
    );
    let (total, data) = answer(&format!("{ann}: failed"));
    assert_eq!((total, ids(&data)), (2, vec![&*h.o3.id, &*h.r3.id]));
    let (total, data) = answer(&format!("{ann}: createdAfter"));
    assert_eq!(
        (total, ids(&data)),
        (
            6,
            vec![
                &*h.o4.id, &*h.o5.id, &*h.o6.id, &*h.r1.id, &*h.r2.id, &*h.r3.id
            ]
        )
    );
    let (total, data) = answer(&format!("{ann}: startingAfter o5, 2"));
    assert_eq!((total, ids(&data)), (9, vec![&*h.o6.id, &*h.r1.id]));
    let (total, data) = answer(&format!("{ann}: endingBefore r2, 2"));
    assert_eq!((total, ids(&data)), (9, vec![&*h.o6.id, &*h.r1.id]));
    let (total, data) = answer(&format!("{ann}: endingBefore ext-new-1, 3"));
    assert_eq!(
        (total, ids(&data)),
        (9, vec![&*h.o4.id, &*h.o5.id, &*h.o6.id])
    );
    let (total, data) = answer(&format!("{ann}: startedAt descending, offset 2, 4"));
    assert_eq!(
        (total, ids(&data)),
        (9, vec![&*h.r1.id, &*h.o6.id, &*h.o5.id, &*h.o4.id])
    );
    let (total, data) = answer(&format!("{all}: all"));
    assert_eq!(
        (total, ids(&data)),
        (
            13,
            vec![
                &*h.o1.id,
                &*h.o2.id,
                &*h.o3.id,
                &*h.o4.id,
                &*h.o5.id,
                &*h.o6.id,
                &*h.b1.id,
                &*h.b2.id,
                &*h.reserved,
                &*h.r1.id,
                &*h.r2.id,
                &*h.r3.id,
                &*h.r4.id
            ]
        )
    );
    let (total, data) = answer(&format!("{all}: startingAfter o5, 2"));
    assert_eq!((total, ids(&data)), (13, vec![&*h.o6.id, &*h.b1.id]));
    let (total, data) = answer(&format!("{all}: endingBefore ext-new-1, 3"));
    assert_eq!(
        (total, ids(&data)),
        (13, vec![&*h.b1.id, &*h.b2.id, &*h.reserved])
    );
    let (total, data) = answer(&format!("{all}: voice"));
    assert_eq!(
        (total, ids(&data)),
        (
            7,
            vec![
                &*h.o1.id,
                &*h.o4.id,
                &*h.o6.id,
                &*h.b1.id,
                &*h.reserved,
                &*h.r1.id,
                &*h.r4.id
            ]
        )
    );
    let (total, data) = answer(&format!("{all}: hasRecording"));
    assert_eq!((total, ids(&data)), (1, vec![&*h.o6.id]));
    // A listing reads the store without putting anything back in memory.
    assert_eq!(g.sizes(), now_sizes);

    // 5. A create with an externalId an on-disk record holds.
    assert_eq!(g.create(ANN, &retry, &caller(), at).await, same_person);
    assert_eq!(same_person, Ok((h.o1.clone(), false)));
    assert_eq!(g.create(BOB, &retry, &caller(), at).await, other_person);
    assert!(
        matches!(&other_person, Err(GuardError::AlreadyExists(_))),
        "{other_person:?}"
    );

    // 6. The chain through records on disk.
    assert_eq!(
        g.previous(None, &h.r2.id, None, &caller()),
        Ok(vec![h.o5.clone(), h.o3.clone(), h.o1.clone()])
    );
    assert_eq!(g.previous(None, &h.r2.id, None, &caller()), chain_r2);
    assert_eq!(
        g.previous(Some(ANN), &h.o5.id, None, &caller()),
        Ok(vec![h.o3.clone(), h.o1.clone()])
    );
    assert_eq!(g.previous(Some(ANN), &h.o5.id, None, &caller()), chain_o5);

    // 8. The recording of a record on disk.
    assert_eq!(g.media_file("rec-o6-0001"), Ok(Some(None)));
    assert_eq!(g.media_file("rec-o6-0001"), file);
    assert_eq!(
        g.media(None, &h.o6.id, MediaKind::Recording, &caller()),
        Ok((h.o6.id.clone(), recording()))
    );
    assert_eq!(
        g.media(None, &h.o6.id, MediaKind::Recording, &caller()),
        media
    );
    assert_eq!(g.media_for_link(&h.o6.id, MediaKind::Recording), link);
    assert_eq!(link, Some((recording(), None)));
    assert_eq!(
        g.cases(None, "ext-old-1", 1, 0, None, None, &caller()),
        Ok((2, vec!["CS-AAAA-0001".to_owned()]))
    );
    assert_eq!(
        g.cases(None, "ext-old-1", 1, 0, None, None, &caller()),
        cases
    );
    drop(g);

    // A start from the same store, without materializing: the same.
    let g = open(dir.path(), u64::MAX);
    assert_eq!((g.in_memory, g.on_disk), (5, 8));
    assert_eq!(gets(&g, &h), got);
    assert_eq!(list_all(&g, &h), listed);
}

/// The writes compared: each answer, in order, as text.
async fn writes(g: &Guard, h: &History) -> Vec<String> {
    let at = t("2024-03-20T12:00:00Z");
    let agent = caller();
    let mut out: Vec<String> = Vec::new();
    let mut log = |what: &str, answer: String| out.push(format!("{what}: {answer}"));
    let update = InteractionInput {
        status: Some("succeeded".into()),
        content: Some(serde_json::json!({"note": "updated"})),
        ..InteractionInput::default()
    };
    let fields = ["status".to_owned(), "content".to_owned()];
    log(
        "update o1",
        format!(
            "{:?}",
            g.update(Some(ANN), &h.o1.id, &update, &fields, &agent, at)
                .await
        ),
    );
    log(
        "update ext-old-2 caseIds",
        format!(
            "{:?}",
            g.update(
                None,
                "ext-old-2",
                &InteractionInput {
                    case_ids: Some(vec!["CS-BBBB-0009".into()]),
                    ..InteractionInput::default()
                },
                &["caseIds".to_owned()],
                &agent,
                at
            )
            .await
        ),
    );
    log(
        "update o1 by Bob",
        format!(
            "{:?}",
            g.update(Some(BOB), &h.o1.id, &update, &fields, &agent, at)
                .await
        ),
    );
    log(
        "update sensitive o4 without the right",
        format!(
            "{:?}",
            g.update(None, &h.o4.id, &update, &fields, &plain(), at)
                .await
        ),
    );
    log(
        "update b1 externalId to one on disk",
        format!(
            "{:?}",
            g.update(
                None,
                &h.b1.id,
                &InteractionInput {
                    external_id: Some("old-3".into()),
                    ..InteractionInput::default()
                },
                &["externalId".to_owned()],
                &agent,
                at
            )
            .await
        ),
    );
    log(
        "delete o3",
        format!("{:?}", g.delete(None, "ext-old-3", &agent, at).await),
    );
    log(
        "delete o3 again",
        format!("{:?}", g.delete(None, "ext-old-3", &agent, at).await),
    );
    log(
        "delete o2 (not external)",
        format!("{:?}", g.delete(None, &h.o2.id, &agent, at).await),
    );
    log(
        "join the conversation of o2",
        format!(
            "{:?}",
            g.join_convo(None, &h.o2.id, "solo", &agent, at).await
        ),
    );
    log(
        "the conversation of b2",
        format!("{:?}", g.convo(Some(BOB), &h.b2.id, &agent)),
    );
    log(
        "the conversation of o1 (voice)",
        format!("{:?}", g.convo(None, &h.o1.id, &agent)),
    );
    log(
        "media target of b1",
        format!(
            "{:?}",
            g.media_target(None, &h.b1.id, MediaKind::Voicemail, &agent)
        ),
    );
    log(
        "media target of o6 (has one)",
        format!(
            "{:?}",
            g.media_target(None, &h.o6.id, MediaKind::Recording, &agent)
        ),
    );
    log(
        "attach a voicemail to b1",
        format!(
            "{:?}",
            g.attach_media(
                &h.b1.id,
                MediaKind::Voicemail,
                Media {
                    storage_key: "vm-b1-0001".into(),
                    uploaded_at: at,
                    ..recording()
                },
                &agent,
                at
            )
            .await
        ),
    );
    log(
        "cases of o2",
        format!("{:?}", g.cases(None, &h.o2.id, 10, 0, None, None, &agent)),
    );
    log(
        "Ann's list",
        format!("{:?}", g.list(&query(Some(ANN)), &agent)),
    );
    log(
        "everyone's list",
        format!("{:?}", g.list(&query(None), &agent)),
    );
    out
}

/// Item 4, and the other writes that read an old record back
/// (conversations, cases, media): each answers as the same write on the
/// same history kept in memory, survives restarts, and the store holds
/// the new state once the journal is materialized again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_records_on_disk_answer_as_in_memory_and_reach_the_store() {
    let (disk_dir, mem_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (g, h) = build(disk_dir.path()).await;
    drop(g);
    let (g, h2) = build(mem_dir.path()).await;
    drop(g);
    assert_eq!(
        format!("{h:?}"),
        format!("{h2:?}"),
        "the same history twice"
    );
    let disk = open(disk_dir.path(), 0);
    let mem = open(mem_dir.path(), u64::MAX);
    assert_eq!((disk.on_disk, mem.on_disk), (8, 0));

    let at = t("2024-03-20T12:00:00Z");
    let agent = caller();
    let on_disk = writes(&disk, &h).await;
    let in_memory = writes(&mem, &h).await;
    for (d, m) in on_disk.iter().zip(&in_memory) {
        assert_eq!(d, m);
    }
    assert_eq!(on_disk.len(), in_memory.len());
    // And what they answered, exactly.
    let o1 = disk.get(None, &h.o1.id, &agent).unwrap();
    assert_eq!(o1.status, Status::Succeeded);
    assert_eq!(o1.content, Some(serde_json::json!({"note": "updated"})));
    assert_eq!(o1.updated_at, Some(at));
    let o3 = disk.get(None, "ext-old-3", &agent).unwrap();
    assert_eq!(o3.deleted_at, Some(at));
    assert!(
        on_disk[2].starts_with("update o1 by Bob: Err(NotFound("),
        "{}",
        on_disk[2]
    );
    assert!(
        on_disk[4].starts_with("update b1 externalId to one on disk: Err(AlreadyExists("),
        "{}",
        on_disk[4]
    );
    assert_eq!(disk.media_file("vm-b1-0001"), Ok(Some(None)));
    assert_eq!(disk.media_file("rec-o6-0001"), Ok(Some(None)));
    // The records written were read back into memory: no longer on disk
    // (o1, o2, o3, b1; o4's refused update read it back too).
    let expected = |g: &Guard| {
        (
            g.get(None, &h.o1.id, &agent).unwrap(),
            g.get(None, &h.o2.id, &agent).unwrap(),
            g.get(None, &h.o3.id, &agent).unwrap(),
            g.get(None, &h.b1.id, &agent).unwrap(),
            g.list(&query(None), &agent).unwrap(),
            g.convo(None, &h.o2.id, &agent).unwrap(),
        )
    };
    let want = expected(&mem);
    assert_eq!(expected(&disk), want);
    drop(disk);

    // Survives a start that replays the journal over the store (the
    // changes apply to records read back from the store)...
    let disk = open(disk_dir.path(), u64::MAX);
    assert_eq!(expected(&disk), want);
    let logged = (disk.in_memory, disk.on_disk);
    drop(disk);
    // ... and one that materializes it: the old records go back to disk,
    // and the store holds the new state.
    let disk = open(disk_dir.path(), 0);
    assert_eq!(expected(&disk), want);
    assert_eq!((disk.in_memory, disk.on_disk), (5, 8), "before: {logged:?}");
    let reader = Reader::open(disk_dir.path()).unwrap();
    assert_eq!(
        reader.get(&h.o1.id).unwrap().map(|(_, r)| r),
        Some(want.0.clone())
    );
    assert_eq!(
        reader.get("ext-old-2").unwrap().map(|(_, r)| r),
        Some(want.1.clone())
    );
    assert_eq!(
        reader.get(&h.o3.id).unwrap().map(|(_, r)| r),
        Some(want.2.clone())
    );
    assert_eq!(
        reader.get("ext-old-3").unwrap().map(|(_, r)| r),
        Some(want.2.clone())
    );
    assert_eq!(
        reader.get(&h.b1.id).unwrap().map(|(_, r)| r),
        Some(want.3.clone())
    );
    assert_eq!(on_disk_in_store(disk_dir.path()), (13, 8));
    // The deleted one is not listed, and its store row says deleted.
    let (total, data) = disk.list(&query(Some(ANN)), &agent).unwrap();
    assert_eq!(total, 8);
    assert!(!ids(&data).contains(&h.o3.id.as_str()));
    assert_eq!(disk.media_file("vm-b1-0001"), Ok(Some(None)));
    // Writes after the second materialization still answer as in memory.
    let again = InteractionInput {
        status: Some("failed".into()),
        ..InteractionInput::default()
    };
    let later = t("2024-03-21T12:00:00Z");
    assert_eq!(
        disk.update(
            None,
            "ext-old-1",
            &again,
            &["status".to_owned()],
            &agent,
            later
        )
        .await,
        mem.update(
            None,
            "ext-old-1",
            &again,
            &["status".to_owned()],
            &agent,
            later
        )
        .await
    );
}

/// Item 7: a Check at a recent time is decided exactly as before the
/// restart (the shipped rules; the 7-in-7 cap counts the recent calls
/// only), and one whose windows reach before the cutoff is refused,
/// naming its time and the cutoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_decide_as_before_and_refuse_what_reaches_the_disk() {
    const VAL: &str = "BO-CCCC-00000003";
    let dir = tempfile::tempdir().unwrap();
    let rules = Arc::new(shipped_rules());
    let reach = rules.longest_window_days();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    let mut recent = Vec::new();
    for day in 1..=10 {
        let at = format!("2023-01-{day:02}T15:00:00Z");
        create(&g, VAL, record("voice", "outbound", "attempted", &at)).await;
    }
    for day in 9..=15 {
        let at = format!("2024-03-{day:02}T14:00:00Z");
        recent.push(
            create(&g, VAL, record("voice", "outbound", "attempted", &at))
                .await
                .id,
        );
    }
    create(
        &g,
        "BO-ZZZZ-00000009",
        record("email", "outbound", "attempted", LATEST),
    )
    .await;
    let blocked = send(VAL, "voice", "2024-03-15T18:00:00Z");
    let allowed = send(VAL, "voice", "2024-03-17T15:00:00Z");
    let text = send(VAL, "text", "2024-03-16T15:00:00Z");
    // The earliest `at` whose windows stay in memory, and the second
    // before it.
    let first = cutoff() + Duration::days(i64::from(reach) + 1);
    let mut edge = send(VAL, "voice", "2024-01-01T00:00:00Z");
    edge.at = Some(first);
    let mut past = edge.clone();
    past.at = Some(first - Duration::seconds(1));
    let old = send(VAL, "voice", "2023-01-10T18:00:00Z");
    let mut answers = Vec::new();
    for c in [&blocked, &allowed, &text, &edge, &past, &old] {
        answers.push(check(&g, c).await);
    }
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules.clone());
    assert_eq!((g.in_memory, g.on_disk), (8, 10));
    let d = check(&g, &blocked).await.unwrap();
    assert_eq!(Ok(d.clone()), answers[0]);
    assert!(!d.decision.allowed);
    assert_eq!(
        d.decision.rule_id.as_deref(),
        Some("us-regf-7-calls-in-7-days")
    );
    assert_eq!(d.decision.violations[0].counted_interaction_ids, recent);
    assert_eq!(check(&g, &allowed).await, answers[1]);
    assert!(answers[1].as_ref().unwrap().decision.allowed);
    assert_eq!(check(&g, &text).await, answers[2]);
    assert_eq!(
        check(&g, &edge).await,
        answers[3],
        "the first `at` answered"
    );
    let refused = |at: DateTime<Utc>| {
        GuardError::FailedPrecondition(format!(
            "the send's time {} is too far in the past: its windows reach back {} days, before {}, and the history before that is on disk only (memory keeps the horizon and a day before now); a Check is for a send now or later",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            // The longest window and a day (the engine reads a day more).
            reach + 1,
            cutoff().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ))
    };
    assert!(answers[4].is_ok(), "decided before the restart");
    assert_eq!(check(&g, &past).await, Err(refused(past.at.unwrap())));
    assert!(answers[5].is_ok(), "decided before the restart");
    assert_eq!(check(&g, &old).await, Err(refused(old.at.unwrap())));
    // A reserving Check far in the past is refused the same way.
    g.set_reserve_tolerance(None);
    let reserving = CheckInput {
        reserve: true,
        request_id: "req-past".into(),
        ..old.clone()
    };
    assert_eq!(check(&g, &reserving).await, Err(refused(old.at.unwrap())));
    assert_eq!(g.reservations(None, &caller()).unwrap(), []);
}

/// The history of the Check tests below: a record of someone else at
/// [`LATEST`], so that memory keeps from [`cutoff`] on.
async fn latest(g: &Guard) {
    create(
        g,
        "BO-ZZZZ-00000009",
        record("email", "outbound", "attempted", LATEST),
    )
    .await;
}

async fn opt_out(g: &Guard, person: &str, received: &str) -> String {
    g.add_restriction(
        person,
        &RestrictionInput {
            kind: "mediumOptOut".into(),
            source: "stopReply".into(),
            received_at: received.into(),
            channels: vec!["text".into()],
            ..RestrictionInput::default()
        },
        &caller(),
        t(received) + Duration::minutes(1),
    )
    .await
    .unwrap()
    .id
}

/// Not more permissive: the one confirmation an opt-out allows
/// (12 CFR 1006.14(h)(2)(i)) stays used when it went out long ago and
/// its record is on disk only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_confirmed_long_ago_gets_no_second_confirmation() {
    const P: &str = "BO-DDDD-00000004";
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(opt_out_rules());
    let restriction = opt_out(&g, P, "2023-01-10T14:00:00Z").await;
    create(
        &g,
        P,
        InteractionInput {
            subject: Some("electronicConsentOptOut".into()),
            ..record("text", "outbound", "attempted", "2023-01-10T15:00:00Z")
        },
    )
    .await;
    latest(&g).await;
    let confirm = CheckInput {
        subject: "electronicConsentOptOut".into(),
        ..send(P, "text", "2024-03-18T15:00:00Z")
    };
    let before = check(&g, &confirm).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    assert_eq!(
        before.decision.rule_id.as_deref(),
        Some("us-regf-medium-opt-out")
    );
    assert_eq!(
        before.decision.violations[0].restriction_id.as_deref(),
        Some(restriction.as_str())
    );
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(opt_out_rules());
    assert_eq!(g.on_disk, 1);
    let after = check(&g, &confirm).await.unwrap();
    assert_eq!(
        after, before,
        "the confirmation sent in January 2023 is on disk only; a second one must stay blocked"
    );
}

/// Not more permissive: the one reply an opt-out allows to a message the
/// borrower initiated (12 CFR 1006.14(h)(2)(ii)) stays used when the
/// borrower's message is read back into memory (by a read of its chain)
/// and the reply is still on disk only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_reply_used_long_ago_stays_used_when_the_message_is_read_back() {
    const P: &str = "BO-EEEE-00000005";
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(opt_out_rules());
    opt_out(&g, P, "2023-01-10T14:00:00Z").await;
    let inbound = create(
        &g,
        P,
        record("text", "inbound", "succeeded", "2023-01-11T14:00:00Z"),
    )
    .await;
    create(
        &g,
        P,
        InteractionInput {
            previous_interaction_id: Some(inbound.id.clone()),
            ..record("text", "outbound", "attempted", "2023-01-11T14:30:00Z")
        },
    )
    .await;
    latest(&g).await;
    let reply = CheckInput {
        previous_interaction_id: inbound.id.clone(),
        ..send(P, "text", "2024-03-18T15:00:00Z")
    };
    let before = check(&g, &reply).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(opt_out_rules());
    assert_eq!(g.on_disk, 2);
    assert_eq!(check(&g, &reply).await.unwrap(), before, "both on disk");
    // A Get and a List read the message from the store without putting it
    // back in memory: the Check answers the same.
    assert_eq!(g.get(None, &inbound.id, &caller()), Ok(inbound.clone()));
    assert_eq!(
        g.list(&query(Some(P)), &caller()).map(|(n, _)| n),
        Ok(2),
        "the message and its reply"
    );
    assert_eq!(
        check(&g, &reply).await.unwrap(),
        before,
        "after a Get and a List"
    );
    // An audit reads the message's chain: the message is read back into
    // memory, its reply stays on disk.
    assert_eq!(g.previous(None, &inbound.id, None, &caller()), Ok(vec![]));
    assert_eq!(
        check(&g, &reply).await.unwrap(),
        before,
        "the one reply to the borrower's message of January 2023 was sent then; another must stay blocked"
    );
}

/// One text a week, replies to the borrower excluded.
const ONE_TEXT_A_WEEK: &str = "rules:
  - id: test-one-text-a-week
    description: At most one text a week; replies to the borrower are not counted.
    citation: test
    jurisdictions: [US]
    applies:
      channels: [text]
      directions: [outbound]
      replies: exclude
    frequencyCap:
      limit: 1
      windowDays: 7
      per: borrower
";

/// One text in two days, replies to the borrower excluded: its window
/// is shorter than the reply window (7 days), so a Check may cite a
/// message from before the cutoff.
const ONE_TEXT_IN_TWO_DAYS: &str = "rules:
  - id: test-one-text-in-two-days
    description: At most one text in two days; replies to the borrower are not counted.
    citation: test
    jurisdictions: [US]
    applies:
      channels: [text]
      directions: [outbound]
      replies: exclude
    frequencyCap:
      limit: 1
      windowDays: 2
      per: borrower
";

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Not more permissive: a text in the window that cites the borrower's
/// message, after an earlier reply to it that is on disk only, is not the
/// reply and counts, whether or not the message was read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_answer_counts_when_the_first_is_on_disk_and_the_message_read_back() {
    const P: &str = "BO-FFFF-00000006";
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_from(ONE_TEXT_A_WEEK);
    let c = cutoff();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    let inbound = create(
        &g,
        P,
        record("text", "inbound", "succeeded", &iso(c - Duration::days(3))),
    )
    .await;
    let first = InteractionInput {
        previous_interaction_id: Some(inbound.id.clone()),
        ..record("text", "outbound", "attempted", &iso(c - Duration::days(2)))
    };
    create(&g, P, first).await;
    let second = create(
        &g,
        P,
        InteractionInput {
            previous_interaction_id: Some(inbound.id.clone()),
            ..record(
                "text",
                "outbound",
                "attempted",
                &iso(c + Duration::hours(60)),
            )
        },
    )
    .await;
    latest(&g).await;
    let next = send(P, "text", &iso(c + Duration::days(8) + Duration::hours(1)));
    let before = check(&g, &next).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    assert_eq!(
        before.decision.violations[0].counted_interaction_ids,
        [second.id.as_str()]
    );
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules);
    assert_eq!(g.on_disk, 2);
    assert_eq!(check(&g, &next).await.unwrap(), before, "both on disk");
    // An audit reads the chain of the second answer: the message comes
    // back into memory, the first answer stays on disk.
    assert_eq!(
        g.previous(None, &second.id, None, &caller()),
        Ok(vec![inbound.clone()])
    );
    assert_eq!(
        check(&g, &next).await.unwrap(),
        before,
        "the second answer to the message is no reply: it counts"
    );
}

/// A borrower's inbound text two days before the cutoff (answered a day
/// later when `answered`), an outbound text 60 hours after the cutoff,
/// the latest interaction recorded; and the Check of a text citing the
/// inbound one three days and an hour after the cutoff.
async fn message_history(
    g: &Guard,
    person: &str,
    answered: bool,
) -> (Interaction, Interaction, CheckInput) {
    let c = cutoff();
    let inbound = create(
        g,
        person,
        record("text", "inbound", "succeeded", &iso(c - Duration::days(2))),
    )
    .await;
    if answered {
        create(
            g,
            person,
            InteractionInput {
                previous_interaction_id: Some(inbound.id.clone()),
                ..record("text", "outbound", "attempted", &iso(c - Duration::days(1)))
            },
        )
        .await;
    }
    let text = create(
        g,
        person,
        record(
            "text",
            "outbound",
            "attempted",
            &iso(c + Duration::hours(60)),
        ),
    )
    .await;
    latest(g).await;
    let citing = CheckInput {
        previous_interaction_id: inbound.id.clone(),
        ..send(
            person,
            "text",
            &iso(c + Duration::days(3) + Duration::hours(1)),
        )
    };
    (inbound, text, citing)
}

/// Not more permissive: a send citing a message already answered (the
/// answer on disk only) is not the reply, whether or not the message was
/// read back into memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_citing_an_answered_message_is_no_reply_when_the_message_is_read_back() {
    const P: &str = "BO-GGGG-00000007";
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_from(ONE_TEXT_IN_TWO_DAYS);
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    let (inbound, text, again) = message_history(&g, P, true).await;
    let before = check(&g, &again).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    assert_eq!(
        before.decision.violations[0].counted_interaction_ids,
        [text.id.as_str()]
    );
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules);
    assert_eq!(g.on_disk, 2);
    assert_eq!(check(&g, &again).await.unwrap(), before, "both on disk");
    assert_eq!(
        g.convo(None, &inbound.id, &caller()).map(|c| c.closed),
        Ok(None),
        "reading the message's conversation reads it back"
    );
    assert_eq!(
        check(&g, &again).await.unwrap(),
        before,
        "the message was answered in December 2023: this send is no reply"
    );
}

/// Strict by design: a send citing an unanswered message that is on disk
/// only is not a reply (it was before the restart), nor once read back:
/// what is before the history held whole is never read by a Check, since
/// what answered it may be on disk only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_message_on_disk_only_is_no_reply() {
    const P: &str = "BO-HHHH-00000008";
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_from(ONE_TEXT_IN_TWO_DAYS);
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    let (inbound, text, reply) = message_history(&g, P, false).await;
    let before = check(&g, &reply).await.unwrap();
    assert!(before.decision.allowed, "a reply, not counted: {before:?}");
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules);
    assert_eq!(g.on_disk, 1);
    let after = check(&g, &reply).await.unwrap();
    assert!(!after.decision.allowed, "{after:?}");
    assert_eq!(
        after.decision.rule_id.as_deref(),
        Some("test-one-text-in-two-days")
    );
    assert_eq!(
        after.decision.violations[0].counted_interaction_ids,
        [text.id.as_str()]
    );
    // Read back (an update of the message), it is still no reply.
    g.update(
        None,
        &inbound.id,
        &InteractionInput {
            case_ids: Some(vec!["CS-HHHH-0001".into()]),
            ..InteractionInput::default()
        },
        &["caseIds".to_owned()],
        &caller(),
        t("2024-03-16T12:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(check(&g, &reply).await.unwrap(), after);
}

/// A count since a receipt older than the horizon is unknown, and read
/// as reached, before and after the restart (whatever is on disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_since_an_old_receipt_stays_unknown() {
    const P: &str = "BO-JJJJ-00000010";
    let rules = rules_from(
        "rules:
  - id: test-four-since-a-cease
    description: Four texts in all after a cease.
    citation: test
    jurisdictions: [US]
    applies:
      channels: [text]
      directions: [outbound]
    frequencyCap:
      limit: 4
      window: all
      per: borrower
      since: {restriction: ceaseCommunication}
",
    );
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    g.add_restriction(
        P,
        &RestrictionInput {
            kind: "ceaseCommunication".into(),
            source: "letter".into(),
            received_at: "2023-01-10T14:00:00Z".into(),
            ..RestrictionInput::default()
        },
        &caller(),
        t("2023-01-10T15:00:00Z"),
    )
    .await
    .unwrap();
    create(
        &g,
        P,
        record("text", "outbound", "attempted", "2023-01-11T15:00:00Z"),
    )
    .await;
    latest(&g).await;
    let next = send(P, "text", "2024-03-18T15:00:00Z");
    let before = check(&g, &next).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules);
    assert_eq!(g.on_disk, 1);
    let after = check(&g, &next).await.unwrap();
    assert!(!after.decision.allowed, "{after:?}");
    assert_eq!(after.decision.rule_id, before.decision.rule_id);
    assert_eq!(
        after.decision.violations[0].message,
        before.decision.violations[0].message
    );
    assert_eq!(
        after.decision.violations[0].restriction_id,
        before.decision.violations[0].restriction_id
    );
    // What differs is the explanation of the unknown count: the text of
    // January 2023 is on disk only, so it is no longer listed as counted
    // (the decision, already "unknown, read as reached", is the same).
    assert_eq!(
        (
            before.decision.violations[0].count,
            before.decision.violations[0].counted_interaction_ids.len()
        ),
        (1, 1),
        "before the restart"
    );
    assert_eq!(
        (
            after.decision.violations[0].count,
            after.decision.violations[0].counted_interaction_ids.clone()
        ),
        (0, Vec::<String>::new()),
        "the counted interactions of an unknown count"
    );
}

/// Item 5, an import: importing again a record that is on disk only, by
/// its id (the lender's history re-imported), leaves it as it is, as it
/// did while it was in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_a_record_on_disk_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (g, h) = build(dir.path()).await;
    let again = |r: &Interaction| InteractionInput {
        id: Some(r.id.clone()),
        ..record("text", "outbound", "attempted", "2023-01-03T15:00:00Z")
    };
    let at = t("2024-03-20T12:00:00Z");
    let answer = |g: &Guard, r: &Interaction, person: &str| {
        g.import(person, &again(r), &caller(), at)
            .map(|(r, created, _)| (r, created))
    };
    let same = answer(&g, &h.o2, ANN);
    let other = answer(&g, &h.o2, BOB);
    assert_eq!(same, Ok((h.o2.clone(), false)));
    drop(g);

    let g = open(dir.path(), 0);
    assert_eq!(g.on_disk, 8);
    // An import of a record on disk only, by its id: the same answers.
    assert_eq!(
        (answer(&g, &h.o2, ANN), answer(&g, &h.o2, BOB)),
        (same, other)
    );
}

/// Item 5, a retry whose body no longer passes (a completed call now
/// dated after the clock, or no channel): with the externalId of a record
/// on disk only, the same answer as while it was in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retry_with_an_external_id_on_disk_answers_as_before_whatever_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let (g, h) = build(dir.path()).await;
    let at = t("2024-03-20T12:00:00Z");
    let bodies = [
        InteractionInput {
            external_id: Some("old-1".into()),
            ..record("voice", "outbound", "attempted", "2024-03-21T12:00:00Z")
        },
        InteractionInput {
            external_id: Some("old-1".into()),
            channel: None,
            ..record("voice", "outbound", "attempted", "2023-01-02T15:00:00Z")
        },
    ];
    let mut before = Vec::new();
    for b in &bodies {
        before.push(g.create(ANN, b, &caller(), at).await);
    }
    assert_eq!(before[0], Ok((h.o1.clone(), false)));
    drop(g);

    let g = open(dir.path(), 0);
    assert_eq!(g.on_disk, 8);
    let mut after = Vec::new();
    for b in &bodies {
        after.push(g.create(ANN, b, &caller(), at).await);
    }
    assert_eq!(after, before);
}

/// One call a week, per borrower.
const ONE_CALL_A_WEEK: &str = "rules:
  - id: test-one-call-a-week
    description: At most one call in 7 consecutive local days.
    citation: test
    jurisdictions: [US]
    applies:
      channels: [voice]
      directions: [outbound]
    frequencyCap:
      limit: 1
      windowDays: 7
      per: borrower
";

/// Not more permissive: 7 local calendar days that hold the end of
/// daylight saving time last 169 hours, an hour more than the 7 days
/// [`Guard::check`] keeps in memory before `at`. A Check whose `at` is
/// exactly 7 days after the cutoff is answered, and its window starts
/// half an hour before the cutoff: a call in that half hour is on disk
/// only, and must still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_across_the_end_of_daylight_saving_time_counts_what_is_on_disk() {
    const P: &str = "BO-KKKK-00000011";
    // New York falls back on Sun 2023-11-05. The Check is at 23:30 EST on
    // Fri Nov 10 (04:30Z on Nov 11): its 7 days are Sat Nov 4 .. Fri Nov
    // 10, from 00:00 EDT on Nov 4 (04:00Z), 7 days and 30 minutes before.
    let at = t("2023-11-11T04:30:00Z");
    let cutoff = at - Duration::days(7);
    // The latest interaction puts the cutoff exactly there.
    let latest = cutoff + Duration::days(91);
    let rules = rules_from(ONE_CALL_A_WEEK);
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    g.set_rules(rules.clone());
    let call = create(
        &g,
        P,
        record("voice", "outbound", "attempted", "2023-11-04T04:15:00Z"),
    )
    .await;
    create(
        &g,
        "BO-ZZZZ-00000009",
        record("email", "outbound", "attempted", &iso(latest)),
    )
    .await;
    let next = send(P, "voice", &iso(at));
    let before = check(&g, &next).await.unwrap();
    assert!(!before.decision.allowed, "{before:?}");
    assert_eq!(
        before.decision.violations[0].counted_interaction_ids,
        [call.id.as_str()]
    );
    assert_eq!(
        before.decision.violations[0].window_start,
        chrono::NaiveDate::from_ymd_opt(2023, 11, 4)
    );
    drop(g);

    let g = open(dir.path(), 0);
    g.set_rules(rules);
    assert_eq!(
        g.on_disk, 1,
        "the call at 00:15 EDT on Nov 4 is on disk only"
    );
    let after = check(&g, &next).await;
    assert!(
        after == Ok(before.clone()) || matches!(after, Err(GuardError::FailedPrecondition(_))),
        "refused (FailedPrecondition) or blocked as before, never allowed: {after:?}"
    );
}

/// A listing of everyone's is refused only when more than
/// [`compliance_guard::guard::MAX_LISTED_FROM_DISK`] of the interactions
/// it must read from disk match: before the restart one is on disk only
/// and 100,001 are in memory whole; after it, all of them are more than a
/// day old, so the start holds them as counting entries only and a
/// listing reads every one from the store: refused unfiltered, answered
/// narrowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_everyone_is_refused_only_for_what_is_on_disk() {
    let most = compliance_guard::guard::MAX_LISTED_FROM_DISK;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let g = open(dir.path(), u64::MAX);
    let old = create(
        &g,
        ANN,
        record("text", "outbound", "attempted", "2023-01-02T15:00:00Z"),
    )
    .await;
    let latest = t(LATEST);
    let mut last = None;
    for i in 0..most {
        let at = latest - Duration::seconds(i64::try_from(most - i).unwrap());
        let person = format!("BO-LLLL-{:08}", i % 16);
        let (_, created, commit) = g
            .import(
                &person,
                &record("email", "outbound", "attempted", &iso(at)),
                &caller(),
                latest,
            )
            .unwrap();
        assert!(created);
        last = Some(commit);
    }
    create(&g, BOB, record("voice", "outbound", "attempted", LATEST)).await;
    last.unwrap().wait().await.unwrap();
    let mut q = query(None);
    q.limit = 3;
    let (total, before) = g.list(&q, &caller()).unwrap();
    assert_eq!(total, most + 2);
    assert_eq!(before[0], old);
    drop(g);
    eprintln!("built in {:?}", started.elapsed());

    let g = open(dir.path(), 0);
    eprintln!("restarted in {:?}", started.elapsed());
    assert_eq!(
        (g.in_memory, g.on_disk),
        (u64::try_from(most).unwrap() + 1, 1)
    );
    assert_eq!(g.g.sizes().whole_in_memory, 0);
    match g.list(&q, &caller()) {
        Err(GuardError::FailedPrecondition(m)) => assert!(
            m.contains(&format!(
                "more than {most} interactions whose full records are on disk only"
            )),
            "{m}"
        ),
        other => panic!("{most} + 2 read from disk: {other:?}"),
    }
    // A listing only Bob's call matches reads one from disk.
    let texts = ListQuery {
        channels: vec![Channel::Voice],
        ..query(None)
    };
    assert_eq!(g.list(&texts, &caller()).map(|(n, _)| n), Ok(1));
}

/// A person whose interactions are all on disk only still has records: a
/// link of its id to another person's external id is refused as joining
/// two histories, as it was before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_never_joins_a_history_that_is_on_disk_only() {
    const OLD: &str = "BO-KKKK-00000011";
    const NEW: &str = "BO-KKKK-00000012";
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    create(
        &g,
        OLD,
        record("voice", "outbound", "attempted", "2023-01-02T15:00:00Z"),
    )
    .await;
    let mut recent = record("voice", "outbound", "attempted", LATEST);
    recent.external_id = Some("k-recent".into());
    create(&g, NEW, recent).await;
    g.link_person(NEW, "k-ext", t("2024-03-15T16:00:00Z"))
        .await
        .unwrap();
    let before = g
        .link_person(OLD, "k-ext", t("2024-03-15T16:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(&before, GuardError::FailedPrecondition(m) if m.contains("would join two histories")),
        "{before:?}"
    );
    drop(g);

    // Moved to disk by this start, then read from the store's counts by
    // the next.
    for compact_after in [0, u64::MAX] {
        let g = open(dir.path(), compact_after);
        assert_eq!(g.on_disk, 1);
        assert_eq!(
            g.link_person(OLD, "k-ext", t("2024-03-15T16:00:00Z")).await,
            Err(before.clone()),
            "compact_after {compact_after}"
        );
    }
}

/// Review fix: a generated id never takes the id of an interaction on
/// disk only. An old record created with an id of the generated shape
/// (`IT-0000-00000010`, number 16) goes to disk; sixteen creates without
/// an id after that start pass its number, and none of them is given it:
/// the old record is still the one listed and got by that id, also after
/// the next starts (replayed over the store, and materialized again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ids_never_take_the_id_of_a_record_on_disk() {
    const OLD_ID: &str = "IT-0000-00000010";
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    let old = create(
        &g,
        ANN,
        InteractionInput {
            id: Some(OLD_ID.into()),
            ..record("text", "outbound", "attempted", "2023-01-10T15:00:00Z")
        },
    )
    .await;
    assert_eq!(old.id, OLD_ID);
    let r1 = create(
        &g,
        ANN,
        record("text", "outbound", "attempted", "2024-03-10T15:00:00Z"),
    )
    .await;
    let r2 = create(&g, ANN, record("voice", "outbound", "attempted", LATEST)).await;
    drop(g);

    let g = open(dir.path(), 0);
    assert_eq!((g.in_memory, g.on_disk), (2, 1));
    let mut generated = Vec::new();
    for i in 0..16 {
        let at = iso(t("2024-03-14T00:00:00Z") + Duration::minutes(i));
        generated.push(create(&g, BOB, record("text", "outbound", "attempted", &at)).await);
    }
    let taken: Vec<&str> = ids(&generated)
        .into_iter()
        .filter(|id| *id == OLD_ID || *id == r1.id || *id == r2.id)
        .collect();
    assert_eq!(taken, Vec::<&str>::new(), "generated ids already taken");
    let mut distinct = ids(&generated);
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 16);
    let expect = |g: &Guard, when: &str| {
        assert_eq!(g.get(None, OLD_ID, &caller()), Ok(old.clone()), "{when}");
        assert_eq!(
            g.get(Some(ANN), OLD_ID, &caller()),
            Ok(old.clone()),
            "{when}"
        );
        assert!(
            matches!(
                g.get(Some(BOB), OLD_ID, &caller()),
                Err(GuardError::NotFound(_))
            ),
            "{when}: not Bob's"
        );
        let (total, ann) = g.list(&query(Some(ANN)), &caller()).unwrap();
        assert_eq!(
            (total, ids(&ann)),
            (3, vec![OLD_ID, r1.id.as_str(), r2.id.as_str()]),
            "{when}"
        );
        let (total, bob) = g.list(&query(Some(BOB)), &caller()).unwrap();
        assert_eq!(
            (total, bob.as_slice()),
            (16, generated.as_slice()),
            "{when}"
        );
    };
    expect(&g, "the start that moved it to disk");
    drop(g);

    let g = open(dir.path(), u64::MAX);
    assert_eq!((g.in_memory, g.on_disk), (18, 1));
    expect(&g, "replayed over the store");
    drop(g);
    let g = open(dir.path(), 0);
    assert_eq!((g.in_memory, g.on_disk), (18, 1));
    expect(&g, "materialized again");
}

/// A history on a closed data directory: ANN's text with externalId `E`
/// in January 2023, another the day after, and one at [`LATEST`];
/// returns the first and the last.
async fn external_id_history(dir: &Path) -> (Interaction, Interaction) {
    let g = open(dir, u64::MAX);
    let old = create(
        &g,
        ANN,
        InteractionInput {
            external_id: Some("E".into()),
            ..record("text", "outbound", "attempted", "2023-01-10T15:00:00Z")
        },
    )
    .await;
    create(
        &g,
        ANN,
        record("text", "outbound", "attempted", "2023-01-11T15:00:00Z"),
    )
    .await;
    let latest = create(&g, ANN, record("text", "outbound", "attempted", LATEST)).await;
    (old, latest)
}

/// Review fix: an update whose FieldMask names `external_id` (snake_case,
/// as the FieldMask of a gRPC client may) to an externalId an interaction
/// on disk only holds is refused as taken, as with `externalId`, and as
/// while it was in memory; nothing changes. Each on a data directory of
/// its own: a first refusal brings the holder back into memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_to_an_external_id_on_disk_is_taken_whatever_the_mask_spelling() {
    let at = t("2024-03-16T12:00:00Z");
    let mut answers = Vec::new();
    for compact_after in [u64::MAX, 0] {
        for mask in ["externalId", "external_id"] {
            let dir = tempfile::tempdir().unwrap();
            let (old, y) = external_id_history(dir.path()).await;

            let g = open(dir.path(), compact_after);
            assert_eq!(
                g.on_disk,
                if compact_after == 0 { 2 } else { 0 },
                "compact_after {compact_after}"
            );
            let values = InteractionInput {
                external_id: Some("E".into()),
                ..InteractionInput::default()
            };
            let got = g
                .update(None, &y.id, &values, &[mask.to_owned()], &caller(), at)
                .await;
            assert!(
                matches!(&got, Err(GuardError::AlreadyExists(_))),
                "compact_after {compact_after}, mask {mask}: {got:?}"
            );
            answers.push(got);
            drop(g);
            // Nothing changed: the next start has one holder of `E`.
            let g = open(dir.path(), 0);
            assert_eq!(g.get(None, "ext-E", &caller()), Ok(old), "mask {mask}");
            assert_eq!(g.get(None, &y.id, &caller()), Ok(y), "mask {mask}");
        }
    }
    assert_eq!(answers[2..], answers[..2], "on disk as in memory");
}

/// Copies the files of the directory `from` to `to`.
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Copies the files of the store (`DATA_DIR/store`) to `to`.
fn copy_store(data: &Path, to: &Path) {
    copy_files(&data.join("store"), to);
}

/// Puts the store files copied to `from` back in place of the store's.
fn put_store_back(from: &Path, data: &Path) {
    std::fs::remove_dir_all(data.join("store")).unwrap();
    copy_files(from, &data.join("store"));
}

fn store_position(dir: &Path) -> Option<(u64, u64)> {
    Store::open_read_only(dir)
        .unwrap()
        .unwrap()
        .position()
        .unwrap()
        .map(|p| (p.generation, p.records))
}

/// Review fix: a store older than the journals beside it (an operator's
/// copy of it put back) is refused at start, naming the journal it needs,
/// rather than starting without what that journal held; the store of the
/// data directory put back, the start has everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_older_than_the_journals_beside_it_is_refused() {
    use compliance_guard::journal::{JournalError, Layout};
    let dir = tempfile::tempdir().unwrap();
    let copies = tempfile::tempdir().unwrap();
    let (stale, current) = (copies.path().join("stale"), copies.path().join("now"));
    let count = |g: &Guard| g.list(&query(Some(ANN)), &caller()).unwrap().0;
    {
        let g = open(dir.path(), 0);
        create(&g, ANN, record("text", "outbound", "attempted", LATEST)).await;
    }
    drop(open(dir.path(), 0));
    assert_eq!(store_position(dir.path()), Some((1, 0)));
    copy_store(dir.path(), &stale);
    {
        let g = open(dir.path(), 0);
        for i in 0..4 {
            let at = iso(t(LATEST) - Duration::hours(i + 1));
            create(&g, ANN, record("text", "outbound", "attempted", &at)).await;
        }
    }
    drop(open(dir.path(), 0));
    assert_eq!(store_position(dir.path()), Some((2, 0)));
    let layout = Layout {
        dir: dir.path().to_owned(),
    };
    assert!(!layout.journal(1).exists(), "journal 1 removed");
    {
        let g = open(dir.path(), u64::MAX);
        create(
            &g,
            ANN,
            record("voice", "outbound", "attempted", "2024-03-15T10:00:00Z"),
        )
        .await;
        assert_eq!(count(&g), 6);
    }
    copy_store(dir.path(), &current);

    put_store_back(&stale, dir.path());
    assert_eq!(store_position(dir.path()), Some((1, 0)));
    for compact_after in [u64::MAX, 0] {
        match open_with(dir.path(), compact_after) {
            Ok((g, _)) => panic!(
                "compact_after {compact_after}: started on the stale store with {} of 6 interactions",
                count(&g)
            ),
            Err(JournalError::Corrupt { path, reason, .. }) => {
                assert_eq!(path, layout.journal(1), "compact_after {compact_after}");
                assert!(
                    reason.contains("older than the journals beside it"),
                    "{reason}"
                );
            }
            Err(other) => panic!("compact_after {compact_after}: {other:?}"),
        }
    }
    // Refused, it changed nothing: the right store put back, all of it.
    put_store_back(&current, dir.path());
    let g = open(dir.path(), u64::MAX);
    assert_eq!(count(&g), 6);
}

/// A reader of the history (backup) that took the store's position
/// before a start beside it moved the store on and removed that journal
/// still reads the whole history: it opened the journals before it read
/// the store, and an opened file is read whole after it is deleted. (A
/// server whose store follows the journal deletes journals while it
/// serves, so a backup beside it meets this every time the journal
/// rolls.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_read_racing_a_start_that_removes_its_journal_reads_it_whole() {
    use compliance_guard::journal::Layout;
    use compliance_guard::pb::journal::record::Op;
    let dir = tempfile::tempdir().unwrap();
    let interactions = |r: &compliance_guard::pb::journal::Record, n: &mut usize| {
        if matches!(r.op, Some(Op::Interaction(_))) {
            *n += 1;
        }
    };
    let read = |dir: &Path| {
        let mut n = 0;
        compliance_guard::store::read_history(dir, |r| {
            interactions(&r, &mut n);
            Ok(())
        })
        .map(|h| (h.from.map(|p| (p.generation, p.records)), n))
    };
    {
        let g = open(dir.path(), u64::MAX);
        for i in 0..3 {
            let at = iso(t(LATEST) - Duration::hours(i + 10));
            create(&g, ANN, record("text", "outbound", "attempted", &at)).await;
        }
    }
    let g = open(dir.path(), 0);
    for i in 0..2 {
        let at = iso(t(LATEST) - Duration::hours(i));
        create(&g, ANN, record("text", "outbound", "attempted", &at)).await;
    }
    drop(g);
    let (g0, _) = store_position(dir.path()).unwrap();
    assert_eq!(read(dir.path()).unwrap(), (Some((g0, 0)), 5));

    let mut started = false;
    let mut n = 0;
    let raced = compliance_guard::store::read_history(dir.path(), |r| {
        if !started {
            started = true;
            // A server starts while the backup reads: it materializes
            // journal g0 into the store and removes it.
            drop(open_with(dir.path(), 0).unwrap());
        }
        interactions(&r, &mut n);
        Ok(())
    });
    assert!(started);
    assert_eq!(store_position(dir.path()), Some((g0 + 1, 0)));
    let layout = Layout {
        dir: dir.path().to_owned(),
    };
    assert!(!layout.journal(g0).exists(), "the start removed it");
    let raced = raced.unwrap();
    assert_eq!(raced.from.map(|p| (p.generation, p.records)), Some((g0, 0)));
    assert_eq!(n, 5, "the whole history, the journal removed included");
    // Read again, it has everything, now from the store.
    assert_eq!(read(dir.path()).unwrap(), (Some((g0 + 1, 0)), 5));
}

/// One outbound call a day.
const ONE_CALL_A_DAY: &str = "rules:
  - id: test-one-call-a-day
    description: At most one call a day.
    citation: test
    jurisdictions: [US]
    applies:
      channels: [voice]
      directions: [outbound]
    frequencyCap:
      limit: 1
      windowDays: 1
      per: borrower
";

/// Review fix: what-if reads the store's records in the order they came
/// to be, as it read the journal before a start moved them into the
/// store: a call blocked because of an earlier call is a violation under
/// the rules of then whether the history is read from the journal or
/// from the store, even when another borrower was first recorded after
/// the decision (the store holds people before interactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_reports_the_same_violations_after_a_materializing_start() {
    use compliance_guard::decisions::{DecisionLog, LogConfig};
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("test.yaml"), ONE_CALL_A_DAY).unwrap();
    let set = RuleSet::load_dir(rules.path(), &LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = t(LATEST);
    let call = || send(ANN, "voice", &iso(now + Duration::seconds(1)));
    {
        let g = open(dir.path(), u64::MAX);
        compliance_guard::reload::archive(dir.path(), &set).unwrap();
        g.set_rules(Arc::new(set));
        let log = DecisionLog::start(LogConfig::under(dir.path())).unwrap();
        g.create(
            ANN,
            &record("voice", "outbound", "attempted", "2024-03-15T14:00:00Z"),
            &caller(),
            now,
        )
        .await
        .unwrap();
        let at = now + Duration::seconds(1);
        let out = check(&g, &call()).await.unwrap();
        log.record(&call(), &caller(), &out, at);
        assert!(!out.decision.allowed, "{out:?}");
        assert_eq!(out.decision.rule_id.as_deref(), Some("test-one-call-a-day"));
        // Bob is first recorded after the decision.
        g.create(
            BOB,
            &record("voice", "outbound", "attempted", LATEST),
            &caller(),
            now + Duration::seconds(2),
        )
        .await
        .unwrap();
        log.close();
    }
    let report = || {
        let r = replayed(rules.path(), dir.path(), None);
        (r.decisions, r.skipped, r.before, r.after)
    };
    let violations: std::collections::BTreeMap<String, u64> =
        [("test-one-call-a-day".to_owned(), 1)].into();
    let before = report();
    assert_eq!(before, (1, 0, violations.clone(), violations));
    drop(open(dir.path(), 0));
    assert!(store_position(dir.path()).is_some());
    assert_eq!(report(), before, "read from the store");
}

/// The what-if replay of `dir`'s decision log up to `to` against the rules
/// in `rules`, every rule binding.
fn replayed(
    rules: &Path,
    dir: &Path,
    to: Option<DateTime<Utc>>,
) -> compliance_guard::whatif::WhatIfReport {
    compliance_guard::whatif::what_if(rules, dir, &LoadOptions::default(), None, to).unwrap()
}

/// A rules directory holding [`ONE_CALL_A_DAY`] only, and its set.
fn one_call_a_day() -> (tempfile::TempDir, Arc<RuleSet>) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("test.yaml"), ONE_CALL_A_DAY).unwrap();
    let set = RuleSet::load_dir(rules.path(), &LoadOptions::default()).unwrap();
    (rules, Arc::new(set))
}

/// Ann's call checked at `at`, and the answer logged as the server logs
/// it.
async fn logged_call(
    g: &Guard,
    log: &compliance_guard::decisions::DecisionLog,
    at: DateTime<Utc>,
) -> CheckOutcome {
    let call = send(ANN, "voice", &iso(at));
    let out = check(g, &call).await.unwrap();
    log.record(&call, &caller(), &out, at);
    out
}

/// What-if reads the history from the reach of its first Check (the
/// horizon and a day), streams it, and lets go of full records as it moves
/// on; a deletion in the journal after the store's position, of a call
/// whose record the replay had let go, is applied to it (read back from
/// the store), so the Check after it is allowed as the server allowed it;
/// a call the journal alone holds stays whole until its deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_reads_from_its_reach_and_applies_the_journal_to_records_it_let_go() {
    use compliance_guard::decisions::{DecisionLog, LogConfig};
    let (rules, set) = one_call_a_day();
    let dir = tempfile::tempdir().unwrap();
    let t1 = t(LATEST);
    let t2 = t1 + Duration::days(100);
    let called = |started: DateTime<Utc>, ext: &str| InteractionInput {
        external_id: Some(ext.into()),
        is_external: Some(true),
        ..record("voice", "outbound", "attempted", &iso(started))
    };
    let b_id;
    {
        let g = open(dir.path(), u64::MAX);
        compliance_guard::reload::archive(dir.path(), &set).unwrap();
        g.set_rules(set.clone());
        let log = DecisionLog::start(LogConfig::under(dir.path())).unwrap();
        // Long before the reach of the first Check: never read.
        let old = t("2023-06-01T14:00:00Z");
        g.create(
            ANN,
            &called(old, "old"),
            &caller(),
            old + Duration::hours(1),
        )
        .await
        .unwrap();
        // Texts imported with the upstream's createdAt of long before, in
        // the reach of the first Check: one placed before call a (found
        // in the time index by its place), one after it (found in the
        // creation index as out of order). Read, though created before.
        let imported = |started: DateTime<Utc>, created: &str| InteractionInput {
            created_at: Some(created.into()),
            ..record("text", "outbound", "attempted", &iso(started))
        };
        let import = |input: InteractionInput| {
            let (_, _, pending) = g.import(ANN, &input, &caller(), t1).unwrap();
            pending
        };
        import(imported(t1 - Duration::hours(2), "2023-01-01T00:00:00Z"))
            .wait()
            .await
            .unwrap();
        let a = t1 - Duration::hours(1);
        g.create(ANN, &called(a, "a"), &caller(), t1).await.unwrap();
        import(imported(t1 - Duration::minutes(90), "2023-01-02T00:00:00Z"))
            .wait()
            .await
            .unwrap();
        let out = logged_call(&g, &log, t1 + Duration::seconds(1)).await;
        assert_eq!(out.decision.rule_id.as_deref(), Some("test-one-call-a-day"));
        let b = t2 - Duration::hours(1);
        let (created, _) = g
            .create(ANN, &called(b, "b"), &caller(), t2 - Duration::minutes(30))
            .await
            .unwrap();
        b_id = created.id;
        log.close();
    }
    // Everything so far into the store; what follows is in the journal
    // after its position.
    drop(open(dir.path(), 0));
    let at_store = store_position(dir.path());
    {
        let g = open(dir.path(), u64::MAX);
        g.set_rules(set.clone());
        let log = DecisionLog::start(LogConfig::under(dir.path())).unwrap();
        g.delete(Some(ANN), &b_id, &caller(), t2 - Duration::minutes(10))
            .await
            .unwrap();
        let out = logged_call(&g, &log, t2 + Duration::seconds(1)).await;
        assert!(out.decision.allowed, "{out:?}");
        // Fifty days on, a call written in the journal only, a Check it
        // blocks, its deletion and a Check it no longer blocks: the replay
        // walks memory between the call and its deletion (the reach moved
        // on), and keeps the call whole, since the store cannot give it.
        let t3 = t2 + Duration::days(50);
        let (d, _) = g
            .create(
                ANN,
                &called(t3 - Duration::hours(1), "d"),
                &caller(),
                t3 - Duration::minutes(30),
            )
            .await
            .unwrap();
        for (at, allowed) in [
            (t3 + Duration::seconds(1), false),
            (t3 + Duration::minutes(20), true),
        ] {
            if allowed {
                g.delete(Some(ANN), &d.id, &caller(), t3 + Duration::minutes(10))
                    .await
                    .unwrap();
            }
            let out = logged_call(&g, &log, at).await;
            assert_eq!(out.decision.allowed, allowed, "{out:?}");
        }
        log.close();
    }
    assert_eq!(
        store_position(dir.path()),
        at_store,
        "the deletion is in the journal only"
    );
    let r = replayed(rules.path(), dir.path(), None);
    let violations: std::collections::BTreeMap<String, u64> =
        [("test-one-call-a-day".to_owned(), 2)].into();
    assert_eq!(
        (r.decisions, r.skipped, &r.before, &r.after),
        (4, 0, &violations, &violations)
    );
    assert!(
        r.newly_blocked.is_empty() && r.newly_allowed.is_empty(),
        "{r:?}"
    );
    assert!(r.skipped_records.is_empty(), "{:?}", r.skipped_reasons);
    // 91 days before the first Check; calls a and b from the store, and
    // b's deletion, d and d's deletion from the journal; the two texts.
    assert_eq!(r.history_from.as_deref(), Some("2023-12-15T15:00:01Z"));
    assert_eq!(r.interactions_read, 7);
    // A window that ends before the history does: the reading stops once
    // its one Check is decided (call b and the journal are not read; the
    // two texts and call a are).
    let first = replayed(rules.path(), dir.path(), Some(t2));
    let one: std::collections::BTreeMap<String, u64> =
        [("test-one-call-a-day".to_owned(), 1)].into();
    assert_eq!(
        (
            first.decisions,
            &first.before,
            &first.after,
            first.interactions_read
        ),
        (1, &one, &one, 3)
    );
}

/// What-if reads an interaction from the store at its creation, even when
/// the store holds a later change of it: a call created after it and
/// before a Check blocks that Check in the replay as it did live (the
/// Check is not decided at the later change's time, before the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_decides_between_the_stores_interactions_by_their_creation() {
    use compliance_guard::decisions::{DecisionLog, LogConfig};
    let (rules, set) = one_call_a_day();
    let dir = tempfile::tempdir().unwrap();
    let t0 = t(LATEST);
    {
        let g = open(dir.path(), u64::MAX);
        compliance_guard::reload::archive(dir.path(), &set).unwrap();
        g.set_rules(set.clone());
        let log = DecisionLog::start(LogConfig::under(dir.path())).unwrap();
        let text = InteractionInput {
            external_id: Some("x".into()),
            is_external: Some(true),
            ..record(
                "text",
                "outbound",
                "attempted",
                &iso(t0 - Duration::minutes(5)),
            )
        };
        let (x, _) = g.create(ANN, &text, &caller(), t0).await.unwrap();
        let call = record(
            "voice",
            "outbound",
            "attempted",
            &iso(t0 - Duration::minutes(1)),
        );
        g.create(ANN, &call, &caller(), t0 + Duration::minutes(1))
            .await
            .unwrap();
        let out = logged_call(&g, &log, t0 + Duration::minutes(2)).await;
        assert_eq!(out.decision.rule_id.as_deref(), Some("test-one-call-a-day"));
        // The text changed after the Check: the store holds that state.
        g.delete(Some(ANN), &x.id, &caller(), t0 + Duration::minutes(5))
            .await
            .unwrap();
        log.close();
    }
    drop(open(dir.path(), 0));
    let r = replayed(rules.path(), dir.path(), None);
    let one: std::collections::BTreeMap<String, u64> =
        [("test-one-call-a-day".to_owned(), 1)].into();
    assert_eq!((r.decisions, &r.before, &r.after), (1, &one, &one));
    assert_eq!(r.interactions_read, 2);
}

/// Review fix (moved time): a message on disk only, read back by an
/// update that moves its time into the window, with the reply that cited
/// it: a send citing it again is not the reply (the message was
/// answered), and is blocked as when everything was in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_on_disk_moved_into_the_window_is_still_answered() {
    const P: &str = "BO-MMMM-00000013";
    let rules = rules_from(ONE_TEXT_A_WEEK);
    let mut answers = Vec::new();
    for compact_after in [u64::MAX, 0] {
        let dir = tempfile::tempdir().unwrap();
        let g = open(dir.path(), u64::MAX);
        g.set_rules(rules.clone());
        let inbound = create(
            &g,
            P,
            record("text", "inbound", "succeeded", "2022-01-05T15:00:00Z"),
        )
        .await;
        let reply = create(
            &g,
            P,
            InteractionInput {
                previous_interaction_id: Some(inbound.id.clone()),
                ..record(
                    "text",
                    "outbound",
                    "succeeded",
                    &iso(t(LATEST) - Duration::days(2)),
                )
            },
        )
        .await;
        let other = create(
            &g,
            P,
            record(
                "text",
                "outbound",
                "succeeded",
                &iso(t(LATEST) - Duration::days(1)),
            ),
        )
        .await;
        latest(&g).await;
        drop(g);

        let g = open(dir.path(), compact_after);
        g.set_rules(rules.clone());
        assert_eq!(g.on_disk, if compact_after == 0 { 1 } else { 0 });
        // The message's time corrected: it came in three days ago.
        g.update(
            None,
            &inbound.id,
            &InteractionInput {
                started_at: Some(iso(t(LATEST) - Duration::days(3))),
                ..InteractionInput::default()
            },
            &["startedAt".to_owned()],
            &caller(),
            t(LATEST) + Duration::hours(1),
        )
        .await
        .unwrap();
        let again = CheckInput {
            previous_interaction_id: inbound.id.clone(),
            ..send(P, "text", &iso(t(LATEST) + Duration::hours(2)))
        };
        let out = check(&g, &again).await.unwrap();
        assert!(
            !out.decision.allowed,
            "compact_after {compact_after}: {out:?}"
        );
        assert_eq!(
            out.decision.rule_id.as_deref(),
            Some("test-one-text-a-week")
        );
        answers.push((
            out.decision.violations[0].counted_interaction_ids.clone(),
            reply,
            other,
        ));
    }
    let (in_memory, reply, other) = &answers[0];
    assert_eq!(in_memory, &[other.id.as_str()], "the reply is not counted");
    // Strict by design: no Check reads a message brought back from disk
    // (what answered it, or cites it, may be on disk only), so the reply
    // to it is not known as one and counts too: blocked all the same.
    assert_eq!(answers[1].0, [reply.id.clone(), other.id.clone()]);
}

/// Review fix (stale externalId): an interaction on disk only whose
/// externalId changes from `E` to `E2` is no longer found by `ext-E`
/// (the store's row still says `E` until the next start), neither by a
/// Get nor by an update (not found at once, not an internal error), and
/// is found by `ext-E2`: as while it was in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_external_id_of_a_record_on_disk_names_nothing() {
    let at = t("2024-03-16T12:00:00Z");
    let mut answers = Vec::new();
    for compact_after in [u64::MAX, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (x, _) = external_id_history(dir.path()).await;

        let g = open(dir.path(), compact_after);
        assert_eq!(g.on_disk, if compact_after == 0 { 2 } else { 0 });
        let changed = g
            .update(
                None,
                "ext-E",
                &InteractionInput {
                    external_id: Some("E2".into()),
                    ..InteractionInput::default()
                },
                &["externalId".to_owned()],
                &caller(),
                at,
            )
            .await
            .unwrap();
        assert_eq!(
            (changed.id.as_str(), changed.external_id.as_deref()),
            (x.id.as_str(), Some("E2"))
        );
        let get_old = g.get(None, "ext-E", &caller());
        assert!(
            matches!(get_old, Err(GuardError::NotFound(_))),
            "compact_after {compact_after}: {get_old:?}"
        );
        let started = std::time::Instant::now();
        let update_old = g
            .update(
                None,
                "ext-E",
                &InteractionInput {
                    status: Some("succeeded".into()),
                    ..InteractionInput::default()
                },
                &["status".to_owned()],
                &caller(),
                at,
            )
            .await;
        let took = started.elapsed();
        assert!(
            matches!(update_old, Err(GuardError::NotFound(_))),
            "compact_after {compact_after}: {update_old:?}"
        );
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        assert_eq!(g.get(None, "ext-E2", &caller()), Ok(changed.clone()));
        assert_eq!(g.get(None, &x.id, &caller()), Ok(changed.clone()));
        answers.push((get_old, update_old, changed));
    }
    assert_eq!(answers[1], answers[0], "on disk as in memory");
}

/// A listing reads from the store only the rows within its times and
/// company, by the store's indexes for a listing of everyone's: with
/// `startedAfter` and `startedBefore` (or `createdAfter` and
/// `createdBefore`), the rows read are exactly those in the range, not
/// the history; without, every row before the horizon kept whole. A
/// listing that would read more than its limit is refused, never answered
/// in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_reads_only_the_rows_within_its_times_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    // Twelve old texts a day apart from Jan 2, 2023, for two people, one
    // of them deleted; and a company's.
    let mut made = Vec::new();
    for day in 0..12 {
        let started = iso(t("2023-01-02T15:00:00Z") + Duration::days(day));
        let person = if day % 2 == 0 { ANN } else { BOB };
        made.push(
            create(
                &g,
                person,
                record("text", "outbound", "attempted", &started),
            )
            .await,
        );
    }
    g.delete(None, &made[5].id, &caller(), t("2023-02-01T00:00:00Z"))
        .await
        .unwrap();
    let company_key = Caller {
        company: Some("co-1".into()),
        ..caller()
    };
    let (theirs, _) = g
        .create(
            ANN,
            &record("email", "outbound", "attempted", "2023-01-04T16:00:00Z"),
            &company_key,
            t("2023-01-04T17:00:00Z"),
        )
        .await
        .unwrap();
    create(&g, BOB, record("voice", "outbound", "attempted", LATEST)).await;
    drop(g);
    let g = open(dir.path(), 0);
    assert_eq!(g.on_disk, 13);
    let reader = Reader::open(dir.path()).unwrap();
    let before = cutoff().timestamp();
    let micros = |s: &str| Some(t(s).timestamp_micros());
    let all = Limits {
        examined: 100,
        kept: 100,
    };
    let seqs = |listed: &Listed| {
        let mut ids: Vec<u64> = listed.found.iter().map(|(seq, _)| *seq).collect();
        ids.sort_unstable();
        ids
    };
    // Jan 4 to Jan 7 inclusive: days 2 to 5 and the company's; day 5 is
    // deleted, so 4 rows read.
    let range = Narrow {
        times: TimeBounds {
            started_from: micros("2023-01-04T00:00:00Z"),
            started_to: micros("2023-01-07T23:59:59Z"),
            ..TimeBounds::default()
        },
        ..Narrow::default()
    };
    let listed = reader.scan(before, &range, all, |_| true).unwrap();
    assert_eq!((listed.examined, listed.refused), (4, None));
    assert_eq!(seqs(&listed), [3, 4, 5, 13]);
    // The same by creation time (an hour after each start).
    let created = Narrow {
        times: TimeBounds {
            created_from: micros("2023-01-04T00:00:00Z"),
            created_to: micros("2023-01-07T23:59:59Z"),
            ..TimeBounds::default()
        },
        ..Narrow::default()
    };
    let listed = reader.scan(before, &created, all, |_| true).unwrap();
    assert_eq!((listed.examined, seqs(&listed)), (4, vec![3, 4, 5, 13]));
    // A company's key reads its company's only.
    let company = Narrow {
        company: Some("co-1".into()),
        ..range.clone()
    };
    let listed = reader.scan(before, &company, all, |_| true).unwrap();
    assert_eq!((listed.examined, seqs(&listed)), (1, vec![13]));
    assert_eq!(listed.found[0].1, theirs);
    // One person's, within the range: Ann's days 2 and 4, and the
    // company's.
    let listed = reader
        .of_people(&[ANN.to_owned()], before, &range, all, |_| true)
        .unwrap();
    assert_eq!((listed.examined, seqs(&listed)), (3, vec![3, 5, 13]));
    // Unbounded: every row not deleted, the newest (held whole) not.
    let listed = reader
        .scan(before, &Narrow::default(), all, |_| true)
        .unwrap();
    assert_eq!(listed.examined, 12);
    // Limits: what would read more is refused.
    let small = Limits {
        examined: 3,
        kept: 100,
    };
    let listed = reader.scan(before, &range, small, |_| true).unwrap();
    assert_eq!(listed.refused, Some(Refused::Examined(3)));
    let few = Limits {
        examined: 100,
        kept: 2,
    };
    let listed = reader.scan(before, &range, few, |_| true).unwrap();
    assert_eq!(listed.refused, Some(Refused::Kept(2)));
    // Through the guard, the same range lists the same, sorted by
    // creation.
    let q = ListQuery {
        started_after: t("2023-01-04T00:00:00Z").into(),
        started_before: t("2023-01-07T23:59:59Z").into(),
        ..query(None)
    };
    let (total, page) = g.list(&q, &caller()).unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        ids(&page),
        [&made[2].id, &made[3].id, &made[4].id, &theirs.id].map(String::as_str)
    );
}

/// A start reads the horizon's records by ranges of their places in
/// creation order. Old records created among recent ones (an import of
/// old history after recent sends), one by one and in a run longer than
/// a start reads past, stay on disk; the recent ones around them come back
/// in creation order, and every record reads back as it was.
#[tokio::test(flavor = "multi_thread")]
async fn old_records_created_among_recent_ones_stay_on_disk_after_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let g = open(dir.path(), u64::MAX);
    let mut made = Vec::new();
    let mut recent = Vec::new();
    for i in 0..200u32 {
        let old = i % 3 == 1 || (60..160).contains(&i);
        let started = if old {
            format!("2023-01-05T15:{:02}:{:02}Z", i / 60, i % 60)
        } else {
            format!("2024-03-{:02}T15:00:00Z", 1 + i % 15)
        };
        let r = create(&g, ANN, record("text", "outbound", "attempted", &started)).await;
        if !old {
            recent.push(r.id.clone());
        }
        made.push(r);
    }
    drop(g);

    let g = open(dir.path(), 0);
    let old = made.len() - recent.len();
    assert_eq!((recent.len(), old), (66, 134));
    assert_eq!((g.in_memory, g.on_disk), (66, 134));
    for r in &made {
        assert_eq!(g.get(None, &r.id, &caller()).unwrap(), *r, "{}", r.id);
    }
    drop(g);
    // What the store gives a start: the recent ones, in creation order.
    let store = Store::open_read_only(dir.path()).unwrap().unwrap();
    let mut read = Vec::new();
    store
        .load(
            None,
            Some(cutoff().timestamp()),
            |_, _| None::<()>,
            |l| {
                if let Loaded::Interaction { record, .. } = l
                    && let Some(compliance_guard::pb::journal::record::Op::Interaction(i)) =
                        record.op
                {
                    read.push(i.id);
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(read, recent);
}

/// What every read and Check of the history answers: the counts a start
/// logged, every listing, every Get and a Check per borrower and
/// channel.
type Observed = (
    (u64, u64),
    Answers,
    Vec<Result<Interaction, GuardError>>,
    Vec<Result<CheckOutcome, GuardError>>,
);

async fn observe(g: &Opened, h: &History) -> Observed {
    let mut checks = Vec::new();
    for person in [ANN, BOB] {
        for channel in ["voice", "text", "email"] {
            checks.push(check(g, &send(person, channel, "2024-03-16T15:00:00Z")).await);
        }
    }
    ((g.in_memory, g.on_disk), list_all(g, h), gets(g, h), checks)
}

/// A clean stop of a guard whose store follows the journal writes the
/// index checkpoint, and the next start reads memory from it (and
/// removes it): every Get, List and Check answers as after the start that
/// rebuilt memory from the store, with the same interactions in memory
/// and on disk only, and the same sizes. A checkpoint behind the store
/// (a write came after it), damaged, or made for another horizon is not
/// used: the start rebuilds, and answers with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_the_checkpoint_answers_as_one_rebuilt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("index.checkpoint");
    let (g, h) = build(dir.path()).await;
    drop(g);
    assert!(!checkpoint.exists(), "none while the store does not follow");
    let rules = rules_from(ONE_TEXT_A_WEEK);

    let g = open_serving(dir.path(), 90);
    assert!(!g.started_from_checkpoint());
    g.set_rules(rules.clone());
    let rebuilt = observe(&g, &h).await;
    assert_eq!(rebuilt.0, (5, 8));
    let sizes = g.sizes();
    drop(g);
    let written = std::fs::read(&checkpoint).expect("a clean stop writes the checkpoint");

    let g = open_serving(dir.path(), 90);
    assert!(g.started_from_checkpoint());
    assert!(
        checkpoint.exists(),
        "kept: a start after a crash replays from it"
    );
    g.set_rules(rules.clone());
    assert_eq!(observe(&g, &h).await, rebuilt);
    assert_eq!(g.sizes(), sizes);
    // A write after the checkpoint: that checkpoint is behind the store,
    // and the journal after it is kept. Its id is one a caller chose (not
    // of the generated shape, so it may be on disk as far as memory
    // knows): replayed, it is created, not read back from the store.
    let later = create(
        &g,
        ANN,
        InteractionInput {
            id: Some("424242".into()),
            ..record("text", "outbound", "succeeded", LATEST)
        },
    )
    .await;
    let mut with_later = observe(&g, &h).await;
    assert_ne!(with_later.3, rebuilt.3, "the later text counts");
    // What the next starts log: one more in memory.
    with_later.0 = (6, 8);
    drop(g);
    // As a crash after the write leaves it: the checkpoint from before,
    // and the journal after it; memory is the checkpoint with the journal
    // replayed.
    std::fs::write(&checkpoint, &written).unwrap();
    let g = open_serving(dir.path(), 90);
    assert!(
        g.started_from_checkpoint(),
        "behind the store, the journal kept"
    );
    g.set_rules(rules.clone());
    assert_eq!(g.get(None, &later.id, &caller()).unwrap(), later);
    assert_eq!(observe(&g, &h).await, with_later);
    drop(g);

    // Damaged: one byte changed.
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&checkpoint, &bytes).unwrap();
    let g = open_serving(dir.path(), 90);
    assert!(!g.started_from_checkpoint(), "damaged");
    g.set_rules(rules.clone());
    assert_eq!(observe(&g, &h).await, with_later);
    drop(g);

    // Made for 90 days, read for 120; then made for 120, read for 90.
    let g = open_serving(dir.path(), 120);
    assert!(!g.started_from_checkpoint(), "another horizon");
    drop(g);
    let g = open_serving(dir.path(), 90);
    assert!(!g.started_from_checkpoint(), "another horizon");
    g.set_rules(rules.clone());
    assert_eq!(observe(&g, &h).await, with_later);
    drop(g);
    // What a crash while writing one leaves is removed, never read.
    let torn = dir.path().join("index.checkpoint.tmp");
    std::fs::write(&torn, &written[..written.len() / 2]).unwrap();
    let g = open_serving(dir.path(), 90);
    assert!(g.started_from_checkpoint());
    assert!(!torn.exists());
    g.set_rules(rules);
    assert_eq!(observe(&g, &h).await, with_later);
}

/// A Check's answer with the cutoff its refusal names (`before <time>,
/// and`) left out.
fn without_cutoff<T: std::fmt::Debug>(answer: &Result<T, GuardError>) -> String {
    let text = format!("{answer:?}");
    match (text.find(", before "), text.find("Z, and")) {
        (Some(a), Some(b)) if a < b => format!("{} …{}", &text[..a + 8], &text[b + 1..]),
        _ => text,
    }
}

/// Memory from a checkpoint holds history from where the process that
/// wrote it held it: what the walk while serving let go (before the
/// horizon from the clock) stays refused after a start from a checkpoint
/// written after the walk, as it was before the stop, where a start that
/// rebuilds from the store reads that history again (its horizon is kept
/// before the latest interaction) and answers; so does a start from the
/// checkpoint made before the walk, which a stop with nothing written
/// since keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_the_checkpoint_refuses_what_the_stopped_process_had_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = build(dir.path()).await;
    drop(g);
    let rules = rules_from(ONE_TEXT_A_WEEK);
    let text = send(ANN, "text", "2024-03-16T15:00:00Z");
    let g = open_serving(dir.path(), 90);
    g.set_rules(rules.clone());
    let answered = check(&g, &text).await;
    assert!(answered.is_ok(), "{answered:?}");
    // The walk with the real clock: everything here is years old.
    assert!(g.let_go(Utc::now()).unwrap() > 0);
    let refused = check(&g, &text).await;
    assert!(
        matches!(refused, Err(GuardError::FailedPrecondition(_))),
        "{refused:?}"
    );
    // Each walk takes the horizon back from its own clock, so the cutoff
    // the message names may be a second later in a later walk.
    let refused = without_cutoff(&refused);
    assert!(refused.contains("before …, and"), "{refused}");
    // Nothing was written since this start wrote its checkpoint (before
    // the walk): the stop keeps that one, and memory from it holds what
    // the walk let go, as a rebuild would, and answers.
    let before_walk = std::fs::read(dir.path().join("index.checkpoint")).unwrap();
    drop(g);
    assert_eq!(
        std::fs::read(dir.path().join("index.checkpoint")).unwrap(),
        before_walk
    );
    let g = open_serving(dir.path(), 90);
    assert!(g.started_from_checkpoint());
    g.set_rules(rules.clone());
    assert_eq!(check(&g, &text).await, answered);
    assert!(g.let_go(Utc::now()).unwrap() > 0);
    assert_eq!(without_cutoff(&check(&g, &text).await), refused);
    // Written after the walk (the one in place removed, so the stop
    // writes one): memory from it stays refused.
    std::fs::remove_file(dir.path().join("index.checkpoint")).unwrap();
    drop(g);
    let g = open_serving(dir.path(), 90);
    assert!(g.started_from_checkpoint());
    g.set_rules(rules.clone());
    assert_eq!(without_cutoff(&check(&g, &text).await), refused);
    drop(g);
    std::fs::remove_file(dir.path().join("index.checkpoint")).unwrap();
    let g = open_serving(dir.path(), 90);
    assert!(!g.started_from_checkpoint());
    g.set_rules(rules);
    assert_eq!(check(&g, &text).await, answered);
}

/// Memory from a checkpoint holds the conversations of everything it
/// holds: a text's closed conversation, between the stopped process's
/// cutoff and a later start's (the latest interaction moved on before the
/// stop), reads back closed, not as a new open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_the_checkpoint_reads_the_conversations_of_everything_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = build(dir.path()).await;
    drop(g);
    // Memory holds from the cutoff before LATEST on.
    let g = open_serving(dir.path(), 90);
    let text = create(
        &g,
        ANN,
        record("text", "outbound", "succeeded", "2023-12-25T15:00:00Z"),
    )
    .await;
    let at = t(LATEST);
    g.join_convo(None, &text.id, "solo", &caller(), at)
        .await
        .unwrap();
    let closed = g.close_convo(None, &text.id, &caller(), at).await.unwrap();
    assert!(closed.closed.is_some());
    // A month later: a start's cutoff from it is after the text.
    create(
        &g,
        BOB,
        record("voice", "outbound", "attempted", "2024-04-15T15:00:00Z"),
    )
    .await;
    drop(g);
    let g = open_serving(dir.path(), 90);
    assert!(g.started_from_checkpoint());
    assert_eq!(g.convo(None, &text.id, &caller()).unwrap(), closed);
}

/// The position (generation, records) an index checkpoint was made at,
/// from its header.
fn made_at(checkpoint: &Path) -> (u64, u64) {
    let h = std::fs::read(checkpoint).unwrap();
    let number = |from: usize| u64::from_le_bytes(h[from..from + 8].try_into().unwrap());
    (number(12), number(20))
}

/// While a server runs from a checkpoint, the journal from the
/// checkpoint's position is kept although the store holds it (a start
/// after a crash replays it from there); once it has filled a generation,
/// a new checkpoint is built from the store and put in place, and the
/// journal before it is deleted as the store takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_moves_forward_while_serving_and_the_journal_before_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("index.checkpoint");
    let (g, _) = build(dir.path()).await;
    drop(g);
    let g = open_rolling(dir.path(), 90, 2);
    drop(g);
    let at_stop = journals(dir.path());
    assert_eq!(at_stop.len(), 1, "{at_stop:?}");
    let g = open_rolling(dir.path(), 90, 2);
    assert!(g.started_from_checkpoint());
    let first = made_at(&checkpoint);
    let mut made = 0;
    let mut write = async |n: usize| {
        for _ in 0..n {
            made += 1;
            let at = format!("2024-03-14T{:02}:00:00Z", made % 24);
            create(&g, BOB, record("voice", "outbound", "attempted", &at)).await;
        }
        // The follower takes each batch within its second.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    };
    // Waits for the checkpoint to move past `from`.
    let moved_from = async |from: (u64, u64)| {
        for _ in 0..100 {
            let now = made_at(&checkpoint);
            if now != from {
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the checkpoint stayed at {from:?}");
    };
    // Two records: the journal rolls once, and the checkpoint's
    // generation is kept while a new one is built there.
    write(2).await;
    let now = journals(dir.path());
    assert!(now.len() >= 2 && now[0] == at_stop[0], "{now:?}");
    let moved = moved_from(first).await;
    assert!(moved.0 > first.0, "{first:?} then {moved:?}");
    // Two more: the journal before the new checkpoint goes as the store
    // takes it, and the checkpoint moves on again.
    write(2).await;
    let now = journals(dir.path());
    assert!(!now.contains(&at_stop[0]), "{now:?}");
    let again = moved_from(moved).await;
    assert!(again.0 > moved.0, "{moved:?} then {again:?}");
    drop(g);
    // That stop writes a checkpoint again, and it is read.
    let g = open_rolling(dir.path(), 90, 2);
    assert!(g.started_from_checkpoint());
}

/// A checkpoint behind the store whose journal after it is damaged (a
/// generation the store holds already): the replay fails, and the same
/// start rebuilds from the store instead, answering every read and Check
/// with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_meets_a_damaged_journal_falls_back_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("index.checkpoint");
    let (g, h) = build(dir.path()).await;
    drop(g);
    let g = open_rolling(dir.path(), 90, 2);
    drop(g);
    let first = std::fs::read(&checkpoint).unwrap();
    let rules = rules_from(ONE_TEXT_A_WEEK);
    let g = open_rolling(dir.path(), 90, 2);
    assert!(g.started_from_checkpoint());
    g.set_rules(rules.clone());
    for hour in 10..13 {
        let at = format!("2024-03-14T{hour}:00:00Z");
        create(&g, ANN, record("text", "outbound", "succeeded", &at)).await;
    }
    // The follower takes each batch within its second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let answers = observe(&g, &h).await;
    // The journal as a crash now would leave it: kept from the first
    // checkpoint's generation (a clean stop deletes what its own
    // checkpoint no longer needs).
    let logs = journals(dir.path());
    assert!(logs.len() >= 2, "the journal rolled: {logs:?}");
    let kept: Vec<(String, Vec<u8>)> = logs
        .iter()
        .map(|l| {
            let bytes = std::fs::read(dir.path().join("journal").join(l)).unwrap();
            (l.clone(), bytes)
        })
        .collect();
    drop(g);
    for (l, bytes) in &kept {
        std::fs::write(dir.path().join("journal").join(l), bytes).unwrap();
    }
    // The first checkpoint back, and a byte of its generation changed.
    std::fs::write(&checkpoint, &first).unwrap();
    let oldest = dir.path().join("journal").join(&logs[0]);
    let mut bytes = std::fs::read(&oldest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&oldest, &bytes).unwrap();
    let g = open_rolling(dir.path(), 90, 2);
    assert!(!g.started_from_checkpoint(), "the replay failed");
    g.set_rules(rules);
    let rebuilt = observe(&g, &h).await;
    assert_eq!(
        (&rebuilt.1, &rebuilt.2, &rebuilt.3),
        (&answers.1, &answers.2, &answers.3)
    );
}
