//! The gRPC service: `complianceguard.v1.ComplianceGuard` and
//! `complianceguard.v1.Interactions`, translating between protobuf messages
//! and the [`Guard`]. This is the only module that builds a
//! [`tonic::Status`].
//!
//! Statuses a caller can get, and what to do with each:
//!
//! | status | when | what the caller does |
//! |---|---|---|
//! | `OK` | answered | act on `allowed`; a blocked send is not an error |
//! | `INVALID_ARGUMENT` | a field is wrong (google.rpc.BadRequest lists each) | fix the request; do not send |
//! | `NOT_FOUND` | unknown person or interaction (or a sensitive one without the right) | check the id |
//! | `ALREADY_EXISTS` | an id or externalId already names another record | use another id |
//! | `FAILED_PRECONDITION` | the state forbids it (delete of a non-external interaction, a link joining two histories) | do not retry as is |
//! | `UNAUTHENTICATED` | missing or unknown key | send a valid key |
//! | `UNAVAILABLE` | not ready (rules not loaded yet) or shutting down | retry with backoff; do not send meanwhile |
//! | `DEADLINE_EXCEEDED` | the deadline passed before a reservation was committed; nothing was recorded | retry with the same request_id |
//! | `CANCELLED` | tonic cut the call at its deadline | retry with the same request_id; do not send |
//! | `INTERNAL` | a broken invariant | do not send; report it |
//!
//! A Check that cannot be decided never answers `allowed`: every error is a
//! non-OK status, and a caller must treat any non-OK status as "do not send".

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use prost_types::{FieldMask, Struct, Timestamp, Value, value::Kind};
use serde_json::Value as Json;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::Keys;
use crate::guard::{Caller, CheckInput, FieldProblem, Guard, GuardError, Reservation};
use crate::index::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT, SortField};
use crate::model::{
    AgentOutcome, Channel, ContactInput, Direction, Interaction, InteractionInput,
    Status as IStatus, StatusDetails, Subject, Theme, describe_allowed,
};
use crate::pb;

impl From<GuardError> for Status {
    fn from(e: GuardError) -> Status {
        match e {
            GuardError::Invalid(problems) => {
                // Each message names its field, so the summary reads alone.
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut details = ErrorDetails::new();
                for p in problems {
                    details.add_bad_request_violation(p.field, p.message);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            GuardError::NotFound(m) => Status::not_found(m),
            GuardError::AlreadyExists(m) => Status::already_exists(m),
            GuardError::FailedPrecondition(m) => Status::failed_precondition(m),
            GuardError::Unavailable(m) => Status::unavailable(m),
            e @ GuardError::DeadlineExceeded => Status::deadline_exceeded(e.to_string()),
            e @ GuardError::Internal(_) => Status::internal(e.to_string()),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Status {
    GuardError::Invalid(vec![FieldProblem {
        field: field.to_owned(),
        message: message.into(),
    }])
    .into()
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Access {
    /// Every RPC but Health needs one of these keys.
    Keys(Arc<Keys>),
    /// No key is asked for (explicitly chosen, loopback only); every caller
    /// is `anonymous` with the sensitive right.
    Open,
}

/// The tonic interceptor: checks `authorization: Bearer KEY` or
/// `x-api-key: KEY` and puts the [`Caller`] into the request's extensions.
pub fn authenticate(access: Access) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let caller = match &access {
            Access::Open => Caller {
                name: "anonymous".into(),
                sensitive: true,
            },
            Access::Keys(keys) => {
                let md = req.metadata();
                let presented = md
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .or_else(|| md.get("x-api-key").and_then(|v| v.to_str().ok()));
                let Some(presented) = presented else {
                    return Err(Status::unauthenticated(
                        "no API key; send `authorization: Bearer KEY` or `x-api-key: KEY`",
                    ));
                };
                keys.verify(presented.trim())
                    .ok_or_else(|| Status::unauthenticated("the API key is not valid"))?
            }
        };
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credential on the request"))
}

/// The caller's deadline, from the `grpc-timeout` header, measured from now.
fn deadline<T>(req: &Request<T>) -> Option<Instant> {
    let text = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => StdDuration::from_secs(n.saturating_mul(3600)),
        "M" => StdDuration::from_secs(n.saturating_mul(60)),
        "S" => StdDuration::from_secs(n),
        "m" => StdDuration::from_millis(n),
        "u" => StdDuration::from_micros(n),
        "n" => StdDuration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(d)
}

/// Converts a protobuf timestamp; an out-of-range one is a field error.
fn time(field: &str, ts: &Timestamp) -> Result<DateTime<Utc>, Status> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(ts.seconds, n))
        .ok_or_else(|| {
            invalid(
                field,
                format!("timestamp {}s {}ns is out of range", ts.seconds, ts.nanos),
            )
        })
}

fn opt_time(field: &str, ts: &Option<Timestamp>) -> Result<Option<DateTime<Utc>>, Status> {
    ts.as_ref().map(|t| time(field, t)).transpose()
}

fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn json_of(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StructValue(s)) => json_of_struct(s),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(json_of).collect()),
    }
}

