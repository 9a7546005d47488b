//! Interactions: record, import, read, change, delete, list, and follow
//! the chain of earlier ones.

use chrono::{DateTime, Utc};

use super::Pending;
use super::access::visible;
use super::{Guard, GuardError};
use crate::index::{ListPage, ListQuery, Resolved};

use crate::ledger::Change;
use crate::model::{Interaction, InteractionInput, Status};
use crate::request::Caller;

/// The changes that store a planned interaction: its person first, when
/// the write registers them.
fn stored(who: &Resolved, record: Interaction, now: DateTime<Utc>) -> Vec<Change> {
    let mut changes = super::registration(who, now);
    changes.push(Change::Interaction(Box::new(record)));
    changes
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

/// The change that closes an interaction's open reservation, if it has
/// one: any update, delete or cancel reports what happened to the send.
pub(super) fn close_reservation(
    ledger: &crate::ledger::Ledger,
    interaction_id: &str,
) -> Option<Change> {
    ledger
        .reservations()
        .contains_key(interaction_id)
        .then(|| Change::ReservationClosed(interaction_id.to_owned()))
}

impl Guard {
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
        self.create_durably(person, input, caller, now, false).await
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
    ) -> Result<(Interaction, bool, Pending), GuardError> {
        let ((record, created), commit) = self.create_now(person, input, caller, now, true)?;
        Ok((record, created, commit))
    }

    /// [`Guard::import`] on a cluster node, where a record is durable
    /// once the stream has acknowledged it: published, caught up and
    /// decided again on a conflict, as a create is.
    /// Returns the record and whether it was new.
    pub async fn import_published(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<(Interaction, bool), GuardError> {
        self.create_durably(person, input, caller, now, true).await
    }

    /// [`Guard::create_now`], answered once durable (decided again on a
    /// cluster's conflict): a create, or an import's (`keep_created`).
    async fn create_durably(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
        keep_created: bool,
    ) -> Result<(Interaction, bool), GuardError> {
        self.retrying(|| self.create_now(person, input, caller, now, keep_created))
            .await
    }

    fn create_now(
        &self,
        person: &str,
        input: &InteractionInput,
        caller: &Caller,
        now: DateTime<Utc>,
        keep_created: bool,
    ) -> Result<((Interaction, bool), Pending), GuardError> {
        if person.is_empty() {
            return Err(GuardError::field("personId", "`personId` is required"));
        }
        // An externalId or id already taken by an interaction on disk only
        // must be seen by the plan below, as one in memory is.
        let ext = input
            .external_id
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| format!("ext-{e}"));
        self.preload(ext.as_deref().into_iter().chain(input.id.as_deref()))?;
        self.commit(|ledger| {
            // One of them let go again since `preload` brought it back
            // (a walk ran in between): the answer below reads it whole, so
            // it is read back first.
            for name in ext.as_deref().into_iter().chain(input.id.as_deref()) {
                if ledger.index.is_let_go(name) {
                    return Err(GuardError::OnDisk {
                        person: person.to_owned(),
                        id: name.to_owned(),
                    });
                }
            }
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
                        // A record the caller may not read (sensitive
                        // without the right, or another company's): the id
                        // is taken, but its content is not returned.
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
                    return Ok((Vec::new(), (existing.clone(), false)));
                }
                return Err(GuardError::AlreadyExists(format!(
                    "`externalId` `{}` belongs to an interaction of another person",
                    crate::model::echo(ext)
                )));
            }
            // A completed send dated in the future is refused at the API,
            // after a retry has had its first answer; an import
            // (`keep_created`) is history and is taken as it is.
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
                    return Ok((Vec::new(), (existing.clone(), false)));
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
                // upstream record's (a record deleted upstream stays
                // deleted).
                input.updated_at = None;
                input.deleted_at = None;
            }
            let (who, created) = ledger.index.plan_create(person, &input, now)?;
            Ok((stored(&who, created.clone(), now), (created, true)))
        })
    }

    /// One interaction; a sensitive one is not found without the right.
    pub fn get(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<Interaction, GuardError> {
        let found = self.find(person, interaction)?;
        visible(&found, caller)?;
        Ok(found)
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
        // A new externalId that an interaction on disk only holds must be
        // seen by the plan, as one in memory is.
        let ext = values
            .external_id
            .as_deref()
            .filter(|e| {
                !e.is_empty()
                    && fields
                        .iter()
                        .any(|f| crate::model::field_name(f) == Some("externalId"))
            })
            .map(|e| format!("ext-{e}"));
        self.preload(ext.as_deref())?;
        let updated = self
            .write_through(|ledger| {
                let current = visible(ledger.index.get(person, interaction)?, caller)?;
                updated_start(current, values, fields, now)?;
                let updated = ledger.index.plan_update_fields(
                    person,
                    interaction,
                    values,
                    fields,
                    now,
                    Some(&caller.name),
                )?;
                let mut changes = vec![Change::Interaction(Box::new(updated.clone()))];
                changes.extend(close_reservation(ledger, &updated.id));
                Ok((changes, updated))
            })
            .await?;
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
        let deleted = self
            .write_through(|ledger| {
                visible(ledger.index.get(person, interaction)?, caller)?;
                let deleted = ledger.index.plan_delete(person, interaction, now)?;
                let mut changes = vec![Change::Interaction(Box::new(deleted.clone()))];
                changes.extend(close_reservation(ledger, &deleted.id));
                Ok((changes, deleted))
            })
            .await?;
        Ok(deleted)
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
        let found = self.find(person, interaction)?;
        visible(&found, caller)?;
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

    /// Lists interactions; sensitive ones only with the right.
    pub fn list(
        &self,
        query: &ListQuery,
        caller: &Caller,
    ) -> Result<(usize, Vec<Interaction>), GuardError> {
        let mut q = query.clone();
        q.include_sensitive = caller.sensitive;
        q.company = caller.company.clone();
        let scope = {
            let ledger = self.read()?;
            match ledger.index.list_on_disk(&q)? {
                None => {
                    let ListPage { total, data } = ledger.index.list(&q)?;
                    return Ok((total, data.into_iter().cloned().collect()));
                }
                Some(scope) => scope,
            }
        };
        // Candidates on disk only: read from the store without the lock,
        // only those the filters keep, then listed with the rest. If
        // memory let go of more in between (`Guard::let_go`), what it let
        // go of may have been read from neither: read again.
        for _ in 0..4 {
            let (on_disk, epoch) = self.list_from_disk(&scope, &q)?;
            let ledger = self.read()?;
            if ledger.index.epoch() != epoch {
                continue;
            }
            let ListPage { total, data } = ledger.index.list_with(&q, &on_disk)?;
            return Ok((total, data.into_iter().cloned().collect()));
        }
        Err(GuardError::Unavailable(
            "the history kept in memory moved while this listing read the store, four times; retry"
                .into(),
        ))
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
        let start = self.find(person, interaction)?;
        visible(&start, caller)?;
        if let Some(c) = company
            && start.company_id.as_deref() != Some(c)
        {
            return Err(GuardError::NotFound(format!(
                "no interaction `{}` in company `{}`",
                crate::model::echo(interaction),
                crate::model::echo(c)
            )));
        }
        // The walk: each link from memory or else the store. A link to an
        // unknown id or to another person's interaction ends the chain; a
        // cycle is cut at its first repeat.
        let owner = |r: &Interaction| -> Result<_, GuardError> {
            Ok(self.read()?.index.find_person(&r.person_id)?)
        };
        let start_owner = owner(&start)?;
        let mut seen = vec![start.id.clone()];
        let mut chain = Vec::new();
        let mut cur = start;
        while let Some(prev) = cur.previous_interaction_id.clone() {
            let next = match self.find(None, &prev) {
                Ok(r) => r,
                Err(GuardError::NotFound(_) | GuardError::Invalid(_)) => break,
                Err(e) => return Err(e),
            };
            if seen.contains(&next.id) || owner(&next)? != start_owner {
                break;
            }
            seen.push(next.id.clone());
            chain.push(next.clone());
            cur = next;
            if chain.len() >= super::MAX_LOADS {
                break;
            }
        }
        Ok(chain
            .into_iter()
            // What the caller may not see is skipped (sensitive without the
            // right, another company's); the walk goes on through it.
            .filter(|r| visible(r, caller).is_ok())
            .filter(|r| company.is_none_or(|c| r.company_id.as_deref() == Some(c)))
            .collect())
    }
}
