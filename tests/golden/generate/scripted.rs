//! The scripted parts of the corpus: what a random walk rarely reaches.
//! Names linked to one borrower, retries of reserving Checks, the
//! conversation of a text, companies and sensitive records, holidays, and
//! refused requests whose messages are part of the answer. Each part
//! writes its steps through [`Gen::emit`], like the walk.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::{Gen, obj};
use crate::golden::render::time;

/// A caller other than the default one, as a step's `"caller"`.
pub(super) fn who(name: &str, company: Option<&str>, sensitive: bool, agent: bool) -> Value {
    json!({"name": name, "company": company, "sensitive": sensitive, "agent": agent})
}

/// A voice call about `loan` in New Jersey (Regulation F alone), to a
/// mobile phone.
pub(super) fn call(person: &str, loan: &str) -> Value {
    json!({
        "personId": person, "channel": "voice", "loanIds": [loan],
        "contact": {"kind": "mobilePhone"}, "jurisdictions": ["US-NJ"],
    })
}

/// An outbound record of `channel` that started `minutes` before now (a
/// call rang with no pickup: no conversation).
pub(super) fn record(g: &Gen<'_>, channel: &str, status: &str, minutes: i64) -> Value {
    let mut r = json!({
        "channel": channel, "direction": "outbound", "status": status,
        "loanIds": ["L1"], "startedAt": time(g.now - Duration::minutes(minutes)),
    });
    if channel == "voice" && status == "attempted" {
        r["statusDetails"] = json!("voiceRangNoPickup");
    }
    r
}

