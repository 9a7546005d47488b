//! Rule tests: stories of what a borrower did and was sent, with the exact
//! answers the guard must give. One format and one driver serve the
//! compliance officers' tests beside the rules (`rules/tests/*.yaml`, run
//! by `compliance-guard rules test [DIR]`) and the project's scenarios
//! (`tests/scenarios/*.yaml`, run by the integration tests), so that
//! whatever one can say the other can.
//!
//! A file is a list of cases under `tests:`. A short case is the facts as
//! they stand at one moment, one send and the answer expected:
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
//!     send: {channel: voice, loanIds: [CARD], jurisdictions: [US-NY], balance: "125.50"}
//!     expect:
//!       allowed: false
//!       ruleId: us-regf-7-calls-in-7-days
//!       nextAllowedAt: "2020-04-08T12:00:00Z"   # "none" for no moment
//! ```
//!
//! A story puts facts and checks in order, each check at its own moment:
//!
//! ```yaml
//! tests:
//!   - name: A1, seven calls in seven days
//!     description: where the story comes from and what it shows
//!     extraRules: |                       # optional: a rule that does not ship
//!       rules: [...]
//!     person: BO-TEST-0001                # optional (the default)
//!     defaults: {channel: voice, direction: outbound, status: attempted}
//!     send: {channel: voice, loanIds: [CARD]}   # what every check's send starts from
//!     steps:
//!       - record: {id: IT-1, startedAt: "2020-04-01T14:00:00Z"}
//!       - update: {id: IT-1, status: failed}
//!       - delete: IT-1
//!       - debt: {id: ACCT-1, loans: [SL1, SL2]}
//!       - link: {id: BO-TEST-0001, externalId: abc}
//!       - restrict: {id: RS-1, kind: ceaseCommunication, source: letter,
//!                    receivedAt: "2020-08-06T15:00:00Z", loanIds: [CARD]}
//!       - end: {id: RS-1, at: "2020-08-09T15:00:00Z", reason: revoked}
//!       - check:
//!           at: "2020-04-08T14:00:00Z"
//!           send: {timeZones: [America/New_York]}   # changes to the case's send
//!           why: printed when the check fails
//!           expect: {allowed: false, ruleId: ..., counted: {rule: [IT-1]}, ...}
//! ```
//!
//! A send carries every field of a Check ([`crate::request::CheckInput`])
//! and is read by [`crate::request::build_proposal`], exactly as a live
//! Check is. [`format`] says what each key means; [`run()`] and
//! [`run_stories`] run the files.

pub mod format;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::rules::{LoadOptions, RuleSet, read_sources};

pub use format::{Case, StoryFile};

/// One case that failed, or a file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The story file.
    pub file: String,
    /// Where in the file, `(line, column)`, when the file itself is at
    /// fault and serde_yaml knows the place.
    pub at: Option<(usize, usize)>,
    /// The case's name; `None` when the file could not be read.
    pub case: Option<String>,
    /// What was expected and what came out, or why the case could not
    /// run: one line, lower case, with what was written in backticks.
    pub message: String,
    /// The decisions of the failing checks, pretty-printed, for whoever
    /// debugs the engine (long; the command leaves it out). May be empty.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(case) = &self.case {
            write!(f, ": {case}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a run of the rule tests found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed and files that could not be read, in file and
    /// case order.
    pub failed: Vec<Failure>,
    /// The checks of the cases that passed (a short case is one).
    pub checks: usize,
}

/// Reads a story file's text; `file` names it in the error, which has the
/// place serde_yaml gives.
pub fn parse(file: &str, text: &str) -> Result<StoryFile, Failure> {
    serde_yaml::from_str(text).map_err(|e| {
        let at = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        // serde_yaml appends " at line N column M", which we print in
        // front instead.
        if let Some((line, column)) = at {
            let suffix = format!(" at line {line} column {column}");
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
        }
        Failure {
            file: file.to_owned(),
            at,
            case: None,
            message,
            detail: String::new(),
        }
    })
}

/// Reads a story file (see [`parse`]).
pub fn read_file(path: &Path) -> Result<StoryFile, Failure> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&file, &text),
        Err(e) => Err(Failure {
            file,
            at: None,
            case: None,
            message: format!("cannot read the file: {e}"),
            detail: String::new(),
        }),
    }
}

/// Runs every case of `DIR/tests/*.yaml` against the rules in `DIR`: the
/// `rules test` command, for the tests officers keep beside their rules.
pub fn run(dir: &Path) -> Result<Report, String> {
    run_stories(dir, &dir.join("tests"))
}

/// Runs every case of the story files in `stories` (`*.yaml`, `*.yml`, in
/// name order) against the rules in `rules`: the scenarios keep their
/// stories apart from the rules they test. `Err` when the rules do not
/// compile or a directory cannot be read; a file or case that fails is in
/// the report.
pub fn run_stories(rules: &Path, stories: &Path) -> Result<Report, String> {
    let sources = read_sources(rules).map_err(|e| e.to_string())?;
    let base = RuleSet::compile(&sources, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let rules = run::Rules {
        sources: &sources,
        base: &base,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(stories)
        .map_err(|e| format!("cannot read `{}`: {e}", stories.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut report = Report::default();
    for path in files {
        let file = match read_file(&path) {
            Ok(f) => f,
            Err(failure) => {
                report.failed.push(failure);
                continue;
            }
        };
        for case in &file.tests {
            match run::run_case(case, &rules) {
                run::CaseResult::Passed(checks) => {
                    report.passed += 1;
                    report.checks += checks;
                }
                run::CaseResult::Failed { message, detail } => report.failed.push(Failure {
                    file: path.display().to_string(),
                    at: None,
                    case: Some(case.name.clone()),
                    message,
                    detail,
                }),
            }
        }
    }
    Ok(report)
}
