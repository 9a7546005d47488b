//! What the code reads from the fixture, as the test compares it: (a)
//! the state after opening it and the answers on top of it, (b) the
//! snapshot written when it is compacted, (c) the what-if replay of its
//! decision log.

use std::path::{Path, PathBuf};

use compliance_guard::index::ListQuery;
use compliance_guard::journal::Layout;
use compliance_guard::model::InteractionInput;
use compliance_guard::request::CheckInput;
use compliance_guard::restrictions::RestrictionInput;
use compliance_guard::rules::LoadOptions;

use super::{NAMES, caller, check, open, outcome, read_at};
use crate::golden::{render, restriction, time};

/// (a) What opening the fixture reads, as text: what replay found, every
/// interaction in full, each name's restrictions and open reservations,
/// the conversation, the stored answer repeated to a retry, and the
/// answers to Checks and writes made on top (their ids show that the
/// id counters were restored).
pub(super) async fn state(dir: &Path) -> String {
    census(dir) + &read_back(dir).await
}

/// [`state`] but its first line (the census of the journal's records,
/// which a directory whose history is in the store no longer has).
pub(super) async fn read_back(dir: &Path) -> String {
    let mut out = String::new();
    let (g, replayed) = open(dir, u64::MAX);
    let who = caller();
    let now = read_at();
    out += &format!(
        "replayed generation={} snapshot_records={} journal_records={} cut={:?}\n",
        replayed.generation, replayed.snapshot_records, replayed.journal_records, replayed.cut
    );
    let sizes = g.sizes();
    out.push_str(&format!(
        "sizes people={} interactions={} open_reservations={}\n",
        sizes.people, sizes.interactions, sizes.open_reservations
    ));
    // Every interaction in full, deleted ones included, by our id (the
    // fixture's are numbered in order); then the ids a listing shows.
    for n in 1..=sizes.interactions {
        let id = format!("IT-0000-{n:08X}");
        let got = g.get(None, &id, &who);
        out.push_str(&format!(
            "interaction {}\n",
            outcome(got, |i| serde_json::to_string(i).unwrap())
        ));
    }
    let query = ListQuery {
        limit: 100,
        ..ListQuery::default()
    };
    let (total, all) = g.list(&query, &who).unwrap();
    assert_eq!(total, all.len(), "the fixture fits one page");
    let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    out.push_str(&format!("list [{}]\n", ids.join(",")));
    for name in NAMES {
        let list = g.restrictions(name, true, now);
        out.push_str(&format!(
            "restrictions {name}: {}\n",
            outcome(list, |l| l
                .iter()
                .map(restriction)
                .collect::<Vec<_>>()
                .join(" | "))
        ));
        let open = g.reservations(Some(name), &who);
        out.push_str(&format!(
            "reservations {name}: {}\n",
            outcome(open, |l| {
                l.iter()
                    .map(|r| {
                        format!(
                            "{} {} req={:?} at={} by={} {} {:?}",
                            r.interaction_id,
                            r.person_id,
                            r.request_id,
                            time(r.reserved_at),
                            r.reserved_by,
                            r.channel.as_str(),
                            r.loan_ids
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
        ));
    }
    for i in all.iter().filter(|i| i.channel.as_str() == "text") {
        let c = g
            .convo(None, &i.id, &who)
            .map(|c| compliance_guard::wire::convo_pb_of(&c));
        out.push_str(&format!(
            "convo {}: {}\n",
            i.id,
            outcome(c, crate::golden::convo)
        ));
    }
    for id in ["ext-c-1", "ext-c-404"] {
        let got = g.get(None, id, &who);
        out.push_str(&format!(
            "get {id}: {}\n",
            outcome(got, crate::golden::interaction)
        ));
    }
    let mut retry = check("ext-c3", "voice", "L1");
    retry.reserve = true;
    retry.request_id = "compat-r1".into();
    let blocked = CheckInput {
        reserve: true,
        request_id: "compat-r2".into(),
        ..check("ext-c4", "voice", "L4")
    };
    let answers: Vec<(&str, CheckInput)> = vec![
        ("retry compat-r1", retry),
        ("retry compat-r2 (a stored block)", blocked),
        ("c1 voice L1", check("ext-c1", "voice", "L1")),
        (
            "c1 voice L1 at Tue 12:30 EST",
            CheckInput {
                at: Some(now - chrono::Duration::minutes(30)),
                ..check("ext-c1", "voice", "L1")
            },
        ),
        (
            "c1b voice L3 (ceased, ended)",
            check("ext-c1b", "voice", "L3"),
        ),
        ("BO-C-1 text L2", check("BO-C-1", "text", "L2")),
        ("c2 text", check("ext-c2", "text", "L1")),
        ("c3 voice L2", check("ext-c3", "voice", "L2")),
        ("c4b voice ACC-C4", check("ext-c4b", "voice", "ACC-C4")),
        ("c5 email", check("ext-c5", "email", "L1")),
        (
            "c4 reserve",
            CheckInput {
                reserve: true,
                ..check("ext-c4", "voice", "L9")
            },
        ),
    ];
    for (what, input) in answers {
        let got = g.check(&input, &who, now, None).await;
        out.push_str(&format!("check {what}: {}\n", outcome(got, render)));
    }
    let record = InteractionInput {
        channel: Some("mail".into()),
        direction: Some("outbound".into()),
        status: Some("attempted".into()),
        ..InteractionInput::default()
    };
    let created = g.create("ext-c6", &record, &who, now).await;
    out.push_str(&format!(
        "create ext-c6: {}\n",
        outcome(created.map(|(i, _)| i), crate::golden::interaction)
    ));
    let cease = RestrictionInput {
        kind: "ceaseCommunication".into(),
        source: "letter".into(),
        ..RestrictionInput::default()
    };
    let added = g.add_restriction("ext-c5", &cease, &who, now).await;
    out.push_str(&format!(
        "restrict ext-c5: {}\n",
        outcome(added, restriction)
    ));
    out
}

/// How many records of each kind the fixture's snapshot and journal hold
/// (those inside a batch counted as well): the fixture holds every kind.
fn census(dir: &Path) -> String {
    use compliance_guard::pb::journal::{Record, record::Op};
    /// Counts one record by kind, and those a batch holds.
    fn count(r: &Record, n: &mut std::collections::BTreeMap<&'static str, usize>) {
        let kind = match &r.op {
            Some(Op::Interaction(_)) => "interaction",
            Some(Op::Person(_)) => "person",
            Some(Op::Debt(_)) => "debt",
            Some(Op::ReservationOpened(_)) => "reservation_opened",
            Some(Op::ReservationClosed(_)) => "reservation_closed",
            Some(Op::Answer(_)) => "answer",
            Some(Op::Batch(b)) => {
                b.records.iter().for_each(|r| count(r, n));
                "batch"
            }
            Some(Op::Restriction(_)) => "restriction",
            Some(Op::Convo(_)) => "convo",
            Some(Op::RestrictionV2(_)) => "restriction_v2",
            None => "unknown",
        };
        *n.entry(kind).or_default() += 1;
    }
    let mut n = std::collections::BTreeMap::new();
    compliance_guard::journal::recover(
        &Layout {
            dir: dir.to_owned(),
        },
        |r| {
            count(&r, &mut n);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        n.len(),
        10,
        "the fixture holds every record kind but unknown: {n:?}"
    );
    let kinds: Vec<String> = n.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("records {}\n", kinds.join(" "))
}

/// (b) What the fixture's history becomes in the store when a start
/// migrates it: the store's records, read back in recovery order and
/// framed as a snapshot file is, so that they compare byte for byte with
/// the snapshot the older release wrote when it compacted the fixture.
/// Returns the store's file and the bytes.
pub(super) fn compacted(dir: &Path) -> (PathBuf, Vec<u8>) {
    let (g, replayed) = open(dir, 0);
    drop(g);
    let layout = Layout {
        dir: dir.to_owned(),
    };
    let (snaps, logs) = layout.generations().unwrap();
    let next = replayed.end.generation + 1;
    assert!(
        snaps.is_empty() && logs == vec![next],
        "the migration leaves only the new journal (generation {next}): {snaps:?} {logs:?}"
    );
    let store = compliance_guard::store::Store::open_read_only(dir)
        .unwrap()
        .unwrap();
    assert_eq!(
        store.position().unwrap(),
        Some(compliance_guard::journal::Position {
            generation: next,
            records: 0
        })
    );
    let framed = dir.join("store-read-back.snap");
    let mut out = compliance_guard::journal::FileWriter::create(&framed, 1).unwrap();
    store.for_each(|r| out.push(&r)).unwrap();
    out.finish().unwrap();
    (store.path().to_owned(), std::fs::read(&framed).unwrap())
}

/// (c) The what-if replay of the fixture's decision log against `rules/`.
pub(super) fn replayed(dir: &Path) -> String {
    let report = compliance_guard::whatif::what_if(
        Path::new("rules"),
        dir,
        &LoadOptions::default(),
        None,
        None,
    )
    .unwrap();
    // Later releases also report the journal records the history could
    // not take; every record of the fixture applies, so there are none,
    // and the rest of the report reads as the fixture's writer read it.
    assert!(
        report.skipped_records.is_empty() && report.skipped_reasons.is_empty(),
        "the what-if run over the fixture skipped records: {:?}",
        report.skipped_reasons
    );
    let text = serde_json::to_string_pretty(&report).unwrap();
    // Later releases also say where the history was read from, and how
    // many interactions: the fields before the skipped ones.
    let tail = ",\n  \"skippedRecords\": {},\n  \"skippedReasons\": []\n}";
    let kept = text
        .strip_suffix(tail)
        .expect("the skipped fields end the report");
    let kept = &kept[..kept
        .find(",\n  \"historyFrom\"")
        .expect("where the history was read from comes before them")];
    format!("{kept}\n}}\n")
}
