//! The decision log: every answered Check as one JSON line, so that when a
//! regulator asks why a message was sent, the lender can show the request,
//! the answer, the rules version and the interactions that were counted.
//!
//! - Lines are handed to a writer thread through a bounded queue: a slow
//!   disk never slows a Check. If the queue is full (the disk has fallen
//!   far behind), the line is dropped and counted, never waited for.
//! - The writer flushes at least every second and at shutdown; a crash can
//!   lose the lines of the last second (and whatever was queued).
//! - Files are `DATA_DIR/decisions/decisions-YYYY-MM-DD-NNN.jsonl`, a new
//!   one each UTC day and whenever one passes the size limit.
//! - Old files are kept for the retention period (3 years by default;
//!   12 CFR 1006.100 asks for records of collection activity to be kept
//!   that long), then deleted; 0 keeps them forever.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::guard::{Caller, CheckInput, CheckOutcome};

/// Lines waiting for the writer, at most.
pub const QUEUE: usize = 100_000;

/// How the decision log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The directory of the files (`DATA_DIR/decisions`).
    pub dir: PathBuf,
    /// Start a new file when one passes this many bytes.
    pub max_file_bytes: u64,
    /// Delete files older than this many days; 0 keeps them forever.
    pub retention_days: u32,
}

impl LogConfig {
    /// The defaults under a data directory: 256 MiB files, kept 3 years.
    pub fn under(data_dir: &Path) -> LogConfig {
        LogConfig {
            dir: data_dir.join("decisions"),
            max_file_bytes: 256 << 20,
            retention_days: 1095,
        }
    }
}

/// Counters of the log.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Lines written.
    pub written: AtomicU64,
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The decision log: a queue and its writer thread.
#[derive(Debug)]
pub struct DecisionLog {
    tx: Mutex<Option<SyncSender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<LogStats>,
}

fn check_json(
    input: &CheckInput,
    caller: &Caller,
    outcome: &CheckOutcome,
    decided_at: DateTime<Utc>,
    logged_at: DateTime<Utc>,
) -> Value {
    let d = &outcome.decision;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    json!({
        "decidedAt": decided_at.to_rfc3339(),
        "loggedAt": logged_at.to_rfc3339(),
        "caller": caller.name,
        "request": {
            "personId": input.person_id,
            "channel": input.channel,
            "direction": input.direction,
            "theme": input.theme,
            "subject": input.subject,
            "loanIds": input.loan_ids,
            "isTransactional": input.is_transactional,
            "contact": input.contact,
            "previousInteractionId": input.previous_interaction_id,
            "at": time(input.at),
            "jurisdictions": input.jurisdictions,
            "timeZones": input.time_zones,
            "reserve": input.reserve,
            "requestId": input.request_id,
            "balance": input.balance,
            "requiredByLaw": input.required_by_law,
            "consentRequest": input.consent_request,
        },
        "answer": {
            "allowed": d.allowed,
            "at": d.at.to_rfc3339(),
            "complianceGuardRuleId": d.rule_id,
            "nextAllowedAt": time(d.next_allowed_at),
            "validUntil": time(d.valid_until),
            "interactionId": outcome.interaction_id,
            "replayed": outcome.replayed,
            "appliedRuleIds": d.applied_rule_ids,
            "violations": d.violations.iter().map(|v| json!({
                "ruleId": v.rule_id,
                "shadow": v.shadow,
                "count": v.count,
                "limit": v.limit,
                "windowDays": v.window_days,
                "windowStart": v.window_start.map(|x| x.to_string()),
                "windowEnd": v.window_end.map(|x| x.to_string()),
                "timeZone": v.zone.name(),
                "debt": v.debt,
                "countedInteractionIds": v.counted_interaction_ids,
                "nextAllowedAt": time(v.next_allowed_at),
                "restrictionId": v.restriction_id,
            })).collect::<Vec<_>>(),
        },
        "rulesVersion": d.rules_version,
    })
}

struct Writer {
    config: LogConfig,
    file: Option<(NaiveDate, u32, BufWriter<File>, u64)>,
}

