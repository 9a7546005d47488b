//! Check: decide a send, and with `reserve`, record it under the same
//! lock that decided it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::Pending;
use super::{Guard, GuardError};
use crate::engine;
use crate::journal::Journal;
use crate::ledger::{Change, Reservation, StoredAnswer};
use crate::model::{InteractionInput, Status};
use crate::request::{Caller, CheckInput, CheckOutcome, build_proposal};
use crate::rules::RuleSet;

/// How far before the server's clock a reserving Check's `at` may be by
/// default: room for clock skew between the pipeline's hosts and ours.
pub const DEFAULT_RESERVE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// A tolerance as the seconds kept in the guard; `None` (any) is -1.
pub(super) fn tolerance_seconds(tolerance: Option<std::time::Duration>) -> i64 {
    tolerance.map_or(-1, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

impl Guard {
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
        Ok(self.check_bounded(input, caller, now, deadline).await?.0)
    }

    /// [`Guard::check`], with how stale the answer may be: zero but on a
    /// cluster node that allows stale reads
    /// ([`Guard::read_barrier_bounded`]).
    pub async fn check_bounded(
        &self,
        input: &CheckInput,
        caller: &Caller,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<(CheckOutcome, std::time::Duration), GuardError> {
        let stale = self.read_barrier_bounded().await?;
        let outcome = self
            .retrying(|| self.check_now(input, caller, now, deadline))
            .await?;
        Ok((outcome, stale))
    }

    /// Sets how far before `now` a reserving Check's `at` may be (default
    /// [`DEFAULT_RESERVE_TOLERANCE`]). A reservation is recorded at its
    /// `at`, so one named in the past would count in the past's windows
    /// while the send goes out now, and a cap could be exceeded. `None`
    /// accepts any `at`: for loading recorded history, never for a live
    /// pipeline.
    pub fn set_reserve_tolerance(&self, tolerance: Option<std::time::Duration>) {
        self.reserve_tolerance
            .store(tolerance_seconds(tolerance), Ordering::Relaxed);
    }

    /// Refuses a reservation named too far in the past. Checked after the
    /// request-id lookup, so a retry still gets its first answer.
    fn check_reserve_time(&self, input: &CheckInput, now: DateTime<Utc>) -> Result<(), GuardError> {
        let tolerance = self.reserve_tolerance.load(Ordering::Relaxed);
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

    /// Refuses a Check whose windows reach back before the history kept
    /// in memory (a send named far in the past, `at`): the interactions
    /// there are on disk only, and counting without them would allow what
    /// they block.
    fn check_memory(
        &self,
        input: &CheckInput,
        now: DateTime<Utc>,
        rules: &RuleSet,
    ) -> Result<(), GuardError> {
        let from = self.memory_from.load(Ordering::SeqCst);
        if from == i64::MIN {
            return Ok(());
        }
        let at = input.at.unwrap_or(now);
        // The longest window of the rules in force (a count since a
        // receipt reads the horizon at most, and the engine already treats
        // what is older than the horizon as unknown).
        // A day more: a window of local days reaches back one more hour
        // across a change of the clocks, and the engine reads a day more.
        let reach = (i64::from(rules.longest_window_days()) + 1) * 86_400;
        if at.timestamp().saturating_sub(reach) >= from {
            return Ok(());
        }
        let from = DateTime::from_timestamp(from, 0).unwrap_or_default();
        Err(GuardError::FailedPrecondition(format!(
            "the send's time {} is too far in the past: its windows reach back {} days, before {}, and the history before that is on disk only (memory keeps the horizon and a day before now); a Check is for a send now or later",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            reach / 86_400,
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )))
    }

    /// Puts back in memory the answer kept for `request_id` when it left
    /// memory for room but is still within its 24 hours (read from the
    /// store without the lock), so that the retry is answered from it.
    fn recall_answer(&self, request_id: &str, now: DateTime<Utc>) -> Result<(), GuardError> {
        // What leaves memory now leaves it before the question is asked:
        // an answer about to leave is then looked for in the store.
        // One read lock in the common case (nothing to expire, the answer
        // in memory or none ever left it).
        let (expire, maybe) = {
            let ledger = self.read()?;
            (
                ledger.answers_to_expire(now),
                ledger.answer_may_be_on_disk(request_id, now),
            )
        };
        if expire {
            let mut ledger = self.write()?;
            ledger.expire_answers(now);
            if !ledger.answer_may_be_on_disk(request_id, now) {
                return Ok(());
            }
        } else if !maybe {
            return Ok(());
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        let since =
            (now - chrono::Duration::hours(crate::ledger::REQUEST_ID_TTL_HOURS)).timestamp();
        let found = store
            .answer(request_id, since)
            .map_err(|e| GuardError::Internal(e.to_string()))?;
        match found {
            Some(answer) => self.write()?.recall_answer(request_id.to_owned(), answer),
            // Not there: a new request, unless an answer that left memory
            // may not have reached the store yet (the store is behind the
            // frame it left in, or no longer follows the journal).
            None => {
                let needed = self.read()?.answers_left_at_frame();
                let reached = needed == 0
                    || self
                        .follower
                        .as_ref()
                        .is_some_and(|f| !f.failed() && f.applied() >= needed);
                if !reached {
                    return Err(GuardError::Unavailable(
                        "the answer kept for this request id may not have reached the store yet; retry in a few seconds".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sets the most reserving Checks' answers kept in memory for retries
    /// (default [`crate::ledger::MAX_STORED_ANSWERS`]); older ones within
    /// their 24 hours are read from the store.
    pub fn set_answers_in_memory(&self, most: usize) -> Result<(), GuardError> {
        self.write()?.set_answers_in_memory(most);
        Ok(())
    }

    fn check_now(
        &self,
        input: &CheckInput,
        caller: &Caller,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<(CheckOutcome, Pending), GuardError> {
        let rules = self.rules_in_force()?;
        if self.journal.as_ref().is_some_and(Journal::failed) {
            return Err(GuardError::Unavailable(
                "the journal failed; no Check is answered until the server restarts".into(),
            ));
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(GuardError::Unavailable(
                "a journaled change could not be applied; no Check is answered until the server restarts".into(),
            ));
        }
        if !input.reserve {
            let ledger = self.read()?;
            // Under the lock: memory lets go of old history under the
            // write lock, so what this reads is what the check saw.
            self.check_memory(input, now, &rules)?;
            let proposal = build_proposal(input, &ledger.index, now)?;
            let view = ledger.index.view(&input.person_id)?;
            let decision = engine::decide(&rules, &view, &proposal, now);
            // Answer only once every write this decision read is durable: an
            // allow must never rest on a change a crash could take back.
            let commit = self.barrier()?;
            let outcome = CheckOutcome {
                decision,
                interaction_id: None,
                repeated: false,
            };
            return Ok((outcome, commit));
        }
        if !input.request_id.is_empty() {
            self.recall_answer(&input.request_id, now)?;
        }
        let mut ledger = self.write()?;
        self.check_memory(input, now, &rules)?;
        ledger.expire_answers(now);
        if !input.request_id.is_empty()
            && let Some(stored) = ledger.answer(&input.request_id, now)
        {
            // The same person, by the name given then or by whom both names
            // resolve to now (a person first seen in a blocked Check was
            // stored under the name given).
            let resolve = |name: &str| ledger.index.find_person(name).ok().flatten();
            let same = input.person_id == stored.person_id
                || resolve(&input.person_id).is_some_and(|k| {
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
            outcome.repeated = true;
            // The first answer may not be durable yet; wait for everything
            // logged so far before repeating it.
            return Ok((outcome, self.barrier()?));
        }
        self.check_reserve_time(input, now)?;
        let proposal = build_proposal(input, &ledger.index, now)?;
        let view = ledger.index.view(&input.person_id)?;
        let decision = engine::decide(&rules, &view, &proposal, now);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(GuardError::DeadlineExceeded);
        }
        let mut changes = Vec::with_capacity(4);
        let mut interaction_id = None;
        // Whom a kept answer is for: our id, or the name given for a person
        // the guard does not know (a blocked Check registers nobody).
        let mut person_id = match ledger.index.find_person(&input.person_id) {
            Ok(Some(k)) => ledger.index.person_id(k).to_owned(),
            _ => input.person_id.clone(),
        };
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
            let (who, created) = ledger.index.plan_create(&input.person_id, &record, now)?;
            changes.extend(super::registration(&who, now));
            person_id.clone_from(&created.person_id);
            interaction_id = Some(created.id.clone());
            let reservation = Reservation {
                interaction_id: created.id.clone(),
                person_id: created.person_id.clone(),
                request_id: (!input.request_id.is_empty()).then(|| input.request_id.clone()),
                reserved_at: now,
                reserved_by: caller.name.clone(),
                channel: created.channel,
                loan_ids: created.loan_ids.clone(),
            };
            changes.push(Change::Interaction(Box::new(created)));
            changes.push(Change::ReservationOpened(reservation));
        }
        let outcome = CheckOutcome {
            decision,
            interaction_id,
            repeated: false,
        };
        if !input.request_id.is_empty() {
            changes.push(Change::Answer {
                request_id: input.request_id.clone(),
                answer: StoredAnswer {
                    person_id,
                    stored_at: now,
                    outcome: outcome.clone(),
                },
            });
        }
        let commit = self.commit_locked(&mut ledger, changes)?;
        Ok((outcome, commit))
    }
}