/// The steps of this part, and what every scripted part uses.
impl Gen<'_> {
    /// Sets the clock to a UTC moment.
    pub(super) fn at(&mut self, y: i32, mo: u32, d: u32, h: u32, mi: u32) {
        self.now = Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
    }

    /// Writes and runs one step from a `json!` object.
    pub(super) fn step(&mut self, op: &str, fields: Value) -> crate::golden::runner::Answer {
        self.emit(op, obj(fields))
    }

    /// Names linked to one person: an id of ours given later, a second
    /// external id, a person known only by a restriction whose names (and
    /// restriction) move, two histories that may not be joined, and
    /// refused links.
    pub(super) fn links(&mut self) {
        self.at(2025, 6, 2, 14, 0);
        let a = self.step(
            "create",
            json!({"personId": "ext-la", "interaction": record(self, "voice", "attempted", 30)}),
        );
        let ours = a.person.unwrap_or_default();
        self.step("link", json!({"id": "BO-LA-1", "externalId": "la"}));
        self.step("link", json!({"id": ours, "externalId": "la2"}));
        self.step("link", json!({"id": ours, "externalId": "la2"}));
        for name in ["BO-LA-1", "ext-la2", ours.as_str(), "ext-la"] {
            self.step("check", call(name, "L1"));
        }
        self.step("restrict", json!({"personId": "ext-lb", "restriction": {"kind": "ceaseCommunication", "source": "letter"}}));
        self.step("link", json!({"id": ours, "externalId": "lb"}));
        self.step("explain", json!({"personId": "ext-lb"}));
        self.step("check", call("ext-la", "L1"));
        self.step(
            "create",
            json!({"personId": "ext-lc", "interaction": record(self, "voice", "attempted", 10)}),
        );
        self.step("link", json!({"id": ours, "externalId": "lc"}));
        self.step("link", json!({"id": "ext-la", "externalId": "x"}));
        self.step("link", json!({"id": ours, "externalId": ""}));
        self.step(
            "debt",
            json!({"personId": "BO-LA-1", "debtId": "ACC-LA", "loanIds": ["L1", "L2"]}),
        );
        self.step("check", call("ext-la2", "L2"));
        self.step(
            "debt",
            json!({"personId": "ext-la", "debtId": "ACC-LB", "loanIds": ["L2"]}),
        );
        self.step(
            "debt",
            json!({"personId": "ext-la", "debtId": "ACC-LC", "loanIds": []}),
        );
        self.step(
            "debt",
            json!({"personId": "", "debtId": "ACC-LD", "loanIds": ["L9"]}),
        );
    }

    /// Reserving Checks retried with their request id: replayed while the
    /// answer is kept (a day), for the same person by any of its names,
    /// refused for another person, decided afresh after a day; a blocked
    /// answer is replayed too, and a retry is answered before the check
    /// of its `at`.
    pub(super) fn retries(&mut self) {
        self.at(2025, 6, 3, 15, 0);
        let mut c = call("ext-ra", "L1");
        c["reserve"] = json!(true);
        c["requestId"] = json!("retry-1");
        let first = self.step("check", c.clone());
        self.now += Duration::seconds(3);
        self.step("check", c.clone());
        let mut plain = c.clone();
        plain["reserve"] = json!(false);
        self.step("check", plain);
        self.step(
            "create",
            json!({"personId": "ext-ra", "interaction": record(self, "voice", "attempted", 60)}),
        );
        let person = self
            .step("link", json!({"id": "BO-RA-1", "externalId": "ra"}))
            .id;
        let mut alias = c.clone();
        alias["personId"] = json!(person);
        self.step("check", alias);
        let mut other = c.clone();
        other["personId"] = json!("ext-rb");
        self.step("check", other);
        let mut late = c.clone();
        late["at"] = json!(time(self.now - Duration::minutes(30)));
        self.step("check", late.clone());
        late["requestId"] = json!("retry-2");
        self.step("check", late);
        self.step("reservations", json!({"personId": "ext-ra"}));
        if let Some(id) = first.id {
            self.step("update", json!({"interactionId": id, "fields": ["status", "statusDetails"], "interaction": {"status": "attempted", "statusDetails": "voiceRangNoPickup"}}));
            self.step("cancel", json!({"interactionId": id}));
            self.step("delete", json!({"interactionId": id}));
        }
        self.now += Duration::hours(25);
        self.step("check", c.clone());
        self.now = Utc.with_ymd_and_hms(2025, 6, 5, 2, 0, 0).unwrap();
        let mut night = c;
        night["requestId"] = json!("retry-3");
        self.step("check", night.clone());
        self.now += Duration::minutes(1);
        self.step("check", night);
        self.step("reservations", json!({"personId": "BO-RA-1"}));
    }

    /// The conversation of a text: joined solo, with another agent, taken
    /// over, left, closed (the text's status changes and its reservation
    /// closes), then refused; a chat's is closed without a status change;
    /// a call has none; a caller that is not an agent may not join.
    pub(super) fn convos(&mut self) {
        self.at(2025, 6, 10, 15, 0);
        let mut text = call("ext-ca", "L1");
        text["channel"] = json!("text");
        text["reserve"] = json!(true);
        let id = self.step("check", text).id.unwrap_or_default();
        let chat = self
            .step(
                "create",
                json!({"personId": "ext-ca", "interaction": record(self, "chat", "succeeded", 5)}),
            )
            .id;
        let voice = self
            .step(
                "create",
                json!({"personId": "ext-ca", "interaction": record(self, "voice", "attempted", 5)}),
            )
            .id;
        let a2 = who("agent2", None, true, true);
        let a3 = who("agent3", None, true, true);
        self.step("convo", json!({"interactionId": id}));
        self.step("join", json!({"interactionId": id}));
        self.step("join", json!({"interactionId": id, "caller": a2}));
        self.step(
            "join",
            json!({"interactionId": id, "joinType": "add", "caller": a2}),
        );
        self.step("join", json!({"interactionId": id, "joinType": "add"}));
        self.step(
            "join",
            json!({"interactionId": id, "joinType": "takeover", "caller": a3}),
        );
        self.step("join", json!({"interactionId": id, "joinType": "grab"}));
        self.step(
            "join",
            json!({"interactionId": id, "caller": who("clerk", None, true, false)}),
        );
        self.step("leave", json!({"interactionId": id, "caller": a2}));
        self.step("leave", json!({"interactionId": id, "caller": a3}));
        self.now += Duration::minutes(20);
        self.step("join", json!({"personId": "ext-ca", "interactionId": id}));
        self.step("close", json!({"interactionId": id}));
        self.step("get", json!({"interactionId": id}));
        self.step("reservations", json!({"personId": "ext-ca"}));
        self.step("join", json!({"interactionId": id, "caller": a3}));
        self.step("close", json!({"interactionId": id}));
        self.step("convo", json!({"interactionId": id}));
        if let (Some(chat), Some(voice)) = (chat, voice) {
            self.step("join", json!({"interactionId": chat}));
            self.step("close", json!({"interactionId": chat}));
            self.step("get", json!({"interactionId": chat}));
            self.step("join", json!({"interactionId": voice}));
            self.step("delete", json!({"interactionId": chat}));
            self.step("leave", json!({"interactionId": chat}));
        }
    }

    /// Companies and sensitive records: what a key of one company may not
    /// see of another's, a sensitive record without the right, chains of
    /// earlier interactions, and externalIds created twice.
    pub(super) fn companies(&mut self) {
        self.at(2025, 7, 1, 15, 0);
        let co_a = who("key-a", Some("co-a"), false, false);
        let co_b = who("key-b", Some("co-b"), true, false);
        let mut first = record(self, "voice", "attempted", 120);
        first["externalId"] = json!("co-1");
        let a = self.step(
            "create",
            json!({"personId": "ext-ka", "interaction": first.clone(), "caller": co_a}),
        );
        let one = a.id.unwrap_or_default();
        let mut second = record(self, "text", "succeeded", 60);
        second["previousInteractionId"] = json!(one);
        second["sensitive"] = json!(true);
        second["externalId"] = json!("co-2");
        let two = self
            .step(
                "create",
                json!({"personId": "ext-ka", "interaction": second.clone()}),
            )
            .id
            .unwrap_or_default();
        let mut third = record(self, "email", "succeeded", 30);
        third["previousInteractionId"] = json!(two);
        let three = self
            .step(
                "create",
                json!({"personId": "ext-ka", "interaction": third, "caller": co_a}),
            )
            .id
            .unwrap_or_default();
        self.step(
            "create",
            json!({"personId": "ext-ka", "interaction": first.clone(), "caller": co_a}),
        );
        self.step(
            "create",
            json!({"personId": "ext-kb", "interaction": first}),
        );
        self.step(
            "create",
            json!({"personId": "ext-ka", "interaction": second.clone(), "caller": co_a}),
        );
        self.step(
            "create",
            json!({"personId": "ext-ka", "interaction": second, "caller": co_b}),
        );
        for caller in [co_a.clone(), co_b.clone(), who("golden", None, true, true)] {
            self.step("get", json!({"interactionId": one, "caller": caller}));
            self.step(
                "get",
                json!({"interactionId": "ext-co-2", "caller": caller}),
            );
            self.step(
                "previous",
                json!({"interactionId": three, "caller": caller}),
            );
        }
        self.step(
            "previous",
            json!({"interactionId": three, "companyId": "co-a", "caller": co_a}),
        );
        self.step(
            "previous",
            json!({"interactionId": three, "companyId": "co-b", "caller": co_a}),
        );
        self.step(
            "previous",
            json!({"personId": "ext-kb", "interactionId": three}),
        );
        let mut c = call("ext-ka", "L1");
        c["reserve"] = json!(true);
        let mut by_a = c.clone();
        by_a["caller"] = co_a.clone();
        let r = self.step("check", by_a).id.unwrap_or_default();
        for caller in [co_b.clone(), co_a.clone()] {
            self.step(
                "reservations",
                json!({"personId": "ext-ka", "caller": caller}),
            );
            self.step("cancel", json!({"interactionId": r, "caller": caller}));
        }
        self.step("delete", json!({"interactionId": one, "caller": co_b}));
        self.step(
            "delete",
            json!({"personId": "ext-kb", "interactionId": one}),
        );
        self.step(
            "delete",
            json!({"personId": "ext-ka", "interactionId": one, "caller": co_a}),
        );
        self.step("delete", json!({"interactionId": one}));
        self.step("update", json!({"interactionId": one, "fields": ["status"], "interaction": {"status": "failed"}}));
        self.step("check", c);
    }
}
