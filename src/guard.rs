//! The guard: the rule set and the index together, with the operations the
//! service offers, each one atomic.
//!
//! This is where a Check with `reserve` becomes check-and-record in one
//! step: the decision and the recording happen under one write lock, so 50
//! concurrent reserving Checks under a 7-call cap yield exactly 7 allows.
//! Nothing here knows about gRPC; the service translates its requests into
//! these calls and [`GuardError`] into statuses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::engine::{self, Decision, Proposal};
use crate::index::{Index, IndexConfig, IndexError, ListPage, ListQuery};
use crate::journal::{self as jn, Commit, Durability, Journal, JournalError, Layout, Replayed};
use crate::model::{
    AnyId, Channel, ContactInput, ContactKind, Direction, Interaction, InteractionInput, Media,
    MediaKind, Status, Subject, Theme, ValidationError, describe_allowed,
};
use crate::pb::journal::{self, Record, record::Op};
use crate::restrictions::{
    MAX_NOTE_CHARS, MAX_PER_PERSON, Restriction, RestrictionErrors, RestrictionInput,
};
use crate::rules::RuleSet;

/// The earliest `at` a Check may name (1970-01-01), in Unix seconds.
pub const MIN_AT: i64 = 0;
/// The latest `at` a Check may name (2999-12-31), in Unix seconds.
pub const MAX_AT: i64 = 32_503_593_600;
/// How long a reserving Check's answer is kept for retries with the same
/// `request_id`.
pub const REQUEST_ID_TTL_HOURS: i64 = 24;
/// Most stored answers; the oldest go first beyond it.
pub const MAX_STORED_ANSWERS: usize = 1_000_000;

/// Who is calling, from the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name; it becomes createdBy and updatedBy.
    pub name: String,
    /// Whether the caller may read sensitive interactions.
    pub sensitive: bool,
    /// Whether the caller is an agent (upstream: a user of type Agent),
    /// who may join conversations.
    pub agent: bool,
    /// The company the key belongs to (`company` in the keys file); `None`
    /// is no company. What it creates belongs to this company.
    pub company: Option<String>,
}

/// One field of a request that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field, by its request name.
    pub field: String,
    /// What is wrong and what is allowed, naming the field, so that it
    /// reads alone.
    pub message: String,
}

/// Why an operation failed. Nothing is stored when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The request is malformed; each problem names its field.
    #[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    /// No such person or interaction (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),
    /// The id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's key lacks a right the operation needs (joining a
    /// conversation needs the agent right).
    #[error("{0}")]
    PermissionDenied(String),
    /// The guard is not ready to decide (no rule set loaded yet).
    #[error("{0}")]
    Unavailable(String),
    /// The caller's deadline passed before the answer was committed.
    #[error("the deadline passed before the reservation was committed; nothing was recorded")]
    DeadlineExceeded,
    /// A broken invariant; the request was not carried out.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GuardError {
    fn field(field: &str, message: impl Into<String>) -> GuardError {
        GuardError::Invalid(vec![FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

impl From<IndexError> for GuardError {
    fn from(e: IndexError) -> Self {
        match &e {
            IndexError::Invalid(v) => GuardError::field(v.field(), v.to_string()),
            IndexError::Problems(all) => GuardError::Invalid(
                all.iter()
                    .map(|v| FieldProblem {
                        field: v.field().to_owned(),
                        message: v.to_string(),
                    })
                    .collect(),
            ),
            IndexError::UnknownPerson(_)
            | IndexError::UnknownInteraction { .. }
            | IndexError::UnknownRestriction { .. } => GuardError::NotFound(e.to_string()),
            IndexError::Duplicate { .. } => GuardError::AlreadyExists(e.to_string()),
            IndexError::PersonChange { .. } => GuardError::field("personId", e.to_string()),
            IndexError::BadDebt { .. } => GuardError::field("loanIds", e.to_string()),
            IndexError::WouldJoin { .. }
            | IndexError::LoanInTwoDebts { .. }
            | IndexError::NotExternal(_)
            | IndexError::TooManyRestrictions(_)
            | IndexError::MediaRefused { .. }
            | IndexError::Deleted(_) => GuardError::FailedPrecondition(e.to_string()),
        }
    }
}

/// A Check as asked: the send's facts as strings, exactly as they travel.
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(
    missing_docs,
    reason = "each field is the CheckRequest field of the same name"
)]
pub struct CheckInput {
    pub person_id: String,
    pub channel: String,
    pub direction: String,
    pub theme: String,
    pub subject: String,
    pub loan_ids: Vec<String>,
    pub is_transactional: Option<bool>,
    pub contact: Option<ContactInput>,
    pub previous_interaction_id: String,
    pub at: Option<DateTime<Utc>>,
    pub jurisdictions: Vec<String>,
    pub time_zones: Vec<String>,
    pub reserve: bool,
    pub request_id: String,
    pub balance: String,
    pub required_by_law: bool,
    pub consent_request: bool,
}

/// A Check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The decision.
    pub decision: Decision,
    /// The reservation recorded, when reserving and allowed.
    pub interaction_id: Option<String>,
    /// True when this is the stored answer to an earlier request with the
    /// same request id.
    pub replayed: bool,
}

/// An open reservation: recorded by a reserving Check and never updated
/// since, so it holds its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The interaction recorded.
    pub interaction_id: String,
    /// Our id of the person.
    pub person_id: String,
    /// The request id of the Check, if any.
    pub request_id: Option<String>,
    /// When it was recorded.
    pub reserved_at: DateTime<Utc>,
    /// Who reserved it.
    pub reserved_by: String,
    /// Its channel.
    pub channel: Channel,
    /// The loans it is about.
    pub loan_ids: Vec<String>,
}

#[derive(Debug, Clone)]
struct StoredAnswer {
    person_id: String,
    stored_at: DateTime<Utc>,
    outcome: CheckOutcome,
}

/// The state behind one lock: the index, the answers kept for request-id
/// retries, and the open reservations.
#[derive(Debug, Default)]
struct Ledger {
    index: Index,
    answers: HashMap<String, StoredAnswer>,
    answer_order: VecDeque<(DateTime<Utc>, String)>,
    reservations: BTreeMap<String, Reservation>,
    /// The conversations of text and chat interactions that have been
    /// joined or closed, by our interaction id.
    convos: HashMap<String, crate::pb::InteractionConvo>,
}

impl Ledger {
    fn expire_answers(&mut self, now: DateTime<Utc>) {
        let cutoff = now - Duration::hours(REQUEST_ID_TTL_HOURS);
        while let Some((t, id)) = self.answer_order.front() {
            if *t >= cutoff && self.answer_order.len() <= MAX_STORED_ANSWERS {
                break;
            }
            self.answers.remove(id);
            self.answer_order.pop_front();
        }
    }
}

/// The guard: rules and history, shared by every request.
#[derive(Debug)]
pub struct Guard {
    rules: ArcSwapOption<RuleSet>,
    ledger: RwLock<Ledger>,
    /// `None`: in memory only (tests, benchmarks, what-if).
    journal: Option<Journal>,
    /// When the rule set in force was put in force.
    rules_loaded_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// Where answered Checks are logged, if anywhere.
    decisions: std::sync::OnceLock<crate::decisions::DecisionLog>,
    /// How many seconds before `now` a reserving Check's `at` may be;
    /// negative: any (see [`Guard::set_reserve_tolerance`]).
    reserve_tolerance: std::sync::atomic::AtomicI64,
}

/// How far before the server's clock a reserving Check's `at` may be by
/// default: room for clock skew between the pipeline's hosts and ours.
pub const DEFAULT_RESERVE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

