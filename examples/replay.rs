//! Replay benchmark: how long a start takes with N interactions in the
//! journal, and how much memory they hold. Kept out of CI (it writes
//! gigabytes at 10 million).
//!
//! ```sh
//! cargo run --release --example replay -- 10000000 /tmp/replay-data
//! ```
//!
//! It writes a journal of N synthetic interactions (20 per borrower, the
//! last 90 days, mixed channels and outcomes) straight to
//! `DIR/journal/journal-00000000.log`, then opens it as the server does at
//! start (`Guard::open`: lock, read, rebuild the index) and reports the
//! time, the rate and the resident memory. Then it compacts the journal
//! into a snapshot and starts again from the snapshot.
//!
//! With `--index-only` in place of DIR, it builds an `Index` from the same
//! interactions in memory instead (no journal, no files) and reports what
//! the counting entries take: their own bytes, the lists' spare capacity
//! and the loan lists' heap, per interaction, next to the resident memory
//! the whole index (full records included) added:
//!
//! ```sh
//! cargo run --release --example replay -- 1000000 --index-only
//! ```

#![allow(
    clippy::expect_used,
    reason = "a benchmark: a failure must stop the run"
)]

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use compliance_guard::guard::Guard;
use compliance_guard::index::{Index, IndexConfig};
use compliance_guard::journal::{self, Durability, Layout};
use compliance_guard::model::{ContactInput, Interaction, InteractionInput};
use compliance_guard::pb::journal::{Person, Record, record::Op};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `i`th synthetic interaction, of `person`: 20 per borrower over the
/// last 90 days, mixed channels and outcomes, one of three loans.
fn synthetic(i: u64, person: &str, now: chrono::DateTime<Utc>) -> Interaction {
    let at = now - Duration::minutes(((i * 7919) % (90 * 24 * 60)) as i64);
    let (channel, status, details) = match i % 5 {
        0 => ("voice", "attempted", Some("voiceRangNoPickup")),
        1 => ("voice", "attempted", Some("voiceSpokeWithFirstParty")),
        2 => ("text", "succeeded", None),
        3 => ("email", "attempted", Some("emailSent")),
        _ => ("voice", "failed", Some("voiceNumberDisconnected")),
    };
    let input = InteractionInput {
        external_id: Some(format!("ext-{i}")),
        channel: Some(channel.into()),
        direction: Some("outbound".into()),
        status: Some(status.into()),
        status_details: details.map(Into::into),
        theme: Some("opsCollDebt".into()),
        loan_id: Some(format!("LN-{}", i % 3)),
        started_at: Some(at.to_rfc3339()),
        contact: Some(ContactInput {
            kind: Some("mobilePhone".into()),
            value: Some("+15555550100".into()),
            name: None,
        }),
        ..InteractionInput::default()
    };
    let mut record = input.validate(at).expect("valid synthetic record");
    record.id = format!("IT-{:04X}-{:08X}", (i + 1) >> 32, (i + 1) & 0xFFFF_FFFF);
    record.person_id = person.to_owned();
    record
}

fn person_id(p: u64) -> String {
    format!("BO-{:04X}-{:08X}", p >> 32, p & 0xFFFF_FFFF)
}

/// Builds an index of `n` synthetic interactions in memory and reports
/// the counting entries' bytes and the resident memory it added.
fn index_only(n: u64, now: chrono::DateTime<Utc>) {
    let before = rss_mib();
    let started = Instant::now();
    let mut index = Index::new(IndexConfig::default());
    let n_usize = usize::try_from(n).expect("fits");
    index.reserve(n_usize, n_usize / 20 + 1);
    for i in 0..n {
        let person = person_id(i / 20);
        index
            .restore_interaction(synthetic(i, &person, now))
            .expect("restored");
    }
    let secs = started.elapsed().as_secs_f64();
    let after = rss_mib();
    let m = index.counting_memory();
    let per = |b: usize| b as f64 / m.entries as f64;
    println!(
        "index of {n} interactions built in {secs:.2} s; counting entries: {} x {} bytes = {:.1} bytes per interaction inline, {:.1} spare capacity, {:.1} loan heap, {:.1} in all; resident memory of the whole index {:.0} MiB ({:.0} bytes per interaction)",
        m.entries,
        std::mem::size_of::<compliance_guard::index::Entry>(),
        per(m.inline_bytes),
        per(m.spare_bytes),
        per(m.loan_heap_bytes),
        per(m.inline_bytes + m.spare_bytes + m.loan_heap_bytes),
        after - before,
        (after - before) * 1048576.0 / n as f64
    );
    assert_eq!(index.len() as u64, n);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("N is a number"));
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/compliance-guard-replay".into());
    let now = Utc
        .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid time");
    if dir == "--index-only" {
        index_only(n, now);
        return;
    }
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::remove_dir_all(&dir);
    let layout = Layout { dir: dir.clone() };
    std::fs::create_dir_all(layout.journal_dir()).expect("create the journal dir");

    let per_person = 20u64;
    let people = n.div_ceil(per_person);
    let started = Instant::now();
    let records = (0..people).flat_map(move |p| {
        let person = person_id(p);
        let person_record = Record {
            op: Some(Op::Person(Person {
                id: person.clone(),
                external_ids: vec![format!("crm-{p}")],
                alias_ids: vec![],
                at: None,
            })),
        };
        let count = per_person.min(n - p * per_person);
        let interactions = (0..count).map(move |k| {
            let i = p * per_person + k;
            let record = synthetic(i, &person, now);
            Record {
                op: Some(Op::Interaction(compliance_guard::wire::pb_of(&record))),
            }
        });
        std::iter::once(person_record).chain(interactions)
    });
    let written = journal::write_file(&layout.journal(0), 0, records).expect("write the journal");
    let bytes = std::fs::metadata(layout.journal(0))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wrote {written} records ({n} interactions, {people} borrowers), {:.0} MiB, in {:.1} s",
        bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );

    let before = rss_mib();
    let started = Instant::now();
    let (guard, replayed) = Guard::open(
        IndexConfig::default(),
        &dir,
        Durability::Sync,
        u64::MAX,
        |_| {},
    )
    .expect("replay");
    let secs = started.elapsed().as_secs_f64();
    let after = rss_mib();
    println!(
        "replayed {} journal records in {secs:.2} s ({:.0} records/s); resident memory {after:.0} MiB ({:.0} bytes per interaction)",
        replayed.journal_records,
        replayed.journal_records as f64 / secs,
        (after - before) * 1048576.0 / n as f64
    );
    assert_eq!(guard.len() as u64, n);
    drop(guard);

    let started = Instant::now();
    let (guard, _) = Guard::open(IndexConfig::default(), &dir, Durability::Sync, 0, |_| {})
        .expect("replay and compact");
    println!(
        "replayed and compacted into a snapshot in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    drop(guard);
    let started = Instant::now();
    let (guard, replayed) = Guard::open(
        IndexConfig::default(),
        &dir,
        Durability::Sync,
        u64::MAX,
        |_| {},
    )
    .expect("start from the snapshot");
    println!(
        "started from the snapshot ({} records) in {:.2} s",
        replayed.snapshot_records,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(guard.len() as u64, n);
}
