//! The runner: reads one step line, makes the call it names on an
//! in-memory guard, and returns the rendered answer.
//!
//! Ops and the `Guard` call each makes (fields in camelCase; `personId`
//! may be ours or `ext-`):
//! - `check`: [`Guard::check`] with the request's fields ([`Request`]).
//! - `create` (`personId`, `interaction`), `update` (`personId`,
//!   `interactionId`, `fields`, `interaction`), `delete`, `get`,
//!   `previous` (`companyId`), `cancel` (`cancel_reservation`).
//! - `debt` (`personId`, `debtId`, `loanIds`), `link` (`id`,
//!   `externalId`).
//! - `restrict` (`personId`, `restriction`: a `RestrictionInput`), `end`
//!   (`personId`, `restrictionId`, `endedAt`, `endReason`), `explain`.
//! - `reservations` (`personId`, optional).
//! - `convo`, `join` (`joinType`), `leave`, `close` (`interactionId`).
//! - `rules` (`roles`): the shipped rules loaded for those roles (`null`:
//!   every rule binds), put in force.
//!
//! Any step may name its `caller` (`name`, `company`, `sensitive`,
//! `agent`); the default is [`default_caller`]. `declare_debt` and
//! `link_person` take no `now`; their steps carry one all the same.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use compliance_guard::guard::{Guard, GuardError};
use compliance_guard::index::IndexConfig;
use compliance_guard::model::{ContactInput, InteractionInput};
use compliance_guard::request::{Caller, CheckInput, CheckOutcome};
use compliance_guard::restrictions::RestrictionInput;
use compliance_guard::rules::{LoadOptions, Role, RuleSet};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::render::{convo, interaction, render, render_error, restriction, time};

/// A Check's request as the steps (and the decision log) spell it: the
/// serde shape of a [`CheckInput`], each field the `CheckInput` field of
/// the same name, absent ones empty.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Request {
    person_id: String,
    channel: String,
    direction: String,
    theme: String,
    subject: String,
    loan_ids: Vec<String>,
    is_transactional: Option<bool>,
    contact: Option<ContactInput>,
    previous_interaction_id: String,
    at: Option<DateTime<Utc>>,
    jurisdictions: Vec<String>,
    time_zones: Vec<String>,
    reserve: bool,
    request_id: String,
    balance: String,
    required_by_law: bool,
    consent_request: bool,
    #[serde(default)]
    postal_code: String,
}

/// Every field as it is.
impl From<Request> for CheckInput {
    /// The `CheckInput` the guard takes.
    fn from(r: Request) -> CheckInput {
        CheckInput {
            person_id: r.person_id,
            channel: r.channel,
            direction: r.direction,
            theme: r.theme,
            subject: r.subject,
            loan_ids: r.loan_ids,
            is_transactional: r.is_transactional,
            contact: r.contact,
            previous_interaction_id: r.previous_interaction_id,
            at: r.at,
            jurisdictions: r.jurisdictions,
            time_zones: r.time_zones,
            reserve: r.reserve,
            request_id: r.request_id,
            balance: r.balance,
            required_by_law: r.required_by_law,
            consent_request: r.consent_request,
            postal_code: r.postal_code,
        }
    }
}

/// The caller of a step (`"caller"`), its fields those of [`Caller`];
/// left out, [`default_caller`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    name: String,
    #[serde(default)]
    company: Option<String>,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    agent: bool,
}

/// The caller of most steps: every right, no company.
pub fn default_caller() -> Caller {
    Caller {
        name: "golden".into(),
        sensitive: true,
        agent: true,
        company: None,
    }
}

/// The fields of every step but a Check, each op using some of them (the
/// module's list says which), each the argument of the same name of the
/// `Guard` call.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct Fields {
    person_id: Option<String>,
    interaction_id: String,
    interaction: InteractionInput,
    fields: Vec<String>,
    restriction: Option<RestrictionInput>,
    restriction_id: String,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
    debt_id: String,
    loan_ids: Vec<String>,
    id: String,
    external_id: String,
    join_type: String,
    company_id: Option<String>,
    roles: Option<Vec<Role>>,
}

