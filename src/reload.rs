//! Live reload of the rules: the server watches `--rules` (and reloads on
//! SIGHUP), and swaps in a new rule set only when it passes every check.
//!
//! - A change is picked up after the directory has been quiet for
//!   [`QUIET`], so that an editor's burst of writes is one reload.
//! - The directory is read until two reads in a row agree, so that a
//!   half-written file is never taken for a shorter valid one.
//! - Editors' temporary, swap and backup files are ignored (names starting
//!   with `.` or `#`, or ending with `~`); a save by rename is a change
//!   like any other.
//! - Replacing the whole directory (a new one renamed over it, a symlink
//!   swapped, a ConfigMap's `..data` swapped) is a change too: the parent
//!   is watched for events that name the directory, and the watch then
//!   moves to the new directory.
//! - A set that fails its check is refused: the last good set stays in
//!   force, every problem is logged with its location, the failure is
//!   counted, and health stays SERVING.
//! - A good set is swapped in whole ([`crate::guard::Guard::set_rules`]):
//!   every Check sees the old set or the new one, never a mix. What changed
//!   is logged as rule ids added, removed, tightened, loosened or changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::guard::Guard;
use crate::rules::{LoadOptions, Rule, RuleErrors, RuleKind, RuleSet, read_sources};

/// How long the directory must be quiet before a reload.
pub const QUIET: Duration = Duration::from_millis(200);
/// How many times the directory is read while waiting for two reads to
/// agree.
pub const MAX_READS: usize = 20;

/// Counters of the reloader.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Rule sets put in force by a reload.
    pub applied: AtomicU64,
    /// Reloads refused because the set failed its check.
    pub refused: AtomicU64,
    /// Set once the reloader has set its watches (or found that it cannot):
    /// a change made after it is seen. A test waits for it before its
    /// first edit.
    pub watching: AtomicBool,
}

/// How long the files must have been left alone before they are read as
/// final.
pub const SETTLE: Duration = Duration::from_millis(150);

