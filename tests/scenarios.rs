//! The scenarios: every `tests/scenarios/*.yaml` file is a story of
//! records, updates, restrictions and checks against the shipped rules,
//! with the exact answers expected. They are rule tests, in the one format
//! the officers write too (`compliance_guard::ruletest`, described in
//! docs/rules.md), run by the one driver; this file only runs it and adds
//! what the project asks of its own stories: each case says where it comes
//! from (a `description`), and that every shipped rule decides some check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use compliance_guard::rules::{LoadOptions, Mode, RuleSet};
use compliance_guard::ruletest::{
    self, StoryFile,
    format::{Body, Expect, Step},
};

#[test]
fn scenarios() {
    let dir = Path::new("tests/scenarios");
    let report = ruletest::run_stories(Path::new("rules"), dir).unwrap();
    let mut failures: Vec<String> = report
        .failed
        .iter()
        .map(|f| {
            if f.detail.is_empty() {
                f.to_string()
            } else {
                format!("{f}\n{}", f.detail)
            }
        })
        .collect();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            continue;
        }
        files += 1;
        // A file that does not parse is already among the failures.
        for case in ruletest::read_file(&path)
            .map(|f| f.tests)
            .unwrap_or_default()
        {
            if case.description.is_none() {
                failures.push(format!(
                    "{}: {}: a scenario needs a `description`",
                    path.display(),
                    case.name
                ));
            }
        }
    }
    assert!(report.passed > 0, "no scenarios found");
    assert!(
        failures.is_empty(),
        "{} of {} scenario cases failed:\n{}",
        failures.len(),
        report.passed + report.failed.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{files} scenario files, {} cases, {} checks",
        report.passed, report.checks
    );
}

/// The story files of `dir` (`*.yaml`, `*.yml`), in name order.
fn story_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// Every check's expected answer in a story file: a short case's one, a
/// story's in step order.
fn expectations(file: &StoryFile) -> impl Iterator<Item = &Expect> {
    file.tests.iter().flat_map(|case| match &case.body {
        Body::Check { expect, .. } => vec![expect.as_ref()],
        Body::Steps(steps) => steps
            .iter()
            .filter_map(|s| match s {
                Step::Check(c) => Some(&c.expect),
                _ => None,
            })
            .collect(),
    })
}

/// Every shipped rule is the deciding rule (`ruleId`) of some check of a
/// scenario or of the officers' rule tests, so that none ships without a
/// test that makes it block. A shadow rule never decides: it must be
/// expected among some check's `shadow` or `violations` instead.
#[test]
fn every_shipped_rule_decides_some_check() {
    let set = RuleSet::load_dir(Path::new("rules"), &LoadOptions::default()).unwrap();
    let (mut decided, mut reported) = (BTreeSet::new(), BTreeSet::new());
    let mut checks = 0;
    for dir in ["tests/scenarios", "rules/tests"] {
        for path in story_files(dir) {
            let file = ruletest::read_file(&path).unwrap_or_else(|f| panic!("{f}"));
            for expect in expectations(&file) {
                checks += 1;
                decided.extend(expect.rule_id.clone());
                for list in [&expect.shadow, &expect.violations] {
                    reported.extend(list.iter().flatten().cloned());
                }
            }
        }
    }
    assert!(
        set.rules().len() > 1 && checks > 100,
        "{} rules, {checks} checks",
        set.rules().len()
    );
    let missing: Vec<String> = set
        .rules()
        .iter()
        .filter_map(|r| match r.mode {
            Mode::Enforce if !decided.contains(&r.id) => Some(format!(
                "{} ({}): no check expects it as `ruleId`",
                r.id, r.file
            )),
            Mode::Shadow if !reported.contains(&r.id) => Some(format!(
                "{} ({}, shadow): no check expects it in `shadow` or `violations`",
                r.id, r.file
            )),
            _ => None,
        })
        .collect();
    assert!(
        missing.is_empty(),
        "shipped rules that no scenario or rule test makes decide:\n{}",
        missing.join("\n")
    );
}