fn json_of_struct(s: &Struct) -> Json {
    Json::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), json_of(v)))
            .collect(),
    )
}

fn value_of(j: &Json) -> Value {
    let kind = match j {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(value_of).collect(),
        }),
        Json::Object(_) => Kind::StructValue(struct_of(j)),
    };
    Value { kind: Some(kind) }
}

fn struct_of(j: &Json) -> Struct {
    match j {
        Json::Object(m) => Struct {
            fields: m.iter().map(|(k, v)| (k.clone(), value_of(v))).collect(),
        },
        other => Struct {
            fields: [("value".to_owned(), value_of(other))]
                .into_iter()
                .collect(),
        },
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn contact_in(c: &Option<pb::Contact>) -> Option<ContactInput> {
    c.as_ref().map(|c| ContactInput {
        kind: non_empty(&c.kind),
        value: non_empty(&c.value),
        name: non_empty(&c.name),
    })
}

/// The protobuf Interaction as the guard's input form. Read-only fields
/// (id, personId, createdAt, createdBy, updatedAt, updatedBy, deletedAt) are
/// not taken from the request.
fn input_of(i: &pb::Interaction) -> Result<InteractionInput, Status> {
    let t = |field: &str, v: &Option<Timestamp>| -> Result<Option<String>, Status> {
        Ok(opt_time(field, v)?.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
    };
    Ok(InteractionInput {
        id: None,
        external_id: i.external_id.clone(),
        person_id: None,
        channel: non_empty(&i.channel),
        direction: non_empty(&i.direction),
        theme: i.theme.clone(),
        borrower_selected_theme: i.borrower_selected_theme.clone(),
        subject: i.subject.clone(),
        status: non_empty(&i.status),
        status_details: i.status_details.clone(),
        agent_outcome: i.agent_outcome.clone(),
        started_at: t("startedAt", &i.started_at)?,
        ended_at: t("endedAt", &i.ended_at)?,
        scheduled_at_from: t("scheduledAtFrom", &i.scheduled_at_from)?,
        scheduled_at_to: t("scheduledAtTo", &i.scheduled_at_to)?,
        loan_id: i.loan_id.clone(),
        loan_ids: (!i.loan_ids.is_empty()).then(|| i.loan_ids.clone()),
        is_transactional: i.is_transactional,
        sensitive: i.sensitive,
        is_external: i.is_external,
        previous_interaction_id: i.previous_interaction_id.clone(),
        contact_id: i.contact_id.clone(),
        contact_external_id: i.contact_external_id.clone(),
        contact: contact_in(&i.contact),
        borrower: i.borrower.as_ref().map(json_of),
        meta_data: i.meta_data.as_ref().map(json_of_struct),
        content: i.content.as_ref().map(json_of),
        failure_description_short: i.failure_description_short.clone(),
        failure_description_long: i.failure_description_long.clone(),
        compliance_guard_rule_id: i.compliance_guard_rule_id.clone(),
        twilio_error_code: i.twilio_error_code.clone(),
        created_at: None,
        updated_at: None,
        deleted_at: None,
        created_by: None,
    })
}

fn pb_of(r: &Interaction) -> pb::Interaction {
    pb::Interaction {
        id: r.id.clone(),
        external_id: r.external_id.clone(),
        person_id: r.person_id.clone(),
        channel: r.channel.as_str().to_owned(),
        direction: r.direction.as_str().to_owned(),
        theme: r.theme.map(|v| v.as_str().to_owned()),
        borrower_selected_theme: r.borrower_selected_theme.map(|v| v.as_str().to_owned()),
        subject: r.subject.map(|v| v.as_str().to_owned()),
        status: r.status.as_str().to_owned(),
        status_details: r.status_details.map(|v| v.as_str().to_owned()),
        agent_outcome: r.agent_outcome.map(|v| v.as_str().to_owned()),
        started_at: Some(ts(r.started_at)),
        ended_at: r.ended_at.map(ts),
        scheduled_at_from: r.scheduled_at_from.map(ts),
        scheduled_at_to: r.scheduled_at_to.map(ts),
        loan_id: r.loan_id.clone(),
        loan_ids: r.loan_ids.clone(),
        is_transactional: r.is_transactional,
        sensitive: r.sensitive,
        is_external: Some(r.is_external),
        previous_interaction_id: r.previous_interaction_id.clone(),
        contact_id: r.contact_id.clone(),
        contact_external_id: r.contact_external_id.clone(),
        contact: r.contact.as_ref().map(|c| pb::Contact {
            kind: c.kind_as_given.clone().unwrap_or_default(),
            value: c.value.clone().unwrap_or_default(),
            name: c.name.clone().unwrap_or_default(),
        }),
        meta_data: r.meta_data.as_ref().map(struct_of),
        content: r.content.as_ref().map(value_of),
        failure_description_short: r.failure_description_short.clone(),
        failure_description_long: r.failure_description_long.clone(),
        compliance_guard_rule_id: r.compliance_guard_rule_id.clone(),
        twilio_error_code: r.twilio_error_code.clone(),
        created_at: Some(ts(r.created_at)),
        updated_at: r.updated_at.map(ts),
        deleted_at: r.deleted_at.map(ts),
        created_by: r.created_by.clone(),
        updated_by: r.updated_by.clone(),
        borrower: r.borrower.as_ref().map(value_of),
    }
}

fn reservation_pb(r: &Reservation) -> pb::Reservation {
    pb::Reservation {
        interaction_id: r.interaction_id.clone(),
        person_id: r.person_id.clone(),
        request_id: r.request_id.clone().unwrap_or_default(),
        reserved_at: Some(ts(r.reserved_at)),
        channel: r.channel.as_str().to_owned(),
        loan_ids: r.loan_ids.clone(),
        reserved_by: r.reserved_by.clone(),
    }
}

/// Both gRPC services over one shared [`Guard`].
#[derive(Debug, Clone)]
pub struct Service {
    guard: Arc<Guard>,
}

impl Service {
    /// A service over `guard`.
    pub fn new(guard: Arc<Guard>) -> Service {
        Service { guard }
    }
}

/// Logs one line per request at debug level.
fn log(rpc: &str, started: Instant, result: &Result<impl Sized, Status>) {
    let micros = started.elapsed().as_micros();
    match result {
        Ok(_) => tracing::debug!(rpc, micros, code = "OK"),
        Err(s) => tracing::debug!(rpc, micros, code = ?s.code(), message = s.message()),
    }
}

#[tonic::async_trait]
impl pb::compliance_guard_server::ComplianceGuard for Service {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let until = deadline(&req);
            let r = req.get_ref();
            let input = CheckInput {
                person_id: r.person_id.clone(),
                channel: r.channel.clone(),
                direction: r.direction.clone(),
                theme: r.theme.clone(),
                subject: r.subject.clone(),
                loan_ids: r.loan_ids.clone(),
                is_transactional: r.is_transactional,
                contact: contact_in(&r.contact),
                previous_interaction_id: r.previous_interaction_id.clone(),
                at: opt_time("at", &r.at)?,
                jurisdictions: r.jurisdictions.clone(),
                time_zones: r.time_zones.clone(),
                reserve: r.reserve,
                request_id: r.request_id.clone(),
                balance: r.balance.clone(),
            };
            let out = self.guard.check(&input, &who, Utc::now(), until)?;
            let d = &out.decision;
            Ok(Response::new(pb::CheckResponse {
                allowed: d.allowed,
                compliance_guard_rule_id: d.rule_id.clone().unwrap_or_default(),
                violations: d
                    .violations
                    .iter()
                    .map(|v| pb::Violation {
                        rule_id: v.rule_id.clone(),
                        message: v.message.clone(),
                        citation: v.citation.clone(),
                        count: v.count,
                        limit: v.limit,
                        window: Some(pb::Window {
                            days: v.window_days,
                            start_date: v.window_start.map(|d| d.to_string()).unwrap_or_default(),
                            end_date: v.window_end.map(|d| d.to_string()).unwrap_or_default(),
                            time_zone: v.zone.name().to_owned(),
                        }),
                        counted_interaction_ids: v.counted_interaction_ids.clone(),
                        next_allowed_at: v.next_allowed_at.map(ts),
                        debt: v.debt.clone().unwrap_or_default(),
                    })
                    .collect(),
                next_allowed_at: d.next_allowed_at.map(ts),
                valid_until: d.valid_until.map(ts),
                interaction_id: out.interaction_id.clone().unwrap_or_default(),
                rules_version: d.rules_version.clone(),
                at: Some(ts(d.at)),
                applied_rule_ids: d.applied_rule_ids.clone(),
                replayed: out.replayed,
            }))
        })();
        log("Check", started, &result);
        result
    }

    async fn declare_debt(
        &self,
        req: Request<pb::DeclareDebtRequest>,
    ) -> Result<Response<pb::DeclareDebtResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = self
            .guard
            .declare_debt(&r.person_id, &r.debt_id, &r.loan_ids)
            .map(|()| Response::new(pb::DeclareDebtResponse {}))
            .map_err(Status::from);
        log("DeclareDebt", started, &result);
        result
    }

    async fn link_person(
        &self,
        req: Request<pb::LinkPersonRequest>,
    ) -> Result<Response<pb::LinkPersonResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = self
            .guard
            .link_person(&r.person_id, &r.external_id)
            .map(|person_id| Response::new(pb::LinkPersonResponse { person_id }))
            .map_err(Status::from);
        log("LinkPerson", started, &result);
        result
    }

    async fn list_reservations(
        &self,
        req: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = self
            .guard
            .reservations(non_empty(&r.person_id).as_deref())
            .map(|list| {
                Response::new(pb::ListReservationsResponse {
                    reservations: list.iter().map(reservation_pb).collect(),
                })
            })
            .map_err(Status::from);
        log("ListReservations", started, &result);
        result
    }

    async fn cancel_reservation(
        &self,
        req: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::CancelReservationResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r =
                self.guard
                    .cancel_reservation(&req.get_ref().interaction_id, &who, Utc::now())?;
            Ok(Response::new(pb::CancelReservationResponse {
                interaction: Some(pb_of(&r)),
            }))
        })();
        log("CancelReservation", started, &result);
        result
    }
}

