//! The interaction model: the upstream Interactions API's record, its
//! vocabularies, its id forms and its validation rules.
//!
//! Records arrive as [`InteractionInput`], whose vocabulary fields are plain
//! strings exactly as they travel over JSON or gRPC, and leave
//! [`InteractionInput::validate`] as an [`Interaction`] whose fields are typed.
//! Every rule the upstream reference states is enforced there, and nothing
//! more: where the reference is silent we accept the value, because refusing
//! a real call's record on a guess would leave a gap in the history, and a
//! gap in the history makes the guard more permissive than the truth.
//!
//! Readings of the reference where it is silent or inconsistent:
//! - statusDetails outside the succeeded / attempted / failed lists (for
//!   example `voiceSpokeWithFirstParty`, `chatBorrowerInactivity`) go with
//!   any status;
//! - direction is checked only for the details whose upstream description
//!   names a direction (see [`StatusDetails::required_direction`]);
//! - agentOutcome is not checked against the channel (upstream states no
//!   such rule, though every outcome is a voice one);
//! - the theme `outOpsLoan`, named only in prose, is accepted;
//! - the agentOutcome `voiceDisconnectedWhileQueuedOnHold`, named only in
//!   prose, is accepted;
//! - a date-only `startedAt` ("if time of day is not required provide only
//!   date") is midnight UTC of that date;
//! - a scheduled interaction happens at `scheduledAtFrom` when it is set.

mod convo;
mod vocab;

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use convo::{Convo, ConvoAgent, JoinType};
pub use vocab::{
    AgentOutcome, Channel, Direction, SUBJECT_THEMES, Status, StatusDetails, Subject, Theme,
    closest, describe_allowed,
};

/// Longest id or short text field we accept: upstream's own bound on
/// externalId, applied to every id so that untrusted input stays bounded.
pub const MAX_ID_CHARS: usize = 255;
/// Longest free-text field (failure descriptions), a bound of ours.
pub const MAX_TEXT_CHARS: usize = 65_536;
/// Most loans one interaction may name, a bound of ours.
pub const MAX_LOANS: usize = 100;
/// Most cases one interaction may be linked to, a bound of ours.
pub const MAX_CASES: usize = 100;
/// Largest `content` or `metaData`, serialized as JSON, a bound of ours.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Longest twilioErrorCode, as upstream states.
pub const MAX_TWILIO_ERROR_CODE_CHARS: usize = 10;

/// Most characters of a caller's value that an error message quotes.
pub const ECHO_CHARS: usize = 64;

/// A caller's value as an error message quotes it: whole when it has at
/// most [`ECHO_CHARS`] characters, otherwise its first [`ECHO_CHARS`] and
/// `…`. Every error that echoes user input goes through this one helper,
/// so that no answer carries an unbounded value back (a 1 MiB id would
/// otherwise fill the status message and its BadRequest details).
pub fn echo(text: &str) -> String {
    echo_at(text, ECHO_CHARS)
}

/// `text` whole when it has at most `max` characters, otherwise its first
/// `max` and `…`: [`echo`] with another bound (whole messages use it).
pub fn echo_at(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// The kind of the contact point a communication went to.
///
/// Rules differ by kind: Massachusetts caps calls to personal numbers and
/// to other numbers separately; Washington limits contact at work and to a
/// known mobile number. A kind we do not know is [`ContactKind::Unknown`],
/// which every rule treats as the strictest kind: it matches every kind a
/// rule names, for the proposed send and for the counted history alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ContactKind {
    /// A home telephone number (`homePhone`).
    HomePhone,
    /// A mobile telephone number (`mobilePhone`).
    MobilePhone,
    /// A work telephone number (`workPhone`).
    WorkPhone,
    /// Another number the borrower gave as personal (`otherPersonalPhone`).
    OtherPersonalPhone,
    /// An email address (`email`).
    Email,
    /// A postal address (`postalAddress`).
    PostalAddress,
    /// Not given, or not one of the kinds above: the strictest kind.
    #[default]
    Unknown,
}

impl ContactKind {
    /// The known kinds with their names, in the order docs/api.md lists them.
    pub const NAMED: &'static [(ContactKind, &'static str)] = &[
        (ContactKind::HomePhone, "homePhone"),
        (ContactKind::MobilePhone, "mobilePhone"),
        (ContactKind::WorkPhone, "workPhone"),
        (ContactKind::OtherPersonalPhone, "otherPersonalPhone"),
        (ContactKind::Email, "email"),
        (ContactKind::PostalAddress, "postalAddress"),
    ];

    /// The name of the kind; `unknown` for [`ContactKind::Unknown`].
    pub fn as_str(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("unknown", |(_, n)| n)
    }

    /// Reads a kind leniently: anything unrecognised is `Unknown`, because a
    /// record must never be refused for a contact kind we do not know.
    pub fn from_record(text: Option<&str>) -> ContactKind {
        text.and_then(Self::parse).unwrap_or(ContactKind::Unknown)
    }

    /// True for the telephone kinds, whose value is a number a location
    /// can be read from (its area code).
    pub fn is_phone(self) -> bool {
        matches!(
            self,
            ContactKind::HomePhone
                | ContactKind::MobilePhone
                | ContactKind::WorkPhone
                | ContactKind::OtherPersonalPhone
        )
    }

    /// Reads a kind strictly, for rule files: `None` for an unknown name.
    pub fn parse(text: &str) -> Option<ContactKind> {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == text)
            .map(|(k, _)| *k)
    }
}

impl Serialize for ContactKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ContactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contact point of an interaction: its kind and its value (a number,
/// an address). Upstream's `contactInformation` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactInput {
    /// The kind's name (see [`ContactKind`]); unknown or missing is the
    /// strictest kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// The number or address itself.
    #[serde(default)]
    pub value: Option<String>,
    /// Optional name, useful for third-party contacts (upstream).
    #[serde(default)]
    pub name: Option<String>,
}

