//! The story file as written: what each key means, and every check that
//! can be made while the file is read, so that a mistake is reported with
//! its `file:line:column` (serde_yaml gives the place of whatever it was
//! reading when the error was raised; the checks below are raised inside
//! the mapping or scalar they are about, so they get its place too).
//!
//! The send is not read here: [`Send`] only keeps which of the Check's
//! fields a case or a step names, so that a step's send can change some of
//! them. The fields themselves are read once, by
//! [`crate::request::build_proposal`], exactly as a live Check's are.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::model::{ContactInput, InteractionInput, echo, is_any_id, parse_time};
use crate::request::CheckInput;
use crate::restrictions::RestrictionInput;
use crate::rules::Role;

/// The borrower a case is about when it names none.
pub const DEFAULT_PERSON: &str = "BO-TEST-0001";

/// A story file: a list of cases under `tests:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryFile {
    /// The cases, run in order, each on a fresh index.
    pub tests: Vec<Case>,
}

/// One case: the rules to decide with, the borrower's facts and what the
/// guard must answer. A case is either short (the facts as they stand at
/// `at`, one send and its expected answer: [`Body::Check`]) or a story
/// (facts and checks in order: [`Body::Steps`]); everything else is shared.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case shows, in a line: it names the case in every failure.
    pub name: String,
    /// Where the case comes from and why it expects what it does, at any
    /// length (never empty when given).
    pub description: Option<String>,
    /// What the lender is (`debtCollector`, `creditor`, `licensee`,
    /// `smallLoanLicensee`, which implies `creditor`): only the rules that
    /// bind it decide. Unset: every rule binds.
    pub roles: Option<Vec<Role>>,
    /// Decide with these rule ids alone (after `roles` and `extraRules`).
    pub only: Option<Vec<String>>,
    /// A rule file (YAML text, `rules:` and a list) compiled with the
    /// rules under test: a rule the case needs that does not ship.
    pub extra_rules: Option<String>,
    /// The borrower's id (an AnyId such as `BO-TEST-0001`, the default).
    pub person: String,
    /// Fields every recorded interaction (a `history` entry or a `record`
    /// step) starts from; the record's own fields win.
    pub defaults: InteractionInput,
    /// The send: in a short case the send itself; in a story what every
    /// check's send starts from (a check's `send` changes the fields it
    /// names).
    pub send: Send,
    /// The short form or the story.
    pub body: Body,
}

/// What a case does: one check, or steps.
#[derive(Debug, Clone)]
pub enum Body {
    /// The short form: the history and restrictions in place, then the
    /// case's send checked at `at`.
    Check {
        /// The moment of the send (also "now").
        at: DateTime<Utc>,
        /// Interactions, as upstream writes them; each is recorded at its
        /// `startedAt` (or at `at`).
        history: Vec<InteractionInput>,
        /// Borrower restrictions, as AddRestriction takes them, recorded at
        /// `at` (so `receivedAt` may be later: not yet received). Without an
        /// `id` the n-th is `RS-TEST-n`.
        restrictions: Vec<RestrictionInput>,
        /// The answer the guard must give.
        expect: Box<Expect>,
    },
    /// A story: the steps in order, at least one of them a check.
    Steps(Vec<Step>),
}

/// One step of a story.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Step {
    /// Records an interaction (the case's `defaults`, then its fields) at
    /// its `startedAt`.
    Record(InteractionInput),
    /// Changes the fields it names of the interaction `id`, at its
    /// `updatedAt`.
    Update(InteractionInput),
    /// Deletes the interaction of this id.
    Delete(String),
    /// Declares that several loans form one debt (an account).
    Debt(DebtStep),
    /// Links the borrower `id` to the lender's `externalId`.
    Link(LinkStep),
    /// Adds a restriction (it needs an `id`), recorded at its `receivedAt`.
    Restrict(Box<RestrictionInput>),
    /// Ends the restriction `id` at `at`.
    End(EndStep),
    /// Decides a send and compares the answer with `expect`.
    Check(Box<CheckStep>),
}

/// `debt:`: the loans that form one debt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebtStep {
    /// The account's id; named where a loan id goes it means every loan.
    pub id: String,
    /// The loans of the account.
    pub loans: Vec<String>,
}

/// `link:`: a borrower's external id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkStep {
    /// The borrower's id.
    pub id: String,
    /// The lender's id for the borrower.
    pub external_id: String,
}

