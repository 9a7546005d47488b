//! Runs one case: the rules it decides with, its facts applied to a fresh
//! index in order, each send read by [`build_proposal`] and decided by
//! [`engine::decide`], and each answer compared with what is expected.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};

use super::format::{Body, Case, Expect, Moment, Send, Step};
use crate::engine::{self, Decision};
use crate::index::Index;
use crate::model::{InteractionInput, parse_time};
use crate::problem::joined;
use crate::request::build_proposal;
use crate::rules::{LoadOptions, RuleSet};

/// Who recorded the restrictions and ends of a story.
const RECORDED_BY: &str = "rule-test";

/// What a case came to.
#[derive(Debug)]
pub(super) enum CaseResult {
    /// Every check passed; how many there were.
    Passed(usize),
    /// The case could not run, or a check failed: the message (one line)
    /// and the decisions of the failing checks (for whoever debugs them).
    Failed {
        /// What went wrong, each failing check with its step.
        message: String,
        /// The failing checks' decisions, pretty-printed.
        detail: String,
    },
}

/// The rule files under test and their set compiled with no options.
pub(super) struct Rules<'a> {
    /// `(path, text)` of each rule file.
    pub(super) sources: &'a [(String, String)],
    /// The set every case without `roles` or `extraRules` decides with.
    pub(super) base: &'a RuleSet,
}

