//! The rule-language additions of issue 17, through the library: caps
//! counted from a restriction's receipt (`window: calendarMonth | all`
//! with `since`), permitted hours lifted by a consent to another time
//! (`unlessConsent`), and the restriction fields they read (`mailType`
//! on a cease, `written` on a `consentToTime`).

use chrono::{DateTime, TimeZone, Utc};
use compliance_guard::engine::{self, Decision, Proposal};
use compliance_guard::index::Index;
use compliance_guard::jurisdiction::Jurisdiction;
use compliance_guard::model::{Channel, Direction, InteractionInput};
use compliance_guard::restrictions::{MailType, RestrictionInput, RestrictionKind};
use compliance_guard::rules::{LoadOptions, RuleSet};

const PERSON: &str = "BO-LANG-0001";

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn rules(text: &str) -> RuleSet {
    RuleSet::compile(
        &[("t.yaml".to_owned(), text.to_owned())],
        &LoadOptions::default(),
    )
    .unwrap()
}

/// Records an outbound interaction on `channel` about `loan` at `at`.
fn record(index: &mut Index, channel: &str, loan: &str, at: DateTime<Utc>) -> String {
    let input = InteractionInput {
        channel: Some(channel.into()),
        direction: Some("outbound".into()),
        status: Some("attempted".into()),
        loan_id: Some(loan.into()),
        started_at: Some(at.to_rfc3339()),
        ..InteractionInput::default()
    };
    index.create(PERSON, &input, at).unwrap().id.clone()
}

/// Adds a restriction given as YAML (the fields of AddRestriction).
fn restrict(index: &mut Index, id: &str, yaml: &str) {
    let input: RestrictionInput = serde_yaml::from_str(yaml).unwrap();
    let at = compliance_guard::model::parse_time("t", &input.received_at).unwrap();
    let r = input
        .check(id.into(), PERSON.into(), "test".into(), at)
        .unwrap();
    index.put_restriction(r).unwrap();
}

fn send(channel: Channel, place: &str, loan: &str) -> Proposal {
    let mut p = Proposal::new(channel, Direction::Outbound);
    p.jurisdictions = vec![Jurisdiction::parse(place).unwrap()];
    p.loans = vec![loan.into()];
    p
}

fn decide(set: &RuleSet, index: &Index, p: &Proposal, at: DateTime<Utc>) -> Decision {
    engine::decide(set, &index.view(PERSON).unwrap(), p, at)
}

const SINCE: &str = r#"
rules:
  - id: t-mail-month
    description: one mail a calendar month after a certified request
    citation: test
    jurisdictions: [US]
    applies: {channels: [mail], directions: [outbound]}
    frequencyCap:
      limit: 1
      window: calendarMonth
      per: debt
      since: {restriction: ceaseCommunication, mailType: [registered, certified]}
  - id: t-contacts-all
    description: two contacts in all after a certified request
    citation: test
    jurisdictions: [US]
    applies: {channels: [voice, email], directions: [outbound]}
    frequencyCap:
      limit: 2
      window: all
      per: debt
      since: {restriction: ceaseCommunication, mailType: [certified]}
"#;

