//! Protobuf messages and domain values, both ways: the gRPC API and
//! the journal share these conversions, so that a record reads back exactly
//! as it was written.

use chrono::{DateTime, NaiveDate, Utc};
use prost_types::{Struct, Timestamp, Value, value::Kind};
use serde_json::Value as Json;

use crate::engine::{Decision, Violation};
use crate::jurisdiction::Jurisdiction;
use crate::location::{self, Reason, Weighed};
use crate::model::{ContactInput, Interaction, InteractionInput};
use crate::problem::FieldProblem;
use crate::request::{CheckInput, CheckOutcome};
use crate::restrictions::{Restriction, RestrictionInput};

use crate::pb;

/// Converts a protobuf timestamp; an out-of-range one is a field error.
pub fn time(field: &str, ts: &Timestamp) -> Result<DateTime<Utc>, FieldProblem> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(ts.seconds, n))
        .ok_or_else(|| FieldProblem {
            field: field.to_owned(),
            message: format!(
                "`{field}` timestamp {}s {}ns is out of range",
                ts.seconds, ts.nanos
            ),
        })
}

/// Converts a request's protobuf timestamp, refusing what the API cannot
/// carry ([`crate::model::request_time`]): outside proto3 JSON's range, or
/// before 1900 for the time of an event (`event`). The journal's records
/// are read with [`time`], which takes every time chrono can hold.
pub fn request_time(
    field: &'static str,
    ts: &Timestamp,
    event: bool,
) -> Result<DateTime<Utc>, FieldProblem> {
    crate::model::request_time(field, ts.seconds, ts.nanos, event).map_err(|e| FieldProblem {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

/// [`request_time`] of an optional timestamp.
pub fn opt_request_time(
    field: &'static str,
    ts: &Option<Timestamp>,
    event: bool,
) -> Result<Option<DateTime<Utc>>, FieldProblem> {
    ts.as_ref()
        .map(|t| request_time(field, t, event))
        .transpose()
}

/// Converts an optional protobuf timestamp.
pub fn opt_time(
    field: &str,
    ts: &Option<Timestamp>,
) -> Result<Option<DateTime<Utc>>, FieldProblem> {
    ts.as_ref().map(|t| time(field, t)).transpose()
}

/// A protobuf timestamp of a moment.
pub fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf `Value` as JSON.
pub fn json_of(v: &Value) -> Json {
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

/// A protobuf `Struct` as a JSON object.
pub fn json_of_struct(s: &Struct) -> Json {
    Json::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), json_of(v)))
            .collect(),
    )
}

