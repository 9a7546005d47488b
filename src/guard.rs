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
use crate::model::{
    AnyId, Channel, ContactInput, ContactKind, Direction, Interaction, InteractionInput, Status,
    Subject, Theme, ValidationError, describe_allowed,
};
use crate::rules::RuleSet;

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
            IndexError::UnknownPerson(_) | IndexError::UnknownInteraction { .. } => {
                GuardError::NotFound(e.to_string())
            }
            IndexError::Duplicate { .. } => GuardError::AlreadyExists(e.to_string()),
            IndexError::PersonChange { .. } => GuardError::field("personId", e.to_string()),
            IndexError::BadDebt { .. } => GuardError::field("loanIds", e.to_string()),
            IndexError::WouldJoin { .. }
            | IndexError::LoanInTwoDebts { .. }
            | IndexError::NotExternal(_)
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
}

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
            text.chars().take(64).collect::<String>(),
            describe_allowed(text, names)
        ),
    })
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
        }
    }

    /// Puts a rule set in force; every later Check sees it whole.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        self.rules.store(Some(rules));
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

    fn proposal(&self, input: &CheckInput, index: &Index) -> Result<Proposal, GuardError> {
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
                            input.balance.chars().take(64).collect::<String>()
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
                    input
                        .previous_interaction_id
                        .chars()
                        .take(64)
                        .collect::<String>()
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
        p.contact =
            ContactKind::from_record(input.contact.as_ref().and_then(|c| c.kind.as_deref()));
        p.answers_borrower = !input.previous_interaction_id.is_empty()
            && index.answers_borrower(&input.person_id, &input.previous_interaction_id);
        p.at = input.at;
        p.jurisdictions = jurisdictions;
        p.zones = zones;
        p.balance = balance;
        Ok(p)
    }

    /// Answers a Check. With `reserve`, an allowed send is recorded (status
    /// `inProgress`) under the same lock that decided it, and the answer is
    /// kept under `request_id` for retries. `deadline` is checked before the
    /// commit only: once recorded, the answer is returned.
    pub fn check(
        &self,
        input: &CheckInput,
        caller: &Caller,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<CheckOutcome, GuardError> {
        let rules = self.rules().ok_or_else(|| {
            GuardError::Unavailable("no rule set is loaded yet; retry shortly".into())
        })?;
        if !input.reserve {
            let ledger = self.read()?;
            let proposal = self.proposal(input, &ledger.index)?;
            let view = ledger.index.view(&input.person_id)?;
            let decision = engine::decide(&rules, &view, &proposal, now);
            return Ok(CheckOutcome {
                decision,
                interaction_id: None,
                replayed: false,
            });
        }
        let mut ledger = self.write()?;
        ledger.expire_answers(now);
        if !input.request_id.is_empty()
            && let Some(stored) = ledger.answers.get(&input.request_id)
        {
            let same = ledger
                .index
                .find_person(&input.person_id)
                .ok()
                .flatten()
                .map(|k| ledger.index.person_id(k).to_owned());
            if same.as_deref() != Some(stored.person_id.as_str()) {
                return Err(GuardError::field(
                    "requestId",
                    format!(
                        "`{}` was already used for another person; use a new request id for each send",
                        input.request_id
                    ),
                ));
            }
            let mut outcome = stored.outcome.clone();
            outcome.replayed = true;
            return Ok(outcome);
        }
        let proposal = self.proposal(input, &ledger.index)?;
        let view = ledger.index.view(&input.person_id)?;
        let decision = engine::decide(&rules, &view, &proposal, now);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(GuardError::DeadlineExceeded);
        }
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
                ..InteractionInput::default()
            };
            let created = ledger.index.create(&input.person_id, &record, now)?;
            let reservation = Reservation {
                interaction_id: created.id.clone(),
                person_id: created.person_id.clone(),
                request_id: (!input.request_id.is_empty()).then(|| input.request_id.clone()),
                reserved_at: now,
                reserved_by: caller.name.clone(),
                channel: created.channel,
                loan_ids: created.loan_ids.clone(),
            };
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
            ledger.answers.insert(
                input.request_id.clone(),
                StoredAnswer {
                    person_id,
                    outcome: outcome.clone(),
                },
            );
            ledger
                .answer_order
                .push_back((now, input.request_id.clone()));
        }
        Ok(outcome)
    }

    /// Records an interaction. Idempotent on externalId: an existing record
    /// with the same externalId for the same person is returned as it is
    /// (`false`); for another person it is refused.
    pub fn create(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<(Interaction, bool), GuardError> {
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
                return Ok((visible(existing, caller)?.clone(), false));
            }
            return Err(GuardError::AlreadyExists(format!(
                "`externalId` `{ext}` belongs to an interaction of another person"
            )));
        }
        let mut input = input.clone();
        input.created_by = Some(caller.name.clone());
        input.updated_at = None;
        input.deleted_at = None;
        let created = ledger.index.create(person, &input, now)?.clone();
        Ok((created, true))
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
    pub fn update(
        &self,
        person: Option<&str>,
        interaction: &str,
        values: &InteractionInput,
        fields: &[String],
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let mut ledger = self.write()?;
        visible(ledger.index.get(person, interaction)?, caller)?;
        let updated = ledger
            .index
            .update_fields(person, interaction, values, fields, now, Some(&caller.name))?
            .clone();
        ledger.reservations.remove(&updated.id);
        Ok(updated)
    }

    /// Soft-deletes an interaction the lender supplied.
    pub fn delete(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let mut ledger = self.write()?;
        visible(ledger.index.get(person, interaction)?, caller)?;
        let deleted = ledger.index.delete(person, interaction, now)?.clone();
        ledger.reservations.remove(&deleted.id);
        Ok(deleted)
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
        let ListPage { total, data } = ledger.index.list(&q)?;
        Ok((total, data.into_iter().cloned().collect()))
    }

    /// The chain of earlier interactions, nearest first; sensitive links are
    /// left out without the right.
    pub fn previous(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<Vec<Interaction>, GuardError> {
        let ledger = self.read()?;
        visible(ledger.index.get(person, interaction)?, caller)?;
        let chain = ledger.index.previous_chain(person, interaction)?;
        Ok(chain
            .into_iter()
            .filter(|r| caller.sensitive || r.sensitive != Some(true))
            .cloned()
            .collect())
    }

    /// Declares that loans form one debt.
    pub fn declare_debt(
        &self,
        person: &str,
        debt_id: &str,
        loans: &[String],
    ) -> Result<(), GuardError> {
        if person.is_empty() {
            return Err(GuardError::field("personId", "`personId` is required"));
        }
        Ok(self.write()?.index.declare_debt(person, debt_id, loans)?)
    }

    /// Links a person's id and external id; returns our id of the person.
    pub fn link_person(&self, id: &str, external_id: &str) -> Result<String, GuardError> {
        let mut ledger = self.write()?;
        let k = ledger.index.link_person(id, external_id)?;
        Ok(ledger.index.person_id(k).to_owned())
    }

    /// The open reservations, oldest first, optionally of one person.
    pub fn reservations(&self, person: Option<&str>) -> Result<Vec<Reservation>, GuardError> {
        let ledger = self.read()?;
        let who = match person {
            Some(p) => Some(
                ledger
                    .index
                    .find_person(p)?
                    .map(|k| ledger.index.person_id(k).to_owned())
                    .ok_or_else(|| GuardError::NotFound(format!("no person `{p}`")))?,
            ),
            None => None,
        };
        let mut list: Vec<Reservation> = ledger
            .reservations
            .values()
            .filter(|r| who.as_ref().is_none_or(|w| *w == r.person_id))
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            (a.reserved_at, &a.interaction_id).cmp(&(b.reserved_at, &b.interaction_id))
        });
        Ok(list)
    }

    /// Cancels an open reservation: its status becomes `canceled`, which
    /// releases the slot.
    pub fn cancel_reservation(
        &self,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let mut ledger = self.write()?;
        let id = ledger.index.get(None, interaction)?.id.clone();
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
}

fn visible<'a>(r: &'a Interaction, caller: &Caller) -> Result<&'a Interaction, GuardError> {
    if r.sensitive == Some(true) && !caller.sensitive {
        // Not found, rather than forbidden: the caller may not learn that it exists.
        return Err(GuardError::NotFound(format!("no interaction `{}`", r.id)));
    }
    Ok(r)
}

impl From<ValidationError> for GuardError {
    fn from(e: ValidationError) -> Self {
        GuardError::field(e.field(), e.to_string())
    }
}
