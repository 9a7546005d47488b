//! The engine's public API beyond the scenarios: parsing of the send's
//! places, candidate zones, and determinism.

use chrono::{TimeZone, Utc};
use compliance_guard::engine::{self, EngineError, Proposal};
use compliance_guard::index::Index;
use compliance_guard::jurisdiction::Jurisdiction;
use compliance_guard::model::{Channel, Direction, InteractionInput};
use compliance_guard::rules::{LoadOptions, RuleSet};

fn shipped() -> RuleSet {
    RuleSet::load_dir("rules".as_ref(), &LoadOptions::default()).unwrap()
}

#[test]
fn unknown_zone_is_an_error_not_an_allow() {
    let err = engine::parse_zones(&["America/New_Yrok".to_owned()]).unwrap_err();
    assert_eq!(err, EngineError::UnknownZone("America/New_Yrok".into()));
    assert_eq!(
        err.to_string(),
        "unknown time zone `America/New_Yrok`; allowed: an IANA zone name such as `America/New_York`"
    );
    assert_eq!(
        engine::parse_zones(&["America/New_York".to_owned()]).unwrap(),
        vec![chrono_tz::America::New_York]
    );
}

#[test]
fn unknown_jurisdiction_is_an_error_with_a_suggestion() {
    let err = engine::parse_jurisdictions(&["US-NYC".to_owned()]).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("unknown jurisdiction `US-NYC`"), "{text}");
    assert!(text.contains("did you mean"), "{text}");
}

#[test]
fn too_many_places_are_refused() {
    let many = vec!["UTC".to_owned(); engine::MAX_PLACES + 1];
    assert!(matches!(
        engine::parse_zones(&many),
        Err(EngineError::TooMany {
            field: "timeZones",
            ..
        })
    ));
}

#[test]
fn candidate_zones_follow_the_places() {
    let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
    assert_eq!(p.candidate_zones().len(), Jurisdiction::us().zones().len());
    assert_eq!(p.candidate_zones().len(), 34);
    p.jurisdictions = vec![
        Jurisdiction::parse("US-TX").unwrap(),
        Jurisdiction::parse("US-OK").unwrap(),
    ];
    assert_eq!(
        p.candidate_zones(),
        vec![chrono_tz::America::Chicago, chrono_tz::America::Denver]
    );
    // Phoenix lies in neither Texas nor Oklahoma: the facts conflict, so
    // both are weighed (comment 6(b)(1)(i)-2).
    p.zones = vec![chrono_tz::America::Phoenix];
    assert_eq!(
        p.candidate_zones(),
        vec![
            chrono_tz::America::Phoenix,
            chrono_tz::America::Chicago,
            chrono_tz::America::Denver
        ]
    );
}

fn candidates(jurisdictions: &[&str], zones: &[chrono_tz::Tz]) -> Vec<chrono_tz::Tz> {
    let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
    p.jurisdictions = jurisdictions
        .iter()
        .map(|j| Jurisdiction::parse(j).unwrap())
        .collect();
    p.zones = zones.to_vec();
    p.candidate_zones()
}

/// The rule of comment 6(b)(1)(i)-2 as docs/rules.md states it: the given
/// zones, plus every zone of each jurisdiction that contains none of them.
#[test]
fn a_zone_narrows_only_the_jurisdiction_it_lies_in() {
    use chrono_tz::America::{Chicago, Denver, Los_Angeles, New_York};
    // The comment's example i: a California address and an Eastern zone.
    assert_eq!(
        candidates(&["US-CA"], &[New_York]),
        vec![New_York, Los_Angeles]
    );
    assert_eq!(candidates(&["US-TX"], &[Chicago]), vec![Chicago]);
    assert_eq!(candidates(&["US-TX"], &[Denver]), vec![Denver]);
    assert_eq!(
        candidates(&["US-TX", "US-CA"], &[Chicago]),
        vec![Chicago, Los_Angeles]
    );
    assert_eq!(candidates(&["US"], &[Chicago]), vec![Chicago]);
    // A city inside the zone's state is narrowed by it too.
    assert_eq!(candidates(&["US-NY-NYC"], &[New_York]), vec![New_York]);
    // No jurisdiction: the zones alone, as before.
    assert_eq!(candidates(&[], &[Los_Angeles]), vec![Los_Angeles]);
    // A zone outside the US with `US`: every US zone as well.
    let london = candidates(&["US"], &[chrono_tz::Europe::London]);
    assert_eq!(london.len(), 1 + Jurisdiction::us().zones().len());
}

