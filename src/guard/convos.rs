//! Conversations of text and chat interactions: read, join, leave, close.

use chrono::{DateTime, SubsecRound, Utc};

use super::access::visible;
use super::interactions::close_reservation;
use super::{Guard, GuardError};
use crate::ledger::{Change, Ledger};
use crate::model::{Channel, Convo, ConvoAgent, Interaction, InteractionInput, JoinType, Status};
use crate::request::Caller;

/// The conversation of `r` as it stands (an empty, open one if nobody
/// has joined or closed it yet); only text and chat interactions have one.
fn convo_of(ledger: &Ledger, r: &Interaction, action: &str) -> Result<Convo, GuardError> {
    if !matches!(r.channel, Channel::Text | Channel::Chat) {
        return Err(GuardError::FailedPrecondition(format!(
            "cannot {action} the conversation of interaction `{}`: its channel is `{}`, and only `text` and `chat` interactions have a conversation",
            r.id,
            r.channel.as_str()
        )));
    }
    if let Some(c) = ledger.convo(&r.id) {
        return Ok(c.clone());
    }
    // Memory holds the conversations of the interactions it holds, but
    // not of one brought back from disk (nor of one on disk only): that
    // one is read from the store first.
    if !ledger.index.knows(&r.id) || ledger.index.came_from_disk(&r.id) {
        return Err(GuardError::ConvoOnDisk {
            id: r.id.clone(),
            channel: r.channel,
        });
    }
    Ok(Convo::open(&r.id, r.channel))
}

/// Refuses a change to a closed conversation, or to a deleted
/// interaction's.
fn open_convo(r: &Interaction, convo: &Convo, done: &str) -> Result<(), GuardError> {
    if let Some((at, by)) = &convo.closed {
        return Err(GuardError::FailedPrecondition(format!(
            "the conversation of interaction `{}` was closed by `{by}` at {}; a closed conversation cannot be {done}",
            r.id,
            at.trunc_subsecs(0).to_rfc3339()
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

impl Guard {
    /// The conversation of a text or chat interaction, found as
    /// [`Guard::get`] finds the interaction; other channels have none
    /// (FAILED_PRECONDITION).
    pub fn convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<Convo, GuardError> {
        let found = self.find(person, interaction)?;
        visible(&found, caller)?;
        let in_memory = convo_of(&*self.read()?, &found, "get");
        match in_memory {
            // Read from the store, without the lock, and not kept: a read
            // of old history never grows memory.
            Err(GuardError::ConvoOnDisk { id, channel }) => self.stored_convo(&id, channel),
            other => other,
        }
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
    ) -> Result<Convo, GuardError> {
        let join_type = if join_type.is_empty() {
            JoinType::Solo
        } else {
            JoinType::parse(join_type).ok_or_else(|| {
                GuardError::field(
                    "joinType",
                    format!(
                        "`joinType` value `{}` is not allowed; allowed: `solo` (the default), `add`, `takeover`",
                        crate::model::echo(join_type)
                    ),
                )
            })?
        };
        if !caller.agent {
            return Err(GuardError::PermissionDenied(format!(
                "only agents may join a conversation, and the key `{}` is not an agent (give it `agent: true` in the keys file)",
                caller.name
            )));
        }
        let convo = self.write_through(|ledger| {
            let found = visible(ledger.index.get(person, interaction)?, caller)?;
            let mut convo = convo_of(ledger, found, "join")?;
            open_convo(found, &convo, "joined")?;
            let others: Vec<&str> = convo
                .agents
                .iter()
                .map(|a| a.name.as_str())
                .filter(|n| *n != caller.name)
                .collect();
            let already = convo.agents.iter().any(|a| a.name == caller.name);
            if join_type == JoinType::Solo && !already && !others.is_empty() {
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
            if join_type == JoinType::Takeover && !others.is_empty() {
                convo.agents.retain(|a| a.name == caller.name);
                changed = true;
            }
            if !already {
                convo.agents.push(ConvoAgent {
                    name: caller.name.clone(),
                    joined_at: now,
                    join_type,
                });
                changed = true;
            }
            let changes = if changed {
                vec![Change::Convo(convo.clone())]
            } else {
                Vec::new()
            };
            Ok((changes, convo))
        }).await?;
        Ok(convo)
    }

    /// The caller leaves an interaction's conversation; refused when it is
    /// not in it, or when the conversation is closed.
    pub async fn leave_convo(
        &self,
        person: Option<&str>,
        interaction: &str,
        caller: &Caller,
    ) -> Result<Convo, GuardError> {
        let convo = self.write_through(|ledger| {
            let found = visible(ledger.index.get(person, interaction)?, caller)?;
            let mut convo = convo_of(ledger, found, "leave")?;
            open_convo(found, &convo, "left")?;
            if !convo.agents.iter().any(|a| a.name == caller.name) {
                return Err(GuardError::FailedPrecondition(format!(
                    "`{}` is not in the conversation of interaction `{}`, so it cannot leave it",
                    caller.name, found.id
                )));
            }
            convo.agents.retain(|a| a.name != caller.name);
            Ok((vec![Change::Convo(convo.clone())], convo))
        }).await?;
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
    ) -> Result<Convo, GuardError> {
        let convo = self
            .write_through(|ledger| {
                let found = visible(ledger.index.get(person, interaction)?, caller)?;
                let mut convo = convo_of(ledger, found, "close")?;
                open_convo(found, &convo, "closed")?;
                let mut changes = Vec::new();
                if found.channel == Channel::Text {
                    let values = InteractionInput {
                        status: Some(Status::Attempted.as_str().to_owned()),
                        status_details: Some("textConvoClosedByAgent".to_owned()),
                        ..InteractionInput::default()
                    };
                    let fields = ["status".to_owned(), "statusDetails".to_owned()];
                    let updated = ledger.index.plan_update_fields(
                        None,
                        &found.id,
                        &values,
                        &fields,
                        now,
                        Some(&caller.name),
                    )?;
                    changes.push(Change::Interaction(Box::new(updated)));
                    changes.extend(close_reservation(ledger, &found.id));
                }
                convo.closed = Some((now, caller.name.clone()));
                changes.push(Change::Convo(convo.clone()));
                Ok((changes, convo))
            })
            .await?;
        Ok(convo)
    }
}