/// What a step answered, for the line and for the generator, which reads
/// the ids it makes to choose its next steps.
#[derive(Debug, Default)]
pub struct Answer {
    /// The rendered line, without its step number.
    pub line: String,
    /// The id a step made: the reservation of an allowed reserving Check,
    /// an interaction created, a restriction added, the person linked.
    pub id: Option<String>,
    /// Our id of the person of an interaction created.
    pub person: Option<String>,
    /// A Check's stored answer repeated.
    pub replayed: bool,
    /// The deciding rule of a blocked Check.
    pub rule: Option<String>,
    /// The next allowed moment of a blocked Check.
    pub next: Option<DateTime<Utc>>,
    /// False for an error.
    pub ok: bool,
}

/// Drives steps through one in-memory guard.
#[derive(Debug)]
pub struct Runner {
    /// In memory: no journal, no decision log.
    guard: Guard,
    /// A runtime of one thread to wait on the guard's async calls, which
    /// complete at once without a journal.
    rt: tokio::runtime::Runtime,
}

/// Making the calls.
impl Runner {
    /// A guard with no history and the shipped rules, every role binding.
    pub fn new() -> Runner {
        let guard = Guard::new(IndexConfig::default());
        guard.set_rules(rules(None));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Runner { guard, rt }
    }

