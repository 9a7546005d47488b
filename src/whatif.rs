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
//! The history is rebuilt from the latest state of each record: from the
//! journal, a record later changed again is seen in that later state from
//! the moment of its last change on; from the store, which holds the
//! latest state only, an interaction is seen in it from its creation on
//! (stricter: it counts from then). Neither is seen before its creation.
//! Records imported with an older createdAt are seen from then.
//!
//! Its memory is bounded as a server's is, not by all history ever
//! recorded: the history is read from the reach of the earliest Check
//! decided (the horizon, or a longer window of the new rules, and a day),
//! the store's interactions streamed in the order they came to be
//! (`store::read_history_in_time`); as the replay moves on, memory keeps
//! the counting entries a Check reads and lets go of full records and of
//! what the Checks still to decide can no longer count ([`Replay`]). What
//! is before the reach is unknown to the Checks, as a server's before its
//! memory is. The decisions of the window are held (a line of the log
//! each), so a long log is replayed a window at a time (`--from`, `--to`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::engine;
use crate::journal;
use crate::ledger::{self, Ledger, Skipped, changes};
use crate::request::{CheckInput, build_proposal};
use crate::rules::{LoadOptions, RuleSet};
use crate::store::Source;

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

/// What a what-if run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfReport {
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
    /// Where the history was read from (RFC 3339): the reach of the
    /// earliest Check of the window (the horizon, or a longer window of
    /// the new rules, and a day), as a server's memory holds it. `None`
    /// when the window has no logged Check, and no history was read.
    pub history_from: Option<String>,
    /// Interaction records applied from the history: the store's created
    /// from `historyFrom` on (and the few created before it that happen
    /// from then on), and the changes to interactions in the journal
    /// after the store's position, up to the last Check of the window
    /// (the history after it is not read).
    pub interactions_read: u64,
    /// Journal records that could not be applied to the history (a kind
    /// this release does not know, or a damaged record), by kind: the
    /// history went on without them, so decisions after them may differ
    /// from what was decided. Empty when every record applied.
    pub skipped_records: BTreeMap<String, u64>,
    /// Why, for the first few of them.
    pub skipped_reasons: Vec<String>,
}

/// Errors of a what-if run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhatIfError {
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
    /// The reservation the Check recorded, if any: the what-if run decides
    /// before it, as the Check did.
    reserved: Option<String>,
    logged_at: String,
    rules_version: String,
    input: CheckInput,
}

