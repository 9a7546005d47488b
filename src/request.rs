//! What a caller asks: a Check's facts as they travel, who asks, and the
//! answer, with the one reading of a Check into an engine
//! [`Proposal`].
//!
//! This sits below the protobuf conversions and the guard: the API,
//! the decision log, what-if and the rule tests all speak [`CheckInput`],
//! and all read it through [`build_proposal`], so a field added to a Check
//! is added once. Nothing here knows about protobuf or the journal.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::{self, Decision, Proposal};
use crate::index::Index;
use crate::location::{self, PostalCode};
use crate::model::{
    self, AnyId, Channel, ContactInput, ContactKind, Direction, Subject, Theme, describe_allowed,
};
use crate::problem::FieldProblem;
use crate::restrictions::normalize_contact;

/// The earliest `at` a Check may name (1970-01-01), in Unix seconds.
pub const MIN_AT: i64 = 0;
/// The latest `at` a Check may name (2999-12-31), in Unix seconds.
pub const MAX_AT: i64 = 32_503_593_600;
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

/// A Check as asked: the send's facts as strings, exactly as they travel.
///
/// It is the one shape of a Check below the API: the API builds it from
/// a `CheckRequest` ([`crate::wire::check_input_of`]), the decision log
/// writes it as the `request` of a line (these field names, in this
/// order), what-if reads it back from there, and rule tests and scenarios
/// write it as their `send`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
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
    #[serde(with = "rfc3339")]
    pub at: Option<DateTime<Utc>>,
    pub jurisdictions: Vec<String>,
    pub time_zones: Vec<String>,
    pub reserve: bool,
    pub request_id: String,
    pub balance: String,
    pub required_by_law: bool,
    pub consent_request: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub postal_code: String,
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
    pub repeated: bool,
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
            model::echo(text),
            describe_allowed(text, names)
        ),
    })
}

/// Reads a Check's facts into a [`Proposal`], refusing every bad field (all
/// of them, each named). `index` tells whether the send answers the
/// borrower; `now` is the moment when `at` is unset.
pub fn build_proposal(
    input: &CheckInput,
    index: &Index,
    now: DateTime<Utc>,
) -> Result<Proposal, Vec<FieldProblem>> {
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
                            model::echo(&input.balance)
                        ),
                    })
                })
                .ok()
    };
    if input.loan_ids.len() > model::MAX_LOANS
        || input
            .loan_ids
            .iter()
            .any(|l| l.is_empty() || l.chars().count() > model::MAX_ID_CHARS)
    {
        problems.push(FieldProblem {
            field: "loanIds".into(),
            message: format!(
                "`loanIds` allows at most {} ids of 1 to {} characters each",
                model::MAX_LOANS,
                model::MAX_ID_CHARS
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
                    model::echo(&input.previous_interaction_id)
                ),
            });
    }
    if input.request_id.chars().count() > model::MAX_ID_CHARS {
        problems.push(FieldProblem {
            field: "requestId".into(),
            message: format!(
                "`requestId` allows at most {} characters",
                model::MAX_ID_CHARS
            ),
        });
    }
    let postal_code = if input.postal_code.is_empty() {
        None
    } else {
        PostalCode::parse(&input.postal_code)
            .map_err(|e| problems.push(FieldProblem::new("postalCode", e.to_string())))
            .ok()
    };
    if let Some(at) = input.at
        && !(MIN_AT..=MAX_AT).contains(&at.timestamp())
    {
        problems.push(FieldProblem::new(
            "at",
            format!("`at` {at} is out of range; allowed: 1970-01-01 to 2999-12-31"),
        ));
    }
    let Some(channel) = channel else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut p = Proposal::new(channel, direction.unwrap_or(Direction::Outbound));
    p.theme = theme;
    p.subject = subject;
    p.loans = input.loan_ids.clone();
    p.is_transactional = input.is_transactional;
    p.contact = ContactKind::from_record(input.contact.as_ref().and_then(|c| c.kind.as_deref()));
    // Locations read from the contact: they only ever add (src/location).
    // A number: a phone kind, or an unknown kind on a channel that dials.
    if p.contact.is_phone()
        || p.contact == ContactKind::Unknown
            && matches!(channel, Channel::Voice | Channel::Text | Channel::Fax)
    {
        p.derived.extend(
            input
                .contact
                .as_ref()
                .and_then(|c| c.value.as_deref())
                .and_then(location::from_number),
        );
    }
    p.derived
        .extend(postal_code.as_ref().and_then(location::from_postal_code));
    p.contact_value = input
        .contact
        .as_ref()
        .and_then(|c| c.value.as_deref())
        .filter(|v| !v.trim().is_empty())
        .map(normalize_contact);
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
    p.jurisdictions = jurisdictions;
    p.zones = zones;
    p.balance = balance;
    Ok(p)
}

/// `at` as the decision log has always written it: RFC 3339 with a
/// `+00:00` offset (chrono's `to_rfc3339`), or null; read back in any
/// RFC 3339 form.
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(t) => s.serialize_str(&t.to_rfc3339()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        serde::de::Error::custom(format!(
                            "`at` value `{}` is not an RFC 3339 time ({e}); allowed: such as `2020-04-08T14:00:00Z`",
                            crate::model::echo(&t)
                        ))
                    })
            })
            .transpose()
    }
}
