//! Recovery of what a crash or damage leaves in a data directory, read
//! back through `Guard::open`: a damaged snapshot; damage in a journal
//! that is not the newest; a crash during compaction (both generations
//! present, a temporary snapshot left behind, a snapshot that could not be
//! written); a journal cut inside the one frame of a reserving Check.
//!
//! Each start either recovers every acknowledged write exactly (every
//! interaction, restriction, reservation and a stored answer's retry
//! compared whole) or refuses, naming the file and the byte offset. None
//! starts with less.
//!
//! One history is written across three generations (see [`history`]) and
//! its files kept at each stage; each test lays some of them out in a
//! fresh data directory, as a crash or damage would leave them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use compliance_guard::guard::{Guard, Reservation, Sizes};
use compliance_guard::index::{ListQuery, MAX_LIMIT};
use compliance_guard::journal::{JournalError, Recovered};
use compliance_guard::model::{ContactInput, Interaction, InteractionInput, Status};
use compliance_guard::pb::journal::record::Op;
use compliance_guard::request::{CheckInput, CheckOutcome};
use compliance_guard::restrictions::{Restriction, RestrictionInput};
use compliance_guard::rules::{LoadOptions, RuleSet};

use crate::ops::durability::{HEADER_LEN, caller, frames, journal_files, placed_input};
use crate::support::consts::MONDAY_10 as AT;
use crate::support::library::open_with;

/// Placed calls, one updated and one deleted; a debt; a designated
/// inconvenient time (a record of its own: it names days).
const P1: &str = "BO-RCVR-0001";
/// A cease, added then ended; linked to an external id.
const P2: &str = "BO-RCVR-0002";
/// Reserving Checks: `req-1` left open, `req-2` canceled.
const P3: &str = "BO-RCVR-0003";
/// First seen in the last reserving Check (`req-4`), whose one frame
/// batches four records: the person, the interaction, the reservation and
/// the stored answer.
const P4: &str = "BO-RCVR-0004";

const SNAPSHOT_1: &str = "snapshot-00000001.snap";
const JOURNAL_1: &str = "journal-00000001.log";
const SNAPSHOT_2: &str = "snapshot-00000002.snap";
const COUNT_1: &str = "snapshot-00000001.count";
const COUNT_2: &str = "snapshot-00000002.count";
const JOURNAL_2: &str = "journal-00000002.log";
/// Where compaction into generation 2 writes before the rename.
const SNAPSHOT_2_TMP: &str = "snapshot-00000002.tmp";
const JOURNAL_0: &str = "journal-00000000.log";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(AT, 0).unwrap()
}

fn rfc(seconds: i64) -> String {
    Utc.timestamp_opt(seconds, 0).unwrap().to_rfc3339()
}

fn rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    RULES
        .get_or_init(|| {
            Arc::new(RuleSet::load_dir(Path::new("rules"), &LoadOptions::default()).unwrap())
        })
        .clone()
}

/// Opens a data directory as a server would, with the rules in force.
fn open(dir: &Path, compact_after: u64) -> Result<(Guard, Recovered), JournalError> {
    let opened = open_with(dir, compact_after)?;
    opened.0.set_rules(rules());
    Ok(opened)
}

/// A reserving Check: an outbound call to a mobile phone in New York at
/// `AT`, with `request_id` kept for retries.
fn reserve(person: &str, request_id: &str) -> CheckInput {
    CheckInput {
        person_id: person.into(),
        channel: "voice".into(),
        direction: "outbound".into(),
        loan_ids: vec!["L9".into()],
        jurisdictions: vec!["US-NY".into()],
        time_zones: vec!["America/New_York".into()],
        contact: Some(ContactInput {
            kind: Some("mobilePhone".into()),
            value: Some("+15555550100".into()),
            name: None,
        }),
        at: Some(now()),
        reserve: true,
        request_id: request_id.into(),
        ..CheckInput::default()
    }
}

/// A reserving Check that must be allowed and recorded, not repeated.
async fn reserved(g: &Guard, person: &str, request_id: &str) -> CheckOutcome {
    let out = g
        .check(&reserve(person, request_id), &caller(), now(), None)
        .await
        .unwrap();
    assert!(out.decision.allowed, "{request_id}: {:?}", out.decision);
    assert!(!out.repeated, "{request_id}");
    assert!(out.interaction_id.is_some(), "{request_id}");
    out
}

/// The retry of a reserving Check whose answer must be kept: the first
/// answer, repeated, and nothing recorded.
async fn retried(g: &Guard, person: &str, first: &CheckOutcome, request_id: &str) {
    let again = g
        .check(&reserve(person, request_id), &caller(), now(), None)
        .await
        .unwrap();
    assert_eq!(
        again,
        CheckOutcome {
            repeated: true,
            ..first.clone()
        },
        "{request_id}: the stored answer, repeated"
    );
}

async fn create(g: &Guard, person: &str, ext: &str, minutes: i64) -> String {
    let (i, created) = g
        .create(person, &placed_input(ext, minutes), &caller(), now())
        .await
        .unwrap();
    assert!(created, "{ext}");
    i.id
}

