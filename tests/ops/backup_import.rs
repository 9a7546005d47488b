//! Backup, restore and import, end to end: a backup taken while writers
//! run loses nothing acknowledged before it began; restore refuses a
//! non-empty directory and a damaged file; import (from a file or stdin,
//! as the operator runs it) keeps the good lines, reports the bad ones by
//! line, is idempotent, and what it imports counts in a Check.
//!
//! Servers run in-process on data directories the tests own (open access,
//! `Durability::Sync`, no compaction); the commands run as subprocesses.

use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::{Durability, JournalError, Layout};
use compliance_guard::ops::{self, OpsError};
use compliance_guard::pb::{
    CheckRequest, Contact, CreateInteractionRequest, GetInteractionRequest, Interaction,
    ListInteractionsRequest, ListReservationsRequest,
};
use prost_types::{Struct, Timestamp, Value, value::Kind};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::consts::{MONDAY_10, P};
use crate::support::process::{run, run_with_input, stderr, stdout};
use crate::support::server::{
    Checks, Interactions, TestServer, checks_on, interactions_on, options,
};

// ---- harness ---------------------------------------------------------------

/// A server in this process on `data_dir`, with open access and `Sync`
/// durability, SERVING.
async fn start(data_dir: &Path) -> TestServer {
    options().data_dir(data_dir).open().sync().serving().await
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

/// An RFC 3339 time as a protobuf timestamp.
fn ts_of(text: &str) -> Option<Timestamp> {
    let t: DateTime<Utc> = text.parse().unwrap();
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap(),
    })
}

fn ts_key(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.expect("a timestamp");
    (t.seconds, t.nanos)
}

pub(crate) fn now_key() -> (i64, i32) {
    let t = Utc::now();
    (
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap(),
    )
}

async fn get(records: &mut Interactions, id: &str) -> Result<Interaction, tonic::Status> {
    let r = records
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: id.into(),
            person_id: String::new(),
        })
        .await?
        .into_inner();
    Ok(r.interaction.unwrap())
}

