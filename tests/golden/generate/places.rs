//! Scripted cases of particular places and restrictions: designated
//! inconvenient times (one on Lord Howe Island on the day its clocks go
//! back half an hour), the District's consent and call caps, a
//! do-not-interact period, and Washington's mobile numbers.

use chrono::Duration;
use serde_json::json;

use super::Gen;
use super::scripted::call;
use crate::golden::render::time;

/// The steps of this part.
impl Gen<'_> {
    /// Designated inconvenient times: a weekday lunch hour, a whole
    /// Sunday, a night that starts on Friday, and a lunch hour on Lord
    /// Howe Island on the day its clocks go back half an hour.
    pub(super) fn designated_times(&mut self) {
        self.at(2025, 9, 8, 12, 0);
        let designations = [
            json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:30", "days": ["weekdays"]}),
            json!({"kind": "inconvenientTime", "source": "call", "days": ["sunday"]}),
            json!({"kind": "inconvenientTime", "source": "call", "from": "22:00", "until": "09:00", "days": ["friday"]}),
        ];
        for r in designations {
            self.step("restrict", json!({"personId": "ext-dt", "restriction": r}));
        }
        let c = call("ext-dt", "L1");
        // Tue 12:15 and 13:30 EDT; Sat 12:15; Sun 10:00; Sat 08:30 (the
        // Friday night's morning) and 09:00.
        for at in [
            "2025-09-09T16:15:00Z",
            "2025-09-09T17:30:00Z",
            "2025-09-13T16:15:00Z",
            "2025-09-14T14:00:00Z",
            "2025-09-13T12:30:00Z",
            "2025-09-13T13:00:00Z",
        ] {
            let mut c = c.clone();
            c["at"] = json!(at);
            self.step("check", c);
        }
        self.step("explain", json!({"personId": "ext-dt"}));
        self.at(2021, 4, 1, 2, 0);
        let lunch = json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-lh", "restriction": lunch}),
        );
        let mut c = call("ext-lh", "L1");
        c["jurisdictions"] = json!([]);
        c["timeZones"] = json!(["Australia/Lord_Howe"]);
        // 12:15 local on Sat Apr 3 (+11:00) and Sun Apr 4 (+10:30).
        for at in [
            "2021-04-03T01:15:00Z",
            "2021-04-04T01:45:00Z",
            "2021-04-04T03:00:00Z",
        ] {
            c["at"] = json!(at);
            self.step("check", c.clone());
        }
    }

    /// The District: texts under consent up to five a week per account,
    /// a reply to the consumer that is not counted, four calls a week, and
    /// an opt-out of calls with none of Regulation F's exceptions.
    pub(super) fn district(&mut self) {
        self.at(2025, 9, 15, 13, 0);
        for kind in ["electronicNoticeMailed", "electronicConsent"] {
            let r = json!({"kind": kind, "source": "letter", "loanIds": ["ACCT1"], "channels": ["text"]});
            let r = if kind == "electronicConsent" {
                r
            } else {
                json!({"kind": kind, "source": "letter", "loanIds": ["ACCT1"]})
            };
            self.step("restrict", json!({"personId": "ext-dc", "restriction": r}));
        }
        let mut text = call("ext-dc", "ACCT1");
        text["channel"] = json!("text");
        text["jurisdictions"] = json!(["US-DC"]);
        text["reserve"] = json!(true);
        for day in 0..6 {
            self.at(2025, 9, 15 + day, 15, 0);
            self.step("check", text.clone());
        }
        let inbound = json!({"channel": "text", "direction": "inbound", "status": "succeeded", "loanIds": ["ACCT1"], "startedAt": time(self.now - Duration::minutes(10))});
        let id = self
            .step(
                "create",
                json!({"personId": "ext-dc", "interaction": inbound}),
            )
            .id;
        text["previousInteractionId"] = json!(id);
        self.step("check", text.clone());
        let mut voice = text;
        voice["channel"] = json!("voice");
        voice["previousInteractionId"] = json!("");
        for day in 0..5 {
            self.at(2025, 9, 22 + day, 15, 0);
            self.step("check", voice.clone());
        }
        self.step("restrict", json!({"personId": "ext-dc", "restriction": {"kind": "mediumOptOut", "source": "letter", "channels": ["voice"]}}));
        voice["requiredByLaw"] = json!(true);
        self.step("check", voice);
    }

    /// A do-not-interact period that ends by itself, one about a single
    /// debt, and the end of one before its own.
    pub(super) fn do_not_interact(&mut self) {
        self.at(2025, 10, 6, 14, 0);
        let ends = time(self.now + Duration::days(3));
        let r = json!({"kind": "doNotInteract", "source": "courtNotice", "reason": "bankruptcy", "endsAt": ends});
        self.step("restrict", json!({"personId": "ext-dn", "restriction": r}));
        let r = json!({"kind": "doNotInteract", "source": "lender", "reason": "dispute", "loanIds": ["L2"]});
        let id = self
            .step("restrict", json!({"personId": "ext-dn", "restriction": r}))
            .id;
        for loan in ["L1", "L2"] {
            self.step("check", call("ext-dn", loan));
        }
        self.now += Duration::days(3);
        for loan in ["L1", "L2"] {
            self.step("check", call("ext-dn", loan));
        }
        self.step(
            "end",
            json!({"personId": "ext-dn", "restrictionId": id, "endReason": "resolved"}),
        );
        self.step("check", call("ext-dn", "L2"));
        self.step("explain", json!({"personId": "ext-dn"}));
    }

    /// Washington, for a licensee: a third call or text to a mobile number
    /// in one day while the week has room, and the residence's hours.
    pub(super) fn washington_mobile(&mut self) {
        self.step("rules", json!({"roles": ["licensee"]}));
        self.at(2025, 9, 2, 16, 0);
        let mut c = call("ext-wm", "L1");
        c["jurisdictions"] = json!(["US-WA"]);
        c["reserve"] = json!(true);
        for (channel, hours) in [("text", 0), ("voice", 2), ("text", 2)] {
            self.now += Duration::hours(hours);
            c["channel"] = json!(channel);
            self.step("check", c.clone());
        }
        c["contact"] = json!({"kind": "homePhone"});
        self.step("check", c.clone());
        self.at(2025, 9, 3, 14, 10);
        c["contact"] = json!({"kind": "mobilePhone"});
        c["reserve"] = json!(false);
        self.step("check", c);
        self.step("rules", json!({"roles": null}));
    }
}
