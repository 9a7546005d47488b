//! Regressions from the second review (rule authoring and audit).

use compliance_guard::rules::{LoadOptions, RuleSet};

fn errs(text: &str) -> Vec<String> {
    match RuleSet::compile(
        &[("r.yaml".to_owned(), text.to_owned())],
        &LoadOptions::default(),
    ) {
        Ok(_) => vec!["OK".into()],
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect()
        }
    }
}

const GOOD: &str = "    description: d\n    citation: c\n    jurisdictions: [US]\n    permittedHours:\n      from: \"08:00\"\n      until: \"21:00\"\n";

#[test]
fn rv_locate_id_with_comment() {
    // docs/rules.md's own example writes a comment after the id.
    let text = "rules:\n  - id: a        # stable\n    description: d\n    citation: \"\"\n    jurisdictions: [US]\n    permittedHours:\n      from: \"08:00\"\n      until: \"21:00\"\n";
    let e = errs(text);
    assert!(e[0].starts_with("4:5:"), "{e:?}");
}

#[test]
fn rv_locate_cooldown_after_directions() {
    let text = "rules:\n  - id: q\n    description: d\n    citation: c\n    jurisdictions: [US]\n    applies:\n      channels: [voice]\n      directions: [outbound]\n    coolDown:\n      days: 7\n      per: debt\n      after:\n        event: conversation\n        directions: []\n";
    let e = errs(text);
    assert!(e[0].starts_with("14:9:"), "{e:?}");
}

#[test]
fn rv_cooldown_days_overflow() {
    let text = "rules:\n  - id: q\n    description: d\n    citation: c\n    jurisdictions: [US]\n    coolDown:\n      days: 4294967295\n      eventDayIsDayOne: false\n      per: debt\n      after:\n        event: conversation\n";
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("`days` is 4294967295 days"), "{e:?}");
}

mod wi {
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use compliance_guard::guard::Guard;
    use compliance_guard::index::IndexConfig;
    use compliance_guard::journal::Durability;
    use compliance_guard::model::InteractionInput;
    use compliance_guard::request::{Caller, CheckInput};
    use compliance_guard::rules::{LoadOptions, RuleSet};
    use std::path::Path;
    use std::sync::Arc;

    pub use crate::support::library::Logged;

    pub const CAP: &str = "rules:\n  - id: one-call-a-day\n    description: d\n    citation: c\n    jurisdictions: [US]\n    applies:\n      channels: [voice]\n      directions: [outbound]\n    frequencyCap:\n      limit: 1\n      windowDays: 1\n      per: PER\n";