/// Every interaction the server holds, by id, paging through the list.
pub(crate) async fn list_all(records: &mut Interactions) -> BTreeMap<String, Interaction> {
    let mut all = BTreeMap::new();
    let mut total = None;
    for page in 0..10_000u32 {
        let r = records
            .list_interactions(ListInteractionsRequest {
                limit: 100,
                offset: page * 100,
                sort_by: vec!["+id".into()],
                ..ListInteractionsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        total = Some(r.total as usize);
        let n = r.data.len();
        for i in r.data {
            let id = i.id.clone();
            assert!(all.insert(id.clone(), i).is_none(), "{id} listed twice");
        }
        if n < 100 {
            break;
        }
    }
    assert_eq!(Some(all.len()), total, "the list's total");
    all
}

/// The ids of the open reservations.
async fn reservations(checks: &mut Checks) -> BTreeSet<String> {
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

// ---- backup under load, then restore ---------------------------------------

const WRITERS: usize = 4;
/// Each writer stops after this many writes at the latest.
const MAX_WRITES: usize = 20_000;
/// Acknowledged writes to wait for before each backup and after the last.
const STEP: u64 = 40;
const BACKUPS: u64 = 3;

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    /// Its place among the writer's writes.
    write: usize,
    /// The interaction as CreateInteraction returned it (None: a reserve).
    created: Option<Interaction>,
    /// How many backups had finished when the write was sent: it cannot be
    /// in those.
    finished_before_sent: u64,
    /// How many backups had started when the write was acknowledged: it
    /// must be in every later one.
    started_at_ack: u64,
}

fn person_of(w: usize) -> String {
    format!("BO-WRT{w}-0001")
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn number_value(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// An email the writer `w` records as its `i`-th write.
fn email(w: usize, i: usize) -> Interaction {
    let mut meta = BTreeMap::new();
    meta.insert("writer".to_owned(), number_value(w as f64));
    meta.insert("write".to_owned(), number_value(i as f64));
    meta.insert("note".to_owned(), string_value(&format!("w{w} i{i} ✓")));
    Interaction {
        external_id: Some(format!("w{w}-e{i}")),
        channel: "email".into(),
        direction: "outbound".into(),
        status: "attempted".into(),
        status_details: Some("emailSent".into()),
        subject: Some("paymentDueDateReminder".into()),
        loan_id: Some(format!("LN-{w}")),
        started_at: ts(MONDAY_10 - 86_400 + i as i64),
        contact: Some(Contact {
            kind: "email".into(),
            value: format!("borrower{w}@example.com"),
            name: "Borrower".into(),
        }),
        meta_data: Some(Struct { fields: meta }),
        content: Some(string_value(&format!("body {w}/{i}"))),
        ..Interaction::default()
    }
}

/// A reserving Check for a call about a loan of its own (so it is allowed).
fn reserve(w: usize, i: usize) -> CheckRequest {
    CheckRequest {
        person_id: person_of(w),
        channel: "voice".into(),
        direction: "outbound".into(),
        loan_ids: vec![format!("LN-{w}-{i}")],
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
        at: ts(MONDAY_10),
        reserve: true,
        request_id: format!("w{w}-r{i}"),
        ..CheckRequest::default()
    }
}

struct Phases {
    started: AtomicU64,
    finished: AtomicU64,
    stop: AtomicBool,
}

/// Writes until told to stop: even writes create an email, odd ones reserve
/// a call. Returns every write, acknowledged, in order.
async fn writer(
    server_channel: Channel,
    w: usize,
    phases: Arc<Phases>,
    progress: Arc<watch::Sender<u64>>,
) -> Vec<Ack> {
    let mut records = interactions_on(server_channel.clone(), None);
    let mut checks = checks_on(server_channel, None);
    let mut acks = Vec::new();
    for i in 0..MAX_WRITES {
        if phases.stop.load(Ordering::SeqCst) {
            break;
        }
        let finished_before_sent = phases.finished.load(Ordering::SeqCst);
        let (id, created) = if i % 2 == 0 {
            let r = records
                .create_interaction(CreateInteractionRequest {
                    searchable: false,
                    person_id: person_of(w),
                    interaction: Some(email(w, i)),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(r.created, "w{w} i{i}");
            let stored = r.interaction.unwrap();
            (stored.id.clone(), Some(stored))
        } else {
            let r = checks.check(reserve(w, i)).await.unwrap().into_inner();
            assert!(r.allowed, "w{w} i{i}: {r:?}");
            assert!(r.interaction_id.starts_with("IT-"), "{r:?}");
            (r.interaction_id, None)
        };
        let started_at_ack = phases.started.load(Ordering::SeqCst);
        acks.push(Ack {
            id,
            write: i,
            created,
            finished_before_sent,
            started_at_ack,
        });
        progress.send_modify(|n| *n += 1);
    }
    acks
}

/// The start of the record holding byte `at` of a journal-format file.
fn record_start_holding(bytes: &[u8], at: usize) -> u64 {
    let mut offset = 8;
    loop {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        let end = offset + 8 + len;
        if at < end {
            return offset as u64;
        }
        offset = end;
    }
}

/// What a restored directory holds, checked against the original.
async fn check_restored(
    dir: &Path,
    k: u64,
    writers: &[Vec<Ack>],
    original: &BTreeMap<String, Interaction>,
    original_reservations: &BTreeSet<String>,
) {
    let server = start(dir).await;
    let mut records = server.interactions().await;
    let restored = list_all(&mut records).await;
    // Nothing in the restore that the original does not hold, as it is.
    for (id, i) in &restored {
        assert_eq!(original.get(id), Some(i), "backup {k}: {id}");
    }
    let mut required = 0;
    let mut excluded = 0;
    for (w, acks) in writers.iter().enumerate() {
        let mut present = Vec::new();
        for a in acks {
            match get(&mut records, &a.id).await {
                Ok(i) => {
                    assert_eq!(Some(&i), original.get(&a.id), "backup {k}: {}", a.id);
                    if let Some(created) = &a.created {
                        assert_eq!(&i, created, "backup {k}: {}", a.id);
                    }
                    assert!(restored.contains_key(&a.id));
                    present.push(true);
                }
                Err(e) => {
                    assert_eq!(e.code(), Code::NotFound, "backup {k}: {}: {e:?}", a.id);
                    assert!(!restored.contains_key(&a.id));
                    present.push(false);
                }
            }
            if a.started_at_ack < k {
                required += 1;
                assert!(
                    present.last() == Some(&true),
                    "backup {k}: {} was acknowledged before the backup began but is missing",
                    a.id
                );
            }
            if a.finished_before_sent >= k {
                excluded += 1;
                assert!(
                    present.last() == Some(&false),
                    "backup {k}: {} was sent after the backup ended but is in it",
                    a.id
                );
            }
        }
        // A consistent copy: each writer's writes are a prefix.
        let kept = present.iter().take_while(|p| **p).count();
        assert!(
            present[kept..].iter().all(|p| !*p),
            "backup {k}: writer {w} has a gap: {present:?}"
        );
    }
    assert!(
        required > 0 && excluded > 0,
        "backup {k}: {required} {excluded}"
    );
    // Every record the restore holds is one of the writers'.
    let written: usize = writers
        .iter()
        .flatten()
        .filter(|a| restored.contains_key(&a.id))
        .count();
    assert_eq!(restored.len(), written, "backup {k}");
    // The open reservations are the original's that the backup holds.
    let mut checks = server.checks().await;
    let expected: BTreeSet<String> = original_reservations
        .iter()
        .filter(|id| restored.contains_key(*id))
        .cloned()
        .collect();
    assert_eq!(reservations(&mut checks).await, expected, "backup {k}");
    // The stored answers came along: a retry of a reserve acknowledged
    // before the backup began gets its first answer, and no second slot.
    let mut retried = 0;
    for (w, acks) in writers.iter().enumerate() {
        for a in acks
            .iter()
            .filter(|a| a.created.is_none() && a.started_at_ack < k)
        {
            let r = checks
                .check(reserve(w, a.write))
                .await
                .unwrap()
                .into_inner();
            assert!(r.allowed && r.replayed, "backup {k}: {}: {r:?}", a.id);
            assert_eq!(r.interaction_id, a.id, "backup {k}");
            retried += 1;
        }
    }
    assert!(retried > 0, "backup {k}");
    assert_eq!(reservations(&mut checks).await, expected, "backup {k}");
    assert_eq!(list_all(&mut records).await, restored, "backup {k}");
    drop((records, checks));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_holds_every_write_acknowledged_before_it_began() {
    backup_under_load(u64::MAX).await;
}

/// The same with the journal rolling every 5 records: the store, following
/// it, deletes the journals it holds while the backups read, and each
/// backup still holds every write acknowledged before it began (it opened
/// the journals before it read the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_beside_a_journal_rolling_under_load_holds_every_write() {
    backup_under_load(5).await;
}

async fn backup_under_load(compact_after: u64) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = options()
        .data_dir(&data)
        .open()
        .sync()
        .compact_after(compact_after)
        .serving()
        .await;
    let channel = server.channel().await;
    let phases = Arc::new(Phases {
        started: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let (progress, mut acked) = watch::channel(0u64);
    let progress = Arc::new(progress);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                channel.clone(),
                w,
                Arc::clone(&phases),
                Arc::clone(&progress),
            ))
        })
        .collect();
    // Only the writers hold the sender: if they all end, waiting fails.
    drop(progress);

    let mut backups: Vec<(PathBuf, u64)> = Vec::new();
    let mut target = STEP;
    for k in 1..=BACKUPS {
        acked.wait_for(|n| *n >= target).await.unwrap();
        let file = root.path().join(format!("backup-{k}.cgb"));
        phases.started.store(k, Ordering::SeqCst);
        let records = if k == 2 {
            // The command, as an operator runs it next to the server.
            let (d, f) = (data.clone(), file.clone());
            let o = tokio::task::spawn_blocking(move || {
                run(&["backup", "--data-dir", path_str(&d), "--to", path_str(&f)])
            })
            .await
            .unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let out = stdout(&o);
            let bytes = std::fs::metadata(&file).unwrap().len();
            let n: u64 = out
                .strip_prefix("backed up ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{out}"));
            assert_eq!(
                out,
                format!(
                    "backed up {n} records ({bytes} bytes) to {}\n",
                    file.display()
                )
            );
            n
        } else {
            let (d, f) = (data.clone(), file.clone());
            let report = tokio::task::spawn_blocking(move || ops::backup(&d, &f))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(report.bytes, std::fs::metadata(&file).unwrap().len());
            report.records
        };
        phases.finished.store(k, Ordering::SeqCst);
        backups.push((file, records));
        target = *acked.borrow() + STEP;
    }
    // Writes sent after the last backup ended, then stop.
    acked.wait_for(|n| *n >= target).await.unwrap();
    phases.stop.store(true, Ordering::SeqCst);
    let mut writers = Vec::new();
    for t in tasks {
        writers.push(t.await.unwrap());
    }
    let total: usize = writers.iter().map(Vec::len).sum();

    // The original, now quiet: every acknowledged write, as acknowledged.
    let mut records = server.interactions().await;
    let original = list_all(&mut records).await;
    assert_eq!(original.len(), total);
    for a in writers.iter().flatten() {
        let stored = get(&mut records, &a.id).await.unwrap();
        assert_eq!(Some(&stored), original.get(&a.id));
        if let Some(created) = &a.created {
            assert_eq!(&stored, created);
        }
    }
    let mut checks = server.checks().await;
    let original_reservations = reservations(&mut checks).await;
    let reserved: BTreeSet<String> = writers
        .iter()
        .flatten()
        .filter(|a| a.created.is_none())
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(original_reservations, reserved);

    // Restoring into the directory a server holds is refused.
    let err = ops::restore(&backups[0].0, &data).unwrap_err();
    assert!(
        matches!(err, OpsError::Journal(JournalError::Locked(ref p)) if p == &data),
        "{err}"
    );
    drop((records, checks));
    server.stop().await.unwrap();

    for (k, (file, records)) in (1..).zip(&backups) {
        let dir = root.path().join(format!("restored-{k}"));
        let restored = if k == 2 {
            let o = run(&[
                "restore",
                "--from",
                path_str(file),
                "--data-dir",
                path_str(&dir),
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            assert_eq!(
                stdout(&o),
                format!(
                    "restored {records} records into {d}; start the server with --data-dir {d}\n",
                    d = dir.display()
                )
            );
            *records
        } else {
            ops::restore(file, &dir).unwrap().records
        };
        assert_eq!(restored, *records, "backup {k}");
        check_restored(&dir, k, &writers, &original, &original_reservations).await;
    }

    // Restore into a directory that holds a journal is refused, and changes
    // nothing there.
    let (last, _) = backups.last().unwrap();
    let journal_dir = data.join("journal");
    let before: Vec<_> = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = ops::restore(last, &data).unwrap_err();
    assert!(
        matches!(err, OpsError::NotEmpty(ref p) if p == &data),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` already holds a journal; restore into an empty data directory",
            data.display()
        )
    );
    let after: Vec<_> = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    let restored_1 = root.path().join("restored-1");
    let o = run(&[
        "restore",
        "--from",
        path_str(last),
        "--data-dir",
        path_str(&restored_1),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "error: `{}` already holds a journal; restore into an empty data directory\n",
            restored_1.display()
        )
    );

    // A backup with a byte flipped in the middle is refused, naming the
    // file and the offset of the damaged record; nothing is restored.
    let damaged = root.path().join("damaged.cgb");
    let mut bytes = std::fs::read(last).unwrap();
    let middle = bytes.len() / 2;
    let offset = record_start_holding(&bytes, middle);
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let empty = root.path().join("empty");
    let err = ops::restore(&damaged, &empty).unwrap_err();
    match &err {
        OpsError::Journal(JournalError::Corrupt {
            path, offset: at, ..
        }) => {
            assert_eq!(path, &damaged);
            assert_eq!(*at, offset);
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "`{}` is damaged at byte offset {offset}: ",
            damaged.display()
        )),
        "{message}"
    );
    let layout = Layout { dir: empty.clone() };
    assert_eq!(layout.generations().unwrap(), (vec![], vec![]));
    let o = run(&[
        "restore",
        "--from",
        path_str(&damaged),
        "--data-dir",
        path_str(&empty),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), format!("error: {message}\n"));
    assert_eq!(layout.generations().unwrap(), (vec![], vec![]));
    // The directory is still empty, so the good backup goes in.
    assert_eq!(ops::restore(last, &empty).unwrap().records, backups[2].1);
}

// ---- import ----------------------------------------------------------------

/// Sat 2026-11-21 10:00 EST: the Check after the imported calls.
const CHECK_AT: &str = "2026-11-21T15:00:00Z";

/// An unanswered outbound call about LN-1, as an upstream JSON object.
fn call_line(extra: &str, started: &str) -> String {
    format!(
        r#"{{{extra}"personId":"{P}","channel":"voice","direction":"outbound","status":"attempted","statusDetails":"voiceRangNoPickup","loanId":"LN-1","startedAt":"{started}"}}"#
    )
}

/// 16 lines: 8 good (7 calls about LN-1 and an email of another borrower),
/// 5 bad, 3 blank.
pub(crate) fn import_file() -> String {
    [
        // 1
        call_line(
            r#""id":"IT-IMPT-0001","createdAt":"2026-11-15T14:05:00Z","createdBy":"crm-export","#,
            "2026-11-15T14:00:00Z",
        ),
        // 2
        call_line(r#""externalId":"crm-2","#, "2026-11-16T15:00:00Z"),
        // 3: an unknown channel
        format!(
            r#"{{"externalId":"crm-bad-3","personId":"{P}","channel":"pigeon","direction":"outbound","status":"attempted"}}"#
        ),
        // 4
        String::new(),
        // 5: a field the Interaction format does not have
        call_line(
            r#""externalId":"crm-3","companyId":"CO-ACME-0001","#,
            "2026-11-17T15:00:00Z",
        ),
        // 6: statusDetails for another status
        format!(
            r#"{{"externalId":"crm-bad-6","personId":"{P}","channel":"email","direction":"outbound","status":"attempted","statusDetails":"emailDelivered"}}"#
        ),
        // 7
        call_line(r#""id":"IT-IMPT-0004","#, "2026-11-18T15:00:00Z"),
        // 8
        "   ".into(),
        // 9: not JSON
        format!(r#"{{"personId":"{P}","channel":"#),
        // 10: a date without a time
        call_line(r#""externalId":"crm-5","#, "2026-11-20"),
        // 11: not an object
        "[1, 2, 3]".into(),
        // 12
        call_line(
            r#""id":"IT-IMPT-0006","externalId":"crm-6","#,
            "2026-11-21T13:00:00Z",
        ),
        // 13: no personId
        r#"{"externalId":"crm-bad-13","channel":"voice","direction":"outbound","status":"attempted"}"#.into(),
        // 14
        call_line(
            r#""externalId":"crm-7","createdBy":"agent-42","createdAt":"2026-11-21T14:10:00Z","#,
            "2026-11-21T14:00:00Z",
        ),
        // 15: another borrower, named by their external id
        r#"{"externalId":"crm-8","personId":"ext-legacy-9","channel":"email","direction":"outbound","status":"succeeded","statusDetails":"emailDelivered","subject":"paymentDueDateReminder","startedAt":"2026-10-01T12:00:00Z"}"#.into(),
        // 16
        String::new(),
    ]
    .join("\n")
        + "\n"
}

pub(crate) const GOOD: usize = 8;
pub(crate) const LINES: usize = 13;
pub(crate) const BAD: usize = 5;

/// What import reports on stderr for the file, named `name`.
pub(crate) fn expected_stderr(name: &str) -> String {
    format!(
        "{name}:3: `channel` value `pigeon` is not allowed; allowed: voice, email, fax, text, chat, mail, gui, document\n\
         {name}:6: `statusDetails` `emailDelivered` requires `status` `succeeded`, not `attempted`\n\
         {name}:9: not JSON: EOF while parsing a value at line 1 column 37\n\
         {name}:11: not a JSON object\n\
         {name}:13: `personId` is required\n\
         import: ignored the field `companyId` (not in the Interaction format) on 1 line(s)\n"
    )
}

/// Everything in the journal directory, by name.
fn journal_files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(data.join("journal"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Runs an import twice: the first records the good lines, the second
/// changes nothing. Returns the span of time the first one ran in.
fn import_twice(
    data: &Path,
    args_tail: &[&str],
    input: Option<&str>,
    name: &str,
) -> ((i64, i32), (i64, i32)) {
    let mut args = vec!["import", "--data-dir", path_str(data)];
    args.extend_from_slice(args_tail);
    let run_it = || match input {
        Some(text) => run_with_input(&args, text),
        None => run(&args),
    };
    let before = now_key();
    let o = run_it();
    let after = now_key();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), expected_stderr(name));
    assert_eq!(
        stdout(&o),
        format!("imported {GOOD} of {LINES} lines; 0 already present; {BAD} refused\n")
    );
    let files = journal_files(data);
    let o = run_it();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), expected_stderr(name));
    assert_eq!(
        stdout(&o),
        format!("imported 0 of {LINES} lines; {GOOD} already present; {BAD} refused\n")
    );
    assert_eq!(
        journal_files(data),
        files,
        "the second import wrote nothing"
    );
    (before, after)
}

/// Starts a server on an imported directory and checks what it holds.
async fn check_imported(data: &Path, by: &str, span: ((i64, i32), (i64, i32))) {
    let server = start(data).await;
    let mut records = server.interactions().await;
    let mut checks = server.checks().await;
    assert_imported(&mut records, &mut checks, by, span).await;
    drop((records, checks));
    server.stop().await.unwrap();
}

/// Checks what a server holds after [`import_file`] was imported (by
/// `by`, within `span`): every good line, as given, and the calls
/// counted by the next Check.
pub(crate) async fn assert_imported(
    records: &mut Interactions,
    checks: &mut Checks,
    by: &str,
    span: ((i64, i32), (i64, i32)),
) {
    let all = list_all(records).await;
    assert_eq!(all.len(), GOOD);
    let created_now = |i: &Interaction| {
        let at = ts_key(&i.created_at);
        assert!(span.0 <= at && at <= span.1, "{i:?}");
    };

    let first = get(records, "IT-IMPT-0001").await.unwrap();
    assert_eq!(first.id, "IT-IMPT-0001");
    assert_eq!(first.external_id, None);
    assert_eq!(first.person_id, P);
    assert_eq!(first.channel, "voice");
    assert_eq!(first.direction, "outbound");
    assert_eq!(first.status, "attempted");
    assert_eq!(first.status_details.as_deref(), Some("voiceRangNoPickup"));
    assert_eq!(first.loan_id.as_deref(), Some("LN-1"));
    assert_eq!(first.started_at, ts_of("2026-11-15T14:00:00Z"));
    assert_eq!(first.created_at, ts_of("2026-11-15T14:05:00Z"));
    assert_eq!(first.created_by.as_deref(), Some("crm-export"));
    assert_eq!(first.is_external, Some(true));
    assert_eq!(first.updated_at, None);

    let second = get(records, "ext-crm-2").await.unwrap();
    assert_eq!(second.external_id.as_deref(), Some("crm-2"));
    assert_eq!(second.person_id, P);
    assert!(second.id.starts_with("IT-"), "{second:?}");
    assert_eq!(second.created_by.as_deref(), Some(by));
    created_now(&second);

    let unknown_field = get(records, "ext-crm-3").await.unwrap();
    assert_eq!(unknown_field.started_at, ts_of("2026-11-17T15:00:00Z"));
    assert_eq!(unknown_field.created_by.as_deref(), Some(by));
    created_now(&unknown_field);

    let fourth = get(records, "IT-IMPT-0004").await.unwrap();
    assert_eq!(fourth.external_id, None);
    assert_eq!(fourth.created_by.as_deref(), Some(by));
    created_now(&fourth);

    let date_only = get(records, "ext-crm-5").await.unwrap();
    assert_eq!(date_only.started_at, ts_of("2026-11-20T00:00:00Z"));

    let both = get(records, "IT-IMPT-0006").await.unwrap();
    assert_eq!(both.external_id.as_deref(), Some("crm-6"));
    assert_eq!(get(records, "ext-crm-6").await.unwrap(), both);

    let seventh = get(records, "ext-crm-7").await.unwrap();
    assert_eq!(seventh.created_by.as_deref(), Some("agent-42"));
    assert_eq!(seventh.created_at, ts_of("2026-11-21T14:10:00Z"));

    let other = records
        .get_interaction(GetInteractionRequest {
            searchable: false,
            interaction_id: "ext-crm-8".into(),
            person_id: "ext-legacy-9".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    assert_ne!(other.person_id, P);
    assert!(other.person_id.starts_with("BO-"), "{other:?}");
    assert_eq!(other.channel, "email");
    assert_eq!(other.status, "succeeded");
    assert_eq!(other.subject.as_deref(), Some("paymentDueDateReminder"));
    assert_eq!(other.created_by.as_deref(), Some(by));

    // The refused lines recorded nothing.
    for id in ["ext-crm-bad-3", "ext-crm-bad-6", "ext-crm-bad-13"] {
        let err = get(records, id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err:?}");
    }

    // The 7 imported calls about LN-1 block an 8th inside the 7 days.
    let calls: BTreeSet<String> = [
        first.id.clone(),
        second.id.clone(),
        unknown_field.id.clone(),
        fourth.id.clone(),
        date_only.id.clone(),
        both.id.clone(),
        seventh.id.clone(),
    ]
    .into_iter()
    .collect();
    assert_eq!(calls.len(), 7);
    let question = |loan: &str| CheckRequest {
        person_id: P.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        loan_ids: vec![loan.into()],
        // New Jersey, not New York: a borrower known only to be in US-NY
        // may be in New York City, whose rules (2 communications a week,
        // hours from 08:00:01) would answer first. New Jersey has the same
        // zone and no rule of its own, so the rules this test is about decide.
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        at: ts_of(CHECK_AT),
        ..CheckRequest::default()
    };
    let blocked = checks.check(question("LN-1")).await.unwrap().into_inner();
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
    assert_eq!(v.debt, "LN-1");
    let w = v.window.as_ref().unwrap();
    assert_eq!(
        (
            w.days,
            w.start_date.as_str(),
            w.end_date.as_str(),
            w.time_zone.as_str()
        ),
        (7, "2026-11-15", "2026-11-21", "America/New_York")
    );
    let counted: BTreeSet<String> = v.counted_interaction_ids.iter().cloned().collect();
    assert_eq!(counted, calls);
    // Another loan has no calls: allowed.
    let allowed = checks.check(question("LN-2")).await.unwrap().into_inner();
    assert!(allowed.allowed, "{allowed:?}");
}

#[tokio::test]
async fn import_from_a_file_keeps_the_good_lines_reports_the_bad_ones_and_counts() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("history.jsonl");
    std::fs::write(&file, import_file()).unwrap();
    let data = root.path().join("data");
    let span = import_twice(&data, &[path_str(&file)], None, path_str(&file));
    check_imported(&data, "import", span).await;
}

#[tokio::test]
async fn import_from_stdin_works_the_same() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let input = import_file();
    let span = import_twice(
        &data,
        &["--created-by", "legacy-crm", "-"],
        Some(&input),
        "-",
    );
    check_imported(&data, "legacy-crm", span).await;
}

#[tokio::test]
async fn import_is_refused_while_a_server_holds_the_data_directory() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("history.jsonl");
    std::fs::write(&file, import_file()).unwrap();
    let data = root.path().join("data");
    let server = start(&data).await;
    let d = data.clone();
    let o = tokio::task::spawn_blocking(move || {
        run(&["import", "--data-dir", path_str(&d), path_str(&file)])
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "error: the data directory `{}` is in use by another compliance-guard process (it holds `LOCK`); stop it first, or use another --data-dir\n",
            data.display()
        )
    );
    // Nothing was imported behind the server's back.
    let mut records = server.interactions().await;
    assert_eq!(list_all(&mut records).await.len(), 0);
    drop(records);
    server.stop().await.unwrap();
    let server = start(&data).await;
    let mut records = server.interactions().await;
    assert_eq!(list_all(&mut records).await.len(), 0);
    drop(records);
    server.stop().await.unwrap();
}

/// Import edge cases, through the library: a line that is not UTF-8 is
/// reported by number and the rest goes on; fields outside the upstream
/// format (snake_case spellings, `updatedBy`) are ignored and counted; a
/// record deleted upstream stays deleted (kept, not counted); an `id` that
/// another person's record already has is reported, not skipped silently.
#[test]
fn import_reports_bad_bytes_ignores_foreign_fields_and_keeps_upstream_deletes() {
    use compliance_guard::guard::Guard;
    let dir = tempfile::tempdir().unwrap();
    let call = |id: &str, person: &str, extra: &str| {
        format!(
            r#"{{"id":"{id}","personId":"{person}","channel":"voice","direction":"outbound","status":"attempted","statusDetails":"voiceRangNoPickup","loanId":"LN-1","startedAt":"2026-11-20T15:00:00Z"{extra}}}"#
        )
    };
    let mut input: Vec<u8> = Vec::new();
    input.extend(call("IT-EDGE-0001", "BO-EDGE-0001", "").as_bytes());
    input.extend(b"\n{\"personId\":\"BO-EDGE-0001\",\"channel\":\"voice\xE9\"}\n");
    input.extend(
        call(
            "IT-EDGE-0002",
            "BO-EDGE-0001",
            r#","updatedBy":"x","started_at":"2020-01-01""#,
        )
        .as_bytes(),
    );
    input.push(b'\n');
    input.extend(
        call(
            "IT-EDGE-0003",
            "BO-EDGE-0001",
            r#","deletedAt":"2026-11-21T00:00:00Z""#,
        )
        .as_bytes(),
    );
    input.push(b'\n');
    input.extend(call("IT-EDGE-0001", "BO-EDGE-0002", "").as_bytes());
    input.push(b'\n');
    let now = Utc::now();
    let report = ops::import(
        dir.path(),
        input.as_slice(),
        "import",
        None,
        Durability::Sync,
        now,
        |_| {},
    )
    .unwrap();
    assert_eq!(report.lines, 5);
    assert_eq!(report.imported, 3);
    assert_eq!(report.already_present, 0);
    let problems: Vec<(u64, &str)> = report
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (2, "the line is not UTF-8 text"),
            (
                5,
                "`id` `IT-EDGE-0001` belongs to an interaction of another person"
            ),
        ]
    );
    assert_eq!(
        report.ignored_fields,
        [("started_at".to_owned(), 1), ("updatedBy".to_owned(), 1)]
    );
    // The import closed its guard, so the lock is free; but a subprocess
    // another test spawns at that moment holds a copy of every open file
    // until its exec closes them (flock locks follow the open file), so a
    // lock may still be held for an instant: retry for a while.
    let open = || {
        Guard::open(
            IndexConfig::default(),
            dir.path(),
            Durability::Sync,
            u64::MAX,
            |_| {},
        )
    };
    let mut opened = open();
    for _ in 0..50 {
        if !matches!(
            opened,
            Err(compliance_guard::journal::JournalError::Locked(_))
        ) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        opened = open();
    }
    let (guard, _) = opened.unwrap();
    let caller = compliance_guard::request::Caller {
        company: None,
        name: "t".into(),
        sensitive: true,
        agent: false,
    };
    let deleted = guard.get(None, "IT-EDGE-0003", &caller).unwrap();
    assert_eq!(
        deleted.deleted_at.map(|t| t.to_rfc3339()),
        Some("2026-11-21T00:00:00+00:00".to_owned())
    );
    let kept = guard.get(None, "IT-EDGE-0002", &caller).unwrap();
    assert_eq!(kept.started_at.to_rfc3339(), "2026-11-20T15:00:00+00:00");
    assert_eq!(kept.updated_by, None);
}

// ---- recordings and voicemails in backups ----------------------------------

/// Uploads `audio` as the recording of a new voice interaction of `person`
/// and returns the interaction's id and the audio's storage key.
pub(crate) async fn upload_recording(
    records: &mut Interactions,
    person: &str,
    ext: &str,
    audio: &[u8],
) -> (String, String) {
    let created = records
        .create_interaction(CreateInteractionRequest {
            person_id: person.into(),
            interaction: Some(Interaction {
                external_id: Some(ext.into()),
                channel: "voice".into(),
                direction: "outbound".into(),
                status: "succeeded".into(),
                started_at: ts(1_583_157_600),
                ..Interaction::default()
            }),
            searchable: false,
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    let key = upload_to(records, &created.id, audio).await;
    (created.id, key)
}

/// Uploads `audio` as the recording of the voice interaction `id`; returns
/// its storage key.
pub(crate) async fn upload_to(records: &mut Interactions, id: &str, audio: &[u8]) -> String {
    use compliance_guard::pb::upload_interaction_recording_request::Part;
    use compliance_guard::pb::{
        UploadInteractionRecordingRequest as UploadMediaRequest, UploadMediaHeader,
    };
    let mut parts = vec![UploadMediaRequest {
        part: Some(Part::Header(UploadMediaHeader {
            interaction_id: id.into(),
            content_type: "audio/mpeg".into(),
            ..UploadMediaHeader::default()
        })),
    }];
    for chunk in audio.chunks(50_000) {
        parts.push(UploadMediaRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    let stored = records
        .upload_interaction_recording(tokio_stream::iter(parts))
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap();
    stored.recording.unwrap().storage_key
}

/// The recording of `id`, downloaded by stream.
pub(crate) async fn download_recording(records: &mut Interactions, id: &str) -> Vec<u8> {
    use compliance_guard::pb::DownloadInteractionRecordingRequest as DownloadMediaRequest;
    use compliance_guard::pb::download_interaction_recording_response::Part;
    let mut stream = records
        .download_interaction_recording(DownloadMediaRequest {
            interaction_id: id.into(),
            ..DownloadMediaRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut audio = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if let Some(Part::Chunk(c)) = m.part {
            audio.extend(c);
        }
    }
    audio
}

#[tokio::test]
async fn a_backup_carries_the_audio_and_a_restore_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let audio_a: Vec<u8> = (0..180_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let audio_b: Vec<u8> = (0..70_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let server = start(&data).await;
    let mut records = server.interactions().await;
    let (id_a, key_a) = upload_recording(&mut records, "BO-MEDI-0001", "call-a", &audio_a).await;
    let (id_b, key_b) = upload_recording(&mut records, "BO-MEDI-0001", "call-b", &audio_b).await;
    server.stop().await.unwrap();

    // The backup, as the operator runs it: the records file and the audio
    // beside it, in `<file>.media`.
    let backup = dir.path().join("guard.cgj");
    let o = run(&[
        "backup",
        "--data-dir",
        path_str(&data),
        "--to",
        path_str(&backup),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let media = ops::media_dir_of(&backup);
    assert_eq!(media, dir.path().join("guard.cgj.media"));
    assert!(
        stdout(&o).ends_with(&format!(
            "and 2 recordings and voicemails ({} bytes) to {}\n",
            audio_a.len() + audio_b.len(),
            media.display()
        )),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read(media.join(&key_a)).unwrap(), audio_a);
    assert_eq!(std::fs::read(media.join(&key_b)).unwrap(), audio_b);

    // A damaged file in the backup stops the restore, naming it, and
    // leaves the data directory empty.
    let mut damaged = audio_b.clone();
    damaged[100] ^= 1;
    std::fs::write(media.join(&key_b), &damaged).unwrap();
    let restored = dir.path().join("restored");
    let o = run(&[
        "restore",
        "--from",
        path_str(&backup),
        "--data-dir",
        path_str(&restored),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!("`{}` is damaged", media.join(&key_b).display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        Layout {
            dir: restored.clone()
        }
        .generations()
        .unwrap(),
        (vec![], vec![])
    );
    let left = std::fs::read_dir(restored.join("media"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "a failed restore leaves no audio behind");
    // The backup's own copy of the first file is whole (a restore never
    // writes through to the backup).
    assert_eq!(std::fs::read(media.join(&key_a)).unwrap(), audio_a);

    // Mended, it restores; the server on it serves the same audio.
    std::fs::write(media.join(&key_b), &audio_b).unwrap();
    let o = run(&[
        "restore",
        "--from",
        path_str(&backup),
        "--data-dir",
        path_str(&restored),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with("and 2 recordings and voicemails, each checked against its SHA-256\n"),
        "{}",
        stdout(&o)
    );
    let server = start(&restored).await;
    let mut records = server.interactions().await;
    assert_eq!(download_recording(&mut records, &id_a).await, audio_a);
    assert_eq!(download_recording(&mut records, &id_b).await, audio_b);
    server.stop().await.unwrap();
}
