//! The scenario driver: every `tests/scenarios/*.yaml` file is a story of
//! records, updates and checks against the shipped rules, with the exact
//! answers expected. One driver reads them all, so that a compliance
//! officer can add a case without writing Rust.
//!
//! A file:
//! ```yaml
//! description: what the story shows, and where it comes from
//! only: [rule-id, ...]          # optional: decide with these rules alone
//! roles: [debtCollector]        # optional: what the lender is
//! person: BO-TEST-1             # optional (this is the default)
//! defaults: {channel: voice, direction: outbound, status: attempted}
//! send: {channel: voice, ...}   # optional defaults for every check's send
//! steps:
//!   - record: {id: IT-A-1, startedAt: "2020-04-01T14:00:00Z", ...}
//!   - update: {id: IT-A-1, status: failed, ...}
//!   - delete: IT-A-1
//!   - debt: {id: ACCT-1, loans: [SL1, SL2]}
//!   - link: {id: "123", externalId: abc}
//!   - restrict: {id: RS-1, kind: ceaseCommunication, source: letter,
//!                receivedAt: "2020-08-06T15:00:00Z", loanIds: [CARD]}
//!   - end: {id: RS-1, at: "2020-08-09T15:00:00Z", reason: revoked}
//!   - check:
//!       at: "2020-04-08T14:00:00Z"
//!       send: {loanIds: [CARD], timeZones: [America/New_York]}
//!       expect: {allowed: false, ruleId: ..., nextAllowedAt: ..., ...}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use compliance_guard::engine::{self, Decision, Proposal};
use compliance_guard::index::Index;
use compliance_guard::model::{
    Channel, ContactKind, Direction, InteractionInput, Subject, Theme, parse_time,
};
use compliance_guard::rules::{LoadOptions, Role, RuleSet};
use rust_decimal::Decimal;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Scenario {
    description: String,
    #[serde(default)]
    only: Option<Vec<String>>,
    /// Extra rule files (YAML text) compiled with the shipped ones.
    #[serde(default)]
    extra_rules: Option<String>,
    #[serde(default)]
    roles: Option<Vec<Role>>,
    #[serde(default = "default_person")]
    person: String,
    #[serde(default)]
    defaults: InteractionInput,
    #[serde(default)]
    send: Send,
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    steps: Vec<Step>,
}

