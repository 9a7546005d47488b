//! A change to the ledger, and its journal record, both ways.
//!
//! A write is a list of [`Change`]s: the guard plans them, the journal
//! stores them as records ([`Change::record`]), and the ledger applies
//! them ([`super::Ledger::apply`]). Recovery and what-if read records back
//! as changes ([`changes`]) and apply them through the same call, so one
//! place says what each record means. Encoding is kept apart from the
//! state, as raft-engine keeps record encoding apart from its memtables.

use chrono::{DateTime, Utc};

use super::{Reservation, StoredAnswer};
use crate::index::PersonNames;
use crate::model::{Channel, Convo, Interaction, Media};
use crate::pb::journal::{self, Record, record::Op};
use crate::restrictions::Restriction;
use crate::wire;

/// One change to the ledger: the full new state of one thing.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A person's names; `at` is when (unset in snapshots).
    Person {
        /// Every name of the person.
        names: PersonNames,
        /// When the change was made.
        at: Option<DateTime<Utc>>,
    },
    /// The loans of one declared account of a person.
    Debt {
        /// Our id of the person.
        person_id: String,
        /// The account.
        debt_id: String,
        /// Its loans.
        loan_ids: Vec<String>,
        /// When it was declared (unset in snapshots).
        at: Option<DateTime<Utc>>,
    },
    /// An interaction's full state, new or changed.
    Interaction(Box<Interaction>),
    /// A restriction's full state, new or ended.
    Restriction(Box<Restriction>),
    /// A reservation a reserving Check opened.
    ReservationOpened(Reservation),
    /// A reservation closed by an update, a delete or a cancel, by
    /// interaction id.
    ReservationClosed(String),
    /// An answer kept for retries of a reserving Check.
    Answer {
        /// The Check's request id.
        request_id: String,
        /// The answer and whom it was for.
        answer: StoredAnswer,
    },
    /// A conversation's full state.
    Convo(Convo),
}

/// Why a journal record cannot be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a journal record ({kind}) cannot be applied: {reason}")]
pub struct ApplyError {
    /// The record's kind (`interaction`, `debt`, `unknown`...).
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ApplyError {
    pub(super) fn new(kind: &'static str, reason: impl Into<String>) -> ApplyError {
        ApplyError {
            kind,
            reason: reason.into(),
        }
    }
}

impl Change {
    /// The journal record of the change.
    ///
    /// A restriction that uses `days` is the record kind `restriction_v2`:
    /// a release that knows only `restriction` would decode it with the
    /// days dropped (prost keeps no unknown fields) and read a
    /// Tuesday-only designation as one for every day, whereas an unknown
    /// record kind makes it refuse to start. Every other restriction is
    /// written as `restriction`, byte for byte as before, so that older
    /// releases still read journals that do not use days.
    pub fn record(&self) -> Record {
        match self {
            Change::Person { names, at } => person_record(names, *at),
            Change::Debt {
                person_id,
                debt_id,
                loan_ids,
                at,
            } => Record {
                op: Some(Op::Debt(journal::Debt {
                    person_id: person_id.clone(),
                    debt_id: debt_id.clone(),
                    loan_ids: loan_ids.clone(),
                    at: at.map(wire::ts),
                })),
            },
            Change::Interaction(r) => interaction_record(r),
            Change::Restriction(r) => restriction_record(r),
            Change::ReservationOpened(r) => reservation_record(r),
            Change::ReservationClosed(id) => Record {
                op: Some(Op::ReservationClosed(id.clone())),
            },
            Change::Answer { request_id, answer } => answer_record(request_id, answer),
            Change::Convo(c) => Record {
                op: Some(Op::Convo(wire::convo_pb_of(c))),
            },
        }
    }

