//! AddRestriction, EndRestriction, ListRestrictions and
//! ExplainRestrictions: what a borrower has said about being contacted,
//! with the restriction metrics.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use super::status::invalid;
use crate::pb;
use crate::restrictions::Restriction;
use crate::wire::{non_empty, opt_request_time, restriction_input_of, restriction_pb_of};

/// AddRestriction: records a restriction; the field problems the protobuf
/// conversion finds are reported with the guard's own.
pub(super) async fn add(
    service: &Service,
    req: Request<pb::AddRestrictionRequest>,
) -> Result<Response<pb::AddRestrictionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let given = r
        .restriction
        .as_ref()
        .ok_or_else(|| invalid("restriction", "`restriction` is required"))?;
    let (input, problems) = restriction_input_of(given, &r.person_id);
    let now = Utc::now();
    let stored = service
        .guard()?
        .add_restriction_checked(&r.person_id, &input, problems, &who, now)
        .await?;
    metrics::counter!("compliance_guard_restrictions_total", "kind" => stored.kind.as_str(), "op" => "added").increment(1);
    Ok(Response::new(pb::AddRestrictionResponse {
        restriction: Some(restriction_at(&stored, now)),
    }))
}

/// EndRestriction: ends a restriction, keeping it with when, by whom and
/// why, as an audit needs.
pub(super) async fn end(
    service: &Service,
    req: Request<pb::EndRestrictionRequest>,
) -> Result<Response<pb::EndRestrictionResponse>, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let ended_at = opt_request_time("endedAt", &r.ended_at, true)?;
    let now = Utc::now();
    let stored = service
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
    Ok(Response::new(pb::EndRestrictionResponse {
        restriction: Some(restriction_at(&stored, now)),
    }))
}

/// ListRestrictions: a borrower's restrictions in force at `at` (now by
/// default), or all of them.
pub(super) async fn list(
    service: &Service,
    req: Request<pb::ListRestrictionsRequest>,
) -> Result<Response<pb::ListRestrictionsResponse>, Status> {
    caller(&req)?;
    let r = req.get_ref();
    let at = opt_request_time("at", &r.at, false)?.unwrap_or_else(Utc::now);
    let list = service
        .guard()?
        .restrictions(&r.person_id, r.include_ended, at)?;
    Ok(Response::new(pb::ListRestrictionsResponse {
        restrictions: list.iter().map(|x| restriction_at(x, at)).collect(),
    }))
}

/// ExplainRestrictions: what each restriction does under the rules in
/// force, in words an agent can repeat to the borrower.
pub(super) async fn explain(
    service: &Service,
    req: Request<pb::ExplainRestrictionsRequest>,
) -> Result<Response<pb::ExplainRestrictionsResponse>, Status> {
    caller(&req)?;
    let r = req.get_ref();
    let at = opt_request_time("at", &r.at, false)?.unwrap_or_else(Utc::now);
    let effects = service.guard()?.explain(&r.person_id, at)?;
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
}

/// A restriction as its message, with `in_force` judged at `at`.
fn restriction_at(r: &Restriction, at: DateTime<Utc>) -> pb::Restriction {
    pb::Restriction {
        in_force: r.in_force_at(at),
        ..restriction_pb_of(r)
    }
}
