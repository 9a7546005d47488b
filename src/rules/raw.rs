//! The rule files' shape, exactly as officers write them: every key known,
//! every unknown key refused (`deny_unknown_fields`), vocabulary values
//! checked while parsing so that the YAML parser can point at them.
//!
//! Nothing here is evaluated: [`super::RuleSet::compile`] turns these
//! structures into checked rules, and the engine sees only those.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::jurisdiction::Jurisdiction;
use crate::model::{
    AgentOutcome, Channel, ContactKind, Direction, StatusDetails, Theme, describe_allowed,
};
use crate::restrictions::{MailType, RestrictionKind};

/// One rule file: a list of rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFile {
    /// The rules, in the order written.
    pub rules: Vec<RawRule>,
}

/// Whom a rule binds, and what a deployment says the lender is
/// (`--roles`). A rule binds a deployment when one of its `binds` is among
/// the deployment's roles, after [`Role::implied`] adds what each role
/// implies; a rule that names no role binds every deployment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// A debt collector under the FDCPA (Regulation F binds these).
    DebtCollector,
    /// A creditor collecting its own debts (940 CMR 7.04 binds these).
    Creditor,
    /// A licensed collection agency (RCW 19.16 binds these).
    Licensee,
    /// A lender licensed to make small (payday) loans, collecting its own
    /// loans (RCW 31.45.082 binds these). It is a creditor too: the role
    /// implies [`Role::Creditor`].
    SmallLoanLicensee,
}

impl Role {
    /// The name as written in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::DebtCollector => "debtCollector",
            Role::Creditor => "creditor",
            Role::Licensee => "licensee",
            Role::SmallLoanLicensee => "smallLoanLicensee",
        }
    }

    /// Every role, as `--roles` and rule files spell them.
    pub const NAMES: &'static [&'static str] =
        &["debtCollector", "creditor", "licensee", "smallLoanLicensee"];

    /// Parses a role as written; anything else is `None`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "debtCollector" => Some(Role::DebtCollector),
            "creditor" => Some(Role::Creditor),
            "licensee" => Some(Role::Licensee),
            "smallLoanLicensee" => Some(Role::SmallLoanLicensee),
            _ => None,
        }
    }

    /// The roles a deployment holds when it says it holds `roles`: each
    /// role with the roles it implies. A small-loan licensee collects its
    /// own loans, so it is a creditor too: a deployment that names only
    /// `smallLoanLicensee` must not escape the creditors' rules. Implied
    /// roles only ever add rules, never remove one.
    pub fn implied(roles: &[Role]) -> Vec<Role> {
        let mut out = roles.to_vec();
        if roles.contains(&Role::SmallLoanLicensee) && !out.contains(&Role::Creditor) {
            out.push(Role::Creditor);
        }
        out
    }
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRule {
    /// Stable id; it is the complianceGuardRuleId of the blocks it decides.
    pub id: String,
    /// What the rule does, in plain words.
    pub description: String,
    /// The legal citation, for example `12 CFR 1006.14(b)(2)(i)(A)`.
    pub citation: String,
    /// Where the text was read, and any reading we made of it.
    #[serde(default)]
    pub source: Option<String>,
    /// Whom it binds; empty means everyone.
    #[serde(default)]
    pub binds: Vec<Role>,
    /// `enforce` (the default) or `shadow`: evaluated and reported, never
    /// blocking, so that a new rule can be tried on live traffic.
    #[serde(default)]
    pub mode: Mode,
    /// Where it binds.
    pub jurisdictions: Vec<JurisdictionName>,
    /// Which sends it covers (and, for caps, which history it counts).
    #[serde(default)]
    pub applies: RawFilter,
    /// A cap: at most N matching communications in a window.
    #[serde(default)]
    pub frequency_cap: Option<RawCap>,
    /// A quiet period after an event.
    #[serde(default)]
    pub cool_down: Option<RawCoolDown>,
    /// Local hours outside which no covered send is allowed.
    #[serde(default)]
    pub permitted_hours: Option<RawHours>,
    /// A borrower restriction this rule honours: covered sends are blocked
    /// while one of this kind is in force (with the law's exceptions).
    #[serde(default)]
    pub restriction: Option<RestrictionKindName>,
    /// With `restriction`: which exceptions to it the rule applies.
    /// `regulationF` (the default) applies 12 CFR 1006's (a cease's
    /// 1006.6(c)(2) notices, an opt-out's 1006.14(h)(2) confirmation, reply
    /// and required-by-law messages); `none` applies none, for a law that
    /// states the restriction without them (D.C. 28-3814(d)(4)).
    #[serde(default)]
    pub exceptions: Option<Exceptions>,
    /// Local dates (holidays, blackouts) on which no covered send goes.
    #[serde(default)]
    pub blackout_dates: Option<RawBlackout>,
    /// Covered sends need a recorded consent (and notice), except a
    /// bounded number of consent requests.
    #[serde(default)]
    pub consent_required: Option<RawConsentRequired>,
}

