//! Answers as text: one canonical line each, the same on every run (no
//! map order, no clock).

use chrono::{DateTime, SecondsFormat, Utc};
use compliance_guard::engine::Decision;
use compliance_guard::guard::GuardError;
use compliance_guard::model::Interaction;
use compliance_guard::request::CheckOutcome;
use compliance_guard::restrictions::Restriction;

/// A time as answers show it: RFC 3339 in UTC, `Z`, fractions only when
/// there are some.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// [`time`], or `-` for none.
fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), time)
}

/// A Check's answer as one line. An allow: `allowed=true`, `until`
/// (validUntil, `-` for none). A block: `allowed=false`, the deciding
/// `rule`, `next` (nextAllowedAt, `-` for none). Then how many rules
/// `applied`, the `reserved` interaction and `replayed` when there is one
/// or it is, and after ` | ` every violation in the engine's order: its
/// rule, `shadow` when it is, its own `next` allowed moment, and when
/// there are some the `debt` it counted, the `restriction` that decided it
/// and the interactions `counted`.
pub fn render(o: &CheckOutcome) -> String {
    let d: &Decision = &o.decision;
    let mut line = if d.allowed {
        format!("check allowed=true until={}", opt_time(d.valid_until))
    } else {
        format!(
            "check allowed=false rule={} next={}",
            d.rule_id.as_deref().unwrap_or("-"),
            opt_time(d.next_allowed_at)
        )
    };
    line.push_str(&format!(" applied={}", d.applied_rule_ids.len()));
    if let Some(id) = &o.interaction_id {
        line.push_str(&format!(" reserved={id}"));
    }
    if o.repeated {
        line.push_str(" replayed");
    }
    for v in &d.violations {
        line.push_str(&format!(" | {}", v.rule_id));
        if v.shadow {
            line.push_str(" shadow");
        }
        line.push_str(&format!(" next={}", opt_time(v.next_allowed_at)));
        if let Some(debt) = &v.debt {
            line.push_str(&format!(" debt={debt}"));
        }
        if let Some(r) = &v.restriction_id {
            line.push_str(&format!(" restriction={r}"));
        }
        if !v.counted_interaction_ids.is_empty() {
            line.push_str(&format!(" counted={}", v.counted_interaction_ids.join(",")));
        }
    }
    line
}

/// An error as one line: its kind, the fields it names (for a refused
/// request) and its whole message.
pub fn render_error(e: &GuardError) -> String {
    let debug = format!("{e:?}");
    let kind = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    let fields = match e {
        GuardError::Invalid(problems) => format!(
            " [{}]",
            problems
                .iter()
                .map(|p| p.field.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => String::new(),
    };
    format!("error {kind}{fields}: {e}")
}

/// An interaction in a few words (id, person, channel, status and its
/// details, when it was updated or deleted if it was), and a checksum of
/// its whole JSON form, so that any difference in any field shows while
/// the line stays short.
pub fn interaction(i: &Interaction) -> String {
    let json = serde_json::to_string(i).unwrap();
    let mut line = format!(
        "{} {} {} {}",
        i.id,
        i.person_id,
        i.channel.as_str(),
        i.status.as_str()
    );
    if let Some(d) = i.status_details {
        line.push_str(&format!("/{}", d.as_str()));
    }
    if let Some(t) = i.updated_at {
        line.push_str(&format!(" updated={}", time(t)));
    }
    if let Some(t) = i.deleted_at {
        line.push_str(&format!(" deleted={}", time(t)));
    }
    line + &format!(" json={:08x}", crc32fast::hash(json.as_bytes()))
}

/// A restriction with every field, as stored.
pub fn restriction(r: &Restriction) -> String {
    let list = |v: Vec<String>| v.join(",");
    format!(
        "{} {} {} source={} received={} ends={} loans=[{}] channels=[{}] values=[{}] kinds=[{}] from={} until={} days=[{}] reason={} note={} recorded={}@{} ended={} by={} why={}",
        r.id,
        r.person_id,
        r.kind.as_str(),
        r.source.as_str(),
        time(r.received_at),
        opt_time(r.ends_at),
        r.loan_ids.join(","),
        list(r.channels.iter().map(|c| c.as_str().to_owned()).collect()),
        r.contact_values.join(","),
        list(r.contact_kinds.iter().map(|k| k.to_string()).collect()),
        r.from.map_or_else(|| "-".into(), |t| t.to_string()),
        r.until.map_or_else(|| "-".into(), |t| t.to_string()),
        list(r.days.iter().map(|d| d.to_string()).collect()),
        r.reason.map_or("-", |x| x.as_str()),
        r.note.as_deref().unwrap_or("-"),
        r.recorded_by,
        time(r.recorded_at),
        opt_time(r.ended_at),
        r.ended_by.as_deref().unwrap_or("-"),
        r.end_reason.as_deref().unwrap_or("-"),
    ) + &new_fields(r)
}

/// A cease's mail type and a consent's `written`, only when set, so that
/// the lines of restrictions without them read as before they existed.
fn new_fields(r: &Restriction) -> String {
    let mut out = String::new();
    if let Some(m) = r.mail_type {
        out.push_str(&format!(" mail={m}"));
    }
    if r.written {
        out.push_str(" written");
    }
    out
}

/// A conversation: its interaction, whether closed (by whom, when) and the
/// agents in it.
pub fn convo(c: &compliance_guard::pb::InteractionConvo) -> String {
    let ts = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
            .map_or_else(|| "-".into(), time)
    };
    let agents: Vec<String> = c
        .agents
        .iter()
        .map(|a| format!("{}:{}@{}", a.name, a.join_type, ts(&a.joined_at)))
        .collect();
    format!(
        "{} {} closed={} by={} at={} agents=[{}]",
        c.interaction_id,
        c.channel,
        c.closed,
        c.closed_by,
        ts(&c.closed_at),
        agents.join(",")
    )
}