// ---- the state a client reads back -----------------------------------------

/// Everything a client can read back: every interaction by id (a deleted
/// one with its deletedAt), the live ones listed in creation order, each
/// person's restrictions (ended ones too), the open reservations, and the
/// sizes (people, interactions deleted ones included, reservations).
#[derive(Debug, Clone, PartialEq)]
struct State {
    sizes: Sizes,
    listed: Vec<String>,
    interactions: BTreeMap<String, Result<Interaction, String>>,
    restrictions: BTreeMap<&'static str, Result<Vec<Restriction>, String>>,
    reservations: Vec<Reservation>,
}

fn state<'a>(g: &Guard, ids: impl IntoIterator<Item = &'a String>) -> State {
    let all = ListQuery {
        limit: MAX_LIMIT,
        ..ListQuery::default()
    };
    let (total, live) = g.list(&all, &caller()).unwrap();
    assert!(total < MAX_LIMIT, "one page lists them all");
    let s = State {
        sizes: g.sizes(),
        listed: live.into_iter().map(|i| i.id).collect(),
        interactions: ids
            .into_iter()
            .map(|id| {
                let found = g.get(None, id, &caller()).map_err(|e| e.to_string());
                (id.clone(), found)
            })
            .collect(),
        restrictions: [P1, P2, P3, P4]
            .into_iter()
            .map(|p| (p, g.restrictions(p, true, now()).map_err(|e| e.to_string())))
            .collect(),
        reservations: g.reservations(None, &caller()).unwrap(),
    };
    whole_operations(&s);
    s
}

/// The state of `g` read for the interactions `expected` knows.
fn read_back(g: &Guard, expected: &State) -> State {
    state(g, expected.interactions.keys())
}

/// No half of an operation: the interactions a reserving Check recorded
/// (in progress, never updated) are exactly those with an open
/// reservation.
fn whole_operations(s: &State) {
    let in_progress: Vec<&str> = s
        .interactions
        .values()
        .filter_map(|i| i.as_ref().ok())
        .filter(|i| i.status == Status::InProgress)
        .map(|i| i.id.as_str())
        .collect();
    let mut reserved: Vec<&str> = s
        .reservations
        .iter()
        .map(|r| r.interaction_id.as_str())
        .collect();
    reserved.sort_unstable();
    let mut in_progress = in_progress;
    in_progress.sort_unstable();
    assert_eq!(
        in_progress, reserved,
        "an interaction without its reservation"
    );
    assert_eq!(s.sizes.open_reservations, s.reservations.len());
}

// ---- files -------------------------------------------------------------------

/// The files of a data directory's `journal/`, by name (directories left
/// out).
type Files = BTreeMap<String, Vec<u8>>;

fn read_files(dir: &Path) -> Files {
    journal_files(dir)
        .into_iter()
        .map(|name| dir.join("journal").join(name))
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

/// A fresh data directory holding `files` in `journal/`.
fn dir_with<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journal")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join("journal").join(name), bytes).unwrap();
    }
    dir
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join("journal").join(name)
}

/// `files` as `dir_with` takes them.
fn all(files: &Files) -> impl Iterator<Item = (&str, &[u8])> {
    files.iter().map(|(n, b)| (n.as_str(), b.as_slice()))
}

/// Asserts that `path` holds exactly `expected`, saying how it differs
/// (not the bytes).
fn holds(path: &Path, expected: &[u8], what: &str) {
    let found = std::fs::read(path).unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display()));
    if found != expected {
        let from = found
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(found.len().min(expected.len()));
        panic!(
            "{what}: `{}` holds {} bytes, not the {} expected; they differ from byte {from}",
            path.display(),
            found.len(),
            expected.len()
        );
    }
}

/// Asserts that a data directory's `journal/` holds exactly `expected`
/// (directories left out).
fn holds_files(dir: &Path, expected: &Files, what: &str) {
    let found: Vec<String> = read_files(dir).into_keys().collect();
    let names: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(found, names, "{what}");
    for (name, bytes) in expected {
        holds(&file(dir, name), bytes, what);
    }
}

/// The refusal of a start on `dir`. A start that goes on instead fails
/// the test, saying what it read and how it left the files.
fn refused(dir: &Path, compact_after: u64, what: &str) -> JournalError {
    match open(dir, compact_after) {
        Err(err) => err,
        Ok((g, replayed)) => {
            let sizes = g.sizes();
            drop(g);
            let files: Vec<String> = read_files(dir)
                .iter()
                .map(|(name, bytes)| format!("{name}: {} bytes", bytes.len()))
                .collect();
            panic!("{what}: started anyway: {replayed:?}, {sizes:?}; the files now {files:?}")
        }
    }
}

