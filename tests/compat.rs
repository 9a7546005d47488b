//! Compatibility fixtures written by commit f8a6031, and what that commit
//! read from them: a refactor must read them the same, write the same
//! snapshot bytes from them, and replay the same decisions.
//!
//! - `tests/compat/data/`: a data directory as the server writes it: a
//!   snapshot generation and a journal generation after it
//!   (`journal/`), the decision log (`decisions/`) and the archive of the
//!   rule set that decided (`rules-archive/<version>/`). What it holds is
//!   listed in [`generate`].
//! - `tests/compat/state.txt`: the state read back after opening it, and
//!   the answers to a retry and a few Checks and writes on top of it.
//! - `tests/compat/compacted.snap`: the snapshot that commit wrote when it
//!   compacted the fixture, byte for byte. Since the store (issue 15) a
//!   start migrates the fixture into the store instead; the store's
//!   records, read back in recovery order and framed the same way, must
//!   be these bytes.
//! - `tests/compat/replay.json`: the what-if replay of its decision log
//!   against `rules/`.
//!
//! `COMPAT_GENERATE=1` rewrites all of them. It was run once, at the
//! commit named above; running it after a change would bless whatever the
//! change does, so it is never part of a refactor.

/// What the code reads from the fixture: (a), (b) and (c) above.
mod expected;
/// Writes the fixture (`COMPAT_GENERATE=1` only).
mod generate;

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use compliance_guard::guard::{Guard, GuardError};
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::Durability;
use compliance_guard::request::{Caller, CheckInput};

use crate::golden::{render_error, rules};
use expected::{compacted, read_back, replayed, state};

/// The fixture's directory.
const DIR: &str = "tests/compat";

/// Every name the fixture gives a person: ours, linked ids of ours and
/// external ids (see [`generate`]).
const NAMES: &[&str] = &[
    "ext-c1", "BO-C-1", "ext-c1b", "ext-c2", "ext-c3", "ext-c4", "ext-c4b", "ext-c5",
];

/// The caller the fixture was written by, and that reads it back.
fn caller() -> Caller {
    Caller {
        name: "compat".into(),
        sensitive: true,
        agent: true,
        company: None,
    }
}

/// The moment the state is read at: an hour after the fixture's last
/// write, within a day of its stored answer.
fn read_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 5, 18, 0, 0).unwrap()
}

/// Copies a directory tree, leaving out the data directory's lock.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (path, name) = (entry.path(), entry.file_name());
        if name == "LOCK" {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// A fresh copy of the fixture's data directory.
fn fixture_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(DIR).join("data"), tmp.path());
    tmp
}

/// Opens a data directory with the shipped rules in force.
fn open(dir: &Path, compact_after: u64) -> (Guard, compliance_guard::journal::Recovered) {
    let (guard, replayed) = Guard::open(
        IndexConfig::default(),
        dir,
        Durability::Buffered,
        compact_after,
        |_| {},
    )
    .unwrap();
    guard.set_rules(rules(None));
    (guard, replayed)
}

/// A value as `show` renders it, or the error.
fn outcome<T>(r: Result<T, GuardError>, show: impl Fn(&T) -> String) -> String {
    r.map_or_else(|e| render_error(&e), |v| show(&v))
}

/// A Check of `channel` about `loan`, in New Jersey, at `now`. (Until
/// the New York City rules shipped it was New York; a borrower known only
/// to be in US-NY may be in the city, whose cap of 2 a week would then
/// answer these checks instead of the federal rules the fixture was
/// written with. New Jersey has the same zone and no rule of its own.)
fn check(person: &str, channel: &str, loan: &str) -> CheckInput {
    CheckInput {
        person_id: person.into(),
        channel: channel.into(),
        loan_ids: vec![loan.into()],
        jurisdictions: vec!["US-NJ".into()],
        ..CheckInput::default()
    }
}

