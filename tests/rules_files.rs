//! Rule files: `RuleSet::compile` and `RuleSet::load_dir`, their
//! `file:line:column: message` errors, and the shipped `rules/` directory.

use std::path::{Path, PathBuf};

use compliance_guard::rules::{LoadOptions, Per, Role, RuleError, RuleKind, RuleSet};
use rust_decimal::Decimal;

/// A rule file with one rule, `test-cap`, whose `applies:` block and kind
/// block are given. Lines: 1 `rules:`, 2 `- id:`, 3 description,
/// 4 citation, 5 jurisdictions, 6 `applies:`, 7.. the applies block, then
/// the kind block.
fn one_rule(applies: &str, kind: &str) -> String {
    format!(
        "rules:\n  - id: test-cap\n    description: A cap.\n    citation: Test 1\n    jurisdictions: [US]\n    applies:\n{applies}{kind}"
    )
}

const VOICE: &str = "      channels: [voice]\n";
/// A cap block: `limit` on line 9 and `windowDays` on line 10 after a
/// one-line applies block.
const CAP: &str = "    frequencyCap:\n      limit: 3\n      windowDays: 7\n      per: borrower\n";

fn compile_with(files: &[(&str, &str)], opts: &LoadOptions) -> Result<RuleSet, Vec<RuleError>> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    RuleSet::compile(&sources, opts).map_err(|e| e.0)
}

fn errors(text: &str) -> Vec<RuleError> {
    errors_with(text, &LoadOptions::default())
}

fn errors_with(text: &str, opts: &LoadOptions) -> Vec<RuleError> {
    match compile_with(&[("t.yaml", text)], opts) {
        Ok(set) => panic!(
            "expected errors, got {} rules from:\n{text}",
            set.rules().len()
        ),
        Err(e) => e,
    }
}

/// The single error of a file, as its Display.
fn only_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].to_string()
}

fn compiles(text: &str) -> RuleSet {
    match compile_with(&[("t.yaml", text)], &LoadOptions::default()) {
        Ok(set) => set,
        Err(e) => panic!("expected {text} to compile, got {e:?}"),
    }
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// Every shipped rule id, in the order the set lists them; the CLI and the
/// gRPC tests compare with it too.
pub(crate) const SHIPPED_IDS: [&str; 83] = [
    "policy-do-not-interact",
    "policy-us-federal-holidays",
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
    "us-ar-17-24-504-a1b-hours",
    "us-ca-civ-1788.17-1692c-a1-designated-inconvenient-place",
    "us-ca-civ-1788.17-1692c-a1-designated-inconvenient-time",
    "us-ca-civ-1788.17-1692c-a1-hours",
    "us-ca-civ-1788.17-1692c-a2-attorney-representation",
    "us-ca-civ-1788.17-1692c-a3-employer-prohibits-contact",
    "us-ca-civ-1788.17-1692c-c-cease-communication",
    "us-co-5-16-105-1a-hours",
    "us-ct-36a-647-4-hours",
    "us-dc-28-3814-d4-opt-out",
    "us-dc-28-3814-d4Ai-4-calls-in-7",
    "us-dc-28-3814-d4Aii-quiet-after-completed-call",
    "us-dc-28-3814-d4B-5-electronic-in-7",
    "us-dc-28-3814-d4B-electronic-consent",
    "us-dc-28-3814-k-hours",
    "us-fl-559.72-17-hours",
    "us-hi-480j-10c-residence-hours",
    "us-il-205ilcs740-9.2-a1-hours",
    "us-la-rs-9-3562-3-4-personal-contacts",
    "us-la-rs-9-3562-3-mail-1-per-month",
    "us-ma-209cmr-18.16-1a-hours",
    "us-ma-209cmr-18.16-1d-other-2-in-30",
    "us-ma-209cmr-18.16-1d-residence-cell-2-in-7",
    "us-ma-940cmr-7.04-1f-other-2-in-30",
    "us-ma-940cmr-7.04-1f-personal-2-in-7",
    "us-ma-940cmr-7.04-hours",
    "us-md-14-202-11-1692c-a1-hours",
    "us-me-32mrs-11012-1a-hours",
    "us-me-9a-11-119-2a-designated-inconvenient-place",
    "us-me-9a-11-119-2a-designated-inconvenient-time",
    "us-mi-mcl-445.252n-designated-inconvenient-place",
    "us-mi-mcl-445.252n-designated-inconvenient-time",
    "us-mi-mcl-445.252n-hours",
    "us-ny-nyc-6rcny-5-77-b1i-designated-inconvenient-place",
    "us-ny-nyc-6rcny-5-77-b1i-designated-inconvenient-time",
    "us-ny-nyc-6rcny-5-77-b1i-hours",
    "us-ny-nyc-6rcny-5-77-b1iv-2-in-7",
    "us-ny-nyc-shield-electronic-consent",
    "us-ny-nyc-shield-medium-opt-out",
    "us-pa-73ps-2270.4-hours",
    "us-regf-7-calls-in-7-days",
    "us-regf-attorney-representation",
    "us-regf-cease-communication",
    "us-regf-designated-inconvenient-place",
    "us-regf-designated-inconvenient-time",
    "us-regf-employer-prohibits-contact",
    "us-regf-hours",
    "us-regf-medium-opt-out",
    "us-regf-quiet-after-conversation",
    "us-ri-19-14.9-5-1a-hours",
    "us-sc-37-5-108-5bi-designated-inconvenient-place",
    "us-sc-37-5-108-5bi-designated-inconvenient-time",
    "us-sc-37-5-108-5bi-hours",
    "us-sc-37-5-108-5bii-attorney-representation",
    "us-sc-37-5-108-5biii-employer-prohibits-contact",
    "us-wa-rcw-19.16.250-13a-3-per-week",
    "us-wa-rcw-19.16.250-13b-work-1-per-week",
    "us-wa-rcw-19.16.250-13c-residence-hours",
    "us-wa-rcw-19.16.250-18-mobile-2-per-day",
    "us-wa-rcw-31.45.082-3a-3-per-week",
    "us-wa-rcw-31.45.082-3b-employer-prohibits",
    "us-wa-rcw-31.45.082-3b-work-1-per-week",
    "us-wa-rcw-31.45.082-3c-residence-hours",
    "us-wv-46a-2-125d-10-conversations-per-week",
    "us-wv-46a-2-125d-30-calls-per-week",
    "us-wv-46a-2-125d-designated-inconvenient-time",
    "us-wv-46a-2-125d-hours",
];

#[test]
fn the_base_rule_compiles() {
    let set = compiles(&one_rule(VOICE, CAP));
    let rule = set.get("test-cap").unwrap();
    assert_eq!(rule.line, 2);
    assert_eq!(rule.file, "t.yaml");
    assert!(rule.binding);
    assert!(matches!(
        rule.kind,
        RuleKind::FrequencyCap {
            limit: 3,
            window_days: 7,
            ..
        }
    ));
}

// --- YAML and shape ----------------------------------------------------------

#[test]
fn yaml_syntax_error_has_its_position() {
    assert_eq!(
        only_error("rules:\n  - id: x\n    description: a: b\n"),
        "t.yaml:3:19: mapping values are not allowed in this context"
    );
}

#[test]
fn unclosed_quote_is_reported_at_the_end_of_the_stream() {
    let e = errors("rules:\n  - id: x\n    description: \"unclosed\n    citation: y\n");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].file.as_str(), e[0].line, e[0].column),
        ("t.yaml", 5, 1)
    );
    assert!(
        e[0].message.starts_with("found unexpected end of stream"),
        "{}",
        e[0].message
    );
    assert!(
        e[0].message.contains("while scanning a quoted scalar"),
        "{}",
        e[0].message
    );
    assert!(
        e[0].message
            .ends_with("while scanning a quoted scalar at line 3 column 18"),
        "{}",
        e[0].message
    );
}