/// The rules a case decides with: the base set, or the files compiled again
/// for its `roles` and with its `extraRules`, then cut to its `only`.
fn rules_for<'a>(case: &Case, rules: &Rules<'a>) -> Result<Cow<'a, RuleSet>, String> {
    let mut set = if case.roles.is_none() && case.extra_rules.is_none() {
        Cow::Borrowed(rules.base)
    } else {
        let mut sources = rules.sources.to_vec();
        if let Some(extra) = &case.extra_rules {
            sources.push(("extraRules".to_owned(), extra.clone()));
        }
        let opts = LoadOptions {
            roles: case.roles.clone(),
            ..LoadOptions::default()
        };
        Cow::Owned(RuleSet::compile(&sources, &opts).map_err(|e| {
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?)
    };
    if let Some(only) = &case.only {
        let ids: Vec<&str> = only.iter().map(String::as_str).collect();
        set = Cow::Owned(set.subset(&ids).map_err(|unknown| {
            format!(
                "unknown rule ids in `only`: {}",
                unknown
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?);
    }
    Ok(set)
}

/// A time as the messages print it (`Z`, no needless fraction).
fn show(t: Option<DateTime<Utc>>) -> String {
    Moment(t).to_string()
}

/// `[a, b]` with each id in backticks.
fn ids<S: AsRef<str>>(list: &[S]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("`{}`", s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// `v` in order.
fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

/// Every way `d` differs from `e`, each in a phrase; empty when it matches.
fn compare(d: &Decision, e: &Expect) -> Vec<String> {
    let mut wrong = Vec::new();
    let word = |allowed: bool| if allowed { "allowed" } else { "blocked" };
    let rule = |r: Option<&str>| r.map_or("none".to_owned(), |r| format!("`{r}`"));
    if d.allowed != e.allowed {
        wrong.push(format!(
            "expected {}, got {}{}",
            word(e.allowed),
            word(d.allowed),
            d.rule_id
                .as_ref()
                .map(|r| format!(" by `{r}`"))
                .unwrap_or_default()
        ));
    } else if d.allowed && d.rule_id.is_some() {
        wrong.push(format!(
            "expected no deciding rule on an allow, got {}",
            rule(d.rule_id.as_deref())
        ));
    }
    if let Some(want) = &e.rule_id
        && d.rule_id.as_deref() != Some(want.as_str())
    {
        wrong.push(format!(
            "expected rule `{want}`, got {}",
            rule(d.rule_id.as_deref())
        ));
    }
    let violation = |id: &str| d.violations.iter().find(|v| v.rule_id == id);
    if let Some(want) = &e.violations {
        let got = sorted(d.violations.iter().map(|v| v.rule_id.as_str()).collect());
        let want = sorted(want.iter().map(String::as_str).collect());
        if got != want {
            wrong.push(format!(
                "expected violations {}, got {}",
                ids(&want),
                ids(&got)
            ));
        }
    }
    if let Some(want) = &e.shadow {
        let got = sorted(
            d.violations
                .iter()
                .filter(|v| v.shadow)
                .map(|v| v.rule_id.as_str())
                .collect(),
        );
        let want = sorted(want.iter().map(String::as_str).collect());
        if got != want {
            wrong.push(format!(
                "expected shadow violations {}, got {}",
                ids(&want),
                ids(&got)
            ));
        }
    }
    for (what, want, got) in [
        ("next allowed", e.next_allowed_at, d.next_allowed_at),
        ("valid until", e.valid_until, d.valid_until),
    ] {
        if let Some(want) = want
            && want.0 != got
        {
            wrong.push(format!("expected {what} {want}, got {}", show(got)));
        }
    }
    for (id, want) in &e.counted {
        match violation(id) {
            Some(v) if &v.counted_interaction_ids == want => {}
            Some(v) => wrong.push(format!(
                "expected `{id}` to count {}, got {}",
                ids(want),
                ids(&v.counted_interaction_ids)
            )),
            None => wrong.push(format!(
                "expected `{id}` to count {}, but it is not violated",
                ids(want)
            )),
        }
    }
    for (id, want) in &e.count {
        match violation(id) {
            Some(v) if v.count == *want => {}
            Some(v) => wrong.push(format!("expected `{id}` count {want}, got {}", v.count)),
            None => wrong.push(format!(
                "expected `{id}` count {want}, but it is not violated"
            )),
        }
    }
    for (id, want) in &e.rule_next_allowed_at {
        match violation(id) {
            Some(v) if v.next_allowed_at == want.0 => {}
            Some(v) => wrong.push(format!(
                "expected `{id}` next allowed {want}, got {}",
                show(v.next_allowed_at)
            )),
            None => wrong.push(format!(
                "expected `{id}` next allowed {want}, but it is not violated"
            )),
        }
    }
    if let Some(want) = &e.restriction_id {
        let got = d
            .rule_id
            .as_deref()
            .and_then(violation)
            .and_then(|v| v.restriction_id.as_deref());
        if got != Some(want.as_str()) {
            wrong.push(format!("expected restriction `{want}`, got {}", rule(got)));
        }
    }
    for (what, want, got) in [
        (
            "zones weighed",
            &e.zones_weighed,
            crate::location::explain(&d.zones_weighed),
        ),
        (
            "jurisdictions weighed",
            &e.jurisdictions_weighed,
            crate::location::explain(&d.places_weighed),
        ),
    ] {
        if let Some(want) = want
            && *want != got
        {
            wrong.push(format!("expected {what} `{want}`, got `{got}`"));
        }
    }
    if let Some(want) = &e.applied {
        let want = sorted(want.iter().map(String::as_str).collect());
        if d.applied_rule_ids != want {
            wrong.push(format!(
                "expected applied rules {}, got {}",
                ids(&want),
                ids(&d.applied_rule_ids)
            ));
        }
    }
    wrong
}

/// A case's index and the facts every step needs.
struct Story<'a> {
    case: &'a Case,
    rules: &'a RuleSet,
    index: Index,
}

impl Story<'_> {
    /// Records an interaction: the case's defaults, then its own fields,
    /// at its `startedAt` or else `fallback`.
    fn record(&mut self, input: &InteractionInput, fallback: DateTime<Utc>) -> Result<(), String> {
        let mut merged = self.case.defaults.clone();
        merged.overlay(input);
        // `overlay` leaves out what an update may not change; a new record's
        // own id, person and times stand.
        merged.id = input.id.clone();
        for (to, from) in [
            (&mut merged.person_id, &input.person_id),
            (&mut merged.created_at, &input.created_at),
            (&mut merged.updated_at, &input.updated_at),
            (&mut merged.deleted_at, &input.deleted_at),
        ] {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        let now = opt_time("startedAt", merged.started_at.as_deref())?.unwrap_or(fallback);
        self.index
            .create(&self.case.person, &merged, now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Adds a restriction, recorded at `recorded`.
    fn restrict(
        &mut self,
        input: &crate::restrictions::RestrictionInput,
        id: String,
        recorded: DateTime<Utc>,
    ) -> Result<(), String> {
        let checked = input
            .check(
                id,
                self.case.person.clone(),
                RECORDED_BY.to_owned(),
                recorded,
            )
            .map_err(|e| e.to_string())?;
        self.index
            .put_restriction(checked)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Decides `send` at `at` and compares: `Ok` with the differences
    /// (empty: it passed) and the decision, `Err` when the send is refused.
    fn check(
        &self,
        send: &Send,
        at: DateTime<Utc>,
        expect: &Expect,
    ) -> Result<(Vec<String>, Decision), String> {
        let input = send.to_check(&self.case.person, at);
        let proposal =
            build_proposal(&input, &self.index, at).map_err(|p| format!("send: {}", joined(&p)))?;
        let view = self
            .index
            .view(&self.case.person)
            .map_err(|e| e.to_string())?;
        let d = engine::decide(self.rules, &view, &proposal, at);
        Ok((compare(&d, expect), d))
    }

    /// Applies one step that is not a check.
    fn apply(&mut self, step: &Step) -> Result<(), String> {
        let person = self.case.person.as_str();
        match step {
            Step::Record(input) => self
                .record(input, DateTime::default())
                .map_err(|e| format!("record: {e}")),
            Step::Update(patch) => {
                let id = patch.id.as_deref().ok_or("update: `id` is required")?;
                let now = opt_time("updatedAt", patch.updated_at.as_deref())?.unwrap_or_default();
                self.index
                    .update(Some(person), id, patch, now)
                    .map(|_| ())
                    .map_err(|e| format!("update: {e}"))
            }
            Step::Delete(id) => self
                .index
                .delete(Some(person), id, DateTime::default())
                .map(|_| ())
                .map_err(|e| format!("delete: {e}")),
            Step::Debt(d) => self
                .index
                .declare_debt(person, &d.id, &d.loans)
                .map_err(|e| format!("debt: {e}")),
            Step::Link(l) => self
                .index
                .link_person(&l.id, &l.external_id)
                .map(|_| ())
                .map_err(|e| format!("link: {e}")),
            Step::Restrict(input) => {
                let id = input.id.clone().ok_or("restrict: `id` is required")?;
                let recorded = parse_time("receivedAt", &input.received_at)
                    .map_err(|e| format!("restrict: {e}"))?;
                self.restrict(input, id, recorded)
                    .map_err(|e| format!("restrict: {e}"))
            }
            Step::End(end) => {
                let mut r = self
                    .index
                    .restriction(Some(person), &end.id)
                    .map_err(|e| format!("end: {e}"))?
                    .clone();
                r.ended_at = Some(end.at);
                r.ended_by = Some(RECORDED_BY.to_owned());
                r.end_reason = end.reason.clone();
                self.index
                    .put_restriction(r)
                    .map(|_| ())
                    .map_err(|e| format!("end: {e}"))
            }
            Step::Check(_) => Ok(()),
        }
    }
}

fn opt_time(field: &'static str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    text.map(|t| parse_time(field, t))
        .transpose()
        .map_err(|e| e.to_string())
}

/// Runs `case` against `rules`.
pub(super) fn run_case(case: &Case, rules: &Rules<'_>) -> CaseResult {
    let failed = |message: String| CaseResult::Failed {
        message,
        detail: String::new(),
    };
    let set = match rules_for(case, rules) {
        Ok(set) => set,
        Err(message) => return failed(message),
    };
    let mut story = Story {
        case,
        rules: &set,
        index: Index::default(),
    };
    match &case.body {
        Body::Check {
            at,
            history,
            restrictions,
            expect,
        } => {
            for (i, record) in history.iter().enumerate() {
                if let Err(e) = story.record(record, *at) {
                    return failed(format!("history[{i}]: {e}"));
                }
            }
            for (i, r) in restrictions.iter().enumerate() {
                let id = r.id.clone().unwrap_or_else(|| format!("RS-TEST-{i}"));
                if let Err(e) = story.restrict(r, id, *at) {
                    return failed(format!("restrictions[{i}]: {e}"));
                }
            }
            match story.check(&case.send, *at, expect) {
                Err(message) => failed(message),
                Ok((wrong, _)) if wrong.is_empty() => CaseResult::Passed(1),
                Ok((wrong, d)) => CaseResult::Failed {
                    message: wrong.join("; "),
                    detail: format!("decision: {d:#?}"),
                },
            }
        }
        Body::Steps(steps) => {
            let mut checks = 0;
            let mut wrong = Vec::new();
            let mut detail = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                let n = i + 1;
                let Step::Check(c) = step else {
                    if let Err(e) = story.apply(step) {
                        wrong.push(format!("step {n}: {e}"));
                        break;
                    }
                    continue;
                };
                let at = c.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                let why = c
                    .why
                    .as_ref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                match story.check(&case.send.overlay(&c.send), c.at, &c.expect) {
                    Err(e) => {
                        wrong.push(format!("step {n}, check at {at}{why}: {e}"));
                        break;
                    }
                    Ok((bad, _)) if bad.is_empty() => checks += 1,
                    Ok((bad, d)) => {
                        wrong.push(format!("step {n}, check at {at}{why}: {}", bad.join("; ")));
                        detail.push(format!("step {n}: decision: {d:#?}"));
                    }
                }
            }
            if wrong.is_empty() {
                CaseResult::Passed(checks)
            } else {
                CaseResult::Failed {
                    message: wrong.join("; "),
                    detail: detail.join("\n"),
                }
            }
        }
    }
}
