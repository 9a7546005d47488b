//! Borrower restrictions: record, end, list, and explain what each does
//! under the rules in force.

use chrono::{DateTime, Utc};

use super::access::known_person;
use super::{Guard, GuardError};
use crate::ledger::Change;
use crate::model::AnyId;
use crate::problem::FieldProblem;
use crate::request::Caller;
use crate::restrictions::{MAX_NOTE_CHARS, Restriction, RestrictionInput, effect};

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
    /// What it blocks or permits, and its exceptions
    /// ([`crate::restrictions::effect`]).
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
        problems.push(FieldProblem::required("personId"));
    } else if let Err(e) = AnyId::parse("personId", person) {
        problems.push(e.into());
    }
    if input.id.as_deref().is_some_and(|id| !id.is_empty()) {
        problems.push(FieldProblem::new(
            "id",
            "`id` is set by the guard, never on AddRestriction; leave it empty",
        ));
    }
    let reported: Vec<String> = already.iter().map(|p| p.field.clone()).collect();
    problems.extend(already);
    if let Err(errors) = input.check(String::new(), person.to_owned(), String::new(), now) {
        problems.extend(
            errors
                .0
                .into_iter()
                .filter(|p| !reported.contains(&p.field)),
        );
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
        // as it receives it. The record carries the moment, so recovery
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
            problems.push(e.into());
        }
        if !problems.is_empty() {
            return Err(GuardError::Invalid(problems));
        }
        let checked = input
            .check(String::new(), person.to_owned(), caller.name.clone(), now)
            .map_err(|e| GuardError::Invalid(e.0))?;
        let stored = self
            .write_through(|ledger| {
                let (who, stored) = ledger.index.plan_restriction(checked.clone())?;
                let mut changes = super::registration(&who, now);
                changes.push(Change::Restriction(Box::new(stored.clone())));
                Ok((changes, stored))
            })
            .await?;
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
            problems.push(FieldProblem::required("personId"));
        }
        if id.is_empty() {
            problems.push(FieldProblem::required("restrictionId"));
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
            problems.push(FieldProblem::new(
                "endReason",
                format!("`endReason` is longer than {MAX_NOTE_CHARS} characters"),
            ));
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
            problems.push(e.into());
        }
        if !problems.is_empty() {
            return Err(GuardError::Invalid(problems));
        }
        let stored = self.write_through(|ledger| {
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
                end_reason: end_reason.clone(),
                ..current.clone()
            };
            Ok((vec![Change::Restriction(Box::new(ended.clone()))], ended))
        }).await?;
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
        let rules = self.rules_in_force()?;
        let list = self.restrictions(person, true, at)?;
        Ok(list
            .into_iter()
            .map(|r| RestrictionEffect {
                in_force: r.in_force_at(at),
                rule_ids: rules
                    .rules()
                    .iter()
                    .filter(|rule| rule.kind.reads(&r))
                    .map(|rule| rule.id.clone())
                    .collect(),
                effect: effect(&r),
                restriction: r,
            })
            .collect())
    }
}