/// Blackout dates as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBlackout {
    /// Dates, `YYYY-MM-DD`, in the borrower's local calendar.
    #[serde(default)]
    pub dates: Vec<String>,
    /// Dates that recur every year, `MM-DD` (`12-25`).
    #[serde(default)]
    pub annually: Vec<String>,
}

/// A consent requirement as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConsentRequired {
    /// The consent that permits covered sends.
    pub consent: RestrictionKindName,
    /// A notice that must have been recorded before any covered send.
    #[serde(default)]
    pub notice: Option<RestrictionKindName>,
    /// How many consent requests may go before consent.
    pub requests: RawRequests,
    /// Per borrower or per debt.
    pub per: Per,
}

/// The consent requests allowed before consent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequests {
    /// At most this many.
    pub limit: u32,
    /// In any window of this many consecutive local days.
    pub window_days: u32,
    /// Whose requests are counted together; the rule's `per` when unset.
    /// `borrower` with a rule `per: debt` counts every request to the
    /// borrower (D.C. 28-3814(d)(4)(B)(ii): one "to a consumer" in any 7
    /// days) while notice and consent stay per debt.
    #[serde(default)]
    pub per: Option<Per>,
}

/// The exceptions a restriction rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Exceptions {
    /// Regulation F's exceptions to a cease or an opt-out.
    RegulationF,
    /// None: every covered send is blocked while the restriction is in
    /// force.
    None,
}

/// A restriction kind as a rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestrictionKindName(pub RestrictionKind);

impl<'de> Deserialize<'de> for RestrictionKindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_visitor(d, "a restriction kind", |text| {
            RestrictionKind::parse(text)
                .map(RestrictionKindName)
                .ok_or_else(|| {
                    format!(
                        "unknown restriction kind `{text}`, allowed: {}",
                        describe_allowed(text, RestrictionKind::NAMES)
                    )
                })
        })
    }
}

/// Which communications a rule covers. A missing key means "any".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFilter {
    /// Channels covered.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Directions covered.
    #[serde(default)]
    pub directions: Option<Vec<Direction>>,
    /// Themes or theme groups covered.
    #[serde(default)]
    pub themes: Option<Vec<ThemeName>>,
    /// Contact kinds covered.
    #[serde(default)]
    pub contact_kinds: Option<Vec<ContactKindName>>,
    /// `false`: only non-transactional communications; `true`: only
    /// transactional ones.
    #[serde(default)]
    pub transactional: Option<bool>,
    /// Whether answers to the borrower are covered.
    #[serde(default)]
    pub replies: Option<Replies>,
    /// Covers only debts whose balance is at least this exact amount.
    #[serde(default)]
    pub minimum_balance: Option<Amount>,
}

/// Whether a rule blocks or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Violations block the send.
    #[default]
    Enforce,
    /// Violations are reported (marked shadow) and counted, never block,
    /// and never set the complianceGuardRuleId.
    Shadow,
}

/// Whether communications that answer the borrower are covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Replies {
    /// Covered like any other (the default).
    Include,
    /// Not covered, and not counted: "unless responding to a communication
    /// from the debtor" (RCW 19.16.250(13)).
    Exclude,
}

/// Counted per borrower or per particular debt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Per {
    /// All of the borrower's communications together.
    Borrower,
    /// Each particular debt on its own (12 CFR 1006.14(b)(4)).
    Debt,
}

