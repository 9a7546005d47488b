//! The journal under the index: nothing acknowledged is lost on a restart
//! or a crash. The real binary killed with SIGKILL while clients write; a
//! journal cut at every byte of its last records; a damaged record before
//! the end refused with its file and offset; updates, deletes, debts and
//! links restored exactly; the data directory's lock; the journal
//! materialized into the store.
//!
//! Checks pass `at` explicitly, so that a decision before a restart can be
//! compared whole with the one after.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use compliance_guard::guard::Guard;
use compliance_guard::journal::{JournalError, Position, Recovered};
use compliance_guard::model::InteractionInput;
use compliance_guard::pb::journal::Record;
use compliance_guard::pb::journal::record::Op;
use compliance_guard::pb::{
    CheckRequest, CheckResponse, Contact, CreateInteractionRequest, DeclareDebtRequest,
    DeleteInteractionRequest, GetInteractionRequest, Interaction, LinkPersonRequest,
    ListInteractionsRequest, ListInteractionsResponse, ListReservationsRequest,
    UpdateInteractionRequest,
};
use compliance_guard::request::Caller;
use compliance_guard::server::ServeError;
use compliance_guard::store::{STORE_DIR, Store};
use prost::Message;
use prost_types::{FieldMask, Struct, Timestamp, Value, value::Kind};

use crate::support::consts::MONDAY_10 as AT;
use crate::support::library::{open_once, open_with};
use crate::support::process::{ServeProcess, serve};
use crate::support::server::{
    Checks, Interactions, TestServer, checks_on, connect, interactions_on, options,
};

/// The journal's file header: magic, version, kind.
pub(crate) const HEADER_LEN: u64 = 8;
/// The first journal file of a fresh data directory.
const FIRST_JOURNAL: &str = "journal/journal-00000000.log";

pub(super) fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// An outbound call about `loan`, to a mobile phone in New Jersey (Eastern
/// time), at `AT`.
pub(super) fn call(person: &str, loan: &str) -> CheckRequest {
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
        at: at(AT),
        ..CheckRequest::default()
    }
}

/// A placed call (rang, no pickup) about `loan`, `minutes` before `AT`.
pub(super) fn placed_call(loan: &str, minutes: i64) -> Interaction {
    Interaction {
        channel: "voice".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        status_details: Some("voiceRangNoPickup".into()),
        loan_id: Some(loan.into()),
        started_at: at(AT - minutes * 60),
        ..Interaction::default()
    }
}

pub(super) fn with_ext(mut i: Interaction, ext: &str) -> Interaction {
    i.external_id = Some(ext.into());
    i
}

pub(super) fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

pub(super) async fn create(
    records: &mut Interactions,
    person: &str,
    i: Interaction,
) -> Interaction {
    let r = records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: person.into(),
            interaction: Some(i),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.created, "a new interaction was expected");
    r.interaction.unwrap()
}

/// GetInteraction by our id, for anyone.
pub(super) async fn get(
    records: &mut Interactions,
    id: &str,
) -> Result<Interaction, tonic::Status> {
    Ok(records
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: id.into(),
            person_id: String::new(),
        })
        .await?
        .into_inner()
        .interaction
        .unwrap())
}

async fn list(records: &mut Interactions, person: &str) -> ListInteractionsResponse {
    records
        .list_interactions(ListInteractionsRequest {
            person_id: person.into(),
            limit: 100,
            ..ListInteractionsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub(super) async fn check(checks: &mut Checks, r: CheckRequest) -> CheckResponse {
    checks.check(r).await.unwrap().into_inner()
}

async fn reservation_ids(checks: &mut Checks) -> BTreeSet<String> {
    checks
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reservations
        .into_iter()
        .map(|r| r.interaction_id)
        .collect()
}

// ---- journal files ---------------------------------------------------------

/// One framed record of a journal file: where it starts and ends, and what
/// it holds.
pub(crate) struct Frame {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) record: Record,
}

/// Parses a journal or snapshot file of `kind` (0 journal, 1 snapshot or
/// backup): the 8-byte header, then `[len u32 LE][crc32 u32 LE][payload]`
/// records that cover the file exactly.
///
/// The header's version is the one this release writes for the kind: 2
/// for a journal (its history before it is in the store, so a release that
/// reads only version 1 must refuse it), 1 for a snapshot or a backup (a
/// whole history, which an older release still reads).
pub(crate) fn frames(bytes: &[u8], kind: u16) -> Vec<Frame> {
    assert!(bytes.len() >= 8, "{} bytes, no header", bytes.len());
    assert_eq!(&bytes[..4], b"CGJL");
    let version = if kind == 0 { 2 } else { 1 };
    assert_eq!(
        u16::from_le_bytes([bytes[4], bytes[5]]),
        version,
        "version of a file of kind {kind}"
    );
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), kind, "kind");
    let mut out = Vec::new();
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let payload = &bytes[at + 8..at + 8 + len];
        assert_eq!(crc32fast::hash(payload), crc, "record at {at}");
        let record = Record::decode(payload).unwrap();
        assert!(record.op.is_some(), "record at {at}");
        out.push(Frame {
            start: at as u64,
            end: (at + 8 + len) as u64,
            record,
        });
        at += 8 + len;
    }
    assert_eq!(at, bytes.len(), "the records cover the file exactly");
    out
}

/// The interaction a frame carries, alone or inside the batch of one
/// operation.
fn interaction_of(op: &Option<Op>) -> Option<&compliance_guard::pb::Interaction> {
    match op {
        Some(Op::Interaction(i)) => Some(i),
        Some(Op::Batch(b)) => b.records.iter().find_map(|r| interaction_of(&r.op)),
        _ => None,
    }
}

fn is_interaction(f: &Frame) -> bool {
    interaction_of(&f.record.op).is_some()
}

fn external_id(f: &Frame) -> Option<String> {
    interaction_of(&f.record.op).and_then(|i| i.external_id.clone())
}

pub(crate) fn caller() -> Caller {
    Caller {
        company: None,
        name: "durability".into(),
        sensitive: true,
        agent: false,
    }
}

fn open(dir: &Path) -> Result<(Guard, Recovered), JournalError> {
    open_with(dir, u64::MAX)
}

/// A placed call as the library takes it.
pub(crate) fn placed_input(ext: &str, minutes: i64) -> InteractionInput {
    InteractionInput {
        external_id: Some(ext.into()),
        channel: Some("voice".into()),
        direction: Some("outbound".into()),
        status: Some("attempted".into()),
        status_details: Some("voiceRangNoPickup".into()),
        loan_id: Some("L1".into()),
        started_at: Some(
            Utc.timestamp_opt(AT - minutes * 60, 0)
                .unwrap()
                .to_rfc3339(),
        ),
        ..InteractionInput::default()
    }
}

/// Writes a journal through the library: one person record, then one
/// interaction record for each of `exts`. Returns the data directory.
async fn journal_with(exts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (guard, replayed) = open(dir.path()).unwrap();
    assert_eq!(replayed, Recovered::default(), "a fresh directory");
    let now = Utc.timestamp_opt(AT, 0).unwrap();
    for (m, ext) in exts.iter().enumerate() {
        let (_, created) = guard
            .create("BO-CUTS-0001", &placed_input(ext, m as i64), &caller(), now)
            .await
            .unwrap();
        assert!(created);
    }
    assert_eq!(guard.len(), exts.len());
    drop(guard);
    dir
}

