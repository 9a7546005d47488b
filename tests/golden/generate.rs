//! The seeded generator of `steps.jsonl`, run once (`GOLDEN_GENERATE=1`)
//! and its output committed: the test replays the committed steps, never
//! this code, so that no later change can drift the corpus.
//!
//! It runs each step as it writes it and reads the answer, so that later
//! steps can name the reservations, interactions and restrictions that
//! earlier ones made. The corpus is a series of episodes, one borrower
//! each: a place (jurisdictions, candidate zones, often a daylight-saving
//! change), the lender's roles, the channels and contact points used, the
//! restrictions the borrower may give; then a random walk of Checks,
//! reservations and their outcomes, history, restrictions and their ends.
//! A few scripted parts add what a walk rarely reaches: links of names,
//! daylight-saving changes, retries, conversations, companies, holidays
//! and refused requests.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::{America, Asia, Australia, Pacific, Tz};
use serde_json::{Map, Value};

/// Scripted cases of daylight-saving changes.
mod daylight;
/// Scripted cases of the rule-language additions (Louisiana, Michigan,
/// Washington's small-loan licensees).
mod lang;
/// Scripted cases of particular places and restrictions.
mod places;
/// Refused requests.
mod refusals;
/// Scripted cases of names, retries, conversations and companies.
mod scripted;
/// The lender's templates for state standards that have no number, in
/// shadow.
mod standards;
/// Scripted cases of the states added later (New York City, West
/// Virginia, California, Pennsylvania).
mod states;
/// Scripted cases of the states added for issue 17 (Florida, South
/// Carolina, the collectors' copies of 1692c(a)(1), and the shadow rules
/// of Maryland, Connecticut, Hawaii and Maine).
mod states_more;
/// The random walk of an episode.
mod walk;

use crate::golden::render::time;
use crate::golden::runner::{Answer, Runner};

/// The seed: any fixed number; changing it regenerates a new corpus.
const SEED: u64 = 0x5EED_2026_0F8A_6031;

/// A tiny xorshift64 generator: enough for test data, and the same on
/// every platform.
#[derive(Debug)]
struct Rng(u64);

/// Numbers, chances and picks, all from the one stream.
impl Rng {
    /// The next number of the stream.
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `pct` times in a hundred.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// One of `items` (never empty).
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Where a borrower is: the Check's jurisdictions and time zones, the zone
/// its local times are worked out in, and local dates worth starting on
/// (daylight-saving changes); none: a random date.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The Check's `jurisdictions`.
    juris: &'static [&'static str],
    /// The Check's `timeZones`.
    zones: &'static [&'static str],
    /// The zone of the borrower's clock, for the generator's local times.
    tz: Tz,
    /// Local dates an episode may start near.
    dates: &'static [&'static str],
}

/// Every place an episode may be in.
#[rustfmt::skip]
const PLACES: &[Place] = &[
    Place { juris: &["US-NY"], zones: &[], tz: America::New_York, dates: &["2020-11-01", "2021-03-14", "2020-03-08"] },
    Place { juris: &["US-NY"], zones: &["America/New_York"], tz: America::New_York, dates: &["2020-11-01", "2021-03-14"] },
    Place { juris: &["US-NY-NYC"], zones: &[], tz: America::New_York, dates: &[] },
    Place { juris: &["US-NY"], zones: &["Australia/Lord_Howe"], tz: Australia::Lord_Howe, dates: &["2021-04-04", "2021-10-03"] },
    Place { juris: &[], zones: &["Australia/Lord_Howe"], tz: Australia::Lord_Howe, dates: &["2021-04-04", "2021-10-03"] },
    Place { juris: &["US-CA"], zones: &["Pacific/Chatham"], tz: Pacific::Chatham, dates: &["2021-04-04", "2021-09-26"] },
    Place { juris: &[], zones: &["Pacific/Chatham"], tz: Pacific::Chatham, dates: &["2021-04-04", "2021-09-26"] },
    Place { juris: &["US-TX"], zones: &["Asia/Kathmandu"], tz: Asia::Kathmandu, dates: &[] },
    Place { juris: &[], zones: &["Asia/Kathmandu"], tz: Asia::Kathmandu, dates: &[] },
    Place { juris: &[], zones: &["America/St_Johns"], tz: America::St_Johns, dates: &["2021-03-14", "2021-11-07"] },
    Place { juris: &["US"], zones: &["America/Santiago"], tz: America::Santiago, dates: &["2021-09-05", "2022-04-03"] },
    Place { juris: &["US-AZ"], zones: &[], tz: America::Phoenix, dates: &["2021-03-14", "2021-11-07"] },
    Place { juris: &["US-IN"], zones: &[], tz: America::Indiana::Indianapolis, dates: &["2020-11-01"] },
    Place { juris: &["US-AK"], zones: &[], tz: America::Anchorage, dates: &[] },
    Place { juris: &["US-HI"], zones: &[], tz: Pacific::Honolulu, dates: &[] },
    Place { juris: &["US-FL"], zones: &[], tz: America::Chicago, dates: &["2021-03-14"] },
    Place { juris: &["US-NY"], zones: &["America/Los_Angeles"], tz: America::Los_Angeles, dates: &[] },
    Place { juris: &["US"], zones: &[], tz: America::Chicago, dates: &[] },
    Place { juris: &["US-TX"], zones: &[], tz: America::Chicago, dates: &["2020-11-01"] },
    Place { juris: &["US-CA"], zones: &["America/Los_Angeles"], tz: America::Los_Angeles, dates: &[] },
];