#[test]
fn unknown_key_is_refused() {
    assert_eq!(
        only_error(&one_rule(
            "      channels: [voice]\n      colour: red\n",
            CAP
        )),
        "t.yaml:8:7: rules[0].applies: unknown field `colour`, expected one of `channels`, `directions`, `themes`, \
         `contactKinds`, `transactional`, `replies`, `minimumBalance`"
    );
    // At the rule's own level too.
    let e = errors(&one_rule(VOICE, CAP).replace(
        "    citation: Test 1\n",
        "    citation: Test 1\n    severity: high\n",
    ));
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (5, 5));
    assert!(
        e[0].message
            .starts_with("rules[0]: unknown field `severity`, expected one of `id`,"),
        "{}",
        e[0].message
    );
}

#[test]
fn unknown_channel_is_refused_with_a_suggestion() {
    let e = errors(&one_rule("      channels: [voise]\n", CAP));
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].file.as_str(), e[0].line), ("t.yaml", 7));
    assert_eq!(
        e[0].message,
        "rules[0].applies.channels[0]: unknown channel `voise`, allowed: voice, email, fax, text, chat, mail, gui, \
         document (did you mean `voice`?)"
    );
    assert_eq!(e[0].column, 18);
}

#[test]
fn unknown_channel_in_a_block_list_names_the_value() {
    let e = errors(&one_rule(
        "      channels:\n        - voice\n        - voise\n",
        CAP,
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("unknown channel `voise`"),
        "{}",
        e[0].message
    );
    assert!(
        e[0].message.ends_with("(did you mean `voice`?)"),
        "{}",
        e[0].message
    );
    assert_eq!((e[0].line, e[0].column), (9, 11));
}

#[test]
fn unknown_theme_is_refused() {
    let e = errors(&one_rule("      themes: [colection]\n", CAP));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 7);
    let m = &e[0].message;
    assert!(
        m.starts_with("rules[0].applies.themes[0]: unknown theme `colection`, allowed: a group"),
        "{m}"
    );
    assert!(m.ends_with("(did you mean `collection`?)"), "{m}");
    assert_eq!(e[0].column, 16);
}

#[test]
fn unknown_contact_kind_is_refused() {
    let e = errors(&one_rule("      contactKinds: [mobilPhone]\n", CAP));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 7);
    assert_eq!(
        e[0].message,
        "rules[0].applies.contactKinds[0]: unknown contact kind `mobilPhone`, allowed: homePhone, mobilePhone, \
         workPhone, otherPersonalPhone, email, postalAddress (did you mean `mobilePhone`?)"
    );
    assert_eq!(e[0].column, 22);
}

#[test]
fn unknown_jurisdiction_is_refused() {
    let e = errors(&one_rule(VOICE, CAP).replace("[US]", "[US-XX]"));
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].file.as_str(), e[0].line), ("t.yaml", 5));
    let m = &e[0].message;
    assert!(
        m.starts_with("rules[0].jurisdictions[0]: unknown jurisdiction `US-XX`; allowed: `US`"),
        "{m}"
    );
    assert_eq!(e[0].column, 21);
}

// --- ids ---------------------------------------------------------------------

#[test]
fn duplicate_id_across_files_names_the_first() {
    let text = one_rule(VOICE, CAP);
    let second = format!("# the same rule again\n{text}");
    let e = compile_with(
        &[("b.yaml", &second), ("a.yaml", &text)],
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "b.yaml:3:5: rule id `test-cap` is used twice; it is already defined at a.yaml:2; ids must be unique"
    );
}

#[test]
fn duplicate_id_in_one_file_is_refused() {
    let rule = one_rule(VOICE, CAP);
    let twice = format!("{rule}{}", rule.trim_start_matches("rules:\n"));
    let e = errors(&twice);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message
            .starts_with("rule id `test-cap` is used twice; it is already defined at t.yaml:2")
    );
    assert_eq!((e[0].line, e[0].column), (12, 5));
}

// --- windows, limits, hours ----------------------------------------------------

#[test]
fn window_of_zero_days_is_refused() {
    assert_eq!(
        only_error(&one_rule(
            VOICE,
            &CAP.replace("windowDays: 7", "windowDays: 0")
        )),
        "t.yaml:10:7: rule `test-cap`: `windowDays` is 0; a window has at least 1 day"
    );
}