/// A data directory of this release as a crash would leave it after
/// `source`'s first start: `source`'s store (empty, at the start of
/// generation 0, as every new data directory's is) copied, and `journal`
/// as its first journal.
///
/// The store matters: a journal with no store beside it is an older
/// release's layout, which a start migrates (and deletes), instead of
/// reading it after the store's position and cutting it back in place.
fn dir_with_journal(source: &Path, journal: &[u8]) -> tempfile::TempDir {
    assert_eq!(
        store_position(source),
        Some(Position::default()),
        "the store copied is that of a new data directory"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join(STORE_DIR);
    std::fs::create_dir(&store).unwrap();
    for entry in std::fs::read_dir(source.join(STORE_DIR)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), store.join(entry.file_name())).unwrap();
    }
    std::fs::create_dir(dir.path().join("journal")).unwrap();
    std::fs::write(dir.path().join(FIRST_JOURNAL), journal).unwrap();
    dir
}

/// Where the store of the data directory `data` reaches (read beside no
/// server): `None` if it has no store, or one never written.
pub(crate) fn store_position(data: &Path) -> Option<Position> {
    Store::open_read_only(data)
        .unwrap()
        .and_then(|store| store.position().unwrap())
}

/// Asserts where the history of the data directory `data` is after a
/// stop: the store at the start of `generation` (where a start that
/// materializes the journal moves it, and where one that does not leaves
/// it), and that generation's journal the only one (an older one was
/// deleted once the store took it). `what` names the step.
pub(crate) fn assert_store_at(data: &Path, generation: u64, what: &str) {
    assert_eq!(
        store_position(data),
        Some(Position {
            generation,
            records: 0
        }),
        "{what}: the store's position"
    );
    assert_eq!(
        journal_files(data),
        [format!("journal-{generation:08}.log")],
        "{what}: the journals"
    );
}

/// Opens the data directory `data` in this process (never materializing)
/// and asserts that it reads its whole history from the store, `things`
/// records (one per person, account, restriction, interaction, open
/// reservation, conversation and stored answer), and nothing from the
/// journal after it: the state of the journal materialized at generation 1
/// (`compact_after` 0), then the start of an empty journal.
pub(crate) fn assert_read_from_the_store(data: &Path, things: u64) {
    let (guard, replayed) = open_with(data, u64::MAX).unwrap();
    drop(guard);
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: things,
            journal_records: 0,
            cut: None,
            end: Position {
                generation: 1,
                records: 0
            },
        }
    );
    assert_store_at(data, 1, "a start reading the store");
}

/// Every record the store of `data` holds, in the order a start reads
/// them.
pub(crate) fn store_records(data: &Path) -> Vec<Record> {
    let store = Store::open_read_only(data).unwrap().expect("a store");
    let mut out = Vec::new();
    let n = store
        .for_each(|r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

pub(crate) fn journal_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- an in-process server on a data directory we keep ----------------------

/// A server in this process on `data_dir` (open access, `Sync`, the
/// store not following the journal), not yet SERVING: for a start that
/// must be refused.
async fn start_on(data_dir: &Path, compact_after: u64) -> TestServer {
    options()
        .data_dir(data_dir)
        .open()
        .sync()
        .unfollowed()
        .compact_after(compact_after)
        .start()
        .await
}

/// A server in this process on `data_dir` (open access, `Sync`, the
/// store not following the journal), SERVING.
async fn start_ready(data_dir: &Path, compact_after: u64) -> TestServer {
    options()
        .data_dir(data_dir)
        .open()
        .sync()
        .unfollowed()
        .compact_after(compact_after)
        .serving()
        .await
}

/// Its clients, without a key (access is open).
async fn clients(server: &TestServer) -> (Checks, Interactions) {
    (server.checks().await, server.interactions().await)
}

// ---- the real binary as a subprocess ---------------------------------------

/// `compliance-guard serve` on `data`, `--durability sync`, open access,
/// with `more` flags.
fn spawn_server_with(data: &Path, more: &[&str]) -> ServeProcess {
    serve_on(data, more).spawn()
}

/// [`spawn_server_with`], not yet started.
fn serve_on(data: &Path, more: &[&str]) -> crate::support::process::Serve {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--durability".as_ref(),
        "sync".as_ref(),
        "--insecure-no-auth".as_ref(),
        // The writers reserve at recorded 2025 dates.
        "--reserve-tolerance-seconds".as_ref(),
        "4000000000".as_ref(),
    ];
    args.extend(more.iter().map(|a| std::ffi::OsStr::new(*a)));
    serve(args)
}

// ---- 1. SIGKILL while clients write ----------------------------------------

/// A write sent when the server died: its outcome is unknown.
#[derive(Debug, Clone)]
enum InFlight {
    Create(String),
    Update(String),
    Reserve(Box<CheckRequest>),
}

/// What one writer had acknowledged when the server died.
#[derive(Debug, Default)]
struct Written {
    /// By external id: the interaction as last acknowledged (the create's
    /// answer, or the update's).
    acked: BTreeMap<String, Interaction>,
    /// External ids whose update to `failed` was acknowledged.
    updated: BTreeSet<String>,
    /// Acknowledged reserving Checks and their answers.
    reservations: Vec<(CheckRequest, CheckResponse)>,
    /// The write that failed, and how.
    in_flight: Option<(InFlight, tonic::Status)>,
}

/// Writes until a write fails (the server died) or `max` writes: a create
/// (external id `w{t}-{i}`), an update of it to `failed`, a reserving Check
/// for a new person, again and again.
async fn writer(addr: SocketAddr, t: usize, max: usize, acked: Arc<AtomicUsize>) -> Written {
    let channel = connect(addr).await;
    let mut records = interactions_on(channel.clone(), None);
    let mut checks = checks_on(channel, None);
    let person = format!("ext-pw{t}");
    let mut out = Written::default();
    for i in 0..max {
        let result = match i % 3 {
            0 => {
                let ext = format!("w{t}-{i}");
                let sent = records
                    .create_interaction(CreateInteractionRequest {
                        searchable: false,
                        person_id: person.clone(),
                        interaction: Some(with_ext(
                            Interaction {
                                channel: "email".into(),
                                direction: "outbound".into(),
                                status: "attempted".into(),
                                started_at: at(AT - 86_400 - i as i64),
                                ..Interaction::default()
                            },
                            &ext,
                        )),
                    })
                    .await;
                match sent {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert!(r.created, "{ext}");
                        out.acked.insert(ext, r.interaction.unwrap());
                        Ok(())
                    }
                    Err(s) => Err((InFlight::Create(ext), s)),
                }
            }
            1 => {
                let ext = format!("w{t}-{}", i - 1);
                let sent = records
                    .update_interaction(UpdateInteractionRequest {
                        person_id: person.clone(),
                        interaction_id: format!("ext-{ext}"),
                        interaction: Some(Interaction {
                            status: "failed".into(),
                            ..Interaction::default()
                        }),
                        update_mask: mask(&["status"]),
                    })
                    .await;
                match sent {
                    Ok(r) => {
                        let updated = r.into_inner().interaction.unwrap();
                        assert_eq!(updated.status, "failed");
                        out.updated.insert(ext.clone());
                        out.acked.insert(ext, updated);
                        Ok(())
                    }
                    Err(s) => Err((InFlight::Update(ext), s)),
                }
            }
            _ => {
                let mut r = call(&format!("ext-rw{t}-{i}"), "L1");
                r.reserve = true;
                r.request_id = format!("rq-{t}-{i}");
                match checks.check(r.clone()).await {
                    Ok(answer) => {
                        out.reservations.push((r, answer.into_inner()));
                        Ok(())
                    }
                    Err(s) => Err((InFlight::Reserve(Box::new(r)), s)),
                }
            }
        };
        match result {
            Ok(()) => {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(failed) => {
                out.in_flight = Some(failed);
                break;
            }
        }
    }
    out
}

/// The real binary, `--durability sync`, killed with SIGKILL while four
/// clients write as fast as they can: after a restart on the same data
/// directory every acknowledged create, update and reservation is there
/// exactly as acknowledged, a retried reservation is answered from its
/// stored answer, and a fixed Check decides exactly as before.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_while_clients_write() {
    sigkill_while_clients_write(&[]).await;
}