/// A frequency cap as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCap {
    /// At most this many in any window.
    pub limit: u32,
    /// The window, in consecutive local calendar days (a rolling window).
    /// Exactly one of `windowDays` and `window` is given.
    #[serde(default)]
    pub window_days: Option<u32>,
    /// A window that does not roll: each local calendar month, or every
    /// communication since a restriction's receipt (`all`, with `since`).
    #[serde(default)]
    pub window: Option<CapWindow>,
    /// Count only from the receipt of a restriction of this kind, and
    /// apply the cap only while one is in force (La. R.S. 9:3562(3):
    /// "thereafter", after the debtor's request).
    #[serde(default)]
    pub since: Option<RawSince>,
    /// Per borrower or per debt.
    pub per: Per,
    /// Changes to the default table of what counts.
    #[serde(default)]
    pub counting: RawCounting,
    /// Calls placed inside a prior-consent period (12 CFR
    /// 1006.14(b)(3)(i)) are neither counted nor checked.
    #[serde(default)]
    pub exempt_with_prior_consent: bool,
}

/// A cap's window that does not roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CapWindow {
    /// Each calendar month of the borrower's local time ("one notice per
    /// month"): the sends of the send's local month count.
    CalendarMonth,
    /// Every send since the receipt of the `since` restriction, whenever
    /// it went ("a maximum of four personal contacts").
    All,
}

impl CapWindow {
    /// The name as rule files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            CapWindow::CalendarMonth => "calendarMonth",
            CapWindow::All => "all",
        }
    }
}

/// The restriction a cap counts from, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSince {
    /// The kind whose receipt starts the count.
    pub restriction: RestrictionKindName,
    /// Only restrictions sent by one of these mail types start it; one
    /// whose mail type is unknown does too (the strict reading). Unset:
    /// every restriction of the kind.
    #[serde(default)]
    pub mail_type: Option<Vec<MailTypeName>>,
}

/// A mail type as a rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailTypeName(pub MailType);

impl<'de> Deserialize<'de> for MailTypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_visitor(d, "a mail type", |text| {
            MailType::parse(text).map(MailTypeName).ok_or_else(|| {
                format!(
                    "unknown mail type `{text}`, allowed: {}",
                    describe_allowed(text, MailType::NAMES)
                )
            })
        })
    }
}

/// Changes to the default counting table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCounting {
    /// statusDetails that count even though their status would not (a
    /// message delivered and then failed, such as `emailReportedAsSpam`).
    #[serde(default)]
    pub also_count: Vec<StatusDetails>,
    /// statusDetails that never count for this rule.
    #[serde(default)]
    pub never_count: Vec<StatusDetails>,
    /// agentOutcomes that never count for this rule.
    #[serde(default)]
    pub never_count_outcomes: Vec<AgentOutcome>,
    /// Every attempt counts: a `failed` entry counts whatever its details
    /// or outcome say (a busy line, no details at all); only `canceled`
    /// entries and sends the guard blocked do not, unless they reached the
    /// person. For texts that count "attempts to contact".
    #[serde(default)]
    pub attempts: bool,
    /// Only telephone conversations count (a call that reached, or may
    /// have reached, the person and was spoken with, by the reading of a
    /// cool-down's trigger), in either direction whatever the rule's
    /// `directions`: a conversation counts whoever placed the call.
    #[serde(default)]
    pub conversations: bool,
}

/// A cool-down as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCoolDown {
    /// How many consecutive local days the quiet lasts.
    pub days: u32,
    /// `true` (the default): the event's day is day 1, as 1006.14(b)(2)(i)(B)
    /// says. `false`: the quiet starts the day after, and the event's own
    /// day is quiet too.
    #[serde(default = "yes")]
    pub event_day_is_day_one: bool,
    /// Per borrower or per debt.
    pub per: Per,
    /// The event that starts the quiet.
    pub after: RawTrigger,
    /// Calls placed inside a prior-consent period (12 CFR
    /// 1006.14(b)(3)(i)) are not checked against the quiet.
    #[serde(default)]
    pub exempt_with_prior_consent: bool,
}

fn yes() -> bool {
    true
}

/// The event that starts a cool-down.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTrigger {
    /// What happened.
    pub event: Event,
    /// Channels of the event.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Directions of the event; both by default ("whoever placed the call").
    #[serde(default)]
    pub directions: Option<Vec<Direction>>,
    /// Themes of the event.
    #[serde(default)]
    pub themes: Option<Vec<ThemeName>>,
}