/// Compares a text with its committed expectation, naming the file and the
/// first lines that differ.
fn same_text(file: &str, got: &str) {
    let path = Path::new(DIR).join(file);
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(
        expected == got,
        "{} differs from what this code reads from the fixture:\n{}",
        path.display(),
        crate::golden::first_differences(&expected, got, 5, "line")
    );
}

/// The fixture written by f8a6031 (a data directory of the layout before
/// the store) reads back the same, migrates into a store holding the same
/// records as the snapshot f8a6031 compacted it into, byte for byte
/// (twice over: the migration is deterministic), and replays the same
/// decisions.
#[tokio::test]
async fn compat_fixture_reads_compacts_and_replays_as_written() {
    let started = std::time::Instant::now();
    if std::env::var_os("COMPAT_GENERATE").is_some() {
        generate::generate(&Path::new(DIR).join("data")).await;
    }
    let a = fixture_copy();
    let got_state = state(a.path()).await;
    let (one, two) = (fixture_copy(), fixture_copy());
    let (path, bytes) = compacted(one.path());
    let (_, again) = compacted(two.path());
    assert!(
        bytes == again,
        "migrating the fixture twice wrote different bytes: {}",
        path.display()
    );
    let c = fixture_copy();
    let got_replay = replayed(c.path());
    if std::env::var_os("COMPAT_GENERATE").is_some() {
        std::fs::write(Path::new(DIR).join("state.txt"), &got_state).unwrap();
        std::fs::write(Path::new(DIR).join("compacted.snap"), &bytes).unwrap();
        std::fs::write(Path::new(DIR).join("replay.json"), &got_replay).unwrap();
    }
    same_text("state.txt", &got_state);
    let expected = std::fs::read(Path::new(DIR).join("compacted.snap")).unwrap();
    if expected != bytes {
        let at = expected
            .iter()
            .zip(&bytes)
            .position(|(e, g)| e != g)
            .unwrap_or(expected.len().min(bytes.len()));
        panic!(
            "the records of the migrated store ({}) differ from tests/compat/compacted.snap: {} bytes expected, {} written, first difference at byte {at}",
            path.file_name().unwrap().to_string_lossy(),
            expected.len(),
            bytes.len()
        );
    }
    same_text("replay.json", &got_replay);
    println!("compat: {:?}", started.elapsed());
}

