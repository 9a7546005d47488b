//! Scripted cases of the rule-language additions of issue 17: Louisiana's
//! caps counted from a request sent by certified mail (La. R.S.
//! 9:3562(3)), Michigan's hours lifted only by a written agreement (MCL
//! 445.252(n)) with its designated time and place, and Washington's
//! small-loan licensees (RCW 31.45.082(3)). Each of their rules decides a
//! Check here, each with a control that goes. Borrowers of their own
//! (`ext-lang-*`); the part runs after `states`.

use chrono::Duration;
use serde_json::{Value, json};

use super::Gen;
use crate::golden::render::time;

/// A send on `channel` about `loan` in `place`.
fn send(person: &str, channel: &str, loan: &str, place: &str) -> Value {
    json!({
        "personId": person, "channel": channel, "loanIds": [loan],
        "jurisdictions": [place],
    })
}

/// An outbound record on `channel` about `loan` that started now.
fn sent(g: &Gen<'_>, channel: &str, loan: &str) -> Value {
    let mut r = json!({
        "channel": channel, "direction": "outbound", "status": "attempted",
        "loanIds": [loan], "theme": "opsCollDebt", "startedAt": time(g.now),
    });
    if channel == "voice" {
        r["statusDetails"] = json!("voiceRangNoPickup");
    }
    r
}

/// The steps of this part.
impl Gen<'_> {
    /// Louisiana and Michigan for a creditor, Washington for a small-loan
    /// licensee; then every rule binds again.
    pub(super) fn lang(&mut self) {
        self.at(2026, 6, 1, 12, 0);
        self.step("rules", json!({"roles": ["creditor"]}));
        self.louisiana();
        self.michigan();
        self.step("rules", json!({"roles": ["smallLoanLicensee"]}));
        self.washington_small_loans();
        self.step("rules", json!({"roles": null}));
    }

    /// Louisiana, CDT in June 2026: a request by certified mail, then a
    /// second mail notice in June and a fifth personal contact; the same
    /// with a request by ordinary mail goes.
    fn louisiana(&mut self) {
        for (person, mail) in [("ext-lang-la1", "certified"), ("ext-lang-la2", "other")] {
            self.at(2026, 6, 10, 15, 0);
            let cease = json!({"kind": "ceaseCommunication", "source": "letter", "mailType": mail, "loanIds": ["L1"]});
            self.step(
                "restrict",
                json!({"personId": person, "restriction": cease}),
            );
            self.now += Duration::hours(1);
            let r = sent(self, "mail", "L1");
            self.step("create", json!({"personId": person, "interaction": r}));
            for channel in ["voice", "text", "email", "voice"] {
                self.now += Duration::hours(2);
                let r = sent(self, channel, "L1");
                self.step("create", json!({"personId": person, "interaction": r}));
            }
            self.at(2026, 6, 20, 15, 0);
            self.step("check", send(person, "mail", "L1", "US-LA"));
            self.step("check", send(person, "voice", "L1", "US-LA"));
            self.step("check", send(person, "voice", "L2", "US-LA"));
        }
    }

    /// Michigan, EDT in June 2026 (Detroit): 21:00:00 blocked, and lifted
    /// by a written agreement to 21:00-22:30 but not by one on a call; a
    /// designated lunch hour and place bar calls, not texts.
    fn michigan(&mut self) {
        let detroit = |person: &str, channel: &str| {
            let mut c = send(person, channel, "L1", "US-MI");
            c["timeZones"] = json!(["America/Detroit"]);
            c
        };
        self.at(2026, 6, 2, 16, 0);
        let by_call =
            json!({"kind": "consentToTime", "source": "call", "from": "21:00", "until": "22:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-lang-mi1", "restriction": by_call}),
        );
        let written = json!({"kind": "consentToTime", "source": "letter", "written": true, "from": "21:00", "until": "22:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-lang-mi2", "restriction": written}),
        );
        self.at(2026, 6, 3, 1, 0);
        self.step("check", detroit("ext-lang-mi1", "voice"));
        self.step("check", detroit("ext-lang-mi2", "voice"));
        self.now += Duration::minutes(30);
        self.step("check", detroit("ext-lang-mi1", "text"));
        self.step("check", detroit("ext-lang-mi2", "text"));
        self.at(2026, 6, 3, 2, 30);
        self.step("check", detroit("ext-lang-mi2", "voice"));

        self.at(2026, 6, 4, 14, 0);
        let lunch = json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:00"});
        self.step(
            "restrict",
            json!({"personId": "ext-lang-mi3", "restriction": lunch}),
        );
        let work =
            json!({"kind": "inconvenientPlace", "source": "call", "contactKinds": ["workPhone"]});
        self.step(
            "restrict",
            json!({"personId": "ext-lang-mi4", "restriction": work}),
        );
        self.at(2026, 6, 5, 16, 30);
        self.step("check", detroit("ext-lang-mi3", "voice"));
        self.step("check", detroit("ext-lang-mi3", "text"));
        let mut c = detroit("ext-lang-mi4", "voice");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "mobilePhone"});
        self.step("check", c);
    }

    /// Washington, PDT in June 2026, for a small-loan licensee: a 4th
    /// collection communication in a week (a servicing one goes), a 2nd
    /// at work (home goes), work after the employer's prohibition, the
    /// residence at 07:30:00 and 07:30:01.
    fn washington_small_loans(&mut self) {
        let wa = |person: &str, channel: &str, kind: &str| {
            let mut c = send(person, channel, "L1", "US-WA");
            c["theme"] = json!("opsCollDebt");
            c["contact"] = json!({"kind": kind});
            c
        };
        self.at(2026, 6, 8, 17, 0);
        for channel in ["email", "mail", "text"] {
            let r = sent(self, channel, "L1");
            self.step(
                "create",
                json!({"personId": "ext-lang-wa1", "interaction": r}),
            );
            self.now += Duration::hours(20);
        }
        self.step("check", wa("ext-lang-wa1", "email", "email"));
        // A servicing message is not for the purposes of collection.
        let mut c = wa("ext-lang-wa1", "email", "email");
        c["theme"] = json!("opsServicing");
        self.step("check", c);

        self.at(2026, 6, 15, 17, 0);
        let mut r = sent(self, "voice", "L1");
        r["contact"] = json!({"kind": "workPhone"});
        self.step(
            "create",
            json!({"personId": "ext-lang-wa2", "interaction": r}),
        );
        self.now += Duration::days(1);
        self.step("check", wa("ext-lang-wa2", "voice", "workPhone"));
        self.step("check", wa("ext-lang-wa2", "voice", "homePhone"));

        let employer = json!({"kind": "employerProhibitsContact", "source": "call"});
        self.step(
            "restrict",
            json!({"personId": "ext-lang-wa3", "restriction": employer}),
        );
        self.step("check", wa("ext-lang-wa3", "voice", "workPhone"));

        self.at(2026, 6, 17, 14, 30);
        self.step("check", wa("ext-lang-wa4", "voice", "homePhone"));
        self.now += Duration::seconds(1);
        self.step("check", wa("ext-lang-wa4", "voice", "homePhone"));
    }
}
