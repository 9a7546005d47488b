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
    p.zones = vec![chrono_tz::America::Phoenix];
    assert_eq!(p.candidate_zones(), vec![chrono_tz::America::Phoenix]);
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
    p.jurisdictions = vec![Jurisdiction::parse("US-NY").unwrap()];
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
    p.jurisdictions = vec![Jurisdiction::parse("US-NY").unwrap()];
    // 23:00 in New York: Reg F's hours bind debt collectors, not creditors.
    let late = Utc.with_ymd_and_hms(2020, 6, 2, 3, 0, 0).unwrap();
    let d = engine::decide(&rules, &index.view("BO-A-1").unwrap(), &p, late);
    assert!(d.allowed);
    // Only the lender's own policies, which bind every role, cover it.
    assert_eq!(
        d.applied_rule_ids,
        ["policy-do-not-interact", "policy-us-federal-holidays"]
    );
}