/// A validated contact point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The kind, as the rules read it.
    pub kind: ContactKind,
    /// The kind exactly as given, kept so that nothing of the record is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind_as_given: Option<String>,
    /// The number or address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The contact's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// True if `text` has the upstream AnyId form: `ext-` followed by an
/// external id, or an id like `BO-ABCD-1234`, or a number.
///
/// The reference gives the pattern as
/// `^ext-|^[A-Z][A-Z0-9]-[A-Z0-9]+-[A-Z0-9]+|^\d+...`, cut short after the
/// digits; we read the last branch as "all digits".
pub fn is_any_id(text: &str) -> bool {
    if text.is_empty() || text.chars().count() > MAX_ID_CHARS + 4 {
        return false;
    }
    if let Some(rest) = text.strip_prefix("ext-") {
        return !rest.is_empty();
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let b = text.as_bytes();
    let upper_digit = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    if b.len() < 6 || !b[0].is_ascii_uppercase() || !upper_digit(b[1]) || b[2] != b'-' {
        return false;
    }
    // [A-Z0-9]+ '-' [A-Z0-9]+ and then anything (the pattern is a prefix).
    let rest = &b[3..];
    let Some(dash) = rest.iter().position(|c| *c == b'-') else {
        return false;
    };
    dash > 0
        && rest[..dash].iter().all(|c| upper_digit(*c))
        && rest.get(dash + 1).is_some_and(|c| upper_digit(*c))
}

/// True if `text` is a Peach case id as upstream gives its form,
/// `CS-XXXX-XXXX`: `CS-`, four upper-case letters or digits, `-`, four more.
pub fn is_case_id(text: &str) -> bool {
    let b = text.as_bytes();
    let x = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    b.len() == 12
        && b.starts_with(b"CS-")
        && b[3..7].iter().all(x)
        && b[7] == b'-'
        && b[8..].iter().all(x)
}

/// A reference to a person or an interaction as callers write it: our id,
/// or `ext-` and the lender's external id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyId<'a> {
    /// Our id.
    Ours(&'a str),
    /// The lender's external id, without its `ext-` prefix.
    External(&'a str),
}

impl<'a> AnyId<'a> {
    /// Parses an id, naming `field` in the error.
    pub fn parse(field: &'static str, text: &'a str) -> Result<AnyId<'a>, ValidationError> {
        if !is_any_id(text) {
            return Err(ValidationError::InvalidId {
                field,
                value: text.to_owned(),
            });
        }
        Ok(match text.strip_prefix("ext-") {
            Some(rest) => AnyId::External(rest),
            None => AnyId::Ours(text),
        })
    }
}

/// A validation failure. Each names the field, the value that was refused
/// and what is allowed, in the upstream field names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A required field is missing.
    #[error("`{field}` is required")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A vocabulary field holds a value outside the vocabulary.
    #[error("`{field}` value `{}` is not allowed; allowed: {allowed}", echo(.value))]
    UnknownValue {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What the vocabulary allows.
        allowed: String,
    },
    /// `null` was given as a value; upstream reserves it for queries.
    #[error("`{field}` value `null` is a query value, not a {field}; omit the field instead")]
    NullValue {
        /// The field.
        field: &'static str,
    },
    /// statusDetails that upstream ties to another status.
    #[error("`statusDetails` `{details}` requires `status` `{required}`, not `{status}`")]
    DetailsStatus {
        /// The statusDetails given.
        details: StatusDetails,
        /// The status given.
        status: Status,
        /// The status upstream requires for these details.
        required: Status,
    },
    /// statusDetails that belong to another channel.
    #[error("`statusDetails` `{details}` is for `channel` `{required}`, not `{channel}`")]
    DetailsChannel {
        /// The statusDetails given.
        details: StatusDetails,
        /// The channel given.
        channel: Channel,
        /// The channel the details belong to.
        required: Channel,
    },
    /// statusDetails that belong to the other direction.
    #[error("`statusDetails` `{details}` is only for `direction` `{required}`, not `{direction}`")]
    DetailsDirection {
        /// The statusDetails given.
        details: StatusDetails,
        /// The direction given.
        direction: Direction,
        /// The direction the details require.
        required: Direction,
    },
    /// A subject with no implicit theme was given without a theme.
    #[error("`subject` `{subject}` has no implicit theme, so `theme` is required")]
    ThemeRequired {
        /// The subject given.
        subject: Subject,
    },
    /// A text field is too short or too long.
    #[error("`{field}` has {len} characters; allowed: {min} to {max}")]
    Length {
        /// The field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// Too many entries in a list field.
    #[error("`{field}` has {len} entries; allowed: at most {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// How many were given.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// An id that does not have the upstream AnyId form.
    #[error(
        "`{field}` value `{}` is not an id; allowed: `ext-` and an external id, an id like `BO-ABCD-1234`, or a number",
        echo(.value)
    )]
    InvalidId {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A case id that is not of the form `CS-XXXX-XXXX`.
    #[error(
        "`{field}` value `{}` is not a case id; allowed: `CS-XXXX-XXXX` (CS-, 4 upper-case letters or digits, -, 4 more), like `CS-AB12-34CD`",
        echo(.value)
    )]
    InvalidCaseId {
        /// The field.
        field: &'static str,
        /// The value given (at most 64 characters of it).
        value: String,
    },
    /// The same value twice in a list field.
    #[error("`{field}` value `{}` is given more than once; allowed: each value once", echo(.value))]
    Duplicate {
        /// The field.
        field: &'static str,
        /// The value repeated.
        value: String,
    },
    /// A time that is not RFC 3339 or a date.
    #[error(
        "`{field}` value `{}` is not a time; allowed: RFC 3339 with an offset (`2020-04-01T14:00:00Z`) or a date (`2020-04-01`)",
        echo(.value)
    )]
    Time {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A field that is set by the guard, never by an update.
    #[error("`{field}` cannot be updated; it is set by the guard")]
    ReadOnly {
        /// The field.
        field: &'static str,
    },
    /// A channel other than voice on an interaction that holds audio.
    #[error(
        "`channel` `{channel}` cannot hold the stored {kind}; allowed: `voice` while the interaction has a recording or a voicemail"
    )]
    MediaChannel {
        /// The channel given.
        channel: Channel,
        /// `recording` or `voicemail`.
        kind: MediaKind,
    },
    /// A time outside what the API carries: proto3 JSON's range for every
    /// time, and from 1900 on for the time of an event.
    #[error("`{field}` value `{value}` is out of range; allowed: {min} to {max}")]
    TimeRange {
        /// The field.
        field: &'static str,
        /// The time given, as RFC 3339 or as seconds and nanoseconds.
        value: String,
        /// The earliest allowed.
        min: &'static str,
        /// The latest allowed.
        max: &'static str,
    },
    /// A time after the server's clock where only the past makes sense.
    #[error(
        "`{field}` value `{}` is {} s after the server's clock ({}): {why}; allowed: at most {CLOCK_SKEW_SECONDS} s after it (clock skew){hint}",
        .value.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        (*.value - *.now).num_seconds(),
        .now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Future {
        /// The field.
        field: &'static str,
        /// The time given.
        value: DateTime<Utc>,
        /// The server's clock.
        now: DateTime<Utc>,
        /// Why it must be in the past.
        why: &'static str,
        /// What to do instead, starting with `; `, or empty.
        hint: &'static str,
    },
    /// scheduledAtTo before scheduledAtFrom.
    #[error("`scheduledAtTo` `{to}` is before `scheduledAtFrom` `{from}`")]
    ScheduleOrder {
        /// scheduledAtFrom.
        from: DateTime<Utc>,
        /// scheduledAtTo.
        to: DateTime<Utc>,
    },
}

