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
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::request::{Caller, CheckInput, CheckOutcome};

/// How often the writer looks for new lines.
const POLL: Duration = Duration::from_millis(5);

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

/// One logged Check as its JSON line, borrowed from the answer: serialized
/// straight into a string, without building a `serde_json::Value` tree, so
/// that the log costs the request path a few microseconds.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    decided_at: String,
    logged_at: String,
    caller: &'a str,
    request: Request<'a>,
    answer: Answer<'a>,
    rules_version: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    person_id: &'a str,
    channel: &'a str,
    direction: &'a str,
    theme: &'a str,
    subject: &'a str,
    loan_ids: &'a [String],
    is_transactional: Option<bool>,
    contact: &'a Option<crate::model::ContactInput>,
    previous_interaction_id: &'a str,
    at: Option<String>,
    jurisdictions: &'a [String],
    time_zones: &'a [String],
    reserve: bool,
    request_id: &'a str,
    balance: &'a str,
    required_by_law: bool,
    consent_request: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    postal_code: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    allowed: bool,
    at: String,
    compliance_guard_rule_id: &'a Option<String>,
    next_allowed_at: Option<String>,
    valid_until: Option<String>,
    interaction_id: &'a Option<String>,
    replayed: bool,
    applied_rule_ids: &'a [String],
    violations: Vec<LoggedViolation<'a>>,
    /// The zones weighed and why, the sentence the API answers with.
    zones_weighed: String,
    /// The jurisdictions whose rules bound and why; omitted when the
    /// Check named none.
    #[serde(skip_serializing_if = "String::is_empty")]
    jurisdictions_weighed: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedViolation<'a> {
    rule_id: &'a str,
    shadow: bool,
    count: u32,
    limit: u32,
    window_days: u32,
    window_start: Option<String>,
    window_end: Option<String>,
    time_zone: &'a str,
    debt: &'a Option<String>,
    counted_interaction_ids: &'a [String],
    next_allowed_at: Option<String>,
    restriction_id: &'a Option<String>,
}

fn check_json(
    input: &CheckInput,
    caller: &Caller,
    outcome: &CheckOutcome,
    decided_at: DateTime<Utc>,
    logged_at: DateTime<Utc>,
) -> String {
    let d = &outcome.decision;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    let line = Line {
        decided_at: decided_at.to_rfc3339(),
        logged_at: logged_at.to_rfc3339(),
        caller: &caller.name,
        request: Request {
            person_id: &input.person_id,
            channel: &input.channel,
            direction: &input.direction,
            theme: &input.theme,
            subject: &input.subject,
            loan_ids: &input.loan_ids,
            is_transactional: input.is_transactional,
            contact: &input.contact,
            previous_interaction_id: &input.previous_interaction_id,
            at: time(input.at),
            jurisdictions: &input.jurisdictions,
            time_zones: &input.time_zones,
            reserve: input.reserve,
            request_id: &input.request_id,
            balance: &input.balance,
            required_by_law: input.required_by_law,
            consent_request: input.consent_request,
            postal_code: &input.postal_code,
        },
        answer: Answer {
            allowed: d.allowed,
            at: d.at.to_rfc3339(),
            compliance_guard_rule_id: &d.rule_id,
            next_allowed_at: time(d.next_allowed_at),
            valid_until: time(d.valid_until),
            interaction_id: &outcome.interaction_id,
            replayed: outcome.repeated,
            applied_rule_ids: &d.applied_rule_ids,
            violations: d
                .violations
                .iter()
                .map(|v| LoggedViolation {
                    rule_id: &v.rule_id,
                    shadow: v.shadow,
                    count: v.count,
                    limit: v.limit,
                    window_days: v.window_days,
                    window_start: v.window_start.map(|x| x.to_string()),
                    window_end: v.window_end.map(|x| x.to_string()),
                    time_zone: v.zone.name(),
                    debt: &v.debt,
                    counted_interaction_ids: &v.counted_interaction_ids,
                    next_allowed_at: time(v.next_allowed_at),
                    restriction_id: &v.restriction_id,
                })
                .collect(),
            zones_weighed: crate::location::explain(&d.zones_weighed),
            jurisdictions_weighed: crate::location::explain(&d.places_weighed),
        },
        rules_version: &d.rules_version,
    };
    // These structures hold only strings, numbers, booleans and options of
    // them, which always serialize; were one ever to fail, the line is
    // counted as dropped rather than written half.
    serde_json::to_string(&line).unwrap_or_default()
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
            // The writer polls every few milliseconds instead of blocking on
            // the queue: a blocked receiver must be woken for every line,
            // and that wake-up cost the request path more than the line.
            // Flushed at least once a second, whether lines keep coming or not.
            let mut last_flush = std::time::Instant::now();
            let mut dirty = false;
            loop {
                let mut closed = false;
                loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            match w.write(&line, Utc::now()) {
                                Ok(()) => writer_stats.written.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    tracing::error!(error = %e, "a decision log line could not be written");
                                    writer_stats.dropped.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                            dirty = true;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    w.flush();
                    return;
                }
                if dirty && last_flush.elapsed() >= Duration::from_secs(1) {
                    w.flush();
                    dirty = false;
                }
                if !dirty {
                    last_flush = std::time::Instant::now();
                }
                std::thread::sleep(POLL);
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
        let line = check_json(input, caller, outcome, decided_at, Utc::now());
        if line.is_empty() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("compliance_guard_decision_log_dropped_total").increment(1);
            return;
        }
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
