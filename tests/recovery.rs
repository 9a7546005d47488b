//! Recovery of what a crash or damage leaves in a data directory, read
//! back through `Guard::open`.
//!
//! A data directory of this release holds the store (the journal
//! materialized, `store/history.sqlite3`, with the journal position it
//! reaches) and the journal after that position, written as version 2. An
//! older release's directory holds snapshots and journals of version 1;
//! the first start reads them exactly as that release did and migrates
//! them into the store. So both are read here:
//!
//! - an older release's files, at migration: a damaged snapshot; a
//!   snapshot cut at a record boundary; damage in a journal older than the
//!   snapshot or at the end of one that is not the newest; what a crash
//!   during that release's compaction left (both generations, a temporary
//!   snapshot);
//! - this release's files: a crash at each step of a migration or of a
//!   materialization (the store committed, the journal rolled, the
//!   position moved: the real binary aborted there), with a whole journal
//!   or one ending in a record cut short; a start that cannot write the
//!   store; damage in a journal older than the store's position, or at the
//!   end of one that is not the newest;
//! - both: a journal cut inside the one frame of a reserving Check, and
//!   cut inside it with a whole record after it.
//!
//! Each start either recovers every acknowledged write exactly (every
//! interaction, restriction, reservation and a stored answer's retry
//! compared whole) or refuses, naming the file and the byte offset, and
//! leaves the files as they are. None starts with less, and none leaves a
//! directory that an older release would read with less.
//!
//! One history is written across three generations (see [`history`]),
//! in this release's layout, and the older release's files for the same
//! history are built from it (see [`older`]); each test lays some of them
//! out in a fresh data directory, as a crash or damage would leave them.
//!
//! A stored answer is kept for retries for 24 hours: the store forgets one
//! older than that by the clock when it materializes it. This history is
//! written at `AT`, long past, so an answer is retried only by a start
//! that read it from the journal or an older release's files; the store's
//! keeping of an answer is the test
//! [`a_stored_answer_is_kept_by_the_store_for_its_24_hours_only`].

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, TimeZone, Utc};
use compliance_guard::guard::{Guard, Reservation, Sizes};
use compliance_guard::index::{IndexConfig, ListQuery, MAX_LIMIT};
use compliance_guard::journal::{self, JournalError, Layout, Position, Recovered};
use compliance_guard::ledger::{Ledger, REQUEST_ID_TTL_HOURS};
use compliance_guard::model::{ContactInput, Interaction, InteractionInput, Status};
use compliance_guard::pb::journal::record::Op;
use compliance_guard::request::{CheckInput, CheckOutcome};
use compliance_guard::restrictions::{Restriction, RestrictionInput};
use compliance_guard::rules::{LoadOptions, RuleSet};
use compliance_guard::store::{self, Store};

use crate::ops::durability::{Frame, HEADER_LEN, caller, frames, journal_files, placed_input};
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

const JOURNAL_0: &str = "journal-00000000.log";
const JOURNAL_1: &str = "journal-00000001.log";
const JOURNAL_2: &str = "journal-00000002.log";
const JOURNAL_3: &str = "journal-00000003.log";
const SNAPSHOT_1: &str = "snapshot-00000001.snap";
const COUNT_1: &str = "snapshot-00000001.count";
const SNAPSHOT_2: &str = "snapshot-00000002.snap";
const COUNT_2: &str = "snapshot-00000002.count";
/// Where an older release's compaction into generation 2 wrote before the
/// rename.
const SNAPSHOT_2_TMP: &str = "snapshot-00000002.tmp";

/// A journal just opened by this release: the header alone, version 2.
const NEW_JOURNAL: [u8; 8] = *b"CGJL\x02\x00\x00\x00";

/// Records the store holds once generation 0 is materialized: P1, P2 and
/// P3, the debt, the two restrictions, four interactions and two open
/// reservations. Not `req-1`'s and `req-2`'s answers: stored at `AT`,
/// they are past their 24 hours by the clock, and the store forgets them.
const STORED_GEN0: u64 = 3 + 1 + 2 + 4 + 2;
/// Once generation 1 is too: three more interactions (seven, one of them
/// deleted), `req-2`'s reservation closed.
const STORED_GEN1: u64 = 3 + 1 + 2 + 7 + 1;
/// The whole history: P4 too, `r-6` and `req-4`'s interaction, and
/// `req-4`'s reservation (its answer forgotten, as the others).
const STORED_LAST: u64 = 4 + 1 + 2 + 9 + 2;
/// An older release's snapshot of the state after generation 0: as
/// [`STORED_GEN0`], and the two answers, which a snapshot kept.
const SNAPSHOT_1_RECORDS: u64 = STORED_GEN0 + 2;
/// Its snapshot of the state after generation 1: as [`STORED_GEN1`], and
/// the two answers.
const SNAPSHOT_2_RECORDS: u64 = STORED_GEN1 + 2;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(AT, 0).unwrap()
}

fn rfc(seconds: i64) -> String {
    Utc.timestamp_opt(seconds, 0).unwrap().to_rfc3339()
}

fn pos(generation: u64, records: u64) -> Position {
    Position {
        generation,
        records,
    }
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
        // What memory holds whole is not state: a start holds less of it.
        sizes: compliance_guard::guard::Sizes {
            whole_in_memory: 0,
            ..g.sizes()
        },
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

/// The format version a file's header gives.
fn version(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[4], bytes[5]])
}

/// `bytes` with the header's version set to `v`.
fn with_version(bytes: &[u8], v: u16) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[4..6].copy_from_slice(&v.to_le_bytes());
    out
}

/// The journal an older release wrote for the same records: this
/// release's journal (version 2) with the header of version 1, the only
/// difference between the two.
fn v1(journal: &[u8]) -> Vec<u8> {
    assert_eq!(
        version(journal),
        2,
        "this release writes journals of version 2"
    );
    with_version(journal, 1)
}

/// The records of a journal or snapshot of either version
/// ([`frames`] reads version 1).
fn frames_of(bytes: &[u8], kind: u16) -> Vec<Frame> {
    assert!(
        matches!(version(bytes), 1 | 2),
        "version {}",
        version(bytes)
    );
    // `frames` checks the version this release writes for the kind.
    frames(&with_version(bytes, if kind == 0 { 2 } else { 1 }), kind)
}

/// How many records (frames) a stage's file holds.
fn records_in(files: &Files, name: &str, kind: u16) -> u64 {
    frames_of(&files[name], kind).len() as u64
}

// ---- the store -----------------------------------------------------------------

/// A data directory in this release's layout, as a stage left it: its
/// `journal/` and its store's files (the store's file, and the
/// write-ahead log and its index that a reader beside it may leave).
#[derive(Clone)]
struct Image {
    journal: Files,
    store: Files,
}

/// The image of a data directory no process has open.
fn image(dir: &Path) -> Image {
    let store: Files = std::fs::read_dir(dir.join(store::STORE_DIR))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    assert!(store.contains_key(store::STORE_FILE), "{:?}", store.keys());
    // Closed, the store holds everything in its file: the log a reader
    // beside it (`Store::open_read_only`) leaves is empty.
    let wal = format!("{}-wal", store::STORE_FILE);
    assert!(store.get(&wal).is_none_or(Vec::is_empty), "{wal}");
    Image {
        journal: read_files(dir),
        store,
    }
}

/// A fresh data directory holding `image`.
fn dir_of(image: &Image) -> tempfile::TempDir {
    let dir = dir_with(all(&image.journal));
    let store_dir = dir.path().join(store::STORE_DIR);
    std::fs::create_dir(&store_dir).unwrap();
    for (name, bytes) in &image.store {
        std::fs::write(store_dir.join(name), bytes).unwrap();
    }
    dir
}