/// A logged Check, read with the one [`CheckInput`] shape the log wrote
/// it in. It is decided at the moment it was answered (`answer.at`), and
/// records nothing (no reserve, no request id).
fn logged(line: &Value) -> Option<Logged> {
    let at = DateTime::parse_from_rfc3339(line["answer"]["at"].as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let mut input: CheckInput = serde_json::from_value(line["request"].clone()).ok()?;
    input.at = Some(at);
    input.reserve = false;
    input.request_id.clear();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Some(Logged {
        at,
        reserved: line["answer"]["interactionId"].as_str().map(str::to_owned),
        // Decisions are ordered by when the guard took them; older logs
        // have only the time the line was written.
        logged_at: line["decidedAt"]
            .as_str()
            .map_or_else(|| text(&line["loggedAt"]), str::to_owned),
        rules_version: text(&line["rulesVersion"]),
        input,
    })
}

/// Decides the decision log of `data_dir` again (between `from` and `to`, by the
/// moment decided) against the rules in `new_rules`. Both the archived sets
/// and the new one are loaded with `opts`, which should be the server's
/// (its `--roles` decide which rules bind), so that "before" is what the
/// server decided and "after" differs only by the rules.
pub fn what_if(
    new_rules: &Path,
    data_dir: &Path,
    opts: &LoadOptions,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<WhatIfReport, WhatIfError> {
    let new = RuleSet::load_dir(new_rules, opts).map_err(WhatIfError::Rules)?;
    let mut log = Vec::new();
    let dir = data_dir.join("decisions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|cause| WhatIfError::Log {
            path: dir.display().to_string(),
            cause,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files {
        let file = std::fs::File::open(&path).map_err(|cause| WhatIfError::Log {
            path: path.display().to_string(),
            cause,
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|cause| WhatIfError::Log {
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
    let mut report = WhatIfReport::default();
    let mut ledger = Ledger::default();
    let mut skipped = Skipped::default();
    let mut next = 0usize;
    let logged_at = |l: &Logged| {
        DateTime::parse_from_rfc3339(&l.logged_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    // Decides the logged Checks from `next` on while `due` says so.
    let mut decide_due = |index: &crate::index::Index,
                          next: &mut usize,
                          report: &mut WhatIfReport,
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
    let Some(mut replay) = Replay::of(&log, opts.horizon_days.max(new.longest_window_days()))
    else {
        // No Check to decide: the history is not read.
        return Ok(report);
    };
    // What is before `from` is not read: unknown to the Checks.
    ledger.index.set_held_from(replay.from);
    report.history_from = DateTime::from_timestamp(replay.from, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    crate::store::read_history_in_time(data_dir, Some(replay.from), |record, source| {
        // Every Check is decided: what comes after does not matter, and
        // the store is read no further.
        if next == log.len() {
            return Ok(ControlFlow::Break(()));
        }
        // A record (a batch: one operation) takes effect at its latest
        // change's time, and is applied whole; one of the store's at the
        // time it is given in (an interaction's creation: the store holds
        // its latest state only, given in the order of creation, so the
        // Checks logged after its creation and before a later change of it
        // are decided with it, and with what was created in between).
        let changes = changes(record);
        let read = || changes.iter().filter_map(|c| c.as_ref().ok());
        let at = |c: &ledger::Change| match (c, source) {
            (ledger::Change::Interaction(i), Source::Store) => Some(i.created_at),
            _ => c.effective_at(),
        };
        if let Some(t) = read().filter_map(at).max() {
            decide_due(&ledger.index, &mut next, &mut report, &|_, l| {
                logged_at(l).is_some_and(|at| at < t)
            });
        }
        // A reserving Check decided before its own reservation existed.
        let written: Vec<&str> = read().filter_map(ledger::Change::interaction_id).collect();
        if let Some(last) = reserved
            .iter()
            .filter(|(i, r)| *i >= next && written.contains(&r.as_str()))
            .map(|(i, _)| *i)
            .max()
        {
            decide_due(&ledger.index, &mut next, &mut report, &|i, _| i <= last);
        }
        if next == log.len() {
            return Ok(ControlFlow::Break(()));
        }
        // A change the journal after the store's position makes to an
        // interaction whose full record was let go applies to that
        // record: read back from the store first.
        if let Source::JournalAfter(store) = source {
            for id in &written {
                if ledger.index.may_be_on_disk(id)
                    && let Some((seq, r)) = store.interaction(id)?
                {
                    // One that does not load back (emptied, or unknown)
                    // is applied below from the change's own state, a
                    // whole record, as a new one.
                    let _ = ledger.index.load_from_disk(r, seq);
                }
            }
            // What the journal writes stays whole (a frame the walks do
            // not pass): the store does not hold it to read it back.
            ledger.index.set_frame(1);
        }
        let interactions = written.len();
        report.interactions_read += interactions as u64;
        ledger.apply_lenient_changes(changes, &mut skipped);
        // With no store (an older release's layout), nothing let go could
        // be read back: memory keeps the whole history, as before.
        if !matches!(source, Source::JournalOnly) {
            replay.applied(&mut ledger, interactions, next);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    decide_due(&ledger.index, &mut next, &mut report, &|_, _| true);
    report.skipped_records = skipped
        .by_kind
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    report.skipped_reasons = skipped.reasons;
    Ok(report)
}

/// What bounds a replay's memory: the history is read from the reach of
/// the first Check to decide on, and as the replay moves on, what the
/// Checks still to decide can no longer count leaves memory, and every
/// full record is let go (a Check reads counting entries only), as the
/// server's minute walk does.
struct Replay {
    /// How far back (seconds) a Check's windows and the history a server
    /// holds reach: the horizon (or a longer window of the new rules),
    /// and the day more a server keeps.
    reach: i64,
    /// From each logged Check on, the earliest moment decided (Unix
    /// seconds): Checks are decided in the order logged, and a Check's
    /// moment may be later than the next one's.
    earliest_from: Vec<i64>,
    /// Where the history is read from (Unix seconds).
    from: i64,
    /// Interactions applied since memory was last walked.
    since_walk: usize,
    /// The reach of the last walk (Unix seconds): what memory no longer
    /// holds is before it.
    walked_to: i64,
}

impl Replay {
    /// Interactions applied between two walks of memory, at least.
    const WALK_EVERY: usize = 65_536;

    /// The replay of `log` with windows of up to `horizon_days`; `None`
    /// when there is no Check to decide.
    fn of(log: &[Logged], horizon_days: u32) -> Option<Replay> {
        let reach = (i64::from(horizon_days) + 1) * 86_400;
        let mut earliest_from = vec![i64::MAX; log.len()];
        let mut earliest = i64::MAX;
        for (i, l) in log.iter().enumerate().rev() {
            earliest = earliest.min(l.at.timestamp());
            earliest_from[i] = earliest;
        }
        let from = earliest_from.first()?.saturating_sub(reach);
        Some(Replay {
            reach,
            earliest_from,
            from,
            since_walk: 0,
            walked_to: from,
        })
    }

    /// After `interactions` more were applied, with the Checks from `next`
    /// still to decide: memory lets go of every full record it may (the
    /// walk's rule: not a deleted one, one in progress or one with audio)
    /// and of the interactions before the reach of every Check still to
    /// decide. From then on the history before that is unknown to the
    /// Checks, as a server's before its memory is (an opt-out received
    /// then counts as confirmed).
    ///
    /// Memory is walked once [`Replay::WALK_EVERY`] interactions were
    /// applied since the last walk, or once the reach moved on a day; and
    /// never before a thirty-second of the interactions memory holds were
    /// applied, so that the walks cost each interaction about 32 visits of
    /// a slot at most (chunks of slots all emptied are passed over whole).
    /// Between two walks, memory holds whole the interactions applied
    /// since the last one. What the journal after the store's position
    /// wrote stays whole (its frame, 1, is never passed by a walk's 0).
    fn applied(&mut self, ledger: &mut Ledger, interactions: usize, next: usize) {
        self.since_walk += interactions;
        let Some(earliest) = self.earliest_from.get(next) else {
            return;
        };
        let cutoff = earliest.saturating_sub(self.reach).max(self.from);
        let held = ledger.index.len() - ledger.index.on_disk();
        let full = self.since_walk >= Self::WALK_EVERY.max(held / 32);
        let a_day_on = cutoff >= self.walked_to.saturating_add(86_400);
        let due = full || (a_day_on && self.since_walk >= held / 32);
        if !due {
            return;
        }
        self.since_walk = 0;
        self.walked_to = cutoff;
        let reserved = ledger.reservations().clone();
        let let_go = crate::index::LetGo { before: i64::MAX };
        ledger
            .index
            .move_to_disk(cutoff, 0, Some(let_go), |id| reserved.contains_key(id));
        let from = ledger.index.held_from().max(cutoff);
        ledger.index.set_held_from(from);
    }
}