#[test]
fn window_beyond_the_horizon_is_refused() {
    let opts = LoadOptions {
        horizon_days: 30,
        ..LoadOptions::default()
    };
    let e = errors_with(
        &one_rule(VOICE, &CAP.replace("windowDays: 7", "windowDays: 31")),
        &opts,
    );
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "t.yaml:10:7: rule `test-cap`: `windowDays` is 31 days, longer than the 30 days of history the index keeps; \
         shorten it or raise the horizon"
    );
    // Exactly the horizon is fine.
    let text = one_rule(VOICE, &CAP.replace("windowDays: 7", "windowDays: 30"));
    let set = compile_with(&[("t.yaml", &text)], &opts).unwrap();
    assert_eq!((set.horizon_days(), set.longest_window_days()), (30, 30));
}

#[test]
fn limit_of_zero_is_refused() {
    assert_eq!(
        only_error(&one_rule(VOICE, &CAP.replace("limit: 3", "limit: 0"))),
        "t.yaml:9:7: rule `test-cap`: `limit` is 0; allowed: 1 to 100000"
    );
}

fn hours(from: &str, until: &str) -> String {
    one_rule(
        VOICE,
        &format!("    permittedHours:\n      from: {from}\n      until: {until}\n"),
    )
}

#[test]
fn permitted_hours_must_not_be_empty() {
    assert_eq!(
        only_error(&hours("\"21:00\"", "\"08:00\"")),
        "t.yaml:10:7: rule `test-cap`: permitted hours from 21:00 until 08:00 are empty; `until` must be later than `from`"
    );
    assert_eq!(
        only_error(&hours("\"08:00\"", "\"08:00\"")),
        "t.yaml:10:7: rule `test-cap`: permitted hours from 08:00 until 08:00 are empty; `until` must be later than `from`"
    );
    let set = compiles(&hours("\"08:00\"", "\"08:01\""));
    assert!(matches!(
        set.get("test-cap").unwrap().kind,
        RuleKind::PermittedHours { .. }
    ));
}

#[test]
fn a_time_not_written_hh_mm_is_refused() {
    assert_eq!(
        only_error(&hours("8am", "\"21:00\"")),
        "t.yaml:9:7: rule `test-cap`: `from` `8am` is not a time; write HH:MM or HH:MM:SS, for example \"08:00\""
    );
    assert_eq!(
        only_error(&hours("\"08:00\"", "\"9:00\"")),
        "t.yaml:10:7: rule `test-cap`: `until` `9:00` is not a time; write HH:MM or HH:MM:SS, for example \"08:00\""
    );
    for bad in [
        "\"08:00:1\"",
        "\"08:00:60\"",
        "\"08:00:00:00\"",
        "\"+8:00\"",
        "\"08:0a\"",
    ] {
        assert!(
            only_error(&hours(bad, "\"21:00\"")).contains("is not a time"),
            "{bad}"
        );
    }
}

/// "After 8:00 A.M." (209 CMR 18.16(1)(a)) is an open interval: written
/// `08:00:01`, the first whole second after the hour.
#[test]
fn hours_may_name_seconds() {
    let set = compiles(&hours("\"08:00:01\"", "\"21:00\""));
    let RuleKind::PermittedHours { from, until, .. } = set.get("test-cap").unwrap().kind else {
        panic!("not hours")
    };
    assert_eq!(from, chrono::NaiveTime::from_hms_opt(8, 0, 1).unwrap());
    assert_eq!(until, chrono::NaiveTime::from_hms_opt(21, 0, 0).unwrap());
}

/// D.C. 28-3814(d)(4)(B)(ii) counts consent requests per consumer while
/// notice and consent are per account; the reverse cannot be counted.
#[test]
fn consent_requests_may_be_counted_per_borrower() {
    let rule = |requests_per: &str, per: &str| {
        one_rule(
            VOICE,
            &format!(
                "    consentRequired:\n      consent: electronicConsent\n      requests:\n        limit: 1\n        windowDays: 7\n{requests_per}      per: {per}\n"
            ),
        )
    };
    let kind = |text: &str| compiles(text).get("test-cap").unwrap().kind.clone();
    assert!(matches!(
        kind(&rule("        per: borrower\n", "debt")),
        RuleKind::ConsentRequired {
            per: Per::Debt,
            requests_per: Per::Borrower,
            ..
        }
    ));
    assert!(matches!(
        kind(&rule("", "debt")),
        RuleKind::ConsentRequired {
            requests_per: Per::Debt,
            ..
        }
    ));
    assert_eq!(
        only_error(&rule("        per: debt\n", "borrower")),
        "t.yaml:10:7: rule `test-cap`: `requests.per` is `debt` but the rule's `per` is `borrower`; requests can be counted per debt only when notice and consent are; allowed: `borrower`, or leave it out"
    );
}

#[test]
fn exceptions_go_only_with_a_cease_or_an_opt_out() {
    let rule = |kind: &str| {
        one_rule(
            VOICE,
            &format!("    restriction: {kind}\n    exceptions: none\n"),
        )
    };
    let set = compiles(&rule("mediumOptOut"));
    assert!(matches!(
        set.get("test-cap").unwrap().kind,
        RuleKind::Restriction {
            regulation_f_exceptions: false,
            ..
        }
    ));
    compiles(&rule("ceaseCommunication"));
    assert_eq!(
        only_error(&rule("attorneyRepresentation")),
        "t.yaml:9:5: rule `test-cap`: `exceptions: none` is for a `ceaseCommunication` or `mediumOptOut` rule, whose exceptions it turns off; `attorneyRepresentation` has no exceptions to turn off"
    );
    let hours_with = format!("{}    exceptions: none\n", hours("\"08:00\"", "\"21:00\""));
    assert!(
        only_error(&hours_with).contains("`exceptions` goes with `restriction`"),
        "{}",
        only_error(&hours_with)
    );
    let default = compiles(&one_rule(VOICE, "    restriction: mediumOptOut\n"));
    assert!(matches!(
        default.get("test-cap").unwrap().kind,
        RuleKind::Restriction {
            regulation_f_exceptions: true,
            ..
        }
    ));
}