/// `end:`: a restriction ends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndStep {
    /// The restriction's id.
    pub id: String,
    /// When it ends.
    #[serde(deserialize_with = "time")]
    pub at: DateTime<Utc>,
    /// Why, as EndRestriction takes it.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `check:`: a send decided at a moment, and the answer expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckStep {
    /// The moment of the send (also "now").
    #[serde(deserialize_with = "time")]
    pub at: DateTime<Utc>,
    /// The fields that differ from the case's send.
    #[serde(default)]
    pub send: Send,
    /// Why this check expects what it does (printed when it fails).
    #[serde(default)]
    pub why: Option<String>,
    /// The answer the guard must give.
    pub expect: Expect,
}

/// The answer expected. Only `allowed` is required; every other key given
/// is compared exactly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Allowed or blocked. An allow must come with no deciding rule.
    pub allowed: bool,
    /// The deciding rule.
    #[serde(default)]
    pub rule_id: Option<String>,
    /// The exact set of violated rules, shadow ones included (in any
    /// order).
    #[serde(default)]
    pub violations: Option<Vec<String>>,
    /// The earliest moment the same send passes, or `none`.
    #[serde(default)]
    pub next_allowed_at: Option<Moment>,
    /// When an allow stops being true, or `none`.
    #[serde(default)]
    pub valid_until: Option<Moment>,
    /// Per violated rule: the ids of the interactions it counted, in
    /// order.
    #[serde(default)]
    pub counted: BTreeMap<String, Vec<String>>,
    /// Per violated rule: its count.
    #[serde(default)]
    pub count: BTreeMap<String, u32>,
    /// The exact set of violated rules in shadow mode.
    #[serde(default)]
    pub shadow: Option<Vec<String>>,
    /// Per violated rule: its own next allowed moment, or `none`.
    #[serde(default)]
    pub rule_next_allowed_at: BTreeMap<String, Moment>,
    /// The exact set of rules that covered the send.
    #[serde(default)]
    pub applied: Option<Vec<String>>,
    /// The restriction behind the deciding rule's violation.
    #[serde(default)]
    pub restriction_id: Option<String>,
    /// The zones weighed and why, as the answer's `locationExplanation`
    /// reads: `America/New_York from area code 212; America/Los_Angeles
    /// from US-CA`.
    #[serde(default)]
    pub zones_weighed: Option<String>,
    /// The jurisdictions whose rules bound and why, in the same form:
    /// `US-CA given; US-NY from postal code 10001`.
    #[serde(default)]
    pub jurisdictions_weighed: Option<String>,
}

/// An expected moment: a time, or `none` for "no moment".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment(pub Option<DateTime<Utc>>);

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Moment, D::Error> {
        d.deserialize_str(TimeVisitor { none: true }).map(Moment)
    }
}