fn default_person() -> String {
    "BO-TEST-1".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum Step {
    Record(InteractionInput),
    Update(InteractionInput),
    Delete(String),
    Debt(DebtStep),
    Link(LinkStep),
    Restrict(Box<compliance_guard::restrictions::RestrictionInput>),
    End(EndStep),
    Check(Box<CheckStep>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndStep {
    id: String,
    at: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DebtStep {
    id: String,
    loans: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LinkStep {
    id: String,
    external_id: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Send {
    channel: Option<String>,
    direction: Option<String>,
    theme: Option<String>,
    subject: Option<String>,
    loan_ids: Option<Vec<String>>,
    is_transactional: Option<bool>,
    contact_kind: Option<String>,
    previous_interaction_id: Option<String>,
    jurisdictions: Option<Vec<String>>,
    time_zones: Option<Vec<String>>,
    balance: Option<String>,
    contact_value: Option<String>,
    required_by_law: Option<bool>,
    consent_request: Option<bool>,
}

impl Send {
    fn overlay(&self, over: &Send) -> Send {
        macro_rules! pick {
            ($($f:ident),+) => { Send { $($f: over.$f.clone().or_else(|| self.$f.clone()),)+ } };
        }
        pick!(
            channel,
            direction,
            theme,
            subject,
            loan_ids,
            is_transactional,
            contact_kind,
            previous_interaction_id,
            jurisdictions,
            time_zones,
            balance,
            contact_value,
            required_by_law,
            consent_request
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CheckStep {
    /// The moment of the send; also `now`.
    at: String,
    #[serde(default)]
    send: Send,
    /// Why this check expects what it does (printed on failure).
    #[serde(default)]
    why: Option<String>,
    expect: Expect,
}

/// Expected answer. `none` for a time means "no moment".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    allowed: bool,
    #[serde(default)]
    rule_id: Option<String>,
    /// The exact set of violated rule ids (order-insensitive).
    #[serde(default)]
    violations: Option<Vec<String>>,
    #[serde(default)]
    next_allowed_at: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
    /// Per violated rule: the exact counted interaction ids.
    #[serde(default)]
    counted: BTreeMap<String, Vec<String>>,
    /// Per violated rule: the exact count.
    #[serde(default)]
    count: BTreeMap<String, u32>,
    /// The exact set of violated rules in shadow mode.
    #[serde(default)]
    shadow: Option<Vec<String>>,
    /// Per violated rule: its own next allowed moment.
    #[serde(default)]
    rule_next_allowed_at: BTreeMap<String, String>,
    /// The exact set of rules that covered the send.
    #[serde(default)]
    applied: Option<Vec<String>>,
    /// The restriction that decided the deciding rule's violation.
    #[serde(default)]
    restriction_id: Option<String>,
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time("at", text).map_err(|e| e.to_string())
}

fn opt_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text == "none" {
        Ok(None)
    } else {
        time(text).map(Some)
    }
}

fn proposal(
    index: &Index,
    person: &str,
    send: &Send,
    at: DateTime<Utc>,
) -> Result<Proposal, String> {
    let channel =
        Channel::parse(send.channel.as_deref().unwrap_or("voice")).ok_or("bad channel")?;
    let direction =
        Direction::parse(send.direction.as_deref().unwrap_or("outbound")).ok_or("bad direction")?;
    let mut p = Proposal::new(channel, direction);
    p.theme = send
        .theme
        .as_deref()
        .map(|t| Theme::parse(t).ok_or(format!("bad theme {t}")))
        .transpose()?;
    p.subject = send
        .subject
        .as_deref()
        .map(|t| Subject::parse(t).ok_or(format!("bad subject {t}")))
        .transpose()?;
    p.loans = send.loan_ids.clone().unwrap_or_default();
    p.is_transactional = send.is_transactional;
    p.contact = ContactKind::from_record(send.contact_kind.as_deref());
    // An empty value is an unknown one (so a check can unset a default).
    p.contact_value = send
        .contact_value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(compliance_guard::restrictions::normalize_contact);
    p.previous = send.previous_interaction_id.clone();
    p.required_by_law = send.required_by_law.unwrap_or(false);
    p.consent_request = send.consent_request.unwrap_or(false);
    p.answers_borrower = send
        .previous_interaction_id
        .as_deref()
        .is_some_and(|prev| index.is_reply(person, prev, at));
    p.at = Some(at);
    p.jurisdictions = engine::parse_jurisdictions(&send.jurisdictions.clone().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    p.zones = engine::parse_zones(&send.time_zones.clone().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    p.balance = send
        .balance
        .as_deref()
        .map(|b| b.parse::<Decimal>().map_err(|e| e.to_string()))
        .transpose()?;
    Ok(p)
}

fn compare(d: &Decision, e: &Expect) -> Vec<String> {
    let mut bad = Vec::new();
    let fmt = |t: Option<DateTime<Utc>>| t.map_or("none".to_owned(), |t| t.to_rfc3339());
    if d.allowed != e.allowed {
        bad.push(format!(
            "allowed: got {}, expected {}",
            d.allowed, e.allowed
        ));
    }
    if let Some(r) = &e.rule_id
        && d.rule_id.as_deref() != Some(r.as_str())
    {
        bad.push(format!("ruleId: got {:?}, expected {r}", d.rule_id));
    }
    if e.allowed && d.rule_id.is_some() {
        bad.push(format!("ruleId: got {:?} on an allow", d.rule_id));
    }
    if let Some(v) = &e.violations {
        let mut got: Vec<&str> = d.violations.iter().map(|v| v.rule_id.as_str()).collect();
        let mut want: Vec<&str> = v.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            bad.push(format!("violations: got {got:?}, expected {want:?}"));
        }
    }
    for (field, want, got) in [
        ("nextAllowedAt", &e.next_allowed_at, d.next_allowed_at),
        ("validUntil", &e.valid_until, d.valid_until),
    ] {
        if let Some(w) = want {
            match opt_time(w) {
                Ok(w) if w == got => {}
                Ok(_) => bad.push(format!("{field}: got {}, expected {w}", fmt(got))),
                Err(err) => bad.push(format!("{field}: bad expected time: {err}")),
            }
        }
    }
    for (rule, ids) in &e.counted {
        match d.violations.iter().find(|v| &v.rule_id == rule) {
            Some(v) if &v.counted_interaction_ids == ids => {}
            Some(v) => bad.push(format!(
                "counted[{rule}]: got {:?}, expected {ids:?}",
                v.counted_interaction_ids
            )),
            None => bad.push(format!("counted[{rule}]: rule not violated")),
        }
    }
    for (rule, n) in &e.count {
        match d.violations.iter().find(|v| &v.rule_id == rule) {
            Some(v) if v.count == *n => {}
            Some(v) => bad.push(format!("count[{rule}]: got {}, expected {n}", v.count)),
            None => bad.push(format!("count[{rule}]: rule not violated")),
        }
    }
    if let Some(want) = &e.shadow {
        let mut got: Vec<&str> = d
            .violations
            .iter()
            .filter(|v| v.shadow)
            .map(|v| v.rule_id.as_str())
            .collect();
        let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            bad.push(format!("shadow: got {got:?}, expected {want:?}"));
        }
    }
    for (rule, t) in &e.rule_next_allowed_at {
        match (
            d.violations.iter().find(|v| &v.rule_id == rule),
            opt_time(t),
        ) {
            (Some(v), Ok(w)) if v.next_allowed_at == w => {}
            (Some(v), _) => bad.push(format!(
                "ruleNextAllowedAt[{rule}]: got {}, expected {t}",
                fmt(v.next_allowed_at)
            )),
            (None, _) => bad.push(format!("ruleNextAllowedAt[{rule}]: rule not violated")),
        }
    }
    if let Some(want) = &e.restriction_id {
        let got = d
            .rule_id
            .as_ref()
            .and_then(|r| d.violations.iter().find(|v| &v.rule_id == r))
            .and_then(|v| v.restriction_id.as_deref());
        if got != Some(want.as_str()) {
            bad.push(format!("restrictionId: got {got:?}, expected {want}"));
        }
    }
    if let Some(a) = &e.applied {
        let mut want: Vec<&str> = a.iter().map(String::as_str).collect();
        want.sort_unstable();
        if d.applied_rule_ids != want {
            bad.push(format!(
                "applied: got {:?}, expected {want:?}",
                d.applied_rule_ids
            ));
        }
    }
    bad
}

fn run(path: &Path, shipped: &RuleSet) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sc: Scenario = serde_yaml::from_str(&text).map_err(|e| format!("cannot parse: {e}"))?;
    let mut rules = match &sc.roles {
        Some(roles) => RuleSet::load_dir(
            Path::new("rules"),
            &LoadOptions {
                roles: Some(roles.clone()),
                ..LoadOptions::default()
            },
        )
        .map_err(|e| e.to_string())?,
        None => shipped.clone(),
    };
    if let Some(extra) = &sc.extra_rules {
        let mut sources = Vec::new();
        for entry in std::fs::read_dir("rules").map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|x| x == "yaml") {
                sources.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).map_err(|e| e.to_string())?,
                ));
            }
        }
        sources.push(("extra.yaml".to_owned(), extra.clone()));
        let opts = LoadOptions {
            roles: sc.roles.clone(),
            ..LoadOptions::default()
        };
        rules = RuleSet::compile(&sources, &opts).map_err(|e| e.to_string())?;
    }
    if let Some(only) = &sc.only {
        let ids: Vec<&str> = only.iter().map(String::as_str).collect();
        rules = rules
            .subset(&ids)
            .map_err(|u| format!("unknown rule ids in `only`: {u:?}"))?;
    }
    let mut index = Index::default();
    let mut checks = 0;
    for (i, step) in sc.steps.iter().enumerate() {
        let at_step = |msg: String| format!("step {}: {msg}", i + 1);
        match step {
            Step::Record(input) => {
                let mut merged = sc.defaults.clone();
                merged.overlay(input);
                merged.id = input.id.clone();
                let now = merged
                    .started_at
                    .as_deref()
                    .map(time)
                    .transpose()
                    .map_err(at_step)?
                    .unwrap_or_default();
                index
                    .create(&sc.person, &merged, now)
                    .map_err(|e| at_step(format!("record: {e}")))?;
            }
            Step::Update(patch) => {
                let id = patch
                    .id
                    .clone()
                    .ok_or_else(|| at_step("update needs an id".into()))?;
                let now = patch
                    .updated_at
                    .as_deref()
                    .map(time)
                    .transpose()
                    .map_err(at_step)?
                    .unwrap_or_default();
                index
                    .update(Some(&sc.person), &id, patch, now)
                    .map_err(|e| at_step(format!("update: {e}")))?;
            }
            Step::Delete(id) => {
                index
                    .delete(Some(&sc.person), id, DateTime::default())
                    .map_err(|e| at_step(format!("delete: {e}")))?;
            }
            Step::Debt(d) => index
                .declare_debt(&sc.person, &d.id, &d.loans)
                .map_err(|e| at_step(format!("debt: {e}")))?,
            Step::Link(l) => {
                index
                    .link_person(&l.id, &l.external_id)
                    .map_err(|e| at_step(format!("link: {e}")))?;
            }
            Step::Restrict(input) => {
                let id = input
                    .id
                    .clone()
                    .ok_or_else(|| at_step("restrict needs an id".into()))?;
                let recorded = time(&input.received_at).map_err(at_step)?;
                let r = input
                    .check(id, sc.person.clone(), "scenario".into(), recorded)
                    .map_err(|e| at_step(format!("restrict: {e}")))?;
                index
                    .put_restriction(r)
                    .map_err(|e| at_step(format!("restrict: {e}")))?;
            }
            Step::End(end) => {
                let at = time(&end.at).map_err(at_step)?;
                let mut r = index
                    .restriction(Some(&sc.person), &end.id)
                    .map_err(|e| at_step(format!("end: {e}")))?
                    .clone();
                r.ended_at = Some(at);
                r.ended_by = Some("scenario".into());
                r.end_reason = end.reason.clone();
                index
                    .put_restriction(r)
                    .map_err(|e| at_step(format!("end: {e}")))?;
            }
            Step::Check(c) => {
                let at = time(&c.at).map_err(at_step)?;
                let send = sc.send.overlay(&c.send);
                let p = proposal(&index, &sc.person, &send, at).map_err(at_step)?;
                let view = index.view(&sc.person).map_err(|e| at_step(e.to_string()))?;
                let d = engine::decide(&rules, &view, &p, at);
                let bad = compare(&d, &c.expect);
                if !bad.is_empty() {
                    return Err(at_step(format!(
                        "check at {}{}:\n    {}\n  decision: {d:#?}",
                        c.at,
                        c.why
                            .as_ref()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default(),
                        bad.join("\n    ")
                    )));
                }
                checks += 1;
            }
        }
    }
    if sc.description.trim().is_empty() {
        return Err("description is empty".into());
    }
    Ok(checks)
}

#[test]
fn scenarios() {
    let shipped = RuleSet::load_dir(Path::new("rules"), &LoadOptions::default()).unwrap();
    let mut paths: Vec<_> = std::fs::read_dir("tests/scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenarios found");
    let mut failures = Vec::new();
    let mut checks = 0;
    for path in &paths {
        match run(path, &shipped) {
            Ok(n) if n > 0 => checks += n,
            Ok(_) => failures.push(format!("{}: has no check", path.display())),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenario files failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
    eprintln!("{} scenario files, {checks} checks", paths.len());
}