    pub fn rules_dir(per: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("r.yaml"), CAP.replace("PER", per)).unwrap();
        d
    }

    pub fn open(data: &Path, rules: &Path) -> Logged {
        let (g, _) = Guard::open(
            IndexConfig::default(),
            data,
            Durability::Buffered,
            u64::MAX,
            |_| {},
        )
        .unwrap();
        let set = RuleSet::load_dir(rules, &LoadOptions::default()).unwrap();
        compliance_guard::reload::archive(data, &set).unwrap();
        g.set_rules(Arc::new(set));
        let log = compliance_guard::decisions::DecisionLog::start(
            compliance_guard::decisions::LogConfig::under(data),
        )
        .unwrap();
        Logged { g, log }
    }

    pub fn call(loan: &str) -> CheckInput {
        CheckInput {
            person_id: "BO-WHAT-0001".into(),
            channel: "voice".into(),
            direction: "outbound".into(),
            loan_ids: vec![loan.into()],
            jurisdictions: vec!["US-NY".into()],
            ..CheckInput::default()
        }
    }
    pub fn caller() -> Caller {
        Caller {
            company: None,
            name: "t".into(),
            sensitive: false,
            agent: false,
        }
    }

    /// Tue 2025-12-02 10:00 in New York: the moment of the first write.
    /// Each test's writes and Checks come one second after another, so that
    /// their order is their times', not the clock's.
    pub fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 12, 2, 15, 0, 0).unwrap()
    }

    pub fn close(g: Logged) {
        g.log.close();
        drop(g);
    }

    #[tokio::test]
    async fn rv_whatif_debt_declared_after_check() {
        let rules = rules_dir("debt");
        let data = tempfile::tempdir().unwrap();
        let g = open(data.path(), rules.path());
        let now = t0();
        let rec = InteractionInput {
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            status_details: Some("voiceRangNoPickup".into()),
            loan_id: Some("LN-1".into()),
            started_at: Some((now - Duration::hours(1)).to_rfc3339()),
            ..Default::default()
        };
        g.create("BO-WHAT-0001", &rec, &caller(), now)
            .await
            .unwrap();
        let live = g
            .check(&call("LN-2"), &caller(), now + Duration::seconds(1), None)
            .await
            .unwrap();
        assert!(live.decision.allowed, "LN-2 is another debt: allowed live");
        g.declare_debt(
            "BO-WHAT-0001",
            "D-1",
            &["LN-1".into(), "LN-2".into()],
            now + Duration::seconds(2),
        )
        .await
        .unwrap();
        // Control: after the declaration the same Check is blocked by the
        // call on LN-1, now the same debt.
        let after = g
            .check(&call("LN-2"), &caller(), now + Duration::seconds(3), None)
            .await
            .unwrap();
        assert_eq!(after.decision.rule_id.as_deref(), Some("one-call-a-day"));
        close(g);
        let r = compliance_guard::whatif::what_if(
            rules.path(),
            data.path(),
            &compliance_guard::rules::LoadOptions::default(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.decisions, 2, "{r:?}");
        assert_eq!(
            r.before.get("one-call-a-day"),
            Some(&1),
            "only the Check after the declaration is blocked when replayed: {r:?}"
        );
        assert!(
            r.newly_blocked.is_empty() && r.newly_allowed.is_empty(),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn rv_whatif_reservation_retry() {
        let rules = rules_dir("borrower");
        let data = tempfile::tempdir().unwrap();
        let g = open(data.path(), rules.path());
        let mut reserve = call("LN-1");
        reserve.reserve = true;
        reserve.request_id = "r1".into();
        let now = t0();
        let first = g.check(&reserve, &caller(), now, None).await.unwrap();
        assert!(first.decision.allowed && first.interaction_id.is_some());
        let second = g
            .check(&call("LN-1"), &caller(), now + Duration::seconds(1), None)
            .await
            .unwrap();
        assert_eq!(
            second.decision.rule_id.as_deref(),
            Some("one-call-a-day"),
            "blocked live by the reservation"
        );
        let retry = g
            .check(&reserve, &caller(), now + Duration::seconds(2), None)
            .await
            .unwrap();
        assert!(retry.repeated);
        assert_eq!(retry.interaction_id, first.interaction_id);
        close(g);
        let r = compliance_guard::whatif::what_if(
            rules.path(),
            data.path(),
            &compliance_guard::rules::LoadOptions::default(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            r.decisions, 2,
            "the retry is not a decision of its own: {r:?}"
        );
        assert_eq!(
            r.before.get("one-call-a-day"),
            Some(&1),
            "one Check was blocked live: {r:?}"
        );
    }

    #[tokio::test]
    async fn rv_whatif_reservation_no_retry_control() {
        let rules = rules_dir("borrower");
        let data = tempfile::tempdir().unwrap();
        let g = open(data.path(), rules.path());
        let mut reserve = call("LN-1");
        reserve.reserve = true;
        reserve.request_id = "r1".into();
        let now = t0();
        let first = g.check(&reserve, &caller(), now, None).await.unwrap();
        assert!(first.decision.allowed, "{:?}", first.decision);
        let second = g
            .check(&call("LN-1"), &caller(), now + Duration::seconds(1), None)
            .await
            .unwrap();
        assert_eq!(second.decision.rule_id.as_deref(), Some("one-call-a-day"));
        close(g);
        let r = compliance_guard::whatif::what_if(
            rules.path(),
            data.path(),
            &compliance_guard::rules::LoadOptions::default(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.decisions, 2, "{r:?}");
        assert_eq!(
            r.before.get("one-call-a-day"),
            Some(&1),
            "the reserving Check is decided before its own reservation: {r:?}"
        );
    }

    /// The bytes and lines in the decision log of `data`.
    fn on_disk(data: &std::path::Path) -> (usize, usize) {
        let (mut bytes, mut lines) = (0, 0);
        for e in std::fs::read_dir(data.join("decisions")).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            bytes += text.len();
            lines += text.lines().count();
        }
        (bytes, lines)
    }

    /// The writer flushes at least once a second while lines keep coming.
    /// Before the fix it waited for a second without a line, so under a
    /// Check every 300 ms nothing reached the disk until the log was
    /// closed. At most eight Checks are sent, fewer bytes than the writer's
    /// buffer holds (asserted below), so a line on disk can only have come
    /// from a flush, not from a full buffer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rv_decision_log_never_flushed_under_steady_traffic() {
        const CHECKS: usize = 8;
        let rules = rules_dir("borrower");
        let data = tempfile::tempdir().unwrap();
        let g = open(data.path(), rules.path());
        let mut sent = 0;
        while sent < CHECKS && on_disk(data.path()).1 == 0 {
            g.check(&call("LN-9"), &caller(), Utc::now(), None)
                .await
                .unwrap();
            sent += 1;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        let flushed = on_disk(data.path()).1;
        close(g);
        let (bytes, lines) = on_disk(data.path());
        assert_eq!(lines, sent, "closing writes the rest");
        assert!(
            bytes < 8 * 1024,
            "{bytes} bytes: the buffer could have filled"
        );
        assert!(
            flushed > 0,
            "nothing on disk after {sent} Checks 300 ms apart"
        );
    }
}

/// A rule file whose modification time is in the future (copied from a
/// clock ahead of ours) cannot say how long ago it was written: it counts
/// as settled, so two reads that agree are taken after the shortest wait,
/// instead of reading until the reads run out.
#[test]
fn rv_read_stable_future_mtime() {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir("rules").unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.path().join("us-ma.yaml"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let mut waits = Vec::new();
    let set = compliance_guard::reload::read_stable_with(d.path(), &LoadOptions::default(), |w| {
        waits.push(w)
    })
    .unwrap();
    assert_eq!(waits, [std::time::Duration::from_millis(25)]);
    let direct = RuleSet::load_dir(d.path(), &LoadOptions::default()).unwrap();
    assert_eq!(set.version(), direct.version());
}

#[test]
fn rv_a_syntax_error_is_reported_once_and_anchors_across_rules_are_no_error() {
    let unclosed = format!(
        "rules:\n  - id: a\n{GOOD}  - id: b\n    description: \"d\n    citation: c\n    jurisdictions: [US]\n  - id: c\n{GOOD}"
    );
    assert_eq!(errs(&unclosed).len(), 1, "{:?}", errs(&unclosed));
    let anchors = format!(
        "rules:\n  - id: a\n{GOOD}    applies: &voice\n      channels: [voice]\n  - id: b\n{GOOD}    applies: *voice\n  - id: c\n{GOOD}    bogus: 1\n"
    );
    let e = errs(&anchors);
    assert!(!e.iter().any(|m| m.contains("unknown anchor")), "{e:?}");
    assert!(
        e.iter().any(|m| m.contains("unknown field `bogus`")),
        "{e:?}"
    );
}
