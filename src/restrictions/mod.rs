//! Borrower restrictions: what the borrower (or the law, or the lender) has
//! said about contacting them, recorded per borrower or per debt.
//!
//! A restriction is a fact with a start and maybe an end: a cease letter
//! received on a date, a STOP reply to one number, a prior consent to call,
//! a designated inconvenient time, an attorney's representation, a
//! bankruptcy. Rules decide what each kind does: a rule of kind
//! `restriction` blocks covered sends while a restriction of its kind is in
//! force (see [`crate::engine`] for the exceptions the law allows), and the
//! consents and the D.C. notice are read by the rules that name them.
//!
//! Restrictions are never deleted: ending one records when, by whom and why,
//! and keeps it for the audit. Every change is journaled as the
//! restriction's full new state.

mod effect;

pub use effect::effect;

use std::fmt;

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::Deserialize;

use crate::model::{Channel, ContactKind, describe_allowed, parse_time};
use crate::problem::FieldProblem;

/// Most loans, channels, contact kinds or contact values one restriction
/// may name.
pub const MAX_ITEMS: usize = 100;
/// Longest contact value, loan id or restriction id.
pub const MAX_VALUE_CHARS: usize = 255;
/// Longest note or end reason.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Most restrictions kept per borrower, ended ones included.
pub const MAX_PER_PERSON: usize = 1_000;
/// Most entries in a designation's `days`: one per day of the week (the
/// groups `weekdays` and `weekends` name five and two), so a longer list
/// can only repeat itself.
pub const MAX_DAYS: usize = 7;

/// The spellings of the days of the week in `days`, Monday first (the
/// order they are stored and shown in).
pub const DAY_NAMES: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The groups `days` also accepts, with the days each names; they are
/// expanded on input and never stored, so that one designation has one
/// spelling.
pub const DAY_GROUPS: &[(&str, &[Weekday])] = &[
    (
        "weekdays",
        &[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
    ),
    ("weekends", &[Weekday::Sat, Weekday::Sun]),
];

/// The spelling of a day of the week in `days` (`monday`..`sunday`).
pub fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES
        .get(day.num_days_from_monday() as usize)
        .copied()
        .unwrap_or("monday")
}

/// Parses one day of the week as `days` spells it; anything else
/// (a group, another case, an abbreviation) is `None`.
pub fn parse_day(text: &str) -> Option<Weekday> {
    let i = DAY_NAMES.iter().position(|n| *n == text)?;
    Weekday::try_from(u8::try_from(i).ok()?).ok()
}

/// Parses a `days` entry: one day, or a group (`weekdays`, `weekends`).
fn parse_days_entry(text: &str) -> Option<Vec<Weekday>> {
    parse_day(text).map(|d| vec![d]).or_else(|| {
        DAY_GROUPS
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, days)| days.to_vec())
    })
}

