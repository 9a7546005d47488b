//! The random walk of an episode: Checks, reservations and their
//! outcomes, the lender's history, restrictions and their ends, each step
//! chosen by the seeded source and written through [`Gen::emit`].

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::{Borrower, Gen, Profile, date, obj};
use crate::golden::render::time;
use crate::golden::runner::Answer;

/// The steps of this part.
impl Gen<'_> {
    /// A Check of the profile's kind, at now or a little later.
    fn check(&mut self, p: &Profile, b: &Borrower, reserve: bool) -> Map<String, Value> {
        let mut m = Map::new();
        let person = if !b.aliases.is_empty() && self.rng.chance(20) {
            self.rng.pick(&b.aliases).clone()
        } else {
            b.person.clone()
        };
        m.insert("personId".into(), json!(person));
        let channel = *self.rng.pick(p.channels);
        m.insert("channel".into(), json!(channel));
        if self.rng.chance(p.themed) {
            m.insert(
                "theme".into(),
                json!(
                    self.rng
                        .pick(&["opsCollDebt", "opsCollDebt", "opsServicing"])
                ),
            );
        }
        let loans = match self.rng.below(100) {
            0..12 => vec![],
            12..88 => vec![self.rng.pick(&p.loans).clone()],
            _ => p.loans.clone(),
        };
        if !loans.is_empty() {
            m.insert("loanIds".into(), json!(loans));
        }
        if let Some(c) = self.contact(p, channel) {
            m.insert("contact".into(), c);
        }
        if !p.place.juris.is_empty() {
            m.insert("jurisdictions".into(), json!(p.place.juris));
        }
        if !p.place.zones.is_empty() {
            m.insert("timeZones".into(), json!(p.place.zones));
        }
        if self.rng.chance(15) {
            let later = self.minutes(0, 2160);
            m.insert("at".into(), json!(time(self.now + later)));
        }
        if reserve {
            m.insert("reserve".into(), json!(true));
            if self.rng.chance(60) {
                self.requests += 1;
                m.insert("requestId".into(), json!(format!("r{}", self.requests)));
            }
        }
        if !b.inbound.is_empty() && self.rng.chance(12) {
            m.insert(
                "previousInteractionId".into(),
                json!(self.rng.pick(&b.inbound)),
            );
        }
        if self.rng.chance(3) {
            m.insert("requiredByLaw".into(), json!(true));
        }
        if p.consent_requests && channel != "voice" && self.rng.chance(35) {
            m.insert("consentRequest".into(), json!(true));
        }
        if self.rng.chance(4) {
            m.insert("isTransactional".into(), json!(self.rng.chance(50)));
        }
        if self.rng.chance(5) {
            m.insert(
                "subject".into(),
                json!(self.rng.pick(&[
                    "ceaseCommunicationAcknowledgement",
                    "ceaseCommunicationRefuseToPay",
                    "electronicConsentOptOut",
                ])),
            );
        }
        if self.rng.chance(3) {
            m.insert("balance".into(), json!("125.50"));
        }
        m
    }

    /// The contact point of a send on `channel`, sometimes unknown.
    fn contact(&mut self, p: &Profile, channel: &str) -> Option<Value> {
        if self.rng.chance(if channel == "voice" || channel == "text" {
            55
        } else {
            15
        }) {
            return None;
        }
        let kind = match channel {
            "voice" | "text" => *self.rng.pick(p.kinds),
            "email" => "email",
            "mail" => "postalAddress",
            _ => return None,
        };
        let value = match kind {
            "workPhone" => "+1 212 555 0199",
            "email" => "b@example.com",
            "postalAddress" => "1 Main St",
            "homePhone" => "+1 212 555 0123",
            _ => "+1 212 555 0100",
        };
        Some(if self.rng.chance(25) {
            json!({"kind": kind, "value": value})
        } else {
            json!({"kind": kind})
        })
    }

    /// A reserving or plain Check; a reserving one with a request id is
    /// retried now and then, and the retry must come back replayed. A
    /// blocked one is often asked again at its next allowed moment, as a
    /// pipeline would.
    fn do_check(&mut self, p: &Profile, b: &mut Borrower, reserve: bool) {
        let mut fields = self.check(p, b, reserve);
        let a = self.send(b, &fields);
        if fields.contains_key("requestId") && a.ok && self.rng.chance(15) {
            self.now += Duration::seconds(5 + self.rng.below(120) as i64);
            let again = self.emit("check", fields.clone());
            assert!(again.replayed, "a retry within a day is replayed");
        }
        let Some(next) = a.next else { return };
        let at = fields
            .get("at")
            .and_then(|v| v.as_str())
            .map_or(self.now, |t| t.parse().unwrap());
        if next - at > Duration::days(12) || !self.rng.chance(40) {
            return;
        }
        if fields.contains_key("at") {
            fields.insert("at".into(), json!(time(next)));
        } else {
            self.now = next;
        }
        if fields.contains_key("requestId") {
            self.requests += 1;
            fields.insert("requestId".into(), json!(format!("r{}", self.requests)));
        }
        self.send(b, &fields);
    }

    /// Sends one Check and keeps the reservation it made.
    fn send(&mut self, b: &mut Borrower, fields: &Map<String, Value>) -> Answer {
        let a = self.emit("check", fields.clone());
        if let Some(id) = &a.id {
            let at = fields
                .get("at")
                .and_then(|v| v.as_str())
                .map_or(self.now, |t| t.parse().unwrap());
            let channel = fields["channel"].as_str().unwrap_or_default().to_owned();
            b.open.push((id.clone(), at, channel));
        }
        a
    }

    /// What happened to a reservation: its status and statusDetails.
    fn outcome(&mut self, channel: &str) -> (&'static str, Option<&'static str>) {
        // A conversation quiets calls for a week: about one outcome in
        // ten is one, so that the caps are reached too.
        let voice: &[(&str, Option<&str>)] = &[
            ("attempted", Some("voiceRangNoPickup")),
            ("attempted", Some("voiceRangNoPickup")),
            ("attempted", Some("voiceRangNoPickup")),
            ("attempted", Some("voiceRangNoPickup")),
            ("attempted", Some("voiceLeftVoicemailFirstParty")),
            ("attempted", Some("voiceLeftVoicemailFirstParty")),
            ("failed", Some("voiceFailedToInitiate")),
            ("attempted", Some("voiceLineBusyNoRing")),
            ("succeeded", Some("voiceSpokeWithFirstParty")),
            ("succeeded", Some("voiceSpokeWithThirdParty")),
        ];
        let text: &[(&str, Option<&str>)] = &[
            ("succeeded", None),
            ("attempted", None),
            ("failed", Some("textDeviceUnreachable")),
        ];
        let email: &[(&str, Option<&str>)] = &[
            ("attempted", Some("emailSent")),
            ("succeeded", Some("emailDelivered")),
            ("failed", Some("emailBounced")),
            ("failed", Some("emailReportedAsSpam")),
        ];
        *self.rng.pick(match channel {
            "voice" => voice,
            "email" => email,
            "mail" => &[("attempted", Some("letterCreated"))],
            _ => text,
        })
    }

    /// Reports the outcome of an open reservation that has started.
    fn update(&mut self, b: &mut Borrower) {
        let due: Vec<usize> = (0..b.open.len())
            .filter(|i| b.open[*i].1 <= self.now)
            .collect();
        if due.is_empty() {
            return;
        }
        let i = due[self.rng.below(due.len() as u64) as usize];
        let (id, _, channel) = b.open.remove(i);
        let (status, details) = self.outcome(&channel);
        let mut values = json!({"status": status});
        let mut fields = vec!["status", "statusDetails"];
        if let Some(d) = details {
            values["statusDetails"] = json!(d);
        }
        if self.rng.chance(30) {
            values["endedAt"] = json!(time(self.now));
            fields.push("endedAt");
        }
        let mut m = obj(json!({"interactionId": id, "fields": fields, "interaction": values}));
        if self.rng.chance(50) {
            m.insert("personId".into(), json!(b.person));
        }
        self.emit("update", m);
    }

    /// Cancels an open reservation.
    fn cancel(&mut self, b: &mut Borrower) {
        if b.open.is_empty() {
            return;
        }
        let i = self.rng.below(b.open.len() as u64) as usize;
        let (id, _, _) = b.open.remove(i);
        self.emit("cancel", obj(json!({"interactionId": id})));
    }

    /// A record of the lender's history: a call or message made earlier,
    /// the borrower's own message or call, or a send scheduled later.
    fn history(&mut self, p: &Profile, b: &mut Borrower) -> Answer {
        let r = self.rng.below(100);
        let channel = *self.rng.pick(p.channels);
        let mut v = json!({"channel": channel, "loanIds": [self.rng.pick(&p.loans)]});
        if self.rng.chance(60) {
            self.externals += 1;
            v["externalId"] = json!(format!("h{}", self.externals));
        }
        if self.rng.chance(70) {
            v["theme"] = json!("opsCollDebt");
        }
        if let Some(c) = self.contact(p, channel) {
            v["contact"] = c;
        }
        let inbound = r < 25;
        if inbound {
            v["direction"] = json!("inbound");
            v["status"] = json!("succeeded");
            let back = self.minutes(1, 240);
            v["startedAt"] = json!(time(self.now - back));
        } else if r < 35 {
            v["direction"] = json!("outbound");
            v["status"] = json!("scheduled");
            let ahead = self.minutes(60, 4320);
            v["startedAt"] = json!(time(self.now + ahead));
        } else {
            v["direction"] = json!("outbound");
            let (status, details) = self.outcome(channel);
            v["status"] = json!(status);
            if let Some(d) = details {
                v["statusDetails"] = json!(d);
            }
            let back = self.minutes(5, 2880);
            v["startedAt"] = json!(time(self.now - back));
        }
        let a = self.emit(
            "create",
            obj(json!({"personId": b.person, "interaction": v})),
        );
        if let Some(id) = &a.id {
            if inbound {
                b.inbound.push(id.clone());
            }
            b.history.push(id.clone());
        }
        a
    }

    /// Deletes a record of the lender's history.
    fn delete(&mut self, b: &mut Borrower) {
        if b.history.is_empty() {
            return;
        }
        let i = self.rng.below(b.history.len() as u64) as usize;
        let id = b.history.remove(i);
        b.inbound.retain(|x| *x != id);
        self.emit(
            "delete",
            obj(json!({"personId": b.person, "interactionId": id})),
        );
    }

    /// A restriction of `kind` as a borrower would give it.
    fn restriction(&mut self, kind: &str, p: &Profile) -> Value {
        let mut r = json!({"kind": kind, "source": "letter"});
        if self.rng.chance(60) {
            let back = self.minutes(0, 180);
            r["receivedAt"] = json!(time(self.now - back));
        }
        let loan = self.rng.pick(&p.loans).clone();
        match kind {
            "ceaseCommunication" | "attorneyRepresentation" | "doNotInteract"
                if self.rng.chance(50) =>
            {
                r["loanIds"] = json!([loan]);
            }
            "priorConsentToCall" | "electronicConsent" | "electronicNoticeMailed" => {
                r["loanIds"] = json!([loan]);
            }
            _ => {}
        }
        match kind {
            "mediumOptOut" => {
                let channel = *self.rng.pick(&["voice", "text", "email"]);
                r["channels"] = json!([channel]);
                r["source"] = json!(if channel == "voice" {
                    "call"
                } else {
                    "stopReply"
                });
                if channel != "voice" && self.rng.chance(50) {
                    r["contactValues"] = json!([if channel == "email" {
                        "b@example.com"
                    } else {
                        "+1 212 555 0100"
                    }]);
                }
            }
            "priorConsentToCall" => {
                r["source"] = json!("call");
                if self.rng.chance(40) {
                    let ahead = self.minutes(600, 4320);
                    r["endsAt"] = json!(time(self.now + ahead));
                }
            }
            "inconvenientTime" => {
                let (from, until) = *self.rng.pick(&[
                    ("08:00", "10:00"),
                    ("20:00", "09:00"),
                    ("12:00", "13:30"),
                    ("", ""),
                ]);
                if !from.is_empty() {
                    r["from"] = json!(from);
                    r["until"] = json!(until);
                }
                /// Days of designations: every day, groups, single days.
                const DAYS: &[&[&str]] = &[
                    &[],
                    &["weekdays"],
                    &["saturday", "sunday"],
                    &["tuesday"],
                    &["weekends", "friday"],
                ];
                let days = *self.rng.pick(DAYS);
                if !days.is_empty() || from.is_empty() {
                    r["days"] = json!(if days.is_empty() {
                        &["sunday"][..]
                    } else {
                        days
                    });
                }
            }
            "inconvenientPlace" => {
                if self.rng.chance(50) {
                    r["contactKinds"] = json!(["workPhone"]);
                } else {
                    r["contactValues"] = json!(["+1 212 555 0199", "b@example.com"]);
                }
            }
            "attorneyRepresentation" => {
                r["contactValues"] = json!(["+1 212 555 0777"]);
                r["note"] = json!("Attorney J. Doe, 2 Court St");
            }
            "employerProhibitsContact" => {
                r["contactKinds"] = json!(["workPhone"]);
            }
            "doNotInteract" => {
                r["source"] = json!("lender");
                r["reason"] =
                    json!(
                        self.rng
                            .pick(&["bankruptcy", "dispute", "deceased", "military"])
                    );
                if self.rng.chance(50) {
                    let ahead = self.minutes(60, 7200);
                    r["endsAt"] = json!(time(self.now + ahead));
                }
            }
            "electronicConsent" => {
                r["source"] = json!("email");
                r["channels"] = json!(["text", "email"]);
            }
            _ => {}
        }
        r
    }

    /// Records a restriction of `kind` and keeps its id for an end.
    fn restrict(&mut self, p: &Profile, b: &mut Borrower, kind: &str) {
        let r = self.restriction(kind, p);
        let a = self.emit(
            "restrict",
            obj(json!({"personId": b.person, "restriction": r})),
        );
        if let Some(id) = a.id {
            b.restrictions.push(id);
        }
    }

    /// Ends a restriction in force, now or a little before.
    fn end(&mut self, b: &mut Borrower) {
        if b.restrictions.is_empty() {
            return;
        }
        let i = self.rng.below(b.restrictions.len() as u64) as usize;
        let id = b.restrictions.remove(i);
        let mut m = obj(json!({"personId": b.person, "restrictionId": id}));
        if self.rng.chance(40) {
            m.insert("endReason".into(), json!("borrower asked"));
        }
        if self.rng.chance(20) {
            let back = self.minutes(0, 300);
            m.insert("endedAt".into(), json!(time(self.now - back)));
        }
        self.emit("end", m);
    }

    /// Puts the shipped rules in force for `roles` (`None`: every rule).
    fn set_roles(&mut self, roles: Option<&[&str]>) {
        self.emit("rules", obj(json!({"roles": roles})));
    }

    /// Links two more names to the borrower (a second external id, an id
    /// of ours), once the first has a record; Checks then use them too.
    fn link_names(&mut self, p: &Profile, b: &mut Borrower) {
        let ours = self.history(p, b).person.unwrap_or_default();
        let n = self.people;
        let a = self.emit(
            "link",
            obj(json!({"id": format!("BO-G-{n}"), "externalId": format!("p{n}")})),
        );
        if a.ok {
            b.aliases.push(format!("BO-G-{n}"));
        }
        let a = self.emit(
            "link",
            obj(json!({"id": ours, "externalId": format!("q{n}")})),
        );
        if a.ok {
            b.aliases.push(format!("ext-q{n}"));
        }
    }

    /// One borrower's episode: set-up, then a random walk.
    pub(super) fn episode(&mut self, p: &Profile) {
        let mut b = Borrower {
            person: self.new_person(),
            ..Borrower::default()
        };
        let start = if p.place.dates.is_empty() || self.rng.chance(25) {
            date("2020-01-06") + Duration::days(self.rng.below(3200) as i64)
        } else {
            let day: &&str = self.rng.pick(p.place.dates);
            date(day) - Duration::days(4)
        };
        let nine = start.and_hms_opt(9, 0, 0).unwrap();
        self.now = p
            .place
            .tz
            .from_local_datetime(&nine)
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        if p.roles.is_some() {
            self.set_roles(p.roles);
        }
        if p.loans.len() > 1 && self.rng.chance(30) {
            let debt = format!("A{}", self.people);
            self.emit(
                "debt",
                obj(json!({"personId": b.person, "debtId": debt, "loanIds": p.loans})),
            );
        }
        if p.linked {
            self.link_names(p, &mut b);
        }
        for kind in p.prologue {
            self.restrict(p, &mut b, kind);
        }
        for _ in 0..p.steps {
            self.tick(p.place.tz, p.burst);
            let r = self.rng.below(100);
            match r {
                0..40 => self.do_check(p, &mut b, false),
                40..74 => self.do_check(p, &mut b, true),
                74..83 => self.update(&mut b),
                83..85 => self.cancel(&mut b),
                85..92 => {
                    self.history(p, &mut b);
                }
                92..93 => self.delete(&mut b),
                93..96 if !p.restrictions.is_empty() => {
                    let kind = *self.rng.pick(p.restrictions);
                    self.restrict(p, &mut b, kind);
                }
                96..98 => self.end(&mut b),
                98 if self.rng.chance(30) => {
                    self.emit("explain", obj(json!({"personId": b.person})));
                }
                99 if self.rng.chance(30) => {
                    self.emit("reservations", obj(json!({"personId": b.person})));
                }
                _ => self.do_check(p, &mut b, false),
            }
        }
        if p.roles.is_some() {
            self.set_roles(None);
        }
    }
}