/// Massachusetts (Eastern time), with its daylight-saving dates.
#[rustfmt::skip]
const MA: Place = Place { juris: &["US-MA"], zones: &[], tz: America::New_York, dates: &["2020-11-01", "2021-03-14"] };
/// The District of Columbia (Eastern time), likewise.
#[rustfmt::skip]
const DC: Place = Place { juris: &["US-DC"], zones: &[], tz: America::New_York, dates: &["2020-11-01", "2021-03-14"] };
/// Washington (Pacific time), likewise.
#[rustfmt::skip]
const WA: Place = Place { juris: &["US-WA"], zones: &[], tz: America::Los_Angeles, dates: &["2020-11-01", "2021-03-14"] };

/// What an episode's borrower is like.
#[derive(Debug, Clone)]
struct Profile {
    /// Where the borrower is.
    place: Place,
    /// The lender's roles while the episode runs (`None`: every rule).
    roles: Option<&'static [&'static str]>,
    /// The channels of Checks and records, a channel listed twice being
    /// chosen twice as often.
    channels: &'static [&'static str],
    /// Contact kinds of calls and texts.
    kinds: &'static [&'static str],
    /// The borrower's loans.
    loans: Vec<String>,
    /// Restriction kinds the walk may add.
    restrictions: &'static [&'static str],
    /// Restriction kinds given before the walk starts.
    prologue: &'static [&'static str],
    /// Whether electronic Checks ask for consent (D.C.).
    consent_requests: bool,
    /// How often in a hundred a Check names its theme (the
    /// Massachusetts caps count collection only).
    themed: u64,
    /// Sends close together in business hours (to reach the caps), or
    /// spread over any hour.
    burst: bool,
    /// Whether the borrower is also named by a second external id and an
    /// id of ours, linked before the walk.
    linked: bool,
    /// How many steps the walk takes.
    steps: usize,
}

/// The phone contact kinds the state rules tell apart.
const PHONES: &[&str] = &[
    "mobilePhone",
    "homePhone",
    "workPhone",
    "otherPersonalPhone",
];
/// The restriction kinds that block sends, and the prior consent to
/// call, which lifts the call caps.
const BLOCKING: &[&str] = &[
    "ceaseCommunication",
    "mediumOptOut",
    "priorConsentToCall",
    "inconvenientTime",
    "inconvenientPlace",
    "attorneyRepresentation",
    "employerProhibitsContact",
    "doNotInteract",
];

/// One borrower's state in an episode.
#[derive(Debug, Default)]
struct Borrower {
    /// The name the borrower was first given (`ext-pN`).
    person: String,
    /// Other names of the same borrower, used now and then.
    aliases: Vec<String>,
    /// Open reservations and the moment each was made for.
    open: Vec<(String, DateTime<Utc>, String)>,
    /// Records the lender supplied (deletable).
    history: Vec<String>,
    /// The borrower's own messages and calls (replies cite them).
    inbound: Vec<String>,
    /// Restrictions added and not ended.
    restrictions: Vec<String>,
}