/// Asserts a refused start that names `path` and `offset`, in the error
/// and in its text; returns the reason.
fn refused_at(err: &JournalError, path: &Path, offset: u64, what: &str) -> String {
    let JournalError::Corrupt {
        path: named,
        offset: at,
        reason,
    } = err
    else {
        panic!("{what}: not refused as damage: {err:?}")
    };
    assert_eq!(named, path, "{what}");
    assert_eq!(*at, offset, "{what}");
    let text = err.to_string();
    let head = format!("`{}` is damaged at byte offset {offset}: ", path.display());
    assert!(text.starts_with(&head), "{what}: {text}");
    assert!(text.contains("the start is refused"), "{what}: {text}");
    reason.clone()
}

// ---- one history over three generations -----------------------------------

/// One history, kept at each stage. Generation 0 is a journal only; each
/// later generation is a snapshot of everything before it and a journal
/// after it, made by a start that compacted.
struct History {
    /// Generation 0's journal, as the start that compacted it found it.
    gen0: Files,
    /// Generation 1's snapshot and journal, as the start that compacted
    /// them into generation 2 found them.
    gen1: Files,
    state1: State,
    /// Generation 2 just before the last reserving Check.
    before_last: Files,
    state_before_last: State,
    /// Generation 2 after it: the whole history.
    last: Files,
    state_last: State,
    /// `req-1`'s answer (P3), kept for retries through every generation.
    answer: CheckOutcome,
    /// `req-4`'s answer (P4), the last frame of generation 2.
    last_answer: CheckOutcome,
}

/// Writes the history through the guard, closing and reopening the data
/// directory so that each start compacts the generation before.
async fn history() -> History {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut ids = Vec::new();

    // Generation 0: a journal only.
    let (g, replayed) = open(d, u64::MAX).unwrap();
    assert_eq!(replayed, Recovered::default(), "a fresh directory");
    let r0 = create(&g, P1, "r-0", 30).await;
    let r1 = create(&g, P1, "r-1", 40).await;
    ids.extend([r0.clone(), r1.clone()]);
    g.declare_debt(P1, "D-1", &["L1".into(), "L2".into()], now())
        .await
        .unwrap();
    let weekend = RestrictionInput {
        kind: "inconvenientTime".into(),
        source: "call".into(),
        received_at: rfc(AT - 86_400),
        from: Some("21:00".into()),
        until: Some("23:00".into()),
        days: vec!["saturday".into()],
        ..RestrictionInput::default()
    };
    g.add_restriction(P1, &weekend, &caller(), now())
        .await
        .unwrap();
    let cease = RestrictionInput {
        kind: "ceaseCommunication".into(),
        source: "letter".into(),
        received_at: rfc(AT - 86_400),
        ..RestrictionInput::default()
    };
    let cease = g
        .add_restriction(P2, &cease, &caller(), now())
        .await
        .unwrap();
    let answer = reserved(&g, P3, "req-1").await;
    let canceled = reserved(&g, P3, "req-2").await.interaction_id.unwrap();
    ids.extend([answer.interaction_id.clone().unwrap(), canceled.clone()]);
    let gen0 = read_files(d);
    drop(g);
    assert_eq!(gen0.keys().collect::<Vec<_>>(), [JOURNAL_0]);

    // Generation 1: the start compacts generation 0.
    let (g, replayed) = open(d, 0).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 0,
            snapshot_records: 0,
            journal_records: 7,
            cut: None,
            end: compliance_guard::journal::Position::default(),
        },
        "one frame per operation"
    );
    assert_eq!(journal_files(d), [JOURNAL_1, COUNT_1, SNAPSHOT_1]);
    let failed = InteractionInput {
        status: Some("failed".into()),
        status_details: Some("voiceFailedToInitiate".into()),
        ..InteractionInput::default()
    };
    g.update(
        Some(P1),
        &r0,
        &failed,
        &["status".into(), "statusDetails".into()],
        &caller(),
        now(),
    )
    .await
    .unwrap();
    g.delete(Some(P1), &r1, &caller(), now()).await.unwrap();
    g.end_restriction(
        P2,
        &cease.id,
        None,
        Some("paid in full".into()),
        &caller(),
        now(),
    )
    .await
    .unwrap();
    g.link_person(P2, "X2", now()).await.unwrap();
    g.cancel_reservation(&canceled, &caller(), now())
        .await
        .unwrap();
    // Enough records to pass half the snapshot, so that the next start
    // compacts again.
    for (m, ext) in ["r-3", "r-4", "r-5"].into_iter().enumerate() {
        ids.push(create(&g, P1, ext, 50 + m as i64).await);
    }
    let gen1 = read_files(d);
    let state1 = state(&g, &ids);
    drop(g);

    // Generation 2: the start compacts generation 1.
    let (g, replayed) = open(d, 0).unwrap();
    assert_eq!(replayed.generation, 1);
    assert_eq!(replayed.journal_records, 8);
    assert_eq!(journal_files(d), [JOURNAL_2, COUNT_2, SNAPSHOT_2]);
    ids.push(create(&g, P1, "r-6", 60).await);
    let before_last = read_files(d);
    let state_before_last = state(&g, &ids);
    let last_answer = reserved(&g, P4, "req-4").await;
    ids.push(last_answer.interaction_id.clone().unwrap());
    let last = read_files(d);
    let state_last = state(&g, &ids);
    drop(g);
    History {
        gen0,
        gen1,
        state1,
        before_last,
        state_before_last,
        last,
        state_last,
        answer,
        last_answer,
    }
}