/// Every officers' rule-test file of `rules/tests/` is still the one of
/// f8a6031 (its CRC-32), runs and passes with as many cases as then: the
/// CLI is run on each file alone (beside the shipped rules) and on the
/// whole directory. A file added or changed on purpose later updates
/// `FILES`.
#[test]
fn compat_rule_tests_still_pass_unchanged() {
    /// Each file, the cases it held at f8a6031, and the CRC-32 of its bytes.
    const FILES: &[(&str, usize, u32)] = &[
        // Changed after f8a6031 (issue 14): the borrower moved from New
        // York (US-NY) to New Jersey (US-NJ), same zone, so that New York
        // City's rules, which answer for a borrower known only to be in
        // US-NY, do not decide the cases instead of the rules they test.
        // No case was added or removed.
        ("lender-policy.yaml", 7, 0xaabe_c017),
        // Added after f8a6031: a send's balance and a minimumBalance rule.
        // Changed for issue 14: US-NY to US-NJ, as above.
        ("minimum-balance.yaml", 3, 0xe054_6edd),
        // Added for issue 17: the lender's templates for state standards
        // without a number (rules/policy-state-standards.yaml).
        ("policy-state-standards.yaml", 34, 0xaa0f_fe6b),
        // Added for issue 17: Arkansas, Ark. Code 17-24-504(a)(1)(B).
        ("us-ar.yaml", 6, 0x178c_543a),
        // Added for issue 14: Cal. Civ. Code 1788.17 (15 U.S.C. 1692c).
        ("us-ca.yaml", 21, 0x2497_df58),
        // Added for issue 17: Colorado, C.R.S. 5-16-105(1)(a).
        ("us-co.yaml", 6, 0x979f_6889),
        // Added for issue 17: Connecticut's creditor hours (shadow).
        ("us-ct.yaml", 5, 0x9d0e_1a1f),
        ("us-dc.yaml", 7, 0x41b4_77f2),
        // Added for issue 17: Florida, Fla. Stat. 559.72(17).
        ("us-fl.yaml", 16, 0x15c4_c231),
        // Added for issue 17: Hawaii, HRS 480J-10(c) (shadow).
        ("us-hi.yaml", 6, 0xa651_6b49),
        // Added for issue 17: Illinois, 205 ILCS 740/9.2(a)(1).
        ("us-il.yaml", 6, 0x7dad_2365),
        // Added for issue 17: Louisiana, La. R.S. 9:3562(3) (caps counted
        // from a request sent by certified mail).
        ("us-la.yaml", 16, 0xc961_0e6b),
        ("us-ma.yaml", 9, 0x327f_73d9),
        // Added for issue 17: Maryland, Md. Com. Law 14-202(11) (shadow).
        ("us-md.yaml", 6, 0xcbb5_2810),
        // Added for issue 17: Maine, 32 M.R.S. 11012 and 9-A M.R.S. 11-119.
        ("us-me.yaml", 9, 0x0926_892e),
        // Added for issue 17: Michigan, MCL 445.252(n) (hours lifted only
        // by a written agreement).
        ("us-mi.yaml", 15, 0xf432_a8ed),
        // Added for issue 14: New York City, 6 RCNY 5-77.
        ("us-ny-nyc.yaml", 26, 0x6967_324e),
        // Added for issue 14: Pennsylvania, 73 P.S. 2270.4 (shadow).
        ("us-pa.yaml", 6, 0x4a12_0b45),
        // Added after f8a6031: an employer's prohibition, 1006.6(b)(3).
        // Changed for issue 14: US-NY to US-NJ, as above.
        ("us-reg-f-employer.yaml", 5, 0x1112_1c82),
        // Changed for issue 14: US-NY to US-NJ, as above.
        ("us-reg-f-restrictions.yaml", 10, 0xba2f_f494),
        // Changed for issue 14: US-NY to US-NJ, as above.
        ("us-reg-f.yaml", 15, 0x4db3_eeac),
        // Added for issue 17: Rhode Island, R.I. Gen. Laws 19-14.9-5(1)(a).
        ("us-ri.yaml", 6, 0x5bca_457d),
        // Added for issue 17: South Carolina, S.C. Code 37-5-108(5)(b).
        ("us-sc.yaml", 16, 0xb12d_ebec),
        // Added for issue 17: Washington, RCW 31.45.082(3), for small-loan
        // licensees (a file of its own, so that us-wa.yaml stays as pinned).
        ("us-wa-small-loans.yaml", 15, 0x80fc_582a),
        ("us-wa.yaml", 6, 0x87ef_ad6e),
        // Added for issue 14: West Virginia, 46A-2-125(d).
        ("us-wv.yaml", 14, 0x5805_6076),
    ];
    let run = |dir: &Path| {
        // The one runner: a cleared environment, so nothing exported
        // changes what the rule tests answer.
        let out = crate::support::process::run(&["rules", "test", &dir.to_string_lossy()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let mut names: Vec<String> = std::fs::read_dir("rules/tests")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<&str> = FILES.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(names, expected, "the rule-test files of rules/tests/");
    for (file, cases, crc) in FILES {
        let bytes = std::fs::read(Path::new("rules/tests").join(file)).unwrap();
        assert_eq!(
            crc32fast::hash(&bytes),
            *crc,
            "rules/tests/{file} changed since f8a6031"
        );
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir("rules").unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::copy(
            Path::new("rules/tests").join(file),
            dir.path().join("tests").join(file),
        )
        .unwrap();
        let (code, text) = run(dir.path());
        assert_eq!(
            (code, text.as_str()),
            (Some(0), format!("{cases} passed, 0 failed\n").as_str()),
            "rules/tests/{file}"
        );
    }
    let total: usize = FILES.iter().map(|(_, n, _)| n).sum();
    let (code, text) = run(Path::new("rules"));
    assert_eq!(
        (code, text),
        (Some(0), format!("{total} passed, 0 failed\n")),
        "rules test rules"
    );
}

/// The header's format version of every journal and snapshot file in a
/// data directory, by file name.
fn versions(dir: &Path) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".log") || name.ends_with(".snap")
        })
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                u16::from_le_bytes([bytes[4], bytes[5]]),
            )
        })
        .collect();
    out.sort();
    out
}

