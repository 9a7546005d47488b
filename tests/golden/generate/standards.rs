//! Scripted cases of the lender's templates for state standards that have
//! no number (rules/policy-state-standards.yaml): each is in shadow, so
//! here each is reported beside what decides, and blocks nothing.
//! Borrowers of their own (`ext-std*`); the part runs after the states'.

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

/// The steps of this part.
impl Gen<'_> {
    /// January 2027 (EST UTC-5, CST UTC-6). For a creditor: Iowa's and
    /// North Carolina's call hours at 21:00, Wisconsin's frequency at an
    /// 8th communication in 7 days, Texas's at an 8th call, New York's
    /// hours beside New York City's, which decide; for a debt collector:
    /// Wisconsin's hours beside Regulation F's, which decide.
    pub(super) fn state_standards(&mut self) {
        self.step("rules", json!({"roles": ["creditor"]}));
        self.at(2027, 1, 13, 3, 0);
        self.step("check", call_in("ext-std-ia", "L1", "US-IA"));
        self.at(2027, 1, 13, 2, 0);
        self.step("check", call_in("ext-std-nc", "L1", "US-NC"));
        self.at(2027, 1, 13, 3, 30);
        self.step("check", call_in("ext-std-ny", "L1", "US-NY"));

        for (person, place) in [("ext-std-wi", "US-WI"), ("ext-std-tx", "US-TX")] {
            self.at(2027, 1, 6, 18, 0);
            for _ in 0..7 {
                let r = json!({
                    "channel": "voice", "direction": "outbound", "status": "attempted",
                    "statusDetails": "voiceRangNoPickup", "loanIds": ["L1"],
                    "startedAt": time(self.now),
                });
                self.step("create", json!({"personId": person, "interaction": r}));
                self.now += Duration::hours(20);
            }
            self.at(2027, 1, 12, 18, 0);
            let mut c = call_in(person, "L1", place);
            self.step("check", c.clone());
            c["channel"] = json!("email");
            c["contact"] = json!({"kind": "email"});
            self.step("check", c);
        }

        self.step("rules", json!({"roles": ["debtCollector"]}));
        self.at(2027, 1, 12, 13, 59);
        self.step("check", call_in("ext-std-wi2", "L1", "US-WI"));
        self.step("rules", json!({"roles": null}));
    }
}