/// How many records (frames) a stage's file holds.
fn records_in(files: &Files, name: &str, kind: u16) -> u64 {
    frames(&files[name], kind).len() as u64
}

// ---- 1. a damaged snapshot --------------------------------------------------

/// Every byte of the newest snapshot flipped in turn, and the snapshot cut
/// short at every byte inside a record: the start is refused, naming the
/// snapshot and the offset of the damaged record, and leaves the files as
/// they are. A damaged header is refused as not a journal of ours, naming
/// the file. With the snapshot restored, the same directory opens whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_refuses_the_start_naming_the_snapshot_and_the_offset() {
    let h = history().await;
    let snap = &h.last[SNAPSHOT_2];
    let records = frames(snap, 1);
    assert_eq!(records.len(), 16, "the whole state, one record per thing");
    let holding = |byte: u64| {
        records
            .iter()
            .find(|f| f.start <= byte && byte < f.end)
            .unwrap()
            .start
    };
    let dir = dir_with(all(&h.last));
    let path = file(dir.path(), SNAPSHOT_2);

    // A flipped byte in a record: refused at the record's offset.
    for byte in HEADER_LEN..snap.len() as u64 {
        let mut damaged = snap.clone();
        damaged[byte as usize] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let what = format!("flip at {byte}");
        let err = refused(dir.path(), u64::MAX, &what);
        refused_at(&err, &path, holding(byte), &what);
        holds(&path, &damaged, &what);
    }
    // A flipped byte in the header: not a journal of ours.
    for (byte, reason) in [
        (0, "the magic bytes are not `CGJL`".to_owned()),
        (3, "the magic bytes are not `CGJL`".to_owned()),
        (4, format!("it is version {}", 1 ^ 0x5a)),
        (6, format!("it is of kind {}, expected 1", 1 ^ 0x5a)),
    ] {
        let mut damaged = snap.clone();
        damaged[byte] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let err = refused(dir.path(), u64::MAX, &format!("header flip at {byte}"));
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` is not a compliance-guard journal of format version 1: {reason}",
                path.display()
            ),
            "header flip at {byte}"
        );
    }

    // Cut short inside a record: refused at the cut record's offset, never
    // read as a torn tail (a snapshot is renamed into place whole).
    let boundaries: Vec<u64> = records.iter().map(|f| f.start).collect();
    let mut cuts = 0;
    for len in HEADER_LEN..snap.len() as u64 {
        if boundaries.contains(&len) {
            // A whole, shorter snapshot: refused by its count (the test
            // below).
            continue;
        }
        std::fs::write(&path, &snap[..len as usize]).unwrap();
        let what = format!("cut at {len}");
        let err = refused(dir.path(), u64::MAX, &what);
        refused_at(&err, &path, holding(len), &what);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "cut at {len}");
        cuts += 1;
    }
    assert_eq!(cuts, snap.len() as u64 - HEADER_LEN - records.len() as u64);
    // Cut inside the header: not a journal of ours.
    for len in 0..HEADER_LEN as usize {
        std::fs::write(&path, &snap[..len]).unwrap();
        let err = refused(dir.path(), u64::MAX, &format!("header cut at {len}"));
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` is not a compliance-guard journal of format version 1: only {len} bytes, shorter than the header",
                path.display()
            )
        );
    }

    // Nothing else was touched, and the snapshot restored opens whole.
    std::fs::write(&path, snap).unwrap();
    holds_files(dir.path(), &h.last, "after the refusals");
    let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 2,
            snapshot_records: 16,
            journal_records: 2,
            cut: None,
            end: compliance_guard::journal::Position::default(),
        }
    );
    assert_eq!(read_back(&g, &h.state_last), h.state_last);
    retried(&g, P3, &h.answer, "req-1").await;
    retried(&g, P4, &h.last_answer, "req-4").await;
}

/// A snapshot cut exactly at a record boundary must be refused too: it was
/// renamed into place whole, so fewer records is damage, and starting from
/// it would start with less.
///
/// The snapshot's own bytes have no record count and no end marker, so
/// such a snapshot reads as a whole one (down to the header alone, an
/// empty state); the count written beside it before its rename
/// (`snapshot-N.count`) is what tells, and the start is refused at the end
/// of the last whole record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_at_a_record_boundary_refuses_the_start() {
    let h = history().await;
    let snap = &h.last[SNAPSHOT_2];
    let dir = dir_with(all(&h.last));
    let path = file(dir.path(), SNAPSHOT_2);
    for f in frames(snap, 1) {
        std::fs::write(&path, &snap[..f.start as usize]).unwrap();
        let what = format!("cut at {} (16 records whole)", f.start);
        let err = refused(dir.path(), u64::MAX, &what);
        refused_at(&err, &path, f.start, &what);
    }
}