impl Writer {
    fn path(&self, day: NaiveDate, n: u32) -> PathBuf {
        self.config
            .dir
            .join(format!("decisions-{day}-{n:03}.jsonl"))
    }

    fn write(&mut self, line: &str, now: DateTime<Utc>) -> std::io::Result<()> {
        let day = now.date_naive();
        let rotate = match &self.file {
            None => true,
            Some((d, _, _, size)) => *d != day || *size >= self.config.max_file_bytes,
        };
        if rotate {
            let mut n = match &self.file {
                Some((d, n, _, _)) if *d == day => n + 1,
                _ => 0,
            };
            if let Some((_, _, mut w, _)) = self.file.take() {
                w.flush()?;
            }
            std::fs::create_dir_all(&self.config.dir)?;
            // Continue after the files a previous run left for today.
            while self.path(day, n).exists()
                && std::fs::metadata(self.path(day, n))?.len() >= self.config.max_file_bytes
            {
                n += 1;
            }
            let path = self.path(day, n);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.metadata()?.len();
            self.file = Some((day, n, BufWriter::new(file), size));
            self.expire(day);
        }
        if let Some((_, _, w, size)) = &mut self.file {
            // The line and its end go out together, so a line is never cut
            // between the two.
            let mut whole = Vec::with_capacity(line.len() + 1);
            whole.extend_from_slice(line.as_bytes());
            whole.push(b'\n');
            w.write_all(&whole)?;
            *size += line.len() as u64 + 1;
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some((_, _, w, _)) = &mut self.file
            && let Err(e) = w.flush()
        {
            tracing::error!(error = %e, "the decision log could not be flushed");
        }
    }

    /// Deletes files older than the retention period.
    fn expire(&self, today: NaiveDate) {
        if self.config.retention_days == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(date) = name.strip_prefix("decisions-").and_then(|r| r.get(..10)) else {
                continue;
            };
            let Ok(date) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
                continue;
            };
            if (today - date).num_days() > i64::from(self.config.retention_days) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl DecisionLog {
    /// Starts the writer thread.
    pub fn start(config: LogConfig) -> std::io::Result<DecisionLog> {
        std::fs::create_dir_all(&config.dir)?;
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let stats = Arc::new(LogStats::default());
        let writer_stats = Arc::clone(&stats);
        let writer = std::thread::Builder::new().name("decision-log".into()).spawn(move || {
            let mut w = Writer { config, file: None };
            // Flushed at least once a second, whether lines keep coming or not.
            let mut last_flush = std::time::Instant::now();
            let mut dirty = false;
            loop {
                let wait = Duration::from_secs(1).saturating_sub(last_flush.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(line) => {
                        match w.write(&line, Utc::now()) {
                            Ok(()) => writer_stats.written.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tracing::error!(error = %e, "a decision log line could not be written");
                                writer_stats.dropped.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        dirty = true;
                        if last_flush.elapsed() >= Duration::from_secs(1) {
                            w.flush();
                            last_flush = std::time::Instant::now();
                            dirty = false;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if dirty {
                            w.flush();
                            dirty = false;
                        }
                        last_flush = std::time::Instant::now();
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        w.flush();
                        return;
                    }
                }
            }
        })?;
        Ok(DecisionLog {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            stats,
        })
    }

    /// Queues one answered Check, decided at `decided_at` (the moment the
    /// guard took it, which orders decisions against the history); never
    /// waits.
    pub fn record(
        &self,
        input: &CheckInput,
        caller: &Caller,
        outcome: &CheckOutcome,
        decided_at: DateTime<Utc>,
    ) {
        let line = check_json(input, caller, outcome, decided_at, Utc::now()).to_string();
        let Ok(tx) = self.tx.lock() else { return };
        let Some(tx) = tx.as_ref() else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("compliance_guard_decision_log_dropped_total").increment(1);
        }
    }

    /// The log's counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Writes out everything queued and stops the writer.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut w) = self.writer.lock()
            && let Some(w) = w.take()
        {
            let _ = w.join();
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.close();
    }
}
