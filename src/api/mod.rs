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
//! | `INVALID_ARGUMENT` | a field is wrong (google.rpc.BadRequest lists each), or the message is not valid protobuf ([`ProtoCodec`]) | fix the request; do not send |
//! | `NOT_FOUND` | unknown person, interaction or restriction (or a sensitive interaction without the right, or another company's), or audio that is not there | check the id |
//! | `ALREADY_EXISTS` | an id or externalId already names another record | use another id |
//! | `FAILED_PRECONDITION` | the state forbids it (delete of a non-external interaction, a link joining two histories, ending a restriction already ended) | do not retry as is |
//! | `UNAUTHENTICATED` | missing or unknown key | send a valid key |
//! | `UNAVAILABLE` | not ready (rules not loaded yet) or shutting down | retry with backoff; do not send meanwhile |
//! | `DEADLINE_EXCEEDED` | the deadline passed before a reservation was committed; nothing was recorded | retry with the same request_id |
//! | `CANCELLED` | tonic cut the call at its deadline | retry with the same request_id; do not send |
//! | `PERMISSION_DENIED` | the key lacks a right (joining a conversation needs `agent`) | use a key with the right |
//! | `RESOURCE_EXHAUSTED` | an upload past the size bound; nothing was stored | send less |
//! | `DATA_LOSS` | a download's stored audio failed its checksum (ends the stream) | discard what arrived |
//! | `INTERNAL` | a broken invariant of ours, never a malformed request | do not send; report it |
//!
//! A Check that cannot be decided never answers `allowed`: every error is a
//! non-OK status, and a caller must treat any non-OK status as "do not send".

pub mod auth;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use prost_types::FieldMask;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::guard::{Guard, GuardError, Reservation};
use crate::index::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT, SortField};
use crate::media::{Disposition, MediaCheck, MediaError};
use crate::model::{
    AgentOutcome, Channel, Direction, InteractionInput, MAX_CASES, Media, MediaKind,
    Status as IStatus, StatusDetails, Subject, Theme, ValidationError, describe_allowed,
    is_case_id,
};
use crate::pb;
use crate::problem::FieldProblem;
use crate::request::{CheckInput, CheckOutcome};
use crate::restrictions::Restriction;
use crate::wire::{
    contact_in, input_of, media_pb_of, non_empty, opt_request_time, pb_of, restriction_input_of,
    restriction_pb_of, searchable_of, ts,
};
use auth::caller;

/// Most characters of one status message, and of one BadRequest
/// violation: a backstop under [`crate::model::echo`], which bounds each
/// value a message quotes, so that no answer's headers grow past what a
/// client takes (a field list of many problems stays readable).
pub const MAX_MESSAGE_CHARS: usize = 2048;
/// Most BadRequest violations one answer lists.
pub const MAX_VIOLATIONS: usize = 32;
/// Most characters of all the BadRequest violations of one answer
/// together: the details travel in a header (`grpc-status-details-bin`,
/// base64), and common clients take 16 KiB of headers.
pub const MAX_DETAILS_CHARS: usize = 6 * 1024;

/// A message cut to [`MAX_MESSAGE_CHARS`].
fn bounded(message: String) -> String {
    crate::model::echo_at(&message, MAX_MESSAGE_CHARS)
}

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
                let mut budget = MAX_DETAILS_CHARS;
                for p in problems.into_iter().take(MAX_VIOLATIONS) {
                    let (field, message) = (crate::model::echo(&p.field), bounded(p.message));
                    let size = field.len() + message.len();
                    if size > budget {
                        break;
                    }
                    budget -= size;
                    details.add_bad_request_violation(field, message);
                }
                Status::with_error_details(Code::InvalidArgument, bounded(message), details)
            }
            GuardError::NotFound(m) => Status::not_found(bounded(m)),
            GuardError::AlreadyExists(m) => Status::already_exists(bounded(m)),
            GuardError::FailedPrecondition(m) => Status::failed_precondition(bounded(m)),
            GuardError::PermissionDenied(m) => Status::permission_denied(bounded(m)),
            GuardError::Unavailable(m) => Status::unavailable(bounded(m)),
            e @ GuardError::DeadlineExceeded => Status::deadline_exceeded(e.to_string()),
            e @ GuardError::Internal(_) => Status::internal(bounded(e.to_string())),
        }
    }
}

impl From<FieldProblem> for Status {
    fn from(p: FieldProblem) -> Status {
        GuardError::Invalid(vec![p]).into()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Status {
    GuardError::Invalid(vec![FieldProblem {
        field: field.to_owned(),
        message: message.into(),
    }])
    .into()
}

/// The codec of every generated service and client: tonic's
/// [`tonic_prost::ProstCodec`], with one change. tonic answers a message
/// that does not decode (a string field that is not UTF-8, a wrong wire
/// type, a truncated field) with INTERNAL, which the status table keeps for
/// a broken invariant of ours; it is the caller's error, so this decoder
/// answers INVALID_ARGUMENT, with prost's description (the message and
/// field path, never the bytes). Set once, in `build.rs` (`codec_path`).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(tonic_prost::ProstCodec<T, U>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(tonic_prost::ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(self.0.decoder())
    }
}