#[test]
fn conversations_are_counted_alone() {
    let both =
        format!("{CAP}      counting:\n        conversations: true\n        attempts: true\n");
    assert_eq!(
        only_error(&one_rule(VOICE, &both)),
        "t.yaml:13:9: rule `test-cap`: `counting.conversations` counts conversations alone; allowed with it: `neverCountOutcomes` only (not `attempts`, `alsoCount` or `neverCount`)"
    );
    let alone = format!("{CAP}      counting:\n        conversations: true\n");
    compiles(&one_rule(VOICE, &alone));
    let attempts = format!(
        "{CAP}      counting:\n        attempts: true\n        neverCount: [letterReturnedToSender]\n"
    );
    compiles(&one_rule(VOICE, &attempts));
}

#[test]
fn an_empty_list_can_never_match() {
    assert_eq!(
        only_error(&one_rule("      channels: []\n", CAP)),
        "t.yaml:7:7: rule `test-cap`: `channels` is an empty list, so the rule can never match; remove the key to mean \"any\""
    );
}

// --- amounts -----------------------------------------------------------------

#[test]
fn a_bare_number_amount_is_refused() {
    assert_eq!(
        only_error(&one_rule("      minimumBalance: 12.5\n", CAP)),
        "t.yaml:7:23: rules[0].applies.minimumBalance: amount 12.5 is a number; write it as a quoted string, for example \"12.5\""
    );
    assert_eq!(
        only_error(&one_rule("      minimumBalance: 12\n", CAP)),
        "t.yaml:7:23: rules[0].applies.minimumBalance: amount 12 is a number; write it as a quoted string, for example \"12.00\""
    );
    let e = only_error(&one_rule("      minimumBalance: \"1e3\"\n", CAP));
    assert!(
        e.starts_with(
            "t.yaml:7:23: rules[0].applies.minimumBalance: amount `1e3` is not an exact decimal"
        ),
        "{e}"
    );
}

#[test]
fn a_quoted_amount_is_kept_exactly() {
    let set = compiles(&one_rule("      minimumBalance: \"12.50\"\n", CAP));
    let min = set
        .get("test-cap")
        .unwrap()
        .applies
        .minimum_balance
        .unwrap();
    assert_eq!(min, Decimal::new(1250, 2));
    assert_eq!(min.scale(), 2);
    assert_eq!(min.to_string(), "12.50");
}

// --- kinds -------------------------------------------------------------------

#[test]
fn a_rule_with_two_kinds_is_refused() {
    let kinds =
        format!("{CAP}    permittedHours:\n      from: \"08:00\"\n      until: \"21:00\"\n");
    assert_eq!(
        only_error(&one_rule(VOICE, &kinds)),
        "t.yaml:2:5: rule `test-cap` has more than one of `frequencyCap`, `coolDown`, `permittedHours`, `restriction`, `blackoutDates` or `consentRequired`; write one rule for each"
    );
}

#[test]
fn a_rule_with_no_kind_is_refused() {
    assert_eq!(
        only_error(&one_rule(VOICE, "")),
        "t.yaml:2:5: rule `test-cap` says nothing to enforce; give one of `frequencyCap`, `coolDown`, `permittedHours`, `restriction`, `blackoutDates` or `consentRequired`"
    );
}

// --- every problem -------------------------------------------------------------

#[test]
fn every_problem_in_a_file_is_reported() {
    let first = one_rule(VOICE, &CAP.replace("windowDays: 7", "windowDays: 0"));
    let text = format!(
        "{first}  - id: second\n    description: B.\n    citation: T\n    jurisdictions: [US]\n    frequencyCap:\n      \
         limit: 0\n      windowDays: 7\n      per: borrower\n"
    );
    let e: Vec<String> = errors(&text).iter().map(ToString::to_string).collect();
    assert_eq!(
        e,
        vec![
            "t.yaml:10:7: rule `test-cap`: `windowDays` is 0; a window has at least 1 day"
                .to_owned(),
            "t.yaml:17:7: rule `second`: `limit` is 0; allowed: 1 to 100000".to_owned(),
        ]
    );
    // Two problems in one rule are both reported too.
    let both = one_rule(
        VOICE,
        &CAP.replace("limit: 3", "limit: 0")
            .replace("windowDays: 7", "windowDays: 0"),
    );
    let e: Vec<(usize, usize)> = errors(&both).iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(e, vec![(9, 7), (10, 7)]);
}

#[test]
fn every_problem_across_files_is_reported() {
    let bad_yaml = "rules:\n  - id: x\n    description: a: b\n";
    let bad_check = one_rule(VOICE, &CAP.replace("limit: 3", "limit: 0"));
    let bad_vocab = one_rule("      channels: [voise]\n", CAP).replace("test-cap", "other");
    let e = compile_with(
        &[
            ("c.yaml", &bad_vocab),
            ("a.yaml", bad_yaml),
            ("b.yaml", &bad_check),
        ],
        &LoadOptions::default(),
    )
    .unwrap_err();
    let places: Vec<(&str, usize)> = e.iter().map(|e| (e.file.as_str(), e.line)).collect();
    assert_eq!(places, vec![("a.yaml", 3), ("b.yaml", 9), ("c.yaml", 7)]);
    let shown = compliance_guard::rules::RuleErrors(e).to_string();
    assert!(
        shown.starts_with("3 problems in the rules\na.yaml:3:19: "),
        "{shown}"
    );
}

#[test]
fn vocabulary_errors_in_two_rules_of_one_file() {
    let first = one_rule("      channels: [voise]\n", CAP);
    let text = format!(
        "{first}  - id: second\n    description: B.\n    citation: T\n    jurisdictions: [US-XX]\n    frequencyCap:\n      \
         limit: 1\n      windowDays: 7\n      per: borrower\n"
    );
    let e = errors(&text);
    assert!(
        e[0].message.contains("unknown channel `voise`"),
        "{}",
        e[0].message
    );
    // Each rule is parsed again on its own, so both are reported, each at
    // its own line.
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[1].message
            .starts_with("rules[1].jurisdictions[0]: unknown jurisdiction `US-XX`"),
        "{}",
        e[1].message
    );
}

// --- the shipped rules -----------------------------------------------------------