macro_rules! names {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every value's spelling.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the exact spelling; anything else is `None`.
            #[allow(clippy::should_implement_trait, reason = "returns Option, not Result")]
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            fn parse_field(text: &str) -> Result<Self, FieldProblem> {
                Self::parse(text).ok_or_else(|| FieldProblem::new(
                    $field,
                    format!(
                        "`{}` value `{}` is not allowed; allowed: {}",
                        $field,
                        clip(text),
                        describe_allowed(text, Self::NAMES)
                    ),
                ))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// What a restriction is. The legal text behind each is in docs/api.md
    /// ("Borrower restrictions") and in the rules that honour it.
    RestrictionKind, "kind" {
        /// 12 CFR 1006.6(c): the borrower refuses to pay or asks the lender
        /// to cease communication about a debt. In force from receipt.
        CeaseCommunication = "ceaseCommunication",
        /// 12 CFR 1006.14(h): the borrower asked not to be contacted
        /// through a medium ("stop calling"), or opted out of one number or
        /// address (a STOP reply, an unsubscribe). For every debt.
        MediumOptOut = "mediumOptOut",
        /// 12 CFR 1006.14(b)(3)(i): prior consent to call, given directly.
        /// Calls inside its period count toward neither test of
        /// 1006.14(b)(2). At most 7 days, the day of receipt being day 1.
        PriorConsentToCall = "priorConsentToCall",
        /// 12 CFR 1006.6(b)(1): a time the borrower designated as
        /// inconvenient ("never before 10:00"), local time.
        InconvenientTime = "inconvenientTime",
        /// 12 CFR 1006.6(b)(1): a place the borrower designated as
        /// inconvenient ("never at work"), as contact kinds or values.
        InconvenientPlace = "inconvenientPlace",
        /// 12 CFR 1006.6(b)(2): an attorney represents the borrower about
        /// a debt; the attorney's own contact points stay reachable.
        AttorneyRepresentation = "attorneyRepresentation",
        /// 12 CFR 1006.6(b)(3): the employer prohibits the borrower from
        /// receiving such communications at work.
        EmployerProhibitsContact = "employerProhibitsContact",
        /// A do-not-interact period (bankruptcy, death, a dispute under
        /// review), per borrower or per debt, with an optional end.
        DoNotInteract = "doNotInteract",
        /// D.C. Code 28-3814(d)(4)(B): the borrower's express consent to
        /// electronic messages about an account.
        ElectronicConsent = "electronicConsent",
        /// D.C. Code 28-3814(d)(4)(B): the written notice of (m)(2)(A) was
        /// mailed for an account (receivedAt is the mailing date).
        ElectronicNoticeMailed = "electronicNoticeMailed",
        /// The borrower agreed to communications at a time outside a law's
        /// hours (MCL 445.252(n): "unless the debtor expressly agrees in
        /// writing to communications at another time"): the agreed local
        /// time, as `from`/`until` and `days`, and whether the agreement
        /// is in writing (`written`). A rule's `permittedHours` reads it
        /// only when it says `unlessConsent`.
        ConsentToTime = "consentToTime",
    }
}

names! {
    /// How the borrower's written request was sent (La. R.S. 9:3562(3):
    /// "by registered or certified mail"). Unset on a restriction is
    /// unknown, which a rule conditioned on the mail type reads as
    /// matching (the strict reading).
    MailType, "mailType" {
        /// Registered mail.
        Registered = "registered",
        /// Certified mail.
        Certified = "certified",
        /// Anything else: ordinary mail, an email, a call.
        Other = "other",
    }
}

names! {
    /// How the restriction reached the lender.
    Source, "source" {
        /// A letter or other paper.
        Letter = "letter",
        /// A telephone call.
        Call = "call",
        /// A STOP (or similar) reply to a text message.
        StopReply = "stopReply",
        /// An unsubscribe link or reply to an email.
        Unsubscribe = "unsubscribe",
        /// An email.
        Email = "email",
        /// A chat.
        Chat = "chat",
        /// The lender's web portal or app.
        Portal = "portal",
        /// A court, trustee or other official notice.
        CourtNotice = "courtNotice",
        /// The lender's own decision (a dispute review, a policy).
        Lender = "lender",
        /// Anything else; say what in `note`.
        Other = "other",
    }
}

names! {
    /// Why a do-not-interact period was set.
    Reason, "reason" {
        /// A bankruptcy filing (the automatic stay of 11 U.S.C. 362).
        Bankruptcy = "bankruptcy",
        /// The borrower died.
        Deceased = "deceased",
        /// A dispute under review.
        Dispute = "dispute",
        /// Litigation or a court order.
        Litigation = "litigation",
        /// A servicemember's protection (SCRA) or similar.
        Military = "military",
        /// Anything else; say what in `note`.
        Other = "other",
    }
}

impl RestrictionKind {
    /// True for kinds that block sends (a rule of kind `restriction` may
    /// name them); consents and the D.C. notice permit instead.
    pub fn blocks(self) -> bool {
        !matches!(
            self,
            RestrictionKind::PriorConsentToCall
                | RestrictionKind::ElectronicConsent
                | RestrictionKind::ElectronicNoticeMailed
                | RestrictionKind::ConsentToTime
        )
    }
}

/// Every problem of a restriction as given; nothing is recorded when one is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
pub struct RestrictionErrors(pub Vec<FieldProblem>);

fn clip(text: &str) -> String {
    crate::model::echo(text)
}

/// A restriction as a request or a test file gives it: strings, exactly as
/// they travel, checked by [`RestrictionInput::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestrictionInput {
    /// Test files may name a restriction; the server always makes its own
    /// id.
    #[serde(default)]
    pub id: Option<String>,
    /// One of [`RestrictionKind::NAMES`]. Required.
    pub kind: String,
    /// One of [`Source::NAMES`]. Required.
    #[serde(default)]
    pub source: String,
    /// When the lender received it (RFC 3339); it is in force from then.
    /// Required: a cease takes effect on receipt, not when it was sent.
    #[serde(default)]
    pub received_at: String,
    /// When it ends by itself, if it does (a do-not-interact period, a
    /// shorter consent period).
    #[serde(default)]
    pub ends_at: Option<String>,
    /// The loans it is about; empty: every debt of the borrower.
    #[serde(default)]
    pub loan_ids: Vec<String>,
    /// The media of an opt-out, or of an electronic consent.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Numbers or addresses it concerns: the opted-out number, the work
    /// email, the attorney's phone.
    #[serde(default)]
    pub contact_values: Vec<String>,
    /// Kinds of contact point it concerns (`workPhone` for "never at
    /// work").
    #[serde(default)]
    pub contact_kinds: Vec<String>,
    /// Start of a designated inconvenient time, local `HH:MM`.
    #[serde(default)]
    pub from: Option<String>,
    /// End of a designated inconvenient time, local `HH:MM` (exclusive);
    /// earlier than `from` means it runs past midnight.
    #[serde(default)]
    pub until: Option<String>,
    /// The days of the week a designated inconvenient time is on
    /// (`monday`..`sunday`, or the groups `weekdays` and `weekends`);
    /// empty: every day. With `from`/`until` the window is on those days
    /// (a window past midnight belongs to the day it starts on); without
    /// them the whole days are inconvenient ("all times on weekends",
    /// comment 6(b)(1)-1).
    #[serde(default)]
    pub days: Vec<String>,
    /// Why, for a do-not-interact period.
    #[serde(default)]
    pub reason: Option<String>,
    /// Free text: the attorney's name, the letter's reference.
    #[serde(default)]
    pub note: Option<String>,
    /// How a `ceaseCommunication` was sent: `registered`, `certified` or
    /// `other`. Unset: unknown.
    #[serde(default)]
    pub mail_type: Option<String>,
    /// Whether a `consentToTime` was given in writing. Unset: not known to
    /// be written.
    #[serde(default)]
    pub written: Option<bool>,
}