    /// Runs one step line; a step the runner cannot read is a bug of the
    /// corpus, so it panics naming the line.
    pub fn step(&self, line: &str) -> Answer {
        let mut map: Map<String, Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let op = map.remove("op").and_then(|v| v.as_str().map(str::to_owned));
        let now: DateTime<Utc> = serde_json::from_value(map.remove("now").unwrap_or_default())
            .unwrap_or_else(|e| panic!("`now`: {e}: {line}"));
        let caller = map.remove("caller").map_or_else(default_caller, |v| {
            let w: Who = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}: {line}"));
            Caller {
                name: w.name,
                company: w.company,
                sensitive: w.sensitive,
                agent: w.agent,
            }
        });
        let rest = Value::Object(map);
        let op = op.unwrap_or_else(|| panic!("no `op`: {line}"));
        if op == "check" {
            let request: Request =
                serde_json::from_value(rest).unwrap_or_else(|e| panic!("{e}: {line}"));
            let input = CheckInput::from(request);
            let out = self
                .rt
                .block_on(self.guard.check(&input, &caller, now, None));
            return match out {
                Ok(o) => check_answer(&o),
                Err(e) => error(&e),
            };
        }
        let f: Fields = serde_json::from_value(rest).unwrap_or_else(|e| panic!("{e}: {line}"));
        self.rt
            .block_on(self.other(&op, f, &caller, now))
            .unwrap_or_else(|e| error(&e))
    }

    /// Every op but a Check.
    async fn other(
        &self,
        op: &str,
        f: Fields,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Answer, GuardError> {
        let g = &self.guard;
        let person = f.person_id.as_deref();
        let person_or_empty = person.unwrap_or_default();
        let id = f.interaction_id.as_str();
        Ok(match op {
            "rules" => {
                let set = rules(f.roles.clone());
                let line = format!(
                    "rules roles={} version={} rules={}",
                    f.roles.as_ref().map_or("all".into(), |r| r
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")),
                    set.version(),
                    set.rules().len()
                );
                g.set_rules(set);
                done(line, None)
            }
            "create" => {
                let (i, new) = g
                    .create(person_or_empty, &f.interaction, caller, now)
                    .await?;
                Answer {
                    person: Some(i.person_id.clone()),
                    ..done(
                        format!("create new={new} {}", interaction(&i)),
                        Some(i.id.clone()),
                    )
                }
            }
            "update" => {
                let i = g
                    .update(person, id, &f.interaction, &f.fields, caller, now)
                    .await?;
                done(format!("update {}", interaction(&i)), None)
            }
            "delete" => {
                let i = g.delete(person, id, caller, now).await?;
                done(format!("delete {}", interaction(&i)), None)
            }
            "cancel" => {
                let i = g.cancel_reservation(id, caller, now).await?;
                done(format!("cancel {}", interaction(&i)), None)
            }
            "get" => done(
                format!("get {}", interaction(&g.get(person, id, caller)?)),
                None,
            ),
            "previous" => {
                let chain = g.previous(person, id, f.company_id.as_deref(), caller)?;
                let ids: Vec<&str> = chain.iter().map(|i| i.id.as_str()).collect();
                done(format!("previous [{}]", ids.join(",")), None)
            }
            "debt" => {
                g.declare_debt(person_or_empty, &f.debt_id, &f.loan_ids, now)
                    .await?;
                done("debt ok".into(), None)
            }
            "link" => {
                let p = g.link_person(&f.id, &f.external_id, now).await?;
                done(format!("link person={p}"), Some(p))
            }
            "restrict" => {
                let input = f.restriction.unwrap_or_default();
                let r = g
                    .add_restriction(person_or_empty, &input, caller, now)
                    .await?;
                done(format!("restrict {}", restriction(&r)), Some(r.id.clone()))
            }
            "end" => {
                let r = g
                    .end_restriction(
                        person_or_empty,
                        &f.restriction_id,
                        f.ended_at,
                        f.end_reason.clone(),
                        caller,
                        now,
                    )
                    .await?;
                done(format!("end {}", restriction(&r)), None)
            }
            "explain" => {
                let effects = g.explain(person_or_empty, now)?;
                let parts: Vec<String> = effects
                    .iter()
                    .map(|e| {
                        format!(
                            "{} in_force={} rules=[{}] effect={}",
                            e.restriction.id,
                            e.in_force,
                            e.rule_ids.join(","),
                            e.effect
                        )
                    })
                    .collect();
                done(format!("explain [{}]", parts.join(" | ")), None)
            }
            "reservations" => {
                let list = g.reservations(person, caller)?;
                let parts: Vec<String> = list
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} req={} at={} by={} {} [{}]",
                            r.interaction_id,
                            r.person_id,
                            r.request_id.as_deref().unwrap_or("-"),
                            time(r.reserved_at),
                            r.reserved_by,
                            r.channel.as_str(),
                            r.loan_ids.join(",")
                        )
                    })
                    .collect();
                done(format!("reservations [{}]", parts.join("; ")), None)
            }
            "join" | "leave" | "close" | "convo" => {
                let c = match op {
                    "join" => g.join_convo(person, id, &f.join_type, caller, now).await?,
                    "leave" => g.leave_convo(person, id, caller).await?,
                    "close" => g.close_convo(person, id, caller, now).await?,
                    _ => g.convo(person, id, caller)?,
                };
                done(
                    format!("{op} {}", convo(&compliance_guard::wire::convo_pb_of(&c))),
                    None,
                )
            }
            other => panic!("unknown op `{other}`"),
        })
    }
}

/// The shipped rules, loaded for `roles` (`None`: every rule binds).
pub fn rules(roles: Option<Vec<Role>>) -> Arc<RuleSet> {
    let opts = LoadOptions {
        roles,
        ..LoadOptions::default()
    };
    Arc::new(RuleSet::load_dir(Path::new("rules"), &opts).unwrap())
}

/// The answer of a call that succeeded.
fn done(line: String, id: Option<String>) -> Answer {
    Answer {
        line,
        id,
        ok: true,
        ..Answer::default()
    }
}

/// The answer of a Check, with what the generator reads of it.
fn check_answer(o: &CheckOutcome) -> Answer {
    Answer {
        line: render(o),
        id: o.interaction_id.clone(),
        replayed: o.repeated,
        rule: o.decision.rule_id.clone(),
        next: o.decision.next_allowed_at,
        ok: true,
        person: None,
    }
}

/// The answer of a refused request.
fn error(e: &GuardError) -> Answer {
    Answer {
        line: render_error(e),
        ..Answer::default()
    }
}