/// The send as a case or a step writes it: the fields of a Check
/// ([`CheckInput`], the same names), each kept only when given, so that a
/// step's send changes just the fields it names.
///
/// `contactKind` and `contactValue` are accepted for `contact: {kind,
/// value}` (the rule tests wrote them so first). `at` is the case's or the
/// check's; `personId` is the case's `person`; `reserve` and `requestId`
/// would record or repeat an answer, which a story never does: all four
/// are refused where they are written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Send {
    /// A channel name (`voice`, `text`, `email`, ...). Required in the end.
    #[serde(default)]
    pub channel: Option<String>,
    /// `outbound` (unset) or `inbound`.
    #[serde(default)]
    pub direction: Option<String>,
    /// The theme (`opsCollDebt`, ...).
    #[serde(default)]
    pub theme: Option<String>,
    /// The subject (`ceaseCommunicationAcknowledgement`, ...).
    #[serde(default)]
    pub subject: Option<String>,
    /// The loans the send is about; empty: every debt.
    #[serde(default)]
    pub loan_ids: Option<Vec<String>>,
    /// Whether the send is transactional; unset is unknown (strict).
    #[serde(default)]
    pub is_transactional: Option<bool>,
    /// The contact point: `kind` and `value` (and `name`). A step's
    /// `contact` changes the parts it names.
    #[serde(default)]
    pub contact: Option<ContactInput>,
    /// `contact.kind`, as the rule tests first wrote it (moved into
    /// `contact` when the file is read).
    #[serde(default)]
    pub contact_kind: Option<String>,
    /// `contact.value`, as the rule tests first wrote it (moved into
    /// `contact` when the file is read); `""` unsets a value the case's
    /// send gave.
    #[serde(default)]
    pub contact_value: Option<String>,
    /// The message this send answers (a reply to the borrower).
    #[serde(default)]
    pub previous_interaction_id: Option<String>,
    /// Where the borrower may be (`US-NY`, ...).
    #[serde(default)]
    pub jurisdictions: Option<Vec<String>>,
    /// The borrower's candidate time zones (IANA names).
    #[serde(default)]
    pub time_zones: Option<Vec<String>>,
    /// The balance owed, an exact decimal such as `"125.50"` (for rules
    /// with `minimumBalance`); unset is unknown (covered).
    #[serde(default)]
    pub balance: Option<String>,
    /// The communication is required by law.
    #[serde(default)]
    pub required_by_law: Option<bool>,
    /// The send asks for consent.
    #[serde(default)]
    pub consent_request: Option<bool>,
    /// The borrower's ZIP code (`10001`, `10001-1234`): it adds its zone
    /// and, when `jurisdictions` is given, its state.
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default, deserialize_with = "refuse_person_id")]
    person_id: Option<Never>,
    #[serde(default, deserialize_with = "refuse_at")]
    at: Option<Never>,
    #[serde(default, deserialize_with = "refuse_reserve")]
    reserve: Option<Never>,
    #[serde(default, deserialize_with = "refuse_request_id")]
    request_id: Option<Never>,
}

/// A value that cannot be: the type of the refused send fields, which
/// never deserialize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Never {}

impl Send {
    /// Moves `contactKind`/`contactValue` into `contact`; refuses both
    /// ways at once.
    fn normalized(mut self) -> Result<Send, String> {
        if self.contact_kind.is_none() && self.contact_value.is_none() {
            return Ok(self);
        }
        if self.contact.is_some() {
            return Err("a send gives `contact` or `contactKind`/`contactValue`, not both".into());
        }
        self.contact = Some(ContactInput {
            kind: self.contact_kind.take(),
            value: self.contact_value.take(),
            name: None,
        });
        Ok(self)
    }

    /// This send with the fields `over` names replaced (the parts of
    /// `contact` one by one).
    pub fn overlay(&self, over: &Send) -> Send {
        let contact = match (&self.contact, &over.contact) {
            (Some(base), Some(o)) => Some(ContactInput {
                kind: o.kind.clone().or_else(|| base.kind.clone()),
                value: o.value.clone().or_else(|| base.value.clone()),
                name: o.name.clone().or_else(|| base.name.clone()),
            }),
            (base, o) => o.clone().or_else(|| base.clone()),
        };
        macro_rules! pick {
            ($($f:ident),+) => {
                Send { $($f: over.$f.clone().or_else(|| self.$f.clone()),)+ contact, ..Send::default() }
            };
        }
        pick!(
            channel,
            direction,
            theme,
            subject,
            loan_ids,
            is_transactional,
            previous_interaction_id,
            jurisdictions,
            time_zones,
            balance,
            required_by_law,
            consent_request,
            postal_code
        )
    }

    /// The Check this send asks, for `person` at `at`: unset fields are a
    /// Check's defaults (empty), for [`crate::request::build_proposal`] to
    /// read.
    pub fn to_check(&self, person: &str, at: DateTime<Utc>) -> CheckInput {
        // Every field by name: a field added to a Check breaks this until
        // a story can write it (or refuses it above).
        CheckInput {
            person_id: person.to_owned(),
            channel: self.channel.clone().unwrap_or_default(),
            direction: self.direction.clone().unwrap_or_default(),
            theme: self.theme.clone().unwrap_or_default(),
            subject: self.subject.clone().unwrap_or_default(),
            loan_ids: self.loan_ids.clone().unwrap_or_default(),
            is_transactional: self.is_transactional,
            contact: self.contact.clone(),
            previous_interaction_id: self.previous_interaction_id.clone().unwrap_or_default(),
            at: Some(at),
            jurisdictions: self.jurisdictions.clone().unwrap_or_default(),
            time_zones: self.time_zones.clone().unwrap_or_default(),
            reserve: false,
            request_id: String::new(),
            balance: self.balance.clone().unwrap_or_default(),
            required_by_law: self.required_by_law.unwrap_or(false),
            consent_request: self.consent_request.unwrap_or(false),
            postal_code: self.postal_code.clone().unwrap_or_default(),
        }
    }
}