/// The journal position the store of `dir` reaches; `None` when it has
/// no store or a store that was never written (nothing migrated).
fn store_position(dir: &Path) -> Option<Position> {
    Store::open_read_only(dir)
        .unwrap()
        .and_then(|s| s.position().unwrap())
}

/// True if a release before the store refuses `dir`, as a directory whose
/// history is in the store must be refused by it: such a release reads
/// the newest snapshot and the journals from its generation on (every
/// journal without one), knows only version 1, and never looks at the
/// store. A directory it reads whole is safe only while those files are
/// the whole history; once a start has migrated them, one of them must be
/// of version 2, or that release starts with less.
fn an_older_release_refuses(dir: &Path) -> bool {
    let layout = Layout {
        dir: dir.to_owned(),
    };
    let (snaps, logs) = layout.generations().unwrap();
    let base = snaps.last().copied();
    logs.into_iter()
        .filter(|g| base.is_none_or(|b| *g >= b))
        .any(|g| version(&std::fs::read(layout.journal(g)).unwrap()) != 1)
}

/// What a start that migrated (or materialized) into generation `next`
/// leaves, read back: `journal/` holds that generation's journal only,
/// its header alone (version 2), so that an older release refuses the
/// directory; the store is at that journal's start; and a start reads
/// `stored` records from the store and none from the journal, and
/// recovers `expected` exactly.
fn migrated(dir: &Path, next: u64, stored: u64, expected: &State, what: &str) {
    let name = format!("journal-{next:08}.log");
    assert_eq!(
        journal_files(dir),
        std::slice::from_ref(&name),
        "{what}: migrated"
    );
    holds(
        &file(dir, &name),
        &NEW_JOURNAL,
        &format!("{what}: a new journal"),
    );
    assert!(an_older_release_refuses(dir), "{what}");
    assert_eq!(store_position(dir), Some(pos(next, 0)), "{what}");
    let (g, replayed) = open(dir, u64::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        replayed,
        Recovered {
            generation: next,
            snapshot_records: stored,
            journal_records: 0,
            cut: None,
            end: pos(next, 0),
        },
        "{what}: from the store"
    );
    assert_eq!(read_back(&g, expected), *expected, "{what}: from the store");
}

/// A start of the real binary on `dir` that crashes (aborts, as `kill -9`
/// would stop it) at `step` of opening (`COMPLIANCE_GUARD_TEST_ABORT_AT`).
fn crash_at(dir: &Path, compact_after: u64, step: &str) {
    let out = crate::support::process::command()
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--insecure-no-auth"])
        .args(["--durability", "sync", "--compact-after"])
        .arg(compact_after.to_string())
        .arg("--data-dir")
        .arg(dir)
        .env("COMPLIANCE_GUARD_TEST_ABORT_AT", step)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{step}: the start did not abort there: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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

// ---- an older release's files ------------------------------------------------

/// What an older release's compaction into generation `g` wrote from its
/// files `files`: the history read back (the newest snapshot and the
/// journals after it, as `journal::recover` reads them) into a ledger, and
/// the ledger's snapshot written with its count
/// (`journal::write_snapshot`), as that release's start did. Returns the
/// snapshot and its count, by name.
fn older(files: &Files, g: u64) -> Files {
    let dir = dir_with(all(files));
    let layout = Layout {
        dir: dir.path().to_owned(),
    };
    let mut ledger = Ledger::new(IndexConfig::default());
    journal::recover(&layout, |r| {
        ledger
            .apply_record(r)
            .map_err(|e| JournalError::Failed(e.to_string()))
    })
    .unwrap();
    journal::write_snapshot(&layout, g, ledger.snapshot()).unwrap();
    [layout.snapshot(g), layout.snapshot_count(g)]
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

// ---- one history over three generations -----------------------------------

/// One history, kept at each stage, in this release's layout and in an
/// older release's. In this release's, generation 0 is an empty store and
/// a journal; each later generation is the store, into which a start
/// materialized the generation before, and a journal after it. In an
/// older release's, generation 0 is a journal only; each later generation
/// is a snapshot of everything before it and a journal after it, made by
/// a start of that release that compacted: the same journal records, in
/// journals of version 1.
struct History {
    /// An older release's generation 0: its journal.
    gen0: Files,
    /// An older release's generation 1: its snapshot (and count) and
    /// journal, as a start compacting them into generation 2 found them.
    gen1: Files,
    state1: State,
    /// An older release's generation 2 just before the last reserving
    /// Check.
    before_last: Files,
    state_before_last: State,
    /// An older release's generation 2 after it: the whole history.
    last: Files,
    state_last: State,
    /// This release's generation 0: the empty store at (0, 0), and the
    /// journal of [`History::gen0`].
    store_gen0: Image,
    /// This release's generation 1: the store at (1, 0), holding
    /// generation 0, and the journal of [`History::gen1`].
    store_gen1: Image,
    /// This release's generation 2: the store at (2, 0), holding
    /// generations 0 and 1, and the journal of [`History::last`].
    store_last: Image,
    /// `req-1`'s answer (P3), kept for retries while it is read from a
    /// journal or a snapshot.
    answer: CheckOutcome,
    /// `req-4`'s answer (P4), the last frame of generation 2.
    last_answer: CheckOutcome,
}

/// Writes the history through the guard, closing and reopening the data
/// directory so that each start materializes the generation before into
/// the store; and builds an older release's files for it.
async fn history() -> History {
    // The store forgets an answer older than its 24 hours by the clock
    // (the counts of records it holds, `STORED_*`, say so).
    assert!(
        Utc::now() - Duration::hours(REQUEST_ID_TTL_HOURS) > now(),
        "the clock is past `AT` and a day"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut ids = Vec::new();

    // Generation 0: an empty store and a journal.
    let (g, replayed) = open(d, u64::MAX).unwrap();
    assert_eq!(replayed, Recovered::default(), "a fresh directory");
    assert_eq!(journal_files(d), [JOURNAL_0]);
    assert_eq!(store_position(d), Some(pos(0, 0)), "an empty store");
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
    drop(g);
    let store_gen0 = image(d);
    let gen0: Files = [(JOURNAL_0.to_owned(), v1(&store_gen0.journal[JOURNAL_0]))].into();

    // Generation 1: the start materializes generation 0 into the store.
    let (g, replayed) = open(d, 0).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 0,
            snapshot_records: 0,
            journal_records: 7,
            cut: None,
            end: pos(0, 7),
        },
        "one frame per operation"
    );
    assert_eq!(journal_files(d), [JOURNAL_1]);
    holds(&file(d, JOURNAL_1), &NEW_JOURNAL, "generation 1's journal");
    assert_eq!(store_position(d), Some(pos(1, 0)));
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
    // Enough records that an older release's start compacted again (past
    // half its snapshot).
    for (m, ext) in ["r-3", "r-4", "r-5"].into_iter().enumerate() {
        ids.push(create(&g, P1, ext, 50 + m as i64).await);
    }
    let state1 = state(&g, &ids);
    drop(g);
    let store_gen1 = image(d);
    let mut gen1 = older(&gen0, 1);
    gen1.insert(JOURNAL_1.to_owned(), v1(&store_gen1.journal[JOURNAL_1]));
    assert_eq!(
        gen1.keys().collect::<Vec<_>>(),
        [JOURNAL_1, COUNT_1, SNAPSHOT_1]
    );
    assert_eq!(records_in(&gen1, SNAPSHOT_1, 1), SNAPSHOT_1_RECORDS);
    assert_eq!(records_in(&gen1, JOURNAL_1, 0), 8);

    // Generation 2: the start materializes generation 1 into the store.
    let (g, replayed) = open(d, 0).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: STORED_GEN0,
            journal_records: 8,
            cut: None,
            end: pos(1, 8),
        }
    );
    assert_eq!(journal_files(d), [JOURNAL_2]);
    assert_eq!(store_position(d), Some(pos(2, 0)));
    ids.push(create(&g, P1, "r-6", 60).await);
    let journal_before_last = std::fs::read(file(d, JOURNAL_2)).unwrap();
    let state_before_last = state(&g, &ids);
    let last_answer = reserved(&g, P4, "req-4").await;
    ids.push(last_answer.interaction_id.clone().unwrap());
    let state_last = state(&g, &ids);
    drop(g);
    let store_last = image(d);
    let snapshot_2 = older(&gen1, 2);
    assert_eq!(records_in(&snapshot_2, SNAPSHOT_2, 1), SNAPSHOT_2_RECORDS);
    let with_journal = |journal: &[u8]| {
        let mut files = snapshot_2.clone();
        files.insert(JOURNAL_2.to_owned(), v1(journal));
        files
    };
    History {
        before_last: with_journal(&journal_before_last),
        last: with_journal(&store_last.journal[JOURNAL_2]),
        gen0,
        gen1,
        state1,
        state_before_last,
        state_last,
        store_gen0,
        store_gen1,
        store_last,
        answer,
        last_answer,
    }
}

