//! Criterion benchmarks of the engine core.
//!
//! - `decide/N-interactions/one-zone` (N = 10, 100, 1000): one decision for
//!   a borrower with N interactions in the last 7 days and three
//!   restrictions (an opt-out of another medium, a designated inconvenient
//!   time, a prior consent about another debt), under every shipped rule
//!   that covers a call (no jurisdiction given, so every such rule
//!   applies), in one candidate zone. The send is blocked (the caps are
//!   full), so the joint next-allowed search runs too.
//! - `decide/100-interactions/all-us-zones`: the same with no zone given,
//!   so all 34 US zones are candidates (the strict answer for an unknown
//!   location).
//! - `decide/allowed/one-zone`: an allowed send (1 interaction in the
//!   window: New York City's cap of 2 in 7 days binds a borrower with no
//!   place, so a second would block), the path that computes
//!   `valid_until` instead.
//! - `decide/allowed/one-zone-derived`: the same allowed send with the
//!   zones its number's area code (270: two zones) and its postal code
//!   add, beside the one above.
//! - `read/plain` and `read/number-and-postal-code`: reading a Check into
//!   a proposal (`build_proposal`), without and with the locations read
//!   from the contact (the area code and ZIP code lookups).
//! - `record/one-interaction`: validating and recording one interaction
//!   into an index that already holds 10,000 borrowers.
//! - `let-go/walk-one-part`: one part of the walk that lets go of what
//!   left the horizon (`LET_GO_PART` slots, under the write lock), with
//!   no full record let go (`Index::move_to_disk`) and every record held
//!   whole; `let-go/walk-one-part-serving`: the part as the server walks
//!   it (`Index::let_go_in`), its interactions over 90 days and all but
//!   the last day's full records let go. What a Check may wait behind
//!   once a minute.
//! - `guard/reserve-then-fail`: a reserving Check through an in-memory
//!   `Guard` (decide and record under one lock), then an Update of the
//!   reservation to status `failed`.
//! - `rules/compile-shipped`: `RuleSet::compile` of the shipped rule files
//!   (read once, outside the loop).
//!
//! Run: `cargo bench --bench decide`. CI only smoke-runs it
//! (`cargo test --benches`), so every setup is light.

#![allow(
    clippy::expect_used,
    reason = "benchmark setup: a failure must stop the run"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use compliance_guard::engine::{self, Proposal};
use compliance_guard::guard::Guard;
use compliance_guard::index::Index;
use compliance_guard::index::{IndexConfig, LetGo};
use compliance_guard::model::{
    Channel, ContactInput, ContactKind, Direction, InteractionInput, Theme,
};
use compliance_guard::request::{Caller, CheckInput};
use compliance_guard::rules::{LoadOptions, RuleSet};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;

fn input(i: usize, at: DateTime<Utc>) -> InteractionInput {
    let (channel, details) = match i % 4 {
        0 => ("voice", Some("voiceRangNoPickup")),
        1 => ("text", None),
        2 => ("email", Some("emailSent")),
        _ => ("voice", Some("voiceLeftVoicemail")),
    };
    InteractionInput {
        channel: Some(channel.into()),
        direction: Some("outbound".into()),
        status: Some("attempted".into()),
        status_details: details.map(Into::into),
        theme: Some("opsCollDebt".into()),
        loan_id: Some(if i.is_multiple_of(2) { "L1" } else { "L2" }.into()),
        started_at: Some(at.to_rfc3339()),
        contact: Some(ContactInput {
            kind: Some("mobilePhone".into()),
            value: None,
            name: None,
        }),
        ..InteractionInput::default()
    }
}