/// The generator: the seeded random source, the clock of the steps, the
/// runner that answers them, and the lines written.
struct Gen<'a> {
    /// The seeded random source.
    rng: Rng,
    /// The guard the steps run on.
    runner: &'a Runner,
    /// The steps written so far, one a line.
    out: String,
    /// The `now` of the next step.
    now: DateTime<Utc>,
    /// Borrowers, request ids and external record ids made so far, for
    /// the next new name.
    people: u32,
    /// See `people`.
    requests: u32,
    /// See `people`.
    externals: u32,
}

/// `2020-11-01` as a date.
fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Fields from a `json!` object.
fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Writing steps, and the clock they carry.
impl Gen<'_> {
    /// Writes one step, runs it, and returns its answer.
    fn emit(&mut self, op: &str, fields: Map<String, Value>) -> Answer {
        let mut line = format!("{{\"op\":\"{op}\",\"now\":\"{}\"", time(self.now));
        for (k, v) in fields {
            line.push_str(&format!(",{}:{}", Value::String(k), v));
        }
        line.push('}');
        let answer = self.runner.step(&line);
        self.out.push_str(&line);
        self.out.push('\n');
        answer
    }

    /// A random number of minutes in `from..=to`.
    fn minutes(&mut self, from: i64, to: i64) -> Duration {
        Duration::minutes(from + self.rng.below((to - from + 1) as u64) as i64)
    }

    /// The first moment at or after now whose local wall time in `tz` is
    /// `h:m:s`; in a fold the earlier or the later one at random; a wall
    /// time in a gap becomes the same time an hour later.
    fn next_local(&mut self, tz: Tz, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        let mut day = self.now.with_timezone(&tz).date_naive();
        let late = self.rng.chance(50);
        loop {
            let naive = day.and_hms_opt(h, m, s).unwrap();
            let local = match tz.from_local_datetime(&naive) {
                LocalResult::Single(t) => Some(t),
                LocalResult::Ambiguous(a, b) => Some(if late { b } else { a }),
                LocalResult::None => tz
                    .from_local_datetime(&(naive + Duration::hours(1)))
                    .earliest(),
            };
            if let Some(t) = local.map(|t| t.with_timezone(&Utc))
                && t >= self.now
            {
                return t;
            }
            day = day.succ_opt().unwrap();
        }
    }

    /// Moves the clock on: mostly minutes or hours, sometimes days, and
    /// now and then to a local time on an edge (the hours rules' bounds,
    /// midnight, the small hours of a daylight-saving change).
    fn tick(&mut self, tz: Tz, burst: bool) {
        /// Local wall times worth landing on.
        const EDGES: &[(u32, u32, u32)] = &[
            (7, 30, 0),
            (7, 59, 59),
            (8, 0, 0),
            (8, 0, 1),
            (20, 59, 59),
            (21, 0, 0),
            (1, 30, 0),
            (2, 30, 0),
            (0, 0, 0),
            (23, 59, 59),
            (10, 0, 0),
            (12, 30, 0),
        ];
        if burst && self.rng.chance(90) {
            let hour = self.now.with_timezone(&tz).hour();
            let (h, m) = (9 + self.rng.below(8) as u32, self.rng.below(60) as u32);
            let step = self.minutes(10, 150);
            self.now = if (9..17).contains(&hour) {
                self.now + step
            } else {
                self.next_local(tz, h, m, 0)
            };
            return;
        }
        let step = match self.rng.below(100) {
            0..60 => self.minutes(1, 90),
            60..85 => self.minutes(120, 600),
            85..90 => self.minutes(1440, 2880),
            _ => {
                let (h, m, s) = *self.rng.pick(EDGES);
                self.now = self.next_local(tz, h, m, s);
                Duration::zero()
            }
        };
        self.now += step;
    }

    /// A new borrower, named by an external id.
    fn new_person(&mut self) -> String {
        self.people += 1;
        format!("ext-p{}", self.people)
    }
}

/// A place with dates of its own (the federal holidays of the shipped
/// policy, which is in shadow mode).
#[rustfmt::skip]
const HOLIDAYS: &[Place] = &[
    Place { juris: &["US-NY"], zones: &[], tz: America::New_York, dates: &["2026-11-26", "2027-12-25", "2028-07-04"] },
    Place { juris: &["US-CA"], zones: &[], tz: America::Los_Angeles, dates: &["2026-12-25", "2027-11-25"] },
];