impl ValidationError {
    /// The field the error is about, by its upstream name, for field-level
    /// error reports (gRPC BadRequest violations).
    pub fn field(&self) -> &'static str {
        match self {
            ValidationError::Missing { field }
            | ValidationError::UnknownValue { field, .. }
            | ValidationError::NullValue { field }
            | ValidationError::Length { field, .. }
            | ValidationError::TooMany { field, .. }
            | ValidationError::InvalidId { field, .. }
            | ValidationError::InvalidCaseId { field, .. }
            | ValidationError::Duplicate { field, .. }
            | ValidationError::Time { field, .. }
            | ValidationError::TimeRange { field, .. }
            | ValidationError::Future { field, .. }
            | ValidationError::ReadOnly { field } => field,
            ValidationError::DetailsStatus { .. }
            | ValidationError::DetailsChannel { .. }
            | ValidationError::DetailsDirection { .. } => "statusDetails",
            ValidationError::ThemeRequired { .. } => "theme",
            ValidationError::MediaChannel { .. } => "channel",
            ValidationError::ScheduleOrder { .. } => "scheduledAtTo",
        }
    }
}

impl StatusDetails {
    /// The status upstream requires for these details, or `None` where the
    /// reference lists them under no status.
    pub fn required_status(self) -> Option<Status> {
        use StatusDetails as D;
        match self {
            D::EmailDelivered
            | D::EmailOpened
            | D::EmailClick
            | D::LetterDelivered
            | D::ChatRead => Some(Status::Succeeded),
            D::VoiceReceivedOutsideOpenHours
            | D::VoiceConnected
            | D::EmailSent
            | D::LetterCreated
            | D::LetterRenderedPdf
            | D::LetterRenderedThumbnails
            | D::LetterInTransit
            | D::LetterInLocalArea
            | D::LetterProcessedForDelivery
            | D::LetterRerouted
            | D::ChatPosted
            | D::TextConvoTimeoutAutoclose
            | D::TextConvoClosedStale
            | D::TextConvoClosedByAgent => Some(Status::Attempted),
            D::EmailBlocked
            | D::EmailBounced
            | D::EmailDropped
            | D::EmailFailedToSend
            | D::EmailReportedAsSpam
            | D::LetterDeleted
            | D::LetterFailedToCreate
            | D::LetterReturnedToSender
            | D::TextA2PCampaignUnregistered
            | D::TextAccountSuspended
            | D::TextCarrierViolation
            | D::TextConvoUnknownNumberRejected
            | D::TextDeviceUnreachable
            | D::TextLandlineOrUnreachableCarrier
            | D::TextLenderDisabledInboundTexts
            | D::TextMessageBlocked
            | D::TextMessagePriceExceedsMax
            | D::TextMissingSegment
            | D::TextNumberDisconnected
            | D::TextQueueOverflow
            | D::TextRegionInvalid
            | D::TextUnknownError
            | D::TextUnsubscribedRecipient
            | D::VoiceFailedToInitiate
            | D::VoiceLenderDisabledInboundCalls
            | D::VoiceNumberDisconnected
            | D::VoiceNumberInvalid
            | D::VoiceReceivedNoAgentsAvailable => Some(Status::Failed),
            _ => None,
        }
    }

