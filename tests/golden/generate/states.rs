//! Scripted cases of the states added after the corpus was first
//! written (New York City, West Virginia, California, Pennsylvania):
//! each rule of theirs that can decide decides a Check here, and each
//! shadow rule is reported. Borrowers of their own; the part runs last.
//! The other parts' scripted calls are in New Jersey (Regulation F alone),
//! so that what they test is not decided by these states' rules instead.

use chrono::Duration;
use serde_json::{Value, json};

use super::Gen;
use super::scripted::call;
use crate::golden::render::time;

/// A voice call about `loan` to a mobile phone in `place`.
fn call_in(person: &str, loan: &str, place: &str) -> Value {
    let mut c = call(person, loan);
    c["jurisdictions"] = json!([place]);
    c
}

/// An outbound call record of `details` about `loan` that started now.
fn placed(g: &Gen<'_>, loan: &str, details: &str) -> Value {
    json!({
        "channel": "voice", "direction": "outbound", "status": "attempted",
        "statusDetails": details, "loanIds": [loan], "startedAt": time(g.now),
    })
}

/// The steps of this part.
impl Gen<'_> {
    /// West Virginia for a creditor (46A-2-125(d)); California's
    /// designated place and cease, and Regulation F's employer rule in New
    /// Jersey, for every role; New York City's amendments and
    /// Pennsylvania's hours, in shadow, for a creditor.
    pub(super) fn states(&mut self) {
        self.at(2026, 6, 1, 12, 0);
        self.step("rules", json!({"roles": ["creditor"]}));
        self.west_virginia();
        self.new_york_city_designations();
        self.step("rules", json!({"roles": null}));
        self.restrictions_elsewhere();
        self.step("rules", json!({"roles": ["creditor"]}));
        self.shadows();
        self.step("rules", json!({"roles": null}));
    }

    /// New York City, EDT in June 2026, for a creditor: a designated lunch
    /// hour (5-77(b)(1)(i); Regulation F's binds debt collectors only).
    fn new_york_city_designations(&mut self) {
        self.at(2026, 6, 1, 14, 0);
        let lunch = json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-nyc-dt", "restriction": lunch}),
        );
        self.at(2026, 6, 2, 16, 15);
        self.step("check", call_in("ext-nyc-dt", "L1", "US-NY-NYC"));
    }

    /// West Virginia, EDT in June 2026: 08:00:00 and 08:00:01, a
    /// designated lunch hour (calls only), 10 conversations, and 30
    /// calls to a busy line.
    fn west_virginia(&mut self) {
        self.at(2026, 6, 1, 12, 0);
        let c = call_in("ext-wv1", "L1", "US-WV");
        self.step("check", c.clone());
        self.now += Duration::seconds(1);
        self.step("check", c);

        self.at(2026, 6, 1, 14, 0);
        let lunch = json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-wv2", "restriction": lunch}),
        );
        self.at(2026, 6, 2, 16, 15);
        let mut c = call_in("ext-wv2", "L1", "US-WV");
        self.step("check", c.clone());
        c["channel"] = json!("text");
        self.step("check", c);

        self.at(2026, 6, 3, 13, 0);
        for n in 0..10 {
            let loan = if n % 2 == 0 { "L1" } else { "L2" };
            let r = placed(self, loan, "voiceSpokeWithFirstParty");
            self.step("create", json!({"personId": "ext-wv3", "interaction": r}));
            self.now += Duration::minutes(30);
        }
        let mut c = call_in("ext-wv3", "L3", "US-WV");
        self.step("check", c.clone());
        c["channel"] = json!("text");
        self.step("check", c);

        self.at(2026, 6, 4, 12, 30);
        for n in 0..30 {
            let loan = if n % 2 == 0 { "L1" } else { "L2" };
            let r = placed(self, loan, "voiceLineBusyNoRing");
            self.step("create", json!({"personId": "ext-wv4", "interaction": r}));
            self.now += Duration::minutes(20);
        }
        self.step("check", call_in("ext-wv4", "L1", "US-WV"));
    }

    /// California, PDT in June 2026: a designated place (work), an
    /// attorney's representation (and a call to the attorney) and a
    /// cease, decided by California's ids (they tie with Regulation F's
    /// and sort first); New Jersey: a designated place and an employer's
    /// prohibition, Regulation F's alone.
    fn restrictions_elsewhere(&mut self) {
        self.at(2026, 6, 8, 17, 0);
        let work =
            json!({"kind": "inconvenientPlace", "source": "call", "contactKinds": ["workPhone"]});
        self.step(
            "restrict",
            json!({"personId": "ext-ca2", "restriction": work}),
        );
        let mut c = call_in("ext-ca2", "L1", "US-CA");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "homePhone"});
        self.step("check", c);

        let cease = json!({"kind": "ceaseCommunication", "source": "letter", "loanIds": ["L1"]});
        self.step(
            "restrict",
            json!({"personId": "ext-ca3", "restriction": cease}),
        );
        let attorney = json!({"kind": "attorneyRepresentation", "source": "letter", "loanIds": ["L1"], "contactValues": ["+1 415 555 0777"]});
        self.step(
            "restrict",
            json!({"personId": "ext-ca4", "restriction": attorney}),
        );
        let mut c = call_in("ext-ca4", "L1", "US-CA");
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "workPhone", "value": "+1 415 555 0777"});
        self.step("check", c);

        let mut c = call_in("ext-ca3", "L1", "US-CA");
        c["channel"] = json!("email");
        c["contact"] = json!({"kind": "email"});
        self.step("check", c.clone());
        c["subject"] = json!("ceaseCommunicationAcknowledgement");
        self.step("check", c);

        self.at(2026, 6, 8, 15, 0);
        let place =
            json!({"kind": "inconvenientPlace", "source": "call", "contactKinds": ["workPhone"]});
        self.step(
            "restrict",
            json!({"personId": "ext-nj2", "restriction": place}),
        );
        let mut c = call_in("ext-nj2", "L1", "US-NJ");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c);

        let employer = json!({"kind": "employerProhibitsContact", "source": "call"});
        self.step(
            "restrict",
            json!({"personId": "ext-nj1", "restriction": employer}),
        );
        let mut c = call_in("ext-nj1", "L1", "US-NJ");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "mobilePhone"});
        self.step("check", c);
    }

    /// New York City, EDT in October 2026: a STOP reply and a missing
    /// consent reported, a cap of 2 reached by two reserved calls and freed
    /// by a cancel; Pennsylvania's 08:00:00 reported.
    fn shadows(&mut self) {
        self.at(2026, 10, 13, 15, 0);
        for r in [
            json!({"kind": "electronicConsent", "source": "portal", "loanIds": ["L1"], "channels": ["text"]}),
            json!({"kind": "mediumOptOut", "source": "stopReply", "channels": ["text"]}),
        ] {
            self.step(
                "restrict",
                json!({"personId": "ext-nyc1", "restriction": r}),
            );
        }
        let mut c = call_in("ext-nyc1", "L1", "US-NY-NYC");
        c["channel"] = json!("text");
        self.step("check", c.clone());
        c["channel"] = json!("email");
        c["contact"] = json!({"kind": "email"});
        self.step("check", c);

        let mut c = call_in("ext-nyc2", "L1", "US-NY-NYC");
        c["reserve"] = json!(true);
        let first = self.step("check", c.clone()).id;
        self.now += Duration::minutes(30);
        c["loanIds"] = json!(["L2"]);
        self.step("check", c.clone());
        self.now += Duration::minutes(30);
        c["reserve"] = json!(false);
        c["loanIds"] = json!(["L3"]);
        self.step("check", c.clone());
        self.step(
            "cancel",
            json!({"interactionId": first.unwrap_or_default()}),
        );
        self.step("check", c);

        self.at(2026, 6, 10, 12, 0);
        self.step("check", call_in("ext-pa1", "L1", "US-PA"));
    }
}