/// Writes the corpus: every steps line, in order.
pub fn generate(runner: &Runner) -> String {
    let mut g = Gen {
        rng: Rng(SEED),
        runner,
        out: String::new(),
        now: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        people: 0,
        requests: 0,
        externals: 0,
    };
    let calls = |place: Place, steps: usize| Profile {
        place,
        roles: None,
        channels: &["voice"],
        kinds: PHONES,
        loans: vec!["L1".into(), "L2".into()],
        restrictions: &[],
        prologue: &[],
        consent_requests: false,
        themed: 25,
        burst: false,
        linked: false,
        steps,
    };
    let mixed = &["voice", "voice", "text", "email", "mail"];
    // Calls in every place, spread out and close together.
    for (i, place) in PLACES.iter().enumerate() {
        // Where no jurisdiction is named, or all of the US, every rule
        // binds and each answer lists many violations: shorter walks there.
        let everywhere = matches!(place.juris, [] | ["US"]);
        let steps = if everywhere { 20 } else { 48 };
        g.episode(&Profile {
            burst: i % 2 == 1,
            ..calls(*place, steps)
        });
    }
    // Each restriction alone, then several together.
    let near = [PLACES[0], PLACES[18], PLACES[19], PLACES[15]];
    for (i, kind) in BLOCKING.iter().enumerate() {
        let one = std::slice::from_ref(kind);
        g.episode(&Profile {
            channels: mixed,
            prologue: one,
            restrictions: one,
            burst: true,
            ..calls(near[i % 4], 35)
        });
    }
    for place in PLACES.iter().step_by(4) {
        g.episode(&Profile {
            channels: mixed,
            restrictions: BLOCKING,
            linked: true,
            ..calls(*place, 60)
        });
    }
    // Caps: Regulation F's seven calls, then each state's.
    for linked in [false, true] {
        g.episode(&Profile {
            burst: true,
            linked,
            ..calls(PLACES[0], 60)
        });
    }
    let roles: [Option<&'static [&'static str]>; 4] = [
        None,
        Some(&["creditor"]),
        Some(&["debtCollector"]),
        Some(&["creditor"]),
    ];
    for (i, roles) in roles.into_iter().enumerate() {
        let kinds: &[&str] = if i == 3 {
            &["workPhone", "otherPersonalPhone"]
        } else {
            PHONES
        };
        g.episode(&Profile {
            roles,
            kinds,
            channels: &["voice", "text"],
            burst: i > 0,
            themed: 90,
            ..calls(MA, 50)
        });
    }
    let licensee: Option<&'static [&'static str]> = Some(&["licensee"]);
    for (roles, burst, kinds) in [(None, false, PHONES), (licensee, true, PHONES)] {
        g.episode(&Profile {
            roles,
            kinds,
            channels: &["voice", "text", "email"],
            burst,
            ..calls(WA, 50)
        });
    }
    // Calls and texts to a mobile number only: the third of a day.
    g.episode(&Profile {
        roles: licensee,
        kinds: &["mobilePhone"],
        channels: &["voice", "text"],
        burst: true,
        ..calls(WA, 40)
    });
    // D.C.: calls, consent to electronic messages, opt-outs.
    g.episode(&Profile {
        burst: true,
        ..calls(DC, 50)
    });
    g.episode(&Profile {
        channels: &["text", "email", "text"],
        loans: vec!["L1".into()],
        prologue: &["electronicNoticeMailed", "electronicConsent"],
        burst: true,
        ..calls(DC, 50)
    });
    g.episode(&Profile {
        channels: &["voice", "text", "email"],
        restrictions: &[
            "electronicNoticeMailed",
            "electronicConsent",
            "electronicConsent",
            "mediumOptOut",
        ],
        consent_requests: true,
        ..calls(DC, 60)
    });
    g.episode(&Profile {
        channels: &["voice", "text", "email"],
        prologue: &["mediumOptOut"],
        ..calls(DC, 30)
    });
    for place in HOLIDAYS {
        g.episode(&Profile {
            channels: &["voice", "email"],
            burst: true,
            themed: 80,
            ..calls(*place, 30)
        });
    }
    g.daylight_saving();
    g.links();
    g.retries();
    g.convos();
    g.companies();
    g.designated_times();
    g.district();
    g.do_not_interact();
    g.washington_mobile();
    g.refusals();
    g.states();
    g.states_more();
    g.state_standards();
    g.lang();
    g.out
}
