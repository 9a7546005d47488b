//! Writes the fixture's data directory (`COMPAT_GENERATE=1`), as a server
//! of commit f8a6031 writes one: run once, and its output committed.
//!
//! Two runs of the guard. The first writes journal generation 0 with the
//! rule set archived and the decision log on: people with external ids
//! and linked ids, an account of two loans, restrictions (one naming days,
//! the `restriction_v2` record kind), interactions created, updated and
//! deleted, a sensitive one and another company's, Checks, a reservation
//! closed by an update and one left open. The second opens it with a
//! small `compact_after`, so that generation 0 becomes the snapshot of
//! generation 1, and writes generation 1's journal: a reserving Check with
//! a request id (an open reservation and a stored answer), a blocked one
//! with another (a stored block), an end of a restriction, another with
//! days, calls and a conversation, a link, an account, and the one
//! conversation of a text, joined and closed (one only: the guard keeps
//! conversations in a hash map, so the order of several in a snapshot is
//! not fixed).
//!
//! The rule set in force then is the shipped one with
//! `us-regf-medium-opt-out` in shadow mode (as if it had been adopted
//! later), so that the what-if replay against `rules/` finds a decision
//! it changes.
//!
//! Times are in March 2030, after the clock of the machine that wrote
//! them: person and account records carry the writer's clock, and the
//! what-if replay orders records by their times, so those records come
//! before every decision, as they did when written.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use compliance_guard::decisions::{DecisionLog, LogConfig};
use compliance_guard::guard::Guard;
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::Durability;
use compliance_guard::model::{ContactInput, InteractionInput};
use compliance_guard::request::CheckInput;
use compliance_guard::restrictions::RestrictionInput;
use compliance_guard::rules::{LoadOptions, RuleSet};

use super::caller;
use crate::support::library::Logged;