/// The decoder of [`ProtoCodec`]: prost's, with a decode error answered as
/// INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(tonic_prost::ProstDecoder<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // ProstDecoder fails only when prost cannot decode the bytes.
        self.0.decode(buf).map_err(|e| {
            Status::invalid_argument(bounded(format!(
                "the request is not a valid protobuf message: {}",
                e.message()
            )))
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
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

/// A restriction as its message, with `in_force` judged at `at`.
fn restriction_at(r: &Restriction, at: chrono::DateTime<Utc>) -> pb::Restriction {
    pb::Restriction {
        in_force: r.in_force_at(at),
        ..restriction_pb_of(r)
    }
}

/// Both gRPC services over one shared [`Guard`].
#[derive(Debug, Clone)]
pub struct Service {
    /// Set once start-up has replayed the journal; until then every RPC
    /// but health answers UNAVAILABLE.
    guard: Arc<std::sync::OnceLock<Arc<Guard>>>,
    /// The audio store and link signer, set with the guard.
    media: Arc<std::sync::OnceLock<Arc<MediaHub>>>,
    /// Where answered Checks are logged, if anywhere; set with the guard.
    decisions: Arc<std::sync::OnceLock<Arc<crate::decisions::DecisionLog>>>,
}

/// What the recording and voicemail RPCs need besides the guard.
#[derive(Debug)]
pub struct MediaHub {
    /// The audio files.
    pub store: Arc<crate::media::MediaStore>,
    /// Signs links; `None` when no media HTTP listener runs, so that a
    /// `return_url` download is refused rather than answered with a link
    /// nothing serves.
    pub links: Option<Arc<crate::media::LinkSigner>>,
    /// Uploads in progress, at most [`MAX_UPLOADS`]: each may hold up to
    /// the size bound in a temporary file.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

/// Uploads that may be in progress at once; one more is
/// RESOURCE_EXHAUSTED (retry later).
pub const MAX_UPLOADS: usize = 32;
/// How long an upload may go without a message before it is dropped
/// (nothing is stored).
pub const UPLOAD_IDLE: StdDuration = StdDuration::from_secs(60);

impl MediaHub {
    /// The hub over a store and, with a media listener, a link signer.
    pub fn new(
        store: Arc<crate::media::MediaStore>,
        links: Option<Arc<crate::media::LinkSigner>>,
    ) -> MediaHub {
        MediaHub {
            store,
            links,
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_UPLOADS)),
        }
    }
}

impl Service {
    /// A service over `guard`, without recordings and voicemails (those
    /// RPCs answer UNAVAILABLE).
    pub fn new(guard: Arc<Guard>) -> Service {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(guard);
        Service {
            guard: Arc::new(cell),
            media: Arc::new(std::sync::OnceLock::new()),
            decisions: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// A service whose guard and media arrive later (after recovery), in
    /// the cells given.
    pub fn pending(
        cell: Arc<std::sync::OnceLock<Arc<Guard>>>,
        media: Arc<std::sync::OnceLock<Arc<MediaHub>>>,
        decisions: Arc<std::sync::OnceLock<Arc<crate::decisions::DecisionLog>>>,
    ) -> Service {
        Service {
            guard: cell,
            media,
            decisions,
        }
    }

    fn guard(&self) -> Result<&Guard, Status> {
        self.guard.get().map(|g| g.as_ref()).ok_or_else(|| {
            Status::unavailable("starting: the history is still being loaded; retry shortly")
        })
    }

    fn media(&self) -> Result<&MediaHub, Status> {
        self.media
            .get()
            .map(|m| m.as_ref())
            .ok_or_else(|| Status::unavailable("the media store is not open; retry shortly"))
    }
}

/// Runs one RPC's work, logs one line for it at debug level and records
/// its duration ([`log`]).
async fn timed<T>(
    rpc: &'static str,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let started = Instant::now();
    let result = work.await;
    log(rpc, started, &result);
    result
}

/// Logs one line per request at debug level and records its duration in
/// `compliance_guard_rpc_duration_seconds{rpc, code}`: the one place every
/// handler passes, so that no RPC goes unmeasured. Both labels are static
/// strings, so recording allocates nothing for them.
fn log(rpc: &'static str, started: Instant, result: &Result<impl Sized, Status>) {
    let elapsed = started.elapsed();
    let code = match result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    metrics::histogram!(
        "compliance_guard_rpc_duration_seconds",
        "rpc" => rpc,
        "code" => code_name(code)
    )
    .record(elapsed.as_secs_f64());
    let micros = elapsed.as_micros();
    match result {
        Ok(_) => tracing::debug!(rpc, micros, code = "OK"),
        Err(s) => tracing::debug!(rpc, micros, code = ?s.code(), message = s.message()),
    }
}

/// A status code's canonical gRPC name (`OK`, `NOT_FOUND`), as the `code`
/// label of the RPC metrics: what dashboards and grpcurl show.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[tonic::async_trait]
impl pb::compliance_guard_server::ComplianceGuard for Service {
    async fn check_baseline(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        timed("CheckBaseline", async {
            caller(&req)?;
            let rules = self
                .guard()?
                .rules()
                .ok_or_else(|| Status::unavailable("no rule set is loaded yet; retry shortly"))?;
            let now = Utc::now();
            Ok(Response::new(pb::CheckResponse {
                allowed: true,
                rules_version: rules.version().to_owned(),
                applied_rule_ids: rules.rules().iter().map(|r| r.id.clone()).collect(),
                at: Some(ts(now)),
                valid_until: Some(ts(now)),
                ..pb::CheckResponse::default()
            }))
        })
        .await
    }

    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        timed("Check", async {
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
                at: opt_request_time("at", &r.at, false)?,
                jurisdictions: r.jurisdictions.clone(),
                time_zones: r.time_zones.clone(),
                reserve: r.reserve,
                request_id: r.request_id.clone(),
                balance: r.balance.clone(),
                required_by_law: r.required_by_law,
                consent_request: r.consent_request,
            };
            let now = Utc::now();
            let out = self.guard()?.check(&input, &who, now, until).await?;
            if let Some(log) = self.decisions.get() {
                log.record(&input, &who, &out, now);
            }
            count_decision(&out);
            Ok(Response::new(crate::wire::check_response_of(&out)))
        })
        .await
    }

    async fn declare_debt(
        &self,
        req: Request<pb::DeclareDebtRequest>,
    ) -> Result<Response<pb::DeclareDebtResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = async {
            self.guard()?
                .declare_debt(&r.person_id, &r.debt_id, &r.loan_ids, Utc::now())
                .await?;
            Ok(Response::new(pb::DeclareDebtResponse {}))
        }
        .await;
        log("DeclareDebt", started, &result);
        result
    }

    async fn link_person(
        &self,
        req: Request<pb::LinkPersonRequest>,
    ) -> Result<Response<pb::LinkPersonResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = async {
            let person_id = self
                .guard()?
                .link_person(&r.person_id, &r.external_id, Utc::now())
                .await?;
            Ok(Response::new(pb::LinkPersonResponse { person_id }))
        }
        .await;
        log("LinkPerson", started, &result);
        result
    }

    async fn list_reservations(
        &self,
        req: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let result = caller(&req).and_then(|who| {
            let g = self.guard()?;
            let list = g.reservations(non_empty(&r.person_id).as_deref(), &who)?;
            Ok(Response::new(pb::ListReservationsResponse {
                reservations: list.iter().map(reservation_pb).collect(),
            }))
        });
        log("ListReservations", started, &result);
        result
    }

    async fn list_rules(
        &self,
        _req: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        timed("ListRules", async {
            let guard = self.guard()?;
            let rules = guard
                .rules()
                .ok_or_else(|| Status::unavailable("no rule set is loaded yet"))?;
            Ok(Response::new(pb::ListRulesResponse {
                rules_version: rules.version().to_owned(),
                loaded_at: guard.rules_loaded_at().map(ts),
                rules: rules
                    .rules()
                    .iter()
                    .map(|r| pb::RuleInfo {
                        id: r.id.clone(),
                        description: r.description.clone(),
                        citation: r.citation.clone(),
                        source: r.source.clone().unwrap_or_default(),
                        binds: r.binds.iter().map(|b| b.as_str().to_owned()).collect(),
                        jurisdictions: r
                            .jurisdictions
                            .iter()
                            .map(|j| j.code().to_owned())
                            .collect(),
                        kind: r.kind.name().to_owned(),
                        mode: match r.mode {
                            crate::rules::Mode::Enforce => "enforce".into(),
                            crate::rules::Mode::Shadow => "shadow".into(),
                        },
                        binding: r.binding,
                        file: r.file.clone(),
                        line: u32::try_from(r.line).unwrap_or(u32::MAX),
                    })
                    .collect(),
                tzdata_version: chrono_tz::IANA_TZDB_VERSION.to_owned(),
            }))
        })
        .await
    }

    async fn add_restriction(
        &self,
        req: Request<pb::AddRestrictionRequest>,
    ) -> Result<Response<pb::RestrictionResponse>, Status> {
        timed("AddRestriction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let given = r
                .restriction
                .as_ref()
                .ok_or_else(|| invalid("restriction", "`restriction` is required"))?;
            let (input, problems) = restriction_input_of(given, &r.person_id);
            let now = Utc::now();
            let stored = self
                .guard()?
                .add_restriction_checked(&r.person_id, &input, problems, &who, now)
                .await?;
            metrics::counter!("compliance_guard_restrictions_total", "kind" => stored.kind.as_str(), "op" => "added").increment(1);
            Ok(Response::new(pb::RestrictionResponse {
                restriction: Some(restriction_at(&stored, now)),
            }))
        })
        .await
    }

    async fn end_restriction(
        &self,
        req: Request<pb::EndRestrictionRequest>,
    ) -> Result<Response<pb::RestrictionResponse>, Status> {
        timed("EndRestriction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let ended_at = opt_request_time("endedAt", &r.ended_at, true)?;
            let now = Utc::now();
            let stored = self
                .guard()?
                .end_restriction(
                    &r.person_id,
                    &r.restriction_id,
                    ended_at,
                    non_empty(&r.end_reason),
                    &who,
                    now,
                )
                .await?;
            metrics::counter!("compliance_guard_restrictions_total", "kind" => stored.kind.as_str(), "op" => "ended").increment(1);
            Ok(Response::new(pb::RestrictionResponse {
                restriction: Some(restriction_at(&stored, now)),
            }))
        })
        .await
    }

    async fn list_restrictions(
        &self,
        req: Request<pb::ListRestrictionsRequest>,
    ) -> Result<Response<pb::ListRestrictionsResponse>, Status> {
        timed("ListRestrictions", async {
            caller(&req)?;
            let r = req.get_ref();
            let at = opt_request_time("at", &r.at, false)?.unwrap_or_else(Utc::now);
            let list = self
                .guard()?
                .restrictions(&r.person_id, r.include_ended, at)?;
            Ok(Response::new(pb::ListRestrictionsResponse {
                restrictions: list.iter().map(|x| restriction_at(x, at)).collect(),
            }))
        })
        .await
    }

    async fn explain_restrictions(
        &self,
        req: Request<pb::ExplainRestrictionsRequest>,
    ) -> Result<Response<pb::ExplainRestrictionsResponse>, Status> {
        timed("ExplainRestrictions", async {
            caller(&req)?;
            let r = req.get_ref();
            let at = opt_request_time("at", &r.at, false)?.unwrap_or_else(Utc::now);
            let effects = self.guard()?.explain(&r.person_id, at)?;
            Ok(Response::new(pb::ExplainRestrictionsResponse {
                effects: effects
                    .into_iter()
                    .map(|e| pb::RestrictionEffect {
                        restriction: Some(restriction_at(&e.restriction, at)),
                        in_force: e.in_force,
                        rule_ids: e.rule_ids,
                        effect: e.effect,
                    })
                    .collect(),
            }))
        })
        .await
    }

    async fn cancel_reservation(
        &self,
        req: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::CancelReservationResponse>, Status> {
        timed("CancelReservation", async {
            let who = caller(&req)?;
            let r = self
                .guard()?
                .cancel_reservation(&req.get_ref().interaction_id, &who, Utc::now())
                .await?;
            Ok(Response::new(pb::CancelReservationResponse {
                interaction: Some(pb_of(&r)),
            }))
        })
        .await
    }
}