/// The case as written, before [`RawCase::check`] sorts it into a form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCase {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    roles: Option<Vec<Role>>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    extra_rules: Option<String>,
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    defaults: InteractionInput,
    #[serde(default)]
    send: Send,
    #[serde(default, deserialize_with = "opt_time")]
    at: Option<DateTime<Utc>>,
    #[serde(default)]
    history: Option<Vec<InteractionInput>>,
    #[serde(default)]
    restrictions: Option<Vec<RestrictionInput>>,
    #[serde(default)]
    expect: Option<Box<Expect>>,
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    steps: Option<Vec<Step>>,
}

impl RawCase {
    fn check(self) -> Result<Case, String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err("`description` is empty; write what the case shows or leave it out".into());
        }
        let person = self.person.unwrap_or_else(|| DEFAULT_PERSON.to_owned());
        if !is_any_id(&person) {
            return Err(format!(
                "`person` value `{}` is not an id; allowed: such as `{DEFAULT_PERSON}`",
                echo(&person)
            ));
        }
        let send = self.send.normalized().map_err(|e| format!("send: {e}"))?;
        let body = match self.steps {
            Some(mut steps) => {
                for (i, step) in steps.iter_mut().enumerate() {
                    if let Step::Check(check) = step {
                        check.send = std::mem::take(&mut check.send)
                            .normalized()
                            .map_err(|e| format!("steps[{i}].check.send: {e}"))?;
                    }
                }
                for (key, instead) in [
                    (self.at.is_some(), "`at`: each check has its own `at`"),
                    (self.history.is_some(), "`history`: write `record` steps"),
                    (
                        self.restrictions.is_some(),
                        "`restrictions`: write `restrict` steps",
                    ),
                    (self.expect.is_some(), "`expect`: write `check` steps"),
                ] {
                    if key {
                        return Err(format!("a case with `steps` has no {instead}"));
                    }
                }
                if !steps.iter().any(|s| matches!(s, Step::Check(_))) {
                    return Err("a case with `steps` needs at least one `check` step".into());
                }
                Body::Steps(steps)
            }
            None => {
                let (Some(at), Some(expect)) = (self.at, self.expect) else {
                    return Err(
                        "a case needs `at` and `expect` (one check), or `steps` (a story)".into(),
                    );
                };
                Body::Check {
                    at,
                    history: self.history.unwrap_or_default(),
                    restrictions: self.restrictions.unwrap_or_default(),
                    expect,
                }
            }
        };
        Ok(Case {
            name: self.name,
            description: self.description,
            roles: self.roles,
            only: self.only,
            extra_rules: self.extra_rules,
            person,
            defaults: self.defaults,
            send,
            body,
        })
    }
}

impl<'de> Deserialize<'de> for Case {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Case, D::Error> {
        checked_map(d, "a case (a mapping with `name`)", RawCase::check)
    }
}

/// Reads `T` from a mapping and checks it, raising the check's error
/// inside the mapping so that serde_yaml gives it the mapping's place.
fn checked_map<'de, D, T, U>(
    d: D,
    expecting: &'static str,
    check: fn(T) -> Result<U, String>,
) -> Result<U, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Checked<T, U> {
        expecting: &'static str,
        check: fn(T) -> Result<U, String>,
        raw: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>, U> Visitor<'de> for Checked<T, U> {
        type Value = U;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<U, A::Error> {
            let raw = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
            (self.check)(raw).map_err(de::Error::custom)
        }
    }
    d.deserialize_map(Checked {
        expecting,
        check,
        raw: PhantomData,
    })
}

/// Reads a time (RFC 3339, or a date for its midnight UTC), or with
/// `none` also `none`, failing inside the scalar so that the error has
/// its place.
struct TimeVisitor {
    none: bool,
}

impl Visitor<'_> for TimeVisitor {
    type Value = Option<DateTime<Utc>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.none {
            "a time such as `2020-04-08T14:00:00Z`, or `none`"
        } else {
            "a time such as `2020-04-08T14:00:00Z`"
        })
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.none && text == "none" {
            return Ok(None);
        }
        parse_time("at", text).map(Some).map_err(|_| {
            E::custom(format!(
                "`{}` is not a time; allowed: RFC 3339 such as `2020-04-08T14:00:00Z`, or a date such as `2020-04-08`{}",
                echo(text),
                if self.none { ", or `none`" } else { "" }
            ))
        })
    }
}