/// The migration of a data directory of the layout before the store
/// survives `kill -9` at every step: the store committed, the new journal
/// created, the store's position moved (before the older files are
/// deleted). A start after the crash reads exactly the fixture's state,
/// and at every step the directory is one an older release either reads
/// whole (only its own files, unchanged) or refuses (a journal of version
/// 2 is there), never one it would start empty from. After the migration
/// only a version-2 journal is left: the older release, which reads
/// version 1 only, refuses the directory.
#[tokio::test]
async fn the_migration_survives_a_kill_at_every_step_and_older_releases_refuse_its_result() {
    let expected = std::fs::read_to_string(Path::new(DIR).join("state.txt")).unwrap();
    let original = versions(&Path::new(DIR).join("data"));
    assert_eq!(
        original,
        [
            ("journal-00000001.log".to_owned(), 1),
            ("snapshot-00000001.snap".to_owned(), 1)
        ]
    );
    for (step, older_reads_it) in [
        ("store-committed", true),
        ("journal-rolled", false),
        ("position-moved", false),
    ] {
        let dir = fixture_copy();
        let data = dir.path().to_str().unwrap();
        let out = crate::support::process::command()
            .args(["import", "--data-dir", data, "-"])
            .env("COMPLIANCE_GUARD_TEST_ABORT_AT", step)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success() && out.status.code().is_none(),
            "{step}: the start was killed there: {out:?}"
        );
        let left = versions(dir.path());
        if older_reads_it {
            assert_eq!(left, original, "{step}: the older files, unchanged");
        } else {
            assert!(
                left.contains(&("journal-00000002.log".to_owned(), 2)),
                "{step}: a journal an older release refuses: {left:?}"
            );
        }
        // The state as the fixture's, but for what the start read: the
        // store (its 30 records) and nothing of the journal after it.
        let read = if step == "store-committed" {
            "replayed generation=1 snapshot_records=30 journal_records=0 cut=None"
        } else {
            "replayed generation=2 snapshot_records=30 journal_records=0 cut=None"
        };
        let expected = expected.replacen(
            "replayed generation=1 snapshot_records=18 journal_records=15 cut=None",
            read,
            1,
        );
        let got = state(dir.path()).await;
        assert!(
            got == expected,
            "{step}: the state after the crash differs from tests/compat/state.txt:\n{}",
            crate::golden::first_differences(&expected, &got, 5, "line")
        );
        assert_eq!(
            versions(dir.path()),
            [("journal-00000002.log".to_owned(), 2)],
            "{step}: after a whole start, only the new journal"
        );
    }
}

