//! Rule tests that compliance officers write: `rules/tests/*.yaml`, each a
//! list of cases with a history, a proposed send and the expected answer.
//! `compliance-guard rules test [DIR]` runs them against the rules in DIR.
//!
//! ```yaml
//! tests:
//!   - name: the 8th call in 7 days is blocked
//!     at: "2020-04-07T18:00:00Z"          # the moment of the send
//!     roles: [debtCollector]              # optional: what the lender is
//!     only: [us-regf-7-calls-in-7-days]   # optional: these rules alone
//!     history:                            # upstream Interaction objects
//!       - {channel: voice, direction: outbound, status: attempted,
//!          statusDetails: voiceRangNoPickup, loanId: CARD, startedAt: "2020-04-01T14:00:00Z"}
//!     restrictions:                       # optional: borrower restrictions
//!       - {id: RS-1, kind: ceaseCommunication, source: letter,
//!          receivedAt: "2020-04-06T15:00:00Z", loanIds: [CARD]}
//!     send: {channel: voice, loanIds: [CARD], jurisdictions: [US-NY]}
//!     expect:
//!       allowed: false
//!       ruleId: us-regf-7-calls-in-7-days
//!       nextAllowedAt: "2020-04-08T12:00:00Z"   # optional; "none" for no moment
//!       restrictionId: RS-1                     # optional: the deciding restriction
//!       violations: [us-regf-7-calls-in-7-days] # optional: every violated rule, shadow ones included
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::engine::{self, Proposal};
use crate::index::Index;
use crate::model::{Channel, ContactKind, Direction, InteractionInput, Subject, Theme, parse_time};
use crate::restrictions::{RestrictionInput, normalize_contact};
use crate::rules::{LoadOptions, Role, RuleSet, read_sources};

/// The borrower every case's history belongs to.
const PERSON: &str = "BO-TEST-0001";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    at: String,
    #[serde(default)]
    roles: Option<Vec<Role>>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    history: Vec<InteractionInput>,
    #[serde(default)]
    restrictions: Vec<RestrictionInput>,
    send: Send,
    expect: Expect,
}

/// The proposed send, as a case writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Send {
    channel: String,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    loan_ids: Vec<String>,
    #[serde(default)]
    is_transactional: Option<bool>,
    #[serde(default)]
    contact_kind: Option<String>,
    #[serde(default)]
    contact_value: Option<String>,
    #[serde(default)]
    previous_interaction_id: Option<String>,
    #[serde(default)]
    jurisdictions: Vec<String>,
    #[serde(default)]
    time_zones: Vec<String>,
    #[serde(default)]
    required_by_law: bool,
    #[serde(default)]
    consent_request: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    allowed: bool,
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    next_allowed_at: Option<String>,
    #[serde(default)]
    restriction_id: Option<String>,
    #[serde(default)]
    violations: Option<Vec<String>>,
}

/// One failing case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The test file.
    pub file: String,
    /// The case's name.
    pub name: String,
    /// What was expected and what came out (or why the case could not run).
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.name, self.message)
    }
}

/// What a run of the rule tests found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed, in file and case order.
    pub failed: Vec<Failure>,
}

fn proposal(send: &Send, index: &Index, at: DateTime<Utc>) -> Result<Proposal, String> {
    let channel = Channel::parse(&send.channel)
        .ok_or_else(|| format!("unknown channel `{}`", send.channel))?;
    let direction = match &send.direction {
        None => Direction::Outbound,
        Some(d) => Direction::parse(d).ok_or_else(|| format!("unknown direction `{d}`"))?,
    };
    let mut p = Proposal::new(channel, direction);
    p.theme = send
        .theme
        .as_deref()
        .map(|t| Theme::parse(t).ok_or_else(|| format!("unknown theme `{t}`")))
        .transpose()?;
    p.subject = send
        .subject
        .as_deref()
        .map(|t| Subject::parse(t).ok_or_else(|| format!("unknown subject `{t}`")))
        .transpose()?;
    p.loans = send.loan_ids.clone();
    p.is_transactional = send.is_transactional;
    p.contact = ContactKind::from_record(send.contact_kind.as_deref());
    p.contact_value = send.contact_value.as_deref().map(normalize_contact);
    p.previous = send.previous_interaction_id.clone();
    p.required_by_law = send.required_by_law;
    p.consent_request = send.consent_request;
    p.answers_borrower = send
        .previous_interaction_id
        .as_deref()
        .is_some_and(|prev| index.is_reply(PERSON, prev, at));
    p.at = Some(at);
    p.jurisdictions =
        engine::parse_jurisdictions(&send.jurisdictions).map_err(|e| e.to_string())?;
    p.zones = engine::parse_zones(&send.time_zones).map_err(|e| e.to_string())?;
    Ok(p)
}