/// Counts an answered Check in the decision metrics.
fn count_decision(outcome: &CheckOutcome) {
    let d = &outcome.decision;
    metrics::counter!("compliance_guard_checks_total", "allowed" => if d.allowed { "true" } else { "false" }).increment(1);
    if let Some(rule) = &d.rule_id {
        metrics::counter!("compliance_guard_blocks_total", "rule_id" => rule.clone()).increment(1);
    }
    if d.allowed {
        // An allow names no rule: static labels, nothing allocated on the
        // common path.
        metrics::counter!("compliance_guard_decisions_total", "result" => "allowed", "rule_id" => "")
            .increment(1);
    } else {
        let rule = d.rule_id.clone().unwrap_or_default();
        metrics::counter!("compliance_guard_decisions_total", "result" => "blocked", "rule_id" => rule)
            .increment(1);
    }
    for v in d.violations.iter().filter(|v| v.shadow) {
        metrics::counter!("compliance_guard_shadow_violations_total", "rule_id" => v.rule_id.clone()).increment(1);
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
                            crate::model::echo(v),
                            describe_allowed(v, names)
                        ),
                    });
                    None
                }
            }
        })
        .collect()
}

/// A page size: 0 is the default, 1 to [`MAX_LIMIT`] as given, more refused.
fn page_limit(limit: u32, problems: &mut Vec<FieldProblem>) -> usize {
    match limit {
        0 => DEFAULT_LIMIT,
        n if (n as usize) <= MAX_LIMIT => n as usize,
        n => {
            problems.push(FieldProblem {
                field: "limit".into(),
                message: format!("`limit` value {n} is not allowed; allowed: 1 to {MAX_LIMIT}"),
            });
            DEFAULT_LIMIT
        }
    }
}