// ---- 1. a damaged snapshot --------------------------------------------------

/// An older release's newest snapshot, read once by the migration: every
/// byte flipped in turn, and the snapshot cut short at every byte inside a
/// record. The start is refused, naming the snapshot and the offset of the
/// damaged record, leaves the files as they are, and migrates nothing
/// (the store holds no position). A damaged header is refused as not a
/// journal of ours, naming the file. With the snapshot restored, the same
/// directory migrates whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_refuses_the_start_naming_the_snapshot_and_the_offset() {
    let h = history().await;
    let snap = &h.last[SNAPSHOT_2];
    let records = frames_of(snap, 1);
    assert_eq!(
        records.len() as u64,
        SNAPSHOT_2_RECORDS,
        "the whole state, one record per thing"
    );
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
        (
            4,
            format!(
                "it is version {}; this release reads versions 1 to 2",
                1 ^ 0x5a
            ),
        ),
        (6, format!("it is of kind {}, expected 1", 1 ^ 0x5a)),
    ] {
        let mut damaged = snap.clone();
        damaged[byte] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let err = refused(dir.path(), u64::MAX, &format!("header flip at {byte}"));
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` is not a compliance-guard journal this release reads: {reason}",
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
                "`{}` is not a compliance-guard journal this release reads: only {len} bytes, shorter than the header",
                path.display()
            )
        );
    }

    // Nothing else was touched, nothing migrated, and the snapshot
    // restored migrates whole: read as the older release read it, then
    // from the store.
    std::fs::write(&path, snap).unwrap();
    holds_files(dir.path(), &h.last, "after the refusals");
    assert_eq!(store_position(dir.path()), None, "nothing migrated");
    let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 2,
            snapshot_records: SNAPSHOT_2_RECORDS,
            journal_records: 2,
            cut: None,
            end: pos(2, 2),
        }
    );
    assert_eq!(read_back(&g, &h.state_last), h.state_last);
    retried(&g, P3, &h.answer, "req-1").await;
    retried(&g, P4, &h.last_answer, "req-4").await;
    drop(g);
    migrated(dir.path(), 3, STORED_LAST, &h.state_last, "restored");
}

/// A snapshot cut exactly at a record boundary must be refused too: it was
/// renamed into place whole, so fewer records is damage, and migrating it
/// would start with less, and for good (the migration deletes it).
///
/// The snapshot's own bytes have no record count and no end marker, so
/// such a snapshot reads as a whole one (down to the header alone, an
/// empty state); the count written beside it before its rename
/// (`snapshot-N.count`) is what tells, and the start is refused at the end
/// of the last whole record, migrating nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_at_a_record_boundary_refuses_the_start() {
    let h = history().await;
    let snap = &h.last[SNAPSHOT_2];
    let dir = dir_with(all(&h.last));
    let path = file(dir.path(), SNAPSHOT_2);
    let records = frames_of(snap, 1);
    assert_eq!(records.len() as u64, SNAPSHOT_2_RECORDS);
    for f in records {
        let cut = &snap[..f.start as usize];
        std::fs::write(&path, cut).unwrap();
        let what = format!("cut at {} ({SNAPSHOT_2_RECORDS} records whole)", f.start);
        let err = refused(dir.path(), u64::MAX, &what);
        refused_at(&err, &path, f.start, &what);
        holds(&path, cut, &what);
        assert_eq!(store_position(dir.path()), None, "{what}: nothing migrated");
    }
    for name in [JOURNAL_2, COUNT_2] {
        holds(&file(dir.path(), name), &h.last[name], "the other files");
    }
}

// ---- 2. damage in a journal that is not the newest ------------------------

/// A journal that the history read does not need is not read, and damage
/// in it does not stop the start; the start removes it.
///
/// - An older release's journal older than its newest snapshot, left by a
///   crash during that release's compaction (after the new snapshot's
///   rename, before the old files' removal): everything in it is in the
///   snapshot. The migration reads the snapshot and its own generation's
///   journal only, recovers the whole history, and removes the older
///   journal with the other migrated files.
/// - This release's journal older than the store's position, left by a
///   crash after the position moved and before the removal (see
///   [`a_crash_during_a_materialization_leaves_what_the_next_start_reads_exactly`]):
///   everything in it is in the store. The start reads the store and the
///   journal of the position's generation, and removes the older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_a_journal_older_than_the_snapshot_or_the_store_does_not_stop_the_start() {
    let h = history().await;
    let damaged = |old: &[u8]| {
        let old_frames = frames_of(old, 0);
        let middle = &old_frames[old_frames.len() / 2];
        let last = old_frames.last().unwrap();
        let mut flipped = old.to_vec();
        flipped[((middle.start + middle.end) / 2) as usize] ^= 0x5a;
        let cut = old[..(last.start + 5) as usize].to_vec();
        [("a flipped byte", flipped), ("a cut record", cut)]
    };

    // An older release's files.
    for (what, leftover) in damaged(&h.gen1[JOURNAL_1]) {
        let dir = dir_with(all(&h.last).chain([(JOURNAL_1, leftover.as_slice())]));
        let (g, replayed) =
            open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records: SNAPSHOT_2_RECORDS,
                journal_records: 2,
                cut: None,
                end: pos(2, 2),
            },
            "{what}"
        );
        assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        retried(&g, P4, &h.last_answer, "req-4").await;
        drop(g);
        migrated(dir.path(), 3, STORED_LAST, &h.state_last, what);
    }

    // This release's files.
    for (what, leftover) in damaged(&h.store_gen1.journal[JOURNAL_1]) {
        let dir = dir_of(&h.store_last);
        std::fs::write(file(dir.path(), JOURNAL_1), &leftover).unwrap();
        let (g, replayed) =
            open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records: STORED_GEN1,
                journal_records: 2,
                cut: None,
                end: pos(2, 2),
            },
            "{what}, beside the store"
        );
        assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
        retried(&g, P4, &h.last_answer, "req-4").await;
        drop(g);
        let what = format!("{what}, beside the store: the older journal is removed");
        holds_files(dir.path(), &h.store_last.journal, &what);
        assert_eq!(store_position(dir.path()), Some(pos(2, 0)), "{what}");
    }
}

/// Two journals after the snapshot (or the store's position) are read in
/// order, and then a record cut short or damaged at the end of the first
/// is not a torn tail (a crash cuts only the newest file): the start is
/// refused, naming the first journal and the record's offset, and neither
/// file is changed.
///
/// - An older release's files: journal 0 then journal 1, no snapshot. That
///   release never wrote this layout: it is what is left when, after a
///   crash during its compaction left generation 0's journal beside
///   snapshot 1, snapshot 1 is moved away (as a refusal suggests for a
///   damaged file): journal 0 then journal 1 are the whole history again,
///   and the migration reads both.
/// - This release's files: a crash while materializing generation 0, once
///   generation 1's journal was created but before the store's position
///   moved to it (`journal-rolled`), then a start that served on, writing
///   generation 1's journal. The store holds journal 0's seven records, so
///   a journal 0 cut short holds fewer than the store says: refused at the
///   same offset, saying so; without journal 0 at all, refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_at_the_end_of_a_journal_that_is_not_the_newest_refuses_the_start() {
    let h = history().await;
    let first = &h.gen0[JOURNAL_0];
    let second = &h.gen1[JOURNAL_1];
    let layout = |first: &[u8]| {
        let files: [(&str, &[u8]); 2] = [(JOURNAL_0, first), (JOURNAL_1, second)];
        dir_with(files)
    };

    // Whole: both read, in order, and migrated.
    let dir = layout(first);
    let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: 0,
            journal_records: 7 + 8,
            cut: None,
            end: pos(1, 8),
        }
    );
    assert_eq!(read_back(&g, &h.state1), h.state1);
    retried(&g, P3, &h.answer, "req-1").await;
    drop(g);
    migrated(dir.path(), 2, STORED_GEN1, &h.state1, "journals 0 and 1");

    let records = frames_of(first, 0);
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
    assert_eq!(store_position(dir.path()), None, "nothing migrated");

    // This release's files: the store at (0, 7), journals 0 and 1.
    let dir = dir_of(&h.store_gen0);
    crash_at(dir.path(), 0, "journal-rolled");
    assert_eq!(journal_files(dir.path()), [JOURNAL_0, JOURNAL_1]);
    assert_eq!(store_position(dir.path()), Some(pos(0, 7)));
    let first = &h.store_gen0.journal[JOURNAL_0];
    let second = &h.store_gen1.journal[JOURNAL_1];
    holds(
        &file(dir.path(), JOURNAL_0),
        first,
        "journal 0, materialized",
    );
    holds(&file(dir.path(), JOURNAL_1), &NEW_JOURNAL, "journal 1, new");
    std::fs::write(file(dir.path(), JOURNAL_1), second).unwrap();
    let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: STORED_GEN0,
            journal_records: 8,
            cut: None,
            end: pos(1, 8),
        },
        "the store, journal 0 after its seven records (none), journal 1"
    );
    assert_eq!(read_back(&g, &h.state1), h.state1);
    drop(g);
    holds(&file(dir.path(), JOURNAL_0), first, "journal 0, read");
    holds(&file(dir.path(), JOURNAL_1), second, "journal 1, read");

    let path = file(dir.path(), JOURNAL_0);
    let records = frames_of(first, 0);
    let last = records.last().unwrap();
    let fewer = "the store holds 7 records of this journal, but it has only 6 whole records";
    for len in last.start + 1..last.end {
        let damaged = &first[..len as usize];
        std::fs::write(&path, damaged).unwrap();
        let what = format!("beside the store, cut at {len}");
        let err = refused(dir.path(), u64::MAX, &what);
        assert_eq!(refused_at(&err, &path, last.start, &what), fewer, "{what}");
        holds(&path, damaged, &what);
        holds(&file(dir.path(), JOURNAL_1), second, &what);
    }
    for (n, f) in records.iter().enumerate() {
        let mut damaged = first.clone();
        damaged[((f.start + 8 + f.end) / 2) as usize] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        let what = format!("beside the store, a flipped byte in record {n}");
        let err = refused(dir.path(), u64::MAX, &what);
        let reason = refused_at(&err, &path, f.start, &what);
        // The last record damaged reads as a torn tail: six whole records.
        let expected = if n + 1 == records.len() {
            fewer
        } else {
            "the checksum does not match"
        };
        assert_eq!(reason, expected, "{what}");
    }
    std::fs::remove_file(&path).unwrap();
    let err = refused(dir.path(), u64::MAX, "without journal 0");
    let reason = refused_at(&err, &path, 0, "without journal 0");
    assert_eq!(
        reason,
        "the store holds 7 records of this journal, which is missing"
    );
    holds(&file(dir.path(), JOURNAL_1), second, "the newest journal");
    assert_eq!(store_position(dir.path()), Some(pos(0, 7)), "unchanged");
}

// ---- 3. a crash during a compaction, a migration or a materialization -------

/// A crash while an older release's compaction wrote snapshot 2 leaves its
/// temporary file beside generation 1, at any length (nothing, the header,
/// half, all of it but not renamed). The migration reads generation 1 as
/// it was, exactly, and neither reads nor removes the temporary file (it
/// is not a snapshot: only `snapshot-N.snap` is); the store then holds
/// generation 1 exactly.
///
/// (Before the store, the next compaction wrote the temporary file again
/// and renamed it into place; no start writes a snapshot any more.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_snapshot_left_by_a_crash_during_compaction_is_not_read() {
    let h = history().await;
    let new = &h.last[SNAPSHOT_2];
    for len in [0, HEADER_LEN as usize, new.len() / 2, new.len()] {
        let tmp = &new[..len];
        let dir = dir_with(all(&h.gen1).chain([(SNAPSHOT_2_TMP, tmp)]));
        let what = format!("a temporary file of {len} bytes");
        let (g, replayed) = open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            replayed,
            Recovered {
                generation: 1,
                snapshot_records: SNAPSHOT_1_RECORDS,
                journal_records: 8,
                cut: None,
                end: pos(1, 8),
            },
            "{what}"
        );
        assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        drop(g);
        assert_eq!(journal_files(dir.path()), [JOURNAL_2, SNAPSHOT_2_TMP]);
        holds(&file(dir.path(), SNAPSHOT_2_TMP), tmp, "the temporary file");
        // Moved away by hand: nothing else is left.
        std::fs::remove_file(file(dir.path(), SNAPSHOT_2_TMP)).unwrap();
        migrated(dir.path(), 2, STORED_GEN1, &h.state1, &what);
    }
}

/// A crash during an older release's compaction after snapshot 2 was
/// renamed into place but before generation 1's files were all removed
/// (both, the snapshot or the journal left), before the new journal was
/// created, or after a start that served on: the migration reads snapshot
/// 2 and its journal only, recovers the history exactly, and removes
/// generation 1's files with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_generations_left_by_a_crash_during_compaction_read_the_newer_exactly() {
    let h = history().await;
    let snap2 = (SNAPSHOT_2, h.last[SNAPSHOT_2].as_slice());
    let snap1 = (SNAPSHOT_1, h.gen1[SNAPSHOT_1].as_slice());
    let journal1 = (JOURNAL_1, h.gen1[JOURNAL_1].as_slice());
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
                snapshot_records: SNAPSHOT_2_RECORDS,
                journal_records: 0,
                cut: None,
                end: pos(2, 0),
            },
            "{what}"
        );
        assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        drop(g);
        migrated(dir.path(), 3, STORED_GEN1, &h.state1, what);

        // After a start that served on, writing generation 2's journal.
        let journal2 = (JOURNAL_2, h.last[JOURNAL_2].as_slice());
        let dir = dir_with(old.iter().copied().chain([snap2, journal2]));
        let (g, replayed) = open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            replayed,
            Recovered {
                generation: 2,
                snapshot_records: SNAPSHOT_2_RECORDS,
                journal_records: 2,
                cut: None,
                end: pos(2, 2),
            },
            "{what}, then served on"
        );
        assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
        retried(&g, P3, &h.answer, "req-1").await;
        retried(&g, P4, &h.last_answer, "req-4").await;
        drop(g);
        migrated(dir.path(), 3, STORED_LAST, &h.state_last, what);
    }
}

/// The steps of a migration or a materialization a crash can stop after:
/// the store committed (its records and its position, the end of what was
/// read), the next generation's journal created, the store's position
/// moved to it. Before the first, the store is as it was; after the last,
/// only the removal of what the store holds is left.
const STEPS: [&str; 3] = ["store-committed", "journal-rolled", "position-moved"];

/// What a crash at `step` of a start on generation 1 (an older release's
/// or this release's, its journal of eight records) leaves in `journal/`,
/// besides generation 1's files, and the store's position.
fn left_by(step: &str) -> (Vec<&'static str>, Position) {
    match step {
        "store-committed" => (vec![], pos(1, 8)),
        "journal-rolled" => (vec![JOURNAL_2], pos(1, 8)),
        "position-moved" => (vec![JOURNAL_2], pos(2, 0)),
        other => panic!("{other}"),
    }
}

/// What the start after a crash at `step` reads: the store, written whole
/// (generation 1's state, its answers forgotten), then the journals after
/// its position: nothing.
fn read_after(step: &str) -> Recovered {
    let (generation, end) = match step {
        // Journal 1 after its eight records.
        "store-committed" => (1, pos(1, 8)),
        // Journal 1 after its eight records, then journal 2, empty.
        "journal-rolled" => (2, pos(2, 0)),
        // Journal 2, empty; journal 1 is before the position.
        "position-moved" => (2, pos(2, 0)),
        other => panic!("{other}"),
    };
    Recovered {
        generation,
        snapshot_records: STORED_GEN1,
        journal_records: 0,
        cut: None,
        end,
    }
}

/// What a start reads of `dir`, whose store holds generation 1 and whose
/// journals hold no record after the store's position: the store's
/// records, then the journals from the position's generation on, the
/// newest of them being the generation read and where the records end.
fn read_from_store(dir: &Path) -> Recovered {
    let at = store_position(dir).expect("a store");
    let layout = Layout {
        dir: dir.to_owned(),
    };
    let (_, logs) = layout.generations().unwrap();
    let newest = *logs.last().expect("a journal");
    Recovered {
        generation: newest,
        snapshot_records: STORED_GEN1,
        journal_records: 0,
        cut: None,
        end: if newest == at.generation {
            at
        } else {
            pos(newest, 0)
        },
    }
}

/// The real binary migrating an older release's generation 1, aborted (as
/// `kill -9` would stop it) after each step in turn. The crash leaves the
/// older files untouched beside the store, and the next start reads
/// exactly the same history, as a start from the store (the records it
/// read are counted as the store's), and again at the start after it.
///
/// And it completes the migration's promise: once a start has removed
/// the snapshot, an older release must refuse the directory (a journal it
/// would read is of version 2), not start with less. This fails today
/// after a crash once the store committed but before the new journal was
/// created (`store-committed`): the next start takes the store's position
/// (1, 8) as a store-era position, keeps writing journal 1, of version 1,
/// and removes snapshot 1; an older release then reads journal 1 alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_migration_leaves_what_the_next_start_reads_exactly() {
    let h = history().await;
    let mut readable_with_less = Vec::new();
    for step in STEPS {
        let dir = dir_with(all(&h.gen1));
        crash_at(dir.path(), u64::MAX, step);
        let (new, position) = left_by(step);
        let mut left: Vec<&str> = h.gen1.keys().map(String::as_str).chain(new).collect();
        left.sort_unstable();
        assert_eq!(journal_files(dir.path()), left, "{step}");
        for (name, bytes) in &h.gen1 {
            holds(&file(dir.path(), name), bytes, step);
        }
        if step != "store-committed" {
            holds(&file(dir.path(), JOURNAL_2), &NEW_JOURNAL, step);
        }
        assert_eq!(store_position(dir.path()), Some(position), "{step}");

        for start in ["the start after", "the next one"] {
            let what = format!("{step}: {start}");
            // The next one reads what the start after left (which the
            // migration's completion decides).
            let expected = match start {
                "the start after" => read_after(step),
                _ => read_from_store(dir.path()),
            };
            let (g, replayed) =
                open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(replayed, expected, "{what}");
            assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
            drop(g);
            assert!(
                !journal_files(dir.path())
                    .iter()
                    .any(|n| n.starts_with("snapshot-")),
                "{what}: the snapshot is removed"
            );
            if !an_older_release_refuses(dir.path()) {
                let files: Vec<String> = read_files(dir.path())
                    .iter()
                    .map(|(n, b)| format!("{n} (version {})", version(b)))
                    .collect();
                readable_with_less.push(format!("{what}: {files:?}"));
            }
        }
    }
    assert!(
        readable_with_less.is_empty(),
        "an older release would read these directories, and start with less: {readable_with_less:#?}"
    );
}

/// The real binary materializing this release's generation 1 (the store
/// at (1, 0), journal 1 of eight records), aborted after each step in
/// turn. Nothing is removed before the position moved; the next start
/// reads exactly the same history, and so does the start after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_materialization_leaves_what_the_next_start_reads_exactly() {
    let h = history().await;
    let journal_1 = &h.store_gen1.journal[JOURNAL_1];
    for step in STEPS {
        let dir = dir_of(&h.store_gen1);
        crash_at(dir.path(), 0, step);
        let (new, position) = left_by(step);
        let left: Vec<&str> = [JOURNAL_1].into_iter().chain(new).collect();
        assert_eq!(journal_files(dir.path()), left, "{step}");
        holds(&file(dir.path(), JOURNAL_1), journal_1, step);
        if step != "store-committed" {
            holds(&file(dir.path(), JOURNAL_2), &NEW_JOURNAL, step);
        }
        assert_eq!(store_position(dir.path()), Some(position), "{step}");

        for start in ["the start after", "the next one"] {
            let what = format!("{step}: {start}");
            let (g, replayed) =
                open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(replayed, read_after(step), "{what}");
            assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
            drop(g);
            // Journal 1 is removed once the position is past it (after a
            // crash at `journal-rolled`, the start moves the position to
            // the empty journal 2 first).
            let kept: Vec<&str> = match step {
                "store-committed" => vec![JOURNAL_1],
                _ => vec![JOURNAL_2],
            };
            assert_eq!(journal_files(dir.path()), kept, "{what}");
            assert!(an_older_release_refuses(dir.path()), "{what}");
        }
    }
}

/// As the two tests above, with generation 1's journal ending in a record
/// cut short (a crash mid-write before it): the migrating or materializing
/// start drops the cut record, and the start after its own crash must read
/// the same history, every whole record and nothing of the cut one.
///
/// The start cuts the torn record off journal 1 before the store's
/// commit: once the journal rolls, journal 1 is no longer the newest, and
/// a cut record there would read as damage. So at every step journal 1
/// holds its whole records only, and no later start reports a cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_materializing_a_journal_with_a_torn_tail_leaves_what_the_next_start_reads() {
    let h = history().await;
    // Half of the next record (`r-6`'s, the first of generation 2): its
    // frame header whole, its payload cut.
    let next = &frames_of(&h.store_last.journal[JOURNAL_2], 0)[0];
    let frame = &h.store_last.journal[JOURNAL_2][next.start as usize..next.end as usize];
    let torn = &frame[..frame.len() / 2];
    let mut refused_starts = Vec::new();
    for (layout, files, store) in [
        ("an older release's", &h.gen1, None),
        ("this release's", &h.store_gen1.journal, Some(&h.store_gen1)),
    ] {
        let journal_1 = [files[JOURNAL_1].as_slice(), torn].concat();
        for step in STEPS {
            let what = format!("{layout} generation 1, {step}");
            let dir = match store {
                Some(image) => dir_of(image),
                None => dir_with(all(files)),
            };
            let path = file(dir.path(), JOURNAL_1);
            std::fs::write(&path, &journal_1).unwrap();
            crash_at(dir.path(), 0, step);
            let (_, position) = left_by(step);
            assert_eq!(store_position(dir.path()), Some(position), "{what}");
            holds(&path, &files[JOURNAL_1], &format!("{what}: cut back"));
            let (g, replayed) = match open(dir.path(), u64::MAX) {
                Ok(opened) => opened,
                Err(e) => {
                    refused_starts.push(format!("{what}: {e}"));
                    continue;
                }
            };
            assert_eq!(replayed, read_after(step), "{what}");
            assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
            drop(g);
        }
    }
    assert!(
        refused_starts.is_empty(),
        "starts refused after a crash: {refused_starts:#?}"
    );
}

/// A start that cannot write the store refuses, naming the store's file,
/// and removes nothing: generation 1 is still whole, and once the obstacle
/// is gone the next start takes it into the store with every record.
/// (Before the store: a compaction that could not write its snapshot.)
///
/// - Migrating an older release's generation 1: a directory stands where
///   the store's file goes.
/// - Materializing this release's generation 1: a directory stands where
///   the store's write-ahead log goes.
///
/// A start that cannot create the next generation's journal once the
/// store committed is not set up here: whatever stands at that journal's
/// name is read first, as a journal, and refused before anything is
/// written. What it would leave is what a crash after the store's commit
/// leaves (`store-committed` in the crash tests above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_write_the_store_removes_nothing() {
    let h = history().await;
    let wal = format!("{}-wal", store::STORE_FILE);
    for (layout, files, image) in [
        ("an older release's", &h.gen1, None),
        ("this release's", &h.store_gen1.journal, Some(&h.store_gen1)),
    ] {
        let what = format!("{layout} generation 1");
        let (dir, obstacle, action, before) = match image {
            None => {
                let dir = dir_with(all(files));
                let obstacle = store::path_in(dir.path());
                (dir, obstacle, "opening", None)
            }
            Some(image) => {
                // Its log, if there is one, is empty (see `image`).
                let dir = dir_of(image);
                let obstacle = dir.path().join(store::STORE_DIR).join(&wal);
                let _ = std::fs::remove_file(&obstacle);
                (dir, obstacle, "creating the tables of", Some(pos(1, 0)))
            }
        };
        std::fs::create_dir_all(&obstacle).unwrap();
        let err = refused(dir.path(), 0, &what);
        let JournalError::Store { path, reason } = &err else {
            panic!("{what}: not refused for the store: {err:?}")
        };
        let named = store::path_in(dir.path());
        assert_eq!(path, &named, "{what}: {err}");
        let head = format!("{action} the store `{}`: ", named.display());
        assert!(reason.starts_with(&head), "{what}: {reason}");
        holds_files(dir.path(), files, &format!("{what}: a failed start"));
        assert!(obstacle.is_dir(), "{what}");

        std::fs::remove_dir(&obstacle).unwrap();
        assert_eq!(
            store_position(dir.path()),
            before,
            "{what}: the store unchanged"
        );
        let (g, replayed) = open(dir.path(), 0).unwrap();
        let expected = match image {
            None => Recovered {
                generation: 1,
                snapshot_records: SNAPSHOT_1_RECORDS,
                journal_records: 8,
                cut: None,
                end: pos(1, 8),
            },
            Some(_) => Recovered {
                generation: 1,
                snapshot_records: STORED_GEN0,
                journal_records: 8,
                cut: None,
                end: pos(1, 8),
            },
        };
        assert_eq!(replayed, expected, "{what}: the obstacle gone");
        assert_eq!(read_back(&g, &h.state1), h.state1, "{what}");
        if image.is_none() {
            retried(&g, P3, &h.answer, "req-1").await;
        }
        drop(g);
        migrated(dir.path(), 2, STORED_GEN1, &h.state1, &what);
    }
}

// ---- 4. a cut inside one operation's batch ------------------------------------

/// The last reserving Check wrote one frame: P4's person, the interaction,
/// the reservation and the stored answer. The journal cut at every byte
/// inside it (a crash mid-write): the start recovers everything before it
/// and nothing of it (no person, no interaction without its reservation, no
/// answer: a retry is decided anew, whole) and reports the cut at the
/// frame's offset. Whole, it is all there and a retry repeats its answer.
///
/// In this release's layout (the store, then generation 2's journal) the
/// start cuts the file back to the frame and writes on after it. In an
/// older release's (snapshot 2, then the journal) the migration takes
/// everything before the frame into the store and removes the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_cut_inside_a_reserving_checks_batch_keeps_nothing_of_it() {
    let h = history().await;
    let journal = &h.store_last.journal[JOURNAL_2];
    let before = h.before_last[JOURNAL_2].len() as u64;
    let after = journal.len() as u64;
    assert_eq!(after, h.last[JOURNAL_2].len() as u64);
    assert!(
        h.state_before_last.sizes.people < h.state_last.sizes.people,
        "P4 is new"
    );
    for (layout, older) in [("this release's", false), ("an older release's", true)] {
        for len in before..=after {
            let what = format!("{layout} journal cut at {len}");
            let dir = if older {
                let cut = v1(&journal[..len as usize]);
                let snapshot = [SNAPSHOT_2, COUNT_2].map(|n| (n, h.last[n].as_slice()));
                dir_with(snapshot.into_iter().chain([(JOURNAL_2, cut.as_slice())]))
            } else {
                let dir = dir_of(&h.store_last);
                std::fs::write(file(dir.path(), JOURNAL_2), &journal[..len as usize]).unwrap();
                dir
            };
            let path = file(dir.path(), JOURNAL_2);
            let (g, replayed) =
                open(dir.path(), u64::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
            let whole = u64::from(len == after);
            let cut = (len != before && len != after).then(|| {
                let (named, offset, reason) = replayed.cut.clone().expect("the cut reported");
                assert_eq!((&named, offset), (&path, before), "{what}");
                (named, offset, reason)
            });
            assert_eq!(
                replayed,
                Recovered {
                    generation: 2,
                    snapshot_records: if older {
                        SNAPSHOT_2_RECORDS
                    } else {
                        STORED_GEN1
                    },
                    journal_records: 1 + whole,
                    cut,
                    end: pos(2, 1 + whole),
                },
                "{what}"
            );
            if len == after {
                assert_eq!(read_back(&g, &h.state_last), h.state_last, "{what}");
                retried(&g, P4, &h.last_answer, "req-4").await;
                drop(g);
                if older {
                    migrated(dir.path(), 3, STORED_LAST, &h.state_last, &what);
                }
                continue;
            }
            assert_eq!(
                read_back(&g, &h.state_before_last),
                h.state_before_last,
                "{what}: everything before the frame, nothing of it"
            );
            if older {
                assert_eq!(journal_files(dir.path()), [JOURNAL_3], "{what}: migrated");
                assert_eq!(store_position(dir.path()), Some(pos(3, 0)), "{what}");
            } else {
                let cut_back = format!("{what}: the file is cut back to the frame");
                holds(&path, &journal[..before as usize], &cut_back);
            }
            // The cut Check was never answered: its retry is decided anew, and
            // recorded whole.
            let again = reserved(&g, P4, "req-4").await;
            let ids = h.state_before_last.interactions.keys();
            let s = state(&g, ids.chain([again.interaction_id.as_ref().unwrap()]));
            assert_eq!(
                s.reservations.len(),
                h.state_before_last.reservations.len() + 1,
                "{what}"
            );
            assert_eq!(s.sizes.people, h.state_last.sizes.people, "{what}");
        }
    }

    // That frame is one batch of the four records.
    let last = frames_of(journal, 0).pop().unwrap();
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

/// Generation 2's journal of [`history`] (this release's, version 2) with
/// one more record after the reserving Check's batch: the journal's bytes,
/// the batch's start and end.
async fn batch_then_a_record() -> (History, Vec<u8>, u64, u64) {
    let h = history().await;
    let source = dir_of(&h.store_last);
    let (g, _) = open(source.path(), u64::MAX).unwrap();
    create(&g, P1, "r-7", 70).await;
    drop(g);
    let journal = std::fs::read(file(source.path(), JOURNAL_2)).unwrap();
    let records = frames_of(&journal, 0);
    assert_eq!(records.len(), 3);
    let batch = &records[1];
    assert!(matches!(batch.record.op, Some(Op::Batch(_))));
    assert!(
        journal.len() as u64 - batch.end < batch.end - batch.start - 8,
        "the record after the batch is shorter than the batch's payload"
    );
    let (start, end) = (batch.start, batch.end);
    (h, journal, start, end)
}

/// The data directories the batch is cut in: this release's (the store of
/// [`History::store_last`]) and an older release's (snapshot 2), their
/// journal 2 to be written by [`refused_when_cut`].
fn batch_dirs(h: &History) -> [(tempfile::TempDir, u16); 2] {
    let older = [SNAPSHOT_2, COUNT_2].map(|n| (n, h.last[n].as_slice()));
    [(dir_of(&h.store_last), 2), (dir_with(older), 1)]
}

/// Refuses the start with `journal` cut to `len` and the bytes after the
/// batch `start..end` appended (the header of version `v`), naming the
/// journal and `start`, and leaving the files as they are.
fn refused_when_cut(dir: &Path, v: u16, journal: &[u8], start: u64, end: u64, len: u64) {
    let path = file(dir, JOURNAL_2);
    let damaged = [&journal[..len as usize], &journal[end as usize..]].concat();
    let damaged = with_version(&damaged, v);
    std::fs::write(&path, &damaged).unwrap();
    let what = format!(
        "version {v}: cut at {len}, {} bytes after it",
        journal.len() as u64 - end
    );
    let position = store_position(dir);
    let err = refused(dir, u64::MAX, &what);
    refused_at(&err, &path, start, &what);
    holds(&path, &damaged, &what);
    assert_eq!(store_position(dir), position, "{what}: the store unchanged");
}

/// The same batch cut short but followed by a whole record (damage, not a
/// crash: a crash cuts only the end): at every length that leaves the
/// batch's 8-byte frame header whole, the start is refused, naming the
/// journal and the batch's offset, and the files are left as they are, in
/// this release's layout and, before a migration, in an older release's.
/// (The length at which the batch's stated length reaches exactly the end
/// of the file is the test below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_inside_a_batch_followed_by_a_whole_record_refuses_the_start() {
    let (h, journal, start, end) = batch_then_a_record().await;
    let to_the_end = end - (journal.len() as u64 - end);
    for (dir, v) in batch_dirs(&h) {
        for len in (start + 8..end).filter(|len| *len != to_the_end) {
            refused_when_cut(dir.path(), v, &journal, start, end, len);
        }
    }
}

/// As above, at the lengths the reader once missed (the following whole
/// record taken for part of a torn tail, dropped, and the journal cut back
/// to the batch's offset, destroying it on disk):
///
/// - Cut inside the batch's 8-byte frame header: the first bytes of the
///   next record read as the rest of the frame header, the stated length
///   runs past the end, and a whole record must be looked for from the
///   byte after the frame's start, not only after those 8 bytes.
/// - Cut where the stated length reaches exactly the end of the file: the
///   checksum fails with the frame ending at the end of the file, which is
///   a torn tail only if no whole record is inside the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_that_hides_the_next_record_inside_the_damaged_frame_refuses_the_start() {
    let (h, journal, start, end) = batch_then_a_record().await;
    let to_the_end = end - (journal.len() as u64 - end);
    for (dir, v) in batch_dirs(&h) {
        for len in (start + 1..start + 8).chain([to_the_end]) {
            refused_when_cut(dir.path(), v, &journal, start, end, len);
        }
    }
}

/// A row of the store whose record does not decode refuses the start,
/// naming the store, and leaves the store as it was. A start reads the
/// rows on a thread of its own and decodes them on its own: an error on
/// either side stops both and is the one the start reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_record_that_does_not_decode_refuses_the_start_naming_the_store() {
    let h = history().await;
    let dir = dir_of(&h.store_last);
    let store = compliance_guard::store::path_in(dir.path());
    let changed = rusqlite::Connection::open(&store)
        .unwrap()
        .execute(
            "UPDATE interactions SET record = x'ff' WHERE seq = (SELECT max(seq) FROM interactions)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1, "one interaction's row damaged");
    let position = store_position(dir.path());
    let err = refused(dir.path(), u64::MAX, "a stored record that does not decode");
    let JournalError::Store { path, reason } = &err else {
        panic!("refused for another reason: {err:?}");
    };
    assert_eq!(path, &store);
    assert_eq!(
        reason,
        &format!(
            "the store `{}` cannot be read: a record does not decode: failed to decode Protobuf message: invalid varint",
            store.display()
        )
    );
    assert_eq!(store_position(dir.path()), position, "the store unchanged");
}

/// A record that reads whole but that recovery cannot apply (here a loan
/// declared in a second account) refuses the start, naming the file and
/// the record's offset, as damage does: the operator must know where to
/// look. It used to be reported as a failed write, with neither. In an
/// older release's snapshot, the migration writes nothing; in this
/// release's journal, after the store, the store is left as it was.
#[test]
fn a_record_that_cannot_be_applied_refuses_the_start_naming_the_file_and_offset() {
    use compliance_guard::journal::FileWriter;
    use compliance_guard::pb::journal::{Debt, Record};
    let debt = |account: &str| Record {
        op: Some(Op::Debt(Debt {
            person_id: "BO-RECV-0001".into(),
            debt_id: account.into(),
            loan_ids: vec!["L1".into()],
            at: None,
        })),
    };
    // The second record starts after the header and the first frame.
    let mut first = Vec::new();
    journal::frame(&debt("D1"), &mut first);
    let offset = HEADER_LEN + first.len() as u64;

    // An older release's snapshot; this release's journal after an empty
    // store.
    for (kind, name, fresh) in [(1, "snapshot-00000001.snap", false), (0, JOURNAL_0, true)] {
        let dir = tempfile::tempdir().unwrap();
        if fresh {
            drop(open_with(dir.path(), u64::MAX).unwrap());
        }
        let position = store_position(dir.path());
        let layout = Layout {
            dir: dir.path().to_owned(),
        };
        std::fs::create_dir_all(layout.journal_dir()).unwrap();
        let path = layout.journal_dir().join(name);
        let mut w = FileWriter::create(&path, kind).unwrap();
        w.push(&debt("D1")).unwrap();
        w.push(&debt("D2")).unwrap();
        w.finish().unwrap();
        let written = std::fs::read(&path).unwrap();
        let Err(err) = open_with(dir.path(), u64::MAX) else {
            panic!("{name}: a start over a record that cannot be applied must be refused");
        };
        let reason = refused_at(&err, &path, offset, name);
        assert_eq!(
            reason,
            "a journal record (debt) cannot be applied: loan `L1` already belongs to debt `D1`; declare `D1` without it first",
            "{name}"
        );
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        holds(&path, &written, name);
        assert_eq!(
            store_position(dir.path()),
            position,
            "{name}: the store unchanged"
        );
    }
}

/// A person's aliases survive the journal, the store and an older
/// release's snapshot: a borrower first known as `ext-crm-9` gets our id
/// `BO-0000-00000001`, and a link then makes the lender's own id
/// `BO-ALIAS-0009` an alias of that person. Read by the alias live, after
/// reading the journal back, after materializing it into the store and
/// after reading the store back, the interaction is the same person's; and
/// so after migrating the snapshot an older release made of that journal,
/// and reading that store back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_aliases_survive_the_journal_the_store_and_a_snapshot() {
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
    // Two frames (the create, the link); the store holds two records (the
    // person, with its names, and the interaction).
    let from_journal = Recovered {
        generation: 0,
        snapshot_records: 0,
        journal_records: 2,
        cut: None,
        end: pos(0, 2),
    };
    let older_release = [(JOURNAL_0.to_owned(), v1(&read_files(d)[JOURNAL_0]))].into();
    for (compact_after, what, expected) in [
        (u64::MAX, "from the journal", from_journal.clone()),
        (0, "materializing it into the store", from_journal),
        (
            u64::MAX,
            "from the store",
            Recovered {
                generation: 1,
                snapshot_records: 2,
                journal_records: 0,
                cut: None,
                end: pos(1, 0),
            },
        ),
    ] {
        let (g, recovered) = open(d, compact_after).unwrap();
        assert_eq!(recovered, expected, "{what}");
        read(&g, what);
    }

    // An older release's snapshot of that journal (its person, its
    // interaction), migrated, then read from the store.
    let snapshot = older(&older_release, 1);
    let dir = dir_with(all(&snapshot));
    let d = dir.path();
    for (what, expected) in [
        (
            "migrating the snapshot",
            Recovered {
                generation: 1,
                snapshot_records: 2,
                journal_records: 0,
                cut: None,
                end: pos(1, 0),
            },
        ),
        (
            "from the store it was migrated into",
            Recovered {
                generation: 2,
                snapshot_records: 2,
                journal_records: 0,
                cut: None,
                end: pos(2, 0),
            },
        ),
    ] {
        let (g, recovered) = open(d, u64::MAX).unwrap();
        assert_eq!(recovered, expected, "{what}");
        read(&g, what);
    }
}

// ---- 5. an answer kept for retries ---------------------------------------------

/// A reserving Check's answer is kept for retries for 24 hours
/// ([`REQUEST_ID_TTL_HOURS`]), through the store as through the journal:
/// one stored within the last 24 hours by the clock is materialized into
/// the store and repeated by a retry after the next start; one older than
/// that (stored at `AT`) is still repeated by the start that materializes
/// it, which read it from the journal, but the store forgets it, and a
/// retry after the next start is decided anew. (Before the store, a
/// snapshot kept every answer, and a start forgot them at the first
/// reserving Check past their 24 hours.)
///
/// The recent Check is made at the clock's time, so whether it is allowed
/// depends on the hour; either way its answer is kept (a refused one is,
/// for a person the guard did not know, the only record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_answer_is_kept_by_the_store_for_its_24_hours_only() {
    const RECENT: &str = "BO-RCVR-0005";
    const OLD: &str = "BO-RCVR-0006";
    /// The clock's time, in whole seconds (as a timestamp on the wire).
    fn clock() -> DateTime<Utc> {
        Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap()
    }
    /// `req-recent`, at the clock's time.
    async fn check_recent(g: &Guard) -> CheckOutcome {
        let at = clock();
        let input = CheckInput {
            at: Some(at),
            ..reserve(RECENT, "req-recent")
        };
        g.check(&input, &caller(), at, None).await.unwrap()
    }
    assert!(clock() - Duration::hours(REQUEST_ID_TTL_HOURS) > now());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (first_recent, first_old) = {
        let (g, _) = open(d, u64::MAX).unwrap();
        let first_recent = check_recent(&g).await;
        assert!(!first_recent.repeated);
        (first_recent, reserved(&g, OLD, "req-old").await)
    };
    let repeated = CheckOutcome {
        repeated: true,
        ..first_recent.clone()
    };

    // Materialized: read from the journal, both are kept in memory.
    let (g, replayed) = open(d, 0).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 0,
            snapshot_records: 0,
            journal_records: 2,
            cut: None,
            end: pos(0, 2),
        }
    );
    // At `AT` first: a retry at the clock's time forgets `req-old` from
    // memory too, 24 hours after it was stored.
    retried(&g, OLD, &first_old, "req-old").await;
    assert_eq!(check_recent(&g).await, repeated, "req-recent, materialized");
    drop(g);

    // From the store: the recent answer only. The store holds `OLD`'s
    // person, interaction and reservation, and the recent answer (with
    // `RECENT`'s person, interaction and reservation if it was allowed).
    let recent_records = if first_recent.decision.allowed { 4 } else { 1 };
    let (g, replayed) = open(d, u64::MAX).unwrap();
    assert_eq!(
        replayed,
        Recovered {
            generation: 1,
            snapshot_records: 3 + recent_records,
            journal_records: 0,
            cut: None,
            end: pos(1, 0),
        }
    );
    let anew = reserved(&g, OLD, "req-old").await;
    assert_ne!(anew.interaction_id, first_old.interaction_id);
    assert_eq!(
        check_recent(&g).await,
        repeated,
        "req-recent, from the store"
    );
}

// ---- 6. the journal before the store's position -------------------------------

/// A start reads the journal from the store's position. The records
/// before it in that journal, which the store holds, are checked frame by
/// frame, so that damage there still refuses the start, naming the file
/// and the offset; but they are not decoded: a frame whose checksum holds
/// and whose payload does not decode is passed over, since the start does
/// not read it. The records after the position are read and counted as
/// ever.
#[test]
fn the_records_the_store_holds_are_checked_but_not_decoded() {
    use compliance_guard::pb::journal::{Record, record::Op};
    let closed = |id: &str| Record {
        op: Some(Op::ReservationClosed(id.into())),
    };
    let raw = |payload: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        out.extend_from_slice(payload);
    };
    let mut bytes = NEW_JOURNAL.to_vec();
    journal::frame(&closed("IT-1"), &mut bytes);
    let second = bytes.len();
    // Not a protobuf message: a varint that never ends.
    raw(&[0xff, 0xff, 0xff], &mut bytes);
    journal::frame(&closed("IT-3"), &mut bytes);
    journal::frame(&closed("IT-4"), &mut bytes);
    let dir = dir_with([(JOURNAL_0, bytes.as_slice())]);
    let layout = Layout {
        dir: dir.path().to_owned(),
    };
    let read = |from: Position| {
        let mut ids = Vec::new();
        let end = journal::recover_from(&layout, Some(from), |r| {
            if let Some(Op::ReservationClosed(id)) = r.op {
                ids.push(id);
            }
            Ok(())
        });
        (ids, end)
    };
    let (ids, end) = read(pos(0, 2));
    assert_eq!(ids, ["IT-3", "IT-4"]);
    let end = end.unwrap();
    assert_eq!((end.journal_records, end.end), (2, pos(0, 4)));
    // Refused at the second frame, nothing read: why.
    let refused_here = |from: Position, what: &str| {
        let (ids, end) = read(from);
        assert!(ids.is_empty(), "{what}");
        let path = file(dir.path(), JOURNAL_0);
        refused_at(&end.unwrap_err(), &path, second as u64, what)
    };
    // From before it, the frame is read, and refused.
    let reason = refused_here(pos(0, 1), "decoded");
    assert!(reason.contains("does not decode"), "{reason}");
    // Damage before the position: its checksum refuses the start.
    let mut damaged = bytes.clone();
    damaged[second + 8] ^= 0x01;
    std::fs::write(file(dir.path(), JOURNAL_0), &damaged).unwrap();
    let reason = refused_here(pos(0, 3), "damaged");
    assert!(reason.contains("checksum"), "{reason}");
}
