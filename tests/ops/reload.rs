//! Live reload of the rules through a real server: a good edit is used by
//! the next Check, a bad one is refused (the old set stays, health stays
//! SERVING), saves by rename, ConfigMap-style symlink swaps, a whole
//! directory renamed over the old one and editors' swap files are handled,
//! a half-written file is never taken, and under concurrent load every
//! Check sees one whole set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use compliance_guard::pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use compliance_guard::pb::{CheckRequest, CheckResponse};
use compliance_guard::reload::{ReloadStats, SETTLE, read_stable_with};
use compliance_guard::rules::LoadOptions;
use prost_types::Timestamp;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::server::{TestServer, options};

/// Mon 2025-12-01 21:30 EST: outside 08:00–21:00, inside 08:00–22:00.
const LATE: i64 = 1_764_642_600;

/// A server watching its rules directory, with a decision log.
struct Running {
    server: TestServer,
    channel: Channel,
    stats: Arc<ReloadStats>,
    rules: PathBuf,
    /// The data directory, kept after the server stops.
    data: tempfile::TempDir,
    _root: tempfile::TempDir,
}

impl Running {
    /// Stops the server; the data directory stays until `self` is
    /// dropped.
    async fn stop(self) -> tempfile::TempDir {
        drop(self.channel);
        self.server.stop().await.unwrap();
        self.data
    }
}

/// The shipped rule files' names and texts (not their tests).
fn shipped() -> Vec<(std::ffi::OsString, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((path.file_name().unwrap().to_owned(), text));
        }
    }
    files
}

async fn start() -> Running {
    let rules = tempfile::tempdir().unwrap();
    for (name, text) in shipped() {
        std::fs::write(rules.path().join(name), text).unwrap();
    }
    let path = rules.path().to_owned();
    start_in(rules, path).await
}

/// Starts a server on the rules already laid out in `rules`, which is
/// `root` or inside it.
async fn start_in(root: tempfile::TempDir, rules: PathBuf) -> Running {
    let data = tempfile::tempdir().unwrap();
    let stats = Arc::new(ReloadStats::default());
    let server = options()
        .rules_dir(&rules)
        .data_dir(data.path())
        .open()
        .reload(Arc::clone(&stats))
        .decision_log()
        .serving()
        .await;
    // SERVING comes after the reloader has set its watches, so an edit
    // made from now on is seen (before, one made in between was missed).
    assert!(
        stats.watching.load(Ordering::SeqCst),
        "SERVING before the reloader watches the rules"
    );
    Running {
        channel: server.channel().await,
        server,
        stats,
        rules,
        data,
        _root: root,
    }
}

fn late_call() -> CheckRequest {
    CheckRequest {
        person_id: "BO-RELD-0001".into(),
        channel: "voice".into(),
        // New Jersey, not New York: a borrower known only to be in US-NY
        // may be in New York City, whose rules (2 communications a week,
        // hours from 08:00:01) would answer first. New Jersey has the same
        // zone and no rule of its own, so the rules this test is about decide.
        jurisdictions: vec!["US-NJ".into()],
        time_zones: vec!["America/New_York".into()],
        at: Some(Timestamp {
            seconds: LATE,
            nanos: 0,
        }),
        ..CheckRequest::default()
    }
}