    /// The channel these details belong to, by their prefix (`voice*`,
    /// `email*`, `letter*` for mail, `chat*`, `text*`); `None` for
    /// `invalidContact` and `blockedByComplianceGuard`, which fit every
    /// channel.
    pub fn required_channel(self) -> Option<Channel> {
        let name = self.as_str();
        [
            ("voice", Channel::Voice),
            ("email", Channel::Email),
            ("letter", Channel::Mail),
            ("chat", Channel::Chat),
            ("text", Channel::Text),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, channel)| channel)
    }

    /// The direction these details require, where the reference says so.
    ///
    /// Upstream gives its direction rules only by example
    /// (`voiceReceivedNoAgentsAvailable` inbound, `voiceNumberDisconnected`
    /// outbound, `voiceUnexpectedDisconnect` either). We enforce those two
    /// and the details whose own upstream description names the direction:
    /// inbound for `voiceLenderDisabledInboundCalls` ("inbound call
    /// received"), `voiceReceivedOutsideOpenHours` ("caller tried to contact
    /// the lender"), `textLenderDisabledInboundTexts` ("the inbound text")
    /// and `textConvoUnknownNumberRejected` ("received from an unknown
    /// number"); outbound for `voiceFailedToInitiate` ("outbound voice call
    /// could not start"). Every other detail goes with either direction.
    pub fn required_direction(self) -> Option<Direction> {
        use StatusDetails as D;
        match self {
            D::VoiceReceivedNoAgentsAvailable
            | D::VoiceLenderDisabledInboundCalls
            | D::VoiceReceivedOutsideOpenHours
            | D::TextLenderDisabledInboundTexts
            | D::TextConvoUnknownNumberRejected => Some(Direction::Inbound),
            D::VoiceNumberDisconnected | D::VoiceFailedToInitiate => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// An interaction as it arrives: the upstream Interaction object with its
/// upstream field names. Vocabulary fields are strings so that a bad value
/// is reported by [`InteractionInput::validate`] with its field's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(
    missing_docs,
    reason = "fields are the upstream fields, documented there"
)]
pub struct InteractionInput {
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub person_id: Option<String>,
    pub channel: Option<String>,
    pub direction: Option<String>,
    pub theme: Option<String>,
    pub borrower_selected_theme: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
    pub status_details: Option<String>,
    pub agent_outcome: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub scheduled_at_from: Option<String>,
    pub scheduled_at_to: Option<String>,
    pub loan_id: Option<String>,
    pub loan_ids: Option<Vec<String>>,
    /// The Peach cases (`CS-XXXX-XXXX`) the interaction is linked to. Ours:
    /// upstream links cases to interactions but names no field for it.
    pub case_ids: Option<Vec<String>>,
    pub is_transactional: Option<bool>,
    pub sensitive: Option<bool>,
    pub is_external: Option<bool>,
    pub previous_interaction_id: Option<String>,
    pub contact_id: Option<String>,
    pub contact_external_id: Option<String>,
    pub contact: Option<ContactInput>,
    pub borrower: Option<Value>,
    pub meta_data: Option<Value>,
    pub content: Option<Value>,
    pub failure_description_short: Option<String>,
    pub failure_description_long: Option<String>,
    pub compliance_guard_rule_id: Option<String>,
    pub twilio_error_code: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
    pub created_by: Option<String>,
    /// The company the interaction belongs to: set by the guard from the
    /// creating caller's credential, never read from a request body or an
    /// import line (hence skipped by serde).
    #[serde(skip)]
    pub company_id: Option<String>,
    /// Stored audio: set only by an upload, kept by updates, never read
    /// from a request body or an import line (hence skipped by serde).
    #[serde(skip)]
    pub recording: Option<Box<Media>>,
    /// As `recording`, for the voicemail.
    #[serde(skip)]
    pub voicemail: Option<Box<Media>>,
}

/// A validated interaction, as the index holds it.
///
/// `id` and `person_id` are filled in by the index (ours, never `ext-`);
/// everything else is the record as given, typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    missing_docs,
    reason = "fields are the upstream fields, documented there"
)]
pub struct Interaction {
    pub id: String,
    pub external_id: Option<String>,
    pub person_id: String,
    pub channel: Channel,
    pub direction: Direction,
    pub theme: Option<Theme>,
    pub borrower_selected_theme: Option<Theme>,
    pub subject: Option<Subject>,
    pub status: Status,
    pub status_details: Option<StatusDetails>,
    pub agent_outcome: Option<AgentOutcome>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub scheduled_at_from: Option<DateTime<Utc>>,
    pub scheduled_at_to: Option<DateTime<Utc>>,
    pub loan_id: Option<String>,
    pub loan_ids: Vec<String>,
    /// The Peach cases (`CS-XXXX-XXXX`) the interaction is linked to, each
    /// once, in the order given. Ours: upstream names no field for it.
    pub case_ids: Vec<String>,
    pub is_transactional: Option<bool>,
    pub sensitive: Option<bool>,
    pub is_external: bool,
    pub previous_interaction_id: Option<String>,
    pub contact_id: Option<String>,
    pub contact_external_id: Option<String>,
    pub contact: Option<Contact>,
    pub borrower: Option<Value>,
    pub meta_data: Option<Value>,
    pub content: Option<Value>,
    pub failure_description_short: Option<String>,
    pub failure_description_long: Option<String>,
    pub compliance_guard_rule_id: Option<String>,
    pub twilio_error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
    /// Who made the last change, from the caller's credential. Not an
    /// upstream field: upstream keeps only createdBy.
    pub updated_by: Option<String>,
    /// The company the interaction belongs to (upstream's `companyId`),
    /// from the creating key's `company`; `None` is no company. Read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    /// The call recording's stored audio, set only by an upload. Voice
    /// only. Not an upstream field: upstream serves only the content.
    /// Boxed: most interactions have none, and the index holds millions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<Box<Media>>,
    /// The voicemail's stored audio, set only by an upload. Voice only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<Box<Media>>,
}

/// Which audio of a voice interaction: upstream keeps two, with separate
/// download endpoints and list filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    /// A call an agent chose to record.
    Recording,
    /// A message a caller left when nobody could pick up.
    Voicemail,
}