/// A checked restriction, as the index keeps it and the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// Our id (`RS-...`).
    pub id: String,
    /// Our id of the borrower.
    pub person_id: String,
    /// What it is.
    pub kind: RestrictionKind,
    /// How it reached the lender.
    pub source: Source,
    /// In force from this moment (receipt).
    pub received_at: DateTime<Utc>,
    /// When it ends by itself, if it does.
    pub ends_at: Option<DateTime<Utc>>,
    /// The loans it is about; empty: every debt.
    pub loan_ids: Vec<String>,
    /// The media it concerns; empty: all the kind concerns.
    pub channels: Vec<Channel>,
    /// Normalized numbers and addresses ([`normalize_contact`]).
    pub contact_values: Vec<String>,
    /// Kinds of contact point.
    pub contact_kinds: Vec<ContactKind>,
    /// A designated inconvenient time, local: from (inclusive).
    pub from: Option<NaiveTime>,
    /// A designated inconvenient time, local: until (exclusive).
    pub until: Option<NaiveTime>,
    /// The days of a designated inconvenient time, Monday first, each
    /// once; empty: every day. With `from`/`until` the window starts on
    /// these days; without them these whole local days are designated.
    pub days: Vec<Weekday>,
    /// Why, for a do-not-interact period.
    pub reason: Option<Reason>,
    /// Free text.
    pub note: Option<String>,
    /// How a cease was sent; `None` is unknown (read as matching any
    /// mail type a rule asks for).
    pub mail_type: Option<MailType>,
    /// A consent to another time was given in writing; `false` also when
    /// it is not known to have been.
    pub written: bool,
    /// Who recorded it (from the credential).
    pub recorded_by: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// When it was ended (a revocation, an attorney's consent), if it was.
    pub ended_at: Option<DateTime<Utc>>,
    /// Who ended it.
    pub ended_by: Option<String>,
    /// Why it was ended.
    pub end_reason: Option<String>,
}