/// The candidates always contain what was weighed before the narrowing
/// rule: the given zones when any were given, else every zone of the
/// jurisdictions. Checked exhaustively: every jurisdiction (and none) with
/// every pair of US zones (and a single one, and none), and every pair of
/// jurisdictions with every single zone.
#[test]
fn candidates_contain_what_was_weighed_before() {
    let places: Vec<Jurisdiction> = Jurisdiction::all().collect();
    let zones: Vec<chrono_tz::Tz> = Jurisdiction::us().zones().to_vec();
    let before = |js: &[Jurisdiction], zs: &[chrono_tz::Tz]| -> Vec<chrono_tz::Tz> {
        if !zs.is_empty() {
            zs.to_vec()
        } else if js.is_empty() {
            Jurisdiction::us().zones().to_vec()
        } else {
            js.iter().flat_map(|j| j.zones().iter().copied()).collect()
        }
    };
    let check = |js: &[Jurisdiction], zs: &[chrono_tz::Tz]| {
        let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
        p.jurisdictions = js.to_vec();
        p.zones = zs.to_vec();
        let now = p.candidate_zones();
        for z in before(js, zs) {
            assert!(
                now.contains(&z),
                "{js:?} {zs:?}: {z} was weighed before, not now"
            );
        }
        // Every candidate is a given zone or a zone of a given place.
        for z in &now {
            assert!(
                zs.contains(z)
                    || js.iter().any(|j| j.zones().contains(z))
                    || (js.is_empty() && Jurisdiction::us().zones().contains(z)),
                "{js:?} {zs:?}: {z} comes from nowhere"
            );
        }
    };
    let mut zone_sets: Vec<Vec<chrono_tz::Tz>> = vec![Vec::new()];
    for (i, a) in zones.iter().enumerate() {
        zone_sets.push(vec![*a]);
        for b in &zones[i + 1..] {
            zone_sets.push(vec![*a, *b]);
        }
    }
    let mut cases = 0;
    for zs in &zone_sets {
        check(&[], zs);
        for j in &places {
            check(&[*j], zs);
            cases += 1;
        }
    }
    for (i, a) in places.iter().enumerate() {
        for b in &places[i + 1..] {
            for z in &zones {
                check(&[*a, *b], &[*z]);
                cases += 1;
            }
        }
    }
    assert!(cases > 50_000, "{cases} cases");
}

#[test]
fn at_defaults_to_now_and_decisions_are_deterministic() {
    let rules = shipped();
    let mut index = Index::default();
    let now = Utc.with_ymd_and_hms(2020, 4, 7, 14, 0, 0).unwrap();
    for day in 1..=7 {
        let at = Utc.with_ymd_and_hms(2020, 4, day, 13, 0, 0).unwrap();
        let input = InteractionInput {
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            status_details: Some("voiceRangNoPickup".into()),
            loan_id: Some("L1".into()),
            ..InteractionInput::default()
        };
        index.create("ext-borrower-1", &input, at).unwrap();
    }
    let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
    p.loans = vec!["L1".into()];
    p.zones = vec![chrono_tz::America::New_York];
    // New Jersey, not New York: a borrower known only to be in US-NY
    // may be in New York City, whose rules (2 communications a week,
    // hours from 08:00:01) would answer first. New Jersey has the same
    // zone and no rule of its own, so the rules this test is about decide.
    p.jurisdictions = vec![Jurisdiction::parse("US-NJ").unwrap()];
    let view = index.view("ext-borrower-1").unwrap();
    let first = engine::decide(&rules, &view, &p, now);
    assert_eq!(first.at, now);
    assert!(!first.allowed);
    assert_eq!(first.rule_id.as_deref(), Some("us-regf-7-calls-in-7-days"));
    assert_eq!(first.rules_version, rules.version());
    let v = &first.violations[0];
    assert_eq!((v.count, v.limit, v.window_days), (7, 7, 7));
    assert_eq!(v.window_start.unwrap().to_string(), "2020-04-01");
    assert_eq!(v.window_end.unwrap().to_string(), "2020-04-07");
    assert_eq!(v.debt.as_deref(), Some("L1"));
    assert_eq!(v.citation, "12 CFR 1006.14(b)(2)(i)(A), (b)(2)(ii)");
    assert_eq!(v.counted_interaction_ids.len(), 7);
    assert!(v.message.contains("the limit is 7"), "{}", v.message);
    assert_eq!(engine::decide(&rules, &view, &p, now), first);
    // An unknown borrower has no history.
    let empty = index.view("BO-NOBODY-1").unwrap();
    assert!(engine::decide(&rules, &empty, &p, now).allowed);
}

#[test]
fn non_binding_rules_do_not_apply() {
    let opts = LoadOptions {
        roles: Some(vec![compliance_guard::rules::Role::Creditor]),
        ..LoadOptions::default()
    };
    let rules = RuleSet::load_dir("rules".as_ref(), &opts).unwrap();
    let index = Index::default();
    let mut p = Proposal::new(Channel::Voice, Direction::Outbound);
    // New Jersey, not New York: a borrower known only to be in US-NY
    // may be in New York City, whose rules (2 communications a week,
    // hours from 08:00:01) would answer first. New Jersey has the same
    // zone and no rule of its own, so the rules this test is about decide.
    p.jurisdictions = vec![Jurisdiction::parse("US-NJ").unwrap()];
    // 23:00 in New Jersey: Reg F's hours bind debt collectors, not creditors.
    let late = Utc.with_ymd_and_hms(2020, 6, 2, 3, 0, 0).unwrap();
    let d = engine::decide(&rules, &index.view("BO-A-1").unwrap(), &p, late);
    assert!(d.allowed);
    // Only the lender's own policies, which bind every role, cover it.
    assert_eq!(
        d.applied_rule_ids,
        ["policy-do-not-interact", "policy-us-federal-holidays"]
    );
}
