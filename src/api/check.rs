//! Check, CheckBaseline and ListRules: the answer to "may we send?", and
//! the rules it is decided by. An answered Check is logged here (the
//! decision log) and counted in the decision metrics.

use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::Service;
use super::auth::caller;
use crate::pb;
use crate::request::CheckOutcome;
use crate::wire::{check_input_of, check_response_of, ts};

/// CheckBaseline: an answer of a real one's size without reading the
/// history, the floor a Check stands on, so that a load test can tell
/// what the guard adds from what gRPC costs.
pub(super) async fn check_baseline(
    service: &Service,
    req: Request<pb::CheckBaselineRequest>,
) -> Result<Response<pb::CheckBaselineResponse>, Status> {
    caller(&req)?;
    let rules = service
        .guard()?
        .rules()
        .ok_or_else(|| Status::unavailable("no rule set is loaded yet; retry shortly"))?;
    let now = Utc::now();
    Ok(Response::new(pb::CheckBaselineResponse {
        answer: Some(pb::CheckResponse {
            allowed: true,
            rules_version: rules.version().to_owned(),
            applied_rule_ids: rules.rules().iter().map(|r| r.id.clone()).collect(),
            at: Some(ts(now)),
            valid_until: Some(ts(now)),
            ..pb::CheckResponse::default()
        }),
    }))
}

/// Check: decides (and, when asked, reserves) within the caller's
/// deadline; every answer is logged and counted.
pub(super) async fn check(
    service: &Service,
    req: Request<pb::CheckRequest>,
) -> Result<Response<pb::CheckResponse>, Status> {
    let who = caller(&req)?;
    let until = deadline(&req);
    let input = check_input_of(req.get_ref())?;
    let now = Utc::now();
    let (out, stale) = service
        .guard()?
        .check_bounded(&input, &who, now, until)
        .await?;
    if let Some(log) = service.decisions.get() {
        log.record(&input, &who, &out, now);
    }
    count_decision(&out);
    let mut response = check_response_of(&out);
    // Rounded up: an answer is never said to be fresher than it is.
    response.stale_up_to_ms = u32::try_from(stale.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
    Ok(Response::new(response))
}

/// ListRules: the rules loaded, each with where it comes from.
pub(super) async fn list_rules(
    service: &Service,
    _req: Request<pb::ListRulesRequest>,
) -> Result<Response<pb::ListRulesResponse>, Status> {
    let guard = service.guard()?;
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
        location_data_version: crate::location::data_version().to_owned(),
    }))
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