impl MediaKind {
    /// The name used in file names, links and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Recording => "recording",
            MediaKind::Voicemail => "voicemail",
        }
    }

    /// The kind named `text` (`recording`, `voicemail`).
    pub fn parse(text: &str) -> Option<MediaKind> {
        match text {
            "recording" => Some(MediaKind::Recording),
            "voicemail" => Some(MediaKind::Voicemail),
            _ => None,
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Audio stored for an interaction: what a download needs to find, label
/// and verify it. The bytes live in `<data-dir>/media/<storage_key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    /// `audio/<subtype>`, as given at upload.
    pub content_type: String,
    /// The audio's length.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the audio, computed by the server while
    /// receiving it, checked again on every download.
    pub sha256: String,
    /// When the upload was committed.
    pub uploaded_at: DateTime<Utc>,
    /// The uploading key's name.
    pub uploaded_by: String,
    /// The file name under `<data-dir>/media/`: unique per upload, so a
    /// link signed for one upload never serves another.
    pub storage_key: String,
}

impl Interaction {
    /// The stored audio of `kind`, if any.
    pub fn media(&self, kind: MediaKind) -> Option<&Media> {
        match kind {
            MediaKind::Recording => self.recording.as_deref(),
            MediaKind::Voicemail => self.voicemail.as_deref(),
        }
    }

    /// The theme rules read: the one given, else the one the subject
    /// implies, else unknown (`None`, which matches every theme filter).
    pub fn effective_theme(&self) -> Option<Theme> {
        self.theme
            .or_else(|| self.subject.and_then(Subject::implied_theme))
    }

    /// Every loan the interaction names (`loanId` and `loanIds`), once each.
    pub fn loans(&self) -> Vec<&str> {
        let mut loans: Vec<&str> = self.loan_id.iter().map(String::as_str).collect();
        for l in &self.loan_ids {
            if !loans.contains(&l.as_str()) {
                loans.push(l);
            }
        }
        loans
    }

    /// The moment the communication happens, for counting: `scheduledAtFrom`
    /// for a scheduled interaction that has one, `startedAt` otherwise.
    pub fn occurs_at(&self) -> DateTime<Utc> {
        match (self.status, self.scheduled_at_from) {
            (Status::Scheduled, Some(from)) => from,
            _ => self.started_at,
        }
    }

    /// The record back in its input form, so that an update can be applied
    /// on top of it and the result validated as a whole.
    pub fn to_input(&self) -> InteractionInput {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        InteractionInput {
            id: Some(self.id.clone()),
            external_id: self.external_id.clone(),
            person_id: Some(self.person_id.clone()),
            channel: Some(self.channel.as_str().to_owned()),
            direction: Some(self.direction.as_str().to_owned()),
            theme: self.theme.map(|t| t.as_str().to_owned()),
            borrower_selected_theme: self.borrower_selected_theme.map(|t| t.as_str().to_owned()),
            subject: self.subject.map(|t| t.as_str().to_owned()),
            status: Some(self.status.as_str().to_owned()),
            status_details: self.status_details.map(|t| t.as_str().to_owned()),
            agent_outcome: self.agent_outcome.map(|t| t.as_str().to_owned()),
            started_at: Some(time(self.started_at)),
            ended_at: self.ended_at.map(time),
            scheduled_at_from: self.scheduled_at_from.map(time),
            scheduled_at_to: self.scheduled_at_to.map(time),
            loan_id: self.loan_id.clone(),
            loan_ids: Some(self.loan_ids.clone()),
            case_ids: Some(self.case_ids.clone()),
            is_transactional: self.is_transactional,
            sensitive: self.sensitive,
            is_external: Some(self.is_external),
            previous_interaction_id: self.previous_interaction_id.clone(),
            contact_id: self.contact_id.clone(),
            contact_external_id: self.contact_external_id.clone(),
            contact: self.contact.as_ref().map(|c| ContactInput {
                kind: c.kind_as_given.clone(),
                value: c.value.clone(),
                name: c.name.clone(),
            }),
            borrower: self.borrower.clone(),
            meta_data: self.meta_data.clone(),
            content: self.content.clone(),
            failure_description_short: self.failure_description_short.clone(),
            failure_description_long: self.failure_description_long.clone(),
            compliance_guard_rule_id: self.compliance_guard_rule_id.clone(),
            twilio_error_code: self.twilio_error_code.clone(),
            company_id: self.company_id.clone(),
            recording: self.recording.clone(),
            voicemail: self.voicemail.clone(),
            created_at: Some(time(self.created_at)),
            updated_at: self.updated_at.map(time),
            deleted_at: self.deleted_at.map(time),
            created_by: self.created_by.clone(),
        }
    }

    /// The contact kind, `Unknown` when there is no contact.
    pub fn contact_kind(&self) -> ContactKind {
        self.contact
            .as_ref()
            .map_or(ContactKind::Unknown, |c| c.kind)
    }
}

/// How far after the server's clock a time that must be in the past may
/// be: room for clock skew between the caller's hosts and ours.
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// The earliest second a request's time may name: proto3 JSON's
/// `0001-01-01T00:00:00Z`, the least a `google.protobuf.Timestamp` carries
/// as JSON.
pub const PROTO_MIN_SECONDS: i64 = -62_135_596_800;
/// The latest second a request's time may name: proto3 JSON's
/// `9999-12-31T23:59:59.999999999Z` (with any nanoseconds).
pub const PROTO_MAX_SECONDS: i64 = 253_402_300_799;
/// The earliest an event (a call's `startedAt` or `endedAt`, a
/// restriction's `receivedAt` or its end) may be: `1900-01-01T00:00:00Z`.
pub const EARLIEST_EVENT_SECONDS: i64 = -2_208_988_800;
const PROTO_MIN_TEXT: &str = "0001-01-01T00:00:00Z";
const PROTO_MAX_TEXT: &str = "9999-12-31T23:59:59.999999999Z";
const EARLIEST_EVENT_TEXT: &str = "1900-01-01T00:00:00Z";

/// A time of a request (seconds and nanoseconds, as a
/// `google.protobuf.Timestamp` carries it) within what the API carries:
/// proto3 JSON's range with nanoseconds 0 to 999,999,999, and from 1900 on
/// when `event` (the time something happened). Only requests are held to
/// this: records already stored load whatever their times
/// ([`out_of_range`] counts them).
pub fn request_time(
    field: &'static str,
    seconds: i64,
    nanos: i32,
    event: bool,
) -> Result<DateTime<Utc>, ValidationError> {
    let min = if event {
        EARLIEST_EVENT_SECONDS
    } else {
        PROTO_MIN_SECONDS
    };
    let t = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|n| DateTime::from_timestamp(seconds, n));
    match t {
        Some(t) if (min..=PROTO_MAX_SECONDS).contains(&seconds) => Ok(t),
        _ => Err(ValidationError::TimeRange {
            field,
            value: match t {
                Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                None => format!("{seconds} s {nanos} ns"),
            },
            min: if event {
                EARLIEST_EVENT_TEXT
            } else {
                PROTO_MIN_TEXT
            },
            max: PROTO_MAX_TEXT,
        }),
    }
}