impl Restriction {
    /// The moment it stops being in force, if any: its own end or the
    /// moment it was ended, whichever comes first.
    pub fn stop(&self) -> Option<DateTime<Utc>> {
        match (self.ends_at, self.ended_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True if it is in force at `t`: received at or before `t`, and not
    /// stopped at or before `t`.
    pub fn in_force_at(&self, t: DateTime<Utc>) -> bool {
        self.received_at <= t && self.stop().is_none_or(|s| t < s)
    }

    /// True if it concerns this contact value; an unknown value (`None`)
    /// is concerned whenever the restriction names values (the strict
    /// reading), and a restriction naming no value concerns every one.
    pub fn concerns_value(&self, value: Option<&str>) -> bool {
        self.contact_values.is_empty()
            || value.is_none_or(|v| self.contact_values.iter().any(|c| c == v))
    }
}

/// Normalizes a number or an address so that two spellings of one contact
/// point compare equal: an address (with `@`) is trimmed and lower-cased; a
/// number keeps its digits, without the `1` country code of a US number.
pub fn normalize_contact(value: &str) -> String {
    let v = value.trim();
    if v.contains('@') {
        return v.to_lowercase();
    }
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return v.to_lowercase();
    }
    match digits.strip_prefix('1') {
        Some(rest) if digits.len() == 11 => rest.to_owned(),
        _ => digits,
    }
}

fn parse_hhmm(field: &'static str, text: &str) -> Result<NaiveTime, FieldProblem> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
    });
    parsed.ok_or_else(|| {
        FieldProblem::new(
            field,
            format!(
                "`{field}` value `{}` is not a time; allowed: HH:MM, for example `10:00`",
                clip(text)
            ),
        )
    })
}

/// The days a designation's `days` names, Monday first, each once; every
/// problem (too many entries, an unknown name) is pushed naming `days`.
fn parse_days(list: &[String], problems: &mut Vec<FieldProblem>) -> Vec<Weekday> {
    if list.len() > MAX_DAYS {
        problems.push(FieldProblem::new(
            "days",
            format!(
                "`days` has {} entries; allowed: at most {MAX_DAYS}, each day once (`weekdays` names five, `weekends` two)",
                list.len()
            ),
        ));
        return Vec::new();
    }
    let mut named = [false; 7];
    for text in list {
        match parse_days_entry(text) {
            Some(days) => {
                for d in days {
                    if let Some(slot) = named.get_mut(d.num_days_from_monday() as usize) {
                        *slot = true;
                    }
                }
            }
            None => {
                let allowed: Vec<&'static str> = DAY_NAMES
                    .iter()
                    .copied()
                    .chain(DAY_GROUPS.iter().map(|(n, _)| *n))
                    .collect();
                problems.push(FieldProblem::new(
                    "days",
                    format!(
                        "`days` value `{}` is not allowed; allowed: {}",
                        clip(text),
                        describe_allowed(text, &allowed)
                    ),
                ));
            }
        }
    }
    let mut week = Weekday::Mon;
    let mut days = Vec::new();
    for on in named {
        if on {
            days.push(week);
        }
        week = week.succ();
    }
    days
}

