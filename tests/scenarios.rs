//! The scenarios: every `tests/scenarios/*.yaml` file is a story of
//! records, updates, restrictions and checks against the shipped rules,
//! with the exact answers expected. They are rule tests, in the one format
//! the officers write too (`compliance_guard::ruletest`, described in
//! docs/rules.md), run by the one driver; this file only runs it and adds
//! what the project asks of its own stories: each case says where it comes
//! from (a `description`).

use std::path::Path;

use compliance_guard::ruletest;

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
