//! The golden decision corpus: about 2,900 requests (about 2,150 of them
//! Checks) driven through the library's `Guard` in memory, and every
//! answer compared byte for byte with the answers committed beside them.
//! It is the safety net of a refactor above the domain layer (guard,
//! service, what-if, wire): such a change must change no answer.
//!
//! - `tests/golden/steps.jsonl`: one request a line, `{"op": ..., "now":
//!   ..., fields}` ([`runner`] lists the ops and their fields). A Check's
//!   fields are the decision log's `request` names (camelCase, see
//!   `src/decisions.rs`), so one serde shape reads both. Every step passes
//!   `now` explicitly; nothing reads the clock.
//! - `tests/golden/answers.txt`: one answer a line, prefixed by its step
//!   number ([`render`] says what each line holds). On a mismatch the
//!   test prints the first differing steps, expected and got.
//!
//! The steps cover every shipped rule as a deciding rule but those in
//! shadow mode (listed in [`NEVER_DECIDE`]; the test fails if another
//! stops deciding), places with daylight-saving folds and gaps and odd
//! offsets (New York, Lord Howe Island, the Chatham Islands, Santiago,
//! St. John's, Kathmandu...), the lender's roles, every restriction kind,
//! accounts, linked names, reservations with and without request ids and
//! their retries, status updates, deletes, cancels, conversations,
//! companies, and refused requests. `golden/generate.rs` says how.
//!
//! Run it with `cargo test --test integration golden`.
//!
//! Two environment variables change what the test does; neither is for a
//! refactor:
//! - `GOLDEN_BLESS=1` rewrites `answers.txt` with what the code answers
//!   now, for a deliberate change of answers only (review the diff line by
//!   line before committing it).
//! - `GOLDEN_GENERATE=1` rewrites `steps.jsonl` with the seeded generator
//!   of `golden/generate.rs`, and `answers.txt` with it. The steps are
//!   committed so that no later change of code can drift them.

/// The seeded generator of the steps (`GOLDEN_GENERATE=1` only).
mod generate;
/// Answers as canonical lines.
pub mod render;
/// Steps as calls on an in-memory guard.
pub mod runner;

use std::collections::{BTreeMap, BTreeSet};

pub use render::{convo, interaction, render, render_error, restriction, time};
use runner::Runner;
pub use runner::rules;

/// The committed steps.
const STEPS: &str = "tests/golden/steps.jsonl";
/// The committed answers.
const ANSWERS: &str = "tests/golden/answers.txt";

/// Shipped rules that cannot be the deciding rule of any decision: all
/// are in shadow mode (reported, never blocking). The test fails if the
/// corpus stops covering any other rule as a deciding rule.
const NEVER_DECIDE: &[&str] = &[
    "policy-us-federal-holidays",
    // The lender's numbers for state standards that have none
    // (rules/policy-state-standards.yaml): templates in shadow, with
    // placeholder numbers, until an officer sets them.
    "policy-us-ga-industrial-loan-frequency",
    "policy-us-ia-537-7103-2d-calls",
    "policy-us-ia-537-7103-2d-hours",
    "policy-us-nc-75-52-3-calls",
    "policy-us-nc-75-52-3-hours",
    "policy-us-nh-358-c-3-frequency",
    "policy-us-nh-358-c-3-hours",
    "policy-us-ny-gbl-601-6-frequency",
    "policy-us-ny-gbl-601-6-hours",
    "policy-us-or-646-639-2-frequency",
    "policy-us-tx-fin-392-302-4-calls",
    "policy-us-vt-cf-104-02-frequency",
    "policy-us-wi-427-104-1g-frequency",
    "policy-us-wi-427-104-1g-hours",
    // Issue 17's shadow rules (the last part of the steps reports them):
    // Connecticut's, Hawaii's and Maryland's hours, known only from
    // summaries, and Maine's rental-purchase designated time and place,
    // whose text breaks off.
    "us-ct-36a-647-4-hours",
    "us-hi-480j-10c-residence-hours",
    "us-ma-940cmr-7.04-hours",
    "us-md-14-202-11-1692c-a1-hours",
    "us-me-9a-11-119-2a-designated-inconvenient-place",
    "us-me-9a-11-119-2a-designated-inconvenient-time",
    // New York City's 2026 amendments and Pennsylvania's hours, known
    // only from summaries (the last part of the steps reports them).
    "us-ny-nyc-shield-electronic-consent",
    "us-ny-nyc-shield-medium-opt-out",
    "us-pa-73ps-2270.4-hours",
];

/// Runs every step line on a fresh guard; returns the numbered answers
/// and, per rule, how many decisions it decided.
fn run_all(steps: &str) -> (String, BTreeMap<String, usize>) {
    let runner = Runner::new();
    let mut out = String::new();
    let mut decided: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in steps.lines().enumerate() {
        let a = runner.step(line);
        if let Some(rule) = &a.rule {
            *decided.entry(rule.clone()).or_default() += 1;
        }
        out.push_str(&format!("{:05} {}\n", n + 1, a.line));
    }
    (out, decided)
}

/// The first lines that differ, each numbered as a `unit` (a step, a
/// line), for a failure message.
pub fn first_differences(expected: &str, got: &str, most: usize, unit: &str) -> String {
    let mut e = expected.lines();
    let mut g = got.lines();
    let mut out = String::new();
    let mut shown = 0;
    for n in 1.. {
        let (a, b) = (e.next(), g.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if a != b {
            out.push_str(&format!(
                "{unit} {n}:\n  expected: {}\n  got:      {}\n",
                a.unwrap_or("<no line>"),
                b.unwrap_or("<no line>")
            ));
            shown += 1;
            if shown == most {
                break;
            }
        }
    }
    out
}

/// Every committed step gets its committed answer, byte for byte; and
/// every shipped rule but the shadow ones decides at least one decision.
#[test]
fn golden_decisions_match_the_committed_answers() {
    let started = std::time::Instant::now();
    if std::env::var_os("GOLDEN_GENERATE").is_some() {
        let steps = generate::generate(&Runner::new());
        std::fs::write(STEPS, steps).unwrap();
    }
    let steps = std::fs::read_to_string(STEPS).unwrap();
    let (got, decided) = run_all(&steps);
    if std::env::var_os("GOLDEN_BLESS").is_some() || std::env::var_os("GOLDEN_GENERATE").is_some() {
        std::fs::write(ANSWERS, &got).unwrap();
    }
    let expected = std::fs::read_to_string(ANSWERS).unwrap();
    let decisions = steps
        .lines()
        .filter(|l| l.starts_with("{\"op\":\"check\""))
        .count();
    let shipped: BTreeSet<String> = rules(None).rules().iter().map(|r| r.id.clone()).collect();
    let never: Vec<&String> = shipped
        .iter()
        .filter(|id| !decided.contains_key(*id))
        .collect();
    println!(
        "golden: {} steps, {decisions} decisions in {:?}; rules that never decide: {never:?}",
        steps.lines().count(),
        started.elapsed()
    );
    assert!(
        expected == got,
        "the answers differ from {ANSWERS} (GOLDEN_BLESS=1 rewrites it, for a deliberate change only):\n{}",
        first_differences(&expected, &got, 10, "step")
    );
    assert_eq!(never, NEVER_DECIDE, "rules that decide no decision");
}