/// True if `t`, stored as the time of an event, is outside what a request
/// may give ([`request_time`] with `event`): records from before the bound
/// was enforced, counted when a data directory is opened.
pub fn out_of_range(t: DateTime<Utc>) -> bool {
    !(EARLIEST_EVENT_SECONDS..=PROTO_MAX_SECONDS).contains(&t.timestamp())
}

/// True if `t` is outside proto3 JSON's range ([`request_time`] without
/// `event`): a stored time no JSON client can read.
pub fn outside_proto_json(t: DateTime<Utc>) -> bool {
    !(PROTO_MIN_SECONDS..=PROTO_MAX_SECONDS).contains(&t.timestamp())
}

impl Interaction {
    /// True if a time of the record is outside what a request may give
    /// now: its `startedAt` or `endedAt` before 1900 or past 9999, or any
    /// other time outside proto3 JSON's range. Such records were stored
    /// before the bound; they load and count as they are.
    pub fn has_time_out_of_range(&self) -> bool {
        out_of_range(self.started_at)
            || self.ended_at.is_some_and(out_of_range)
            || [
                self.scheduled_at_from,
                self.scheduled_at_to,
                Some(self.created_at),
                self.updated_at,
                self.deleted_at,
            ]
            .into_iter()
            .flatten()
            .any(outside_proto_json)
    }
}

/// Refuses an interaction given as completed (`attempted`, `succeeded`,
/// `failed`) whose `startedAt` is more than [`CLOCK_SKEW_SECONDS`] after
/// `now`: a call that has not happened yet cannot have an outcome, and one
/// recorded as happened in the future would start no quiet period now.
/// For the API only; recovery, restore and import take records as they are.
pub fn check_completed_start(
    status: Status,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ValidationError> {
    let completed = matches!(
        status,
        Status::Attempted | Status::Succeeded | Status::Failed
    );
    if completed && started_at > now + chrono::Duration::seconds(CLOCK_SKEW_SECONDS) {
        return Err(ValidationError::Future {
            field: "startedAt",
            value: started_at,
            now,
            why: match status {
                Status::Attempted => "an `attempted` interaction has already started",
                Status::Succeeded => "a `succeeded` interaction has already started",
                _ => "a `failed` interaction has already started",
            },
            hint: "; a send still to come is `scheduled` or `inProgress`",
        });
    }
    Ok(())
}

/// Refuses a restriction's `receivedAt` more than [`CLOCK_SKEW_SECONDS`]
/// after `now`: a cease received in the future would not be in force now.
/// For the API only, as [`check_completed_start`].
pub fn check_received_at(
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ValidationError> {
    if received_at > now + chrono::Duration::seconds(CLOCK_SKEW_SECONDS) {
        return Err(ValidationError::Future {
            field: "receivedAt",
            value: received_at,
            now,
            why: "a restriction is recorded once the lender has received it",
            hint: "; leave `receivedAt` out for a restriction received now",
        });
    }
    Ok(())
}

/// Parses a time field: RFC 3339 with an offset, or a bare date (midnight
/// UTC), as upstream allows.
pub fn parse_time(field: &'static str, text: &str) -> Result<DateTime<Utc>, ValidationError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(ValidationError::Time {
        field,
        value: echo(text),
    })
}

fn opt_time(
    field: &'static str,
    text: &Option<String>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    text.as_deref().map(|t| parse_time(field, t)).transpose()
}

/// Parses a vocabulary field, refusing `null` and unknown values by name.
macro_rules! vocab_field {
    ($ty:ty, $field:literal, $value:expr) => {
        match $value.as_deref() {
            None => Ok(None),
            Some("null") => Err(ValidationError::NullValue { field: $field }),
            Some(text) => {
                <$ty>::parse(text)
                    .map(Some)
                    .ok_or_else(|| ValidationError::UnknownValue {
                        field: $field,
                        value: echo(text),
                        allowed: describe_allowed(text, <$ty>::NAMES),
                    })
            }
        }
    };
}

fn check_len(
    field: &'static str,
    value: &Option<String>,
    min: usize,
    max: usize,
) -> Result<(), ValidationError> {
    if let Some(v) = value {
        let len = v.chars().count();
        if len < min || len > max {
            return Err(ValidationError::Length {
                field,
                len,
                min,
                max,
            });
        }
    }
    Ok(())
}

fn check_json(field: &'static str, value: &Option<Value>) -> Result<(), ValidationError> {
    if let Some(v) = value {
        let len = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
        if len > MAX_JSON_BYTES {
            return Err(ValidationError::Length {
                field,
                len,
                min: 0,
                max: MAX_JSON_BYTES,
            });
        }
    }
    Ok(())
}

/// The fields an update may name, by their upstream (camelCase) names. The
/// snake_case forms are accepted too. `id`, `personId`, `isExternal` (who
/// supplied the record, which decides whether it may be deleted),
/// `createdAt`, `createdBy`, `updatedAt` and `deletedAt` are not here: they
/// are set by the guard, never by an update.
pub const UPDATABLE_FIELDS: &[&str] = &[
    "externalId",
    "channel",
    "direction",
    "theme",
    "borrowerSelectedTheme",
    "subject",
    "status",
    "statusDetails",
    "agentOutcome",
    "startedAt",
    "endedAt",
    "scheduledAtFrom",
    "scheduledAtTo",
    "loanId",
    "loanIds",
    "caseIds",
    "isTransactional",
    "sensitive",
    "previousInteractionId",
    "contactId",
    "contactExternalId",
    "contact",
    "borrower",
    "metaData",
    "content",
    "failureDescriptionShort",
    "failureDescriptionLong",
    "complianceGuardRuleId",
    "twilioErrorCode",
];

/// The fields the guard sets, never an update: who and when, and whether
/// the lender supplied the record.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "id",
    "personId",
    "isExternal",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "deletedAt",
];