/// JSON as a protobuf `Value`.
pub fn value_of(j: &Json) -> Value {
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

/// JSON as a protobuf `Struct` (a non-object is wrapped as `value`).
pub fn struct_of(j: &Json) -> Struct {
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

/// `None` for an empty string: proto3 strings have no "unset".
pub fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A protobuf contact in its input form.
pub fn contact_in(c: &Option<pb::Contact>) -> Option<ContactInput> {
    c.as_ref().map(|c| ContactInput {
        kind: non_empty(&c.kind),
        value: non_empty(&c.value),
        name: non_empty(&c.name),
    })
}

/// The protobuf Interaction as the guard's input form. Read-only fields
/// (id, personId, createdAt, createdBy, updatedAt, updatedBy, deletedAt) are
/// not taken from the request.
pub fn input_of(i: &pb::Interaction) -> Result<InteractionInput, FieldProblem> {
    // startedAt and endedAt are times of the call itself: from 1900 on.
    let t = |field: &'static str,
             v: &Option<Timestamp>,
             event: bool|
     -> Result<Option<String>, FieldProblem> {
        Ok(opt_request_time(field, v, event)?
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
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
        started_at: t("startedAt", &i.started_at, true)?,
        ended_at: t("endedAt", &i.ended_at, true)?,
        scheduled_at_from: t("scheduledAtFrom", &i.scheduled_at_from, false)?,
        scheduled_at_to: t("scheduledAtTo", &i.scheduled_at_to, false)?,
        loan_id: i.loan_id.clone(),
        loan_ids: (!i.loan_ids.is_empty()).then(|| i.loan_ids.clone()),
        case_ids: (!i.case_ids.is_empty()).then(|| i.case_ids.clone()),
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
        // Never from a request: the guard sets it from the credential.
        company_id: None,
        // Never from a request: only an upload stores audio.
        recording: None,
        voicemail: None,
    })
}

/// An interaction as its protobuf message, every field included.
pub fn pb_of(r: &Interaction) -> pb::Interaction {
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
        company_id: r.company_id.clone(),
        borrower: r.borrower.as_ref().map(value_of),
        case_ids: r.case_ids.clone(),
        recording: r.recording.as_deref().map(media_pb_of),
        voicemail: r.voicemail.as_deref().map(media_pb_of),
    }
}

/// Stored audio as its protobuf message.
pub fn media_pb_of(m: &crate::model::Media) -> pb::InteractionMedia {
    pb::InteractionMedia {
        content_type: m.content_type.clone(),
        size_bytes: m.size_bytes,
        sha256: m.sha256.clone(),
        uploaded_at: Some(ts(m.uploaded_at)),
        uploaded_by: m.uploaded_by.clone(),
        storage_key: m.storage_key.clone(),
    }
}

/// Stored audio from its protobuf message (the journal's form).
fn media_of(m: pb::InteractionMedia) -> Result<crate::model::Media, FieldProblem> {
    Ok(crate::model::Media {
        content_type: m.content_type,
        size_bytes: m.size_bytes,
        sha256: m.sha256,
        uploaded_at: opt_time("uploadedAt", &m.uploaded_at)?.unwrap_or_default(),
        uploaded_by: m.uploaded_by,
        storage_key: m.storage_key,
    })
}

/// The interaction flattened into one document for a search index
/// (upstream's `searchable=true`): every field the response carries, under
/// its upstream camelCase name; nested objects (`contact`, `metaData`,
/// `borrower`, an object `content`) become dotted keys (`contact.value`,
/// `metaData.campaign.name`) down to their leaves; arrays (`loanIds`,
/// `caseIds`, arrays inside `metaData`) stay arrays, their items as given;
/// absent fields, nulls and empty arrays are left out; times are RFC 3339
/// strings in UTC (`2026-11-30T16:00:00Z`, fractional seconds only when
/// there are any). `contact.kind` is the kind as given, as in `contact`.
pub fn searchable_of(r: &Interaction) -> Struct {
    fn put(out: &mut serde_json::Map<String, Json>, key: String, v: &Json) {
        match v {
            Json::Null => {}
            Json::Array(a) if a.is_empty() => {}
            Json::Object(m) => {
                for (k, v) in m {
                    put(out, format!("{key}.{k}"), v);
                }
            }
            other => {
                out.insert(key, other.clone());
            }
        }
    }
    let time =
        |t: DateTime<Utc>| Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    let mut out = serde_json::Map::new();
    let Ok(Json::Object(whole)) = serde_json::to_value(r) else {
        return Struct::default();
    };
    for (k, v) in &whole {
        match k.as_str() {
            "contact" | "startedAt" | "endedAt" | "scheduledAtFrom" | "scheduledAtTo"
            | "createdAt" | "updatedAt" | "deletedAt" => {}
            _ => put(&mut out, k.clone(), v),
        }
    }
    if r.channel == crate::model::Channel::Voice {
        // Upstream's list filters, as fields a search index can filter on.
        out.insert("hasRecording".into(), Json::Bool(r.recording.is_some()));
        out.insert("hasVoicemail".into(), Json::Bool(r.voicemail.is_some()));
    }
    for (k, t) in [
        ("startedAt", Some(r.started_at)),
        ("endedAt", r.ended_at),
        ("scheduledAtFrom", r.scheduled_at_from),
        ("scheduledAtTo", r.scheduled_at_to),
        ("createdAt", Some(r.created_at)),
        ("updatedAt", r.updated_at),
        ("deletedAt", r.deleted_at),
    ] {
        if let Some(t) = t {
            out.insert(k.to_owned(), time(t));
        }
    }
    if let Some(c) = &r.contact {
        for (k, v) in [
            ("contact.kind", &c.kind_as_given),
            ("contact.value", &c.value),
            ("contact.name", &c.name),
        ] {
            if let Some(v) = v {
                out.insert(k.to_owned(), Json::String(v.clone()));
            }
        }
    }
    struct_of(&Json::Object(out))
}

/// An interaction read back from its protobuf message with every field,
/// read-only ones included (id, personId, createdAt, createdBy, updatedAt,
/// updatedBy, deletedAt), as the journal stored it. The journal only holds
/// records that passed validation, so this converts directly (no text
/// round trip), checking only that every vocabulary value is known.
pub fn interaction_of(i: &pb::Interaction) -> Result<Interaction, FieldProblem> {
    interaction_from(i.clone())
}

/// [`interaction_of`], taking the message: its strings move into the record
/// instead of being copied (recovery reads millions of them).
pub fn interaction_from(i: pb::Interaction) -> Result<Interaction, FieldProblem> {
    fn vocab<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T, FieldProblem> {
        parse(text).ok_or_else(|| FieldProblem {
            field: field.to_owned(),
            message: format!("`{field}` value `{text}` is not known"),
        })
    }
    fn opt<T>(
        field: &str,
        text: &Option<String>,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Option<T>, FieldProblem> {
        text.as_deref().map(|t| vocab(field, t, parse)).transpose()
    }
    use crate::model::{
        AgentOutcome, Channel, Contact, ContactKind, Direction, Status, StatusDetails, Subject,
        Theme,
    };
    Ok(Interaction {
        id: i.id,
        external_id: i.external_id,
        person_id: i.person_id,
        channel: vocab("channel", &i.channel, Channel::parse)?,
        direction: vocab("direction", &i.direction, Direction::parse)?,
        theme: opt("theme", &i.theme, Theme::parse)?,
        borrower_selected_theme: opt(
            "borrowerSelectedTheme",
            &i.borrower_selected_theme,
            Theme::parse,
        )?,
        subject: opt("subject", &i.subject, Subject::parse)?,
        status: vocab("status", &i.status, Status::parse)?,
        status_details: opt("statusDetails", &i.status_details, StatusDetails::parse)?,
        agent_outcome: opt("agentOutcome", &i.agent_outcome, AgentOutcome::parse)?,
        started_at: opt_time("startedAt", &i.started_at)?.unwrap_or_default(),
        ended_at: opt_time("endedAt", &i.ended_at)?,
        scheduled_at_from: opt_time("scheduledAtFrom", &i.scheduled_at_from)?,
        scheduled_at_to: opt_time("scheduledAtTo", &i.scheduled_at_to)?,
        loan_id: i.loan_id,
        loan_ids: i.loan_ids,
        case_ids: i.case_ids,
        is_transactional: i.is_transactional,
        sensitive: i.sensitive,
        is_external: i.is_external.unwrap_or(true),
        previous_interaction_id: i.previous_interaction_id,
        contact_id: i.contact_id,
        contact_external_id: i.contact_external_id,
        contact: i.contact.map(|c| Contact {
            kind: ContactKind::from_record(non_empty(&c.kind).as_deref()),
            kind_as_given: (!c.kind.is_empty()).then_some(c.kind),
            value: (!c.value.is_empty()).then_some(c.value),
            name: (!c.name.is_empty()).then_some(c.name),
        }),
        borrower: i.borrower.as_ref().map(json_of),
        meta_data: i.meta_data.as_ref().map(json_of_struct),
        content: i.content.as_ref().map(json_of),
        failure_description_short: i.failure_description_short,
        failure_description_long: i.failure_description_long,
        compliance_guard_rule_id: i.compliance_guard_rule_id,
        twilio_error_code: i.twilio_error_code,
        created_at: opt_time("createdAt", &i.created_at)?.unwrap_or_default(),
        updated_at: opt_time("updatedAt", &i.updated_at)?,
        deleted_at: opt_time("deletedAt", &i.deleted_at)?,
        created_by: i.created_by,
        updated_by: i.updated_by,
        company_id: i.company_id,
        recording: i.recording.map(media_of).transpose()?.map(Box::new),
        voicemail: i.voicemail.map(media_of).transpose()?.map(Box::new),
    })
}

/// A CheckRequest as the [`CheckInput`] the guard, the decision log and
/// what-if all read: field by field, strings as they travel (the guard
/// checks them). The request is taken apart without `..`, so that a field
/// added to the message does not compile until it is carried here too.
/// Refuses only an `at` the API cannot carry.
pub fn check_input_of(r: &pb::CheckRequest) -> Result<CheckInput, FieldProblem> {
    let pb::CheckRequest {
        person_id,
        channel,
        direction,
        theme,
        subject,
        loan_ids,
        is_transactional,
        contact,
        previous_interaction_id,
        at,
        jurisdictions,
        time_zones,
        reserve,
        request_id,
        balance,
        required_by_law,
        consent_request,
        postal_code,
    } = r;
    Ok(CheckInput {
        person_id: person_id.clone(),
        channel: channel.clone(),
        direction: direction.clone(),
        theme: theme.clone(),
        subject: subject.clone(),
        loan_ids: loan_ids.clone(),
        is_transactional: *is_transactional,
        contact: contact_in(contact),
        previous_interaction_id: previous_interaction_id.clone(),
        at: opt_request_time("at", at, false)?,
        jurisdictions: jurisdictions.clone(),
        time_zones: time_zones.clone(),
        reserve: *reserve,
        request_id: request_id.clone(),
        balance: balance.clone(),
        required_by_law: *required_by_law,
        consent_request: *consent_request,
        postal_code: postal_code.clone(),
    })
}

/// A Check's answer as its protobuf message.
pub fn check_response_of(out: &CheckOutcome) -> pb::CheckResponse {
    let d = &out.decision;
    pb::CheckResponse {
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
                shadow: v.shadow,
                restriction_id: v.restriction_id.clone().unwrap_or_default(),
            })
            .collect(),
        next_allowed_at: d.next_allowed_at.map(ts),
        valid_until: d.valid_until.map(ts),
        interaction_id: out.interaction_id.clone().unwrap_or_default(),
        rules_version: d.rules_version.clone(),
        at: Some(ts(d.at)),
        applied_rule_ids: d.applied_rule_ids.clone(),
        replayed: out.repeated,
        zones_weighed: d
            .zones_weighed
            .iter()
            .map(|w| pb::WeighedZone {
                time_zone: w.place.name().to_owned(),
                reasons: w.reasons.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        jurisdictions_weighed: d
            .places_weighed
            .iter()
            .map(|w| pb::WeighedJurisdiction {
                jurisdiction: w.place.code().to_owned(),
                reasons: w.reasons.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        location_explanation: location::explain(&d.zones_weighed),
        // Set by the API from the read that preceded the decision.
        stale_up_to_ms: 0,
    }
}

/// Weighed places read back from a stored answer; a place or reason no
/// answer writes is refused, naming the field.
fn weighed_of<T>(
    field: &str,
    items: impl Iterator<Item = (String, Vec<String>)>,
    place: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Weighed<T>>, FieldProblem> {
    let bad = |what: &str, text: &str| {
        FieldProblem::new(
            field,
            format!(
                "`{field}` {what} `{}` is not one an answer writes",
                crate::model::echo(text)
            ),
        )
    };
    items
        .map(|(name, reasons)| {
            Ok(Weighed {
                place: place(&name).ok_or_else(|| bad("place", &name))?,
                reasons: reasons
                    .iter()
                    .map(|r| Reason::parse(r).ok_or_else(|| bad("reason", r)))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// A Check's answer read back from its protobuf message (the journal keeps
/// reserving answers for request-id retries across restarts).
pub fn outcome_of(r: &pb::CheckResponse) -> Result<CheckOutcome, FieldProblem> {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let mut violations = Vec::with_capacity(r.violations.len());
    for v in &r.violations {
        let w = v.window.clone().unwrap_or_default();
        violations.push(Violation {
            rule_id: v.rule_id.clone(),
            shadow: v.shadow,
            message: v.message.clone(),
            citation: v.citation.clone(),
            count: v.count,
            limit: v.limit,
            window_days: w.days,
            window_start: date(&w.start_date),
            window_end: date(&w.end_date),
            zone: w.time_zone.parse().unwrap_or(chrono_tz::UTC),
            debt: non_empty(&v.debt),
            counted_interaction_ids: v.counted_interaction_ids.clone(),
            next_allowed_at: opt_time("nextAllowedAt", &v.next_allowed_at)?,
            restriction_id: non_empty(&v.restriction_id),
        });
    }
    Ok(CheckOutcome {
        decision: Decision {
            allowed: r.allowed,
            at: opt_time("at", &r.at)?.unwrap_or_default(),
            rule_id: non_empty(&r.compliance_guard_rule_id),
            violations,
            next_allowed_at: opt_time("nextAllowedAt", &r.next_allowed_at)?,
            valid_until: opt_time("validUntil", &r.valid_until)?,
            applied_rule_ids: r.applied_rule_ids.clone(),
            rules_version: r.rules_version.clone(),
            zones_weighed: weighed_of(
                "zonesWeighed",
                r.zones_weighed
                    .iter()
                    .map(|w| (w.time_zone.clone(), w.reasons.clone())),
                |z| z.parse::<chrono_tz::Tz>().ok(),
            )?,
            places_weighed: weighed_of(
                "jurisdictionsWeighed",
                r.jurisdictions_weighed
                    .iter()
                    .map(|w| (w.jurisdiction.clone(), w.reasons.clone())),
                |j| Jurisdiction::parse(j).ok(),
            )?,
        },
        interaction_id: non_empty(&r.interaction_id),
        repeated: r.replayed,
    })
}

/// A restriction as its protobuf message, every field included; `in_force`
/// is left false (it depends on a moment; the caller sets it). The journal
/// stores this form, the full state of the restriction.
pub fn restriction_pb_of(r: &Restriction) -> pb::Restriction {
    let hhmm = |t: Option<chrono::NaiveTime>| t.map(|t| t.format("%H:%M").to_string());
    pb::Restriction {
        id: r.id.clone(),
        person_id: r.person_id.clone(),
        kind: r.kind.as_str().to_owned(),
        source: r.source.as_str().to_owned(),
        received_at: Some(ts(r.received_at)),
        ends_at: r.ends_at.map(ts),
        loan_ids: r.loan_ids.clone(),
        channels: r.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        contact_values: r.contact_values.clone(),
        contact_kinds: r
            .contact_kinds
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        from: hhmm(r.from).unwrap_or_default(),
        until: hhmm(r.until).unwrap_or_default(),
        days: r
            .days
            .iter()
            .map(|d| crate::restrictions::day_name(*d).to_owned())
            .collect(),
        reason: r.reason.map(|x| x.as_str().to_owned()).unwrap_or_default(),
        note: r.note.clone().unwrap_or_default(),
        recorded_by: r.recorded_by.clone(),
        recorded_at: Some(ts(r.recorded_at)),
        ended_at: r.ended_at.map(ts),
        ended_by: r.ended_by.clone().unwrap_or_default(),
        end_reason: r.end_reason.clone().unwrap_or_default(),
        in_force: false,
        mail_type: r
            .mail_type
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        written: r.written,
    }
}

/// A restriction read back from its protobuf message with every field, as
/// the journal stored it. The journal only holds restrictions that passed
/// [`RestrictionInput::check`], so this converts directly, checking only
/// that every vocabulary value and time is known.
pub fn restriction_from(r: pb::Restriction) -> Result<Restriction, FieldProblem> {
    use crate::model::{Channel, ContactKind};
    use crate::restrictions::{MailType, Reason, RestrictionKind, Source};
    fn vocab<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T, FieldProblem> {
        parse(text).ok_or_else(|| FieldProblem {
            field: field.to_owned(),
            message: format!("`{field}` value `{text}` is not known"),
        })
    }
    let hhmm = |field: &str, text: &str| -> Result<Option<chrono::NaiveTime>, FieldProblem> {
        if text.is_empty() {
            return Ok(None);
        }
        chrono::NaiveTime::parse_from_str(text, "%H:%M")
            .map(Some)
            .map_err(|_| FieldProblem {
                field: field.to_owned(),
                message: format!("`{field}` value `{text}` is not a time; allowed: HH:MM"),
            })
    };
    let received_at = opt_time("receivedAt", &r.received_at)?.ok_or_else(|| FieldProblem {
        field: "receivedAt".into(),
        message: "`receivedAt` is missing".into(),
    })?;
    Ok(Restriction {
        kind: vocab("kind", &r.kind, RestrictionKind::parse)?,
        source: vocab("source", &r.source, Source::parse)?,
        received_at,
        ends_at: opt_time("endsAt", &r.ends_at)?,
        channels: r
            .channels
            .iter()
            .map(|c| vocab("channels", c, Channel::parse))
            .collect::<Result<_, _>>()?,
        contact_kinds: r
            .contact_kinds
            .iter()
            .map(|k| vocab("contactKinds", k, ContactKind::parse))
            .collect::<Result<_, _>>()?,
        from: hhmm("from", &r.from)?,
        until: hhmm("until", &r.until)?,
        days: r
            .days
            .iter()
            .map(|d| vocab("days", d, crate::restrictions::parse_day))
            .collect::<Result<_, _>>()?,
        reason: (!r.reason.is_empty())
            .then(|| vocab("reason", &r.reason, Reason::parse))
            .transpose()?,
        mail_type: (!r.mail_type.is_empty())
            .then(|| vocab("mailType", &r.mail_type, MailType::parse))
            .transpose()?,
        written: r.written,
        recorded_at: opt_time("recordedAt", &r.recorded_at)?.unwrap_or_default(),
        ended_at: opt_time("endedAt", &r.ended_at)?,
        id: r.id,
        person_id: r.person_id,
        loan_ids: r.loan_ids,
        contact_values: r.contact_values,
        note: (!r.note.is_empty()).then_some(r.note),
        recorded_by: r.recorded_by,
        ended_by: (!r.ended_by.is_empty()).then_some(r.ended_by),
        end_reason: (!r.end_reason.is_empty()).then_some(r.end_reason),
    })
}

/// The protobuf Restriction of an AddRestriction as the guard's input form,
/// with the problems of the fields the guard sets (ended ones, a person
/// other than the request's) and of times out of range. `id` is passed on
/// for the guard to refuse; `recordedBy`, `recordedAt` and `inForce` are
/// ignored, as `createdBy` is on CreateInteraction.
pub fn restriction_input_of(
    r: &pb::Restriction,
    person_id: &str,
) -> (RestrictionInput, Vec<FieldProblem>) {
    let mut problems = Vec::new();
    let mut t = |field: &'static str, v: &Option<Timestamp>, event: bool| match opt_request_time(
        field, v, event,
    ) {
        Ok(t) => t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let received_at = t("receivedAt", &r.received_at, true);
    let ends_at = t("endsAt", &r.ends_at, false);
    let ended_at = r.ended_at.is_some();
    let refuse = |field: &str, why: &str| FieldProblem {
        field: field.to_owned(),
        message: format!("`{field}` is set by the guard, never on AddRestriction; {why}"),
    };
    if !r.person_id.is_empty() && r.person_id != person_id {
        problems.push(FieldProblem {
            field: "personId".into(),
            message: format!(
                "`personId` of the restriction `{}` is not the request's `personId` `{}`; allowed: empty, or the same id",
                crate::model::echo(&r.person_id),
                crate::model::echo(person_id)
            ),
        });
    }
    let ended = "record the restriction, then end it with EndRestriction";
    if ended_at {
        problems.push(refuse("endedAt", ended));
    }
    if !r.ended_by.is_empty() {
        problems.push(refuse("endedBy", ended));
    }
    if !r.end_reason.is_empty() {
        problems.push(refuse("endReason", ended));
    }
    let input = RestrictionInput {
        id: non_empty(&r.id),
        kind: r.kind.clone(),
        source: r.source.clone(),
        // Unset is now (the guard fills it in); an out-of-range time was
        // reported above, and that problem refuses the request whatever
        // the guard fills in.
        received_at: received_at.unwrap_or_default(),
        ends_at,
        loan_ids: r.loan_ids.clone(),
        channels: r.channels.clone(),
        contact_values: r.contact_values.clone(),
        contact_kinds: r.contact_kinds.clone(),
        from: non_empty(&r.from),
        until: non_empty(&r.until),
        days: r.days.clone(),
        reason: non_empty(&r.reason),
        note: non_empty(&r.note),
        mail_type: non_empty(&r.mail_type),
        // A bool cannot be unset on the wire: false is "not known to be
        // written", which is also what an unset value means.
        written: r.written.then_some(true),
    };
    (input, problems)
}

/// The protobuf form of a conversation: the API's answer and the journal's
/// record.
pub fn convo_pb_of(c: &crate::model::Convo) -> pb::InteractionConvo {
    pb::InteractionConvo {
        interaction_id: c.interaction_id.clone(),
        channel: c.channel.as_str().to_owned(),
        agents: c
            .agents
            .iter()
            .map(|a| pb::ConvoAgent {
                name: a.name.clone(),
                joined_at: Some(ts(a.joined_at)),
                join_type: a.join_type.as_str().to_owned(),
            })
            .collect(),
        closed: c.closed.is_some(),
        closed_at: c.closed.as_ref().map(|(at, _)| ts(*at)),
        closed_by: c
            .closed
            .as_ref()
            .map(|(_, by)| by.clone())
            .unwrap_or_default(),
    }
}

/// A conversation from its protobuf form (a journal record); what
/// [`convo_pb_of`] writes reads back exactly.
pub fn convo_from(c: pb::InteractionConvo) -> Result<crate::model::Convo, FieldProblem> {
    use crate::model::{Channel, ConvoAgent, JoinType};
    let channel = Channel::parse(&c.channel).ok_or_else(|| {
        FieldProblem::new(
            "channel",
            format!(
                "`channel` value `{}` is not a channel",
                crate::model::echo(&c.channel)
            ),
        )
    })?;
    let agents = c
        .agents
        .into_iter()
        .map(|a| {
            let joined_at = opt_time("joinedAt", &a.joined_at)?
                .ok_or_else(|| FieldProblem::required("joinedAt"))?;
            let join_type = JoinType::parse(&a.join_type).ok_or_else(|| {
                FieldProblem::new(
                    "joinType",
                    format!(
                        "`joinType` value `{}` is not allowed; allowed: `solo`, `add`, `takeover`",
                        crate::model::echo(&a.join_type)
                    ),
                )
            })?;
            Ok(ConvoAgent {
                name: a.name,
                joined_at,
                join_type,
            })
        })
        .collect::<Result<Vec<_>, FieldProblem>>()?;
    let closed = if c.closed {
        let at = opt_time("closedAt", &c.closed_at)?
            .ok_or_else(|| FieldProblem::required("closedAt"))?;
        Some((at, c.closed_by))
    } else {
        None
    };
    Ok(crate::model::Convo {
        interaction_id: c.interaction_id,
        channel,
        agents,
        closed,
    })
}