/// The rule set in force when the fixture was written: the shipped one,
/// with the opt-out rule of Regulation F in shadow mode.
fn live_rules() -> RuleSet {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap().replace(
                "  - id: us-regf-medium-opt-out\n",
                "  - id: us-regf-medium-opt-out\n    mode: shadow\n",
            );
            std::fs::write(tmp.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    RuleSet::load_dir(tmp.path(), &LoadOptions::default()).unwrap()
}

/// Opens `dir` as a server does: the rules in force and archived, the
/// decision log on.
fn open(dir: &Path, compact_after: u64) -> Logged {
    let (g, _) = Guard::open(
        IndexConfig::default(),
        dir,
        Durability::Sync,
        compact_after,
        |_| {},
    )
    .unwrap();
    let rules = live_rules();
    compliance_guard::reload::archive(dir, &rules).unwrap();
    g.set_rules(Arc::new(rules));
    let log = DecisionLog::start(LogConfig::under(dir)).unwrap();
    Logged { g, log }
}

/// Closes the decision log (its lines reach the file) and the guard.
fn close(g: Logged) {
    g.log.close();
    drop(g);
}

/// A record of the lender's history about loan L1, of the collection
/// theme.
fn record(
    channel: &str,
    direction: &str,
    status: &str,
    details: Option<&str>,
    started: DateTime<Utc>,
) -> InteractionInput {
    InteractionInput {
        channel: Some(channel.into()),
        direction: Some(direction.into()),
        status: Some(status.into()),
        status_details: details.map(Into::into),
        started_at: Some(started.to_rfc3339()),
        loan_ids: Some(vec!["L1".into()]),
        theme: Some("opsCollDebt".into()),
        ..InteractionInput::default()
    }
}

/// A Check of `channel` about `loan` in New York, to a mobile phone.
fn check(person: &str, channel: &str, loan: &str) -> CheckInput {
    CheckInput {
        person_id: person.into(),
        channel: channel.into(),
        loan_ids: vec![loan.into()],
        jurisdictions: vec!["US-NY".into()],
        contact: Some(ContactInput {
            kind: Some("mobilePhone".into()),
            value: Some("+1 212 555 0100".into()),
            name: None,
        }),
        ..CheckInput::default()
    }
}

/// A restriction of `kind`, with no other field.
fn restriction(kind: &str, source: &str) -> RestrictionInput {
    RestrictionInput {
        kind: kind.into(),
        source: source.into(),
        ..RestrictionInput::default()
    }
}

/// Writes the fixture's data directory into `out` (emptied first).
pub async fn generate(out: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let who = caller();
    let co = compliance_guard::request::Caller {
        company: Some("co-x".into()),
        ..caller()
    };
    // Mon 2030-03-04, 09:00 EST.
    let t = Utc.with_ymd_and_hms(2030, 3, 4, 14, 0, 0).unwrap();

    let g = open(dir, u64::MAX);
    let mut first = record(
        "voice",
        "outbound",
        "attempted",
        Some("voiceRangNoPickup"),
        t - Duration::hours(2),
    );
    first.external_id = Some("c-1".into());
    first.contact = Some(ContactInput {
        kind: Some("mobilePhone".into()),
        value: Some("+1 212 555 0100".into()),
        name: Some("Pat".into()),
    });
    first.meta_data =
        Some(serde_json::json!({"zeta": 1, "alpha": [1, 2], "mid": {"b": true, "a": null}}));
    first.content = Some(serde_json::json!("Hello"));
    first.case_ids = Some(vec!["CS-ABCD-1234".into()]);
    let (c1, _) = g.create("ext-c1", &first, &who, t).await.unwrap();
    let mut inbound = record("text", "inbound", "succeeded", None, t - Duration::hours(1));
    inbound.loan_ids = Some(vec!["L2".into()]);
    g.create("ext-c1", &inbound, &who, t).await.unwrap();
    g.link_person("BO-C-1", "c1", t).await.unwrap();
    g.link_person(&c1.person_id, "c1b", t).await.unwrap();
    g.declare_debt("ext-c1", "ACC-C1", &["L1".into(), "L2".into()], t)
        .await
        .unwrap();
    let tuesday_lunch = RestrictionInput {
        from: Some("12:00".into()),
        until: Some("13:00".into()),
        days: vec!["tuesday".into()],
        ..restriction("inconvenientTime", "call")
    };
    g.add_restriction("ext-c1", &tuesday_lunch, &who, t)
        .await
        .unwrap();
    let cease = RestrictionInput {
        loan_ids: vec!["L3".into()],
        ..restriction("ceaseCommunication", "letter")
    };
    let cease = g.add_restriction("ext-c1", &cease, &who, t).await.unwrap();
    let opt_out = RestrictionInput {
        channels: vec!["text".into()],
        contact_values: vec!["+1 212 555 0100".into()],
        ..restriction("mediumOptOut", "stopReply")
    };
    g.add_restriction("ext-c2", &opt_out, &who, t)
        .await
        .unwrap();
    let mut email = record(
        "email",
        "outbound",
        "succeeded",
        Some("emailDelivered"),
        t - Duration::minutes(30),
    );
    email.external_id = Some("c-2".into());
    g.create("ext-c2", &email, &who, t).await.unwrap();
    let bounced = InteractionInput {
        status: Some("failed".into()),
        status_details: Some("emailBounced".into()),
        ..InteractionInput::default()
    };
    let fields = ["status".to_owned(), "statusDetails".to_owned()];
    g.update(None, "ext-c-2", &bounced, &fields, &who, t)
        .await
        .unwrap();
    let (gone, _) = g
        .create(
            "ext-c2",
            &record(
                "voice",
                "outbound",
                "attempted",
                Some("voiceLineBusyNoRing"),
                t - Duration::minutes(20),
            ),
            &who,
            t,
        )
        .await
        .unwrap();
    g.delete(None, &gone.id, &who, t).await.unwrap();
    let mut secret = record(
        "email",
        "outbound",
        "succeeded",
        None,
        t - Duration::minutes(10),
    );
    secret.sensitive = Some(true);
    g.create("ext-c5", &secret, &who, t).await.unwrap();
    g.create(
        "ext-c5",
        &record(
            "voice",
            "outbound",
            "attempted",
            Some("voiceRangNoPickup"),
            t - Duration::minutes(5),
        ),
        &co,
        t,
    )
    .await
    .unwrap();
    for c in [
        check("ext-c1", "voice", "L1"),
        check("ext-c2", "text", "L1"),
        check("BO-C-1", "voice", "L3"),
    ] {
        g.check(&c, &who, t, None).await.unwrap();
    }
    let text = CheckInput {
        reserve: true,
        ..check("ext-c1", "text", "L2")
    };
    let reserved = g
        .check(&text, &who, t + Duration::minutes(5), None)
        .await
        .unwrap();
    let sent = InteractionInput {
        status: Some("succeeded".into()),
        ..InteractionInput::default()
    };
    let id = reserved.interaction_id.unwrap();
    g.update(
        Some("ext-c1"),
        &id,
        &sent,
        &["status".to_owned()],
        &who,
        t + Duration::minutes(6),
    )
    .await
    .unwrap();
    let call = CheckInput {
        reserve: true,
        ..check("ext-c3", "voice", "L1")
    };
    g.check(&call, &who, t + Duration::hours(1), None)
        .await
        .unwrap();
    let consent = RestrictionInput {
        loan_ids: vec!["L2".into()],
        ..restriction("priorConsentToCall", "call")
    };
    g.add_restriction("ext-c3", &consent, &who, t + Duration::hours(1))
        .await
        .unwrap();
    close(g);

    // Tue 2030-03-05, 09:00 EST: generation 0 becomes a snapshot.
    let t = t + Duration::days(1);
    let g = open(dir, 1);
    let retried = CheckInput {
        request_id: "compat-r1".into(),
        ..call.clone()
    };
    g.check(&retried, &who, t, None).await.unwrap();
    g.check(&retried, &who, t + Duration::seconds(2), None)
        .await
        .unwrap();
    g.end_restriction(
        "ext-c1",
        &cease.id,
        None,
        Some("paid in full".into()),
        &who,
        t,
    )
    .await
    .unwrap();
    let weekends = RestrictionInput {
        days: vec!["weekends".into()],
        ..restriction("inconvenientTime", "letter")
    };
    g.add_restriction("ext-c4", &weekends, &who, t)
        .await
        .unwrap();
    let mut c4 = None;
    for (n, details) in [
        "voiceRangNoPickup",
        "voiceRangNoPickup",
        "voiceSpokeWithFirstParty",
    ]
    .into_iter()
    .enumerate()
    {
        let status = if n == 2 { "succeeded" } else { "attempted" };
        let mut r = record(
            "voice",
            "outbound",
            status,
            Some(details),
            t - Duration::hours(3 - n as i64),
        );
        r.external_id = Some(format!("c-4-{}", n + 1));
        r.loan_ids = Some(vec!["L4".into()]);
        c4 = Some(g.create("ext-c4", &r, &who, t).await.unwrap().0);
    }
    let c4 = c4.unwrap();
    g.link_person(&c4.person_id, "c4b", t).await.unwrap();
    g.declare_debt("ext-c4b", "ACC-C4", &["L4".into(), "L5".into()], t)
        .await
        .unwrap();
    g.delete(Some("ext-c4"), "ext-c-4-1", &who, t)
        .await
        .unwrap();
    let ended = InteractionInput {
        ended_at: Some((t - Duration::minutes(50)).to_rfc3339()),
        ..InteractionInput::default()
    };
    g.update(None, "ext-c-1", &ended, &["endedAt".to_owned()], &who, t)
        .await
        .unwrap();
    let text = CheckInput {
        reserve: true,
        ..check("ext-c1", "text", "L2")
    };
    let convo = g
        .check(&text, &who, t + Duration::minutes(10), None)
        .await
        .unwrap();
    let id = convo.interaction_id.unwrap();
    g.join_convo(None, &id, "solo", &who, t + Duration::minutes(11))
        .await
        .unwrap();
    g.close_convo(None, &id, &who, t + Duration::minutes(20))
        .await
        .unwrap();
    let blocked = CheckInput {
        reserve: true,
        request_id: "compat-r2".into(),
        ..check("ext-c4", "voice", "L4")
    };
    g.check(&blocked, &who, t + Duration::minutes(30), None)
        .await
        .unwrap();
    let lunch = CheckInput {
        at: Some(t + Duration::hours(3) + Duration::minutes(30)),
        ..check("ext-c1b", "voice", "L1")
    };
    for c in [
        lunch,
        check("ext-c2", "email", "L1"),
        check("ext-c4b", "voice", "L5"),
        check("ext-c5", "voice", "L1"),
    ] {
        g.check(&c, &who, t + Duration::minutes(40), None)
            .await
            .unwrap();
    }
    close(g);

    let _ = std::fs::remove_dir_all(out);
    super::copy_dir(dir, out);
}