    /// When the change took effect, for the changes that carry a time: an
    /// interaction's latest of created, updated and deleted; a
    /// restriction's recording or end; a person's or account's change.
    /// What-if orders the history against its decisions by it.
    pub fn effective_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Change::Person { at, .. } | Change::Debt { at, .. } => *at,
            Change::Interaction(i) => [Some(i.created_at), i.updated_at, i.deleted_at]
                .into_iter()
                .flatten()
                .max(),
            // Added when recorded, ended when its end took effect.
            Change::Restriction(r) => [Some(r.recorded_at), r.ended_at]
                .into_iter()
                .flatten()
                .max(),
            Change::ReservationOpened(_)
            | Change::ReservationClosed(_)
            | Change::Answer { .. }
            | Change::Convo(_) => None,
        }
    }

    /// The interaction whose state the change writes, if any.
    pub fn interaction_id(&self) -> Option<&str> {
        match self {
            Change::Interaction(i) => Some(&i.id),
            Change::Person { .. }
            | Change::Debt { .. }
            | Change::Restriction(_)
            | Change::ReservationOpened(_)
            | Change::ReservationClosed(_)
            | Change::Answer { .. }
            | Change::Convo(_) => None,
        }
    }

    /// Our id of the person the change is about, if it names one: the
    /// cluster's subject for it ([`crate::cluster::ClusterConfig::subject`]).
    pub fn person_id(&self) -> Option<&str> {
        match self {
            Change::Person { names, .. } => Some(&names.id),
            Change::Debt { person_id, .. } => Some(person_id),
            Change::Interaction(i) => Some(&i.person_id),
            Change::Restriction(r) => Some(&r.person_id),
            Change::ReservationOpened(r) => Some(&r.person_id),
            Change::Answer { answer, .. } => Some(&answer.person_id),
            Change::ReservationClosed(_) | Change::Convo(_) => None,
        }
    }

    /// The stored audio the change names, with whether its interaction is
    /// deleted: what a backup must copy.
    pub fn media(&self) -> Vec<(&Media, bool)> {
        match self {
            Change::Interaction(i) => [&i.recording, &i.voicemail]
                .into_iter()
                .flatten()
                .map(|m| (m.as_ref(), i.deleted_at.is_some()))
                .collect(),
            Change::Person { .. }
            | Change::Debt { .. }
            | Change::Restriction(_)
            | Change::ReservationOpened(_)
            | Change::ReservationClosed(_)
            | Change::Answer { .. }
            | Change::Convo(_) => Vec::new(),
        }
    }

    /// True for a record that must never travel inside a batch: the
    /// record kind `restriction_v2`. An older release checks the kind of
    /// every record it reads, and refuses an unknown one naming the file
    /// and offset, but the records inside a batch only when it applies
    /// them (and its backup would copy them emptied).
    pub fn travels_alone(&self) -> bool {
        matches!(self, Change::Restriction(r) if needs_v2(r))
    }
}

/// True if an older release would misread the restriction as the record
/// kind `restriction`: it names days of the week, or it is a consent to
/// another time (a kind an older release does not know: it would refuse
/// the record only when applying it, and its backup would copy it as is;
/// as `restriction_v2` it is refused at once, with its file and offset).
/// A cease's `mailType` and a consent's `written` need no new kind: a
/// release that drops them reads the mail type as unknown and the consent
/// as unwritten, both the strict way.
fn needs_v2(r: &Restriction) -> bool {
    !r.days.is_empty() || r.kind == crate::restrictions::RestrictionKind::ConsentToTime
}

/// [`Change::Person`]'s record, from the names.
pub(super) fn person_record(names: &PersonNames, at: Option<DateTime<Utc>>) -> Record {
    Record {
        op: Some(Op::Person(journal::Person {
            id: names.id.clone(),
            external_ids: names.external_ids.clone(),
            alias_ids: names.aliases.clone(),
            at: at.map(wire::ts),
        })),
    }
}

/// [`Change::Interaction`]'s record, from a reference (a snapshot encodes
/// every interaction without copying it).
pub(super) fn interaction_record(r: &Interaction) -> Record {
    Record {
        op: Some(Op::Interaction(wire::pb_of(r))),
    }
}

/// [`Change::Restriction`]'s record (see [`Change::record`] for the kind).
pub(super) fn restriction_record(r: &Restriction) -> Record {
    let pb = wire::restriction_pb_of(r);
    Record {
        op: Some(if needs_v2(r) {
            Op::RestrictionV2(pb)
        } else {
            Op::Restriction(pb)
        }),
    }
}

