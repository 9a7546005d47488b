//! The `compliance-guard` command line, run as a subprocess.

use std::path::Path;

use crate::support::process::{run, sample, scrape, serve, stderr, stdout};
use crate::support::server::{checks_on, interactions_on};

const BAD_RULE: &str = "rules:
  - id: bad-cap
    description: A cap.
    citation: Test 1
    jurisdictions: [US]
    applies:
      channels: [voice]
    frequencyCap:
      limit: 0
      windowDays: 7
      per: borrower
  - id: bad-hours
    description: Hours.
    citation: Test 2
    jurisdictions: [US]
    permittedHours:
      from: 8am
      until: \"21:00\"
";

#[test]
fn rules_check_accepts_the_shipped_rules() {
    let o = run(&["rules", "check", "rules"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let version = out
        .strip_prefix(
            format!(
                "ok: {} rules, version ",
                crate::rules_files::SHIPPED_IDS.len()
            )
            .as_str(),
        )
        .and_then(|v| v.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(version.len(), 16, "{out}");
    assert!(version.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // The same directory, checked again, has the same version.
    assert_eq!(stdout(&run(&["rules", "check", "rules"])), out);
    let absolute = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let by_absolute = stdout(&run(&["rules", "check", absolute.to_str().unwrap()]));
    assert!(
        by_absolute.starts_with(&format!(
            "ok: {} rules, version ",
            crate::rules_files::SHIPPED_IDS.len()
        )),
        "{by_absolute}"
    );
    assert_eq!(by_absolute, out);
}

#[test]
fn rules_check_defaults_to_the_rules_directory() {
    let o = run(&["rules", "check"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "ok: {} rules, version ",
            crate::rules_files::SHIPPED_IDS.len()
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rules_check_reports_each_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, BAD_RULE).unwrap();
    let o = run(&["rules", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let path = file.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{path}:9:7: rule `bad-cap`: `limit` is 0; allowed: 1 to 100000\n\
             {path}:17:7: rule `bad-hours`: `from` `8am` is not a time; write HH:MM or HH:MM:SS, for example \"08:00\"\n"
        )
    );
    assert_eq!(stderr(&o), "2 problems found\n");
}

#[test]
fn rules_check_honours_the_horizon() {
    let o = run(&["rules", "check", "rules", "--horizon-days", "6"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    // Every rule with a window longer than 6 days: all but the 1-day cap,
    // the permitted hours and the rules that honour restrictions. (New
    // York City's cap of 2 in 7 days and its consent rule's one request
    // in 30 days made 12 into 14; West Virginia's caps are of 7 days too,
    // so 16; the nine templates of policy-state-standards.yaml with a cap
    // of 7 days, 25; RCW 31.45.082's two weekly caps and Louisiana's calendar
    // month, 28.)
    assert_eq!(out.lines().count(), 28, "{out}");
    assert!(
        out.lines().all(|l| (l.starts_with("rules/us-")
            || l.starts_with("rules/policy-state-standards.yaml:"))
            && l.contains("longer than the 6 days")),
        "{out}"
    );
    assert_eq!(stderr(&o), "28 problems found\n");
}

#[test]
fn rules_check_of_a_missing_directory_fails_with_a_message() {
    let o = run(&["rules", "check", "no-such-rules-dir"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.starts_with("no-such-rules-dir: cannot read the rules directory: "),
        "{out}"
    );
    assert_eq!(stderr(&o), "1 problem found\n");
}

#[test]
fn rules_check_of_an_empty_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["rules", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        format!(
            "{}: no rule files (*.yaml) found; an empty rule set would allow everything\n",
            dir.path().display()
        )
    );
}

#[test]
fn rules_list_prints_the_ids() {
    let o = run(&["rules", "list"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let ids: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(ids, crate::rules_files::SHIPPED_IDS);
    // The first four columns are those printed before `--jurisdiction`
    // existed; mode and file:line come after them.
    assert!(
        out.lines().any(|l| l
            == "us-regf-hours\tpermittedHours\tUS\t12 CFR 1006.6(b)(1)(i)\tenforce\trules/us-reg-f.yaml:61"),
        "{out}"
    );
    let shadow = out.lines().filter(|l| l.contains("\tshadow\t")).count();
    assert_eq!(
        stderr(&o),
        format!(
            "{} rules bind any lender anywhere: {} enforced, {shadow} in shadow\n",
            ids.len(),
            ids.len() - shadow
        )
    );
    // `--rules DIR` and the older positional DIR are the same.
    assert_eq!(stdout(&run(&["rules", "list", "--rules", "rules"])), out);
    assert_eq!(stdout(&run(&["rules", "list", "rules"])), out);
}

/// What binds a creditor in West Virginia: the lender's policies for `US`
/// and the state's four rules, with their modes and where each is written.
#[test]
fn rules_list_for_a_place_and_roles_prints_what_binds_there() {
    let o = run(&[
        "rules",
        "list",
        "--jurisdiction",
        "US-WV",
        "--roles",
        "creditor",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "policy-do-not-interact\trestriction\tUS\tLender policy; for a bankruptcy, 11 U.S.C. 362(a)(6) (the automatic stay bars any act to collect a pre-petition claim)\tenforce\trules/lender-policy.yaml:4
policy-us-federal-holidays\tblackoutDates\tUS\tLender policy; holiday dates from 5 U.S.C. 6103(a)\tshadow\trules/lender-policy.yaml:21
us-wv-46a-2-125d-10-conversations-per-week\tfrequencyCap\tUS-WV\tW. Va. Code 46A-2-125(d); 46A-2-122(d)\tenforce\trules/us-wv.yaml:47
us-wv-46a-2-125d-30-calls-per-week\tfrequencyCap\tUS-WV\tW. Va. Code 46A-2-125(d); 46A-2-122(d)\tenforce\trules/us-wv.yaml:19
us-wv-46a-2-125d-designated-inconvenient-time\trestriction\tUS-WV\tW. Va. Code 46A-2-125(d); 46A-2-122(d)\tenforce\trules/us-wv.yaml:101
us-wv-46a-2-125d-hours\tpermittedHours\tUS-WV\tW. Va. Code 46A-2-125(d); 46A-2-122(d)\tenforce\trules/us-wv.yaml:77
"
    );
    assert_eq!(
        stderr(&o),
        "6 rules bind a lender that is creditor in US-WV (West Virginia): 5 enforced, 1 in shadow\n"
    );
}

/// The command of issue 17: a creditor in Florida has the lender's
/// policies and Florida's night ban (559.72(17) binds "any person").
#[test]
fn rules_list_for_florida_and_a_creditor() {
    let o = run(&[
        "rules",
        "list",
        "--jurisdiction",
        "US-FL",
        "--roles",
        "creditor",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "policy-do-not-interact\trestriction\tUS\tLender policy; for a bankruptcy, 11 U.S.C. 362(a)(6) (the automatic stay bars any act to collect a pre-petition claim)\tenforce\trules/lender-policy.yaml:4
policy-us-federal-holidays\tblackoutDates\tUS\tLender policy; holiday dates from 5 U.S.C. 6103(a)\tshadow\trules/lender-policy.yaml:21
us-fl-559.72-17-hours\tpermittedHours\tUS-FL\tFla. Stat. 559.72(17)\tenforce\trules/us-fl.yaml:24
"
    );
    assert_eq!(
        stderr(&o),
        "3 rules bind a lender that is creditor in US-FL (Florida): 2 enforced, 1 in shadow\n"
    );
}

const PLACES: &str = "rules:
  - id: a-federal
    description: d
    citation: Federal 1
    binds: [debtCollector]
    jurisdictions: [US]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: b-state
    description: d
    citation: State 2
    mode: shadow
    jurisdictions: [US-NY]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: c-city
    description: d
    citation: City 3
    binds: [creditor, licensee]
    jurisdictions: [US-NY-NYC]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: d-elsewhere
    description: d
    citation: Elsewhere 4
    jurisdictions: [US-MA]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
";

/// A state takes the rules of its parent and of the places inside it (a
/// borrower known only to be in New York may be in the city), as a Check
/// does; roles are parsed as `serve --roles` parses them; `--format json`
/// prints the same rules as objects.
#[test]
fn rules_list_reads_places_and_roles_as_the_engine_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("places.yaml"), PLACES).unwrap();
    let d = dir.path().to_str().unwrap();
    let file = dir.path().join("places.yaml").display().to_string();
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["rules", "list", "--rules", d];
        all.extend_from_slice(args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&[]), ["a-federal", "b-state", "c-city", "d-elsewhere"]);
    assert_eq!(
        ids(&["--jurisdiction", "US-NY"]),
        ["a-federal", "b-state", "c-city"]
    );
    assert_eq!(
        ids(&["--jurisdiction", "US-NY-NYC"]),
        ["a-federal", "b-state", "c-city"]
    );
    assert_eq!(
        ids(&["--jurisdiction", "US-MA"]),
        ["a-federal", "d-elsewhere"]
    );
    assert_eq!(
        ids(&["--jurisdiction", "US"]),
        ["a-federal", "b-state", "c-city", "d-elsewhere"]
    );
    assert_eq!(
        ids(&["--jurisdiction", "US-NY", "--roles", "creditor"]),
        ["b-state", "c-city"]
    );
    assert_eq!(
        ids(&[
            "--jurisdiction",
            "US-NY",
            "--roles",
            "debtCollector,licensee"
        ]),
        ["a-federal", "b-state", "c-city"]
    );

    let o = run(&[
        "rules",
        "list",
        "--rules",
        d,
        "--jurisdiction",
        "US-NY-NYC",
        "--roles",
        "creditor",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            r#"[
  {{
    "id": "b-state",
    "mode": "shadow",
    "kind": "permittedHours",
    "jurisdictions": [
      "US-NY"
    ],
    "binds": [],
    "citation": "State 2",
    "file": "{file}",
    "line": 8
  }},
  {{
    "id": "c-city",
    "mode": "enforce",
    "kind": "permittedHours",
    "jurisdictions": [
      "US-NY-NYC"
    ],
    "binds": [
      "creditor",
      "licensee"
    ],
    "citation": "City 3",
    "file": "{file}",
    "line": 14
  }}
]
"#
        )
    );
    assert_eq!(
        stderr(&o),
        "2 rules bind a lender that is creditor in US-NY-NYC (New York City): 1 enforced, 1 in shadow\n"
    );
    // Nothing binds: an empty list, and the summary says so.
    let o = run(&[
        "rules",
        "list",
        "--rules",
        d,
        "--jurisdiction",
        "US-FL",
        "--roles",
        "creditor",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "0 rules bind a lender that is creditor in US-FL (Florida): 0 enforced, 0 in shadow\n"
    );
}

/// A code outside the vocabulary, a role the server does not know, a
/// format that is not one: exit 2, the value named with what is allowed,
/// and nothing on stdout. The jurisdiction is checked before the rules
/// are read.
#[test]
fn rules_list_refuses_a_bad_jurisdiction_role_or_format() {
    let o = run(&[
        "rules",
        "list",
        "--jurisdiction",
        "US-FLA",
        "--rules",
        "no-such-rules-dir",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "error: --jurisdiction: unknown jurisdiction `US-FLA`; allowed: `US`, `US-` and a state, district or territory code (`US-MA`), or a city code (`US-NY-NYC`) (did you mean `US-FL`?)\n"
    );
    let o = run(&["rules", "list", "--jurisdiction", "Florida"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .starts_with("error: --jurisdiction: unknown jurisdiction `Florida`; allowed: `US`,"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "rules",
        "list",
        "--jurisdiction",
        "US-FL",
        "--roles",
        "creditr",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "error: unknown role `creditr`; allowed: debtCollector, creditor, licensee, smallLoanLicensee\n"
    );
    let o = run(&["rules", "list", "--format", "yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("unknown format `yaml`; allowed: text, json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rules_list_of_a_missing_directory_is_an_error() {
    let o = run(&["rules", "list", "no-such-rules-dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).starts_with("error: loading rules from no-such-rules-dir: "),
        "{}",
        stderr(&o)
    );
}

/// `serve` as an operator runs it: it listens, creates a key, answers
/// health, and on SIGTERM turns NOT_SERVING and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn serve_starts_answers_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let server = serve([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
    ])
    .spawn();
    let addr = server.addr();
    let key_file = data.path().join("api-key");
    assert!(key_file.exists(), "the key is created at first start");
    server.wait_serving(addr).await;
    let log = server.terminate().await;
    assert!(
        log.iter().any(|l| l.contains("shutting down: NOT_SERVING")),
        "{log:?}"
    );
}

#[test]
fn rules_test_runs_the_shipped_cases_and_reports_a_failing_one() {
    let o = run(&["rules", "test", "rules"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let shipped = stdout(&o);
    assert!(shipped.ends_with(" passed, 0 failed\n"), "{shipped}");
    let passed: usize = shipped.split(' ').next().unwrap().parse().unwrap();

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    for entry in std::fs::read_dir("rules/tests").unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("tests").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("tests/wrong.yaml"),
        "tests:\n  - name: a late call said to be allowed\n    at: \"2020-06-02T03:00:00Z\"\n    send: {channel: voice, jurisdictions: [US-NJ]}\n    expect: {allowed: true, ruleId: none-at-all}\n",
    )
    .unwrap();
    let o = run(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let wrong = dir.path().join("tests/wrong.yaml");
    assert_eq!(
        out,
        format!(
            "{}: a late call said to be allowed: expected allowed, got blocked by `us-regf-hours`; expected rule `none-at-all`, got `us-regf-hours`\n{passed} passed, 1 failed\n",
            wrong.display()
        )
    );
}

/// A rules directory in a temporary directory: a copy of the shipped
/// rule files, and `tests/` holding `tests` (name and text) alone.
fn rules_with_tests(tests: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    for (name, text) in tests {
        std::fs::write(dir.path().join("tests").join(name), text).unwrap();
    }
    dir
}

/// The officers' files run as they are (the one story format reads the
/// short cases they were written as): every case of every file passes,
/// counted here from the YAML itself, not by the driver.
#[test]
fn rules_test_runs_every_case_of_the_officers_files_unchanged() {
    let mut cases = 0;
    for entry in std::fs::read_dir("rules/tests").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let file: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        cases += file["tests"].as_sequence().unwrap().len();
    }
    assert!(cases >= 57, "{cases}");
    let o = run(&["rules", "test", "rules"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), format!("{cases} passed, 0 failed\n"));
}

/// A send's `balance` reaches the rules: the minimumBalance cases pass
/// with it, and without it (an unknown balance, covered) the case about a
/// balance under the minimum is blocked.
#[test]
fn rules_test_decides_a_balance_by_a_minimum_balance_rule() {
    let text = std::fs::read_to_string("rules/tests/minimum-balance.yaml").unwrap();
    assert_eq!(text.matches(", balance: \"").count(), 3);
    let dir = rules_with_tests(&[("minimum-balance.yaml", &text)]);
    let o = run(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "3 passed, 0 failed\n");

    let mut dropped = text.clone();
    for balance in ["1250.00", "1000.00", "999.99"] {
        dropped = dropped.replace(&format!(", balance: \"{balance}\""), "");
    }
    let dir = rules_with_tests(&[("minimum-balance.yaml", &dropped)]);
    let o = run(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        format!(
            "{}: the same call about a balance under 1000.00 is not covered: expected allowed, got blocked by `policy-large-balance-2-calls-in-7-days`; expected violations [], got [`policy-large-balance-2-calls-in-7-days`]\n2 passed, 1 failed\n",
            dir.path().join("tests/minimum-balance.yaml").display()
        )
    );
}

/// A story never reserves: `reserve` in a send is refused where it is
/// written, with its line and column, and the file runs no case.
#[test]
fn rules_test_refuses_reserve_in_a_story() {
    let story = "tests:
  - name: a reserving check
    send: {channel: voice, jurisdictions: [US-NY]}
    steps:
      - record: {channel: voice, direction: outbound, status: attempted, startedAt: \"2020-06-01T15:00:00Z\"}
      - check:
          at: \"2020-06-02T15:00:00Z\"
          send: {reserve: true}
          expect: {allowed: true}
";
    let dir = rules_with_tests(&[("reserve.yaml", story)]);
    let o = run(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        format!(
            "{}:8:27: tests[0].steps[1].check.send.reserve: `reserve` has no place in a story: a check decides and records nothing; write a `record` step for a send that happened\n0 passed, 1 failed\n",
            dir.path().join("tests/reserve.yaml").display()
        )
    );
}

/// `serve --metrics-listen` exposes every metric an operator needs to see
/// the guard run: decisions by result and rule, latency histograms per RPC
/// (real buckets, not summaries), the journal's flushes, the size gauges,
/// and both reload outcomes from the start. The recorder is global to a
/// process, hence a subprocess.
#[cfg(unix)]
#[tokio::test]
async fn serve_exposes_metrics() {
    use compliance_guard::pb::{CheckRequest, CreateInteractionRequest, Interaction};

    let data = tempfile::tempdir().unwrap();
    let server = serve([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--insecure-no-auth".as_ref(),
        "--metrics-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
    ])
    .spawn();
    let addr = server.addr();
    let metrics = server.metrics_addr();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut checks = checks_on(channel.clone(), None);
    let mut records = interactions_on(channel, None);
    let request = CheckRequest {
        person_id: "BO-METR-0001".into(),
        channel: "mail".into(),
        ..Default::default()
    };
    server.wait_serving(addr).await;
    assert!(
        checks
            .check(request.clone())
            .await
            .unwrap()
            .get_ref()
            .allowed
    );
    // Before any write: both reload outcomes are there, at 0, and the
    // media counters too.
    let body = scrape(metrics);
    for outcome in ["applied", "refused"] {
        assert_eq!(
            sample(
                &body,
                "compliance_guard_rules_reloads_total",
                &[("outcome", outcome)]
            ),
            Some(0.0),
            "{body}"
        );
    }
    for name in [
        "compliance_guard_media_uploaded_bytes_total",
        "compliance_guard_media_purged_total",
        "compliance_guard_media_damaged_total",
    ] {
        assert_eq!(sample(&body, name, &[]), Some(0.0), "{name}: {body}");
    }
    // A second allow, a block (a call at 23:00 in New York), a recorded
    // call for another borrower, and a reserving Check for a third.
    assert!(
        checks
            .check(request.clone())
            .await
            .unwrap()
            .get_ref()
            .allowed
    );
    let late = checks
        .check(CheckRequest {
            person_id: "BO-METR-0001".into(),
            channel: "voice".into(),
            // New Jersey, not New York: a borrower known only to be in US-NY
            // may be in New York City, whose rules (2 communications a week,
            // hours from 08:00:01) would answer first. New Jersey has the same
            // zone and no rule of its own, so the rules this test is about decide.
            jurisdictions: vec!["US-NJ".into()],
            at: Some(prost_types::Timestamp {
                seconds: 1_591_066_800, // 2020-06-02T03:00:00Z
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!late.allowed);
    assert_eq!(late.compliance_guard_rule_id, "us-regf-hours");
    records
        .create_interaction(CreateInteractionRequest {
            searchable: false,
            person_id: "BO-METR-0002".into(),
            interaction: Some(Interaction {
                channel: "voice".into(),
                direction: "outbound".into(),
                status: "attempted".into(),
                started_at: Some(prost_types::Timestamp {
                    seconds: 1_583_157_600,
                    nanos: 0,
                }),
                ..Interaction::default()
            }),
        })
        .await
        .unwrap();
    let reserved = checks
        .check(CheckRequest {
            person_id: "BO-METR-0003".into(),
            channel: "mail".into(),
            reserve: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reserved.allowed, "{reserved:?}");

    // The gauges are sampled every second: wait for them to catch up (the
    // assertions below say what was seen last if they never do).
    let limit = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut body = scrape(metrics);
    while (sample(&body, "compliance_guard_interactions", &[]) != Some(2.0)
        || sample(&body, "compliance_guard_open_reservations", &[]) != Some(1.0))
        && tokio::time::Instant::now() < limit
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        body = scrape(metrics);
    }
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&body, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{body}"))
    };
    assert_eq!(get("compliance_guard_borrowers", &[]), 2.0);
    assert_eq!(get("compliance_guard_interactions", &[]), 2.0);
    assert_eq!(get("compliance_guard_open_reservations", &[]), 1.0);
    assert_eq!(
        get("compliance_guard_checks_total", &[("allowed", "true")]),
        3.0
    );
    assert_eq!(
        get(
            "compliance_guard_decisions_total",
            &[("result", "allowed"), ("rule_id", "")]
        ),
        3.0
    );
    assert_eq!(
        get(
            "compliance_guard_decisions_total",
            &[("result", "blocked"), ("rule_id", "us-regf-hours")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "compliance_guard_blocks_total",
            &[("rule_id", "us-regf-hours")]
        ),
        1.0
    );
    // Check latency: a real histogram with the buckets of SECONDS_BUCKETS,
    // cumulative, every OK Check in it. (How fast a Check is, is for the
    // benchmarks: docs/performance.md.)
    let check = [("rpc", "Check"), ("code", "OK")];
    let count = get("compliance_guard_rpc_duration_seconds_count", &check);
    assert_eq!(count, 4.0);
    let mut below = 0.0;
    for le in compliance_guard::server::SECONDS_BUCKETS
        .iter()
        .map(f64::to_string)
        .chain(["+Inf".to_owned()])
    {
        let n = get(
            "compliance_guard_rpc_duration_seconds_bucket",
            &[("rpc", "Check"), ("code", "OK"), ("le", &le)],
        );
        assert!(n >= below, "le={le}: {n} < {below}");
        below = n;
    }
    assert_eq!(below, count, "the +Inf bucket holds every Check");
    let sum = get("compliance_guard_rpc_duration_seconds_sum", &check);
    assert!(sum > 0.0, "{sum}");
    assert_eq!(
        get(
            "compliance_guard_rpc_duration_seconds_count",
            &[("rpc", "CreateInteraction"), ("code", "OK")]
        ),
        1.0
    );
    assert!(
        !body.contains("quantile="),
        "summaries instead of histograms"
    );
    // The create and the reservation were flushed, in one batch or more.
    let syncs = get("compliance_guard_journal_sync_seconds_count", &[]);
    assert!((1.0..=2.0).contains(&syncs), "{syncs}");
    assert!(get("compliance_guard_journal_sync_seconds_sum", &[]) > 0.0);
    assert_eq!(
        get(
            "compliance_guard_journal_sync_seconds_bucket",
            &[("le", "+Inf")]
        ),
        syncs
    );
    assert_eq!(
        get("compliance_guard_journal_batch_records_count", &[]),
        syncs
    );
    // A person, an interaction; a person, an interaction, a reservation.
    assert!(get("compliance_guard_journal_batch_records_sum", &[]) >= 5.0);
    for outcome in ["applied", "refused"] {
        assert_eq!(
            get(
                "compliance_guard_rules_reloads_total",
                &[("outcome", outcome)]
            ),
            0.0
        );
    }

    drop((checks, records));
    server.terminate().await;
}

#[test]
fn rules_replay_takes_the_servers_roles_and_refuses_an_unknown_one() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("decisions")).unwrap();
    let dir = data.path().to_str().unwrap();
    let ok = run(&[
        "rules",
        "replay",
        "--rules",
        "rules",
        "--data-dir",
        dir,
        "--roles",
        "creditor",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).starts_with("replayed 0 decisions (0 skipped)\n"),
        "{}",
        stdout(&ok)
    );
    let bad = run(&[
        "rules",
        "replay",
        "--rules",
        "rules",
        "--data-dir",
        dir,
        "--roles",
        "creditor,bogus",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad),
        "error: unknown role `bogus`; allowed: debtCollector, creditor, licensee, smallLoanLicensee\n"
    );
}

/// `serve --media-listen` opens the link listener, says where, answers on
/// it (a request that is not a link is 400, not a hang), and stops with the
/// server on SIGTERM. Flags out of range are refused before anything
/// starts.
#[cfg(unix)]
#[tokio::test]
async fn serve_opens_the_media_listener_and_refuses_bad_media_flags() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    for (flags, says) in [
        (
            vec!["--media-link-ttl-seconds", "0"],
            "--media-link-ttl-seconds 0 is out of range; allowed: 1 to 86400",
        ),
        (
            vec!["--media-link-ttl-seconds", "86401"],
            "allowed: 1 to 86400",
        ),
        (
            vec![
                "--media-listen",
                "127.0.0.1:0",
                "--media-public-url",
                "ftp://x",
            ],
            "--media-public-url `ftp://x` is not an http(s) URL",
        ),
        (
            vec!["--media-max-mib", "0"],
            "--media-max-mib 0 is out of range",
        ),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir"];
        args.push(data.path().to_str().unwrap());
        args.extend(flags);
        let o = run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }

    let data = tempfile::tempdir().unwrap();
    let server = serve([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--media-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
    ])
    .spawn();
    let media = server.media_addr();
    // The listener answers once the history is loaded: by SERVING.
    server.wait_serving(server.addr()).await;
    let mut s = tokio::net::TcpStream::connect(media).await.unwrap();
    s.write_all(b"GET /media/IT-1/recording HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        s.read_to_string(&mut answer),
    )
    .await
    .expect("the media listener answers")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("`expires` is missing"), "{answer}");
    assert!(data.path().join("media").join("link-key").exists());
    server.terminate().await;
}

/// Logs written to a pipe carry no terminal color codes: stderr here is a
/// pipe, so every log line, from start-up to shutdown, is plain text.
#[cfg(unix)]
#[tokio::test]
async fn serve_writes_no_color_codes_to_a_pipe() {
    let data = tempfile::tempdir().unwrap();
    let server = serve([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
    ])
    .spawn();
    server.wait_serving(server.addr()).await;
    let seen = server.terminate().await;
    // The log lines themselves, as `tracing` writes them: a level after the
    // timestamp. Start-up (journal, rules, access, SERVING) and shutdown
    // give at least five.
    let logged = seen
        .iter()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN "))
        .count();
    assert!(logged >= 5, "too few log lines to tell: {seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.contains(" INFO ") && l.contains("SERVING")),
        "{seen:#?}"
    );
    for line in &seen {
        assert!(!line.contains("\x1b["), "a color code in {line:?}");
    }
}

/// `--log-format json`: every line on stderr, from start-up to shutdown,
/// is one JSON object with a level and the event's fields, its message
/// among them; the listening address is a field.
#[cfg(unix)]
#[tokio::test]
async fn serve_logs_one_json_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    let server = serve([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data.path().as_os_str(),
        "--log-format".as_ref(),
        "json".as_ref(),
    ])
    .spawn();
    let parse = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object: {line:?} ({other:?})"),
        }
    };
    // The gRPC address, a field of a log line.
    let addr: std::net::SocketAddr = server.find_line(|line| {
        parse(line)["fields"]
            .get("addr")
            .and_then(|a| a.as_str())
            .map(|a| a.parse().unwrap())
    });
    server.wait_serving(addr).await;
    let seen: Vec<_> = server.terminate().await.iter().map(|l| parse(l)).collect();
    assert!(seen.len() >= 5, "too few log lines to tell: {seen:#?}");
    for object in &seen {
        let level = object["level"].as_str().unwrap_or_default();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{object:?}"
        );
        assert!(object["fields"]["message"].is_string(), "{object:?}");
        assert!(object["timestamp"].is_string(), "{object:?}");
    }
    let messages: Vec<&str> = seen
        .iter()
        .filter_map(|o| o["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"SERVING"), "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("shutting down: NOT_SERVING")),
        "{messages:?}"
    );
}

/// A fatal error of `serve --log-format json` is a JSON log line too, and
/// an unknown format is refused naming it and the allowed values.
#[test]
fn serve_log_format_json_errors_and_unknown_formats() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let o = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir,
        "--log-format",
        "json",
        "--horizon-days",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(lines[0]["level"], "ERROR", "{err}");
    assert!(
        lines[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("--horizon-days 0 is out of range"),
        "{err}"
    );

    let o = run(&["serve", "--data-dir", dir, "--log-format", "xml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown log format `xml`; allowed: text, json"),
        "{}",
        stderr(&o)
    );
}