// ---- 2. damage in a journal that is not the newest ------------------------

/// Only one journal is read after a snapshot: the snapshot's own
/// generation's. An older journal is left only by a crash during
/// compaction (after the new snapshot's rename, before the old files'
/// removal), and everything in it is in the snapshot: damage there does
/// not stop the start, the file is neither read nor changed, and the state
/// is the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_a_journal_older_than_the_snapshot_does_not_stop_the_start() {
    let h = history().await;
    let old = &h.gen1[JOURNAL_1];
    let old_frames = frames(old, 0);
    let middle = &old_frames[old_frames.len() / 2];
    let last = old_frames.last().unwrap();
    let mut flipped = old.clone();
    flipped[((middle.start + middle.end) / 2) as usize] ^= 0x5a;
    let cut = old[..(last.start + 5) as usize].to_vec();
    for (what, leftover) in [("a flipped byte", flipped), ("a cut record", cut)] {
        let dir = dir_with(all(&h.last).chain([(JOURNAL_1, leftover.as_slice())]));
        let (g, replayed) =
            open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records: records_in(&h.last, SNAPSHOT_2, 1),
                journal_records: 2,
                cut: None,
                end: compliance_guard::journal::Position::default(),
            },
            "{what}"
        );
        assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        retried(&g, P4, &h.last_answer, "req-4").await;
        drop(g);
        let kept = format!("{what}: the older journal is not read, cut or removed");
        holds(&file(dir.path(), JOURNAL_1), &leftover, &kept);
    }
}

/// Two journals after the snapshot are read in order, and then a record
/// cut short or damaged at the end of the first is not a torn tail (a
/// crash cuts only the newest file): the start is refused, naming the
/// first journal and the record's offset, and neither file is changed.
///
/// The code never writes this layout: a generation's journal is opened
/// only after its snapshot is in place, and the older journal removed. It
/// is what is left when, after a crash during compaction left generation
/// 0's journal beside snapshot 1, snapshot 1 is moved away (as a refusal
/// suggests for a damaged file): journal 0 then journal 1 are the whole
/// history again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_at_the_end_of_a_journal_that_is_not_the_newest_refuses_the_start() {
    let h = history().await;
    let first = &h.gen0[JOURNAL_0];
    let second = &h.gen1[JOURNAL_1];
    let layout = |first: &[u8]| {
        let files: [(&str, &[u8]); 2] = [(JOURNAL_0, first), (JOURNAL_1, second)];
        dir_with(files)
    };

    // Whole: both read, in order.
    let dir = layout(first);
    let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: 0,
            journal_records: 7 + 8,
            cut: None,
            end: compliance_guard::journal::Position::default(),
        }
    );
    assert_eq!(read_back(&g, &h.state1), h.state1);
    retried(&g, P3, &h.answer, "req-1").await;
    drop(g);

    let records = frames(first, 0);
    let last = records.last().unwrap();
    // Cut inside the first journal's last record, at every byte.
    let dir = layout(first);
    let path = file(dir.path(), JOURNAL_0);
    for len in last.start + 1..last.end {
        let damaged = &first[..len as usize];
        std::fs::write(&path, damaged).unwrap();
        let what = format!("cut at {len}");
        let err = refused(dir.path(), u64::MAX, &what);
        refused_at(&err, &path, last.start, &what);
        holds(&path, damaged, &what);
        holds(&file(dir.path(), JOURNAL_1), second, &what);
    }
    // A flipped byte in each record of the first journal, the last too.
    for (n, f) in records.iter().enumerate() {
        let mut damaged = first.clone();
        damaged[((f.start + 8 + f.end) / 2) as usize] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let what = format!("a flipped byte in record {n}");
        let err = refused(dir.path(), u64::MAX, &what);
        let reason = refused_at(&err, &path, f.start, &what);
        assert_eq!(reason, "the checksum does not match", "record {n}");
    }
    holds(&file(dir.path(), JOURNAL_1), second, "the newest journal");
}

// ---- 3. a crash during compaction ---------------------------------------------

