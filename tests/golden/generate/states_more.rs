//! Scripted cases of the states added for issue 17: Florida and South
//! Carolina for a creditor; the collectors' copies of 1692c(a)(1) in
//! Colorado, Illinois, Arkansas, Rhode Island and Maine for a debt
//! collector; and, in shadow, Maryland, Connecticut, Hawaii and Maine's
//! rental-purchase rule. Each rule of theirs that can decide decides a
//! Check here, and each shadow rule is reported. Borrowers of their own
//! (`ext-fl*`, `ext-sc*`, ...), so the part stands alone; it runs last.

use chrono::Duration;
use serde_json::{Value, json};

use super::Gen;
use super::scripted::call;

/// A voice call about `loan` to a mobile phone in `place`.
fn voice_in(person: &str, loan: &str, place: &str) -> Value {
    let mut c = call(person, loan);
    c["jurisdictions"] = json!([place]);
    c
}

/// The steps of this part.
impl Gen<'_> {
    /// Florida, South Carolina and the shadow rules for a creditor, then
    /// the collectors' copies for a debt collector; every rule binds again
    /// at the end.
    pub(super) fn states_more(&mut self) {
        self.step("rules", json!({"roles": ["creditor"]}));
        self.florida();
        self.south_carolina();
        self.shadowed_states();
        self.step("rules", json!({"roles": ["debtCollector"]}));
        self.collector_copies();
        self.step("rules", json!({"roles": null}));
    }

    /// Florida, EDT in June 2026, 559.72(17): 08:00:00 and 08:00:01 in
    /// Miami, a Los Angeles area code at 10:30 EDT, and an e-mail at
    /// 21:00.
    fn florida(&mut self) {
        self.at(2026, 6, 15, 12, 0);
        let mut c = voice_in("ext-fl1", "L1", "US-FL");
        c["timeZones"] = json!(["America/New_York"]);
        self.step("check", c.clone());
        self.now += Duration::seconds(1);
        self.step("check", c.clone());

        self.at(2026, 6, 15, 14, 30);
        c["contact"] = json!({"kind": "mobilePhone", "value": "+1 213 555 0100"});
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "mobilePhone", "value": "+1 305 555 0100"});
        self.step("check", c.clone());

        self.at(2026, 6, 16, 1, 0);
        c["channel"] = json!("email");
        c["contact"] = json!({"kind": "email"});
        self.step("check", c);
    }

    /// South Carolina, EDT in June 2026, 37-5-108(5)(b): 08:00:00, then a
    /// designated lunch hour, work as a designated place, an attorney and
    /// an employer's request, each for a borrower of its own.
    fn south_carolina(&mut self) {
        self.at(2026, 6, 15, 12, 0);
        self.step("check", voice_in("ext-sc1", "L1", "US-SC"));

        self.at(2026, 6, 15, 14, 0);
        let lunch = json!({"kind": "inconvenientTime", "source": "call", "from": "12:00", "until": "13:30"});
        self.step(
            "restrict",
            json!({"personId": "ext-sc2", "restriction": lunch}),
        );
        let work =
            json!({"kind": "inconvenientPlace", "source": "letter", "contactKinds": ["workPhone"]});
        self.step(
            "restrict",
            json!({"personId": "ext-sc3", "restriction": work}),
        );
        let attorney = json!({"kind": "attorneyRepresentation", "source": "letter", "loanIds": ["L1"], "contactValues": ["+1 803 555 0700"]});
        self.step(
            "restrict",
            json!({"personId": "ext-sc4", "restriction": attorney}),
        );
        let employer = json!({"kind": "employerProhibitsContact", "source": "letter"});
        self.step(
            "restrict",
            json!({"personId": "ext-sc5", "restriction": employer}),
        );

        self.at(2026, 6, 16, 16, 15);
        self.step("check", voice_in("ext-sc2", "L1", "US-SC"));
        let mut c = voice_in("ext-sc3", "L1", "US-SC");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "homePhone"});
        self.step("check", c);
        let mut c = voice_in("ext-sc4", "L1", "US-SC");
        self.step("check", c.clone());
        c["contact"] = json!({"kind": "mobilePhone", "value": "+1 803 555 0700"});
        self.step("check", c);
        let mut c = voice_in("ext-sc5", "L1", "US-SC");
        c["contact"] = json!({"kind": "workPhone"});
        self.step("check", c);
    }

    /// In shadow, June 2026: Maryland's and Connecticut's 08:00:00 EDT,
    /// Hawaii's 21:00 HST to the home phone, and Maine's rental-purchase
    /// designated time.
    fn shadowed_states(&mut self) {
        self.at(2026, 6, 17, 12, 0);
        self.step("check", voice_in("ext-md1", "L1", "US-MD"));
        self.step("check", voice_in("ext-ct1", "L1", "US-CT"));

        self.at(2026, 6, 18, 7, 0);
        let mut c = voice_in("ext-hi1", "L1", "US-HI");
        c["contact"] = json!({"kind": "homePhone"});
        self.step("check", c);

        self.at(2026, 6, 17, 14, 0);
        let morning = json!({"kind": "inconvenientTime", "source": "call", "from": "08:00", "until": "12:00"});
        self.step(
            "restrict",
            json!({"personId": "ext-me2", "restriction": morning}),
        );
        self.at(2026, 6, 18, 14, 0);
        self.step("check", voice_in("ext-me2", "L1", "US-ME"));
    }

    /// A debt collector, June 2026, at 08:00:00 local: Colorado (MDT),
    /// Illinois and Arkansas (CDT), Rhode Island and Maine (EDT), each
    /// "after 8 a.m.", and a second later in Colorado.
    fn collector_copies(&mut self) {
        self.at(2026, 6, 22, 14, 0);
        let c = voice_in("ext-co1", "L1", "US-CO");
        self.step("check", c.clone());
        self.now += Duration::seconds(1);
        self.step("check", c);

        self.at(2026, 6, 22, 13, 0);
        self.step("check", voice_in("ext-il1", "L1", "US-IL"));
        self.step("check", voice_in("ext-ar1", "L1", "US-AR"));

        self.at(2026, 6, 22, 12, 0);
        self.step("check", voice_in("ext-ri1", "L1", "US-RI"));
        self.step("check", voice_in("ext-me1", "L1", "US-ME"));
    }
}