/// The same, with the journal rolling every 7 records while the store
/// follows it and deletes the journals it holds: the kill lands between
/// any two of a durable batch, its application to the store, a roll and
/// a deletion, and nothing acknowledged is lost.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_while_the_journal_rolls() {
    let data = sigkill_while_clients_write(&["--compact-after", "7"]).await;
    // After the clean stop, the store holds the journal: at most the
    // newest journal is left.
    let journals = std::fs::read_dir(data.path().join("journal"))
        .unwrap()
        .count();
    assert_eq!(journals, 1, "the journals the store holds were deleted");
}

#[cfg(unix)]
async fn sigkill_while_clients_write(more: &[&str]) -> tempfile::TempDir {
    const WRITERS: usize = 4;
    const MAX_WRITES: usize = 3_000;
    const KILL_AFTER: usize = 240;
    let data = tempfile::tempdir().unwrap();
    let server = spawn_server_with(data.path(), more);
    let addr = server.addr();
    server.wait_serving(addr).await;
    let channel = connect(addr).await;
    let mut records = interactions_on(channel.clone(), None);
    let mut checks = checks_on(channel.clone(), None);

    // A fixed history and two fixed proposals: one blocked by the 7-call
    // cap (with the calls it counted), one allowed.
    let mut fixed_ids = Vec::new();
    for m in 0..7 {
        fixed_ids.push(
            create(&mut records, "BO-FIXD-0001", placed_call("L1", 60 + m))
                .await
                .id,
        );
    }
    let blocked_before = check(&mut checks, call("BO-FIXD-0001", "L1")).await;
    assert!(!blocked_before.allowed);
    assert_eq!(
        blocked_before.compliance_guard_rule_id,
        "us-regf-7-calls-in-7-days"
    );
    let mut counted = blocked_before.violations[0].counted_interaction_ids.clone();
    counted.sort();
    fixed_ids.sort();
    assert_eq!(counted, fixed_ids);
    let allowed_before = check(&mut checks, call("BO-FIXD-0001", "CAR")).await;
    assert!(allowed_before.allowed);

    let acked = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| tokio::spawn(writer(addr, t, MAX_WRITES, Arc::clone(&acked))))
        .collect();
    // Kill once enough writes are acknowledged, while the writers go on.
    while acked.load(Ordering::SeqCst) < KILL_AFTER && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        acked.load(Ordering::SeqCst) >= KILL_AFTER,
        "the writers stopped after {} acknowledged writes",
        acked.load(Ordering::SeqCst)
    );
    let first_log = server.kill_9();
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    drop((records, checks, channel));

    let total_acked: usize = written
        .iter()
        .map(|w| w.acked.len() + w.updated.len() + w.reservations.len())
        .sum();
    assert_eq!(total_acked, acked.load(Ordering::SeqCst));
    assert!(total_acked >= KILL_AFTER);
    // The kill came while the writers were writing: each stopped on a
    // failed write, none ran out of writes.
    for (t, w) in written.iter().enumerate() {
        let (what, status) = w
            .in_flight
            .as_ref()
            .unwrap_or_else(|| panic!("writer {t} wrote all {MAX_WRITES} before the kill"));
        assert!(
            !matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::NotFound
                    | tonic::Code::AlreadyExists
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::Internal
            ),
            "writer {t}: {what:?} was refused, not cut: {status:?}"
        );
    }
    for (request, answer) in written.iter().flat_map(|w| &w.reservations) {
        assert!(answer.allowed, "{}: {answer:?}", request.request_id);
        assert!(!answer.replayed);
        assert!(answer.interaction_id.starts_with("IT-"), "{answer:?}");
    }

    // Restart on the same data directory.
    let server = spawn_server_with(data.path(), more);
    let addr = server.addr();
    server.wait_serving(addr).await;
    let channel = connect(addr).await;
    let mut records = interactions_on(channel.clone(), None);
    let mut checks = checks_on(channel.clone(), None);

    for (t, w) in written.iter().enumerate() {
        let update_in_flight = match &w.in_flight {
            Some((InFlight::Update(ext), _)) => Some(ext.clone()),
            _ => None,
        };
        for (ext, acknowledged) in &w.acked {
            let got = get(&mut records, &format!("ext-{ext}"))
                .await
                .unwrap_or_else(|e| panic!("ext-{ext} acknowledged but lost: {e:?}"));
            if update_in_flight.as_deref() == Some(ext.as_str()) {
                // Its update was cut: either state may have been kept.
                assert_eq!(got.id, acknowledged.id);
                assert!(
                    got == *acknowledged || got.status == "failed",
                    "{got:?} vs {acknowledged:?}"
                );
            } else {
                assert_eq!(got, *acknowledged, "ext-{ext}");
            }
            if w.updated.contains(ext) {
                assert_eq!(got.status, "failed", "ext-{ext}");
            }
        }
        // Nothing was made up: the writer's person holds its acknowledged
        // creates, and at most the one that was cut.
        let listed = records
            .list_interactions(ListInteractionsRequest {
                person_id: format!("ext-pw{t}"),
                limit: 1,
                ..ListInteractionsRequest::default()
            })
            .await
            .map_or(0, |r| r.into_inner().total as usize);
        let cut_create = matches!(&w.in_flight, Some((InFlight::Create(_), _)));
        assert!(
            listed == w.acked.len() || (cut_create && listed == w.acked.len() + 1),
            "writer {t}: {listed} listed, {} acknowledged",
            w.acked.len()
        );
    }

    let open = reservation_ids(&mut checks).await;
    let acked_reservations: BTreeSet<String> = written
        .iter()
        .flat_map(|w| &w.reservations)
        .map(|(_, a)| a.interaction_id.clone())
        .collect();
    let cut_reservations = written
        .iter()
        .filter(|w| matches!(&w.in_flight, Some((InFlight::Reserve(_), _))))
        .count();
    assert!(
        acked_reservations.is_subset(&open),
        "lost: {:?}",
        acked_reservations.difference(&open).collect::<Vec<_>>()
    );
    assert!(open.len() <= acked_reservations.len() + cut_reservations);
    for (request, answer) in written.iter().flat_map(|w| &w.reservations) {
        let reserved = get(&mut records, &answer.interaction_id).await.unwrap();
        assert_eq!(reserved.status, "inProgress");
        assert_eq!(reserved.created_by.as_deref(), Some("anonymous"));
        let retry = check(&mut checks, request.clone()).await;
        assert!(retry.replayed, "{}", request.request_id);
        assert_eq!(retry.interaction_id, answer.interaction_id);
        assert_eq!(
            CheckResponse {
                replayed: false,
                ..retry
            },
            *answer
        );
    }
    assert_eq!(
        reservation_ids(&mut checks).await,
        open,
        "retries take no second slot"
    );
    // A write whose outcome was unknown: a cut create is there whole or
    // not at all; a cut reservation retried with its request id is either
    // its stored answer, with its slot, or a fresh allow.
    for w in &written {
        match &w.in_flight {
            Some((InFlight::Create(ext), _)) => {
                match get(&mut records, &format!("ext-{ext}")).await {
                    Ok(got) => assert_eq!(got.status, "attempted", "ext-{ext}"),
                    Err(e) => assert_eq!(e.code(), tonic::Code::NotFound, "ext-{ext}: {e:?}"),
                }
            }
            Some((InFlight::Reserve(request), _)) => {
                let retry = check(&mut checks, (**request).clone()).await;
                assert!(retry.allowed, "{retry:?}");
                assert_eq!(
                    retry.replayed,
                    open.contains(&retry.interaction_id),
                    "{}: {retry:?}",
                    request.request_id
                );
            }
            _ => {}
        }
    }

    assert_eq!(
        check(&mut checks, call("BO-FIXD-0001", "L1")).await,
        blocked_before
    );
    assert_eq!(
        check(&mut checks, call("BO-FIXD-0001", "CAR")).await,
        allowed_before
    );

    drop((records, checks, channel));
    let second_log = server.terminate().await;
    assert!(
        first_log.iter().any(|l| l.contains("SERVING")),
        "{first_log:?}"
    );
    assert!(
        second_log.iter().any(|l| l.contains("replay finished")),
        "{second_log:?}"
    );
    data
}