/// A monthly cap reports its month, the receipt as the first day counted,
/// the restriction and the counted ids; it frees at the next local month
/// and holds for the sends of that month that are already reserved.
#[test]
fn a_monthly_cap_counts_from_the_receipt_in_local_months() {
    let set = rules(SINCE);
    let mut index = Index::default();
    restrict(
        &mut index,
        "RS-LANG-0001",
        "{kind: ceaseCommunication, source: letter, mailType: certified, receivedAt: '2026-06-10T15:00:00Z'}",
    );
    record(&mut index, "mail", "L1", utc(2026, 6, 5, 15, 0, 0));
    let counted = record(&mut index, "mail", "L1", utc(2026, 6, 12, 15, 0, 0));
    // A notice reserved for July 1 (local) already uses July's.
    record(&mut index, "mail", "L1", utc(2026, 7, 1, 14, 0, 0));
    let p = send(Channel::Mail, "US-LA", "L1");
    let at = utc(2026, 6, 20, 15, 0, 0);
    let d = decide(&set, &index, &p, at);
    assert!(!d.allowed);
    assert_eq!(d.rule_id.as_deref(), Some("t-mail-month"));
    let v = &d.violations[0];
    assert_eq!(v.restriction_id.as_deref(), Some("RS-LANG-0001"));
    assert_eq!((v.count, v.limit), (1, 1));
    assert_eq!(v.counted_interaction_ids, vec![counted]);
    assert_eq!(v.window_start.unwrap().to_string(), "2026-06-10");
    assert_eq!(v.window_end.unwrap().to_string(), "2026-06-30");
    assert_eq!(v.window_days, 21);
    assert!(
        v.message
            .contains("since restriction `RS-LANG-0001` (ceaseCommunication")
            && v.message
                .contains("in the calendar month 2026-06-01..2026-06-30 (America/Chicago)")
            && v.message.contains("the limit is 1 a month"),
        "{}",
        v.message
    );
    // July is used up by the reservation; August 1, local midnight, is free.
    assert_eq!(d.next_allowed_at, Some(utc(2026, 8, 1, 5, 0, 0)));
    // An allow in August lasts until the next month's count is reached:
    // with nothing reserved there, forever.
    let d = decide(&set, &index, &p, utc(2026, 8, 3, 15, 0, 0));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.valid_until, None);
}

/// A cap in all blocks with no end while its restriction stands, and
/// frees when the restriction is ended; the allow before a restriction
/// received later ends at its receipt, if the count would then block.
#[test]
fn a_cap_in_all_lasts_while_the_restriction_stands() {
    let set = rules(SINCE);
    let mut index = Index::default();
    let yaml = "{kind: ceaseCommunication, source: letter, mailType: certified, receivedAt: '2026-06-10T15:00:00Z'}";
    restrict(&mut index, "RS-LANG-0002", yaml);
    record(&mut index, "voice", "L1", utc(2026, 6, 11, 15, 0, 0));
    record(&mut index, "email", "L1", utc(2026, 6, 12, 15, 0, 0));
    let p = send(Channel::Voice, "US-LA", "L1");
    let d = decide(&set, &index, &p, utc(2026, 7, 20, 15, 0, 0));
    assert!(!d.allowed);
    assert_eq!(d.rule_id.as_deref(), Some("t-contacts-all"));
    assert_eq!(d.next_allowed_at, None);
    let v = &d.violations[0];
    assert_eq!((v.count, v.limit, v.window_days), (2, 2, 0));
    assert_eq!(v.window_start.unwrap().to_string(), "2026-06-10");
    assert_eq!(v.window_end, None);
    assert!(v.message.contains("the limit is 2 in all"), "{}", v.message);

    // Ended on Jul 25: blocked until then, free from then.
    let mut ended = index.view(PERSON).unwrap().restrictions()[0].clone();
    ended.ended_at = Some(utc(2026, 7, 25, 0, 0, 0));
    index.put_restriction(ended).unwrap();
    let d = decide(&set, &index, &p, utc(2026, 7, 20, 15, 0, 0));
    assert_eq!(d.next_allowed_at, Some(utc(2026, 7, 25, 0, 0, 0)));
    assert!(decide(&set, &index, &p, utc(2026, 7, 25, 0, 0, 0)).allowed);

    // Before the receipt the send goes, until the receipt (when two
    // contacts about L1 already lie after it).
    let d = decide(&set, &index, &p, utc(2026, 6, 1, 15, 0, 0));
    assert!(d.allowed);
    assert_eq!(d.valid_until, Some(utc(2026, 6, 10, 15, 0, 0)));
}

