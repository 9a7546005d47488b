//! Brute-force checks of each constraint's promises, minute by minute:
//! where it blocks, `next_allowed` gives a moment it allows (or a
//! strictly later one to go on from); where it allows, `next_blocked`
//! is never later than the first blocked minute.
//!
//! A file of its own: it drives the history, the constraints and the
//! search together, as `decide` does, and is only compiled for tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::history::select;
use super::*;
use crate::index::Index;
use crate::model::InteractionInput;
use crate::restrictions::RestrictionInput;
use crate::rules::LoadOptions;

/// A borrower's history and restrictions, a send, and the minutes to
/// check from `from`.
pub(super) struct Setup<'a> {
    pub rules: &'a str,
    pub records: &'a [String],
    pub restrictions: &'a [String],
    pub proposal: Proposal,
    pub zones: &'a [&'a str],
    pub from: &'a str,
    pub hours: i64,
}

/// Every broken promise, at most two per rule and zone.
pub(super) fn check(s: &Setup<'_>) -> Vec<String> {
    let rules = RuleSet::compile(
        &[("t.yaml".to_owned(), s.rules.to_owned())],
        &LoadOptions::default(),
    )
    .expect("rules");
    let mut index = Index::default();
    for r in s.records {
        let input: InteractionInput = serde_yaml::from_str(r).unwrap();
        let now = crate::model::parse_time("t", input.started_at.as_deref().unwrap()).unwrap();
        index.create("BO-TEST-1", &input, now).expect("record");
    }
    for r in s.restrictions {
        let input: RestrictionInput = serde_yaml::from_str(r).unwrap();
        let at = crate::model::parse_time("t", &input.received_at).unwrap();
        let id = input.id.clone().unwrap();
        let x = input
            .check(id, "BO-TEST-1".into(), "t".into(), at)
            .expect("restriction");
        index.put_restriction(x).unwrap();
    }
    let view = index.view("BO-TEST-1").unwrap();
    let entries = view.entries_from(i64::MIN);
    let mut p = s.proposal.clone();
    p.zones = s.zones.iter().map(|z| z.parse().unwrap()).collect();
    let send_debts = view.debts_of_loans(&p.loans);
    let from = crate::model::parse_time("t", s.from).unwrap();
    let mut bad = Vec::new();
    for rule in rules.rules() {
        for zone in p.candidate_zones() {
            let days: Vec<i32> = entries
                .iter()
                .map(|e| calendar::local_day_ts(zone, e.at))
                .collect();
            let debts = match &rule.kind {
                RuleKind::FrequencyCap { per: Per::Debt, .. }
                | RuleKind::PeriodCap { per: Per::Debt, .. }
                | RuleKind::CoolDown { per: Per::Debt, .. }
                | RuleKind::ConsentRequired { per: Per::Debt, .. } => {
                    debts_to_check(&view, &send_debts, entries)
                }
                _ => vec![None],
            };
            for debt in debts {
                let picked = select(rule, &view, entries, debt);
                let picked = Picked {
                    entries: &picked,
                    requests: None,
                };
                let kept = Kept {
                    now: from.timestamp(),
                    horizon_secs: i64::from(rules.horizon_days()) * 86_400,
                };
                let c = build(rule, &view, &p, entries, picked, &days, zone, debt, kept);
                let minutes = s.hours * 60;
                let ok: Vec<bool> = (0..=minutes + 48 * 60)
                    .map(|m| c.allows(from + Duration::minutes(m)))
                    .collect();
                let mut found = 0;
                for (i, m) in (0..=minutes).enumerate() {
                    let t = from + Duration::minutes(m);
                    if ok[i] {
                        let first = ok[i..]
                            .iter()
                            .position(|a| !a)
                            .map(|k| t + Duration::minutes(i64::try_from(k).unwrap()));
                        let nb = c.next_blocked(t);
                        if let Some(f) = first
                            && nb.is_none_or(|n| n > f)
                        {
                            found += 1;
                            bad.push(format!(
                                "{} {zone}: next_blocked({t}) = {nb:?}, but it blocks at {f}",
                                rule.id
                            ));
                        }
                    } else {
                        let n = c.next_allowed(t);
                        // The first sampled minute it allows: the next
                        // allowed moment may not be later.
                        let first = ok[i..]
                            .iter()
                            .position(|a| *a)
                            .map(|k| t + Duration::minutes(i64::try_from(k).unwrap()));
                        if let Some(n) = n
                            && (n < t || !c.allows(n))
                        {
                            found += 1;
                            bad.push(format!(
                                "{} {zone}: next_allowed({t}) = {n}, which it blocks",
                                rule.id
                            ));
                        } else if let Some(f) = first
                            && n.is_none_or(|n| n > f)
                        {
                            found += 1;
                            bad.push(format!(
                                "{} {zone}: next_allowed({t}) = {n:?}, but it allows {f}",
                                rule.id
                            ));
                        }
                    }
                    if found >= 2 {
                        break;
                    }
                }
            }
        }
    }
    bad
}