#[test]
fn the_shipped_rules_load_with_their_ids() {
    let set = RuleSet::load_dir(&shipped_dir(), &LoadOptions::default()).unwrap();
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, SHIPPED_IDS);
    assert!(set.rules().iter().all(|r| r.binding));
    // Louisiana's monthly cap reads up to a month (31 days) of history.
    assert_eq!(set.longest_window_days(), 31);
    let hours = set.get("us-regf-hours").unwrap();
    assert!(hours.file.ends_with("us-reg-f.yaml"), "{}", hours.file);
    assert!(matches!(hours.kind, RuleKind::PermittedHours { .. }));
}

#[test]
fn load_dir_reports_a_missing_or_empty_directory() {
    let missing = shipped_dir().join("no-such-dir");
    let e = RuleSet::load_dir(&missing, &LoadOptions::default())
        .unwrap_err()
        .0;
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (0, 0));
    assert!(e[0].to_string().starts_with(&format!(
        "{}: cannot read the rules directory",
        missing.display()
    )));

    let empty = tempfile::tempdir().unwrap();
    let e = RuleSet::load_dir(empty.path(), &LoadOptions::default())
        .unwrap_err()
        .0;
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.starts_with("no rule files (*.yaml) found"),
        "{}",
        e[0].message
    );
}

#[test]
fn load_dir_names_errors_by_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.yml"), one_rule(VOICE, CAP)).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        one_rule(VOICE, &CAP.replace("limit: 3", "limit: 0")).replace("test-cap", "bad"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not: [a rule").unwrap();
    let e = RuleSet::load_dir(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .0;
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        format!(
            "{}:9:7: rule `bad`: `limit` is 0; allowed: 1 to 100000",
            dir.path().join("bad.yaml").display()
        )
    );
}