fn time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(TimeVisitor { none: false })?
        .ok_or_else(|| de::Error::custom("a time is required"))
}

fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    time(d).map(Some)
}

/// Refuses whatever value a field has, with `message`, from inside the
/// value (so the error has the value's place).
struct Refuse(&'static str);

impl<'de> Visitor<'de> for Refuse {
    type Value = Option<Never>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(self.0))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(self.0))
    }
}

macro_rules! refuse {
    ($($name:ident => $message:literal),+ $(,)?) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Never>, D::Error> {
            d.deserialize_any(Refuse($message))
        }
    )+};
}

refuse! {
    refuse_person_id => "`personId` has no place in a send: the borrower is the case's `person`",
    refuse_at => "`at` has no place in a send: the moment is the case's or the check's `at`",
    refuse_reserve => "`reserve` has no place in a story: a check decides and records nothing; write a `record` step for a send that happened",
    refuse_request_id => "`requestId` has no place in a story: a check is never a retry",
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(send: &str) -> Result<StoryFile, serde_yaml::Error> {
        serde_yaml::from_str(&format!(
            "tests:\n  - name: n\n    at: \"2020-06-01T12:00:00Z\"\n    send: {send}\n    expect: {{allowed: true}}\n"
        ))
    }

    /// A story's send is a Check: every field of [`CheckInput`] is either
    /// written in a send or refused there by name, never "unknown".
    #[test]
    fn every_check_field_is_a_send_field_or_refused_by_name() {
        let check = serde_json::to_value(CheckInput::default()).unwrap();
        let mut refused = Vec::new();
        for (key, value) in check.as_object().unwrap() {
            let value = serde_json::to_string(value).unwrap();
            match case(&format!("{{{key}: {value}}}")) {
                Ok(_) => {}
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.contains("has no place"), "{key}: {message}");
                    refused.push(key.clone());
                }
            }
        }
        assert_eq!(refused, ["at", "personId", "requestId", "reserve"]);
    }

    #[test]
    fn the_officers_contact_keys_are_the_contact() {
        let file =
            case("{channel: text, contactKind: mobilePhone, contactValue: \"+15550001111\"}")
                .unwrap();
        let contact = file.tests[0].send.contact.clone().unwrap();
        assert_eq!(contact.kind.as_deref(), Some("mobilePhone"));
        assert_eq!(contact.value.as_deref(), Some("+15550001111"));
        assert_eq!(file.tests[0].send.contact_kind, None);
    }

    #[test]
    fn a_step_changes_only_the_fields_it_names() {
        let base = Send {
            channel: Some("text".into()),
            loan_ids: Some(vec!["CARD".into()]),
            contact: Some(ContactInput {
                kind: Some("mobilePhone".into()),
                value: Some("+15550001111".into()),
                name: None,
            }),
            ..Send::default()
        };
        let step = Send {
            loan_ids: Some(vec![]),
            contact: Some(ContactInput {
                value: Some(String::new()),
                ..ContactInput::default()
            }),
            balance: Some("125.50".into()),
            ..Send::default()
        };
        let sent = base
            .overlay(&step)
            .to_check("BO-TEST-0001", chrono::DateTime::default());
        assert_eq!(sent.channel, "text");
        assert!(sent.loan_ids.is_empty());
        assert_eq!(sent.balance, "125.50");
        let contact = sent.contact.unwrap();
        assert_eq!(contact.kind.as_deref(), Some("mobilePhone"));
        assert_eq!(contact.value.as_deref(), Some(""));
    }

    #[test]
    fn a_case_is_short_or_a_story() {
        let err = serde_yaml::from_str::<StoryFile>(
            "tests:\n  - name: n\n    history: []\n    steps:\n      - check: {at: \"2020-06-01\", expect: {allowed: true}}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tests[0]: a case with `steps` has no `history`: write `record` steps at line 2 column 5"
        );
        let err =
            serde_yaml::from_str::<StoryFile>("tests:\n  - name: n\n    send: {channel: voice}\n")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tests[0]: a case needs `at` and `expect` (one check), or `steps` (a story) at line 2 column 5"
        );
    }
}