/// A crash while compaction wrote snapshot 2 leaves its temporary file
/// beside generation 1, at any length (nothing, the header, half, all of
/// it but not renamed). The start reads generation 1 as it was, exactly,
/// and neither reads nor removes the temporary file; the next compaction
/// writes it again and renames it into place, the same bytes the
/// interrupted compaction was writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_snapshot_left_by_a_crash_during_compaction_is_ignored() {
    let h = history().await;
    let new = &h.last[SNAPSHOT_2];
    for len in [0, HEADER_LEN as usize, new.len() / 2, new.len()] {
        let tmp = &new[..len];
        let dir = dir_with(all(&h.gen1).chain([(SNAPSHOT_2_TMP, tmp)]));
        let (g, replayed) = open(dir.path(), u64::MAX)
            .unwrap_or_else(|e| panic!("temporary file of {len} bytes: {e}"));
        assert_eq!(
            replayed,
            Recovered {
                generation: 1,
                snapshot_records: records_in(&h.gen1, SNAPSHOT_1, 1),
                journal_records: 8,
                cut: None,
                end: compliance_guard::journal::Position::default(),
            },
            "temporary file of {len} bytes"
        );
        assert_eq!(read_back(&g, &h.state1), h.state1, "{len} bytes");
        retried(&g, P3, &h.answer, "req-1").await;
        drop(g);
        assert_eq!(
            journal_files(dir.path()),
            [JOURNAL_1, COUNT_1, SNAPSHOT_1, SNAPSHOT_2_TMP]
        );
        holds(&file(dir.path(), SNAPSHOT_2_TMP), tmp, "the temporary file");

        // The next compaction replaces it.
        let (g, _) = open(dir.path(), 0).unwrap();
        assert_eq!(journal_files(dir.path()), [JOURNAL_2, COUNT_2, SNAPSHOT_2]);
        let what = format!("{len} bytes: the snapshot the interrupted compaction was writing");
        holds(&file(dir.path(), SNAPSHOT_2), new, &what);
        assert_eq!(read_back(&g, &h.state1), h.state1, "{len} bytes");
        retried(&g, P3, &h.answer, "req-1").await;
    }
}

/// A crash after snapshot 2 was renamed into place but before generation
/// 1's files were all removed (both, the snapshot or the journal left),
/// before the new journal was created, or after a start that served on:
/// the start reads snapshot 2 and its journal only, and recovers the
/// history exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_generations_left_by_a_crash_during_compaction_read_the_newer_exactly() {
    let h = history().await;
    let snap2 = (SNAPSHOT_2, h.last[SNAPSHOT_2].as_slice());
    let snap1 = (SNAPSHOT_1, h.gen1[SNAPSHOT_1].as_slice());
    let journal1 = (JOURNAL_1, h.gen1[JOURNAL_1].as_slice());
    let snapshot_records = records_in(&h.last, SNAPSHOT_2, 1);
    for (what, old) in [
        ("generation 1 whole", vec![snap1, journal1]),
        ("its journal", vec![journal1]),
        ("its snapshot", vec![snap1]),
    ] {
        // Before the new journal was created.
        let dir = dir_with(old.iter().copied().chain([snap2]));
        let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records,
                journal_records: 0,
                cut: None,
                end: compliance_guard::journal::Position::default(),
            },
            "{what}"
        );
        assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        drop(g);

        // After a start that served on, writing generation 2's journal.
        let journal2 = (JOURNAL_2, h.last[JOURNAL_2].as_slice());
        let dir = dir_with(old.iter().copied().chain([snap2, journal2]));
        let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records,
                journal_records: 2,
                cut: None,
                end: compliance_guard::journal::Position::default(),
            },
            "{what}, then served on"
        );
        assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        retried(&g, P4, &h.last_answer, "req-4").await;
    }
}

/// A compaction that cannot write its snapshot (here a directory stands
/// where its temporary file goes) refuses the start naming that file, and
/// removes nothing: generation 1 is still whole, and once the obstacle is
/// gone the next start compacts it with every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_cannot_write_its_snapshot_removes_nothing() {
    let h = history().await;
    let dir = dir_with(all(&h.gen1));
    let tmp = file(dir.path(), SNAPSHOT_2_TMP);
    std::fs::create_dir(&tmp).unwrap();
    let err = refused(dir.path(), 0, "a compaction that cannot write");
    let JournalError::Io { action, path, .. } = &err else {
        panic!("not an I/O error: {err:?}")
    };
    assert_eq!((*action, path), ("creating", &tmp), "{err}");
    holds_files(dir.path(), &h.gen1, "a failed compaction");
    assert!(tmp.is_dir());

    std::fs::remove_dir(&tmp).unwrap();
    let (g, replayed) = open(dir.path(), 0).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: records_in(&h.gen1, SNAPSHOT_1, 1),
            journal_records: 8,
            cut: None,
            end: compliance_guard::journal::Position::default(),
        }
    );
    assert_eq!(journal_files(dir.path()), [JOURNAL_2, COUNT_2, SNAPSHOT_2]);
    assert_eq!(read_back(&g, &h.state1), h.state1);
    retried(&g, P3, &h.answer, "req-1").await;
}

// ---- 4. a cut inside one operation's batch ------------------------------------