#[test]
fn roles_decide_which_rules_bind() {
    let binding = |roles: Vec<Role>| {
        let set = RuleSet::load_dir(
            &shipped_dir(),
            &LoadOptions {
                roles: Some(roles),
                ..LoadOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            set.rules().len(),
            SHIPPED_IDS.len(),
            "non-binding rules stay in the set"
        );
        set.rules()
            .iter()
            .filter(|r| r.binding)
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        binding(vec![Role::Creditor]),
        vec![
            "policy-do-not-interact",
            "policy-us-federal-holidays",
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
            "us-ca-civ-1788.17-1692c-a1-designated-inconvenient-place",
            "us-ca-civ-1788.17-1692c-a1-designated-inconvenient-time",
            "us-ca-civ-1788.17-1692c-a1-hours",
            "us-ca-civ-1788.17-1692c-a2-attorney-representation",
            "us-ca-civ-1788.17-1692c-a3-employer-prohibits-contact",
            "us-ca-civ-1788.17-1692c-c-cease-communication",
            "us-ct-36a-647-4-hours",
            "us-dc-28-3814-d4-opt-out",
            "us-dc-28-3814-d4Ai-4-calls-in-7",
            "us-dc-28-3814-d4Aii-quiet-after-completed-call",
            "us-dc-28-3814-d4B-5-electronic-in-7",
            "us-dc-28-3814-d4B-electronic-consent",
            "us-dc-28-3814-k-hours",
            "us-fl-559.72-17-hours",
            "us-hi-480j-10c-residence-hours",
            "us-la-rs-9-3562-3-4-personal-contacts",
            "us-la-rs-9-3562-3-mail-1-per-month",
            "us-ma-940cmr-7.04-1f-other-2-in-30",
            "us-ma-940cmr-7.04-1f-personal-2-in-7",
            "us-ma-940cmr-7.04-hours",
            "us-md-14-202-11-1692c-a1-hours",
            "us-me-9a-11-119-2a-designated-inconvenient-place",
            "us-me-9a-11-119-2a-designated-inconvenient-time",
            "us-mi-mcl-445.252n-designated-inconvenient-place",
            "us-mi-mcl-445.252n-designated-inconvenient-time",
            "us-mi-mcl-445.252n-hours",
            "us-ny-nyc-6rcny-5-77-b1i-designated-inconvenient-place",
            "us-ny-nyc-6rcny-5-77-b1i-designated-inconvenient-time",
            "us-ny-nyc-6rcny-5-77-b1i-hours",
            "us-ny-nyc-6rcny-5-77-b1iv-2-in-7",
            "us-ny-nyc-shield-electronic-consent",
            "us-ny-nyc-shield-medium-opt-out",
            "us-pa-73ps-2270.4-hours",
            "us-sc-37-5-108-5bi-designated-inconvenient-place",
            "us-sc-37-5-108-5bi-designated-inconvenient-time",
            "us-sc-37-5-108-5bi-hours",
            "us-sc-37-5-108-5bii-attorney-representation",
            "us-sc-37-5-108-5biii-employer-prohibits-contact",
            "us-wv-46a-2-125d-10-conversations-per-week",
            "us-wv-46a-2-125d-30-calls-per-week",
            "us-wv-46a-2-125d-designated-inconvenient-time",
            "us-wv-46a-2-125d-hours",
        ]
    );
    assert_eq!(
        binding(vec![Role::DebtCollector]),
        vec![
            "policy-do-not-interact",
            "policy-us-federal-holidays",
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
            "us-ar-17-24-504-a1b-hours",
            "us-ca-civ-1788.17-1692c-a1-hours",
            "us-co-5-16-105-1a-hours",
            "us-dc-28-3814-d4-opt-out",
            "us-dc-28-3814-d4Ai-4-calls-in-7",
            "us-dc-28-3814-d4Aii-quiet-after-completed-call",
            "us-dc-28-3814-d4B-5-electronic-in-7",
            "us-dc-28-3814-d4B-electronic-consent",
            "us-dc-28-3814-k-hours",
            "us-fl-559.72-17-hours",
            "us-il-205ilcs740-9.2-a1-hours",
            "us-ma-209cmr-18.16-1a-hours",
            "us-ma-209cmr-18.16-1d-other-2-in-30",
            "us-ma-209cmr-18.16-1d-residence-cell-2-in-7",
            "us-md-14-202-11-1692c-a1-hours",
            "us-me-32mrs-11012-1a-hours",
            "us-ny-nyc-6rcny-5-77-b1i-hours",
            "us-ny-nyc-6rcny-5-77-b1iv-2-in-7",
            "us-ny-nyc-shield-electronic-consent",
            "us-ny-nyc-shield-medium-opt-out",
            "us-pa-73ps-2270.4-hours",
            "us-regf-7-calls-in-7-days",
            "us-regf-attorney-representation",
            "us-regf-cease-communication",
            "us-regf-designated-inconvenient-place",
            "us-regf-designated-inconvenient-time",
            "us-regf-employer-prohibits-contact",
            "us-regf-hours",
            "us-regf-medium-opt-out",
            "us-regf-quiet-after-conversation",
            "us-ri-19-14.9-5-1a-hours",
            "us-sc-37-5-108-5bi-hours",
            "us-wv-46a-2-125d-10-conversations-per-week",
            "us-wv-46a-2-125d-30-calls-per-week",
            "us-wv-46a-2-125d-hours",
        ]
    );
    assert_eq!(binding(vec![Role::Licensee]).len(), 58);
    // A small-loan licensee is a creditor too: it gets every creditors'
    // rule and RCW 31.45.082's, and naming both roles changes nothing.
    let creditor = binding(vec![Role::Creditor]);
    let small = binding(vec![Role::SmallLoanLicensee]);
    let mut expected = creditor.clone();
    expected.extend(
        [
            "us-wa-rcw-31.45.082-3a-3-per-week",
            "us-wa-rcw-31.45.082-3b-employer-prohibits",
            "us-wa-rcw-31.45.082-3b-work-1-per-week",
            "us-wa-rcw-31.45.082-3c-residence-hours",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(small, expected);
    assert_eq!(
        binding(vec![Role::SmallLoanLicensee, Role::Creditor]),
        small
    );
    assert!(
        !creditor.iter().any(|id| id.contains("31.45.082")),
        "a plain creditor is not a small-loan licensee"
    );
    // The lender's policies of lender-policy.yaml and Florida's hours ("no
    // person shall", Fla. Stat. 559.72) name no role, so they bind every
    // deployment; the templates for state standards name the roles their
    // texts bind.
    assert_eq!(
        binding(vec![]),
        vec![
            "policy-do-not-interact",
            "policy-us-federal-holidays",
            "us-fl-559.72-17-hours"
        ]
    );

    // A rule that names nobody binds everyone.
    let opts = LoadOptions {
        roles: Some(vec![]),
        ..LoadOptions::default()
    };
    let set = compile_with(&[("t.yaml", &one_rule(VOICE, CAP))], &opts).unwrap();
    assert!(set.get("test-cap").unwrap().binding);
    let named = one_rule(VOICE, CAP).replace(
        "    jurisdictions:",
        "    binds: [creditor]\n    jurisdictions:",
    );
    let set = compile_with(&[("t.yaml", &named)], &opts).unwrap();
    assert!(!set.get("test-cap").unwrap().binding);
    assert_eq!(set.get("test-cap").unwrap().binds, vec![Role::Creditor]);
}

#[test]
fn version_is_stable_for_the_same_text_and_changes_with_it() {
    let text = one_rule(VOICE, CAP);
    let other = one_rule(VOICE, CAP).replace("id: test-cap", "id: other-cap");
    let v = |files: &[(&str, &str)]| {
        compile_with(files, &LoadOptions::default())
            .unwrap()
            .version()
            .to_owned()
    };

    let base = v(&[("a.yaml", &text), ("b.yaml", &other)]);
    assert_eq!(base.len(), 16);
    assert!(base.bytes().all(|b| b.is_ascii_hexdigit()), "{base}");
    assert_eq!(v(&[("a.yaml", &text), ("b.yaml", &other)]), base);
    assert_eq!(
        v(&[("b.yaml", &other), ("a.yaml", &text)]),
        base,
        "the order files are given in does not matter"
    );
    assert_ne!(
        v(&[("a.yaml", &format!("# note\n{text}")), ("b.yaml", &other)]),
        base
    );
    assert_ne!(
        v(&[
            ("a.yaml", &text.replace("limit: 3", "limit: 4")),
            ("b.yaml", &other)
        ]),
        base
    );

    let once = RuleSet::load_dir(&shipped_dir(), &LoadOptions::default()).unwrap();
    let again = RuleSet::load_dir(&shipped_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(once.version(), again.version());
}

#[test]
fn version_does_not_depend_on_where_the_files_are() {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let shipped = RuleSet::load_dir(&shipped_dir(), &LoadOptions::default()).unwrap();
    let copied = RuleSet::load_dir(copy.path(), &LoadOptions::default()).unwrap();
    assert_eq!(shipped.rules().len(), copied.rules().len());
    assert_eq!(copied.version(), shipped.version());
}

#[test]
fn cool_down_of_zero_days_is_refused_either_way() {
    for day_one in ["true", "false"] {
        let kind = format!(
            "    coolDown:\n      days: 0\n      eventDayIsDayOne: {day_one}\n      per: debt\n      after:\n        event: conversation\n"
        );
        assert_eq!(
            only_error(&one_rule(VOICE, &kind)),
            "t.yaml:9:7: rule `test-cap`: `days` is 0; a window has at least 1 day"
        );
    }
}

#[test]
fn a_quiet_period_reaching_past_the_horizon_names_the_written_days() {
    let kind = "    coolDown:\n      days: 30\n      eventDayIsDayOne: false\n      per: debt\n      after:\n        event: conversation\n";
    let opts = LoadOptions {
        horizon_days: 30,
        ..LoadOptions::default()
    };
    let e = errors_with(&one_rule(VOICE, kind), &opts);
    assert_eq!(
        e[0].to_string(),
        "t.yaml:9:7: rule `test-cap`: `days` is 30 days (it reads 31 days of history), longer than the 30 days of history the index keeps; shorten it or raise the horizon"
    );
}

#[test]
fn a_quiet_period_after_a_conversation_off_the_phone_can_never_start() {
    let kind = "    coolDown:\n      days: 7\n      per: debt\n      after:\n        event: conversation\n        channels: [email]\n";
    let e = errors(&one_rule(VOICE, kind));
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].column), (13, 9));
    assert!(
        e[0].message.contains("can never start; include `voice`"),
        "{}",
        e[0].message
    );
}

// --- restrictions, blackout dates, consent ----------------------------------

#[test]
fn a_restriction_rule_names_a_known_kind_with_its_position() {
    // Line 8: `restriction:` after a one-line applies block.
    assert_eq!(
        only_error(&one_rule(VOICE, "    restriction: ceaseCommunicaton\n")),
        "t.yaml:8:18: rules[0].restriction: unknown restriction kind `ceaseCommunicaton`, allowed: ceaseCommunication, mediumOptOut, priorConsentToCall, inconvenientTime, inconvenientPlace, attorneyRepresentation, employerProhibitsContact, doNotInteract, electronicConsent, electronicNoticeMailed, consentToTime (did you mean `ceaseCommunication`?)"
    );
    let set = compiles(&one_rule(VOICE, "    restriction: mediumOptOut\n"));
    assert_eq!(set.get("test-cap").unwrap().kind.name(), "restriction");
}

#[test]
fn a_consent_is_not_a_restriction_that_blocks() {
    let e = only_error(&one_rule(VOICE, "    restriction: priorConsentToCall\n"));
    assert!(
        e.starts_with(
            "t.yaml:8:5: rule `test-cap`: `restriction` `priorConsentToCall` is not a restriction that blocks"
        ),
        "{e}"
    );
}

#[test]
fn blackout_dates_are_checked_one_by_one() {
    let kind = "    blackoutDates:\n      dates: [\"2026-12-25\", \"2026-13-01\", \"26-1-1\"]\n      annually: [\"02-29\", \"02-30\"]\n";
    let e = errors(&one_rule(VOICE, kind));
    let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "t.yaml:9:7: rule `test-cap`: date `2026-13-01` in `dates` is not a date; write YYYY-MM-DD, for example \"2026-12-25\"",
            "t.yaml:9:7: rule `test-cap`: date `26-1-1` in `dates` is not a date; write YYYY-MM-DD, for example \"2026-12-25\"",
            "t.yaml:10:7: rule `test-cap`: `02-30` in `annually` is not a day of the year; write MM-DD, for example \"12-25\"",
        ]
    );
    let empty = only_error(&one_rule(VOICE, "    blackoutDates: {}\n"));
    assert!(
        empty.starts_with("t.yaml:8:5: rule `test-cap`: `blackoutDates` lists no date"),
        "{empty}"
    );
    let ok = compiles(&one_rule(
        VOICE,
        "    blackoutDates:\n      dates: [\"2026-12-25\", \"2026-12-25\"]\n      annually: [\"02-29\"]\n",
    ));
    match &ok.get("test-cap").unwrap().kind {
        RuleKind::BlackoutDates { days, annually } => {
            assert_eq!(days.len(), 1, "duplicates are merged");
            assert_eq!(annually, &[(2, 29)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_consent_requirement_names_a_consent_and_a_notice() {
    let kind = "    consentRequired:\n      consent: electronicNoticeMailed\n      notice: electronicConsent\n      requests:\n        limit: 1\n        windowDays: 7\n      per: debt\n";
    let shown: Vec<String> = errors(&one_rule(VOICE, kind))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "t.yaml:9:7: rule `test-cap`: `consent` `electronicNoticeMailed` is not a consent; allowed: electronicConsent, priorConsentToCall",
            "t.yaml:10:7: rule `test-cap`: `notice` `electronicConsent` is not a notice; allowed: electronicNoticeMailed",
        ]
    );
    let long = kind
        .replace(
            "consent: electronicNoticeMailed",
            "consent: electronicConsent",
        )
        .replace(
            "notice: electronicConsent",
            "notice: electronicNoticeMailed",
        )
        .replace("windowDays: 7", "windowDays: 400");
    let e = only_error(&one_rule(VOICE, &long));
    assert!(
        e.starts_with("t.yaml:13:9: rule `test-cap`: `windowDays` is 400 days"),
        "{e}"
    );
}

#[test]
fn exempt_with_prior_consent_is_read_on_caps_and_quiet_periods() {
    let cap = CAP.replace(
        "per: borrower\n",
        "per: debt\n      exemptWithPriorConsent: true\n",
    );
    let set = compiles(&one_rule(VOICE, &cap));
    let kind = &set.get("test-cap").unwrap().kind;
    assert!(
        kind.reads_restriction(compliance_guard::restrictions::RestrictionKind::PriorConsentToCall)
    );
    assert!(
        !kind
            .reads_restriction(compliance_guard::restrictions::RestrictionKind::CeaseCommunication)
    );
    let typo = CAP.replace(
        "per: borrower\n",
        "per: debt\n      exemptWithPriorConsnt: true\n",
    );
    let e = only_error(&one_rule(VOICE, &typo));
    assert!(e.contains("unknown field `exemptWithPriorConsnt`"), "{e}");
}

// --- caps since a receipt, hours lifted by consent (issue 17) -----------------

/// A cap block with `limit` on line 9 and `body` from line 10, `per:
/// debt` after it.
fn since_cap(body: &str) -> String {
    one_rule(
        VOICE,
        &format!("    frequencyCap:\n      limit: 1\n{body}      per: debt\n"),
    )
}

const SINCE_CERTIFIED: &str = "      since:\n        restriction: ceaseCommunication\n        mailType: [registered, certified]\n";

#[test]
fn caps_since_a_receipt_compile() {
    use compliance_guard::restrictions::{MailType, RestrictionKind};
    use compliance_guard::rules::{CapWindow, Since};
    let set = compiles(&since_cap(&format!(
        "      window: calendarMonth\n{SINCE_CERTIFIED}"
    )));
    let rule = set.get("test-cap").unwrap();
    let RuleKind::PeriodCap {
        limit,
        window,
        per,
        since,
        ..
    } = &rule.kind
    else {
        panic!("not a cap since a receipt: {:?}", rule.kind)
    };
    assert_eq!(
        (*limit, *window, *per),
        (1, CapWindow::CalendarMonth, Per::Debt)
    );
    assert_eq!(
        since.as_ref(),
        Some(&Since {
            kind: RestrictionKind::CeaseCommunication,
            mail_types: Some(vec![MailType::Registered, MailType::Certified]),
        })
    );
    assert_eq!(rule.kind.name(), "frequencyCap");
    assert_eq!(rule.kind.window_days(), 31);
    assert!(
        rule.kind
            .reads_restriction(RestrictionKind::CeaseCommunication)
    );
    assert!(!rule.kind.reads_restriction(RestrictionKind::MediumOptOut));

    let set = compiles(&since_cap(
        "      window: all\n      since: {restriction: doNotInteract}\n",
    ));
    let kind = &set.get("test-cap").unwrap().kind;
    assert!(matches!(
        kind,
        RuleKind::PeriodCap {
            window: CapWindow::All,
            since: Some(Since {
                kind: RestrictionKind::DoNotInteract,
                mail_types: None
            }),
            ..
        }
    ));
    assert_eq!(kind.window_days(), 0);
    // A calendar month needs no restriction: every month counts.
    let set = compiles(&since_cap("      window: calendarMonth\n"));
    assert!(matches!(
        set.get("test-cap").unwrap().kind,
        RuleKind::PeriodCap { since: None, .. }
    ));
}

#[test]
fn a_cap_has_exactly_one_window() {
    assert_eq!(
        only_error(&since_cap("      windowDays: 7\n      window: all\n")),
        "t.yaml:11:7: rule `test-cap`: `window` and `windowDays` are both given; allowed: `windowDays` (a rolling window of days) or `window` (calendarMonth, all), not both"
    );
    assert_eq!(
        only_error(&since_cap("")),
        "t.yaml:8:5: rule `test-cap`: `frequencyCap` has no window; give `windowDays` (a rolling window of days) or `window` (calendarMonth, or all with `since`)"
    );
    let e = only_error(&since_cap("      window: weekly\n"));
    assert!(
        e.starts_with("t.yaml:10:15: rules[0].frequencyCap.window: unknown variant `weekly`, expected `calendarMonth` or `all`"),
        "{e}"
    );
}

#[test]
fn a_count_since_a_receipt_is_checked() {
    assert_eq!(
        only_error(&since_cap("      window: all\n")),
        "t.yaml:10:7: rule `test-cap`: `window: all` counts every send since a restriction's receipt; give `since` with the restriction kind"
    );
    assert_eq!(
        only_error(&since_cap(&format!(
            "      windowDays: 30\n{SINCE_CERTIFIED}"
        ))),
        "t.yaml:11:7: rule `test-cap`: `since` goes with `window: calendarMonth` or `window: all`; a rolling `windowDays` cap counts whatever was sent in its window"
    );
    assert_eq!(
        only_error(&since_cap(
            "      window: all\n      since:\n        restriction: mediumOptOut\n        mailType: [certified]\n"
        )),
        "t.yaml:13:9: rule `test-cap`: `since.mailType` reads how a request was sent, which only a `ceaseCommunication` records; `mediumOptOut` has no mail type"
    );
    assert_eq!(
        only_error(&since_cap(
            "      window: all\n      since:\n        restriction: ceaseCommunication\n        mailType: []\n"
        )),
        "t.yaml:13:9: rule `test-cap`: `since.mailType` is an empty list, so the rule can never match; remove the key to mean \"any\""
    );
    let e = only_error(&since_cap(
        "      window: all\n      since:\n        restriction: ceaseCommunication\n        mailType: [certifed]\n",
    ));
    assert!(
        e.starts_with("t.yaml:13:20: ")
            && e.contains("unknown mail type `certifed`, allowed: registered, certified, other (did you mean `certified`?)"),
        "{e}"
    );
    let e = only_error(&since_cap(
        "      window: all\n      since:\n        restriction: ceaseComunication\n",
    ));
    assert!(
        e.starts_with("t.yaml:12:22: ")
            && e.contains("unknown restriction kind `ceaseComunication`"),
        "{e}"
    );
    assert_eq!(
        only_error(&since_cap(&format!(
            "      window: all\n{SINCE_CERTIFIED}      exemptWithPriorConsent: true\n"
        ))),
        "t.yaml:14:7: rule `test-cap`: `exemptWithPriorConsent` goes with a `windowDays` cap (12 CFR 1006.14(b)(3)(i)); `window: all` has none"
    );
}

#[test]
fn a_calendar_month_needs_a_month_of_history() {
    let opts = LoadOptions {
        horizon_days: 30,
        ..LoadOptions::default()
    };
    let e = errors_with(&since_cap("      window: calendarMonth\n"), &opts);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "t.yaml:10:7: rule `test-cap`: `window: calendarMonth` reads up to 31 days of history, longer than the 30 days of history the index keeps; raise the horizon"
    );
    // A count in all reads from the receipt: no fixed length to refuse.
    let set = compile_with(
        &[(
            "t.yaml",
            &since_cap(&format!("      window: all\n{SINCE_CERTIFIED}")),
        )],
        &opts,
    )
    .unwrap();
    assert_eq!(set.longest_window_days(), 0);
}

#[test]
fn hours_may_be_lifted_by_a_consent_to_another_time() {
    use compliance_guard::restrictions::RestrictionKind;
    use compliance_guard::rules::UnlessConsent;
    let lifted = |body: &str| {
        one_rule(
            VOICE,
            &format!("    permittedHours:\n      from: \"08:00\"\n      until: \"21:00\"\n{body}"),
        )
    };
    let set = compiles(&lifted("      unlessConsent:\n        written: true\n"));
    let kind = &set.get("test-cap").unwrap().kind;
    assert!(matches!(
        kind,
        RuleKind::PermittedHours {
            unless_consent: Some(UnlessConsent { written: true }),
            ..
        }
    ));
    assert!(kind.reads_restriction(RestrictionKind::ConsentToTime));
    assert!(!kind.reads_restriction(RestrictionKind::PriorConsentToCall));
    let plain = compiles(&lifted(""));
    assert!(
        !plain
            .get("test-cap")
            .unwrap()
            .kind
            .reads_restriction(RestrictionKind::ConsentToTime)
    );
    let e = only_error(&lifted("      unlessConsent: {}\n"));
    assert!(
        e.starts_with(
            "t.yaml:11:22: rules[0].permittedHours.unlessConsent: missing field `written`"
        ),
        "{e}"
    );
    let e = only_error(&lifted(
        "      unlessConsent: {written: true, kind: priorConsentToCall}\n",
    ));
    assert!(
        e.starts_with("t.yaml:11:38: rules[0].permittedHours.unlessConsent: unknown field `kind`, expected `written`"),
        "{e}"
    );
}
