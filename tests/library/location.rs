//! Locations read from the contact only ever add: the property the issue
//! of derived locations asks for, over generated requests against the
//! shipped rules.

use chrono::{Duration, TimeZone, Utc};
use compliance_guard::engine;
use compliance_guard::index::Index;
use compliance_guard::model::{ContactInput, InteractionInput};
use compliance_guard::request::{CheckInput, build_proposal};
use compliance_guard::rules::{LoadOptions, RuleSet};
use proptest::prelude::*;

/// Places a request may name: none, the country, states of one and two
/// zones, the city, and territories.
const PLACES: &[&str] = &[
    "US",
    "US-NY",
    "US-NY-NYC",
    "US-CA",
    "US-TX",
    "US-FL",
    "US-MA",
    "US-WA",
    "US-DC",
    "US-NJ",
    "US-AZ",
    "US-HI",
    "US-GU",
    "US-IN",
    "US-KY",
];
/// Zones a request may name, one outside the US among them.
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "America/Kentucky/Louisville",
    "Europe/London",
];
/// Numbers: one- and two-zone area codes, Alaska's, Puerto Rico's,
/// toll-free, unassigned, a 10-digit number without a NANP area code,
/// a foreign one and a short one.
const NUMBERS: &[&str] = &[
    "+1 212 555 0100",
    "270-555-0100",
    "(208) 555-0100",
    "907 555 0100",
    "787-555-0100",
    "+1 800 555 0100",
    "+1 555 555 0100",
    "0125550100",
    "+44 20 7946 0958",
    "555-0100",
];
/// Postal codes: one-zone and state-zone codes, ZIP+4, APO/FPO, a
/// territory, a freely associated state, an unknown one.
const POSTAL: &[&str] = &[
    "10001",
    "90210-1234",
    "02108",
    "99634",
    "09001",
    "96201",
    "96910",
    "96941",
    "00000",
    "59221",
];
/// The shipped rules, loaded once.
static RULES: std::sync::LazyLock<RuleSet> = std::sync::LazyLock::new(|| {
    RuleSet::load_dir("rules".as_ref(), &LoadOptions::default()).unwrap()
});
const KINDS: &[&str] = &[
    "mobilePhone",
    "homePhone",
    "workPhone",
    "email",
    "unknownKind",
];
const CHANNELS: &[&str] = &["voice", "text", "email", "mail"];

fn subset(from: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(from, 0..=max)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

prop_compose! {
    fn request()(
        channel in proptest::sample::select(CHANNELS),
        jurisdictions in subset(PLACES, 3),
        time_zones in subset(ZONES, 2),
        kind in proptest::option::of(proptest::sample::select(KINDS)),
        number in proptest::sample::select(NUMBERS),
        postal in proptest::option::of(proptest::sample::select(POSTAL)),
        minutes in 0i64..(14 * 24 * 60),
    ) -> (CheckInput, i64) {
        let input = CheckInput {
            person_id: "BO-LOC-0001".into(),
            channel: channel.into(),
            loan_ids: vec!["L1".into()],
            jurisdictions,
            time_zones,
            contact: Some(ContactInput {
                kind: kind.map(str::to_owned),
                value: Some(number.to_owned()),
                name: None,
            }),
            postal_code: postal.unwrap_or_default().to_owned(),
            ..CheckInput::default()
        };
        (input, minutes)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// For any request, the zones and jurisdictions weighed with the
    /// locations derived from its contact contain those weighed without
    /// them; an empty list of jurisdictions (anywhere) stays empty; and
    /// the decision is never more permissive: an allow with them is an
    /// allow without them, and every rule that applied without them
    /// applies with them.
    #[test]
    fn derived_locations_only_add((with, minutes) in request()) {
        let rules = &*RULES;
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let mut index = Index::default();
        // A little history, so that caps of the added places can bite.
        for (i, channel) in ["voice", "voice", "text", "email"].iter().enumerate() {
            let call = InteractionInput {
                channel: Some((*channel).into()),
                direction: Some("outbound".into()),
                status: Some("succeeded".into()),
                loan_id: Some("L1".into()),
                ..InteractionInput::default()
            };
            let when = start + Duration::hours(20 * i64::try_from(i).unwrap());
            index.create("BO-LOC-0001", &call, when).unwrap();
        }
        let at = start + Duration::minutes(minutes);
        let mut without = with.clone();
        without.postal_code.clear();
        if let Some(c) = without.contact.as_mut() {
            c.value = None;
        }
        let p_with = build_proposal(&with, &index, at).unwrap();
        let p_without = build_proposal(&without, &index, at).unwrap();
        let zones = p_with.candidate_zones();
        for z in p_without.candidate_zones() {
            prop_assert!(zones.contains(&z), "{z} lost");
        }
        let places: Vec<_> = p_with.weighed_places().into_iter().map(|w| w.place).collect();
        let before: Vec<_> = p_without.weighed_places().into_iter().map(|w| w.place).collect();
        for j in &before {
            prop_assert!(places.contains(j), "{j} lost");
        }
        prop_assert_eq!(before.is_empty(), places.is_empty());
        let view = index.view("BO-LOC-0001").unwrap();
        let d_with = engine::decide(rules, &view, &p_with, at);
        let d_without = engine::decide(rules, &view, &p_without, at);
        prop_assert!(!d_with.allowed || d_without.allowed, "allowed only with derived locations");
        for id in &d_without.applied_rule_ids {
            prop_assert!(d_with.applied_rule_ids.contains(id), "{id} no longer applies");
        }
        if !d_with.allowed && !d_without.allowed {
            // Later or never: more constraints never free a send sooner.
            let sooner = match (d_with.next_allowed_at, d_without.next_allowed_at) {
                (Some(a), Some(b)) => a < b,
                (Some(_), None) => true,
                _ => false,
            };
            prop_assert!(!sooner, "{:?} before {:?}", d_with.next_allowed_at, d_without.next_allowed_at);
        }
    }
}