/// The upstream (camelCase) name of a field given in either form, if it is
/// a field of the Interaction object.
pub fn field_name(name: &str) -> Option<&'static str> {
    let camel: String = {
        let mut out = String::with_capacity(name.len());
        let mut upper = false;
        for c in name.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    UPDATABLE_FIELDS
        .iter()
        .chain(READ_ONLY_FIELDS)
        .find(|f| **f == camel)
        .copied()
}

impl InteractionInput {
    /// Copies one field (by its upstream name) from `from`, set or unset:
    /// an update mask that lists a field which `from` leaves unset clears
    /// it. Returns false for a name that is not an updatable field.
    pub fn set_field(&mut self, name: &str, from: &InteractionInput) -> bool {
        macro_rules! by_name {
            ($($text:literal => $f:ident),+ $(,)?) => {
                match name {
                    $($text => { self.$f = from.$f.clone(); true })+
                    _ => false,
                }
            };
        }
        by_name!(
            "externalId" => external_id, "channel" => channel, "direction" => direction,
            "theme" => theme, "borrowerSelectedTheme" => borrower_selected_theme,
            "subject" => subject, "status" => status, "statusDetails" => status_details,
            "agentOutcome" => agent_outcome, "startedAt" => started_at, "endedAt" => ended_at,
            "scheduledAtFrom" => scheduled_at_from, "scheduledAtTo" => scheduled_at_to,
            "loanId" => loan_id, "loanIds" => loan_ids, "caseIds" => case_ids,
            "isTransactional" => is_transactional,
            "sensitive" => sensitive,
            "previousInteractionId" => previous_interaction_id, "contactId" => contact_id,
            "contactExternalId" => contact_external_id, "contact" => contact,
            "borrower" => borrower, "metaData" => meta_data, "content" => content,
            "failureDescriptionShort" => failure_description_short,
            "failureDescriptionLong" => failure_description_long,
            "complianceGuardRuleId" => compliance_guard_rule_id,
            "twilioErrorCode" => twilio_error_code,
        )
    }

    /// Lays the fields that `patch` sets over `self`: an update names only
    /// what changes.
    pub fn overlay(&mut self, patch: &InteractionInput) {
        macro_rules! take {
            ($($f:ident),+) => { $( if patch.$f.is_some() { self.$f = patch.$f.clone(); } )+ };
        }
        take!(
            external_id,
            channel,
            direction,
            theme,
            borrower_selected_theme,
            subject,
            status,
            status_details,
            agent_outcome,
            started_at,
            ended_at,
            scheduled_at_from,
            scheduled_at_to,
            loan_id,
            loan_ids,
            case_ids,
            is_transactional,
            sensitive,
            is_external,
            previous_interaction_id,
            contact_id,
            contact_external_id,
            contact,
            borrower,
            meta_data,
            content,
            failure_description_short,
            failure_description_long,
            compliance_guard_rule_id,
            twilio_error_code,
            created_by
        );
    }