/// [`Change::ReservationOpened`]'s record.
pub(super) fn reservation_record(r: &Reservation) -> Record {
    Record {
        op: Some(Op::ReservationOpened(journal::ReservationOpened {
            interaction_id: r.interaction_id.clone(),
            person_id: r.person_id.clone(),
            request_id: r.request_id.clone().unwrap_or_default(),
            reserved_at: Some(wire::ts(r.reserved_at)),
            reserved_by: r.reserved_by.clone(),
            channel: r.channel.as_str().to_owned(),
            loan_ids: r.loan_ids.clone(),
        })),
    }
}

/// [`Change::Answer`]'s record.
pub(super) fn answer_record(request_id: &str, answer: &StoredAnswer) -> Record {
    Record {
        op: Some(Op::Answer(journal::StoredAnswer {
            request_id: request_id.to_owned(),
            person_id: answer.person_id.clone(),
            stored_at: Some(wire::ts(answer.stored_at)),
            response: Some(wire::check_response_of(&answer.outcome)),
        })),
    }
}

/// A journal record read back as changes, in order: a batch is its
/// records; each one that cannot be read is an error in its place, so that
/// a strict reader stops there and a lenient one skips it alone.
pub fn changes(record: Record) -> Vec<Result<Change, ApplyError>> {
    let mut out = Vec::with_capacity(1);
    read(record, &mut out);
    out
}

fn read(record: Record, out: &mut Vec<Result<Change, ApplyError>>) {
    let change = match record.op {
        Some(Op::Batch(batch)) => {
            for r in batch.records {
                read(r, out);
            }
            return;
        }
        Some(Op::Interaction(i)) => {
            let id = i.id.clone();
            wire::interaction_from(i)
                .map(|r| Change::Interaction(Box::new(r)))
                .map_err(|p| ApplyError::new("interaction", format!("{id}: {}", p.message)))
        }
        Some(Op::Person(p)) => Ok(Change::Person {
            at: p.at.as_ref().and_then(|t| wire::time("at", t).ok()),
            names: PersonNames {
                id: p.id,
                aliases: p.alias_ids,
                external_ids: p.external_ids,
            },
        }),
        Some(Op::Debt(d)) => Ok(Change::Debt {
            at: d.at.as_ref().and_then(|t| wire::time("at", t).ok()),
            person_id: d.person_id,
            debt_id: d.debt_id,
            loan_ids: d.loan_ids,
        }),
        Some(Op::ReservationOpened(r)) => wire::opt_time("reservedAt", &r.reserved_at)
            .map(|at| {
                Change::ReservationOpened(Reservation {
                    interaction_id: r.interaction_id,
                    person_id: r.person_id,
                    request_id: (!r.request_id.is_empty()).then_some(r.request_id),
                    reserved_at: at.unwrap_or_default(),
                    reserved_by: r.reserved_by,
                    channel: Channel::parse(&r.channel).unwrap_or(Channel::Voice),
                    loan_ids: r.loan_ids,
                })
            })
            .map_err(|p| ApplyError::new("reservation", p.message)),
        Some(Op::ReservationClosed(id)) => Ok(Change::ReservationClosed(id)),
        Some(Op::Answer(a)) => {
            let response = a.response.unwrap_or_default();
            wire::outcome_of(&response)
                .and_then(|outcome| {
                    let stored_at = wire::opt_time("storedAt", &a.stored_at)?.unwrap_or_default();
                    Ok(Change::Answer {
                        request_id: a.request_id,
                        answer: StoredAnswer {
                            person_id: a.person_id,
                            stored_at,
                            outcome,
                        },
                    })
                })
                .map_err(|p| ApplyError::new("answer", p.message))
        }
        // Both kinds hold the full state; `restriction_v2` only marks one
        // an older release must not read.
        Some(Op::Restriction(r) | Op::RestrictionV2(r)) => {
            let id = r.id.clone();
            wire::restriction_from(r)
                .map(|r| Change::Restriction(Box::new(r)))
                .map_err(|p| ApplyError::new("restriction", format!("{id}: {}", p.message)))
        }
        Some(Op::Convo(c)) => {
            let id = c.interaction_id.clone();
            wire::convo_from(c)
                .map(Change::Convo)
                .map_err(|p| ApplyError::new("convo", format!("{id}: {}", p.message)))
        }
        None => Err(ApplyError::new(
            "unknown",
            "a record of a kind this release does not know",
        )),
    };
    out.push(change);
}