// ---- 2. a journal cut at every byte of its last records ---------------------

/// A crash mid-write leaves the last record cut short. For every length from
/// the start of the second-to-last record to the end of the file, in a data
/// directory of this release (its store at the start of generation 0, the
/// journal after it): the open keeps every whole record, drops only the
/// partial one, cuts the file back to the last whole record, and a record
/// written after it is read at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_at_any_byte_of_its_last_records_keeps_every_whole_record() {
    let exts = ["cut-0", "cut-1", "cut-2", "cut-3", "cut-4"];
    let source = journal_with(&exts).await;
    let full = std::fs::read(source.path().join(FIRST_JOURNAL)).unwrap();
    let all = frames(&full, 0);
    assert_eq!(all.len(), exts.len(), "one frame per operation");
    // The first create also registered the person: one operation, so one
    // frame (a batch of the person and the interaction).
    assert!(matches!(all[0].record.op, Some(Op::Batch(_))));
    let boundaries: Vec<u64> = std::iter::once(HEADER_LEN)
        .chain(all.iter().map(|f| f.end))
        .collect();
    let from = all[all.len() - 2].start;
    let now = Utc.timestamp_opt(AT, 0).unwrap();
    let mut cuts = 0;
    for cut in from..=full.len() as u64 {
        let dir = dir_with_journal(source.path(), &full[..cut as usize]);
        let path = dir.path().join(FIRST_JOURNAL);
        let whole: Vec<&Frame> = all.iter().filter(|f| f.end <= cut).collect();
        let good = boundaries.iter().copied().filter(|b| *b <= cut).max();
        let good = good.unwrap();
        let (guard, replayed) =
            open(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: refused: {e}"));
        assert_eq!(replayed.generation, 0, "cut at {cut}");
        assert_eq!(replayed.snapshot_records, 0, "cut at {cut}");
        assert_eq!(replayed.journal_records, whole.len() as u64, "cut at {cut}");
        assert_eq!(
            replayed.end,
            Position {
                generation: 0,
                records: whole.len() as u64
            },
            "cut at {cut}: the whole records read end the history"
        );
        match &replayed.cut {
            None => assert_eq!(good, cut, "cut at {cut}: a partial record went unreported"),
            Some((file, offset, _)) => {
                assert_ne!(good, cut, "cut at {cut}: a whole record reported as cut");
                assert_eq!(file, &path, "cut at {cut}");
                assert_eq!(*offset, good, "cut at {cut}");
            }
        }
        let kept = whole.iter().filter(|f| is_interaction(f)).count();
        assert_eq!(guard.len(), kept, "cut at {cut}");
        for f in all.iter().filter(|f| is_interaction(f)) {
            let ext = external_id(f).unwrap();
            let found = guard.get(None, &format!("ext-{ext}"), &caller());
            assert_eq!(found.is_ok(), f.end <= cut, "cut at {cut}: ext-{ext}");
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            good,
            "cut at {cut}: the file is cut back to the last whole record"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            full[..good as usize],
            "cut at {cut}"
        );
        // A record written after the cut is read at the next start.
        let (after, _) = guard
            .create("BO-CUTS-0001", &placed_input("after", 99), &caller(), now)
            .await
            .unwrap();
        drop(guard);
        let (guard, replayed) =
            open(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}, then a write: {e}"));
        assert_eq!(replayed.cut, None, "cut at {cut}");
        assert_eq!(
            replayed.end,
            Position {
                generation: 0,
                records: whole.len() as u64 + 1
            },
            "cut at {cut}, then a write"
        );
        assert_eq!(guard.len(), kept + 1, "cut at {cut}");
        assert_eq!(guard.get(None, "ext-after", &caller()).unwrap(), after);
        drop(guard);
        cuts += 1;
    }
    assert_eq!(cuts, full.len() as u64 - from + 1);
    // A journal cut inside its 8-byte header (created just before a crash)
    // holds nothing: it is a torn tail at offset 0, rewritten on open.
    for len in 0..8usize {
        let dir = dir_with_journal(source.path(), &full[..len]);
        let (guard, replayed) =
            open(dir.path()).unwrap_or_else(|e| panic!("header cut at {len}: {e}"));
        assert_eq!(replayed.journal_records, 0, "header cut at {len}");
        assert_eq!(
            replayed.cut.as_ref().map(|c| c.1),
            Some(0),
            "header cut at {len}"
        );
        assert_eq!(guard.len(), 0);
        drop(guard);
        assert_eq!(
            std::fs::metadata(dir.path().join(FIRST_JOURNAL))
                .unwrap()
                .len(),
            HEADER_LEN
        );
        let (_, again) = open(dir.path()).unwrap();
        assert_eq!(
            again.cut, None,
            "header cut at {len}: the header was rewritten"
        );
    }
    // Zeros after the last record (space allocated, data never written, as
    // after a power cut) are a torn tail, not damage.
    let mut zeros = full.clone();
    zeros.extend(std::iter::repeat_n(0u8, 4096));
    let dir = dir_with_journal(source.path(), &zeros);
    let (guard, replayed) = open(dir.path()).unwrap();
    assert_eq!(guard.len(), exts.len());
    assert_eq!(replayed.cut.as_ref().map(|c| c.1), Some(full.len() as u64));
    drop(guard);
    assert_eq!(std::fs::read(dir.path().join(FIRST_JOURNAL)).unwrap(), full);
    // One operation is one frame: a reserving Check's person, interaction,
    // reservation and stored answer are applied whole or not at all.
    let batch = all
        .iter()
        .find(|f| matches!(f.record.op, Some(Op::Batch(_))))
        .unwrap();
    let Some(Op::Batch(b)) = &batch.record.op else {
        unreachable!()
    };
    assert_eq!(
        b.records.len(),
        2,
        "the first create's person and interaction"
    );
}

// ---- 3. a damaged record before the end -------------------------------------