fn parse_list<T>(
    field: &str,
    values: &[String],
    parse: fn(&str) -> Option<T>,
    names: &[&'static str],
    problems: &mut Vec<FieldProblem>,
) -> Vec<Option<T>> {
    values
        .iter()
        .filter_map(|v| {
            if v == "null" {
                return Some(None);
            }
            match parse(v) {
                Some(x) => Some(Some(x)),
                None => {
                    problems.push(FieldProblem {
                        field: field.to_owned(),
                        message: format!(
                            "`{field}` value `{}` is not allowed; allowed: \"null\" or {}",
                            v.chars().take(64).collect::<String>(),
                            describe_allowed(v, names)
                        ),
                    });
                    None
                }
            }
        })
        .collect()
}

fn list_query(r: &pb::ListInteractionsRequest) -> Result<ListQuery, Status> {
    let mut problems = Vec::new();
    let channels = parse_list(
        "channel",
        &r.channel,
        Channel::parse,
        Channel::NAMES,
        &mut problems,
    )
    .into_iter()
    .flatten()
    .collect();
    let statuses = parse_list(
        "status",
        &r.status,
        IStatus::parse,
        IStatus::NAMES,
        &mut problems,
    );
    let direction = if r.direction.is_empty() {
        None
    } else {
        let d = Direction::parse(&r.direction);
        if d.is_none() {
            problems.push(FieldProblem {
                field: "direction".into(),
                message: format!(
                    "`direction` value `{}` is not allowed; allowed: outbound, inbound",
                    r.direction
                ),
            });
        }
        d
    };
    let mut sort = Vec::new();
    for s in &r.sort_by {
        let (desc, name) = match s.as_bytes().first() {
            Some(b'+') => (false, &s[1..]),
            Some(b'-') => (true, &s[1..]),
            _ => (true, s.as_str()),
        };
        match SortField::parse(name) {
            Some(f) => sort.push((f, desc)),
            None => problems.push(FieldProblem {
                field: "sortBy".into(),
                message: format!(
                    "`sortBy` value `{}` is not a sort field; allowed: {} with an optional + or - prefix",
                    s.chars().take(64).collect::<String>(),
                    describe_allowed(name, SortField::NAMES)
                ),
            }),
        }
    }
    let limit = match r.limit {
        0 => DEFAULT_LIMIT,
        n if (n as usize) <= MAX_LIMIT => n as usize,
        n => {
            problems.push(FieldProblem {
                field: "limit".into(),
                message: format!("`limit` value {n} is not allowed; allowed: 1 to {MAX_LIMIT}"),
            });
            DEFAULT_LIMIT
        }
    };
    let q = ListQuery {
        person: non_empty(&r.person_id),
        has_no_person: r.has_no_person,
        channels,
        direction,
        // "null" is not a status a record can have, so it matches none.
        statuses,
        status_details: parse_list(
            "statusDetails",
            &r.status_details,
            StatusDetails::parse,
            StatusDetails::NAMES,
            &mut problems,
        ),
        agent_outcomes: parse_list(
            "agentOutcome",
            &r.agent_outcome,
            AgentOutcome::parse,
            AgentOutcome::NAMES,
            &mut problems,
        ),
        subjects: parse_list(
            "subject",
            &r.subject,
            |s| Subject::parse(s).map(Subject::normalized),
            Subject::NAMES,
            &mut problems,
        ),
        themes: parse_list("theme", &r.theme, Theme::parse, Theme::NAMES, &mut problems),
        created_before: opt_time("createdAtBefore", &r.created_at_before)?,
        created_after: opt_time("createdAtAfter", &r.created_at_after)?,
        started_before: opt_time("startedAtBefore", &r.started_at_before)?,
        started_after: opt_time("startedAtAfter", &r.started_at_after)?,
        scheduled_from_before: opt_time("scheduledAtFromBefore", &r.scheduled_at_from_before)?,
        scheduled_from_after: opt_time("scheduledAtFromAfter", &r.scheduled_at_from_after)?,
        scheduled_to_before: opt_time("scheduledAtToBefore", &r.scheduled_at_to_before)?,
        scheduled_to_after: opt_time("scheduledAtToAfter", &r.scheduled_at_to_after)?,
        sensitive: r.sensitive,
        is_external: r.is_external,
        content_contains: non_empty(&r.content_contains),
        include_sensitive: false,
        sort,
        limit,
        offset: r.offset as usize,
        starting_after: non_empty(&r.starting_after),
        ending_before: non_empty(&r.ending_before),
    };
    if !problems.is_empty() {
        return Err(GuardError::Invalid(problems).into());
    }
    Ok(q)
}

fn mask_fields(mask: &Option<FieldMask>) -> Result<Vec<String>, Status> {
    match mask {
        Some(m) if !m.paths.is_empty() => Ok(m.paths.clone()),
        _ => Err(invalid(
            "updateMask",
            "`updateMask` is required: list the fields to change, for example `status`, `status_details`",
        )),
    }
}

#[tonic::async_trait]
impl pb::interactions_server::Interactions for Service {
    async fn create_interaction(
        &self,
        req: Request<pb::CreateInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r = req.get_ref();
            let interaction = r
                .interaction
                .as_ref()
                .ok_or_else(|| invalid("interaction", "`interaction` is required"))?;
            let input = input_of(interaction)?;
            let (record, created) = self.guard.create(&r.person_id, &input, &who, Utc::now())?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created,
            }))
        })();
        log("CreateInteraction", started, &result);
        result
    }

    async fn get_interaction(
        &self,
        req: Request<pb::GetInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r = req.get_ref();
            let record =
                self.guard
                    .get(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
            }))
        })();
        log("GetInteraction", started, &result);
        result
    }

    async fn update_interaction(
        &self,
        req: Request<pb::UpdateInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r = req.get_ref();
            let fields = mask_fields(&r.update_mask)?;
            let values = match &r.interaction {
                Some(i) => input_of(i)?,
                None => InteractionInput::default(),
            };
            let record = self.guard.update(
                non_empty(&r.person_id).as_deref(),
                &r.interaction_id,
                &values,
                &fields,
                &who,
                Utc::now(),
            )?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
            }))
        })();
        log("UpdateInteraction", started, &result);
        result
    }

    async fn delete_interaction(
        &self,
        req: Request<pb::DeleteInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r = req.get_ref();
            let record = self.guard.delete(
                non_empty(&r.person_id).as_deref(),
                &r.interaction_id,
                &who,
                Utc::now(),
            )?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
            }))
        })();
        log("DeleteInteraction", started, &result);
        result
    }

    async fn list_interactions(
        &self,
        req: Request<pb::ListInteractionsRequest>,
    ) -> Result<Response<pb::ListInteractionsResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let q = list_query(req.get_ref())?;
            let (total, data) = self.guard.list(&q, &who)?;
            Ok(Response::new(pb::ListInteractionsResponse {
                total: u32::try_from(total).unwrap_or(u32::MAX),
                count: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data: data.iter().map(pb_of).collect(),
            }))
        })();
        log("ListInteractions", started, &result);
        result
    }

    async fn get_previous_interactions(
        &self,
        req: Request<pb::GetPreviousInteractionsRequest>,
    ) -> Result<Response<pb::GetPreviousInteractionsResponse>, Status> {
        let started = Instant::now();
        let result = (|| {
            let who = caller(&req)?;
            let r = req.get_ref();
            let chain =
                self.guard
                    .previous(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
            Ok(Response::new(pb::GetPreviousInteractionsResponse {
                data: chain.iter().map(pb_of).collect(),
            }))
        })();
        log("GetPreviousInteractions", started, &result);
        result
    }
}