/// A count in all since a receipt older than the history the index keeps
/// is unknown, read as reached; an allow ends when the receipt passes out
/// of the history kept.
#[test]
fn a_count_past_the_horizon_is_read_as_reached() {
    let set = rules(SINCE);
    let mut index = Index::default();
    restrict(
        &mut index,
        "RS-LANG-0003",
        "{kind: ceaseCommunication, source: letter, mailType: certified, receivedAt: '2026-01-05T15:00:00Z'}",
    );
    let p = send(Channel::Voice, "US-LA", "L1");
    let d = decide(&set, &index, &p, utc(2026, 6, 20, 15, 0, 0));
    assert!(!d.allowed);
    let v = &d.violations[0];
    assert_eq!(v.restriction_id.as_deref(), Some("RS-LANG-0003"));
    assert!(
        v.message
            .contains("reaches back past the 90 days of history the index keeps"),
        "{}",
        v.message
    );
    // 80 days after the receipt the count is known (nothing sent): the
    // allow lasts until the receipt is 90 days old.
    let d = decide(&set, &index, &p, utc(2026, 3, 26, 15, 0, 0));
    assert!(d.allowed);
    assert_eq!(d.valid_until, Some(utc(2026, 4, 5, 15, 0, 1)));
}

/// The mail-type condition: an unknown type starts the count, `other`
/// does not, and a type the rule does not name does not.
#[test]
fn the_mail_type_decides_which_requests_start_a_count() {
    let set = rules(SINCE);
    for (mail, month_blocks, all_blocks) in [
        ("", true, true),
        (", mailType: certified", true, true),
        (", mailType: registered", true, false),
        (", mailType: other", false, false),
    ] {
        let mut index = Index::default();
        restrict(
            &mut index,
            "RS-LANG-0004",
            &format!(
                "{{kind: ceaseCommunication, source: letter{mail}, receivedAt: '2026-06-10T15:00:00Z'}}"
            ),
        );
        record(&mut index, "mail", "L1", utc(2026, 6, 11, 15, 0, 0));
        record(&mut index, "voice", "L1", utc(2026, 6, 11, 16, 0, 0));
        record(&mut index, "voice", "L1", utc(2026, 6, 11, 17, 0, 0));
        let at = utc(2026, 6, 20, 15, 0, 0);
        let mail_d = decide(&set, &index, &send(Channel::Mail, "US-LA", "L1"), at);
        let call_d = decide(&set, &index, &send(Channel::Voice, "US-LA", "L1"), at);
        assert_eq!(!mail_d.allowed, month_blocks, "{mail}: {mail_d:?}");
        assert_eq!(!call_d.allowed, all_blocks, "{mail}: {call_d:?}");
    }
}

/// A request about one loan starts the count for that debt only; a send
/// about another debt is not covered, a send about every debt is.
#[test]
fn a_count_per_debt_follows_the_debts_the_request_names() {
    let set = rules(SINCE);
    let mut index = Index::default();
    restrict(
        &mut index,
        "RS-LANG-0005",
        "{kind: ceaseCommunication, source: letter, mailType: certified, loanIds: [L1], receivedAt: '2026-06-10T15:00:00Z'}",
    );
    record(&mut index, "voice", "L1", utc(2026, 6, 11, 15, 0, 0));
    record(&mut index, "voice", "L1", utc(2026, 6, 12, 15, 0, 0));
    record(&mut index, "voice", "L2", utc(2026, 6, 12, 16, 0, 0));
    let at = utc(2026, 6, 20, 15, 0, 0);
    assert!(!decide(&set, &index, &send(Channel::Voice, "US-LA", "L1"), at).allowed);
    assert!(decide(&set, &index, &send(Channel::Voice, "US-LA", "L2"), at).allowed);
    let mut every = send(Channel::Voice, "US-LA", "L1");
    every.loans.clear();
    let d = decide(&set, &index, &every, at);
    assert!(!d.allowed);
    assert_eq!(d.violations[0].debt.as_deref(), Some("L1"));
}

const HOURS: &str = r#"
rules:
  - id: t-hours-written
    description: hours a written consent lifts
    citation: test
    jurisdictions: [US]
    applies: {directions: [outbound]}
    permittedHours:
      from: "08:00"
      until: "21:00"
      unlessConsent: {written: true}
"#;

/// A call in Detroit (Michigan has a Central zone too, which the zone
/// narrows away).
fn detroit() -> Proposal {
    let mut p = send(Channel::Voice, "US-MI", "L1");
    p.zones = vec![chrono_tz::America::Detroit];
    p
}

