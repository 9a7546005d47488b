//! The interaction records: CreateInteraction, GetInteraction,
//! UpdateInteraction, DeleteInteraction, ListInteractions,
//! GetInteractionCases and GetPreviousInteractions, with the parsing of
//! their filters, pages and update masks.

use chrono::Utc;
use prost_types::FieldMask;
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use super::status::invalid;
use crate::guard::GuardError;
use crate::index::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT, SortField};
use crate::model::{
    AgentOutcome, Channel, Direction, InteractionInput, MAX_CASES, Status as IStatus,
    StatusDetails, Subject, Theme, ValidationError, describe_allowed, is_case_id,
};
use crate::pb;
use crate::problem::FieldProblem;
use crate::wire::{input_of, non_empty, opt_request_time, pb_of, searchable_of};

/// CreateInteraction: records an interaction; a known externalId answers
/// the existing record (`created` false).
pub(super) async fn create(
    service: &Service,
    req: Request<pb::CreateInteractionRequest>,
) -> Result<Response<pb::CreateInteractionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let interaction = r
        .interaction
        .as_ref()
        .ok_or_else(|| invalid("interaction", "`interaction` is required"))?;
    let input = input_of(interaction)?;
    let (record, created) = service
        .guard()?
        .create(&r.person_id, &input, &who, Utc::now())
        .await?;
    Ok(Response::new(pb::CreateInteractionResponse {
        interaction: Some(pb_of(&record)),
        created,
        searchable_document: r.searchable.then(|| searchable_of(&record)),
    }))
}

/// GetInteraction: one interaction, by our id or `ext-<externalId>`.
pub(super) async fn get(
    service: &Service,
    req: Request<pb::GetInteractionRequest>,
) -> Result<Response<pb::GetInteractionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let record =
        service
            .guard()?
            .get(non_empty(&r.person_id).as_deref(), &r.interaction_id, &who)?;
    Ok(Response::new(pb::GetInteractionResponse {
        interaction: Some(pb_of(&record)),
        searchable_document: r.searchable.then(|| searchable_of(&record)),
    }))
}

/// UpdateInteraction: changes the fields the mask lists, validated as on
/// create.
pub(super) async fn update(
    service: &Service,
    req: Request<pb::UpdateInteractionRequest>,
) -> Result<Response<pb::UpdateInteractionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let fields = mask_fields(&r.update_mask)?;
    let values = match &r.interaction {
        Some(i) => input_of(i)?,
        None => InteractionInput::default(),
    };
    let record = service
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
    Ok(Response::new(pb::UpdateInteractionResponse {
        interaction: Some(pb_of(&record)),
    }))
}

/// DeleteInteraction: soft-deletes an interaction the lender supplied.
pub(super) async fn delete(
    service: &Service,
    req: Request<pb::DeleteInteractionRequest>,
) -> Result<Response<pb::DeleteInteractionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let record = service
        .guard()?
        .delete(
            non_empty(&r.person_id).as_deref(),
            &r.interaction_id,
            &who,
            Utc::now(),
        )
        .await?;
    Ok(Response::new(pb::DeleteInteractionResponse {
        interaction: Some(pb_of(&record)),
    }))
}

/// ListInteractions: the upstream filters, sorting and paging.
pub(super) async fn list(
    service: &Service,
    req: Request<pb::ListInteractionsRequest>,
) -> Result<Response<pb::ListInteractionsResponse>, Status> {
    let who = caller(&req)?;
    let q = list_query(req.get_ref())?;
    // A listing may read the store (interactions on disk only): on a
    // blocking thread, so that Checks on the async threads never wait
    // behind it.
    let guard = service.guard_shared()?;
    let (total, data) = tokio::task::spawn_blocking(move || guard.list(&q, &who))
        .await
        .map_err(|e| Status::internal(format!("the listing stopped: {e}")))??;
    Ok(Response::new(pb::ListInteractionsResponse {
        total: u32::try_from(total).unwrap_or(u32::MAX),
        count: u32::try_from(data.len()).unwrap_or(u32::MAX),
        data: data.iter().map(pb_of).collect(),
    }))
}

/// GetInteractionCases: an interaction's case ids, paged as upstream
/// pages them.
pub(super) async fn cases(
    service: &Service,
    req: Request<pb::GetInteractionCasesRequest>,
) -> Result<Response<pb::GetInteractionCasesResponse>, Status> {
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
    let (total, page) = service.guard()?.cases(
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
}

/// GetPreviousInteractions: the chain linked through
/// previousInteractionId.
pub(super) async fn previous(
    service: &Service,
    req: Request<pb::GetPreviousInteractionsRequest>,
) -> Result<Response<pb::GetPreviousInteractionsResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let chain = service.guard()?.previous(
        non_empty(&r.person_id).as_deref(),
        &r.interaction_id,
        non_empty(&r.company_id).as_deref(),
        &who,
    )?;
    Ok(Response::new(pb::GetPreviousInteractionsResponse {
        data: chain.iter().map(pb_of).collect(),
    }))
}

/// The values of a repeated vocabulary filter: `"null"` as `None` (no
/// value), each other value parsed, and a problem for each that is not in
/// the vocabulary.
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

/// Case ids given in a query, each of the form `CS-XXXX-XXXX`.
fn case_ids(
    field: &'static str,
    values: &[String],
    problems: &mut Vec<FieldProblem>,
) -> Vec<String> {
    if values.len() > MAX_CASES {
        problems.push(FieldProblem::from(ValidationError::TooMany {
            field,
            len: values.len(),
            max: MAX_CASES,
        }));
        return Vec::new();
    }
    for v in values {
        if !is_case_id(v) {
            problems.push(FieldProblem::from(ValidationError::InvalidCaseId {
                field,
                value: crate::model::echo(v),
            }));
        }
    }
    values.to_vec()
}

/// A ListInteractions request as an index query: every filter checked,
/// and every problem reported at once.
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

/// The fields an update changes; an update must name at least one.
fn mask_fields(mask: &Option<FieldMask>) -> Result<Vec<String>, Status> {
    match mask {
        Some(m) if !m.paths.is_empty() => Ok(m.paths.clone()),
        _ => Err(invalid(
            "updateMask",
            "`updateMask` is required: list the fields to change, for example `status`, `status_details`",
        )),
    }
}