/// How long ago the newest rule file was modified (zero if unknown).
fn newest_age(sources: &[(String, String)]) -> Duration {
    sources
        .iter()
        .filter_map(|(path, _)| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .max()
        // A time in the future (a file copied from a clock ahead of ours)
        // cannot tell us anything: count it as settled.
        .map_or(Duration::ZERO, |t| t.elapsed().unwrap_or(SETTLE))
}

/// Reads the rules directory until two reads in a row agree and no file
/// was modified for [`SETTLE`], then compiles it. A writer still at work
/// shows as two reads that differ or as a file modified a moment ago, so a
/// half-written file is never taken for a shorter valid one.
pub fn read_stable(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, RuleErrors> {
    read_stable_with(dir, opts, std::thread::sleep)
}

/// [`read_stable`], with the wait between two reads given: `wait(d)` lets
/// `d` pass (the server's sleeps). A test gives its own, to write between
/// two reads, at a moment it chooses, and to let time pass without
/// sleeping.
pub fn read_stable_with(
    dir: &Path,
    opts: &LoadOptions,
    mut wait: impl FnMut(Duration),
) -> Result<RuleSet, RuleErrors> {
    let mut last = read_sources(dir)?;
    for _ in 0..MAX_READS {
        let age = newest_age(&last);
        wait(SETTLE.saturating_sub(age).max(Duration::from_millis(25)));
        let again = read_sources(dir)?;
        if again == last && newest_age(&again) >= SETTLE {
            return RuleSet::compile(&again, opts);
        }
        last = again;
    }
    Err(RuleErrors(vec![crate::rules::RuleError {
        file: dir.display().to_string(),
        line: 0,
        column: 0,
        message: format!("the rule files kept changing over {MAX_READS} reads; not reloaded"),
    }]))
}

/// How two rule sets differ, by rule id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Rules only in the new set.
    pub added: Vec<String>,
    /// Rules only in the old set.
    pub removed: Vec<String>,
    /// Caps with a lower limit or a longer window, quiet periods that grew,
    /// permitted hours that shrank.
    pub tightened: Vec<String>,
    /// The opposite.
    pub loosened: Vec<String>,
    /// Any other change (filters, citation, mode, ...).
    pub changed: Vec<String>,
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.description == b.description
        && a.citation == b.citation
        && a.source == b.source
        && a.binds == b.binds
        && a.jurisdictions == b.jurisdictions
        && a.applies == b.applies
        && a.kind == b.kind
        && a.binding == b.binding
        && a.mode == b.mode
}

/// Compares two rule sets.
pub fn diff(old: &RuleSet, new: &RuleSet) -> Diff {
    let mut d = Diff::default();
    for n in new.rules() {
        let Some(o) = old.get(&n.id) else {
            d.added.push(n.id.clone());
            continue;
        };
        if same_rule(o, n) {
            continue;
        }
        let direction = match (&o.kind, &n.kind) {
            (
                RuleKind::FrequencyCap {
                    limit: ol,
                    window_days: ow,
                    per: op,
                    counting: oc,
                    exempt_with_prior_consent: oe,
                },
                RuleKind::FrequencyCap {
                    limit: nl,
                    window_days: nw,
                    per: np,
                    counting: nc,
                    exempt_with_prior_consent: ne,
                },
            ) if op == np && oc == nc && oe == ne && o.applies == n.applies => {
                (nl < ol || nw > ow, nl > ol || nw < ow)
            }
            (
                RuleKind::CoolDown {
                    days: od,
                    event_day_is_day_one: o1,
                    exempt_with_prior_consent: oe,
                    ..
                },
                RuleKind::CoolDown {
                    days: nd,
                    event_day_is_day_one: n1,
                    exempt_with_prior_consent: ne,
                    ..
                },
            ) if oe == ne && o.applies == n.applies => {
                let (or, nr) = (
                    od.saturating_add(u32::from(!o1)),
                    nd.saturating_add(u32::from(!n1)),
                );
                (nr > or, nr < or)
            }
            (
                RuleKind::PermittedHours {
                    from: of,
                    until: ou,
                    unless_consent: oc,
                },
                RuleKind::PermittedHours {
                    from: nf,
                    until: nu,
                    unless_consent: nc,
                },
            ) if o.applies == n.applies => {
                // Nothing lifting the hours is the strictest; a written
                // consent lifting them comes next; any consent, last.
                let lift = |c: &Option<crate::rules::UnlessConsent>| match c {
                    None => 0,
                    Some(c) if c.written => 1,
                    Some(_) => 2,
                };
                let (ol, nl) = (lift(oc), lift(nc));
                let tighter = nf >= of && nu <= ou && nl <= ol;
                let looser = nf <= of && nu >= ou && nl >= ol;
                (tighter && !looser, looser && !tighter)
            }
            (
                RuleKind::PeriodCap {
                    limit: ol,
                    window: ow,
                    per: op,
                    counting: oc,
                    since: os,
                },
                RuleKind::PeriodCap {
                    limit: nl,
                    window: nw,
                    per: np,
                    counting: nc,
                    since: ns,
                },
            ) if ow == nw && op == np && oc == nc && os == ns && o.applies == n.applies => {
                (nl < ol, nl > ol)
            }
            _ => (false, false),
        };
        match direction {
            (true, false) => d.tightened.push(n.id.clone()),
            (false, true) => d.loosened.push(n.id.clone()),
            _ => d.changed.push(n.id.clone()),
        }
    }
    for o in old.rules() {
        if new.get(&o.id).is_none() {
            d.removed.push(o.id.clone());
        }
    }
    d
}

/// Keeps the text of a rule set that went live in
/// `DATA_DIR/rules-archive/VERSION/`, so that any past decision (which
/// names its rules_version) can be traced to the exact rules. A version
/// already archived is left as it is. Every file and directory entry is
/// fsynced before the version is named, as the journal's records are.
pub fn archive(data_dir: &Path, rules: &RuleSet) -> std::io::Result<PathBuf> {
    let root = data_dir.join("rules-archive");
    let dir = root.join(rules.version());
    if dir.exists() {
        return Ok(dir);
    }
    let tmp = root.join(format!(".{}.tmp", rules.version()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for (path, text) in rules.sources() {
        let name = Path::new(path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        let mut file = std::fs::File::create(tmp.join(name))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    // The files, then their directory, then the rename in the archive's
    // root reach the disk, so that a crash never leaves a version that
    // decisions name but whose files are empty or missing.
    crate::journal::fsync_dir(&tmp)?;
    std::fs::rename(&tmp, &dir)?;
    crate::journal::fsync_dir(&root)?;
    Ok(dir)
}

/// One reload: read, check, and either swap in or refuse. Returns whether
/// a new set was put in force. A new set's text is archived in `data_dir`.
pub fn reload_once(
    dir: &Path,
    opts: &LoadOptions,
    guard: &Guard,
    stats: &ReloadStats,
    data_dir: &Path,
) -> bool {
    match read_stable(dir, opts) {
        Ok(new) => {
            let old = guard.rules();
            if old.as_ref().is_some_and(|o| o.version() == new.version()) {
                return false;
            }
            if let Some(old) = &old {
                let d = diff(old, &new);
                tracing::info!(
                    from = old.version(),
                    to = new.version(),
                    added = ?d.added,
                    removed = ?d.removed,
                    tightened = ?d.tightened,
                    loosened = ?d.loosened,
                    changed = ?d.changed,
                    "rules reloaded"
                );
            }
            if let Err(e) = archive(data_dir, &new) {
                tracing::warn!(error = %e, version = new.version(), "the rules version could not be archived");
            }
            guard.set_rules(Arc::new(new));
            stats.applied.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("compliance_guard_rules_reloads_total", "outcome" => "applied")
                .increment(1);
            true
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::warn!(problem = %e, "rules reload refused; the last good set stays in force");
            }
            stats.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("compliance_guard_rules_reloads_total", "outcome" => "refused")
                .increment(1);
            false
        }
    }
}

/// Watches `dir` itself for changes to its files, and its parent for the
/// directory being replaced: a deploy that renames a new directory over the
/// old one, or swaps a symlink, leaves a watch on the old directory only.
/// Every event is a message on `tx`; a replacement also sets `replaced`
/// (a flag, so that it survives a full channel). `None` (logged) when the
/// platform cannot watch; SIGHUP still reloads. `dir` is absolute, so that
/// the paths events carry can be compared with it.
fn start_watching(
    dir: &Path,
    tx: mpsc::Sender<()>,
    replaced: Arc<AtomicBool>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let parent = dir.parent().map(ToOwned::to_owned);
    let watched = dir.to_owned();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // The parent's events are about the directory only when they name
        // it; the directory's own events name its files (or itself, when
        // it is moved or deleted).
        let is_dir = event.paths.iter().any(|p| p.as_path() == watched.as_path());
        let inside = event
            .paths
            .iter()
            .any(|p| p.parent() == Some(watched.as_path()));
        if is_dir {
            replaced.store(true, Ordering::SeqCst);
        }
        if is_dir || inside || event.paths.is_empty() {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| {
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the rules directory; reload on SIGHUP only");
            return None;
        }
    };
    if let Some(parent) = parent
        && let Err(e) = watcher.watch(&parent, notify::RecursiveMode::NonRecursive)
    {
        tracing::warn!(error = %e, dir = %parent.display(), "cannot watch the rules directory's parent; replacing the whole directory needs a SIGHUP");
    }
    Some(watcher)
}

/// Watches `dir` (and SIGHUP) and reloads until `stop` fires. Runs the
/// reads and the compile off the async workers.
pub async fn watch(
    dir: PathBuf,
    data_dir: PathBuf,
    opts: LoadOptions,
    guard: Arc<Guard>,
    stats: Arc<ReloadStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // A message is one event (or a SIGHUP). `replaced` says the directory
    // itself was replaced (renamed over, or a symlink to it swapped), so
    // the watch must be set again on what the path names now.
    let (tx, mut rx) = mpsc::channel::<()>(64);
    let replaced = Arc::new(AtomicBool::new(false));
    let watched = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    let mut watcher = start_watching(&watched, tx.clone(), Arc::clone(&replaced));
    stats.watching.store(true, Ordering::SeqCst);
    #[cfg(unix)]
    {
        let hup_tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the rules");
                if hup_tx.send(()).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    loop {
        tokio::select! {
            got = rx.recv() => {
                if got.is_none() {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
        // Wait for the directory to be quiet: drain events until none
        // arrives for QUIET.
        while let Ok(Some(())) = tokio::time::timeout(QUIET, rx.recv()).await {}
        if replaced.swap(false, Ordering::SeqCst)
            && let Some(w) = watcher.as_mut()
        {
            use notify::Watcher;
            let _ = w.unwatch(&watched);
            match w.watch(&watched, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "the rules directory was replaced; watching the new one")
                }
                Err(e) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the replaced rules directory; reload on SIGHUP, or when it is replaced again")
                }
            }
        }
        let (dir, data_dir, opts, guard, stats) = (
            dir.clone(),
            data_dir.clone(),
            opts.clone(),
            Arc::clone(&guard),
            Arc::clone(&stats),
        );
        let _ = tokio::task::spawn_blocking(move || {
            reload_once(&dir, &opts, &guard, &stats, &data_dir)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(kind: &str) -> RuleSet {
        let text = format!(
            "rules:\n  - id: r\n    description: d\n    citation: c\n    jurisdictions: [US]\n{kind}"
        );
        RuleSet::compile(&[("t.yaml".to_owned(), text)], &LoadOptions::default()).unwrap()
    }

    fn direction(old: &str, new: &str) -> &'static str {
        let d = diff(&set(old), &set(new));
        match (d.tightened.len(), d.loosened.len(), d.changed.len()) {
            (1, 0, 0) => "tightened",
            (0, 1, 0) => "loosened",
            (0, 0, 1) => "changed",
            _ => "same",
        }
    }

    /// Nothing lifting the hours is stricter than a written consent
    /// lifting them, which is stricter than any consent.
    #[test]
    fn a_consent_that_lifts_the_hours_loosens_them() {
        let hours = |lift: &str| {
            format!("    permittedHours:\n      from: \"08:00\"\n      until: \"21:00\"\n{lift}")
        };
        let none = hours("");
        let written = hours("      unlessConsent: {written: true}\n");
        let any = hours("      unlessConsent: {written: false}\n");
        assert_eq!(direction(&none, &written), "loosened");
        assert_eq!(direction(&written, &any), "loosened");
        assert_eq!(direction(&any, &none), "tightened");
        assert_eq!(direction(&written, &written), "same");
        let narrower = written.replace("08:00", "09:00");
        assert_eq!(direction(&any, &narrower), "tightened");
        let wider_but_stricter = none.replace("08:00", "07:00");
        assert_eq!(direction(&written, &wider_but_stricter), "changed");
    }

    /// A cap since a receipt is tighter with a lower limit; another window
    /// or restriction is a change.
    #[test]
    fn a_cap_since_a_receipt_tightens_with_its_limit() {
        let cap = |limit: u32, window: &str| {
            format!(
                "    frequencyCap:\n      limit: {limit}\n      window: {window}\n      per: debt\n      since: {{restriction: ceaseCommunication}}\n"
            )
        };
        assert_eq!(direction(&cap(4, "all"), &cap(3, "all")), "tightened");
        assert_eq!(direction(&cap(3, "all"), &cap(4, "all")), "loosened");
        assert_eq!(
            direction(&cap(4, "all"), &cap(4, "calendarMonth")),
            "changed"
        );
    }
}