/// A written consent to 21:00-22:30 lifts the hours then: the allow at
/// 20:00 runs on to 22:30, the block at 22:45 frees at 08:00, the block
/// at 07:00 frees at 08:00, and a consent not written lifts nothing.
#[test]
fn a_written_consent_lifts_the_hours_at_its_times() {
    let set = rules(HOURS);
    let p = detroit();
    // EDT in June: 21:00 is 01:00Z the next day.
    let mut index = Index::default();
    restrict(
        &mut index,
        "RS-LANG-0006",
        "{kind: consentToTime, source: letter, written: true, from: '21:00', until: '22:30', receivedAt: '2026-06-01T12:00:00Z'}",
    );
    let d = decide(&set, &index, &p, utc(2026, 6, 3, 0, 0, 0));
    assert!(d.allowed);
    assert_eq!(d.valid_until, Some(utc(2026, 6, 3, 2, 30, 0)));
    let d = decide(&set, &index, &p, utc(2026, 6, 3, 1, 30, 0));
    assert!(d.allowed, "{d:?}");
    let d = decide(&set, &index, &p, utc(2026, 6, 3, 2, 45, 0));
    assert!(!d.allowed);
    assert_eq!(d.next_allowed_at, Some(utc(2026, 6, 3, 12, 0, 0)));
    assert!(
        d.violations[0].message.ends_with(
            "and no consent to another time given in writing (consentToTime, written) covers it"
        ),
        "{}",
        d.violations[0].message
    );

    let mut unwritten = Index::default();
    restrict(
        &mut unwritten,
        "RS-LANG-0007",
        "{kind: consentToTime, source: call, from: '21:00', until: '22:30', receivedAt: '2026-06-01T12:00:00Z'}",
    );
    let d = decide(&set, &unwritten, &p, utc(2026, 6, 3, 1, 30, 0));
    assert!(!d.allowed);
    assert_eq!(d.valid_until, None);
    let d = decide(&set, &unwritten, &p, utc(2026, 6, 3, 0, 0, 0));
    assert_eq!(d.valid_until, Some(utc(2026, 6, 3, 1, 0, 0)));
}

/// A written consent to an early hour, blocked before it: the next
/// allowed moment is the consent's start, not the hours'.
#[test]
fn the_next_allowed_moment_may_be_a_consents_start() {
    let set = rules(HOURS);
    let p = detroit();
    let mut index = Index::default();
    restrict(
        &mut index,
        "RS-LANG-0008",
        "{kind: consentToTime, source: portal, written: true, from: '07:00', until: '08:00', receivedAt: '2026-06-01T12:00:00Z'}",
    );
    // 05:00 EDT: the consent opens at 07:00 EDT (11:00Z).
    let d = decide(&set, &index, &p, utc(2026, 6, 3, 9, 0, 0));
    assert!(!d.allowed);
    assert_eq!(d.next_allowed_at, Some(utc(2026, 6, 3, 11, 0, 0)));
    // From 07:00 the consent and then the hours: allowed until 21:00.
    let d = decide(&set, &index, &p, utc(2026, 6, 3, 11, 0, 0));
    assert!(d.allowed);
    assert_eq!(d.valid_until, Some(utc(2026, 6, 4, 1, 0, 0)));
}