fn problem(e: ValidationError) -> FieldProblem {
    FieldProblem {
        field: e.field().to_owned(),
        message: e.to_string(),
    }
}

/// Case ids given in a query, each of the form `CS-XXXX-XXXX`.
fn case_ids(
    field: &'static str,
    values: &[String],
    problems: &mut Vec<FieldProblem>,
) -> Vec<String> {
    if values.len() > MAX_CASES {
        problems.push(problem(ValidationError::TooMany {
            field,
            len: values.len(),
            max: MAX_CASES,
        }));
        return Vec::new();
    }
    for v in values {
        if !is_case_id(v) {
            problems.push(problem(ValidationError::InvalidCaseId {
                field,
                value: crate::model::echo(v),
            }));
        }
    }
    values.to_vec()
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
                    crate::model::echo(&r.direction)
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
                    crate::model::echo(s),
                    describe_allowed(name, SortField::NAMES)
                ),
            }),
        }
    }
    let limit = page_limit(r.limit, &mut problems);
    let case_ids = case_ids("caseIds", &r.case_ids, &mut problems);
    // Upstream: hasRecording and hasVoicemail are "only valid for
    // channel=voice"; with any other channel filter (or none) they would
    // silently mean something else, so they are refused.
    let voice_only = r.channel.len() == 1 && r.channel[0] == Channel::Voice.as_str();
    for (field, given) in [
        ("hasRecording", r.has_recording),
        ("hasVoicemail", r.has_voicemail),
    ] {
        if given.is_some() && !voice_only {
            problems.push(FieldProblem {
                field: field.into(),
                message: format!(
                    "`{field}` applies to voice interactions only; allowed: with `channel` = [`voice`] (given: {})",
                    if r.channel.is_empty() {
                        "no channel".to_owned()
                    } else {
                        r.channel
                            .iter()
                            .map(|c| format!("`{}`", crate::model::echo(c)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            });
        }
    }
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
        created_before: opt_request_time("createdAtBefore", &r.created_at_before, false)?,
        created_after: opt_request_time("createdAtAfter", &r.created_at_after, false)?,
        started_before: opt_request_time("startedAtBefore", &r.started_at_before, false)?,
        started_after: opt_request_time("startedAtAfter", &r.started_at_after, false)?,
        scheduled_from_before: opt_request_time(
            "scheduledAtFromBefore",
            &r.scheduled_at_from_before,
            false,
        )?,
        scheduled_from_after: opt_request_time(
            "scheduledAtFromAfter",
            &r.scheduled_at_from_after,
            false,
        )?,
        scheduled_to_before: opt_request_time(
            "scheduledAtToBefore",
            &r.scheduled_at_to_before,
            false,
        )?,
        scheduled_to_after: opt_request_time(
            "scheduledAtToAfter",
            &r.scheduled_at_to_after,
            false,
        )?,
        sensitive: r.sensitive,
        is_external: r.is_external,
        content_contains: non_empty(&r.content_contains),
        case_ids,
        include_sensitive: false,
        has_recording: r.has_recording,
        has_voicemail: r.has_voicemail,
        company: None,
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
        timed("CreateInteraction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let interaction = r
                .interaction
                .as_ref()
                .ok_or_else(|| invalid("interaction", "`interaction` is required"))?;
            let input = input_of(interaction)?;
            let (record, created) = self
                .guard()?
                .create(&r.person_id, &input, &who, Utc::now())
                .await?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created,
                searchable_document: r.searchable.then(|| searchable_of(&record)),
            }))
        })
        .await
    }

    async fn get_interaction(
        &self,
        req: Request<pb::GetInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        timed("GetInteraction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let record =
                self.guard()?
                    .get(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
                searchable_document: r.searchable.then(|| searchable_of(&record)),
            }))
        })
        .await
    }

    async fn update_interaction(
        &self,
        req: Request<pb::UpdateInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        timed("UpdateInteraction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let fields = mask_fields(&r.update_mask)?;
            let values = match &r.interaction {
                Some(i) => input_of(i)?,
                None => InteractionInput::default(),
            };
            let record = self
                .guard()?
                .update(
                    non_empty(&r.person_id).as_deref(),
                    &r.interaction_id,
                    &values,
                    &fields,
                    &who,
                    Utc::now(),
                )
                .await?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
                searchable_document: None,
            }))
        })
        .await
    }

    async fn delete_interaction(
        &self,
        req: Request<pb::DeleteInteractionRequest>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        timed("DeleteInteraction", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let record = self
                .guard()?
                .delete(
                    non_empty(&r.person_id).as_deref(),
                    &r.interaction_id,
                    &who,
                    Utc::now(),
                )
                .await?;
            Ok(Response::new(pb::InteractionResponse {
                interaction: Some(pb_of(&record)),
                created: false,
                searchable_document: None,
            }))
        })
        .await
    }

    async fn list_interactions(
        &self,
        req: Request<pb::ListInteractionsRequest>,
    ) -> Result<Response<pb::ListInteractionsResponse>, Status> {
        timed("ListInteractions", async {
            let who = caller(&req)?;
            let q = list_query(req.get_ref())?;
            let (total, data) = self.guard()?.list(&q, &who)?;
            Ok(Response::new(pb::ListInteractionsResponse {
                total: u32::try_from(total).unwrap_or(u32::MAX),
                count: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data: data.iter().map(pb_of).collect(),
            }))
        })
        .await
    }

    async fn get_interaction_cases(
        &self,
        req: Request<pb::GetInteractionCasesRequest>,
    ) -> Result<Response<pb::GetInteractionCasesResponse>, Status> {
        timed("GetInteractionCases", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let mut problems = Vec::new();
            let limit = page_limit(r.limit, &mut problems);
            let starting_after = non_empty(&r.starting_after);
            let ending_before = non_empty(&r.ending_before);
            case_ids("startingAfter", starting_after.as_slice(), &mut problems);
            case_ids("endingBefore", ending_before.as_slice(), &mut problems);
            if !problems.is_empty() {
                return Err(GuardError::Invalid(problems).into());
            }
            let (total, page) = self.guard()?.cases(
                non_empty(&r.person_id).as_deref(),
                &r.interaction_id,
                limit,
                r.offset as usize,
                starting_after.as_deref(),
                ending_before.as_deref(),
                &who,
            )?;
            Ok(Response::new(pb::GetInteractionCasesResponse {
                total: u32::try_from(total).unwrap_or(u32::MAX),
                count: u32::try_from(page.len()).unwrap_or(u32::MAX),
                data: page
                    .into_iter()
                    .map(|id| pb::InteractionCase { id })
                    .collect(),
            }))
        })
        .await
    }

    async fn get_interaction_convo(
        &self,
        req: Request<pb::GetInteractionConvoRequest>,
    ) -> Result<Response<pb::InteractionConvoResponse>, Status> {
        timed("GetInteractionConvo", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let convo =
                self.guard()?
                    .convo(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
            Ok(Response::new(pb::InteractionConvoResponse {
                data: Some(crate::wire::convo_pb_of(&convo)),
            }))
        })
        .await
    }

    async fn join_interaction_convo(
        &self,
        req: Request<pb::JoinInteractionConvoRequest>,
    ) -> Result<Response<pb::InteractionConvoResponse>, Status> {
        timed("JoinInteractionConvo", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let convo = self
                .guard()?
                .join_convo(
                    non_empty(&r.person_id).as_deref(),
                    &r.interaction_id,
                    &r.join_type,
                    &who,
                    Utc::now(),
                )
                .await?;
            Ok(Response::new(pb::InteractionConvoResponse {
                data: Some(crate::wire::convo_pb_of(&convo)),
            }))
        })
        .await
    }

    async fn close_interaction_convo(
        &self,
        req: Request<pb::CloseInteractionConvoRequest>,
    ) -> Result<Response<pb::InteractionConvoResponse>, Status> {
        timed("CloseInteractionConvo", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let convo = self
                .guard()?
                .close_convo(
                    non_empty(&r.person_id).as_deref(),
                    &r.interaction_id,
                    &who,
                    Utc::now(),
                )
                .await?;
            Ok(Response::new(pb::InteractionConvoResponse {
                data: Some(crate::wire::convo_pb_of(&convo)),
            }))
        })
        .await
    }

    async fn leave_interaction_convo(
        &self,
        req: Request<pb::LeaveInteractionConvoRequest>,
    ) -> Result<Response<pb::InteractionConvoResponse>, Status> {
        timed("LeaveInteractionConvo", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let convo = self
                .guard()?
                .leave_convo(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)
                .await?;
            Ok(Response::new(pb::InteractionConvoResponse {
                data: Some(crate::wire::convo_pb_of(&convo)),
            }))
        })
        .await
    }

    async fn get_previous_interactions(
        &self,
        req: Request<pb::GetPreviousInteractionsRequest>,
    ) -> Result<Response<pb::GetPreviousInteractionsResponse>, Status> {
        timed("GetPreviousInteractions", async {
            let who = caller(&req)?;
            let r = req.get_ref();
            let chain = self.guard()?.previous(
                non_empty(&r.person_id).as_deref(),
                &r.interaction_id,
                non_empty(&r.company_id).as_deref(),
                &who,
            )?;
            Ok(Response::new(pb::GetPreviousInteractionsResponse {
                data: chain.iter().map(pb_of).collect(),
            }))
        })
        .await
    }

    async fn upload_interaction_recording(
        &self,
        req: Request<tonic::Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        timed(
            "UploadInteractionRecording",
            self.upload(req, MediaKind::Recording),
        )
        .await
    }

    async fn upload_interaction_voicemail(
        &self,
        req: Request<tonic::Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        timed(
            "UploadInteractionVoicemail",
            self.upload(req, MediaKind::Voicemail),
        )
        .await
    }

    type DownloadInteractionRecordingStream = MediaStream;

    async fn download_interaction_recording(
        &self,
        req: Request<pb::DownloadMediaRequest>,
    ) -> Result<Response<MediaStream>, Status> {
        timed(
            "DownloadInteractionRecording",
            self.download(req, MediaKind::Recording),
        )
        .await
    }

    type DownloadInteractionVoicemailStream = MediaStream;

    async fn download_interaction_voicemail(
        &self,
        req: Request<pb::DownloadMediaRequest>,
    ) -> Result<Response<MediaStream>, Status> {
        timed(
            "DownloadInteractionVoicemail",
            self.download(req, MediaKind::Voicemail),
        )
        .await
    }
}