fn run_case(case: &Case, sources: &[(String, String)], base: &RuleSet) -> Result<(), String> {
    let at = parse_time("at", &case.at).map_err(|e| e.to_string())?;
    let mut rules = match &case.roles {
        Some(roles) => RuleSet::compile(
            sources,
            &LoadOptions {
                roles: Some(roles.clone()),
                ..LoadOptions::default()
            },
        )
        .map_err(|e| e.to_string())?,
        None => base.clone(),
    };
    if let Some(only) = &case.only {
        let ids: Vec<&str> = only.iter().map(String::as_str).collect();
        rules = rules
            .subset(&ids)
            .map_err(|u| format!("unknown rule ids in `only`: {}", u.join(", ")))?;
    }
    let mut index = Index::default();
    for (i, record) in case.history.iter().enumerate() {
        let when = record
            .started_at
            .as_deref()
            .map(|t| parse_time("startedAt", t))
            .transpose()
            .map_err(|e| e.to_string())?;
        index
            .create(PERSON, record, when.unwrap_or(at))
            .map_err(|e| format!("history[{i}]: {e}"))?;
    }
    for (i, r) in case.restrictions.iter().enumerate() {
        let id = r.id.clone().unwrap_or_else(|| format!("RS-TEST-{i}"));
        let checked = r
            .check(id, PERSON.to_owned(), "rule-test".to_owned(), at)
            .map_err(|e| format!("restrictions[{i}]: {e}"))?;
        index
            .put_restriction(checked)
            .map_err(|e| format!("restrictions[{i}]: {e}"))?;
    }
    let view = index.view(PERSON).map_err(|e| e.to_string())?;
    let d = engine::decide(&rules, &view, &proposal(&case.send, &index, at)?, at);
    let mut wrong = Vec::new();
    let word = |allowed: bool| if allowed { "allowed" } else { "blocked" };
    if d.allowed != case.expect.allowed {
        wrong.push(format!(
            "expected {}, got {}{}",
            word(case.expect.allowed),
            word(d.allowed),
            d.rule_id
                .as_ref()
                .map(|r| format!(" by `{r}`"))
                .unwrap_or_default()
        ));
    }
    if let Some(want) = &case.expect.rule_id
        && d.rule_id.as_deref() != Some(want.as_str())
    {
        wrong.push(format!(
            "expected rule `{want}`, got {}",
            d.rule_id
                .as_deref()
                .map_or("none".into(), |r| format!("`{r}`"))
        ));
    }
    if let Some(want) = &case.expect.next_allowed_at {
        let want_t = if want == "none" {
            None
        } else {
            Some(parse_time("nextAllowedAt", want).map_err(|e| e.to_string())?)
        };
        if d.next_allowed_at != want_t {
            wrong.push(format!(
                "expected next allowed {want}, got {}",
                d.next_allowed_at.map_or("none".into(), |t| t.to_rfc3339())
            ));
        }
    }
    if let Some(want) = &case.expect.restriction_id {
        let got = d
            .rule_id
            .as_ref()
            .and_then(|r| d.violations.iter().find(|v| &v.rule_id == r))
            .and_then(|v| v.restriction_id.clone());
        if got.as_deref() != Some(want.as_str()) {
            wrong.push(format!(
                "expected restriction `{want}`, got {}",
                got.map_or("none".into(), |r| format!("`{r}`"))
            ));
        }
    }
    if let Some(want) = &case.expect.violations {
        let mut want = want.clone();
        want.sort();
        let mut got: Vec<String> = d.violations.iter().map(|v| v.rule_id.clone()).collect();
        got.sort();
        got.dedup();
        if got != want {
            wrong.push(format!(
                "expected violations [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Runs every case of `DIR/tests/*.yaml` against the rules in `DIR`.
pub fn run(dir: &Path) -> Result<Report, String> {
    let sources = read_sources(dir).map_err(|e| e.to_string())?;
    let base = RuleSet::compile(&sources, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let tests_dir = dir.join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tests_dir)
        .map_err(|e| format!("cannot read `{}`: {e}", tests_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut report = Report::default();
    for path in files {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
        let file: File = match serde_yaml::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                report.failed.push(Failure {
                    file: name,
                    name: "(file)".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        for case in &file.tests {
            match run_case(case, &sources, &base) {
                Ok(()) => report.passed += 1,
                Err(message) => report.failed.push(Failure {
                    file: name.clone(),
                    name: case.name.clone(),
                    message,
                }),
            }
        }
    }
    Ok(report)
}
