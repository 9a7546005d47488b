//! Refused requests: each answer is the error's kind and its whole
//! message, every bad field named.

use chrono::Duration;
use serde_json::{Value, json};

use super::Gen;
use super::scripted::{call, record};
use crate::golden::render::time;

/// The steps of this part.
impl Gen<'_> {
    /// Refused requests: each answer is the error's kind and its whole
    /// message, every bad field named.
    pub(super) fn refusals(&mut self) {
        self.at(2025, 8, 4, 15, 0);
        let ok = call("ext-za", "L1");
        let long = "x".repeat(256);
        let bad_checks: Vec<(&str, Value)> = vec![
            ("channel", json!("sms")),
            ("channel", json!("")),
            ("direction", json!("sideways")),
            ("theme", json!("collections")),
            ("subject", json!("hello")),
            ("timeZones", json!(["Mars/Olympus_Mons"])),
            ("timeZones", json!(["america/new_york"])),
            ("jurisdictions", json!(["US-XX"])),
            ("jurisdictions", json!(["us-ny"])),
            ("balance", json!("12,50")),
            ("balance", json!("abc")),
            ("balance", json!("1e3")),
            ("personId", json!("")),
            ("personId", json!("not an id")),
            ("loanIds", json!(["L1", ""])),
            ("previousInteractionId", json!("bad id")),
            ("requestId", json!(long)),
            ("at", json!("3000-01-01T00:00:00Z")),
            ("at", json!("1969-12-31T23:59:59Z")),
        ];
        for (field, value) in bad_checks {
            let mut c = ok.clone();
            c[field] = value;
            self.step("check", c);
        }
        let mut many = ok.clone();
        many["channel"] = json!("pager");
        many["balance"] = json!("-");
        many["timeZones"] = json!(["Nowhere"]);
        self.step("check", many.clone());
        many["channel"] = json!("voice");
        self.step("check", many);
        let mut past = ok.clone();
        past["reserve"] = json!(true);
        past["at"] = json!(time(self.now - Duration::minutes(6)));
        self.step("check", past.clone());
        past["at"] = json!(time(self.now - Duration::minutes(4)));
        self.step("check", past);
        let mut inbound = ok.clone();
        inbound["direction"] = json!("inbound");
        self.step("check", inbound);

        let bad_records = [
            json!({"channel": "voice", "direction": "outbound"}),
            json!({"channel": "pigeon", "direction": "outbound", "status": "attempted"}),
            json!({"channel": "text", "direction": "outbound", "status": "attempted", "statusDetails": "voiceRangNoPickup"}),
            json!({"channel": "voice", "direction": "outbound", "status": "succeeded", "startedAt": time(self.now + Duration::hours(2))}),
            json!({"channel": "voice", "direction": "outbound", "status": "scheduled", "scheduledAtFrom": "2025-08-05T10:00:00Z", "scheduledAtTo": "2025-08-05T09:00:00Z"}),
            json!({"channel": "voice", "direction": "outbound", "status": "attempted", "startedAt": "yesterday"}),
            json!({"channel": "voice", "direction": "outbound", "status": "attempted", "subject": "ceaseCommunicationAcknowledgement"}),
            json!({"channel": "voice", "direction": "outbound", "status": "attempted", "externalId": ""}),
        ];
        for r in bad_records {
            self.step("create", json!({"personId": "ext-za", "interaction": r}));
        }
        self.step(
            "create",
            json!({"personId": "", "interaction": record(self, "voice", "attempted", 5)}),
        );
        let mut dup = record(self, "voice", "attempted", 5);
        dup["id"] = json!("IT-ZA-1");
        self.step(
            "create",
            json!({"personId": "ext-za", "interaction": dup.clone()}),
        );
        dup["externalId"] = json!("za-2");
        self.step(
            "create",
            json!({"personId": "ext-za", "interaction": dup.clone()}),
        );
        self.step(
            "create",
            json!({"personId": "ext-zb", "interaction": record(self, "voice", "attempted", 5)}),
        );
        self.step("update", json!({"personId": "ext-zb", "interactionId": "IT-ZA-1", "fields": ["status"], "interaction": {"status": "failed"}}));
        self.step("update", json!({"interactionId": "IT-ZA-1", "fields": ["status"], "interaction": {"status": "sent"}}));
        self.step("update", json!({"interactionId": "IT-ZA-1", "fields": ["startedAt"], "interaction": {"startedAt": time(self.now + Duration::hours(1))}}));
        self.step(
            "update",
            json!({"interactionId": "IT-ZA-1", "fields": ["colour"], "interaction": {}}),
        );
        self.step("update", json!({"interactionId": "IT-NONE-1", "fields": ["status"], "interaction": {"status": "failed"}}));
        self.step("update", json!({"interactionId": "IT-ZA-1", "fields": ["personId"], "interaction": {"personId": "ext-zb"}}));
        self.step("delete", json!({"interactionId": "IT-NONE-1"}));
        self.step("delete", json!({"interactionId": "IT-ZA-1"}));
        self.step("delete", json!({"interactionId": "IT-ZA-1"}));
        self.step("cancel", json!({"interactionId": "IT-ZA-1"}));
        self.step("cancel", json!({"interactionId": "ext-nothing"}));
        self.step(
            "get",
            json!({"personId": "ext-zb", "interactionId": "IT-ZA-1"}),
        );

        let future = time(self.now + Duration::hours(1));
        let bad_restrictions = [
            json!({"kind": "silence", "source": "letter"}),
            json!({"kind": "ceaseCommunication"}),
            json!({"kind": "ceaseCommunication", "source": "fax"}),
            json!({"kind": "ceaseCommunication", "source": "letter", "receivedAt": future}),
            json!({"kind": "ceaseCommunication", "source": "letter", "receivedAt": "1899-12-31T00:00:00Z"}),
            json!({"kind": "ceaseCommunication", "source": "letter", "id": "RS-MINE"}),
            json!({"kind": "inconvenientTime", "source": "call", "from": "22:00"}),
            json!({"kind": "inconvenientTime", "source": "call", "from": "25:00", "until": "07:00"}),
            json!({"kind": "inconvenientTime", "source": "call", "days": ["funday"]}),
            json!({"kind": "inconvenientTime", "source": "call"}),
            json!({"kind": "mediumOptOut", "source": "call"}),
            json!({"kind": "mediumOptOut", "source": "call", "channels": ["pager"]}),
            json!({"kind": "doNotInteract", "source": "lender", "reason": "vacation"}),
            json!({"kind": "doNotInteract", "source": "lender", "endsAt": "2020-01-01T00:00:00Z"}),
            json!({"kind": "priorConsentToCall", "source": "call", "endsAt": time(self.now + Duration::days(30))}),
            json!({"kind": "electronicConsent", "source": "email"}),
            json!({"kind": "inconvenientPlace", "source": "call"}),
            json!({"kind": "inconvenientPlace", "source": "call", "contactKinds": ["pager"]}),
        ];
        for r in bad_restrictions {
            self.step("restrict", json!({"personId": "ext-za", "restriction": r}));
        }
        self.step("restrict", json!({"personId": "", "restriction": {"kind": "ceaseCommunication", "source": "letter"}}));
        let received = time(self.now - Duration::days(2));
        let id = self
            .step("restrict", json!({"personId": "ext-za", "restriction": {"kind": "doNotInteract", "source": "courtNotice", "reason": "bankruptcy", "receivedAt": received}}))
            .id
            .unwrap_or_default();
        self.step("end", json!({"personId": "ext-za", "restrictionId": id, "endedAt": time(self.now - Duration::days(3))}));
        self.step(
            "end",
            json!({"personId": "ext-za", "restrictionId": id, "endedAt": "1899-01-01T00:00:00Z"}),
        );
        self.step("end", json!({"personId": "ext-zb", "restrictionId": id}));
        self.step(
            "end",
            json!({"personId": "ext-za", "restrictionId": "RS-NONE-1"}),
        );
        self.step("end", json!({"personId": "", "restrictionId": ""}));
        self.step(
            "end",
            json!({"personId": "ext-za", "restrictionId": id, "endReason": "  discharged  "}),
        );
        self.step("end", json!({"personId": "ext-za", "restrictionId": id}));
        self.step("explain", json!({"personId": "ext-za"}));
        self.step("explain", json!({"personId": "ext-nobody"}));
        self.step("reservations", json!({"personId": "ext-nobody"}));
        self.step(
            "debt",
            json!({"personId": "ext-za", "debtId": "ACC-Z", "loanIds": ["L1", "L2"]}),
        );
        self.step(
            "debt",
            json!({"personId": "ext-za", "debtId": "ACC-Y", "loanIds": ["L2"]}),
        );
        self.step("check", ok);
    }
}