async fn check(channel: &Channel) -> CheckResponse {
    ComplianceGuardServiceClient::new(channel.clone())
        .check(late_call())
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `done` holds; fails after a minute (only a hang takes
/// that long).
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let limit = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < limit, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `count` reaches `at_least`.
async fn wait_for(count: &std::sync::atomic::AtomicU64, at_least: u64) {
    wait_until(&format!("the reloader got to {at_least}"), || {
        count.load(Ordering::SeqCst) >= at_least
    })
    .await;
}

fn reg_f(dir: &Path) -> PathBuf {
    dir.join("us-reg-f.yaml")
}

fn with_until(text: &str, until: &str) -> String {
    text.replace("until: \"21:00\"", &format!("until: \"{until}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_edit_is_used_by_the_next_check_and_a_bad_one_is_refused() {
    let s = start().await;
    let before = check(&s.channel).await;
    assert!(!before.allowed);
    assert_eq!(before.compliance_guard_rule_id, "us-regf-hours");

    // A save by rename: the new text is written beside, then moved over.
    let original = std::fs::read_to_string(reg_f(&s.rules)).unwrap();
    let staged = s.rules.join("us-reg-f.yaml.new");
    std::fs::write(&staged, with_until(&original, "22:00")).unwrap();
    std::fs::rename(&staged, reg_f(&s.rules)).unwrap();
    wait_for(&s.stats.applied, 1).await;
    let after = check(&s.channel).await;
    assert!(after.allowed, "{after:?}");
    assert_ne!(after.rules_version, before.rules_version);

    // Editors' swap and backup files are not rule files.
    std::fs::write(s.rules.join(".us-reg-f.yaml.swp"), "\u{0}garbage").unwrap();
    std::fs::write(s.rules.join("us-reg-f.yaml~"), "rules: [").unwrap();
    std::fs::write(s.rules.join(".#us-reg-f.yaml"), "rules: [").unwrap();

    // A bad edit: refused, the last good set stays, health stays SERVING.
    std::fs::write(
        s.rules.join("broken.yaml"),
        "rules:\n  - id: x\n    severity: high\n",
    )
    .unwrap();
    wait_for(&s.stats.refused, 1).await;
    let still = check(&s.channel).await;
    assert_eq!(still.rules_version, after.rules_version);
    assert!(still.allowed);
    let mut health = HealthClient::new(s.channel.clone());
    let h = health
        .check(HealthCheckRequest {
            service: "complianceguard.v1.ComplianceGuardService".into(),
        })
        .await
        .unwrap();
    assert_eq!(h.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(
        s.stats.applied.load(Ordering::SeqCst),
        1,
        "the swap files caused no reload"
    );

    // Fixing it puts the directory's set in force again.
    std::fs::remove_file(s.rules.join("broken.yaml")).unwrap();
    std::fs::write(reg_f(&s.rules), &original).unwrap();
    wait_for(&s.stats.applied, 2).await;
    let back = check(&s.channel).await;
    assert_eq!(back.rules_version, before.rules_version);
    assert!(!back.allowed);
    drop(health);
    s.stop().await;
}

/// Lays out `files` the way a Kubernetes ConfigMap volume does: the texts
/// in a hidden versioned directory, `..data` a symlink to it, and each file
/// a symlink through `..data`. An update writes a new versioned directory
/// and swaps `..data` by rename, so every file changes at once.
#[cfg(unix)]
fn configmap_version(dir: &Path, version: &str, files: &[(std::ffi::OsString, String)]) {
    let versioned = dir.join(version);
    std::fs::create_dir(&versioned).unwrap();
    for (name, text) in files {
        std::fs::write(versioned.join(name), text).unwrap();
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_reloaded() {
    let rules = tempfile::tempdir().unwrap();
    let files = shipped();
    configmap_version(rules.path(), "..2026_11_28_v1", &files);
    let path = rules.path().to_owned();
    let s = start_in(rules, path).await;
    let before = check(&s.channel).await;
    assert!(!before.allowed);
    assert_eq!(before.compliance_guard_rule_id, "us-regf-hours");

    // The update changes no file in place: only `..data` is renamed.
    let edited: Vec<_> = files
        .iter()
        .map(|(name, text)| (name.clone(), with_until(text, "22:00")))
        .collect();
    configmap_version(&s.rules, "..2026_11_28_v2", &edited);
    wait_for(&s.stats.applied, 1).await;
    let after = check(&s.channel).await;
    assert!(after.allowed, "{after:?}");
    assert_ne!(after.rules_version, before.rules_version);
    assert_eq!(s.stats.refused.load(Ordering::SeqCst), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_renamed_over_the_old_one_is_reloaded_and_then_watched() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    let files = shipped();
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let s = start_in(root, dir.clone()).await;
    let before = check(&s.channel).await;
    assert!(!before.allowed);

    // A deploy: the new directory is built beside, and renamed over.
    let next = dir.with_file_name("rules.next");
    std::fs::create_dir(&next).unwrap();
    for (name, text) in &files {
        std::fs::write(next.join(name), with_until(text, "22:00")).unwrap();
    }
    std::fs::rename(&dir, dir.with_file_name("rules.old")).unwrap();
    std::fs::rename(&next, &dir).unwrap();
    wait_for(&s.stats.applied, 1).await;
    let after = check(&s.channel).await;
    assert!(after.allowed, "{after:?}");

    // The new directory is the one watched now: an edit in it is seen.
    let original = files
        .iter()
        .find(|(name, _)| name == "us-reg-f.yaml")
        .map(|(_, text)| text.clone())
        .unwrap();
    std::fs::write(reg_f(&dir), original).unwrap();
    wait_for(&s.stats.applied, 2).await;
    let back = check(&s.channel).await;
    assert!(!back.allowed);
    assert_eq!(back.compliance_guard_rule_id, "us-regf-hours");
    assert_ne!(back.rules_version, after.rules_version);
    assert_eq!(s.stats.refused.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// A writer of one rule file on a simulated clock, for
/// [`read_stable_with`]: each of its steps (a moment after the first read,
/// and the text appended then) is written when the reader's waits reach
/// that moment, and the file's modification time is set to what it would
/// be on the real clock (or kept as it was, `keep_mtime`), so that the
/// reader sees exactly the ages and the texts of a slow writer without a
/// sleep.
struct SlowWriter {
    path: PathBuf,
    steps: Vec<(Duration, String)>,
    /// Simulated time since the first read.
    now: Duration,
    /// The simulated moment of the last write.
    written_at: Duration,
    /// A modification time kept whatever is written (a copy that keeps
    /// it, a restore); `None`: the time of the last write.
    keep_mtime: Option<std::time::SystemTime>,
    /// Every wait asked for, in order.
    waits: Vec<Duration>,
}

impl SlowWriter {
    /// Writes `first` now, to be completed by `steps`.
    fn start(
        path: PathBuf,
        first: &str,
        steps: Vec<(Duration, String)>,
        keep_mtime: Option<std::time::SystemTime>,
    ) -> SlowWriter {
        std::fs::write(&path, first).unwrap();
        let w = SlowWriter {
            path,
            steps,
            now: Duration::ZERO,
            written_at: Duration::ZERO,
            keep_mtime,
            waits: Vec::new(),
        };
        w.set_mtime();
        w
    }

    fn set_mtime(&self) {
        let mtime = self
            .keep_mtime
            .unwrap_or_else(|| std::time::SystemTime::now() - (self.now - self.written_at));
        std::fs::File::options()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    /// The reader's wait: `d` passes, and what the writer did meanwhile is
    /// done.
    fn wait(&mut self, d: Duration) {
        self.waits.push(d);
        self.now += d;
        while self.steps.first().is_some_and(|(at, _)| *at <= self.now) {
            let (at, text) = self.steps.remove(0);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
            self.written_at = at;
        }
        self.set_mtime();
    }
}

/// The shipped `us-reg-f.yaml` cut before the rules with these ids (each
/// part valid YAML on its own), and how many rules the whole file holds.
fn reg_f_cut_before(ids: &[&str]) -> (Vec<String>, usize) {
    let full = std::fs::read_to_string("rules/us-reg-f.yaml").unwrap();
    let mut parts = Vec::new();
    let mut from = 0;
    for id in ids {
        let cut = full.find(&format!("  - id: {id}\n")).unwrap();
        parts.push(full[from..cut].to_owned());
        from = cut;
    }
    parts.push(full[from..].to_owned());
    let whole = compliance_guard::rules::RuleSet::compile(
        &[("us-reg-f.yaml".to_owned(), full.clone())],
        &LoadOptions::default(),
    )
    .unwrap();
    (parts, whole.rules().len())
}

/// A writer that appends the rest of the file 40 ms after the first read:
/// the first read (one rule, valid on its own) is never taken; the file is
/// read again until it stops changing and has been left alone for
/// `SETTLE`.
#[test]
fn a_half_written_file_is_never_taken_for_a_shorter_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let (parts, whole) = reg_f_cut_before(&["us-regf-quiet-after-conversation"]);
    let mut writer = SlowWriter::start(
        dir.path().join("us-reg-f.yaml"),
        &parts[0],
        vec![(Duration::from_millis(40), parts[1].clone())],
        None,
    );
    let set = read_stable_with(dir.path(), &LoadOptions::default(), |d| writer.wait(d)).unwrap();
    assert_eq!(
        set.rules().len(),
        whole,
        "the whole file, not the first rule alone"
    );
    assert!(
        writer.steps.is_empty(),
        "the writer finished while it was read"
    );
    // The first wait let SETTLE pass (the file was new), past the writer's
    // 40 ms; the reader then waited out SETTLE after the last write (to
    // within the real time this test took between two of its steps).
    assert!(
        writer.waits[0] > Duration::from_millis(40),
        "{:?}",
        writer.waits
    );
    assert!(writer.waits.len() >= 2, "{:?}", writer.waits);
    let quiet = writer.now - writer.written_at;
    assert!(quiet + Duration::from_millis(5) >= SETTLE, "{quiet:?}");
}

/// A copy that keeps the files' old modification times (`cp -p`, a
/// restore) written in three parts: the times say "settled" at once, so
/// only two reads that agree are taken.
#[test]
fn reads_that_differ_are_never_taken_even_when_the_files_look_old() {
    let dir = tempfile::tempdir().unwrap();
    let (parts, whole) =
        reg_f_cut_before(&["us-regf-quiet-after-conversation", "us-regf-medium-opt-out"]);
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut writer = SlowWriter::start(
        dir.path().join("us-reg-f.yaml"),
        &parts[0],
        vec![
            (Duration::from_millis(10), parts[1].clone()),
            (Duration::from_millis(30), parts[2].clone()),
        ],
        Some(an_hour_ago),
    );
    let set = read_stable_with(dir.path(), &LoadOptions::default(), |d| writer.wait(d)).unwrap();
    assert_eq!(set.rules().len(), whole, "the whole file, not a part of it");
    assert!(writer.steps.is_empty());
    // The shortest wait each time: one for each part, one to confirm.
    assert_eq!(writer.waits, [Duration::from_millis(25); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_every_check_sees_one_whole_set() {
    let s = start().await;
    let v1 = check(&s.channel).await.rules_version;
    let original = std::fs::read_to_string(reg_f(&s.rules)).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (channel, done) = (s.channel.clone(), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut client = ComplianceGuardServiceClient::new(channel);
            while !done.load(Ordering::SeqCst) {
                let r = client
                    .check(late_call())
                    .await
                    .expect("no Check fails during a reload")
                    .into_inner();
                seen.push((r.rules_version, r.allowed));
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    for round in 0..4u64 {
        let text = if round % 2 == 0 {
            with_until(&original, "22:00")
        } else {
            original.clone()
        };
        std::fs::write(reg_f(&s.rules), text).unwrap();
        wait_for(&s.stats.applied, round + 1).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut v2 = None;
    let mut checks = 0;
    for t in tasks {
        for (version, allowed) in t.await.unwrap() {
            checks += 1;
            if version == v1 {
                assert!(!allowed, "the old set blocks 21:30");
            } else {
                assert!(allowed, "the new set allows 21:30");
                assert!(
                    v2.get_or_insert(version.clone()) == &version,
                    "only two sets were ever in force"
                );
            }
        }
    }
    assert!(checks > 0);
    assert!(v2.is_some(), "some Check saw the new set");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rules_shows_the_set_in_force_and_every_live_version_is_archived() {
    let s = start().await;
    let mut client = ComplianceGuardServiceClient::new(s.channel.clone());
    let first = client
        .list_rules(compliance_guard::pb::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rules.len(), crate::rules_files::SHIPPED_IDS.len());
    assert_eq!(first.tzdata_version, chrono_tz::IANA_TZDB_VERSION);
    assert!(first.loaded_at.is_some());
    let hours = first
        .rules
        .iter()
        .find(|r| r.id == "us-regf-hours")
        .unwrap();
    assert_eq!(
        (
            hours.citation.as_str(),
            hours.kind.as_str(),
            hours.mode.as_str(),
            hours.binding
        ),
        ("12 CFR 1006.6(b)(1)(i)", "permittedHours", "enforce", true)
    );
    assert_eq!(hours.jurisdictions, ["US"]);
    assert_eq!(hours.binds, ["debtCollector"]);

    let original = std::fs::read_to_string(reg_f(&s.rules)).unwrap();
    std::fs::write(reg_f(&s.rules), with_until(&original, "22:00")).unwrap();
    wait_for(&s.stats.applied, 1).await;
    let second = client
        .list_rules(compliance_guard::pb::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.rules_version, first.rules_version);
    let archive = s.data.path().join("rules-archive");
    for version in [&first.rules_version, &second.rules_version] {
        let kept = std::fs::read_to_string(archive.join(version).join("us-reg-f.yaml")).unwrap();
        let expected = if version == &first.rules_version {
            original.clone()
        } else {
            with_until(&original, "22:00")
        };
        assert_eq!(kept, expected, "{version}");
    }
    drop(client);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_check_is_a_line_of_the_decision_log() {
    let s = start().await;
    let mut client = ComplianceGuardServiceClient::new(s.channel.clone());
    let blocked = client.check(late_call()).await.unwrap().into_inner();
    let mut morning = late_call();
    morning.at = Some(Timestamp {
        seconds: LATE - 11 * 3600,
        nanos: 0,
    });
    morning.contact = Some(compliance_guard::pb::Contact {
        kind: "mobilePhone".into(),
        value: "+15555550100".into(),
        name: String::new(),
    });
    let allowed = client.check(morning).await.unwrap().into_inner();
    assert!(allowed.allowed && !blocked.allowed);
    drop(client);
    let kept = s.stop().await;
    let data = kept.path().to_owned();

    // Stopping flushed the log.
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(data.join("decisions")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!(first["caller"], "anonymous");
    assert_eq!(first["request"]["personId"], "BO-RELD-0001");
    assert_eq!(
        first["request"]["jurisdictions"],
        serde_json::json!(["US-NJ"])
    );
    assert_eq!(
        first["request"]["timeZones"],
        serde_json::json!(["America/New_York"])
    );
    assert_eq!(first["answer"]["allowed"], false);
    assert_eq!(first["answer"]["complianceGuardRuleId"], "us-regf-hours");
    assert_eq!(
        first["answer"]["nextAllowedAt"],
        "2025-12-02T13:00:00+00:00"
    );
    assert_eq!(first["rulesVersion"], blocked.rules_version.as_str());
    let second = &lines[1];
    assert_eq!(second["answer"]["allowed"], true);
    assert_eq!(second["request"]["contact"]["kind"], "mobilePhone");
    assert_eq!(second["answer"]["validUntil"], "2025-12-02T02:00:00+00:00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_shows_what_a_stricter_and_a_looser_set_would_have_changed() {
    let s = start().await;
    let mut client = ComplianceGuardServiceClient::new(s.channel.clone());
    // 20:30 and 21:30 in New York: allowed and blocked under 08:00–21:00.
    let mut early = late_call();
    early.at = Some(Timestamp {
        seconds: LATE - 3600,
        nanos: 0,
    });
    assert!(client.check(early).await.unwrap().into_inner().allowed);
    assert!(
        !client
            .check(late_call())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    drop(client);
    let original = std::fs::read_to_string(reg_f(&s.rules)).unwrap();
    let kept = s.stop().await;
    let data = kept.path().to_owned();

    let try_with = |until: &str| {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in shipped() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(reg_f(dir.path()), with_until(&original, until)).unwrap();
        let report = compliance_guard::whatif::what_if(
            dir.path(),
            &data,
            &LoadOptions::default(),
            None,
            None,
        )
        .unwrap();
        (dir, report)
    };
    let (_stricter_dir, stricter) = try_with("20:00");
    assert_eq!(stricter.decisions, 2);
    assert_eq!(stricter.before.get("us-regf-hours"), Some(&1));
    assert_eq!(stricter.after.get("us-regf-hours"), Some(&2));
    assert_eq!(stricter.newly_blocked.len(), 1);
    assert_eq!(
        stricter.newly_blocked[0].now_rule_id.as_deref(),
        Some("us-regf-hours")
    );
    assert!(stricter.newly_allowed.is_empty());
    let (_looser_dir, looser) = try_with("22:00");
    assert_eq!(looser.after.get("us-regf-hours"), None);
    assert_eq!(looser.newly_allowed.len(), 1);
    assert_eq!(
        looser.newly_allowed[0].was_rule_id.as_deref(),
        Some("us-regf-hours")
    );
    assert!(looser.newly_blocked.is_empty());

    // Replayed as a creditor's deployment, Regulation F binds neither set:
    // the roles reach the archived set as well as the new one.
    let (stricter_dir, _) = try_with("20:00");
    let creditor = LoadOptions {
        roles: Some(vec![compliance_guard::rules::Role::Creditor]),
        ..LoadOptions::default()
    };
    let r = compliance_guard::whatif::what_if(stricter_dir.path(), &data, &creditor, None, None)
        .unwrap();
    assert_eq!(r.decisions, 2);
    assert_eq!(r.before.get("us-regf-hours"), None);
    assert_eq!(r.after.get("us-regf-hours"), None);
    assert!(r.newly_blocked.is_empty() && r.newly_allowed.is_empty());
}