/// The stream a download answers: a header then chunks, or one link.
pub type MediaStream =
    tokio_stream::wrappers::ReceiverStream<Result<pb::DownloadMediaResponse, Status>>;

impl From<MediaError> for Status {
    fn from(e: MediaError) -> Status {
        match &e {
            MediaError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            MediaError::ChecksumMismatch { .. } => invalid("sha256", e.to_string()),
            MediaError::Damaged { .. } => Status::data_loss(e.to_string()),
            // A record names audio that is not on disk: lost, not unknown.
            MediaError::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
                Status::data_loss(format!("the stored audio is missing: {e}"))
            }
            MediaError::Io { .. } | MediaError::Random => Status::internal(e.to_string()),
        }
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("internal error: a file task failed: {e}")))?
        .map_err(Status::from)
}

impl Service {
    /// An upload stream: the header, checked before any audio is taken;
    /// the audio, bounded and hashed as it arrives into a temporary file;
    /// then the file moved into place and the interaction's record
    /// journaled. A stream that breaks off, or any refusal, leaves nothing.
    async fn upload(
        &self,
        req: Request<tonic::Streaming<pb::UploadMediaRequest>>,
        kind: MediaKind,
    ) -> Result<Response<pb::InteractionResponse>, Status> {
        use pb::upload_media_request::Part;
        let who = caller(&req)?;
        let hub = self.media()?;
        let _slot = Arc::clone(&hub.uploads).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_UPLOADS} uploads are in progress, the most the server takes at once; retry shortly"
            ))
        })?;
        let mut stream = req.into_inner();
        let idle = || {
            Status::deadline_exceeded(format!(
                "no upload message for {} s; nothing was stored",
                UPLOAD_IDLE.as_secs()
            ))
        };
        let first = tokio::time::timeout(UPLOAD_IDLE, stream.message())
            .await
            .map_err(|_| idle())??;
        let header = match first {
            Some(pb::UploadMediaRequest {
                part: Some(Part::Header(h)),
            }) => h,
            _ => {
                return Err(invalid(
                    "header",
                    "the first message of an upload must be its `header` (interaction id and content type)",
                ));
            }
        };
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldProblem {
                field: field.to_owned(),
                message,
            });
        };
        if header.interaction_id.is_empty() {
            problem("interactionId", "`interactionId` is required".into());
        }
        if header.content_type.is_empty() {
            problem(
                "contentType",
                "`contentType` is required; allowed: `audio/<subtype>`, for example `audio/mpeg` or `audio/wav`".into(),
            );
        } else if let Err(m) = crate::media::check_content_type(&header.content_type) {
            problem("contentType", m);
        }
        let expect_sha = non_empty(&header.sha256);
        if let Some(sha) = &expect_sha
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            problem(
                "sha256",
                format!(
                    "`sha256` value `{}` is not a SHA-256; allowed: 64 hex digits",
                    crate::model::echo(sha)
                ),
            );
        }
        if !problems.is_empty() {
            return Err(GuardError::Invalid(problems).into());
        }
        let guard = self.guard()?;
        let person = non_empty(&header.person_id);
        let id = guard.media_target(person.as_deref(), &header.interaction_id, kind, &who)?;
        let store = Arc::clone(&hub.store);
        let key = store.new_key(&id, kind)?;
        let mut writer = {
            let (store, key) = (Arc::clone(&store), key.clone());
            blocking(move || store.begin(&key)).await?
        };
        while let Some(message) = tokio::time::timeout(UPLOAD_IDLE, stream.message())
            .await
            .map_err(|_| idle())??
        {
            match message.part {
                Some(Part::Chunk(chunk)) => {
                    writer = blocking(move || {
                        writer.write(&chunk)?;
                        Ok(writer)
                    })
                    .await?;
                }
                Some(Part::Header(_)) => {
                    return Err(invalid(
                        "header",
                        "`header` is sent once, as the first message; the messages after it carry `chunk`",
                    ));
                }
                None => {
                    return Err(invalid(
                        "part",
                        "an upload message carries `header` (first) or `chunk`; this one carries neither",
                    ));
                }
            }
        }
        if writer.size() == 0 {
            return Err(invalid(
                "chunk",
                "the upload holds no audio; send the audio in `chunk` messages after the header",
            ));
        }
        let (key, size, sha256) = blocking(move || writer.finish(expect_sha.as_deref())).await?;
        let media = Media {
            content_type: header.content_type.clone(),
            size_bytes: size,
            sha256,
            uploaded_at: Utc::now(),
            uploaded_by: who.name.clone(),
            storage_key: key.clone(),
        };
        match guard.attach_media(&id, kind, media, &who, Utc::now()).await {
            Ok(record) => {
                metrics::counter!("compliance_guard_media_uploaded_bytes_total").increment(size);
                Ok(Response::new(pb::InteractionResponse {
                    interaction: Some(pb_of(&record)),
                    created: false,
                    searchable_document: None,
                }))
            }
            Err(e) => {
                // Refused before anything was journaled: nothing names the
                // file, so take it back now. A journal failure (UNAVAILABLE,
                // INTERNAL) may have left a record naming it, so it stays;
                // the sweep removes it later if nothing does.
                let refused = matches!(
                    e,
                    GuardError::Invalid(_)
                        | GuardError::NotFound(_)
                        | GuardError::AlreadyExists(_)
                        | GuardError::FailedPrecondition(_)
                        | GuardError::PermissionDenied(_)
                );
                if refused {
                    let _ = blocking(move || store.remove(&key)).await;
                }
                Err(e.into())
            }
        }
    }

    /// A download: one link (with `return_url`), or a header and the audio
    /// in chunks, checked against its size and SHA-256 as it streams; a
    /// stream that fails the check ends in DATA_LOSS.
    async fn download(
        &self,
        req: Request<pb::DownloadMediaRequest>,
        kind: MediaKind,
    ) -> Result<Response<MediaStream>, Status> {
        use pb::download_media_response::Part;
        let who = caller(&req)?;
        let r = req.get_ref();
        let disposition =
            Disposition::parse(&r.disposition).map_err(|m| invalid("disposition", m))?;
        if r.interaction_id.is_empty() {
            return Err(invalid("interactionId", "`interactionId` is required"));
        }
        let (id, media) = self.guard()?.media(
            non_empty(&r.person_id).as_deref(),
            &r.interaction_id,
            kind,
            &who,
        )?;
        let hub = self.media()?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        if r.return_url {
            let links = hub.links.as_ref().ok_or_else(|| {
                Status::failed_precondition(
                    "`returnUrl` needs the media HTTP listener, and this server runs none; start it with `--media-listen ADDR`, or download by stream (`returnUrl` false)",
                )
            })?;
            let (url, expires_at) =
                links.link(&id, kind, &media.storage_key, disposition, Utc::now());
            let _ = tx
                .send(Ok(pb::DownloadMediaResponse {
                    part: Some(Part::Link(pb::MediaLink {
                        url,
                        expires_at: Some(ts(expires_at)),
                    })),
                }))
                .await;
            return Ok(Response::new(MediaStream::new(rx)));
        }
        let path = hub.store.path(&media.storage_key).ok_or_else(|| {
            Status::from(MediaError::Damaged {
                key: media.storage_key.clone(),
                what: "the storage key is not a file name".into(),
            })
        })?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|cause| {
            Status::from(MediaError::Io {
                action: "cannot open",
                path: path.clone(),
                cause,
            })
        })?;
        let header = pb::DownloadMediaResponse {
            part: Some(Part::Header(pb::DownloadMediaHeader {
                media: Some(media_pb_of(&media)),
                disposition: disposition.as_str().to_owned(),
                file_name: crate::media::file_name(&id, kind, &media.content_type),
            })),
        };
        // Async reads in a task of its own: a slow client holds its stream
        // and a few chunks, never a thread of the blocking pool.
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            if tx.send(Ok(header)).await.is_err() {
                return;
            }
            let mut check = MediaCheck::new(&media);
            loop {
                let mut buf = vec![0u8; crate::media::CHUNK_BYTES];
                let item = match file.read(&mut buf).await {
                    Ok(0) => match check.finish() {
                        Ok(()) => return,
                        Err(e) => Err(e),
                    },
                    Ok(n) => {
                        buf.truncate(n);
                        check.update(&buf).map(|()| buf)
                    }
                    Err(cause) => Err(MediaError::Io {
                        action: "cannot read",
                        path: path.clone(),
                        cause,
                    }),
                };
                let item = match item {
                    Ok(chunk) => Ok(pb::DownloadMediaResponse {
                        part: Some(Part::Chunk(chunk)),
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, interaction = %id, "download: the stored audio failed its check");
                        metrics::counter!("compliance_guard_media_damaged_total").increment(1);
                        Err(Status::from(e))
                    }
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(MediaStream::new(rx)))
    }
}