/// A flipped byte in the first record (not the last) refuses the start with
/// the file and the record's offset, and leaves the file as it is; the same
/// flip in the last record is a torn write: that record alone is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_before_the_end_refuses_the_start_and_in_the_last_record_is_dropped() {
    let exts = ["flip-0", "flip-1", "flip-2", "flip-3"];
    let source = journal_with(&exts).await;
    let full = std::fs::read(source.path().join(FIRST_JOURNAL)).unwrap();
    let all = frames(&full, 0);
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].start, 8);

    let flip = |frame: &Frame| {
        let mut bytes = full.clone();
        let inside = (frame.start + 8 + (frame.end - frame.start - 8) / 2) as usize;
        bytes[inside] ^= 0x5a;
        bytes
    };

    // The first record, and a middle one: refused, with the offset.
    for (which, frame) in [("first", &all[0]), ("middle", &all[2])] {
        let damaged = flip(frame);
        let dir = dir_with_journal(source.path(), &damaged);
        let path = dir.path().join(FIRST_JOURNAL);
        let err = open(dir.path()).unwrap_err();
        let JournalError::Corrupt {
            path: named,
            offset,
            reason,
        } = &err
        else {
            panic!("{which}: not Corrupt: {err:?}")
        };
        assert_eq!(named, &path, "{which}");
        assert_eq!(*offset, frame.start, "{which}");
        assert_eq!(reason, "the checksum does not match", "{which}");
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` is damaged at byte offset {}: the checksum does not match; the start is refused so that nothing is silently skipped (restore from a backup, or move the file away to start without it)",
                path.display(),
                frame.start
            ),
            "{which}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            damaged,
            "{which}: a refused start leaves the file as it is"
        );
        // The refusal released the lock: with the file restored, it opens.
        std::fs::write(&path, &full).unwrap();
        let (guard, replayed) = open(dir.path()).unwrap();
        assert_eq!(guard.len(), exts.len(), "{which}");
        assert_eq!(replayed.cut, None, "{which}");
    }
    let first_damaged = dir_with_journal(source.path(), &flip(&all[0]));
    let first = open(first_damaged.path()).unwrap_err();
    assert!(
        first.to_string().contains("is damaged at byte offset 8: ")
            && first.to_string().contains("the start is refused"),
        "{first}"
    );

    // The last record: a torn write, dropped.
    let last = &all[all.len() - 1];
    let dir = dir_with_journal(source.path(), &flip(last));
    let path = dir.path().join(FIRST_JOURNAL);
    let (guard, replayed) = open(dir.path()).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 0,
            snapshot_records: 0,
            journal_records: 3,
            cut: Some((
                path.clone(),
                last.start,
                "the checksum does not match".into()
            )),
            // The history ends after the 3 whole records of generation 0.
            end: Position {
                generation: 0,
                records: 3
            },
        }
    );
    assert_eq!(guard.len(), exts.len() - 1);
    let kept = guard.get(None, "ext-flip-2", &caller()).unwrap();
    assert_eq!(kept.external_id.as_deref(), Some("flip-2"));
    assert!(guard.get(None, "ext-flip-3", &caller()).is_err());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last.start);
}

// ---- 4. updates, deletes, debts and links survive a restart -----------------

/// Every kind of change, made through the gRPC API and read back after a
/// clean restart on the same directory: the records are equal field for
/// field, a deleted one keeps its deletedAt and stays unlisted, and Checks
/// that depend on the debt grouping, the person link, the deletion and a
/// stored answer decide exactly as before. The journal read back at the
/// start (the store not following it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_deletes_debts_and_links_survive_a_restart_exactly() {
    survive_restarts(false).await;
}

/// The same, the store following the journal: the clean stop writes the
/// index checkpoint, the start reads memory from it (and removes it), and
/// a third start, its checkpoint removed, rebuilds memory from the store;
/// both answer every read and Check exactly as before the first stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_survives_a_start_from_the_checkpoint_and_one_rebuilt_from_the_store() {
    survive_restarts(true).await;
}

/// A server on `data_dir` SERVING, the store following the journal or
/// not.
async fn start_following(data_dir: &Path, follows: bool) -> TestServer {
    let o = options().data_dir(data_dir).open().sync();
    let o = if follows { o } else { o.unfollowed() };
    o.compact_after(1_000_000).serving().await
}

/// Links `12345` and `crm-77`; returns the person the link names.
async fn link_crm_77(checks: &mut Checks) -> String {
    checks
        .link_person(LinkPersonRequest {
            person_id: "12345".into(),
            external_id: "crm-77".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .person_id
}

async fn survive_restarts(follows: bool) {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let server = start_following(data.path(), follows).await;
    let (mut checks, mut records) = clients(&server).await;

    // A person known by two names, with one account of two loans.
    assert_eq!(link_crm_77(&mut checks).await, "12345");
    checks
        .declare_debt(DeclareDebtRequest {
            person_id: "12345".into(),
            debt_id: "ACCT-1".into(),
            loan_ids: vec!["SL1".into(), "SL2".into()],
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for m in 0..4 {
        ids.push(
            create(&mut records, "12345", placed_call("SL1", 60 + m))
                .await
                .id,
        );
        ids.push(
            create(&mut records, "ext-crm-77", placed_call("SL2", 120 + m))
                .await
                .id,
        );
    }

    // A record with the JSON fields, then updated through a mask.
    let meta = Struct {
        fields: [("campaign".to_owned(), string("winter-2025"))].into(),
    };
    let rich = create(
        &mut records,
        "BO-RICH-0001",
        with_ext(
            Interaction {
                theme: Some("opsCollDebt".into()),
                meta_data: Some(meta),
                content: Some(string("Hello, this is Acme.")),
                contact: Some(Contact {
                    kind: "mobilePhone".into(),
                    value: "+15555550100".into(),
                    name: "Jo Borrower".into(),
                }),
                ..placed_call("R1", 30)
            },
            "dialer-rich",
        ),
    )
    .await;
    let updated = records
        .update_interaction(UpdateInteractionRequest {
            person_id: "BO-RICH-0001".into(),
            interaction_id: rich.id.clone(),
            interaction: Some(Interaction {
                status: "failed".into(),
                status_details: Some("voiceFailedToInitiate".into()),
                content: Some(string("never connected")),
                ..Interaction::default()
            }),
            update_mask: mask(&["status", "statusDetails", "content"]),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(updated.status, "failed");
    assert!(updated.updated_at.is_some());
    ids.push(rich.id.clone());

    // Seven calls for one person, one of them deleted: six count.
    let mut deleted_id = String::new();
    for m in 0..7 {
        let i = create(
            &mut records,
            "BO-DELT-0001",
            with_ext(placed_call("L1", 60 + m), &format!("del-{m}")),
        )
        .await;
        if m == 3 {
            deleted_id = i.id.clone();
        }
        ids.push(i.id);
    }
    let deleted = records
        .delete_interaction(DeleteInteractionRequest {
            person_id: "BO-DELT-0001".into(),
            interaction_id: "ext-del-3".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_eq!(deleted.id, deleted_id);
    assert!(deleted.deleted_at.is_some());

    // A reservation with a stored answer.
    let mut reserve = call("BO-RSRV-0001", "L1");
    reserve.reserve = true;
    reserve.request_id = "send-1".into();
    let reserved = check(&mut checks, reserve.clone()).await;
    assert!(reserved.allowed && !reserved.replayed);
    ids.push(reserved.interaction_id.clone());

    let proposals = [
        call("ext-crm-77", "SL1"),
        call("12345", "SL2"),
        call("12345", "CAR"),
        call("BO-DELT-0001", "L1"),
        call("BO-RICH-0001", "R1"),
    ];
    let mut before = Vec::new();
    for p in &proposals {
        before.push(check(&mut checks, p.clone()).await);
    }
    assert!(!before[0].allowed, "8 calls about one account, two names");
    assert_eq!(before[0].violations[0].debt, "ACCT-1");
    assert_eq!(before[0].violations[0].count, 8);
    assert!(!before[1].allowed);
    assert!(before[2].allowed);
    assert!(before[3].allowed, "the deleted call does not count");
    assert!(before[4].allowed);
    let mut stored = Vec::new();
    for id in &ids {
        stored.push(get(&mut records, id).await.unwrap());
    }
    let people = ["12345", "ext-crm-77", "BO-RICH-0001", "BO-DELT-0001"];
    let mut lists = Vec::new();
    for p in people {
        lists.push(list(&mut records, p).await);
    }
    assert_eq!(lists[3].total, 6);
    assert!(!lists[3].data.iter().any(|i| i.id == deleted_id));
    let open_before = reservation_ids(&mut checks).await;
    drop((checks, records));
    server.stop().await.unwrap();
    assert_eq!(
        checkpoint.exists(),
        follows,
        "a clean stop writes a checkpoint when the store follows"
    );

    // From the checkpoint (or the journal), then rebuilt from the store.
    for start in 0..(1 + usize::from(follows)) {
        let server = start_following(data.path(), follows).await;
        assert_eq!(
            checkpoint.exists(),
            follows,
            "start {start}: the start read it and kept it, or rebuilt and wrote one"
        );
        let (mut checks, mut records) = clients(&server).await;
        for (id, was) in ids.iter().zip(&stored) {
            assert_eq!(&get(&mut records, id).await.unwrap(), was, "{id}");
        }
        let gone = get(&mut records, &deleted_id).await.unwrap();
        assert_eq!(gone, deleted);
        assert_eq!(gone.deleted_at, deleted.deleted_at);
        assert_eq!(get(&mut records, &rich.id).await.unwrap(), updated);
        for (p, was) in people.iter().zip(&lists) {
            assert_eq!(&list(&mut records, p).await, was, "{p}");
        }
        for (p, was) in proposals.iter().zip(&before) {
            assert_eq!(&check(&mut checks, p.clone()).await, was, "{p:?}");
        }
        let again = check(&mut checks, reserve.clone()).await;
        assert!(again.replayed);
        assert_eq!(
            CheckResponse {
                replayed: false,
                ..again
            },
            reserved
        );
        assert_eq!(reservation_ids(&mut checks).await, open_before);
        // The link holds: the external id still names our person.
        assert_eq!(link_crm_77(&mut checks).await, "12345");
        drop((checks, records));
        server.stop().await.unwrap();
        if follows {
            assert!(
                checkpoint.exists(),
                "start {start}: its clean stop wrote one"
            );
            std::fs::remove_file(&checkpoint).unwrap();
        }
    }
}

// ---- 5. one server per data directory ---------------------------------------

/// A second server on a data directory in use is refused with Locked, and
/// the first goes on serving; once the first stops, the directory opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let first = start_ready(data.path(), 1_000_000).await;
    let (_, mut records) = clients(&first).await;
    let kept = create(&mut records, "BO-LOCK-0001", placed_call("L1", 60)).await;

    let second = start_on(data.path(), 1_000_000).await;
    let err = second.join().await.unwrap_err();
    let ServeError::Journal(JournalError::Locked(dir)) = &err else {
        panic!("not Locked: {err:?}")
    };
    assert_eq!(dir, data.path());
    assert_eq!(
        err.to_string(),
        format!(
            "the data directory `{}` is in use by another compliance-guard process (it holds `LOCK`); stop it first, or use another --data-dir",
            data.path().display()
        )
    );
    assert!(err.to_string().contains("is in use"), "{err}");
    let direct = open_once(data.path(), u64::MAX).unwrap_err();
    assert!(matches!(direct, JournalError::Locked(_)), "{direct:?}");

    // The first server is undisturbed.
    assert_eq!(get(&mut records, &kept.id).await.unwrap(), kept);
    let more = create(&mut records, "BO-LOCK-0001", placed_call("L1", 61)).await;
    drop(records);
    first.stop().await.unwrap();

    let third = start_ready(data.path(), 1_000_000).await;
    let (_, mut records) = clients(&third).await;
    assert_eq!(get(&mut records, &kept.id).await.unwrap(), kept);
    assert_eq!(get(&mut records, &more.id).await.unwrap(), more);
    drop(records);
    third.stop().await.unwrap();
}

// ---- 6. the journal materialized into the store -----------------------------

/// With `compact_after: 10`, a journal of 49 records (50 things: the
/// person and 49 interactions) is materialized at the next start into the
/// store, in the same transaction as the position it reaches, and the
/// journal rolls over: the store's position moves to the start of
/// generation 1, an empty `journal-00000001.log` is opened and the older
/// journal deleted; no snapshot is written. Every record is still there,
/// and a further start reads the store (its 50 things), then the new
/// journal, without materializing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_past_compact_after_is_materialized_into_the_store_at_start() {
    let data = tempfile::tempdir().unwrap();
    let server = start_ready(data.path(), 10).await;
    let (_, mut records) = clients(&server).await;
    let mut written = Vec::new();
    // One person record, then 49 interaction records: 50 in all.
    for m in 0..49 {
        written.push(
            create(
                &mut records,
                "BO-CMPC-0001",
                with_ext(placed_call("L1", 60 + m), &format!("c-{m}")),
            )
            .await,
        );
    }
    drop(records);
    server.stop().await.unwrap();
    assert_eq!(journal_files(data.path()), ["journal-00000000.log"]);
    // A new data directory: its store is empty, at the start of
    // generation 0, and everything is in the journal.
    assert_eq!(store_position(data.path()), Some(Position::default()));
    assert!(store_records(data.path()).is_empty());
    let journal = std::fs::read(data.path().join(FIRST_JOURNAL)).unwrap();
    // 49 operations, one frame each (the first batches the new person).
    assert_eq!(frames(&journal, 0).len(), 49);

    let server = start_ready(data.path(), 10).await;
    assert_eq!(journal_files(data.path()), ["journal-00000001.log"]);
    assert_eq!(
        store_position(data.path()),
        Some(Position {
            generation: 1,
            records: 0
        })
    );
    let in_store = store_records(data.path());
    assert_eq!(in_store.len(), 50, "one record per thing");
    assert_eq!(
        in_store
            .iter()
            .filter(|r| matches!(r.op, Some(Op::Interaction(_))))
            .count(),
        49
    );
    assert_eq!(
        in_store
            .iter()
            .filter(|r| matches!(r.op, Some(Op::Person(_))))
            .count(),
        1
    );
    let fresh = std::fs::read(data.path().join("journal/journal-00000001.log")).unwrap();
    assert!(
        frames(&fresh, 0).is_empty(),
        "the new journal holds a header only"
    );
    let (_, mut records) = clients(&server).await;
    for w in &written {
        assert_eq!(&get(&mut records, &w.id).await.unwrap(), w);
    }
    assert_eq!(list(&mut records, "BO-CMPC-0001").await.total, 49);
    // One more change goes into the new journal.
    let late = create(
        &mut records,
        "BO-CMPC-0001",
        with_ext(placed_call("L1", 200), "c-late"),
    )
    .await;
    drop(records);
    server.stop().await.unwrap();

    // A further start reads the store, then the journal after it, and
    // does not materialize again (1 record is not past 10).
    let (guard, replayed) = open_with(data.path(), 10).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: 50,
            journal_records: 1,
            cut: None,
            end: Position {
                generation: 1,
                records: 1
            },
        }
    );
    assert_eq!(guard.len(), 50);
    assert_eq!(guard.get(None, &late.id, &caller()).unwrap().id, late.id);
    for w in &written {
        assert_eq!(guard.get(None, &w.id, &caller()).unwrap().id, w.id);
    }
    drop(guard);
    assert_eq!(journal_files(data.path()), ["journal-00000001.log"]);
    assert_eq!(
        store_position(data.path()),
        Some(Position {
            generation: 1,
            records: 0
        }),
        "the store did not move"
    );
    assert_eq!(store_records(data.path()).len(), 50);

    let server = start_ready(data.path(), 10).await;
    let (_, mut records) = clients(&server).await;
    assert_eq!(get(&mut records, &late.id).await.unwrap(), late);
    assert_eq!(list(&mut records, "BO-CMPC-0001").await.total, 50);
    drop(records);
    server.stop().await.unwrap();
}

// ---- 6. the index checkpoint across crashes ---------------------------------

/// What a Check and a List of one borrower answer on the server at `addr`.
async fn answers(addr: SocketAddr) -> (CheckResponse, ListInteractionsResponse) {
    let channel = connect(addr).await;
    let mut records = interactions_on(channel.clone(), None);
    let mut checks = checks_on(channel, None);
    (
        check(&mut checks, call("BO-CKPT-0001", "L1")).await,
        list(&mut records, "BO-CKPT-0001").await,
    )
}

/// A start of the real binary on `data` that aborts at `step` of opening
/// (`COMPLIANCE_GUARD_TEST_ABORT_AT`), as `kill -9` would stop it there.
fn start_aborting_at(data: &Path, step: &str) {
    let out = crate::support::process::command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--data-dir",
        ])
        .arg(data)
        .env("COMPLIANCE_GUARD_TEST_ABORT_AT", step)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(6), "{step}: {out:?}");
}

/// Waits (up to 20 s) until a line of `server`'s log holds `what`; fails
/// the test with the log otherwise.
async fn wait_for_line(server: &ServeProcess, what: &str) {
    for _ in 0..200 {
        if server.log().iter().any(|l| l.contains(what)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no `{what}` in {:#?}", server.log());
}

/// True if the server's log says its memory was read from a checkpoint.
fn read_checkpoint(log: &[String]) -> bool {
    log.iter()
        .any(|l| l.contains("memory read from the index checkpoint"))
}

/// The real binary: a clean stop writes the index checkpoint, and the
/// next start reads it; a start that rebuilt memory writes one too,
/// before it serves, and a start after its `kill -9` reads that one and
/// replays the journal after it. A crash while a start or a stop writes
/// one (flushed, not yet renamed into place) leaves the one before (or
/// none), and a crash just after a start took it leaves none: each next
/// start removes what the crash left, and answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_the_checkpoint_leaves_a_start_that_answers_exactly() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let torn = data.path().join("index.checkpoint.tmp");
    let server = spawn_server_with(data.path(), &[]);
    let addr = server.addr();
    server.wait_serving(addr).await;
    let channel = connect(addr).await;
    let mut records = interactions_on(channel, None);
    for m in 0..7 {
        create(&mut records, "BO-CKPT-0001", placed_call("L1", 60 + m)).await;
    }
    drop(records);
    let before = answers(addr).await;
    assert!(!before.0.allowed, "seven calls: {:?}", before.0);
    assert_eq!(before.1.total, 7);
    let log = server.terminate().await;
    assert!(
        log.iter().any(|l| l.contains("index checkpoint written:")),
        "{log:#?}"
    );
    assert!(checkpoint.exists());

    // A crash just after the start took it (removed, not yet read).
    start_aborting_at(data.path(), "checkpoint-taken");
    assert!(!checkpoint.exists(), "taken before the crash");

    // The next start rebuilds, and crashes once the checkpoint it writes
    // before serving is flushed, before it is renamed into place.
    start_aborting_at(data.path(), "start-checkpoint-flushed");
    assert!(torn.exists() && !checkpoint.exists());

    // Rebuilt again, the torn file removed, and a checkpoint written
    // before it serves; then writes after it, and `kill -9`.
    let metrics = ["--metrics-listen", "127.0.0.1:0"];
    let from_checkpoint = |server: &ServeProcess| {
        let body = crate::support::process::scrape(server.metrics_addr());
        crate::support::process::sample(&body, "compliance_guard_start_from_checkpoint", &[])
    };
    let server = spawn_server_with(data.path(), &metrics);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(!read_checkpoint(&server.log()));
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("index checkpoint written at the start")),
        "{:#?}",
        server.log()
    );
    assert_eq!(from_checkpoint(&server), Some(0.0));
    assert!(!torn.exists() && checkpoint.exists());
    assert_eq!(answers(addr).await, before);
    let mut records = interactions_on(connect(addr).await, None);
    for m in 0..3 {
        create(&mut records, "BO-CKPT-0001", placed_call("L2", 30 + m)).await;
    }
    drop(records);
    let after = answers(addr).await;
    assert_eq!(after.1.total, 10);
    server.kill_9();
    assert!(checkpoint.exists());

    // The start's checkpoint is behind the store now, and the journal
    // after it is kept: memory is the checkpoint with the journal
    // replayed. Its stop crashes while it writes the next one.
    let server = serve_on(data.path(), &metrics)
        .env("COMPLIANCE_GUARD_TEST_ABORT_AT", "stop-checkpoint-flushed")
        .spawn();
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(read_checkpoint(&server.log()), "{:#?}", server.log());
    assert_eq!(from_checkpoint(&server), Some(1.0));
    assert_eq!(answers(addr).await, after);
    server.terminate_aborting().await;
    assert!(torn.exists() && checkpoint.exists());

    // The same checkpoint is read again, the torn file removed; a clean
    // stop writes the next.
    let server = spawn_server_with(data.path(), &metrics);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(read_checkpoint(&server.log()), "{:#?}", server.log());
    assert!(!torn.exists());
    assert_eq!(answers(addr).await, after);
    server.terminate().await;
    assert!(checkpoint.exists());

    // Read at the store's very position.
    let server = spawn_server_with(data.path(), &metrics);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(read_checkpoint(&server.log()), "{:#?}", server.log());
    assert_eq!(from_checkpoint(&server), Some(1.0));
    assert_eq!(answers(addr).await, after);
    server.terminate().await;
    // And a start that rebuilds answers the same.
    std::fs::remove_file(&checkpoint).unwrap();
    let server = spawn_server_with(data.path(), &metrics);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert_eq!(from_checkpoint(&server), Some(0.0));
    assert_eq!(answers(addr).await, after);
    server.terminate().await;
}

/// The real binary, its journal rolling every two records: while it
/// serves, the checkpoint is built again from the store once the journal
/// after it filled a generation. After writes past it and `kill -9`, the
/// next start reads that checkpoint, replays the journal after it, and
/// answers as before; so does a start that rebuilds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_after_kill_9_replays_onto_the_checkpoint_built_while_serving() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let rolling = ["--compact-after", "2"];
    let server = spawn_server_with(data.path(), &rolling);
    let addr = server.addr();
    server.wait_serving(addr).await;
    let mut records = interactions_on(connect(addr).await, None);
    for m in 0..7 {
        create(&mut records, "BO-CKPT-0001", placed_call("L1", 60 + m)).await;
    }
    wait_for_line(&server, "index checkpoint written while serving").await;
    // Where the last one was made, as its log line says.
    let made_at = |log: &[String], message: &str| {
        log.iter()
            .rev()
            .find(|l| l.contains(message))
            .and_then(|l| l.split("made_at=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    // One more: the journal after the checkpoint holds it.
    create(&mut records, "BO-CKPT-0001", placed_call("L2", 30)).await;
    drop(records);
    let before = answers(addr).await;
    assert!(!before.0.allowed, "eight calls: {:?}", before.0);
    assert_eq!(before.1.total, 8);
    let written = made_at(&server.log(), "index checkpoint written while serving");
    server.kill_9();
    assert!(checkpoint.exists());

    let server = spawn_server_with(data.path(), &rolling);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(read_checkpoint(&server.log()), "{:#?}", server.log());
    let read = made_at(&server.log(), "memory read from the index checkpoint");
    assert!(written.is_some());
    assert_eq!(read, written, "the last checkpoint built while serving");
    assert_eq!(answers(addr).await, before);
    server.terminate().await;
    std::fs::remove_file(&checkpoint).unwrap();
    let server = spawn_server_with(data.path(), &rolling);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(!read_checkpoint(&server.log()));
    assert_eq!(answers(addr).await, before);
    server.terminate().await;
}

/// The real binary, its journal rolling every two records, with the
/// build of a checkpoint while serving held before it writes
/// (`COMPLIANCE_GUARD_TEST_HOLD_AT`), as a build slower than the writes
/// would be. Once the journal rolled more than two generations past the
/// build's position, the build is abandoned: logged and counted as a
/// failure, no temporary file left, and the journal it kept let go (the
/// checkpoint in place, now too far behind, is removed and the journals
/// the store holds are deleted). The start after `kill -9` rebuilds and
/// answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_the_journal_outpaces_is_abandoned_and_lets_its_journal_go() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let torn = data.path().join("index.checkpoint.tmp");
    let args = ["--compact-after", "2", "--metrics-listen", "127.0.0.1:0"];
    let server = serve_on(data.path(), &args)
        .env("COMPLIANCE_GUARD_TEST_HOLD_AT", "serving-checkpoint-read")
        .spawn();
    let addr = server.addr();
    server.wait_serving(addr).await;
    let mut records = interactions_on(connect(addr).await, None);
    for m in 0..3 {
        create(&mut records, "BO-CKPT-0001", placed_call("L1", 60 + m)).await;
    }
    wait_for_line(
        &server,
        "building the index checkpoint from the store while serving",
    )
    .await;
    // Three generations more while it is held: more than it may fall behind.
    for m in 0..7 {
        create(&mut records, "BO-CKPT-0001", placed_call("L2", 30 + m)).await;
    }
    wait_for_line(&server, "the index checkpoint could not be moved forward").await;
    let log = server.log();
    let failed = log
        .iter()
        .find(|l| l.contains("the index checkpoint could not be moved forward"))
        .unwrap();
    assert!(failed.contains("abandoned: the journal rolled"), "{failed}");
    assert!(
        !log.iter()
            .any(|l| l.contains("index checkpoint written while serving")),
        "{log:#?}"
    );
    let body = crate::support::process::scrape(server.metrics_addr());
    let sample =
        |name: &str, labels: &[(&str, &str)]| crate::support::process::sample(&body, name, labels);
    assert_eq!(
        sample("compliance_guard_checkpoint_failures_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample("compliance_guard_checkpoints_total", &[("when", "serving")]),
        None
    );
    assert!(!torn.exists(), "the abandoned build's file is removed");
    // Its journal let go: at the next roll the checkpoint, too far
    // behind, is removed, and the journals the store holds are deleted.
    for m in 0..2 {
        create(&mut records, "BO-CKPT-0001", placed_call("L2", 40 + m)).await;
    }
    wait_for_line(
        &server,
        "the journal after it grew past what a start after a crash replays",
    )
    .await;
    for _ in 0..100 {
        if journal_files(data.path()).len() <= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!checkpoint.exists());
    assert!(
        journal_files(data.path()).len() <= 2,
        "{:?}",
        journal_files(data.path())
    );
    drop(records);
    let before = answers(addr).await;
    assert_eq!(before.1.total, 12);
    server.kill_9();

    let server = spawn_server_with(data.path(), &args);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(!read_checkpoint(&server.log()), "{:#?}", server.log());
    assert_eq!(answers(addr).await, before);
    server.terminate().await;
}

/// The real binary, its journal failing one write
/// (`COMPLIANCE_GUARD_TEST_FAIL_WRITE_WITH`, as a full disk would): the
/// write that failed is an update that would take a counted call out of
/// the count, and memory may hold it though the journal does not. From
/// then on no write is acknowledged and no Check is answered; the clean
/// stop writes no index checkpoint and removes the start's, so that the
/// next start rebuilds from the store and counts the call again, exactly
/// as before the failure. A checkpoint of memory would have under-counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_after_a_journal_write_failed_leaves_no_checkpoint_to_under_count() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let marker = "the write that fails";
    let server = serve_on(data.path(), &[])
        .env("COMPLIANCE_GUARD_TEST_FAIL_WRITE_WITH", marker)
        .spawn();
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(checkpoint.exists(), "the start that rebuilt wrote one");
    let mut records = interactions_on(connect(addr).await, None);
    let mut calls = Vec::new();
    for m in 0..7 {
        calls.push(create(&mut records, "BO-CKPT-0001", placed_call("L1", 60 + m)).await);
    }
    let before = answers(addr).await;
    assert!(!before.0.allowed, "seven calls: {:?}", before.0);
    let counted = |r: &CheckResponse| -> BTreeSet<String> {
        r.violations
            .iter()
            .flat_map(|v| v.counted_interaction_ids.iter().cloned())
            .collect()
    };
    assert!(counted(&before.0).contains(&calls[0].id), "{:?}", before.0);

    // The call that never connected would not count.
    let failed = records
        .update_interaction(UpdateInteractionRequest {
            person_id: "BO-CKPT-0001".into(),
            interaction_id: calls[0].id.clone(),
            interaction: Some(Interaction {
                status: "failed".into(),
                status_details: Some("voiceFailedToInitiate".into()),
                content: Some(string(marker)),
                ..Interaction::default()
            }),
            update_mask: mask(&["status", "statusDetails", "content"]),
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
    let mut checks = checks_on(connect(addr).await, None);
    let refused = checks.check(call("BO-CKPT-0001", "L1")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("the journal failed"),
        "{refused:?}"
    );
    let refused = records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: "BO-CKPT-0001".into(),
            interaction: Some(placed_call("L1", 10)),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    drop((records, checks));

    let log = server.terminate().await;
    assert!(
        log.iter().any(|l| l.contains(
            "no index checkpoint is written: a journal write failed, or the store stopped following the journal"
        )),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("index checkpoint written:")),
        "{log:#?}"
    );
    assert!(!checkpoint.exists(), "the start's checkpoint was removed");

    let server = spawn_server_with(data.path(), &[]);
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(!read_checkpoint(&server.log()), "{:#?}", server.log());
    assert_eq!(answers(addr).await, before);
    let mut records = interactions_on(connect(addr).await, None);
    assert_eq!(get(&mut records, &calls[0].id).await.unwrap(), calls[0]);
    drop(records);
    server.terminate().await;
}

/// The real binary with no checkpoint built while serving
/// (`--no-checkpoint-while-serving`), its journal rolling every two
/// records. A start after `kill -9` that replayed more than a generation
/// onto its checkpoint writes a new one before it serves (the next crash
/// would replay more); and a journal past a generation after the
/// checkpoint makes the server remove it, so the start after `kill -9`
/// rebuilds. Each start answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_build_while_serving_the_journal_a_crash_start_replays_stays_bounded() {
    let data = tempfile::tempdir().unwrap();
    let checkpoint = data.path().join("index.checkpoint");
    let start = || {
        serve_on(
            data.path(),
            &["--compact-after", "2", "--no-checkpoint-while-serving"],
        )
        .spawn()
    };
    let wrote_at_start = |log: &[String]| {
        log.iter()
            .any(|l| l.contains("index checkpoint written at the start"))
    };
    let server = start();
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(wrote_at_start(&server.log()), "a new directory's start");
    let mut records = interactions_on(connect(addr).await, None);
    for m in 0..3 {
        create(&mut records, "BO-CKPT-0001", placed_call("L1", 60 + m)).await;
    }
    drop(records);
    let before = answers(addr).await;
    server.kill_9();
    assert!(checkpoint.exists());

    // Three records replayed onto it, more than a generation of two.
    let server = start();
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(read_checkpoint(&server.log()), "{:#?}", server.log());
    assert!(wrote_at_start(&server.log()), "{:#?}", server.log());
    assert_eq!(answers(addr).await, before);
    // Past a generation after that one, and no build: it is removed.
    let mut records = interactions_on(connect(addr).await, None);
    for m in 0..4 {
        create(&mut records, "BO-CKPT-0001", placed_call("L1", 63 + m)).await;
    }
    drop(records);
    wait_for_line(
        &server,
        "the journal after it grew past what a start after a crash replays",
    )
    .await;
    assert!(!checkpoint.exists());
    let after = answers(addr).await;
    assert_eq!(after.1.total, 7);
    server.kill_9();

    let server = start();
    let addr = server.addr();
    server.wait_serving(addr).await;
    assert!(!read_checkpoint(&server.log()), "{:#?}", server.log());
    assert_eq!(answers(addr).await, after);
    server.terminate().await;
}
