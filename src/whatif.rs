//! What-if replay: had this rule set been live, what would it have changed?
//!
//! `compliance-guard rules replay --rules NEW_DIR --data-dir DIR` reads the
//! decision log in order, rebuilds the interactions as they stood at each
//! decision (the journal's records up to that moment, by their createdAt,
//! updatedAt or deletedAt; restrictions by their recordedAt or endedAt),
//! and decides each logged Check again under the
//! rule set that decided it (from the archive of live versions) and under
//! NEW_DIR. It reports the violations per rule under each set and every
//! decision whose answer changes. It only reads: it runs while the server is
//! up, and needs no lock.
//!
//! The history is rebuilt from the journal's latest state of each record as
//! of its last change: a record later changed again is seen in that later
//! state from the moment of its last change on, and in no state before its
//! creation. Records imported with an older createdAt are seen from then.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::engine;
use crate::guard::{CheckInput, build_proposal};
use crate::index::Index;
use crate::journal::{self, Layout};
use crate::model::ContactInput;
use crate::pb::journal::{Record, record::Op};
use crate::rules::{LoadOptions, RuleSet};

/// A decision whose answer changes under the new set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// When the Check was answered.
    pub logged_at: String,
    /// The person asked about.
    pub person_id: String,
    /// The channel.
    pub channel: String,
    /// What the set in force answered, replayed: allowed?
    pub was_allowed: bool,
    /// Its deciding rule.
    pub was_rule_id: Option<String>,
    /// What the new set answers.
    pub now_allowed: bool,
    /// Its deciding rule.
    pub now_rule_id: Option<String>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Decisions replayed.
    pub decisions: u64,
    /// Decisions skipped (their rules version is not in the archive, or
    /// their request no longer reads).
    pub skipped: u64,
    /// Violations per rule id under the sets that decided then.
    pub before: BTreeMap<String, u64>,
    /// Violations per rule id under the new set.
    pub after: BTreeMap<String, u64>,
    /// Decisions that were allowed and would be blocked.
    pub newly_blocked: Vec<Change>,
    /// Decisions that were blocked and would be allowed.
    pub newly_allowed: Vec<Change>,
}

/// Errors of a replay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The new rules fail their check.
    #[error("the new rules fail their check:\n{0}")]
    Rules(crate::rules::RuleErrors),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// The decision log could not be read.
    #[error("reading the decision log `{path}`: {cause}")]
    Log {
        /// The file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
}

