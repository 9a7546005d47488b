//! The conversation of a text or chat interaction: which agents are in it,
//! and whether it is closed.
//!
//! Upstream serves it beside the interaction (`/interactions/{id}/convo`);
//! we keep it in the domain so that the guard decides joins, leaves and
//! closes on plain values, and only the protobuf layer knows its wire form.

use chrono::{DateTime, Utc};

use super::Channel;

/// How an agent joins a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Only when no other agent is in it (the default).
    Solo,
    /// Alongside the agents in it.
    Add,
    /// Removing the agents in it first.
    Takeover,
}

impl JoinType {
    /// Every name, as the API spells them.
    pub const NAMES: &'static [&'static str] = &["solo", "add", "takeover"];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinType::Solo => "solo",
            JoinType::Add => "add",
            JoinType::Takeover => "takeover",
        }
    }

    /// Reads an API name; `None` for anything else.
    pub fn parse(text: &str) -> Option<JoinType> {
        match text {
            "solo" => Some(JoinType::Solo),
            "add" => Some(JoinType::Add),
            "takeover" => Some(JoinType::Takeover),
            _ => None,
        }
    }
}

/// An agent in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvoAgent {
    /// The agent's key name.
    pub name: String,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// How it joined.
    pub join_type: JoinType,
}

/// The conversation of one text or chat interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convo {
    /// Our id of the interaction.
    pub interaction_id: String,
    /// Its channel: text or chat.
    pub channel: Channel,
    /// The agents in it now, in the order they joined.
    pub agents: Vec<ConvoAgent>,
    /// When it was closed and by whom; a closed one cannot be joined.
    pub closed: Option<(DateTime<Utc>, String)>,
}

impl Convo {
    /// The conversation of an interaction nobody has joined or closed yet.
    pub fn open(interaction_id: &str, channel: Channel) -> Convo {
        Convo {
            interaction_id: interaction_id.to_owned(),
            channel,
            agents: Vec::new(),
            closed: None,
        }
    }
}