fn parse_vocab<T>(
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    names: &[&'static str],
) -> Result<Option<T>, FieldProblem> {
    if text.is_empty() {
        return Ok(None);
    }
    parse(text).map(Some).ok_or_else(|| FieldProblem {
        field: field.to_owned(),
        message: format!(
            "`{field}` value `{}` is not allowed; allowed: {}",
            crate::model::echo(text),
            describe_allowed(text, names)
        ),
    })
}

/// Refuses a completed interaction (`status` attempted, succeeded or
/// failed) with a `startedAt` in the future, as given to
/// [`Guard::create`]: [`crate::model::check_completed_start`]. A status or
/// time that does not parse is left for validation to report.
fn completed_start(
    status: Option<&str>,
    started_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), GuardError> {
    let (Some(status), Some(started)) = (
        status.and_then(Status::parse),
        started_at.and_then(|t| crate::model::parse_time("startedAt", t).ok()),
    ) else {
        return Ok(());
    };
    crate::model::check_completed_start(status, started, now)
        .map_err(|e| GuardError::field(e.field(), e.to_string()))
}

/// [`completed_start`] for an update: the status and `startedAt` the
/// record will have, checked when the mask names either (an update of
/// other fields leaves a stored record as it is).
fn updated_start(
    current: &Interaction,
    values: &InteractionInput,
    fields: &[String],
    now: DateTime<Utc>,
) -> Result<(), GuardError> {
    let names: Vec<&str> = fields
        .iter()
        .filter_map(|f| crate::model::field_name(f))
        .collect();
    let status_set = names.contains(&"status");
    let started_set = names.contains(&"startedAt");
    if !status_set && !started_set {
        return Ok(());
    }
    let status = if status_set {
        values.status.clone()
    } else {
        Some(current.status.as_str().to_owned())
    };
    let started = if started_set {
        values.started_at.clone()
    } else {
        Some(
            current
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
    };
    completed_start(status.as_deref(), started.as_deref(), now)
}

/// [`Guard::out_of_range_records`] of an index.
fn out_of_range_records(index: &Index) -> u64 {
    let interactions = index
        .records()
        .filter(|r| r.has_time_out_of_range())
        .count();
    let restrictions = index
        .person_keys()
        .flat_map(|k| index.person_restrictions(k).iter())
        .filter(|r| {
            crate::model::out_of_range(r.received_at)
                || r.ended_at.is_some_and(crate::model::out_of_range)
                || r.ends_at.is_some_and(crate::model::outside_proto_json)
                || crate::model::outside_proto_json(r.recorded_at)
        })
        .count();
    u64::try_from(interactions + restrictions).unwrap_or(u64::MAX)
}

/// A tolerance as the seconds kept in the guard; `None` (any) is -1.
fn tolerance_seconds(tolerance: Option<std::time::Duration>) -> i64 {
    tolerance.map_or(-1, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

impl Guard {
    /// A guard with an empty index and no rule set: it answers no Check
    /// until [`Guard::set_rules`] is called.
    pub fn new(config: IndexConfig) -> Guard {
        Guard {
            rules: ArcSwapOption::empty(),
            ledger: RwLock::new(Ledger {
                index: Index::new(config),
                ..Ledger::default()
            }),
            journal: None,
            rules_loaded_at: std::sync::Mutex::new(None),
            decisions: std::sync::OnceLock::new(),
            reserve_tolerance: std::sync::atomic::AtomicI64::new(tolerance_seconds(Some(
                DEFAULT_RESERVE_TOLERANCE,
            ))),
        }
    }

    /// Opens a data directory: takes its lock (a second server is refused),
    /// replays the snapshot and the journal into memory, compacts them into
    /// a new snapshot when the journal has grown past `compact_after`
    /// records (and half the snapshot), and opens the journal for writing.
    /// `progress` is called every 1,000,000 records.
    pub fn open(
        config: IndexConfig,
        data_dir: &std::path::Path,
        durability: Durability,
        compact_after: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<(Guard, Replayed), JournalError> {
        let lock = jn::lock(data_dir)?;
        let layout = Layout {
            dir: data_dir.to_owned(),
        };
        let mut ledger = Ledger {
            index: Index::new(config),
            ..Ledger::default()
        };
        // About 160 bytes a record on disk: make room up front.
        let (snaps, logs) = layout.generations()?;
        let bytes: u64 = snaps
            .iter()
            .map(|g| layout.snapshot(*g))
            .chain(logs.iter().map(|g| layout.journal(*g)))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        ledger
            .index
            .reserve(usize::try_from(bytes / 160).unwrap_or(0));
        let mut n = 0u64;
        let replayed = jn::replay(&layout, |record| {
            apply(&mut ledger, record)?;
            n += 1;
            if n.is_multiple_of(1_000_000) {
                progress(n);
            }
            Ok(())
        })?;
        let mut generation = replayed.generation;
        let mut cut_to = replayed.cut.as_ref().map(|(_, offset, _)| *offset);
        if let Some((path, offset, reason)) = &replayed.cut {
            tracing::warn!(file = %path.display(), offset, reason, "a record cut short at the end of the journal (a crash mid-write) was dropped");
        }
        let (snaps, logs) = layout.generations()?;
        if replayed.journal_records > compact_after.max(replayed.snapshot_records / 2) {
            let next = generation + 1;
            let written = jn::write_snapshot(&layout, next, snapshot_records(&ledger))?;
            tracing::info!(
                records = written,
                generation = next,
                "compacted the journal into a snapshot"
            );
            for g in snaps
                .iter()
                .chain(logs.iter())
                .copied()
                .filter(|g| *g < next)
            {
                for path in [layout.snapshot(g), layout.journal(g)] {
                    if path.exists() {
                        std::fs::remove_file(&path).map_err(|cause| JournalError::Io {
                            action: "removing",
                            path: path.clone(),
                            cause,
                        })?;
                    }
                }
            }
            generation = next;
            cut_to = None;
        }
        let journal = Journal::open(&layout, lock, generation, cut_to, durability)?;
        let out_of_range = out_of_range_records(&ledger.index);
        if out_of_range > 0 {
            tracing::warn!(
                records = out_of_range,
                "records with a time outside what the API now accepts (an event before 1900, a time past 9999 or before year 1) were loaded as stored and count as usual; proto3 JSON clients cannot read them"
            );
        } else {
            tracing::info!(
                records = 0,
                "no record has a time outside what the API accepts"
            );
        }
        let guard = Guard {
            rules: ArcSwapOption::empty(),
            ledger: RwLock::new(ledger),
            journal: Some(journal),
            rules_loaded_at: std::sync::Mutex::new(None),
            decisions: std::sync::OnceLock::new(),
            reserve_tolerance: std::sync::atomic::AtomicI64::new(tolerance_seconds(Some(
                DEFAULT_RESERVE_TOLERANCE,
            ))),
        };
        Ok((guard, replayed))
    }

    /// How many records (interactions and restrictions) hold a time
    /// outside what a request may give now
    /// ([`Interaction::has_time_out_of_range`], a restriction's
    /// `receivedAt` or end before 1900 or past 9999): stored before the
    /// bound, loaded and counted as they are. [`Guard::open`] logs it.
    pub fn out_of_range_records(&self) -> Result<u64, GuardError> {
        Ok(out_of_range_records(&self.read()?.index))
    }

    /// The journal's writer counters, if there is a journal.
    pub fn journal_stats(&self) -> Option<jn::Stats> {
        self.journal.as_ref().map(Journal::stats)
    }

    /// Puts a rule set in force; every later Check sees it whole.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        self.rules.store(Some(rules));
        if let Ok(mut at) = self.rules_loaded_at.lock() {
            *at = Some(Utc::now());
        }
    }

    /// Logs every answered Check from now on (set once).
    pub fn set_decision_log(&self, log: crate::decisions::DecisionLog) {
        let _ = self.decisions.set(log);
    }

    /// The decision log, if one is kept.
    pub fn decision_log(&self) -> Option<&crate::decisions::DecisionLog> {
        self.decisions.get()
    }

    /// When the rule set in force was put in force.
    pub fn rules_loaded_at(&self) -> Option<DateTime<Utc>> {
        self.rules_loaded_at.lock().ok().and_then(|at| *at)
    }

    /// The rule set in force, if one is loaded.
    pub fn rules(&self) -> Option<Arc<RuleSet>> {
        self.rules.load_full()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Ledger>, GuardError> {
        self.ledger
            .read()
            .map_err(|_| GuardError::Internal("the index lock is poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Ledger>, GuardError> {
        self.ledger
            .write()
            .map_err(|_| GuardError::Internal("the index lock is poisoned".into()))
    }

    fn proposal(
        &self,
        input: &CheckInput,
        index: &Index,
        now: DateTime<Utc>,
    ) -> Result<Proposal, GuardError> {
        build_proposal(input, index, now)
    }
}

/// Reads a Check's facts into a [`Proposal`], refusing every bad field (all
/// of them, each named). `index` tells whether the send answers the
/// borrower; `now` is the moment when `at` is unset.
pub fn build_proposal(
    input: &CheckInput,
    index: &Index,
    now: DateTime<Utc>,
) -> Result<Proposal, GuardError> {
    let mut problems = Vec::new();
    let mut note = |r: Result<(), FieldProblem>| {
        if let Err(p) = r {
            problems.push(p);
        }
    };
    if input.person_id.is_empty() {
        note(Err(FieldProblem {
            field: "personId".into(),
            message: "`personId` is required".into(),
        }));
    } else if let Err(e) = AnyId::parse("personId", &input.person_id) {
        note(Err(FieldProblem {
            field: "personId".into(),
            message: e.to_string(),
        }));
    }
    let channel = match parse_vocab("channel", &input.channel, Channel::parse, Channel::NAMES) {
        Ok(Some(c)) => Some(c),
        Ok(None) => {
            note(Err(FieldProblem {
                field: "channel".into(),
                message: "`channel` is required".into(),
            }));
            None
        }
        Err(p) => {
            note(Err(p));
            None
        }
    };
    let direction = parse_vocab(
        "direction",
        &input.direction,
        Direction::parse,
        Direction::NAMES,
    )
    .map_err(|p| problems.push(p))
    .ok()
    .flatten();
    let theme = parse_vocab("theme", &input.theme, Theme::parse, Theme::NAMES)
        .map_err(|p| problems.push(p))
        .ok()
        .flatten();
    let subject = parse_vocab("subject", &input.subject, Subject::parse, Subject::NAMES)
        .map_err(|p| problems.push(p))
        .ok()
        .flatten()
        .map(Subject::normalized);
    let zones = engine::parse_zones(&input.time_zones)
        .map_err(|e| {
            problems.push(FieldProblem {
                field: "timeZones".into(),
                message: e.to_string(),
            })
        })
        .unwrap_or_default();
    let jurisdictions = engine::parse_jurisdictions(&input.jurisdictions)
        .map_err(|e| {
            problems.push(FieldProblem {
                field: "jurisdictions".into(),
                message: e.to_string(),
            })
        })
        .unwrap_or_default();
    let balance = if input.balance.is_empty() {
        None
    } else {
        Decimal::from_str_exact(&input.balance)
                .map_err(|_| {
                    problems.push(FieldProblem {
                        field: "balance".into(),
                        message: format!(
                            "`balance` value `{}` is not an exact decimal; allowed: digits with an optional fraction, such as `125.50`",
                            crate::model::echo(&input.balance)
                        ),
                    })
                })
                .ok()
    };
    if input.loan_ids.len() > crate::model::MAX_LOANS
        || input
            .loan_ids
            .iter()
            .any(|l| l.is_empty() || l.chars().count() > crate::model::MAX_ID_CHARS)
    {
        problems.push(FieldProblem {
            field: "loanIds".into(),
            message: format!(
                "`loanIds` allows at most {} ids of 1 to {} characters each",
                crate::model::MAX_LOANS,
                crate::model::MAX_ID_CHARS
            ),
        });
    }
    if !input.previous_interaction_id.is_empty()
        && AnyId::parse("previousInteractionId", &input.previous_interaction_id).is_err()
    {
        problems.push(FieldProblem {
                field: "previousInteractionId".into(),
                message: format!(
                    "`previousInteractionId` value `{}` is not an id; allowed: our id or `ext-` and an external id",
                    crate::model::echo(&input.previous_interaction_id)
                ),
            });
    }
    if input.request_id.chars().count() > crate::model::MAX_ID_CHARS {
        problems.push(FieldProblem {
            field: "requestId".into(),
            message: format!(
                "`requestId` allows at most {} characters",
                crate::model::MAX_ID_CHARS
            ),
        });
    }
    let Some(channel) = channel else {
        return Err(GuardError::Invalid(problems));
    };
    if !problems.is_empty() {
        return Err(GuardError::Invalid(problems));
    }
    let mut p = Proposal::new(channel, direction.unwrap_or(Direction::Outbound));
    p.theme = theme;
    p.subject = subject;
    p.loans = input.loan_ids.clone();
    p.is_transactional = input.is_transactional;
    p.contact = ContactKind::from_record(input.contact.as_ref().and_then(|c| c.kind.as_deref()));
    p.contact_value = input
        .contact
        .as_ref()
        .and_then(|c| c.value.as_deref())
        .filter(|v| !v.trim().is_empty())
        .map(crate::restrictions::normalize_contact);
    p.previous =
        (!input.previous_interaction_id.is_empty()).then(|| input.previous_interaction_id.clone());
    p.required_by_law = input.required_by_law;
    p.consent_request = input.consent_request;
    p.answers_borrower = !input.previous_interaction_id.is_empty()
        && index.is_reply(
            &input.person_id,
            &input.previous_interaction_id,
            input.at.unwrap_or(now),
        );
    p.at = input.at;
    if let Some(at) = input.at
        && !(MIN_AT..=MAX_AT).contains(&at.timestamp())
    {
        return Err(GuardError::field(
            "at",
            format!("`at` {at} is out of range; allowed: 1970-01-01 to 2999-12-31"),
        ));
    }
    p.jurisdictions = jurisdictions;
    p.zones = zones;
    p.balance = balance;
    Ok(p)
}

impl Guard {
    /// Appends `records` to the journal while the ledger lock is held (so
    /// the file order is the order of the changes); the commit resolves when
    /// they are durable.
    /// With no records, the commit still waits for everything appended
    /// before it: an answer repeated to a retry is never sent before the
    /// first one is durable.
    fn log(&self, records: Vec<Record>) -> Result<Commit, GuardError> {
        match &self.journal {
            None => Ok(Commit::none()),
            Some(j) => j.append(&records).map_err(not_durable),
        }
    }

    /// The records that describe a person newly registered by an operation.
    fn new_people(index: &Index, before: usize) -> Vec<Record> {
        index
            .person_keys()
            .skip(before)
            .map(|k| person_record(index, k, Some(Utc::now())))
            .collect()
    }

    /// Answers a Check. With `reserve`, an allowed send is recorded (status
    /// `inProgress`) under the same lock that decided it, and the answer is
    /// kept under `request_id` for retries; the answer is returned once
    /// recorded durably. `deadline` is checked before the commit only: once
    /// recorded, the answer is returned.
    pub async fn check(
        &self,
        input: &CheckInput,
        caller: &Caller,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<CheckOutcome, GuardError> {
        let (outcome, commit) = self.check_now(input, caller, now, deadline)?;
        commit.wait().await.map_err(not_durable)?;
        if let Some(log) = self.decisions.get() {
            log.record(input, caller, &outcome, now);
        }
        let d = &outcome.decision;
        metrics::counter!("compliance_guard_checks_total", "allowed" => if d.allowed { "true" } else { "false" }).increment(1);
        if let Some(rule) = &d.rule_id {
            metrics::counter!("compliance_guard_blocks_total", "rule_id" => rule.clone())
                .increment(1);
        }
        if d.allowed {
            // An allow names no rule: static labels, nothing allocated on
            // the common path.
            metrics::counter!("compliance_guard_decisions_total", "result" => "allowed", "rule_id" => "")
                .increment(1);
        } else {
            let rule = d.rule_id.clone().unwrap_or_default();
            metrics::counter!("compliance_guard_decisions_total", "result" => "blocked", "rule_id" => rule)
                .increment(1);
        }
        for v in d.violations.iter().filter(|v| v.shadow) {
            metrics::counter!("compliance_guard_shadow_violations_total", "rule_id" => v.rule_id.clone()).increment(1);
        }
        Ok(outcome)
    }

    /// Sets how far before `now` a reserving Check's `at` may be (default
    /// [`DEFAULT_RESERVE_TOLERANCE`]). A reservation is recorded at its
    /// `at`, so one named in the past would count in the past's windows
    /// while the send goes out now, and a cap could be exceeded. `None`
    /// accepts any `at`: for replaying recorded history, never for a live
    /// pipeline.
    pub fn set_reserve_tolerance(&self, tolerance: Option<std::time::Duration>) {
        self.reserve_tolerance.store(
            tolerance_seconds(tolerance),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Refuses a reservation named too far in the past. Checked after the
    /// request-id lookup, so a retry still gets its first answer.
    fn check_reserve_time(&self, input: &CheckInput, now: DateTime<Utc>) -> Result<(), GuardError> {
        let tolerance = self
            .reserve_tolerance
            .load(std::sync::atomic::Ordering::Relaxed);
        let Some(at) = input.at else { return Ok(()) };
        if tolerance < 0 || at >= now - chrono::Duration::seconds(tolerance) {
            return Ok(());
        }
        Err(GuardError::field(
            "at",
            format!(
                "`at` {} is {} s before the server's clock ({}); a reserving Check is for a send now or later; allowed: at most {tolerance} s before it (leave `at` unset to mean now)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                (now - at).num_seconds(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            ),
        ))
    }

    fn check_now(
        &self,
        input: &CheckInput,
        caller: &Caller,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<(CheckOutcome, Commit), GuardError> {
        let rules = self.rules().ok_or_else(|| {
            GuardError::Unavailable("no rule set is loaded yet; retry shortly".into())
        })?;
        if self.journal.as_ref().is_some_and(Journal::failed) {
            return Err(GuardError::Unavailable(
                "the journal failed; no Check is answered until the server restarts".into(),
            ));
        }
        if !input.reserve {
            let ledger = self.read()?;
            let proposal = self.proposal(input, &ledger.index, now)?;
            let view = ledger.index.view(&input.person_id)?;
            let decision = engine::decide(&rules, &view, &proposal, now);
            // Answer only once every write this decision read is durable: an
            // allow must never rest on a change a crash could take back.
            let commit = self.log(Vec::new())?;
            return Ok((
                CheckOutcome {
                    decision,
                    interaction_id: None,
                    replayed: false,
                },
                commit,
            ));
        }
        let mut ledger = self.write()?;
        ledger.expire_answers(now);
        if !input.request_id.is_empty()
            && let Some(stored) = ledger.answers.get(&input.request_id)
        {
            // The same person, by the name given then or by whom both names
            // resolve to now (a person first seen in a blocked Check was
            // stored under the name given).
            let resolve = |name: &str| ledger.index.find_person(name).ok().flatten();
            let now_person = resolve(&input.person_id);
            let same = input.person_id == stored.person_id
                || now_person.is_some_and(|k| {
                    ledger.index.person_id(k) == stored.person_id
                        || resolve(&stored.person_id) == Some(k)
                });
            if !same {
                return Err(GuardError::field(
                    "requestId",
                    format!(
                        "`requestId` `{}` was already used for another person; use a new request id for each send",
                        crate::model::echo(&input.request_id)
                    ),
                ));
            }
            let mut outcome = stored.outcome.clone();
            outcome.replayed = true;
            // The first answer may not be durable yet; wait for everything
            // logged so far before repeating it.
            let commit = self.log(Vec::new())?;
            return Ok((outcome, commit));
        }
        self.check_reserve_time(input, now)?;
        let proposal = self.proposal(input, &ledger.index, now)?;
        let view = ledger.index.view(&input.person_id)?;
        let decision = engine::decide(&rules, &view, &proposal, now);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(GuardError::DeadlineExceeded);
        }
        let mut records = Vec::new();
        let mut interaction_id = None;
        if decision.allowed {
            let record = InteractionInput {
                channel: Some(proposal.channel.as_str().to_owned()),
                direction: Some(proposal.direction.as_str().to_owned()),
                theme: proposal.theme.map(|t| t.as_str().to_owned()),
                subject: proposal.subject.map(|s| s.as_str().to_owned()),
                status: Some(Status::InProgress.as_str().to_owned()),
                started_at: Some(decision.at.to_rfc3339()),
                loan_ids: Some(proposal.loans.clone()),
                is_transactional: proposal.is_transactional,
                contact: input.contact.clone(),
                previous_interaction_id: (!input.previous_interaction_id.is_empty())
                    .then(|| input.previous_interaction_id.clone()),
                is_external: Some(false),
                created_by: Some(caller.name.clone()),
                company_id: caller.company.clone(),
                ..InteractionInput::default()
            };
            let people = ledger.index.people_len();
            let created = ledger.index.create(&input.person_id, &record, now)?.clone();
            records.extend(Self::new_people(&ledger.index, people));
            records.push(interaction_record(&created));
            let reservation = Reservation {
                interaction_id: created.id.clone(),
                person_id: created.person_id.clone(),
                request_id: (!input.request_id.is_empty()).then(|| input.request_id.clone()),
                reserved_at: now,
                reserved_by: caller.name.clone(),
                channel: created.channel,
                loan_ids: created.loan_ids.clone(),
            };
            records.push(reservation_record(&reservation));
            interaction_id = Some(created.id.clone());
            ledger
                .reservations
                .insert(reservation.interaction_id.clone(), reservation);
        }
        let outcome = CheckOutcome {
            decision,
            interaction_id,
            replayed: false,
        };
        if !input.request_id.is_empty() {
            let person_id = match ledger.index.find_person(&input.person_id) {
                Ok(Some(k)) => ledger.index.person_id(k).to_owned(),
                _ => input.person_id.clone(),
            };
            let stored = StoredAnswer {
                person_id,
                stored_at: now,
                outcome: outcome.clone(),
            };
            records.push(answer_record(&input.request_id, &stored));
            ledger.answers.insert(input.request_id.clone(), stored);
            ledger
                .answer_order
                .push_back((now, input.request_id.clone()));
        }
        let commit = self.log(records)?;
        Ok((outcome, commit))
    }

    /// Records an interaction. Idempotent on externalId: an existing record
    /// with the same externalId for the same person is returned as it is
    /// (`false`); for another person it is refused.
    pub async fn create(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<(Interaction, bool), GuardError> {
        let (out, commit) = self.create_now(person, input, caller, now, false)?;
        commit.wait().await.map_err(not_durable)?;
        Ok(out)
    }

    /// Imports a record from the lender's history: like
    /// [`Guard::create`], but `createdBy` and `createdAt` of the record are
    /// kept when given, and the caller decides when to wait for durability
    /// (an import waits once per batch, not once per line). Returns the
    /// record, whether it was new, and its commit.
    pub fn import(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<(Interaction, bool, Commit), GuardError> {
        let ((record, created), commit) = self.create_now(person, input, caller, now, true)?;
        Ok((record, created, commit))
    }

    fn create_now(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
        keep_created: bool,
    ) -> Result<((Interaction, bool), Commit), GuardError> {
        if person.is_empty() {
            return Err(GuardError::field("personId", "`personId` is required"));
        }
        let mut ledger = self.write()?;
        if let Some(ext) = &input.external_id
            && !ext.is_empty()
            && let Ok(existing) = ledger.index.get(None, &format!("ext-{ext}"))
        {
            let mine = ledger
                .index
                .find_person(person)?
                .map(|k| ledger.index.person_id(k).to_owned());
            if mine.as_deref() == Some(existing.person_id.as_str()) {
                if visible(existing, caller).is_err() {
                    // A record the caller may not read (sensitive without
                    // the right, or another company's): the id is taken,
                    // but its content is not returned.
                    let why = if existing.sensitive == Some(true) && !caller.sensitive {
                        "as a sensitive interaction; reading it needs the sensitive right"
                    } else {
                        "by another company; use another externalId"
                    };
                    return Err(GuardError::AlreadyExists(format!(
                        "`externalId` `{}` is already recorded {why}",
                        crate::model::echo(ext)
                    )));
                }
                let existing = existing.clone();
                return Ok(((existing, false), self.log(Vec::new())?));
            }
            return Err(GuardError::AlreadyExists(format!(
                "`externalId` `{}` belongs to an interaction of another person",
                crate::model::echo(ext)
            )));
        }
        // A completed send dated in the future is refused at the API, after
        // a retry has had its first answer; an import (`keep_created`) is
        // history and is taken as it is.
        if !keep_created {
            completed_start(input.status.as_deref(), input.started_at.as_deref(), now)?;
        }
        if keep_created
            && let Some(id) = input.id.as_deref()
            && let Ok(existing) = ledger.index.get(None, id)
        {
            // An import of a record already here: the same person's is
            // left as it is; another person's is a conflict to report.
            let mine = ledger
                .index
                .find_person(person)?
                .map(|k| ledger.index.person_id(k).to_owned());
            if mine.as_deref() == Some(existing.person_id.as_str()) {
                let existing = existing.clone();
                return Ok(((existing, false), self.log(Vec::new())?));
            }
            return Err(GuardError::AlreadyExists(format!(
                "`id` `{}` belongs to an interaction of another person",
                crate::model::echo(id)
            )));
        }
        let mut input = input.clone();
        if !keep_created || input.created_by.is_none() {
            input.created_by = Some(caller.name.clone());
        }
        // The company comes from the credential, never from the body.
        input.company_id = caller.company.clone();
        if !keep_created {
            // Set by the guard, never by the caller; an import keeps the
            // upstream record's (a record deleted upstream stays deleted).
            input.updated_at = None;
            input.deleted_at = None;
        }
        let people = ledger.index.people_len();
        let created = ledger.index.create(person, &input, now)?.clone();
        let mut records = Self::new_people(&ledger.index, people);
        records.push(interaction_record(&created));
        let commit = self.log(records)?;
        Ok(((created, true), commit))
    }

    /// One interaction; a sensitive one is not found without the right.
    pub fn get(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<Interaction, GuardError> {
        let ledger = self.read()?;
        let found = ledger.index.get(person, interaction)?;
        Ok(visible(found, caller)?.clone())
    }

    /// Changes the named fields of an interaction. Any update closes its
    /// open reservation: the pipeline has reported what happened.
    pub async fn update(
        &self,
        person: Option<&str>,
        interaction: &str,
        values: &InteractionInput,
        fields: &[String],
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let (updated, commit) = {
            let mut ledger = self.write()?;
            let current = visible(ledger.index.get(person, interaction)?, caller)?;
            updated_start(current, values, fields, now)?;
            let updated = ledger
                .index
                .update_fields(person, interaction, values, fields, now, Some(&caller.name))?
                .clone();
            let mut records = vec![interaction_record(&updated)];
            if ledger.reservations.remove(&updated.id).is_some() {
                records.push(closed_record(&updated.id));
            }
            (updated, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(updated)
    }

    /// Soft-deletes an interaction the lender supplied.
    pub async fn delete(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let (deleted, commit) = {
            let mut ledger = self.write()?;
            visible(ledger.index.get(person, interaction)?, caller)?;
            let deleted = ledger.index.delete(person, interaction, now)?.clone();
            let mut records = vec![interaction_record(&deleted)];
            if ledger.reservations.remove(&deleted.id).is_some() {
                records.push(closed_record(&deleted.id));
            }
            (deleted, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(deleted)
    }

    /// Checks, before an upload is received, that audio of `kind` can be
    /// stored on the interaction: found as [`Guard::get`] finds it, voice,
    /// not deleted, and without one already. Returns its id (ours). The
    /// same checks run again when the upload commits
    /// ([`Guard::attach_media`]); this one spares the uploader sending
    /// audio that would be refused.
    pub fn media_target(
        &self,
        person: Option<&str>,
        interaction: &str,
        kind: MediaKind,
        caller: &Caller,
    ) -> Result<String, GuardError> {
        let ledger = self.read()?;
        let found = visible(ledger.index.get(person, interaction)?, caller)?;
        media_slot_free(found, kind)?;
        Ok(found.id.clone())
    }

    /// Stores uploaded audio (its file already in place under
    /// `media.storage_key`) on the interaction, journals the change and
    /// waits until it is durable. On an error nothing is recorded and the
    /// caller removes the file.
    pub async fn attach_media(
        &self,
        interaction_id: &str,
        kind: MediaKind,
        media: Media,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let (updated, commit) = {
            let mut ledger = self.write()?;
            // Checked again under the write lock: another upload may have
            // committed since `media_target`.
            media_slot_free(
                visible(ledger.index.get(None, interaction_id)?, caller)?,
                kind,
            )?;
            let updated = ledger
                .index
                .set_media(None, interaction_id, kind, media, now, &caller.name)?
                .clone();
            (
                updated.clone(),
                self.log(vec![interaction_record(&updated)])?,
            )
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(updated)
    }

    /// The stored audio of `kind`, for a download: found as [`Guard::get`]
    /// finds the interaction. A deleted interaction's audio is not found,
    /// whether or not it has been purged yet. Returns the interaction's id
    /// (ours) and the audio.
    pub fn media(
        &self,
        person: Option<&str>,
        interaction: &str,
        kind: MediaKind,
        caller: &Caller,
    ) -> Result<(String, Media), GuardError> {
        let ledger = self.read()?;
        let found = visible(ledger.index.get(person, interaction)?, caller)?;
        if found.deleted_at.is_some() {
            return Err(GuardError::NotFound(format!(
                "interaction `{}` is deleted; its {kind} is no longer available",
                found.id
            )));
        }
        if found.channel != Channel::Voice {
            return Err(GuardError::FailedPrecondition(format!(
                "interaction `{}` is a `{}` interaction; only voice interactions hold a {kind}",
                found.id,
                found.channel.as_str()
            )));
        }
        match found.media(kind) {
            Some(m) => Ok((found.id.clone(), m.clone())),
            None => Err(GuardError::NotFound(format!(
                "interaction `{}` has no {kind}",
                found.id
            ))),
        }
    }

    /// The stored audio a link names, and when its interaction was deleted
    /// (if it was), by our interaction id. No caller: a signed link is its
    /// own credential, checked by [`crate::media::LinkSigner::verify`].
    pub fn media_for_link(
        &self,
        interaction_id: &str,
        kind: MediaKind,
    ) -> Option<(Media, Option<DateTime<Utc>>)> {
        let ledger = self.read().ok()?;
        let found = ledger.index.get(None, interaction_id).ok()?;
        if found.id != interaction_id {
            // Links name our ids only, never an `ext-` alias.
            return None;
        }
        Some((found.media(kind)?.clone(), found.deleted_at))
    }

    /// What the index knows of a stored file, for the media sweep
    /// ([`crate::media::sweep`]); an error when the index cannot be read,
    /// which the sweep must not take for "no record names it".
    pub fn media_file(
        &self,
        storage_key: &str,
    ) -> Result<Option<Option<DateTime<Utc>>>, GuardError> {
        Ok(self.read()?.index.media_file(storage_key))
    }

    /// The cases an interaction is linked to, one page of them, with how
    /// many there are; found as [`Guard::get`] finds the interaction (a
    /// sensitive one is not found without the right). A cursor that is not
    /// one of its cases is not found.
    #[allow(clippy::too_many_arguments, reason = "the upstream paging parameters")]
    pub fn cases(
        &self,
        person: Option<&str>,
        interaction: &str,
        limit: usize,
        offset: usize,
        starting_after: Option<&str>,
        ending_before: Option<&str>,
        caller: &Caller,
    ) -> Result<(usize, Vec<String>), GuardError> {
        let ledger = self.read()?;
        let found = visible(ledger.index.get(person, interaction)?, caller)?;
        let ids = &found.case_ids;
        let at = |c: Option<&str>| c.map(|c| ids.iter().position(|x| x == c));
        let range = crate::index::page_bounds(
            ids.len(),
            limit,
            offset,
            at(starting_after),
            at(ending_before),
        )
        .map_err(|cursor| {
            let (field, value) = match cursor {
                crate::index::Cursor::StartingAfter => ("startingAfter", starting_after),
                crate::index::Cursor::EndingBefore => ("endingBefore", ending_before),
            };
            GuardError::NotFound(format!(
                "`{field}` case `{}` is not linked to interaction `{}`",
                value.unwrap_or_default(),
                found.id
            ))
        })?;
        Ok((ids.len(), ids[range].to_vec()))
    }

    /// The conversation of a text or chat interaction, found as
    /// [`Guard::get`] finds the interaction; other channels have none
    /// (FAILED_PRECONDITION).
    pub fn convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<crate::pb::InteractionConvo, GuardError> {
        let ledger = self.read()?;
        let found = visible(ledger.index.get(person, interaction)?, caller)?;
        convo_of(&ledger, found, "get")
    }

    /// The caller, an agent, joins an interaction's conversation:
    /// `solo` only when no other agent is in it, `add` alongside the
    /// others, `takeover` removing the others first. A caller already in
    /// it stays as it joined (solo and add change nothing; takeover still
    /// removes the others). A closed conversation cannot be joined.
    pub async fn join_convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        join_type: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<crate::pb::InteractionConvo, GuardError> {
        let join_type = if join_type.is_empty() {
            "solo"
        } else {
            join_type
        };
        if !matches!(join_type, "solo" | "add" | "takeover") {
            return Err(GuardError::field(
                "joinType",
                format!(
                    "`joinType` value `{}` is not allowed; allowed: `solo` (the default), `add`, `takeover`",
                    crate::model::echo(join_type)
                ),
            ));
        }
        if !caller.agent {
            return Err(GuardError::PermissionDenied(format!(
                "only agents may join a conversation, and the key `{}` is not an agent (give it `agent: true` in the keys file)",
                caller.name
            )));
        }
        let (convo, commit) = {
            let mut ledger = self.write()?;
            let found = visible(ledger.index.get(person, interaction)?, caller)?;
            let mut convo = convo_of(&ledger, found, "join")?;
            open_convo(found, &convo, "joined")?;
            let others: Vec<&str> = convo
                .agents
                .iter()
                .map(|a| a.name.as_str())
                .filter(|n| *n != caller.name)
                .collect();
            let already = convo.agents.iter().any(|a| a.name == caller.name);
            if join_type == "solo" && !already && !others.is_empty() {
                return Err(GuardError::FailedPrecondition(format!(
                    "cannot join the conversation of interaction `{}` solo: {} {} in it; join with `add` to join alongside, or `takeover` to remove them",
                    found.id,
                    if others.len() == 1 { "agent" } else { "agents" },
                    others
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                        + if others.len() == 1 { " is" } else { " are" }
                )));
            }
            let mut changed = false;
            if join_type == "takeover" && !others.is_empty() {
                convo.agents.retain(|a| a.name == caller.name);
                changed = true;
            }
            if !already {
                convo.agents.push(crate::pb::ConvoAgent {
                    name: caller.name.clone(),
                    joined_at: Some(crate::wire::ts(now)),
                    join_type: join_type.to_owned(),
                });
                changed = true;
            }
            let records = if changed {
                ledger
                    .convos
                    .insert(convo.interaction_id.clone(), convo.clone());
                vec![convo_record(&convo)]
            } else {
                Vec::new()
            };
            (convo, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(convo)
    }

    /// The caller leaves an interaction's conversation; refused when it is
    /// not in it, or when the conversation is closed.
    pub async fn leave_convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<crate::pb::InteractionConvo, GuardError> {
        let (convo, commit) = {
            let mut ledger = self.write()?;
            let found = visible(ledger.index.get(person, interaction)?, caller)?;
            let mut convo = convo_of(&ledger, found, "leave")?;
            open_convo(found, &convo, "left")?;
            if !convo.agents.iter().any(|a| a.name == caller.name) {
                return Err(GuardError::FailedPrecondition(format!(
                    "`{}` is not in the conversation of interaction `{}`, so it cannot leave it",
                    caller.name, found.id
                )));
            }
            convo.agents.retain(|a| a.name != caller.name);
            ledger
                .convos
                .insert(convo.interaction_id.clone(), convo.clone());
            let records = vec![convo_record(&convo)];
            (convo, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(convo)
    }

    /// Closes an interaction's conversation, recording by whom and when.
    /// A text interaction's status becomes `attempted` with statusDetails
    /// `textConvoClosedByAgent` (upstream lists it among the attempted
    /// details); a chat interaction's status is left as it is (upstream
    /// has no chat detail for it, and a `text*` detail does not fit a
    /// chat). The agents in it at the close stay listed.
    pub async fn close_convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<crate::pb::InteractionConvo, GuardError> {
        let (convo, commit) = {
            let mut ledger = self.write()?;
            let found = visible(ledger.index.get(person, interaction)?, caller)?;
            let mut convo = convo_of(&ledger, found, "close")?;
            open_convo(found, &convo, "closed")?;
            let text = found.channel == Channel::Text;
            let id = found.id.clone();
            let mut records = Vec::new();
            if text {
                let values = InteractionInput {
                    status: Some(Status::Attempted.as_str().to_owned()),
                    status_details: Some("textConvoClosedByAgent".to_owned()),
                    ..InteractionInput::default()
                };
                let fields = ["status".to_owned(), "statusDetails".to_owned()];
                let updated = ledger
                    .index
                    .update_fields(None, &id, &values, &fields, now, Some(&caller.name))?
                    .clone();
                records.push(interaction_record(&updated));
                if ledger.reservations.remove(&id).is_some() {
                    records.push(closed_record(&id));
                }
            }
            convo.closed = true;
            convo.closed_at = Some(crate::wire::ts(now));
            convo.closed_by = caller.name.clone();
            ledger.convos.insert(id, convo.clone());
            records.push(convo_record(&convo));
            (convo, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(convo)
    }

    /// Lists interactions; sensitive ones only with the right.
    pub fn list(
        &self,
        query: &ListQuery,
        caller: &Caller,
    ) -> Result<(usize, Vec<Interaction>), GuardError> {
        let ledger = self.read()?;
        let mut q = query.clone();
        q.include_sensitive = caller.sensitive;
        q.company = caller.company.clone();
        let ListPage { total, data } = ledger.index.list(&q)?;
        Ok((total, data.into_iter().cloned().collect()))
    }

    /// The chain of earlier interactions, nearest first; sensitive links are
    /// left out without the right.
    pub fn previous(
        &self,
        person: Option<&str>,
        interaction: &str,
        company: Option<&str>,
        caller: &Caller,
    ) -> Result<Vec<Interaction>, GuardError> {
        if let Some(c) = company
            && caller.company.as_deref() != Some(c)
        {
            return Err(GuardError::PermissionDenied(format!(
                "`companyId` `{}` is not the company of this key",
                crate::model::echo(c)
            )));
        }
        let ledger = self.read()?;
        let start = visible(ledger.index.get(person, interaction)?, caller)?;
        if let Some(c) = company
            && start.company_id.as_deref() != Some(c)
        {
            return Err(GuardError::NotFound(format!(
                "no interaction `{}` in company `{}`",
                crate::model::echo(interaction),
                crate::model::echo(c)
            )));
        }
        let chain = ledger.index.previous_chain(person, interaction)?;
        Ok(chain
            .into_iter()
            // What the caller may not see is skipped (sensitive without the
            // right, another company's); the walk goes on through it.
            .filter(|r| visible(r, caller).is_ok())
            .filter(|r| company.is_none_or(|c| r.company_id.as_deref() == Some(c)))
            .cloned()
            .collect())
    }

    /// Declares that loans form one debt.
    pub async fn declare_debt(
        &self,
        person: &str,
        debt_id: &str,
        loans: &[String],
    ) -> Result<(), GuardError> {
        if person.is_empty() {
            return Err(GuardError::field("personId", "`personId` is required"));
        }
        let commit = {
            let mut ledger = self.write()?;
            let people = ledger.index.people_len();
            ledger.index.declare_debt(person, debt_id, loans)?;
            let mut records = Self::new_people(&ledger.index, people);
            let key = ledger
                .index
                .find_person(person)?
                .ok_or_else(|| GuardError::Internal("the person vanished".into()))?;
            records.push(Record {
                op: Some(Op::Debt(journal::Debt {
                    person_id: ledger.index.person_id(key).to_owned(),
                    debt_id: debt_id.to_owned(),
                    loan_ids: loans.to_vec(),
                    at: Some(crate::wire::ts(Utc::now())),
                })),
            });
            self.log(records)?
        };
        commit.wait().await.map_err(not_durable)
    }

    /// Links a person's id and external id; returns our id of the person.
    pub async fn link_person(&self, id: &str, external_id: &str) -> Result<String, GuardError> {
        let (person_id, commit) = {
            let mut ledger = self.write()?;
            let people = ledger.index.people_len();
            let k = ledger.index.link_person(id, external_id)?;
            let mut records = Self::new_people(&ledger.index, people);
            records.push(person_record(&ledger.index, k, Some(Utc::now())));
            (ledger.index.person_id(k).to_owned(), self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(person_id)
    }

    /// The open reservations the caller may see (as [`Guard::get`] would
    /// find their interactions), oldest first, optionally of one person.
    pub fn reservations(
        &self,
        person: Option<&str>,
        caller: &Caller,
    ) -> Result<Vec<Reservation>, GuardError> {
        let ledger = self.read()?;
        let who = match person {
            Some(p) => Some(
                ledger
                    .index
                    .find_person(p)?
                    .map(|k| ledger.index.person_id(k).to_owned())
                    .ok_or_else(|| {
                        GuardError::NotFound(format!("no person `{}`", crate::model::echo(p)))
                    })?,
            ),
            None => None,
        };
        let mut list: Vec<Reservation> = ledger
            .reservations
            .values()
            .filter(|r| who.as_ref().is_none_or(|w| *w == r.person_id))
            // Only those the caller may see: another company's are not
            // listed, as its interactions are not.
            .filter(|r| {
                ledger
                    .index
                    .get(None, &r.interaction_id)
                    .is_ok_and(|i| visible(i, caller).is_ok())
            })
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            (a.reserved_at, &a.interaction_id).cmp(&(b.reserved_at, &b.interaction_id))
        });
        Ok(list)
    }

    /// Cancels an open reservation: its status becomes `canceled`, which
    /// releases the slot.
    pub async fn cancel_reservation(
        &self,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let (canceled, commit) = {
            let mut ledger = self.write()?;
            let id = visible(ledger.index.get(None, interaction)?, caller)?
                .id
                .clone();
            if !ledger.reservations.contains_key(&id) {
                return Err(GuardError::FailedPrecondition(format!(
                    "interaction `{id}` is not an open reservation"
                )));
            }
            let values = InteractionInput {
                status: Some(Status::Canceled.as_str().to_owned()),
                ..InteractionInput::default()
            };
            let canceled = ledger
                .index
                .update_fields(
                    None,
                    &id,
                    &values,
                    &["status".to_owned()],
                    now,
                    Some(&caller.name),
                )?
                .clone();
            ledger.reservations.remove(&id);
            let records = vec![interaction_record(&canceled), closed_record(&id)];
            (canceled, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        Ok(canceled)
    }

    /// How many interactions the index holds.
    pub fn len(&self) -> usize {
        self.read().map_or(0, |l| l.index.len())
    }

    /// True when the index holds no interaction.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How much the guard holds, read under one read lock (never the write
    /// lock), for the gauges the server samples: what grows with use and
    /// what should drain (open reservations).
    pub fn sizes(&self) -> Sizes {
        self.read().map_or(Sizes::default(), |l| Sizes {
            people: l.index.people_len(),
            interactions: l.index.len(),
            open_reservations: l.reservations.len(),
        })
    }
}

/// What [`Guard::sizes`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// People in the registry (borrowers, each counted once whatever its
    /// aliases).
    pub people: usize,
    /// Interactions in the index, deleted ones included.
    pub interactions: usize,
    /// Reservations recorded by a reserving Check and not yet updated,
    /// deleted or canceled.
    pub open_reservations: usize,
}

/// One restriction and what it does under the rules in force, as
/// ExplainRestrictions answers: an agent reads why a send is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionEffect {
    /// The restriction.
    pub restriction: Restriction,
    /// Whether it is in force at the moment asked about.
    pub in_force: bool,
    /// The loaded rules that read its kind; empty: no loaded rule honours
    /// it, so it changes no Check.
    pub rule_ids: Vec<String>,
    /// What it blocks or permits, and its exceptions ([`effect`]).
    pub effect: String,
}

/// Every problem of a restriction as given to AddRestriction, each naming
/// its field: a set `id` (the guard makes its own) and every problem of
/// [`RestrictionInput::check`]. `already` are problems found before
/// (read-only fields, times out of range); a field they name is not
/// reported twice. Empty: the restriction may be recorded.
pub fn restriction_problems(
    person: &str,
    input: &RestrictionInput,
    already: Vec<FieldProblem>,
    now: DateTime<Utc>,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if person.is_empty() {
        problems.push(FieldProblem {
            field: "personId".into(),
            message: "`personId` is required".into(),
        });
    } else if let Err(e) = AnyId::parse("personId", person) {
        problems.push(FieldProblem {
            field: "personId".into(),
            message: e.to_string(),
        });
    }
    if input.id.as_deref().is_some_and(|id| !id.is_empty()) {
        problems.push(FieldProblem {
            field: "id".into(),
            message: "`id` is set by the guard, never on AddRestriction; leave it empty".into(),
        });
    }
    let reported: Vec<String> = already.iter().map(|p| p.field.clone()).collect();
    problems.extend(already);
    if let Err(errors) = input.check(String::new(), person.to_owned(), String::new(), now) {
        for p in errors.0 {
            if !reported.iter().any(|f| f == p.field) {
                problems.push(FieldProblem {
                    field: p.field.to_owned(),
                    message: p.message,
                });
            }
        }
    }
    problems
}

impl Guard {
    /// Records a borrower restriction and returns it with its id, once
    /// durable: a Check answered after this sees it. The person is
    /// registered on first mention, as by [`Guard::create`]; `recordedBy`
    /// is the caller's name.
    pub async fn add_restriction(
        &self,
        person: &str,
        input: &RestrictionInput,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Restriction, GuardError> {
        self.add_restriction_checked(person, input, Vec::new(), caller, now)
            .await
    }

    /// [`Guard::add_restriction`] with the problems the caller already
    /// found in the request (read-only fields set, times out of range), so
    /// that one answer lists every bad field.
    pub async fn add_restriction_checked(
        &self,
        person: &str,
        input: &RestrictionInput,
        already: Vec<FieldProblem>,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Restriction, GuardError> {
        // Left out, `receivedAt` is now: the lender records a restriction
        // as it receives it. The record carries the moment, so replay
        // reads the same time.
        let defaulted;
        let input = if input.received_at.is_empty() {
            defaulted = RestrictionInput {
                received_at: now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ..input.clone()
            };
            &defaulted
        } else {
            input
        };
        let mut problems = restriction_problems(person, input, already, now);
        // A receivedAt in the future: refused here, at the API, and never
        // when a journal, snapshot or backup is read back.
        if !problems.iter().any(|p| p.field == "receivedAt")
            && let Ok(received) = crate::model::parse_time("receivedAt", &input.received_at)
            && let Err(e) = crate::model::check_received_at(received, now)
        {
            problems.push(FieldProblem {
                field: e.field().to_owned(),
                message: e.to_string(),
            });
        }
        if !problems.is_empty() {
            return Err(GuardError::Invalid(problems));
        }
        let checked = input
            .check(String::new(), person.to_owned(), caller.name.clone(), now)
            .map_err(restriction_errors)?;
        let (stored, commit) = {
            let mut ledger = self.write()?;
            if let Some(k) = ledger.index.find_person(person)?
                && ledger.index.person_restrictions(k).len() >= MAX_PER_PERSON
            {
                return Err(
                    IndexError::TooManyRestrictions(ledger.index.person_id(k).to_owned()).into(),
                );
            }
            let people = ledger.index.people_len();
            let id = ledger.index.new_restriction_id();
            let put = ledger
                .index
                .put_restriction(Restriction { id, ..checked })
                .cloned();
            let mut records = Self::new_people(&ledger.index, people);
            let stored = match put {
                Ok(r) => r,
                Err(e) => {
                    // A person registered before the refusal is journaled
                    // all the same, so that memory and disk agree.
                    if !records.is_empty() {
                        self.log(records)?;
                    }
                    return Err(e.into());
                }
            };
            let commit = if needs_v2(&stored) {
                // A `restriction_v2` record always travels alone, never in
                // a Batch: an older release checks the kind of every
                // record it reads, and refuses an unknown one naming the
                // file and offset, but the records inside a batch only
                // when it applies them (and its backup would copy them
                // emptied). The person goes first in a frame of its own;
                // the journal is sequential, so waiting for the
                // restriction's commit waits for both.
                if !records.is_empty() {
                    self.log(records)?;
                }
                self.log(vec![restriction_record(&stored)])?
            } else {
                records.push(restriction_record(&stored));
                self.log(records)?
            };
            (stored, commit)
        };
        commit.wait().await.map_err(not_durable)?;
        metrics::counter!("compliance_guard_restrictions_total", "kind" => stored.kind.as_str(), "op" => "added").increment(1);
        Ok(stored)
    }

    /// Ends a restriction: it stops being in force at `ended_at` (now when
    /// `None`), and is kept, with who ended it and why, for the audit.
    /// Ending one already ended is refused: the first end is the record.
    pub async fn end_restriction(
        &self,
        person: &str,
        id: &str,
        ended_at: Option<DateTime<Utc>>,
        end_reason: Option<String>,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Restriction, GuardError> {
        let mut problems = Vec::new();
        if person.is_empty() {
            problems.push(FieldProblem {
                field: "personId".into(),
                message: "`personId` is required".into(),
            });
        }
        if id.is_empty() {
            problems.push(FieldProblem {
                field: "restrictionId".into(),
                message: "`restrictionId` is required".into(),
            });
        }
        let end_reason = end_reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if end_reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_NOTE_CHARS)
        {
            problems.push(FieldProblem {
                field: "endReason".into(),
                message: format!("`endReason` is longer than {MAX_NOTE_CHARS} characters"),
            });
        }
        let ended_at = ended_at.unwrap_or(now);
        // The end of a restriction is an event: the same bounds as every
        // request's event time (from 1900, to 9999).
        if let Err(e) = crate::model::request_time(
            "endedAt",
            ended_at.timestamp(),
            i32::try_from(ended_at.timestamp_subsec_nanos()).unwrap_or(0),
            true,
        ) {
            problems.push(FieldProblem {
                field: "endedAt".into(),
                message: e.to_string(),
            });
        }
        if !problems.is_empty() {
            return Err(GuardError::Invalid(problems));
        }
        let (stored, commit) = {
            let mut ledger = self.write()?;
            let current = ledger.index.restriction(Some(person), id)?;
            if let Some(at) = current.ended_at {
                return Err(GuardError::FailedPrecondition(format!(
                    "restriction `{}` was already ended at {} by `{}`; an end is recorded once",
                    current.id,
                    at.to_rfc3339(),
                    current.ended_by.as_deref().unwrap_or("")
                )));
            }
            if ended_at < current.received_at {
                return Err(GuardError::field(
                    "endedAt",
                    format!(
                        "`endedAt` {} is before the restriction's `receivedAt` {}; allowed: `receivedAt` or later",
                        ended_at.to_rfc3339(),
                        current.received_at.to_rfc3339()
                    ),
                ));
            }
            let ended = Restriction {
                ended_at: Some(ended_at),
                ended_by: Some(caller.name.clone()),
                end_reason,
                ..current.clone()
            };
            let stored = ledger.index.put_restriction(ended)?.clone();
            let records = vec![restriction_record(&stored)];
            (stored, self.log(records)?)
        };
        commit.wait().await.map_err(not_durable)?;
        metrics::counter!("compliance_guard_restrictions_total", "kind" => stored.kind.as_str(), "op" => "ended").increment(1);
        Ok(stored)
    }

    /// A borrower's restrictions in the order recorded: those in force at
    /// `at`, or with `include_ended` every one ever recorded.
    pub fn restrictions(
        &self,
        person: &str,
        include_ended: bool,
        at: DateTime<Utc>,
    ) -> Result<Vec<Restriction>, GuardError> {
        let ledger = self.read()?;
        let key = known_person(&ledger.index, person)?;
        Ok(ledger
            .index
            .person_restrictions(key)
            .iter()
            .filter(|r| include_ended || r.in_force_at(at))
            .cloned()
            .collect())
    }

    /// What each of a borrower's restrictions does under the rules in
    /// force, ended ones included, in the order recorded.
    pub fn explain(
        &self,
        person: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<RestrictionEffect>, GuardError> {
        let rules = self.rules().ok_or_else(|| {
            GuardError::Unavailable("no rule set is loaded yet; retry shortly".into())
        })?;
        let list = self.restrictions(person, true, at)?;
        Ok(list
            .into_iter()
            .map(|r| RestrictionEffect {
                in_force: r.in_force_at(at),
                rule_ids: rules
                    .rules()
                    .iter()
                    .filter(|rule| rule.kind.reads_restriction(r.kind))
                    .map(|rule| rule.id.clone())
                    .collect(),
                effect: effect(&r),
                restriction: r,
            })
            .collect())
    }
}

/// The person a read names, refused as not found when unknown.
fn known_person(index: &Index, person: &str) -> Result<crate::index::PersonKey, GuardError> {
    if person.is_empty() {
        return Err(GuardError::field("personId", "`personId` is required"));
    }
    index
        .find_person(person)?
        .ok_or_else(|| GuardError::NotFound(format!("no person `{}`", crate::model::echo(person))))
}

fn restriction_errors(e: RestrictionErrors) -> GuardError {
    GuardError::Invalid(
        e.0.into_iter()
            .map(|p| FieldProblem {
                field: p.field.to_owned(),
                message: p.message,
            })
            .collect(),
    )
}

/// The journal record of a restriction's full state. One that uses `days`
/// is the record kind `restriction_v2`: a release that knows only
/// `restriction` would decode it with the days dropped (prost keeps no
/// unknown fields) and read a Tuesday-only designation as one for every
/// day, whereas an unknown record kind makes it refuse to start. Every
/// other restriction is written as `restriction`, byte for byte as before,
/// so that older releases still read journals that do not use days.
fn restriction_record(r: &Restriction) -> Record {
    let pb = crate::wire::restriction_pb_of(r);
    Record {
        op: Some(if needs_v2(r) {
            Op::RestrictionV2(pb)
        } else {
            Op::Restriction(pb)
        }),
    }
}

/// True if an older release would misread the restriction as the record
/// kind `restriction`: it names days of the week.
fn needs_v2(r: &Restriction) -> bool {
    !r.days.is_empty()
}

/// `loan `L1`, `L2`` or every debt, for the effect sentences.
fn debts(r: &Restriction) -> String {
    if r.loan_ids.is_empty() {
        return "every debt of the borrower (it names none)".into();
    }
    let loans = quoted(&r.loan_ids);
    if r.loan_ids.len() == 1 {
        format!("loan {loans}")
    } else {
        format!("loans {loans}")
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The contact points a place restriction names, for the effect sentences.
fn places(r: &Restriction) -> String {
    let mut parts: Vec<String> = r
        .contact_kinds
        .iter()
        .map(|k| format!("any {k} contact point"))
        .collect();
    parts.extend(r.contact_values.iter().map(|v| format!("`{v}`")));
    if parts.is_empty() {
        return "any contact point".into();
    }
    parts.join(" or ")
}

/// What a restriction blocks or permits, and its exceptions, in one plain
/// English sentence with its citation: the text ExplainRestrictions gives
/// agents, so that they can tell a borrower why a send was refused without
/// reading the rules. It describes the kind's legal effect; which rules
/// enforce it is [`RestrictionEffect::rule_ids`].
pub fn effect(r: &Restriction) -> String {
    use crate::restrictions::RestrictionKind as K;
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match r.kind {
        K::CeaseCommunication => format!(
            "no communication about {} except subjects ceaseCommunicationAcknowledgement and ceaseCommunicationRefuseToPay (12 CFR 1006.6(c)(2))",
            debts(r)
        ),
        K::MediumOptOut => {
            let channels = r
                .channels
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" or ");
            let to = if r.contact_values.is_empty() {
                "any number or address".to_owned()
            } else {
                quoted(&r.contact_values)
            };
            format!(
                "no {channels} communication to {to}, for any debt; exceptions: one confirmation of an electronic opt-out (subject electronicConsentOptOut), one reply in the medium when the borrower initiates through it, requiredByLaw (12 CFR 1006.14(h)(2))"
            )
        }
        K::PriorConsentToCall => {
            // Day 1 is the day of receipt; the rules count the borrower's
            // local days, so the UTC day is named as such.
            let day_one = r.received_at.date_naive();
            let day_seven = day_one + Duration::days(6);
            let end = match r.ends_at {
                Some(e) if e < r.received_at + Duration::days(6) => rfc(e),
                _ => format!(
                    "the end of the 7th day counting the day of receipt as day 1 (about {day_seven}, day 1 being {day_one} in UTC; the rules count the borrower's local days){}",
                    r.ends_at
                        .map(|e| format!(", or {}, whichever comes first", rfc(e)))
                        .unwrap_or_default()
                ),
            };
            format!(
                "calls about {} placed before {end} count toward neither 12 CFR 1006.14(b)(2) test; ends at a revocation or at a later telephone conversation (12 CFR 1006.14(b)(3)(i))",
                debts(r)
            )
        }
        K::InconvenientTime => {
            let when = match (r.from, r.until) {
                (Some(f), Some(u)) => {
                    let hhmm = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
                    let days = if r.days.is_empty() {
                        String::new()
                    } else if u < f {
                        format!(
                            ", starting on {} (a window past midnight belongs to the day it starts on)",
                            crate::restrictions::describe_days(&r.days)
                        )
                    } else {
                        format!(" on {}", crate::restrictions::describe_days(&r.days))
                    };
                    format!("between {} and {} local time{days}", hhmm(f), hhmm(u))
                }
                _ => format!(
                    "at any time on {}, local time (midnight to midnight)",
                    crate::restrictions::describe_days(&r.days)
                ),
            };
            let end = r
                .ends_at
                .map(|e| format!(", until {}", rfc(e)))
                .unwrap_or_default();
            format!("no communication {when}{end} (12 CFR 1006.6(b)(1))")
        }
        K::InconvenientPlace => format!("no communication to {} (12 CFR 1006.6(b)(1))", places(r)),
        K::EmployerProhibitsContact => {
            format!("no communication to {} (12 CFR 1006.6(b)(3))", places(r))
        }
        K::AttorneyRepresentation => format!(
            "no communication with the borrower about {}, except to the attorney's own contact points {} (12 CFR 1006.6(b)(2))",
            debts(r),
            if r.contact_values.is_empty() {
                "(none recorded)".to_owned()
            } else {
                quoted(&r.contact_values)
            }
        ),
        K::DoNotInteract => format!(
            "no communication about {} until {} (reason {})",
            debts(r),
            r.ends_at.map_or_else(|| "it is ended".to_owned(), rfc),
            r.reason.map_or("not given", |x| x.as_str())
        ),
        K::ElectronicConsent => format!(
            "the borrower's express consent to {} about {}: once the written notice of D.C. Code 28-3814(m)(2)(A) has been mailed, these messages are permitted, at most 5 per account in any 7 days, until it is ended (D.C. Code 28-3814(d)(4)(B))",
            r.channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            debts(r)
        ),
        K::ElectronicNoticeMailed => format!(
            "the written notice of D.C. Code 28-3814(m)(2)(A) was mailed for {} on {}: from then, one message asking for consent to electronic messages is permitted per 7 days, and more with the borrower's express consent (D.C. Code 28-3814(d)(4)(B))",
            debts(r),
            r.received_at.date_naive()
        ),
    }
}

/// A failure to make a change durable: the caller must treat it as not
/// done (the change is not acknowledged, and the guard stops answering).
fn not_durable(e: JournalError) -> GuardError {
    GuardError::Unavailable(format!("the change could not be made durable: {e}"))
}

fn interaction_record(r: &Interaction) -> Record {
    Record {
        op: Some(Op::Interaction(crate::wire::pb_of(r))),
    }
}

/// A person's names as a journal record; `at` is when (unset in snapshots).
fn person_record(index: &Index, key: crate::index::PersonKey, at: Option<DateTime<Utc>>) -> Record {
    let (id, alias_ids, external_ids) = index.person_names(key);
    Record {
        op: Some(Op::Person(journal::Person {
            id,
            external_ids,
            alias_ids,
            at: at.map(crate::wire::ts),
        })),
    }
}

fn reservation_record(r: &Reservation) -> Record {
    Record {
        op: Some(Op::ReservationOpened(journal::ReservationOpened {
            interaction_id: r.interaction_id.clone(),
            person_id: r.person_id.clone(),
            request_id: r.request_id.clone().unwrap_or_default(),
            reserved_at: Some(crate::wire::ts(r.reserved_at)),
            reserved_by: r.reserved_by.clone(),
            channel: r.channel.as_str().to_owned(),
            loan_ids: r.loan_ids.clone(),
        })),
    }
}

fn closed_record(id: &str) -> Record {
    Record {
        op: Some(Op::ReservationClosed(id.to_owned())),
    }
}

fn answer_record(request_id: &str, a: &StoredAnswer) -> Record {
    Record {
        op: Some(Op::Answer(journal::StoredAnswer {
            request_id: request_id.to_owned(),
            person_id: a.person_id.clone(),
            stored_at: Some(crate::wire::ts(a.stored_at)),
            response: Some(crate::wire::check_response_of(&a.outcome)),
        })),
    }
}

/// The full state of a ledger as records, in an order replay accepts:
/// people, then accounts, then restrictions, then interactions, then
/// reservations, conversations and stored answers.
fn snapshot_records(ledger: &Ledger) -> impl Iterator<Item = Record> + '_ {
    let index = &ledger.index;
    // A person emptied by a link (its names moved to another) has nothing
    // left to restore.
    let people = index
        .person_keys()
        .filter(move |k| !index.person_id(*k).is_empty())
        .map(move |k| person_record(index, k, None));
    let debts = index.person_keys().flat_map(move |k| {
        let person_id = index.person_id(k).to_owned();
        index
            .person_debts(k)
            .into_iter()
            .map(move |(debt_id, loan_ids)| Record {
                op: Some(Op::Debt(journal::Debt {
                    person_id: person_id.clone(),
                    debt_id,
                    loan_ids,
                    at: None,
                })),
            })
    });
    let restrictions = index
        .person_keys()
        .flat_map(move |k| index.person_restrictions(k).iter().map(restriction_record));
    let interactions = index.records().map(interaction_record);
    let reservations = ledger.reservations.values().map(reservation_record);
    let convos = ledger.convos.values().map(convo_record);
    let answers = ledger
        .answer_order
        .iter()
        .filter_map(move |(_, id)| ledger.answers.get(id).map(|a| answer_record(id, a)));
    people
        .chain(debts)
        .chain(restrictions)
        .chain(interactions)
        .chain(reservations)
        .chain(convos)
        .chain(answers)
}

/// Applies one journal record to a ledger being rebuilt.
fn apply(ledger: &mut Ledger, record: Record) -> Result<(), JournalError> {
    let bad = |what: &str, reason: String| {
        JournalError::Failed(format!(
            "a journal record ({what}) cannot be applied: {reason}"
        ))
    };
    match record.op {
        Some(Op::Interaction(i)) => {
            let id = i.id.clone();
            let r = crate::wire::record_from(i)
                .map_err(|p| bad("interaction", format!("{id}: {}", p.message)))?;
            ledger
                .index
                .restore_interaction(r)
                .map_err(|e| bad("interaction", e.to_string()))?;
        }
        Some(Op::Person(p)) => {
            ledger
                .index
                .restore_person(&p.id, &p.alias_ids, &p.external_ids);
        }
        Some(Op::Debt(d)) => {
            ledger
                .index
                .declare_debt(&d.person_id, &d.debt_id, &d.loan_ids)
                .map_err(|e| bad("debt", e.to_string()))?;
        }
        Some(Op::ReservationOpened(r)) => {
            let reservation = Reservation {
                interaction_id: r.interaction_id.clone(),
                person_id: r.person_id,
                request_id: (!r.request_id.is_empty()).then_some(r.request_id),
                reserved_at: crate::wire::opt_time("reservedAt", &r.reserved_at)
                    .map_err(|p| bad("reservation", p.message))?
                    .unwrap_or_default(),
                reserved_by: r.reserved_by,
                channel: Channel::parse(&r.channel).unwrap_or(Channel::Voice),
                loan_ids: r.loan_ids,
            };
            ledger.reservations.insert(r.interaction_id, reservation);
        }
        Some(Op::ReservationClosed(id)) => {
            ledger.reservations.remove(&id);
        }
        Some(Op::Answer(a)) => {
            let response = a.response.unwrap_or_default();
            let outcome =
                crate::wire::outcome_of(&response).map_err(|p| bad("answer", p.message))?;
            let stored_at = crate::wire::opt_time("storedAt", &a.stored_at)
                .map_err(|p| bad("answer", p.message))?
                .unwrap_or_default();
            ledger
                .answer_order
                .push_back((stored_at, a.request_id.clone()));
            ledger.answers.insert(
                a.request_id,
                StoredAnswer {
                    person_id: a.person_id,
                    stored_at,
                    outcome,
                },
            );
        }
        // Both kinds hold the full state; `restriction_v2` only marks one
        // an older release must not read.
        Some(Op::Restriction(r) | Op::RestrictionV2(r)) => {
            let id = r.id.clone();
            let restriction = crate::wire::restriction_from(r)
                .map_err(|p| bad("restriction", format!("{id}: {}", p.message)))?;
            ledger
                .index
                .put_restriction(restriction)
                .map_err(|e| bad("restriction", e.to_string()))?;
        }
        Some(Op::Convo(c)) => {
            ledger.convos.insert(c.interaction_id.clone(), c);
        }
        Some(Op::Batch(batch)) => {
            for r in batch.records {
                apply(ledger, r)?;
            }
        }
        None => {
            return Err(bad(
                "unknown",
                "a record of a kind this release does not know".into(),
            ));
        }
    }
    Ok(())
}

/// The conversation of `r` as it stands (an empty, open one if nobody
/// has joined or closed it yet); only text and chat interactions have one.
fn convo_of(
    ledger: &Ledger,
    r: &Interaction,
    action: &str,
) -> Result<crate::pb::InteractionConvo, GuardError> {
    if !matches!(r.channel, Channel::Text | Channel::Chat) {
        return Err(GuardError::FailedPrecondition(format!(
            "cannot {action} the conversation of interaction `{}`: its channel is `{}`, and only `text` and `chat` interactions have a conversation",
            r.id,
            r.channel.as_str()
        )));
    }
    Ok(ledger
        .convos
        .get(&r.id)
        .cloned()
        .unwrap_or_else(|| crate::pb::InteractionConvo {
            interaction_id: r.id.clone(),
            channel: r.channel.as_str().to_owned(),
            ..Default::default()
        }))
}

/// Refuses a change to a closed conversation, or to a deleted
/// interaction's.
fn open_convo(
    r: &Interaction,
    convo: &crate::pb::InteractionConvo,
    done: &str,
) -> Result<(), GuardError> {
    if convo.closed {
        let at = convo
            .closed_at
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        return Err(GuardError::FailedPrecondition(format!(
            "the conversation of interaction `{}` was closed by `{}` at {at}; a closed conversation cannot be {done}",
            r.id, convo.closed_by
        )));
    }
    if r.deleted_at.is_some() {
        return Err(GuardError::FailedPrecondition(format!(
            "interaction `{}` is deleted; its conversation cannot be {done}",
            r.id
        )));
    }
    Ok(())
}

fn convo_record(c: &crate::pb::InteractionConvo) -> Record {
    Record {
        op: Some(Op::Convo(c.clone())),
    }
}

/// Whether audio of `kind` may be stored on `r`: not deleted, voice, and
/// none stored yet (stored audio is never replaced).
fn media_slot_free(r: &Interaction, kind: MediaKind) -> Result<(), GuardError> {
    if r.deleted_at.is_some() {
        return Err(IndexError::Deleted(r.id.clone()).into());
    }
    if r.channel != Channel::Voice {
        return Err(GuardError::FailedPrecondition(format!(
            "interaction `{}` is a `{}` interaction; only voice interactions hold a {kind}",
            r.id,
            r.channel.as_str()
        )));
    }
    if r.media(kind).is_some() {
        return Err(GuardError::AlreadyExists(format!(
            "interaction `{}` already has a {kind}; a stored recording or voicemail is never replaced",
            r.id
        )));
    }
    Ok(())
}

/// The interaction, if the caller may see it: a sensitive one needs the
/// sensitive right, and a key of a company sees only that company's
/// interactions (a key with no company sees every company's). Otherwise
/// not found, rather than forbidden: the caller may not learn that it
/// exists.
fn visible<'a>(r: &'a Interaction, caller: &Caller) -> Result<&'a Interaction, GuardError> {
    let hidden = (r.sensitive == Some(true) && !caller.sensitive)
        || caller
            .company
            .as_ref()
            .is_some_and(|c| r.company_id.as_ref() != Some(c));
    if hidden {
        return Err(GuardError::NotFound(format!("no interaction `{}`", r.id)));
    }
    Ok(r)
}

impl From<ValidationError> for GuardError {
    fn from(e: ValidationError) -> Self {
        GuardError::field(e.field(), e.to_string())
    }
}