/// Events that start a cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// A telephone conversation with the borrower: an agent or the dialer
    /// says the first party was spoken with, or an inbound call connected.
    Conversation,
}

/// Permitted local hours as written, `"HH:MM"` each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHours {
    /// First permitted minute, inclusive.
    pub from: String,
    /// End of the permitted time, exclusive.
    pub until: String,
    /// The borrower's consent to another time (`consentToTime`) lifts the
    /// hours at the times it names (MCL 445.252(n): "unless the debtor
    /// expressly agrees in writing to communications at another time").
    /// Unset: nothing lifts them.
    #[serde(default)]
    pub unless_consent: Option<RawUnlessConsent>,
}

/// Which consents to another time lift permitted hours, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUnlessConsent {
    /// `true`: only a consent recorded as given in writing; `false`: any
    /// consent to another time. Required, so that a rule says which.
    pub written: bool,
}

/// A theme or a theme group, as a rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    /// One theme.
    Theme(Theme),
    /// `collection`: the `opsColl*` themes.
    Collection,
    /// `servicing`: the `opsServicing*` themes.
    Servicing,
    /// `inbound`: the `inb*` themes.
    Inbound,
}

/// Deserializes a name through a visitor, so that a YAML error points at
/// the value itself rather than at the list around it.
fn from_str_visitor<'de, D, T>(
    d: D,
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        what: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }
    d.deserialize_str(V { what, parse })
}

impl<'de> Deserialize<'de> for ThemeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_visitor(d, "a theme or theme group", |text| {
            match text {
            "collection" => Ok(ThemeName::Collection),
            "servicing" => Ok(ThemeName::Servicing),
            "inbound" => Ok(ThemeName::Inbound),
            other => Theme::parse(other).map(ThemeName::Theme).ok_or_else(|| {
                let mut names = vec!["collection", "servicing", "inbound"];
                names.extend_from_slice(Theme::NAMES);
                format!(
                    "unknown theme `{other}`, allowed: a group (collection, servicing, inbound) or a theme: {}",
                    describe_allowed(other, &names)
                )
            }),
        }
        })
    }
}

/// A contact kind as a rule names it (strictly: typos are errors here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactKindName(pub ContactKind);

impl<'de> Deserialize<'de> for ContactKindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_visitor(d, "a contact kind", |text| {
            ContactKind::parse(text)
                .map(ContactKindName)
                .ok_or_else(|| {
                    let names: Vec<&'static str> =
                        ContactKind::NAMED.iter().map(|(_, n)| *n).collect();
                    format!(
                        "unknown contact kind `{text}`, allowed: {}",
                        describe_allowed(text, &names)
                    )
                })
        })
    }
}

/// A jurisdiction code as a rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JurisdictionName(pub Jurisdiction);

impl<'de> Deserialize<'de> for JurisdictionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_visitor(d, "a jurisdiction code", |text| {
            Jurisdiction::parse(text)
                .map(JurisdictionName)
                .map_err(|e| e.to_string())
        })
    }
}

/// An exact amount of money, written as a quoted decimal string
/// (`"500.00"`), never a YAML number, which would pass through binary
/// floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exact amount as a quoted decimal string, for example \"500.00\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                let digits = v.strip_prefix('-').unwrap_or(v);
                let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
                let plain = !whole.is_empty()
                    && !frac.is_empty()
                    && whole.bytes().all(|b| b.is_ascii_digit())
                    && frac.bytes().all(|b| b.is_ascii_digit());
                if !plain {
                    return Err(E::custom(format!(
                        "amount `{v}` is not an exact decimal; allowed: digits with an optional `.` and fraction, for example \"500.00\""
                    )));
                }
                Decimal::from_str_exact(v)
                    .map(Amount)
                    .map_err(|e| E::custom(format!("amount `{v}` cannot be held exactly: {e}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                Err(E::custom(format!(
                    "amount {v} is a number; write it as a quoted string, for example \"{v}\""
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Err(E::custom(format!(
                    "amount {v} is a number; write it as a quoted string, for example \"{v}.00\""
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Err(E::custom(format!(
                    "amount {v} is a number; write it as a quoted string, for example \"{v}.00\""
                )))
            }
        }
        d.deserialize_any(AmountVisitor)
    }
}

impl FromStr for Amount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::from_str_exact(s)
            .map(Amount)
            .map_err(|e| e.to_string())
    }
}