    /// Checks the record against every upstream rule and returns it typed,
    /// or the first problem found. [`InteractionInput::validate_all`] lists
    /// every problem.
    ///
    /// `now` is the moment of recording: `startedAt` and `createdAt` default
    /// to it. `id` and `personId` are left for the index to fill in.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<Interaction, ValidationError> {
        self.validate_all(now).map_err(|mut all| all.swap_remove(0))
    }

    /// Checks the record against every upstream rule and returns it typed,
    /// or every problem found (never an empty list), so that a caller can
    /// fix them all at once.
    pub fn validate_all(&self, now: DateTime<Utc>) -> Result<Interaction, Vec<ValidationError>> {
        let mut errors: Vec<ValidationError> = Vec::new();
        macro_rules! keep {
            ($e:expr) => {
                match $e {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            };
        }
        macro_rules! required {
            ($ty:ty, $field:literal, $value:expr) => {
                match vocab_field!($ty, $field, $value) {
                    Ok(Some(v)) => Some(v),
                    Ok(None) => {
                        errors.push(ValidationError::Missing { field: $field });
                        None
                    }
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            };
        }
        let channel = required!(Channel, "channel", self.channel);
        let direction = required!(Direction, "direction", self.direction);
        let status = required!(Status, "status", self.status);
        let theme = keep!(vocab_field!(Theme, "theme", self.theme)).flatten();
        let borrower_selected_theme = keep!(vocab_field!(
            Theme,
            "borrowerSelectedTheme",
            self.borrower_selected_theme
        ))
        .flatten();
        let subject = keep!(vocab_field!(Subject, "subject", self.subject))
            .flatten()
            .map(Subject::normalized);
        let status_details = keep!(vocab_field!(
            StatusDetails,
            "statusDetails",
            self.status_details
        ))
        .flatten();
        let agent_outcome = keep!(vocab_field!(
            AgentOutcome,
            "agentOutcome",
            self.agent_outcome
        ))
        .flatten();

        if let Some(details) = status_details {
            if let (Some(required), Some(status)) = (details.required_status(), status)
                && required != status
            {
                errors.push(ValidationError::DetailsStatus {
                    details,
                    status,
                    required,
                });
            }
            if let (Some(required), Some(channel)) = (details.required_channel(), channel)
                && required != channel
            {
                errors.push(ValidationError::DetailsChannel {
                    details,
                    channel,
                    required,
                });
            }
            if let (Some(required), Some(direction)) = (details.required_direction(), direction)
                && required != direction
            {
                errors.push(ValidationError::DetailsDirection {
                    details,
                    direction,
                    required,
                });
            }
        }
        if let Some(subject) = subject
            && subject.requires_theme()
            && theme.is_none()
            && self.theme.is_none()
        {
            errors.push(ValidationError::ThemeRequired { subject });
        }

        keep!(check_len("externalId", &self.external_id, 1, MAX_ID_CHARS));
        keep!(check_len(
            "twilioErrorCode",
            &self.twilio_error_code,
            0,
            MAX_TWILIO_ERROR_CODE_CHARS
        ));
        for (field, value) in [
            ("id", &self.id),
            ("personId", &self.person_id),
            ("loanId", &self.loan_id),
            ("previousInteractionId", &self.previous_interaction_id),
            ("contactId", &self.contact_id),
            ("contactExternalId", &self.contact_external_id),
            ("complianceGuardRuleId", &self.compliance_guard_rule_id),
            ("createdBy", &self.created_by),
        ] {
            keep!(check_len(field, value, 0, MAX_ID_CHARS));
        }
        for (field, value) in [
            ("failureDescriptionShort", &self.failure_description_short),
            ("failureDescriptionLong", &self.failure_description_long),
        ] {
            keep!(check_len(field, value, 0, MAX_TEXT_CHARS));
        }
        let loan_ids = self.loan_ids.as_deref().unwrap_or_default();
        if loan_ids.len() > MAX_LOANS {
            errors.push(ValidationError::TooMany {
                field: "loanIds",
                len: loan_ids.len(),
                max: MAX_LOANS,
            });
        } else if let Some(bad) = loan_ids
            .iter()
            .find(|l| l.is_empty() || l.chars().count() > MAX_ID_CHARS)
        {
            keep!(check_len("loanIds", &Some(bad.clone()), 1, MAX_ID_CHARS));
        }
        let case_ids = self.case_ids.as_deref().unwrap_or_default();
        if case_ids.len() > MAX_CASES {
            errors.push(ValidationError::TooMany {
                field: "caseIds",
                len: case_ids.len(),
                max: MAX_CASES,
            });
        } else {
            for (i, c) in case_ids.iter().enumerate() {
                if !is_case_id(c) {
                    errors.push(ValidationError::InvalidCaseId {
                        field: "caseIds",
                        value: echo(c),
                    });
                } else if case_ids[..i].contains(c) {
                    errors.push(ValidationError::Duplicate {
                        field: "caseIds",
                        value: c.clone(),
                    });
                }
            }
        }
        keep!(check_json("metaData", &self.meta_data));
        keep!(check_json("content", &self.content));
        keep!(check_json("borrower", &self.borrower));
        if let Some(prev) = &self.previous_interaction_id {
            keep!(AnyId::parse("previousInteractionId", prev));
        }
        let contact = match &self.contact {
            None => None,
            Some(c) => {
                for (field, value) in [
                    ("contact.kind", &c.kind),
                    ("contact.value", &c.value),
                    ("contact.name", &c.name),
                ] {
                    keep!(check_len(field, value, 0, MAX_ID_CHARS));
                }
                Some(Contact {
                    kind: ContactKind::from_record(c.kind.as_deref()),
                    kind_as_given: c.kind.clone(),
                    value: c.value.clone(),
                    name: c.name.clone(),
                })
            }
        };

        let started_at = keep!(opt_time("startedAt", &self.started_at)).flatten();
        let ended_at = keep!(opt_time("endedAt", &self.ended_at)).flatten();
        let scheduled_at_from =
            keep!(opt_time("scheduledAtFrom", &self.scheduled_at_from)).flatten();
        let scheduled_at_to = keep!(opt_time("scheduledAtTo", &self.scheduled_at_to)).flatten();
        if let (Some(from), Some(to)) = (scheduled_at_from, scheduled_at_to)
            && to < from
        {
            errors.push(ValidationError::ScheduleOrder { from, to });
        }
        let created_at = keep!(opt_time("createdAt", &self.created_at)).flatten();
        let updated_at = keep!(opt_time("updatedAt", &self.updated_at)).flatten();
        let deleted_at = keep!(opt_time("deletedAt", &self.deleted_at)).flatten();

        if let Some(channel) = channel
            && channel != Channel::Voice
        {
            for (kind, m) in [
                (MediaKind::Recording, &self.recording),
                (MediaKind::Voicemail, &self.voicemail),
            ] {
                if m.is_some() {
                    errors.push(ValidationError::MediaChannel { channel, kind });
                }
            }
        }

        let (Some(channel), Some(direction), Some(status), true) =
            (channel, direction, status, errors.is_empty())
        else {
            return Err(errors);
        };

        Ok(Interaction {
            id: self.id.clone().unwrap_or_default(),
            external_id: self.external_id.clone(),
            person_id: self.person_id.clone().unwrap_or_default(),
            channel,
            direction,
            theme,
            borrower_selected_theme,
            subject,
            status,
            status_details,
            agent_outcome,
            started_at: started_at.unwrap_or(now),
            ended_at,
            scheduled_at_from,
            scheduled_at_to,
            loan_id: self.loan_id.clone(),
            loan_ids: loan_ids.to_vec(),
            case_ids: case_ids.to_vec(),
            is_transactional: self.is_transactional,
            sensitive: self.sensitive,
            is_external: self.is_external.unwrap_or(true),
            previous_interaction_id: self.previous_interaction_id.clone(),
            contact_id: self.contact_id.clone(),
            contact_external_id: self.contact_external_id.clone(),
            contact,
            borrower: self.borrower.clone(),
            meta_data: self.meta_data.clone(),
            content: self.content.clone(),
            failure_description_short: self.failure_description_short.clone(),
            failure_description_long: self.failure_description_long.clone(),
            compliance_guard_rule_id: self.compliance_guard_rule_id.clone(),
            twilio_error_code: self.twilio_error_code.clone(),
            created_at: created_at.unwrap_or(now),
            updated_at,
            deleted_at,
            created_by: self.created_by.clone(),
            updated_by: None,
            company_id: self.company_id.clone(),
            recording: self.recording.clone(),
            voicemail: self.voicemail.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_id_forms() {
        for ok in [
            "ext-abc",
            "BO-ABCD-1234",
            "IT-1-2",
            "12345",
            "LN-AAAA-BBBB-x",
        ] {
            assert!(is_any_id(ok), "{ok}");
        }
        for bad in [
            "",
            "ext-",
            "bo-abcd-1234",
            "BO-ABCD",
            "B-AAAA-BBBB",
            "BO--X",
            "hello",
        ] {
            assert!(!is_any_id(bad), "{bad}");
        }
    }
}