/// The restriction fields: each refused on the kinds that do not have
/// it, naming the field; a registered or certified request came by mail.
#[test]
fn the_new_restriction_fields_are_checked() {
    let check = |yaml: &str| {
        let input: RestrictionInput = serde_yaml::from_str(yaml).unwrap();
        input.check(
            "RS-1".into(),
            PERSON.into(),
            "t".into(),
            utc(2026, 6, 1, 0, 0, 0),
        )
    };
    let r = check("{kind: ceaseCommunication, source: letter, mailType: certified, receivedAt: '2026-06-01T00:00:00Z'}").unwrap();
    assert_eq!(r.mail_type, Some(MailType::Certified));
    let r = check("{kind: ceaseCommunication, source: letter, receivedAt: '2026-06-01T00:00:00Z'}")
        .unwrap();
    assert_eq!(r.mail_type, None);
    let r = check("{kind: consentToTime, source: letter, written: true, days: [saturday], receivedAt: '2026-06-01T00:00:00Z'}").unwrap();
    assert_eq!(r.kind, RestrictionKind::ConsentToTime);
    assert!(r.written);
    assert!(!RestrictionKind::ConsentToTime.blocks());
    let fields = |yaml: &str| -> Vec<(String, String)> {
        check(yaml)
            .unwrap_err()
            .0
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    };
    assert_eq!(
        fields(
            "{kind: ceaseCommunication, source: letter, mailType: express, receivedAt: '2026-06-01T00:00:00Z'}"
        ),
        vec![(
            "mailType".into(),
            "`mailType` value `express` is not allowed; allowed: registered, certified, other"
                .into()
        )]
    );
    assert_eq!(
        fields("{kind: ceaseCommunication, source: call, mailType: certified, receivedAt: '2026-06-01T00:00:00Z'}"),
        vec![("mailType".into(), "`mailType` `certified` is for a request that came by mail, but `source` is `call`; allowed: `source` `letter`, or `mailType` `other`".into())]
    );
    assert_eq!(
        fields("{kind: doNotInteract, reason: other, source: lender, mailType: other, receivedAt: '2026-06-01T00:00:00Z'}"),
        vec![("mailType".into(), "`mailType` is not allowed for `kind` `doNotInteract`: only `ceaseCommunication` records how the request was sent".into())]
    );
    assert_eq!(
        fields("{kind: priorConsentToCall, source: letter, written: true, receivedAt: '2026-06-01T00:00:00Z'}"),
        vec![("written".into(), "`written` is not allowed for `kind` `priorConsentToCall`: only `consentToTime` records whether it was given in writing".into())]
    );
    assert_eq!(
        fields("{kind: consentToTime, source: letter, written: true, receivedAt: '2026-06-01T00:00:00Z'}"),
        vec![("from".into(), "`from` is required for `consentToTime` with `until` or without `days`, as HH:MM local time; allowed: `from` and `until`, or neither with `days` for whole days".into())]
    );
    assert_eq!(
        fields("{kind: consentToTime, source: letter, loanIds: [L1], from: '21:00', until: '22:00', receivedAt: '2026-06-01T00:00:00Z'}"),
        vec![("loanIds".into(), "`loanIds` is not allowed for `kind` `consentToTime`: it concerns the borrower, not a debt".into())]
    );
}

/// The rules that read a restriction, as ExplainRestrictions lists them:
/// Louisiana's caps read a cease of registered, certified or unknown mail
/// type, not one sent by ordinary mail; Michigan's hours read a written
/// consent to another time, not an unwritten one.
#[test]
fn the_rules_that_read_a_restriction_follow_its_fields() {
    let set = RuleSet::load_dir("rules".as_ref(), &LoadOptions::default()).unwrap();
    let readers = |yaml: &str| -> Vec<String> {
        let input: RestrictionInput = serde_yaml::from_str(yaml).unwrap();
        let r = input
            .check(
                "RS-1".into(),
                PERSON.into(),
                "t".into(),
                utc(2026, 6, 1, 0, 0, 0),
            )
            .unwrap();
        set.rules()
            .iter()
            .filter(|rule| rule.kind.reads(&r))
            .filter(|rule| rule.id.starts_with("us-la") || rule.id.starts_with("us-mi"))
            .map(|rule| rule.id.clone())
            .collect()
    };
    let la = [
        "us-la-rs-9-3562-3-4-personal-contacts",
        "us-la-rs-9-3562-3-mail-1-per-month",
    ];
    for mail in ["", ", mailType: certified", ", mailType: registered"] {
        assert_eq!(
            readers(&format!(
                "{{kind: ceaseCommunication, source: letter{mail}, receivedAt: '2026-06-01T00:00:00Z'}}"
            )),
            la,
            "{mail}"
        );
    }
    assert!(
        readers("{kind: ceaseCommunication, source: letter, mailType: other, receivedAt: '2026-06-01T00:00:00Z'}")
            .is_empty()
    );
    let consent = "{kind: consentToTime, source: letter, from: '21:00', until: '22:00', receivedAt: '2026-06-01T00:00:00Z'";
    assert_eq!(
        readers(&format!("{consent}, written: true}}")),
        ["us-mi-mcl-445.252n-hours"]
    );
    assert!(readers(&format!("{consent}}}")).is_empty());
}