/// The format a data directory's store says it is of.
fn store_format(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        compliance_guard::store::path_in(dir),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// A data directory of the release before this one: the fixture above
/// migrated by commit 9d0ee6c into its store, of format 1
/// (`tests/compat/store-1/`). A start migrates the store to format 2 (the
/// listing's columns and indexes) and reads exactly the fixture's state;
/// killed just before the migration's commit, it leaves the store of
/// format 1 as it was (the release before still reads it), and the next
/// start migrates it. Afterwards the store says format 2, which the
/// release before refuses ("this release reads format 1"). A what-if
/// replay reads the store of either format and reports the same.
#[tokio::test]
async fn a_store_of_format_1_is_migrated_in_one_step_and_reads_the_same() {
    // The fixture's state but the census of its journal (the first
    // line: this directory's history is in the store).
    let expected = std::fs::read_to_string(Path::new(DIR).join("state.txt")).unwrap();
    let expected = expected.split_once('\n').unwrap().1.replacen(
        "replayed generation=1 snapshot_records=18 journal_records=15 cut=None",
        "replayed generation=2 snapshot_records=30 journal_records=0 cut=None",
        1,
    );
    let original = std::fs::read(Path::new(DIR).join("store-1/store/history.sqlite3")).unwrap();
    for killed in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&Path::new(DIR).join("store-1"), tmp.path());
        assert_eq!(store_format(tmp.path()), 1);
        // Beside a server of the release before (not migrated yet), a
        // backup or what-if reads its records; a reader of the listing's
        // columns is refused.
        let store = compliance_guard::store::Store::open_read_only(tmp.path())
            .unwrap()
            .unwrap();
        assert_eq!(store.for_each(|_| Ok(())).unwrap(), 30);
        drop(store);
        // A what-if reads a store of format 1 (no `created_at` column to
        // stream by) whole and sorted: the same report as from the store
        // once migrated, which it streams. (Both differ from the
        // fixture's journal's, tests/compat/replay.json, by one
        // violation: the store holds each record's latest state only.)
        for part in ["decisions", "rules-archive"] {
            copy_dir(
                &Path::new(DIR).join("data").join(part),
                &tmp.path().join(part),
            );
        }
        let replay = replayed(tmp.path());
        assert!(replay.contains("\"decisions\": "), "{replay}");
        match compliance_guard::store::Reader::open(tmp.path()) {
            Err(e) => assert!(
                e.to_string()
                    .contains("it is of format 1; this release reads format 2"),
                "{e}"
            ),
            Ok(_) => panic!("a reader of a store of format 1"),
        }
        if killed {
            let out = crate::support::process::command()
                .args(["import", "--data-dir", tmp.path().to_str().unwrap(), "-"])
                .env("COMPLIANCE_GUARD_TEST_ABORT_AT", "store-format-2")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                !out.status.success() && out.status.code().is_none(),
                "the start was killed before the migration's commit: {out:?}"
            );
            assert_eq!(store_format(tmp.path()), 1, "the migration took nothing");
            // What SQLite's log held of the migration was never committed:
            // the file itself is as the release before left it.
            assert_eq!(
                std::fs::read(compliance_guard::store::path_in(tmp.path())).unwrap(),
                original
            );
        }
        let got = read_back(tmp.path()).await;
        assert!(
            got == expected,
            "killed={killed}: the state read from the migrated store differs from tests/compat/state.txt:\n{}",
            crate::golden::first_differences(&expected, &got, 5, "line")
        );
        assert_eq!(store_format(tmp.path()), 2);
        let migrated = replayed(tmp.path());
        assert!(
            migrated == replay,
            "killed={killed}: what-if differs once the store is migrated:\n{replay}\n{migrated}"
        );
        // Every row's new columns hold its record's times and company.
        let conn =
            rusqlite::Connection::open(compliance_guard::store::path_in(tmp.path())).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, started_at, created_at, company_id FROM interactions")
            .unwrap();
        let rows: Vec<(String, i64, i64, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows.len(),
            15,
            "the fixture's 13 and the 2 its read-back writes make"
        );
        let reader = compliance_guard::store::Reader::open(tmp.path()).unwrap();
        for (id, started, created, company) in rows {
            let (_, r) = reader.get(&id).unwrap().unwrap();
            assert_eq!(
                (started, created, company),
                (
                    r.started_at.timestamp_micros(),
                    r.created_at.timestamp_micros(),
                    r.company_id
                ),
                "{id}"
            );
        }
    }
}