fn restrictions(index: &mut Index, person: &str, now: DateTime<Utc>) {
    for (i, (kind, extra)) in [
        (
            "mediumOptOut",
            r#""channels": ["text"], "contactValues": ["5550001111"]"#,
        ),
        ("inconvenientTime", r#""from": "00:00", "until": "07:00""#),
        ("priorConsentToCall", r#""loanIds": ["L2"]"#),
    ]
    .into_iter()
    .enumerate()
    {
        let json = format!(
            r#"{{"kind": "{kind}", "source": "call", "receivedAt": "2020-06-10T12:00:00Z", {extra}}}"#
        );
        let r: compliance_guard::restrictions::RestrictionInput =
            serde_json::from_str(&json).expect("restriction");
        let r = r
            .check(
                format!("RS-{person}-{i}"),
                person.into(),
                "bench".into(),
                now,
            )
            .expect("valid restriction");
        index.put_restriction(r).expect("stored");
    }
}

/// A borrower with `n` interactions spread over the 7 days before `now`,
/// and the three restrictions.
fn borrower(index: &mut Index, person: &str, n: usize, now: DateTime<Utc>) {
    for i in 0..n {
        let at = now - Duration::minutes(7 * 24 * 60 * (i as i64 + 1) / (n as i64 + 1));
        index
            .create(person, &input(i, at), at)
            .expect("valid record");
    }
    restrictions(index, person, now);
}

fn bench(c: &mut Criterion) {
    let rules =
        RuleSet::load_dir("rules".as_ref(), &LoadOptions::default()).expect("shipped rules load");
    let now = Utc
        .with_ymd_and_hms(2020, 6, 15, 16, 0, 0)
        .single()
        .expect("valid time");
    let mut index = Index::default();
    for n in [10, 100, 1000] {
        borrower(&mut index, &format!("BO-BENCH-{n}"), n, now);
    }
    borrower(&mut index, "BO-BENCH-1", 1, now);
    let mut send = Proposal::new(Channel::Voice, Direction::Outbound);
    send.theme = Some(Theme::OpsCollDebt);
    send.loans = vec!["L1".into()];
    // An unknown contact kind is covered by every rule, work-number rules included.
    send.contact = ContactKind::Unknown;
    send.zones = vec![chrono_tz::America::New_York];

    let for_calls = rules
        .rules()
        .iter()
        .filter(|r| {
            r.applies.covers(
                Channel::Voice,
                Direction::Outbound,
                send.theme,
                send.contact,
                None,
                false,
            )
        })
        .count();
    assert!(for_calls >= 19, "{for_calls}");

    let mut group = c.benchmark_group("decide");
    for n in [10, 100, 1000] {
        let view = index.view(&format!("BO-BENCH-{n}")).expect("valid id");
        let d = engine::decide(&rules, &view, &send, now);
        assert_eq!(
            d.applied_rule_ids.len(),
            for_calls,
            "every shipped rule that covers a call applies"
        );
        assert!(!d.allowed, "{n} interactions fill the caps");
        group.bench_with_input(
            BenchmarkId::new(format!("{n}-interactions"), "one-zone"),
            &view,
            |b, view| b.iter(|| engine::decide(&rules, view, black_box(&send), now)),
        );
    }
    let view = index.view("BO-BENCH-100").expect("valid id");
    let mut anywhere = send.clone();
    anywhere.zones.clear();
    group.bench_function("100-interactions/all-us-zones", |b| {
        b.iter(|| engine::decide(&rules, &view, black_box(&anywhere), now))
    });
    let view = index.view("BO-BENCH-1").expect("valid id");
    let d = engine::decide(&rules, &view, &send, now);
    assert!(d.allowed, "{:?}", d.rule_id);
    assert_eq!(d.applied_rule_ids.len(), for_calls);
    group.bench_function("allowed/one-zone", |b| {
        b.iter(|| engine::decide(&rules, &view, black_box(&send), now))
    });
    let mut derived = send.clone();
    derived.derived = [
        compliance_guard::location::from_number("270-555-0100"),
        compliance_guard::location::PostalCode::parse("42101")
            .ok()
            .as_ref()
            .and_then(compliance_guard::location::from_postal_code),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(derived.candidate_zones().len(), 2, "New York and Chicago");
    group.bench_function("allowed/one-zone-derived", |b| {
        b.iter(|| engine::decide(&rules, &view, black_box(&derived), now))
    });
    group.finish();

    let plain = CheckInput {
        person_id: "BO-BENCH-1".into(),
        channel: "voice".into(),
        theme: "opsCollDebt".into(),
        loan_ids: vec!["L1".into()],
        time_zones: vec!["America/New_York".into()],
        contact: Some(ContactInput {
            kind: Some("mobilePhone".into()),
            value: None,
            name: None,
        }),
        ..CheckInput::default()
    };
    let mut located = plain.clone();
    located.contact = Some(ContactInput {
        kind: Some("mobilePhone".into()),
        value: Some("+1 270 555 0100".into()),
        name: None,
    });
    located.postal_code = "42101-1234".into();
    compliance_guard::location::warm();
    let mut group = c.benchmark_group("read");
    for (name, input) in [("plain", &plain), ("number-and-postal-code", &located)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                compliance_guard::request::build_proposal(black_box(input), &index, now)
                    .map(|p| p.derived.len())
            })
        });
    }
    group.finish();

    let mut big = Index::default();
    for p in 0..10_000 {
        big.create(&format!("BO-P-{p}"), &input(p, now), now)
            .expect("valid record");
    }
    let record = input(0, now);
    let mut n = 0usize;
    c.bench_function("record/one-interaction", |b| {
        b.iter(|| {
            n += 1;
            big.create(&format!("BO-P-{}", n % 10_000), black_box(&record), now)
                .map(|r| r.id.len())
        })
    });

    // One part of the walk that lets go of what left the horizon
    // (`Guard::let_go`, `LET_GO_PART` slots under the write lock), over
    // interactions that all stay: what a Check may wait for once a minute.
    let mut part = Index::default();
    for p in 0..compliance_guard::guard::LET_GO_PART {
        part.create(&format!("BO-W-{}", p % 6_000), &input(p, now), now)
            .expect("valid record");
    }
    let cutoff = (now - chrono::Duration::days(100)).timestamp();
    c.bench_function("let-go/walk-one-part", |b| {
        b.iter(|| part.move_to_disk(black_box(cutoff), u64::MAX, None, |_| false))
    });

    // The same part as the server walks it: its interactions spread over
    // the 90 days of the horizon, their full records let go but the last
    // day's (by one walk first, as the server's first walk does), so that
    // each walk passes over every slot and looks up only the day's.
    let mut serving = Index::default();
    let n = compliance_guard::guard::LET_GO_PART;
    for p in 0..n {
        let at = now - Duration::minutes(90 * 24 * 60 * (n - p) as i64 / n as i64);
        serving
            .create(&format!("BO-W-{}", p % 6_000), &input(p, at), at)
            .expect("valid record");
    }
    let cutoff = (now - Duration::days(91)).timestamp();
    let let_go = LetGo {
        before: (now - Duration::days(1)).timestamp(),
    };
    serving.let_go_in(0..n, cutoff, u64::MAX, let_go, |_| false, |_| {});
    c.bench_function("let-go/walk-one-part-serving", |b| {
        b.iter(|| serving.let_go_in(0..n, black_box(cutoff), u64::MAX, let_go, |_| false, |_| {}))
    });

    let guard = Guard::new(IndexConfig::default());
    guard.set_rules(Arc::new(rules));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let caller = Caller {
        company: None,
        name: "bench".into(),
        sensitive: true,
        agent: false,
    };
    let failed = InteractionInput {
        status: Some("failed".into()),
        status_details: Some("voiceNumberDisconnected".into()),
        ..InteractionInput::default()
    };
    let fields = ["status".to_owned(), "statusDetails".to_owned()];
    let mut n = 0usize;
    c.bench_function("guard/reserve-then-fail", |b| {
        b.iter(|| {
            n += 1;
            // A new borrower each time: the reservation is always allowed.
            let check = CheckInput {
                person_id: format!("BO-R-{n}"),
                channel: "voice".into(),
                direction: "outbound".into(),
                theme: "opsCollDebt".into(),
                loan_ids: vec!["L1".into()],
                time_zones: vec!["America/New_York".into()],
                reserve: true,
                ..CheckInput::default()
            };
            runtime.block_on(async {
                let outcome = guard
                    .check(black_box(&check), &caller, now, None)
                    .await
                    .expect("check");
                let id = outcome.interaction_id.expect("allowed and reserved");
                guard
                    .update(None, &id, &failed, &fields, &caller, now)
                    .await
                    .expect("update")
                    .id
                    .len()
            })
        })
    });

    let sources: Vec<(String, String)> = std::fs::read_dir("rules")
        .expect("rules dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read rule file");
            (p.display().to_string(), text)
        })
        .collect();
    c.bench_function("rules/compile-shipped", |b| {
        b.iter(|| {
            RuleSet::compile(black_box(&sources), &LoadOptions::default())
                .expect("shipped rules compile")
                .rules()
                .len()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