/// The last reserving Check wrote one frame: P4's person, the interaction,
/// the reservation and the stored answer. The journal cut at every byte
/// inside it (a crash mid-write): the start recovers everything before it
/// and nothing of it (no person, no interaction without its reservation, no
/// answer: a retry is decided anew, whole), reports the cut at the frame's
/// offset, and cuts the file back there. Whole, it is all there and a retry
/// repeats its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_inside_a_reserving_checks_batch_keeps_nothing_of_it() {
    let h = history().await;
    let snap = h.last[SNAPSHOT_2].as_slice();
    let journal = &h.last[JOURNAL_2];
    let before = h.before_last[JOURNAL_2].len() as u64;
    let after = journal.len() as u64;
    assert!(
        h.state_before_last.sizes.people < h.state_last.sizes.people,
        "P4 is new"
    );
    for len in before..=after {
        let dir = dir_with([(SNAPSHOT_2, snap), (JOURNAL_2, &journal[..len as usize])]);
        let path = file(dir.path(), JOURNAL_2);
        let (g, replayed) =
            open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
        assert_eq!(replayed.generation, 2, "cut at {len}");
        if len == after {
            assert_eq!(replayed.journal_records, 2);
            assert_eq!(replayed.cut, None);
            assert_eq!(read_back(&g, &h.state_last), h.state_last);
            retried(&g, P4, &h.last_answer, "req-4").await;
            continue;
        }
        assert_eq!(
            read_back(&g, &h.state_before_last),
            h.state_before_last,
            "cut at {len}: everything before the frame, nothing of it"
        );
        assert_eq!(replayed.journal_records, 1, "cut at {len}");
        match &replayed.cut {
            None => assert_eq!(len, before, "cut at {len}: the cut went unreported"),
            Some((named, offset, _)) => {
                assert_eq!((named, *offset), (&path, before), "cut at {len}");
            }
        }
        let what = format!("cut at {len}: the file is cut back to the frame");
        holds(&path, &journal[..before as usize], &what);
        // The cut Check was never answered: its retry is decided anew, and
        // recorded whole.
        let again = reserved(&g, P4, "req-4").await;
        let ids = h.state_before_last.interactions.keys();
        let s = state(&g, ids.chain([again.interaction_id.as_ref().unwrap()]));
        assert_eq!(
            s.reservations.len(),
            h.state_before_last.reservations.len() + 1,
            "cut at {len}"
        );
        assert_eq!(s.sizes.people, h.state_last.sizes.people, "cut at {len}");
    }

    // That frame is one batch of the four records.
    let last = frames(journal, 0).pop().unwrap();
    assert_eq!((last.start, last.end), (before, after));
    let Some(Op::Batch(batch)) = &last.record.op else {
        panic!("not a batch: {:?}", last.record.op)
    };
    let kinds: Vec<&str> = batch
        .records
        .iter()
        .map(|r| match &r.op {
            Some(Op::Person(_)) => "person",
            Some(Op::Interaction(_)) => "interaction",
            Some(Op::ReservationOpened(_)) => "reservation",
            Some(Op::Answer(_)) => "answer",
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["person", "interaction", "reservation", "answer"]);
}

/// The journal of [`history`] with one more record after the reserving
/// Check's batch: the data directory (snapshot only), the journal's bytes,
/// the batch's start and end, and the bytes after it.
async fn batch_then_a_record() -> (tempfile::TempDir, Vec<u8>, u64, u64) {
    let h = history().await;
    let source = dir_with(all(&h.last));
    let (g, _) = open(source.path(), u64::MAX).unwrap();
    create(&g, P1, "r-7", 70).await;
    drop(g);
    let journal = std::fs::read(file(source.path(), JOURNAL_2)).unwrap();
    let records = frames(&journal, 0);
    assert_eq!(records.len(), 3);
    let batch = &records[1];
    assert!(matches!(batch.record.op, Some(Op::Batch(_))));
    assert!(
        journal.len() as u64 - batch.end < batch.end - batch.start - 8,
        "the record after the batch is shorter than the batch's payload"
    );
    let dir = dir_with([(SNAPSHOT_2, h.last[SNAPSHOT_2].as_slice())]);
    let (start, end) = (batch.start, batch.end);
    (dir, journal, start, end)
}

/// Refuses the start with `journal` cut to `len` and the bytes after the
/// batch `start..end` appended, naming the journal and `start`, and
/// leaving the file as it is.
fn refused_when_cut(dir: &Path, journal: &[u8], start: u64, end: u64, len: u64) {
    let path = file(dir, JOURNAL_2);
    let damaged = [&journal[..len as usize], &journal[end as usize..]].concat();
    std::fs::write(&path, &damaged).unwrap();
    let what = format!(
        "cut at {len}, {} bytes after it",
        journal.len() as u64 - end
    );
    let err = refused(dir, u64::MAX, &what);
    refused_at(&err, &path, start, &what);
    holds(&path, &damaged, &what);
}

/// The same batch cut short but followed by a whole record (damage, not a
/// crash: a crash cuts only the end): at every length that leaves the
/// batch's 8-byte frame header whole, the start is refused, naming the
/// journal and the batch's offset, and the file is left as it is. (The
/// length at which the batch's stated length reaches exactly the end of
/// the file is the test below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_inside_a_batch_followed_by_a_whole_record_refuses_the_start() {
    let (dir, journal, start, end) = batch_then_a_record().await;
    let to_the_end = end - (journal.len() as u64 - end);
    for len in (start + 8..end).filter(|len| *len != to_the_end) {
        refused_when_cut(dir.path(), &journal, start, end, len);
    }
}

