//! Criterion benchmarks of the engine core.
//!
//! - `decide/100-interactions/one-zone`: one decision for a borrower with
//!   100 interactions in the window and three restrictions (an opt-out of
//!   another medium, a designated inconvenient time, a prior consent about
//!   another debt), under every shipped rule that covers a call (no
//!   jurisdiction given, so every such rule applies), in one candidate zone.
//! - `decide/100-interactions/all-us-zones`: the same with no zone given,
//!   so all 34 US zones are candidates (the strict answer for an unknown
//!   location).
//! - `record/one-interaction`: validating and recording one interaction
//!   into an index that already holds 10,000 borrowers.
//!
//! Run: `cargo bench --bench decide`. CI only smoke-runs it
//! (`cargo test --benches`).

#![allow(
    clippy::expect_used,
    reason = "benchmark setup: a failure must stop the run"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use compliance_guard::engine::{self, Proposal};
use compliance_guard::index::Index;
use compliance_guard::model::{
    Channel, ContactInput, ContactKind, Direction, InteractionInput, Theme,
};
use compliance_guard::rules::{LoadOptions, RuleSet};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

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

fn bench(c: &mut Criterion) {
    let rules =
        RuleSet::load_dir("rules".as_ref(), &LoadOptions::default()).expect("shipped rules load");
    let now = Utc
        .with_ymd_and_hms(2020, 6, 15, 16, 0, 0)
        .single()
        .expect("valid time");
    let mut index = Index::default();
    for i in 0..100 {
        let at = now - Duration::minutes(7 * 24 * 60 * (i as i64 + 1) / 101);
        index
            .create("BO-BENCH-1", &input(i, at), at)
            .expect("valid record");
    }
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
                format!("RS-B-{i}"),
                "BO-BENCH-1".into(),
                "bench".into(),
                now,
            )
            .expect("valid restriction");
        index.put_restriction(r).expect("stored");
    }
    let mut send = Proposal::new(Channel::Voice, Direction::Outbound);
    send.theme = Some(Theme::OpsCollDebt);
    send.loans = vec!["L1".into()];
    // An unknown contact kind is covered by every rule, work-number rules included.
    send.contact = ContactKind::Unknown;
    send.zones = vec![chrono_tz::America::New_York];

    let view = index.view("BO-BENCH-1").expect("valid id");
    let d = engine::decide(&rules, &view, &send, now);
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
    assert_eq!(
        d.applied_rule_ids.len(),
        for_calls,
        "every shipped rule that covers a call applies"
    );
    assert!(for_calls >= 19, "{for_calls}");

    let mut group = c.benchmark_group("decide/100-interactions");
    group.bench_function("one-zone", |b| {
        b.iter(|| engine::decide(&rules, &view, black_box(&send), now))
    });
    let mut anywhere = send.clone();
    anywhere.zones.clear();
    group.bench_function("all-us-zones", |b| {
        b.iter(|| engine::decide(&rules, &view, black_box(&anywhere), now))
    });
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