/// The days as prose, plural and Monday first: `Tuesdays and Thursdays`,
/// `weekdays (Monday to Friday)`, `weekends (Saturday and Sunday)`.
pub fn describe_days(days: &[Weekday]) -> String {
    for (group, named) in DAY_GROUPS {
        if days == *named {
            let first = named.first().map_or("", |d| title(day_name(*d)));
            let last = named.last().map_or("", |d| title(day_name(*d)));
            let joint = if named.len() == 2 { "and" } else { "to" };
            return format!("{group} ({first} {joint} {last})");
        }
    }
    let names: Vec<String> = days
        .iter()
        .map(|d| format!("{}s", title(day_name(*d))))
        .collect();
    match names.split_last() {
        None => "every day".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// `Monday` for `monday`.
fn title(name: &'static str) -> &'static str {
    match name {
        "monday" => "Monday",
        "tuesday" => "Tuesday",
        "wednesday" => "Wednesday",
        "thursday" => "Thursday",
        "friday" => "Friday",
        "saturday" => "Saturday",
        _ => "Sunday",
    }
}

impl Restriction {
    /// A designated inconvenient time as prose, local time: `15:00–17:00
    /// on weekdays (Monday to Friday)`, `all day on Saturdays and
    /// Sundays`, `21:00–08:00 (past midnight) starting on Fridays`,
    /// `00:00–10:00` every day. Empty for other kinds. Agents read it to
    /// tell a borrower why a send waits, so it names the days.
    pub fn designated_time(&self) -> String {
        let hhmm = |t: NaiveTime| t.format("%H:%M").to_string();
        match (self.from, self.until) {
            (Some(f), Some(u)) if self.days.is_empty() => format!("{}–{}", hhmm(f), hhmm(u)),
            (Some(f), Some(u)) if u < f => format!(
                "{}–{} (past midnight) starting on {}",
                hhmm(f),
                hhmm(u),
                describe_days(&self.days)
            ),
            (Some(f), Some(u)) => {
                format!("{}–{} on {}", hhmm(f), hhmm(u), describe_days(&self.days))
            }
            _ if self.days.is_empty() => String::new(),
            _ => format!("all day on {}", describe_days(&self.days)),
        }
    }
}

/// What a kind accepts beyond the common fields.
struct Shape {
    loans: bool,
    channels: bool,
    contacts: bool,
    times: bool,
    reason: bool,
    ends: bool,
    mail_type: bool,
    written: bool,
}

fn shape(kind: RestrictionKind) -> Shape {
    use RestrictionKind as K;
    let none = Shape {
        loans: false,
        channels: false,
        contacts: false,
        times: false,
        reason: false,
        ends: false,
        mail_type: false,
        written: false,
    };
    match kind {
        K::CeaseCommunication => Shape {
            loans: true,
            mail_type: true,
            ..none
        },
        K::MediumOptOut => Shape {
            channels: true,
            contacts: true,
            ..none
        },
        K::PriorConsentToCall => Shape {
            loans: true,
            ends: true,
            ..none
        },
        // An end date ("until the school year ends") is `endsAt`.
        K::InconvenientTime => Shape {
            times: true,
            ends: true,
            ..none
        },
        K::InconvenientPlace | K::EmployerProhibitsContact => Shape {
            contacts: true,
            ..none
        },
        K::AttorneyRepresentation => Shape {
            loans: true,
            contacts: true,
            ..none
        },
        K::DoNotInteract => Shape {
            loans: true,
            reason: true,
            ends: true,
            ..none
        },
        K::ElectronicConsent => Shape {
            loans: true,
            channels: true,
            ..none
        },
        K::ElectronicNoticeMailed => Shape {
            loans: true,
            ..none
        },
        // The agreed time, as a designated time is written; an end date
        // ("for this month") is `endsAt`.
        K::ConsentToTime => Shape {
            times: true,
            ends: true,
            written: true,
            ..none
        },
    }
}

/// Channels a borrower can opt out of or consent to electronically.
const ELECTRONIC: &[Channel] = &[Channel::Email, Channel::Text, Channel::Chat];

/// True for the media of 1006.14(h)(1)-3.ii and D.C. (d)(4)(B): email,
/// text and chat.
pub fn is_electronic(c: Channel) -> bool {
    ELECTRONIC.contains(&c)
}

impl RestrictionInput {
    /// Checks every field and returns the restriction, with its id, person
    /// and recorder filled in by the caller's values. Every problem is
    /// reported, each naming its field and what is allowed.
    pub fn check(
        &self,
        id: String,
        person_id: String,
        recorded_by: String,
        recorded_at: DateTime<Utc>,
    ) -> Result<Restriction, RestrictionErrors> {
        let mut problems = Vec::new();
        let kind = if self.kind.is_empty() {
            problems.push(FieldProblem::new("kind", "`kind` is required"));
            None
        } else {
            RestrictionKind::parse_field(&self.kind)
                .map_err(|p| problems.push(p))
                .ok()
        };
        let source = if self.source.is_empty() {
            problems.push(FieldProblem::new(
                "source",
                format!(
                    "`source` is required; allowed: {}",
                    Source::NAMES.join(", ")
                ),
            ));
            None
        } else {
            Source::parse_field(&self.source)
                .map_err(|p| problems.push(p))
                .ok()
        };
        let received_at = if self.received_at.is_empty() {
            problems.push(FieldProblem::new(
                "receivedAt",
                "`receivedAt` is required: a restriction is in force from when the lender received it",
            ));
            None
        } else {
            parse_time("receivedAt", &self.received_at)
                .map_err(|e| problems.push(FieldProblem::new("receivedAt", e.to_string())))
                .ok()
        };
        let ends_at = self
            .ends_at
            .as_deref()
            .map(|t| parse_time("endsAt", t))
            .transpose()
            .map_err(|e| problems.push(FieldProblem::new("endsAt", e.to_string())))
            .ok()
            .flatten();
        if let (Some(r), Some(e)) = (received_at, ends_at)
            && e <= r
        {
            problems.push(FieldProblem::new(
                "endsAt",
                format!(
                    "`endsAt` {} is not after `receivedAt` {}; allowed: a later moment, or no end",
                    e.to_rfc3339(),
                    r.to_rfc3339()
                ),
            ));
        }
        let bounded = |field: &'static str, list: &[String], problems: &mut Vec<FieldProblem>| {
            if list.len() > MAX_ITEMS {
                problems.push(FieldProblem::new(
                    field,
                    format!(
                        "`{field}` has {} entries; allowed: at most {MAX_ITEMS}",
                        list.len()
                    ),
                ));
            }
            if let Some(bad) = list
                .iter()
                .find(|v| v.trim().is_empty() || v.chars().count() > MAX_VALUE_CHARS)
            {
                problems.push(FieldProblem::new(
                    field,
                    format!(
                        "`{field}` value `{}` is not allowed; allowed: 1 to {MAX_VALUE_CHARS} characters",
                        clip(bad)
                    ),
                ));
            }
        };
        bounded("loanIds", &self.loan_ids, &mut problems);
        bounded("channels", &self.channels, &mut problems);
        bounded("contactValues", &self.contact_values, &mut problems);
        bounded("contactKinds", &self.contact_kinds, &mut problems);
        let mut channels = Vec::new();
        for c in &self.channels {
            match Channel::parse(c) {
                Some(ch) if !channels.contains(&ch) => channels.push(ch),
                Some(_) => {}
                None => problems.push(FieldProblem::new(
                    "channels",
                    format!(
                        "`channels` value `{}` is not allowed; allowed: {}",
                        clip(c),
                        describe_allowed(c, Channel::NAMES)
                    ),
                )),
            }
        }
        let mut contact_kinds = Vec::new();
        for k in &self.contact_kinds {
            match ContactKind::parse(k) {
                Some(kind) if !contact_kinds.contains(&kind) => contact_kinds.push(kind),
                Some(_) => {}
                None => {
                    let names: Vec<&'static str> =
                        ContactKind::NAMED.iter().map(|(_, n)| *n).collect();
                    problems.push(FieldProblem::new(
                        "contactKinds",
                        format!(
                            "`contactKinds` value `{}` is not allowed; allowed: {}",
                            clip(k),
                            describe_allowed(k, &names)
                        ),
                    ));
                }
            }
        }
        let mut contact_values: Vec<String> = Vec::new();
        for v in &self.contact_values {
            let n = normalize_contact(v);
            if !contact_values.contains(&n) {
                contact_values.push(n);
            }
        }
        let from = self
            .from
            .as_deref()
            .map(|t| parse_hhmm("from", t))
            .transpose()
            .map_err(|p| problems.push(p))
            .ok()
            .flatten();
        let until = self
            .until
            .as_deref()
            .map(|t| parse_hhmm("until", t))
            .transpose()
            .map_err(|p| problems.push(p))
            .ok()
            .flatten();
        let days = parse_days(&self.days, &mut problems);
        let mail_type = self
            .mail_type
            .as_deref()
            .map(MailType::parse_field)
            .transpose()
            .map_err(|p| problems.push(p))
            .ok()
            .flatten();
        let reason = self
            .reason
            .as_deref()
            .map(Reason::parse_field)
            .transpose()
            .map_err(|p| problems.push(p))
            .ok()
            .flatten();
        let note = self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
            problems.push(FieldProblem::new(
                "note",
                format!("`note` is longer than {MAX_NOTE_CHARS} characters"),
            ));
        }
        if let Some(kind) = kind {
            check_shape(kind, self, &channels, from, until, &mut problems);
        }
        let (Some(kind), Some(source), Some(received_at)) = (kind, source, received_at) else {
            return Err(RestrictionErrors(problems));
        };
        if !problems.is_empty() {
            return Err(RestrictionErrors(problems));
        }
        // "Never at work" and an employer's prohibition mean the work phone
        // when nothing more precise is given.
        if kind == RestrictionKind::EmployerProhibitsContact
            && contact_kinds.is_empty()
            && contact_values.is_empty()
        {
            contact_kinds.push(ContactKind::WorkPhone);
        }
        if kind == RestrictionKind::ElectronicConsent && channels.is_empty() {
            channels = ELECTRONIC.to_vec();
        }
        let mut loan_ids: Vec<String> = Vec::new();
        for l in &self.loan_ids {
            if !loan_ids.contains(l) {
                loan_ids.push(l.clone());
            }
        }
        Ok(Restriction {
            id,
            person_id,
            kind,
            source,
            received_at,
            ends_at,
            loan_ids,
            channels,
            contact_values,
            contact_kinds,
            from,
            until,
            days,
            reason,
            note: note.map(str::to_owned),
            mail_type,
            written: self.written == Some(true),
            recorded_by,
            recorded_at,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        })
    }
}

fn check_shape(
    kind: RestrictionKind,
    input: &RestrictionInput,
    channels: &[Channel],
    from: Option<NaiveTime>,
    until: Option<NaiveTime>,
    problems: &mut Vec<FieldProblem>,
) {
    let s = shape(kind);
    let mut refuse = |field: &'static str, why: &str| {
        problems.push(FieldProblem::new(
            field,
            format!("`{field}` is not allowed for `kind` `{kind}`: {why}"),
        ));
    };
    if !s.loans && !input.loan_ids.is_empty() {
        let why = if kind == RestrictionKind::MediumOptOut {
            "an opt-out covers every debt (comment 14(h)(1)-3.ii)"
        } else {
            "it concerns the borrower, not a debt"
        };
        refuse("loanIds", why);
    }
    if !s.channels && !input.channels.is_empty() {
        refuse("channels", "it concerns every medium");
    }
    if matches!(
        kind,
        RestrictionKind::MediumOptOut | RestrictionKind::AttorneyRepresentation
    ) && !input.contact_kinds.is_empty()
    {
        refuse(
            "contactKinds",
            "name the numbers or addresses themselves in `contactValues`",
        );
    }
    if !s.contacts && (!input.contact_values.is_empty() || !input.contact_kinds.is_empty()) {
        let field = if input.contact_values.is_empty() {
            "contactKinds"
        } else {
            "contactValues"
        };
        refuse(field, "it concerns every contact point");
    }
    if !s.times && (input.from.is_some() || input.until.is_some()) {
        let field = if input.from.is_some() {
            "from"
        } else {
            "until"
        };
        refuse(
            field,
            "only `inconvenientTime` and `consentToTime` have local times",
        );
    }
    if !s.times && !input.days.is_empty() {
        refuse(
            "days",
            "only `inconvenientTime` and `consentToTime` have days of the week",
        );
    }
    if !s.mail_type && input.mail_type.is_some() {
        refuse(
            "mailType",
            "only `ceaseCommunication` records how the request was sent",
        );
    }
    if !s.written && input.written.is_some() {
        refuse(
            "written",
            "only `consentToTime` records whether it was given in writing",
        );
    }
    if !s.reason && input.reason.is_some() {
        refuse("reason", "only `doNotInteract` has a reason");
    }
    if !s.ends && input.ends_at.is_some() {
        refuse(
            "endsAt",
            "it lasts until it is ended (EndRestriction records a revocation)",
        );
    }
    match kind {
        RestrictionKind::MediumOptOut if input.channels.is_empty() => {
            problems.push(FieldProblem::new(
                "channels",
                "`channels` is required for `mediumOptOut`: name the medium, such as `voice` for \"stop calling\" or `text` for a STOP reply",
            ));
        }
        RestrictionKind::ElectronicConsent
            if channels.iter().any(|c| !is_electronic(*c)) =>
        {
            problems.push(FieldProblem::new(
                "channels",
                "`channels` of `electronicConsent` allows: email, text, chat",
            ));
        }
        RestrictionKind::InconvenientTime | RestrictionKind::ConsentToTime => match (from, until) {
            (Some(f), Some(u)) if f == u => problems.push(FieldProblem::new(
                "until",
                "`until` equals `from`; allowed: a different time (earlier than `from` runs past midnight), or neither `from` nor `until` with `days` for whole days",
            )),
            (Some(_), Some(_)) => {}
            // Whole days: "all times on weekends".
            _ if input.from.is_none() && input.until.is_none() && !input.days.is_empty() => {}
            _ if input.from.is_none() => problems.push(FieldProblem::new(
                "from",
                format!("`from` is required for `{kind}` with `until` or without `days`, as HH:MM local time; allowed: `from` and `until`, or neither with `days` for whole days"),
            )),
            _ if input.until.is_none() => problems.push(FieldProblem::new(
                "until",
                format!("`until` is required for `{kind}` with `from`, as HH:MM local time; allowed: `from` and `until`, or neither with `days` for whole days"),
            )),
            _ => {}
        },
        // 9:3562(3)'s request is "in writing by registered or certified
        // mail": a registered or certified request came as a letter.
        RestrictionKind::CeaseCommunication
            if matches!(input.mail_type.as_deref(), Some("registered" | "certified"))
                && input.source != "letter"
                && !input.source.is_empty() =>
        {
            problems.push(FieldProblem::new(
                "mailType",
                format!(
                    "`mailType` `{}` is for a request that came by mail, but `source` is `{}`; allowed: `source` `letter`, or `mailType` `other`",
                    input.mail_type.as_deref().unwrap_or_default(),
                    clip(&input.source)
                ),
            ));
        }
        RestrictionKind::InconvenientPlace
            if input.contact_kinds.is_empty() && input.contact_values.is_empty() =>
        {
            problems.push(FieldProblem::new(
                "contactKinds",
                "`contactKinds` or `contactValues` is required for `inconvenientPlace`: name the place, such as `workPhone`",
            ));
        }
        RestrictionKind::DoNotInteract if input.reason.is_none() => {
            problems.push(FieldProblem::new(
                "reason",
                format!(
                    "`reason` is required for `doNotInteract`; allowed: {}",
                    Reason::NAMES.join(", ")
                ),
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_with_its_field() {
        let input = RestrictionInput {
            kind: "mediumOptOut".into(),
            source: "stopReply".into(),
            received_at: "2020-06-01T14:00:00Z".into(),
            contact_kinds: vec!["mobilePhone".into()],
            loan_ids: vec!["L1".into()],
            ..RestrictionInput::default()
        };
        let at = DateTime::UNIX_EPOCH;
        let e = input
            .check("RS-1".into(), "BO-1".into(), "t".into(), at)
            .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["loanIds", "contactKinds", "channels"], "{e}");
        assert!(e.0[1].message.contains("`contactValues`"), "{e}");
    }

    fn designation(
        days: &[&str],
        window: Option<(&str, &str)>,
    ) -> Result<Restriction, RestrictionErrors> {
        RestrictionInput {
            kind: "inconvenientTime".into(),
            source: "call".into(),
            received_at: "2026-07-01T12:00:00Z".into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            from: window.map(|w| w.0.to_owned()),
            until: window.map(|w| w.1.to_owned()),
            ..RestrictionInput::default()
        }
        .check(
            "RS-1".into(),
            "BO-1".into(),
            "t".into(),
            DateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn days_are_expanded_deduplicated_and_monday_first() {
        let r = designation(&["weekends", "monday", "saturday"], None).unwrap();
        assert_eq!(r.days, [Weekday::Mon, Weekday::Sat, Weekday::Sun]);
        assert_eq!((r.from, r.until), (None, None));
        let every: Vec<&str> = DAY_NAMES.to_vec();
        let r = designation(&every, Some(("15:00", "17:00"))).unwrap();
        assert_eq!(r.days.len(), 7);
        assert_eq!(
            DAY_NAMES.iter().map(|d| parse_day(d)).collect::<Vec<_>>(),
            r.days.iter().copied().map(Some).collect::<Vec<_>>()
        );
        assert!(r.days.iter().all(|d| parse_day(day_name(*d)) == Some(*d)));
        assert_eq!(parse_day("weekdays"), None);
        assert_eq!(parse_day("Monday"), None);
    }

    #[test]
    fn bad_days_name_the_field() {
        let e = designation(&["funday"], None).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].field, "days");
        assert!(
            e.0[0]
                .message
                .starts_with("`days` value `funday` is not allowed; allowed: monday,"),
            "{e}"
        );
        let e = designation(&["monday"; 8], None).unwrap_err();
        assert_eq!(e.0[0].field, "days", "{e}");
        let e = designation(&["monday"], Some(("15:00", "15:00"))).unwrap_err();
        assert_eq!(e.0[0].field, "until", "{e}");
        let e = designation(&[], None).unwrap_err();
        assert_eq!(e.0[0].field, "from", "{e}");
    }

    #[test]
    fn designated_times_read_as_prose() {
        let text = |days: &[&str], w| designation(days, w).unwrap().designated_time();
        assert_eq!(text(&[], Some(("00:00", "10:00"))), "00:00–10:00");
        assert_eq!(
            text(&["tuesday", "thursday"], None),
            "all day on Tuesdays and Thursdays"
        );
        assert_eq!(
            text(&["weekends"], None),
            "all day on weekends (Saturday and Sunday)"
        );
        assert_eq!(
            text(&["weekdays"], Some(("15:00", "17:00"))),
            "15:00–17:00 on weekdays (Monday to Friday)"
        );
        assert_eq!(
            text(&["friday"], Some(("21:00", "08:00"))),
            "21:00–08:00 (past midnight) starting on Fridays"
        );
        assert_eq!(
            text(&["monday", "wednesday", "friday"], Some(("09:00", "10:00"))),
            "09:00–10:00 on Mondays, Wednesdays and Fridays"
        );
    }

    #[test]
    fn normalizes_numbers_and_addresses() {
        assert_eq!(normalize_contact("+1 (555) 123-4567"), "5551234567");
        assert_eq!(normalize_contact("555.123.4567"), "5551234567");
        assert_eq!(normalize_contact(" Ann@Example.COM "), "ann@example.com");
        assert_eq!(normalize_contact("+44 20 7946 0958"), "442079460958");
    }
}