const DESIGNATED: &str = r#"
rules:
  - id: t-daily
    description: designated times
    citation: test
    jurisdictions: [US]
    applies: {directions: [outbound]}
    restriction: inconvenientTime
"#;

/// [`check`] of one designation under the designated-time rule alone,
/// for a call about one loan, minute by minute for `hours`.
fn check_designation(restriction: String, zones: &[&str], from: &str, hours: i64) -> Vec<String> {
    let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
    p.loans = vec!["CARD".into()];
    check(&Setup {
        rules: DESIGNATED,
        records: &[],
        restrictions: &[restriction],
        proposal: p,
        zones,
        from,
        hours,
    })
}

/// Designated times across daylight-saving changes: New York (gap at
/// 02:00 on Mar 8, fold at 01:00-02:00 on Nov 1 2026), Havana (changes
/// at midnight), Lord Howe (half-hour changes, Apr 5 and Oct 4 2026);
/// received long before, inside a gap, and inside both passes of a
/// fold.
#[test]
fn designated_times_across_offset_changes() {
    let zones = ["America/New_York", "America/Havana", "Australia/Lord_Howe"];
    let windows = [
        ("00:00", "01:30"),
        ("01:30", "03:00"),
        ("02:30", "05:00"),
        ("21:00", "09:00"),
        ("23:30", "00:30"),
    ];
    let mut bad = Vec::new();
    for from in [
        "2026-03-07T00:00:00Z",
        "2026-10-31T00:00:00Z",
        "2026-04-04T00:00:00Z",
        "2026-10-03T00:00:00Z",
    ] {
        for (f, u) in windows {
            for received in [
                "2026-01-01T00:00:00Z",
                "2026-03-08T06:20:00Z",
                "2026-11-01T05:40:00Z",
                "2026-11-01T06:20:00Z",
            ] {
                let restriction = format!(
                    "{{id: RS-T-1, kind: inconvenientTime, source: call, receivedAt: '{received}', from: '{f}', until: '{u}'}}"
                );
                for b in check_designation(restriction, &zones, from, 48) {
                    bad.push(format!("{from} {f}-{u} received {received}: {b}"));
                }
            }
        }
    }
    bad.truncate(20);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Designations on days of the week (comment 6(b)(1)-1) across the
/// same offset changes, each on a Sunday: a window on the day of the
/// change, one past midnight from the Saturday before, whole days,
/// and a window on a day after; received long before and inside the
/// New York gap.
#[test]
fn designated_days_across_offset_changes() {
    let zones = ["America/New_York", "America/Havana", "Australia/Lord_Howe"];
    let windows = [
        ("[sunday]", Some(("01:30", "03:00"))),
        ("[saturday]", Some(("23:30", "00:30"))),
        ("[friday, saturday]", Some(("21:00", "09:00"))),
        ("[weekends]", None),
        ("[sunday, tuesday]", None),
        ("[monday]", Some(("00:00", "01:30"))),
    ];
    let mut bad = Vec::new();
    for from in [
        "2026-03-07T00:00:00Z",
        "2026-10-31T00:00:00Z",
        "2026-04-04T00:00:00Z",
        "2026-10-03T00:00:00Z",
    ] {
        for (days, times) in windows {
            for received in ["2026-01-01T00:00:00Z", "2026-03-08T06:20:00Z"] {
                let times = times
                    .map(|(f, u)| format!(", from: '{f}', until: '{u}'"))
                    .unwrap_or_default();
                let restriction = format!(
                    "{{id: RS-T-1, kind: inconvenientTime, source: call, receivedAt: '{received}', days: {days}{times}}}"
                );
                for b in check_designation(restriction, &zones, from, 60) {
                    bad.push(format!("{from} {days}{times} received {received}: {b}"));
                }
            }
        }
    }
    bad.truncate(20);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

const CONSENTED_HOURS: &str = r#"
rules:
  - id: t-hours
    description: hours a written consent lifts
    citation: test
    jurisdictions: [US]
    applies: {directions: [outbound]}
    permittedHours:
      from: "08:00"
      until: "21:00"
      unlessConsent: {written: true}
"#;

/// Permitted hours lifted by written consents to other times, across the
/// same offset changes: a consent right after the hours (so the allow
/// runs on), one past midnight, one on weekends only, one that ends, and
/// one not written (which lifts nothing).
#[test]
fn consented_hours_across_offset_changes() {
    let zones = ["America/New_York", "America/Havana", "Australia/Lord_Howe"];
    let consents = [
        "from: '21:00', until: '22:30', written: true",
        "from: '23:30', until: '01:30', written: true",
        "days: [weekends], written: true",
        "from: '06:00', until: '08:00', written: true, endsAt: '2026-11-01T12:00:00Z'",
        "from: '21:00', until: '23:00'",
    ];
    let mut bad = Vec::new();
    for from in [
        "2026-03-07T00:00:00Z",
        "2026-10-31T00:00:00Z",
        "2026-04-04T00:00:00Z",
        "2026-10-03T00:00:00Z",
    ] {
        for consent in consents {
            for received in ["2026-01-01T00:00:00Z", "2026-03-08T06:20:00Z"] {
                let restriction = format!(
                    "{{id: RS-T-1, kind: consentToTime, source: letter, receivedAt: '{received}', {consent}}}"
                );
                let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
                p.loans = vec!["CARD".into()];
                for b in check(&Setup {
                    rules: CONSENTED_HOURS,
                    records: &[],
                    restrictions: &[restriction],
                    proposal: p,
                    zones: &zones,
                    from,
                    hours: 60,
                }) {
                    bad.push(format!("{from} {consent} received {received}: {b}"));
                }
            }
        }
    }
    bad.truncate(20);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

const SINCE_CAPS: &str = r#"
rules:
  - id: t-month
    description: one mail a calendar month since a certified cease
    citation: test
    jurisdictions: [US]
    applies: {channels: [mail], directions: [outbound]}
    frequencyCap:
      limit: 1
      window: calendarMonth
      per: debt
      since: {restriction: ceaseCommunication, mailType: [registered, certified]}
  - id: t-all
    description: two calls in all since a certified cease
    citation: test
    jurisdictions: [US]
    applies: {directions: [outbound]}
    frequencyCap:
      limit: 2
      window: all
      per: borrower
      since: {restriction: ceaseCommunication, mailType: [certified]}
"#;

/// Caps counted from a restriction's receipt, monthly and in all, across
/// month ends and offset changes: a cease received in the middle of a
/// month, one that ends, and records before and after receipt, one of
/// them reserved ahead in the next month.
#[test]
fn caps_since_a_receipt_across_months() {
    let zones = ["America/New_York", "Australia/Lord_Howe"];
    let records: Vec<String> = [
        ("mail", "2026-03-20T15:00:00Z"),
        ("mail", "2026-03-30T15:00:00Z"),
        ("voice", "2026-03-31T15:00:00Z"),
        ("mail", "2026-04-02T15:00:00Z"),
        ("voice", "2026-04-03T15:00:00Z"),
    ]
    .iter()
    .map(|(ch, at)| {
        format!(
            "{{channel: {ch}, direction: outbound, status: attempted, loanId: CARD, startedAt: '{at}'}}"
        )
    })
    .collect();
    let ceases = [
        "receivedAt: '2026-03-25T12:00:00Z', mailType: certified",
        "receivedAt: '2026-03-25T12:00:00Z'",
        "receivedAt: '2026-03-31T12:00:00Z', mailType: registered",
        "receivedAt: '2026-03-25T12:00:00Z', mailType: other",
    ];
    let mut bad = Vec::new();
    for cease in ceases {
        for channel in [Channel::Mail, Channel::Voice] {
            let restriction = format!(
                "{{id: RS-T-1, kind: ceaseCommunication, source: letter, loanIds: [CARD], {cease}}}"
            );
            let mut p = Proposal::new(channel, Direction::Outbound);
            p.loans = vec!["CARD".into()];
            for b in check(&Setup {
                rules: SINCE_CAPS,
                records: &records,
                restrictions: &[restriction],
                proposal: p,
                zones: &zones,
                from: "2026-03-24T00:00:00Z",
                hours: 24 * 9,
            }) {
                bad.push(format!("{cease} {channel}: {b}"));
            }
        }
    }
    bad.truncate(20);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