struct Logged {
    at: DateTime<Utc>,
    /// The reservation the Check recorded, if any: the replay decides
    /// before it, as the Check did.
    reserved: Option<String>,
    logged_at: String,
    rules_version: String,
    input: CheckInput,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

fn logged(line: &Value) -> Option<Logged> {
    let r = &line["request"];
    let at = DateTime::parse_from_rfc3339(line["answer"]["at"].as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let contact: Option<ContactInput> = serde_json::from_value(r["contact"].clone()).ok().flatten();
    Some(Logged {
        at,
        reserved: line["answer"]["interactionId"].as_str().map(str::to_owned),
        // Decisions are ordered by when the guard took them; older logs
        // have only the time the line was written.
        logged_at: line["decidedAt"]
            .as_str()
            .map_or_else(|| text(&line["loggedAt"]), str::to_owned),
        rules_version: text(&line["rulesVersion"]),
        input: CheckInput {
            person_id: text(&r["personId"]),
            channel: text(&r["channel"]),
            direction: text(&r["direction"]),
            theme: text(&r["theme"]),
            subject: text(&r["subject"]),
            loan_ids: texts(&r["loanIds"]),
            is_transactional: r["isTransactional"].as_bool(),
            contact,
            previous_interaction_id: text(&r["previousInteractionId"]),
            at: Some(at),
            jurisdictions: texts(&r["jurisdictions"]),
            time_zones: texts(&r["timeZones"]),
            // A replay decides again; it records nothing.
            reserve: false,
            request_id: String::new(),
            balance: text(&r["balance"]),
            required_by_law: r["requiredByLaw"].as_bool().unwrap_or(false),
            consent_request: r["consentRequest"].as_bool().unwrap_or(false),
        },
    })
}

/// When a journal record took effect, for interactions, restrictions and
/// the people and accounts that carry a time; `None` for records without
/// one, which take effect where they stand.
fn effective(record: &Record) -> Option<DateTime<Utc>> {
    match &record.op {
        Some(Op::Interaction(i)) => [&i.deleted_at, &i.updated_at, &i.created_at]
            .into_iter()
            .flatten()
            .filter_map(|t| crate::wire::time("t", t).ok())
            .max(),
        Some(Op::Person(p)) => p.at.as_ref().and_then(|t| crate::wire::time("at", t).ok()),
        Some(Op::Debt(d)) => d.at.as_ref().and_then(|t| crate::wire::time("at", t).ok()),
        // Added when recorded, ended when its end took effect.
        Some(Op::Restriction(r) | Op::RestrictionV2(r)) => [&r.recorded_at, &r.ended_at]
            .into_iter()
            .flatten()
            .filter_map(|t| crate::wire::time("t", t).ok())
            .max(),
        Some(Op::Batch(b)) => b.records.iter().filter_map(effective).max(),
        _ => None,
    }
}

/// The interaction ids a record writes.
fn ids(record: &Record, out: &mut Vec<String>) {
    match &record.op {
        Some(Op::Interaction(i)) => out.push(i.id.clone()),
        Some(Op::Batch(b)) => b.records.iter().for_each(|r| ids(r, out)),
        _ => {}
    }
}

fn apply(index: &mut Index, record: Record) {
    match record.op {
        Some(Op::Interaction(i)) => {
            if let Ok(r) = crate::wire::record_from(i) {
                let _ = index.restore_interaction(r);
            }
        }
        Some(Op::Person(p)) => {
            index.restore_person(&p.id, &p.alias_ids, &p.external_ids);
        }
        Some(Op::Debt(d)) => {
            let _ = index.declare_debt(&d.person_id, &d.debt_id, &d.loan_ids);
        }
        Some(Op::Restriction(r) | Op::RestrictionV2(r)) => {
            if let Ok(r) = crate::wire::restriction_from(r) {
                let _ = index.put_restriction(r);
            }
        }
        Some(Op::Batch(b)) => {
            for r in b.records {
                apply(index, r);
            }
        }
        _ => {}
    }
}

/// Replays the decision log of `data_dir` (between `from` and `to`, by the
/// moment decided) against the rules in `new_rules`. Both the archived sets
/// and the new one are loaded with `opts`, which should be the server's
/// (its `--roles` decide which rules bind), so that "before" is what the
/// server decided and "after" differs only by the rules.
pub fn replay(
    new_rules: &Path,
    data_dir: &Path,
    opts: &LoadOptions,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<ReplayReport, ReplayError> {
    let new = RuleSet::load_dir(new_rules, opts).map_err(ReplayError::Rules)?;
    let mut log = Vec::new();
    let dir = data_dir.join("decisions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|cause| ReplayError::Log {
            path: dir.display().to_string(),
            cause,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files {
        let file = std::fs::File::open(&path).map_err(|cause| ReplayError::Log {
            path: path.display().to_string(),
            cause,
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|cause| ReplayError::Log {
                path: path.display().to_string(),
                cause,
            })?;
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            // A retry's repeated answer is not a decision of its own.
            if value["answer"]["replayed"].as_bool() == Some(true) {
                continue;
            }
            if let Some(l) = logged(&value)
                && from.is_none_or(|f| l.at >= f)
                && to.is_none_or(|t| l.at < t)
            {
                log.push(l);
            }
        }
    }
    log.sort_by(|a, b| a.logged_at.cmp(&b.logged_at));

    let mut archived: BTreeMap<String, Option<RuleSet>> = BTreeMap::new();
    let mut report = ReplayReport::default();
    let mut index = Index::default();
    let mut next = 0usize;
    let logged_at = |l: &Logged| {
        DateTime::parse_from_rfc3339(&l.logged_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    // Decides the logged Checks from `next` on while `due` says so.
    let mut decide_due = |index: &Index,
                          next: &mut usize,
                          report: &mut ReplayReport,
                          due: &dyn Fn(usize, &Logged) -> bool| {
        while *next < log.len() && due(*next, &log[*next]) {
            let l = &log[*next];
            *next += 1;
            let old = archived.entry(l.rules_version.clone()).or_insert_with(|| {
                RuleSet::load_dir(&data_dir.join("rules-archive").join(&l.rules_version), opts).ok()
            });
            let (Some(old), Ok(proposal), Ok(view)) = (
                old.as_ref(),
                build_proposal(&l.input, index, l.at),
                index.view(&l.input.person_id),
            ) else {
                report.skipped += 1;
                continue;
            };
            let was = engine::decide(old, &view, &proposal, l.at);
            let now = engine::decide(&new, &view, &proposal, l.at);
            report.decisions += 1;
            for v in &was.violations {
                *report.before.entry(v.rule_id.clone()).or_default() += 1;
            }
            for v in &now.violations {
                *report.after.entry(v.rule_id.clone()).or_default() += 1;
            }
            if was.allowed != now.allowed {
                let change = Change {
                    logged_at: l.logged_at.clone(),
                    person_id: l.input.person_id.clone(),
                    channel: l.input.channel.clone(),
                    was_allowed: was.allowed,
                    was_rule_id: was.rule_id.clone(),
                    now_allowed: now.allowed,
                    now_rule_id: now.rule_id.clone(),
                };
                if was.allowed {
                    report.newly_blocked.push(change);
                } else {
                    report.newly_allowed.push(change);
                }
            }
        }
    };
    let reserved: Vec<(usize, String)> = log
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.reserved.clone().map(|r| (i, r)))
        .collect();
    journal::replay(
        &Layout {
            dir: data_dir.to_owned(),
        },
        |record| {
            if let Some(t) = effective(&record) {
                decide_due(&index, &mut next, &mut report, &|_, l| {
                    logged_at(l).is_some_and(|at| at < t)
                });
            }
            // A reserving Check decided before its own reservation existed.
            let mut written = Vec::new();
            ids(&record, &mut written);
            if let Some(last) = reserved
                .iter()
                .filter(|(i, r)| *i >= next && written.contains(r))
                .map(|(i, _)| *i)
                .max()
            {
                decide_due(&index, &mut next, &mut report, &|i, _| i <= last);
            }
            apply(&mut index, record);
            Ok(())
        },
    )?;
    decide_due(&index, &mut next, &mut report, &|_, _| true);
    Ok(report)
}