/// As above, at the lengths the reader misses today: the following whole
/// record is taken for part of a torn tail, dropped, and the journal cut
/// back to the batch's offset, destroying it on disk.
///
/// - Cut inside the batch's 8-byte frame header: the reader takes the
///   first bytes of the next record as the rest of the frame header, the
///   stated length runs past the end, and it looks for a whole record only
///   after those 8 bytes (`whole_frame_in(&rest)` in
///   `journal/recovery.rs`), past where the next one starts.
/// - Cut where the stated length reaches exactly the end of the file: the
///   checksum fails with `end == len`, which is taken for a torn tail
///   without looking for a whole record inside the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_that_hides_the_next_record_inside_the_damaged_frame_refuses_the_start() {
    let (dir, journal, start, end) = batch_then_a_record().await;
    let to_the_end = end - (journal.len() as u64 - end);
    for len in (start + 1..start + 8).chain([to_the_end]) {
        refused_when_cut(dir.path(), &journal, start, end, len);
    }
}

/// A record that reads whole but that recovery cannot apply (here a loan
/// declared in a second account) refuses the start, naming the file and
/// the record's offset, as damage does: the operator must know where to
/// look. It used to be reported as a failed write, with neither.
#[test]
fn a_record_that_cannot_be_applied_refuses_the_start_naming_the_file_and_offset() {
    use compliance_guard::journal::{FileWriter, JournalError, Layout};
    use compliance_guard::pb::journal::{Debt, Record, record::Op};
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        dir: dir.path().to_owned(),
    };
    std::fs::create_dir_all(layout.journal_dir()).unwrap();
    let debt = |account: &str| Record {
        op: Some(Op::Debt(Debt {
            person_id: "BO-RECV-0001".into(),
            debt_id: account.into(),
            loan_ids: vec!["L1".into()],
            at: None,
        })),
    };
    let path = layout.snapshot(1);
    let mut w = FileWriter::create(&path, 1).unwrap();
    w.push(&debt("D1")).unwrap();
    w.push(&debt("D2")).unwrap();
    w.finish().unwrap();
    // The second record starts after the header and the first frame.
    let first = std::fs::metadata(&path).unwrap().len() / 2;
    let Err(err) = crate::support::library::open_with(dir.path(), u64::MAX) else {
        panic!("a start over a record that cannot be applied must be refused");
    };
    let JournalError::Corrupt {
        path: named,
        offset,
        reason,
    } = &err
    else {
        panic!("expected Corrupt naming the file and offset, got {err:?}");
    };
    assert_eq!(named, &path);
    assert!(*offset > 8 && *offset > first - 8, "offset {offset}");
    assert_eq!(
        reason,
        "a journal record (debt) cannot be applied: loan `L1` already belongs to debt `D1`; declare `D1` without it first"
    );
    let text = err.to_string();
    assert!(text.contains("snapshot-00000001.snap"), "{text}");
    assert!(text.contains(&offset.to_string()), "{text}");
}

/// A person's aliases survive the journal and a snapshot: a borrower first
/// known as `ext-crm-9` gets our id `BO-0000-00000001`, and a link then
/// makes the lender's own id `BO-ALIAS-0009` an alias of that person. Read
/// by the alias live, after reading the journal back, after compacting it
/// into a snapshot and after reading the snapshot back, the interaction is
/// the same person's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_aliases_survive_the_journal_and_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = {
        let (g, _) = open(d, u64::MAX).unwrap();
        let (created, _) = g
            .create(
                "ext-crm-9",
                &placed_input("crm-call-9", 0),
                &caller(),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(created.person_id, "BO-0000-00000001");
        let linked = g
            .link_person("BO-ALIAS-0009", "crm-9", now())
            .await
            .unwrap();
        assert_eq!(
            linked, "BO-0000-00000001",
            "the link keeps the person known by ext-"
        );
        created.id
    };
    let read = |g: &Guard, what: &str| {
        for name in ["BO-ALIAS-0009", "ext-crm-9", "BO-0000-00000001"] {
            let found = g
                .get(Some(name), &id, &caller())
                .unwrap_or_else(|e| panic!("{what}: `{name}` does not name the person: {e}"));
            assert_eq!(found.person_id, "BO-0000-00000001", "{what}: {name}");
        }
    };
    // The journal read back, then compacted into a snapshot (compact_after
    // 0), then the snapshot alone read back.
    for (compact_after, what) in [
        (u64::MAX, "from the journal"),
        (0, "compacting into a snapshot"),
        (u64::MAX, "from the snapshot"),
    ] {
        let (g, recovered) = open(d, compact_after).unwrap();
        read(&g, what);
        if what == "from the snapshot" {
            assert_eq!(
                recovered.journal_records, 0,
                "{what}: only the snapshot is read"
            );
            assert!(recovered.snapshot_records > 0, "{what}");
        }
    }
}
