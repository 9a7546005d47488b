//! Jurisdiction rules: YAML files under `rules/`, parsed strictly into
//! [`raw`] structures, then checked and compiled into a [`RuleSet`].
//!
//! Parsing and checking are separate, as in cedar: the raw form mirrors the
//! file, and only a `RuleSet` that passed every check reaches the engine.
//! Every problem is reported as `file:line:column: message`. Vocabulary
//! errors come with the YAML parser's own position; checks made after
//! parsing (duplicate ids, windows longer than the index horizon, ...) are
//! placed on the line of the rule's key that is wrong.

pub mod counting;
pub mod listing;
pub mod raw;

use std::fmt;
use std::path::Path;

use chrono::NaiveTime;
use rust_decimal::Decimal;

use crate::index::Entry;
use crate::jurisdiction::Jurisdiction;
use crate::model::{Channel, ContactKind, Direction, Theme};
use crate::restrictions::{MailType, Restriction, RestrictionKind};
pub use counting::{Counting, is_conversation, reached, was_sent};
pub use raw::{CapWindow, Event, Mode, Per, Replies, Role};
use raw::{RawFile, RawFilter, RawRule, ThemeName};

/// Largest rule file read, in bytes; a bound against runaway input.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most rule files in one directory.
pub const MAX_FILES: usize = 1_000;
/// Most rules in one set.
pub const MAX_RULES: usize = 10_000;
/// Most dates one blackout rule may list.
pub const MAX_BLACKOUT_DATES: usize = 5_000;
/// Longest rule id.
pub const MAX_ID_CHARS: usize = 100;
/// Highest limit a cap may set.
pub const MAX_LIMIT: u32 = 100_000;

/// One problem in a rule file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file, as named when loaded.
    pub file: String,
    /// 1-based line; 0 when the problem has no line (an unreadable file).
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// What is wrong, in words an officer understands.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in a rules directory. A set with any problem is
/// refused whole: half a rule set is never applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the rules",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// How a rule set is loaded for a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The index horizon in days; a longer window is refused.
    pub horizon_days: u32,
    /// What the lender is. `None`: every rule binds. Each role also holds
    /// the roles it implies ([`Role::implied`]: a `smallLoanLicensee` is a
    /// `creditor`).
    pub roles: Option<Vec<Role>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            horizon_days: crate::index::DEFAULT_HORIZON_DAYS,
            roles: None,
        }
    }
}

/// Which communications a rule covers, as bit sets for a quick test.
/// `None` everywhere means "any".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    channels: Option<u16>,
    directions: Option<u8>,
    themes: Option<u32>,
    contact_kinds: Option<u8>,
    /// `Some(false)`: only non-transactional; `Some(true)`: only
    /// transactional. An unknown value is covered either way.
    pub transactional: Option<bool>,
    /// Whether answers to the borrower are covered.
    pub replies: Option<Replies>,
    /// Covers only debts of at least this balance; an unknown balance is
    /// covered.
    pub minimum_balance: Option<Decimal>,
}

/// The bit of a vocabulary value at place `index` in a set of at most 32.
fn bit(index: usize) -> u32 {
    if index < 32 { 1 << index } else { 0 }
}

fn theme_mask(names: &[ThemeName]) -> u32 {
    let mut mask = 0;
    for n in names {
        for t in Theme::ALL {
            let hit = match n {
                ThemeName::Theme(x) => x == t,
                ThemeName::Collection => t.is_collection(),
                ThemeName::Servicing => t.is_servicing(),
                ThemeName::Inbound => t.is_inbound(),
            };
            if hit {
                mask |= bit(t.index());
            }
        }
    }
    mask
}

fn contact_bit(k: ContactKind) -> u8 {
    match k {
        ContactKind::Unknown => 0,
        known => 1 << (known as u8),
    }
}

impl Filter {
    fn channel_ok(&self, c: Channel) -> bool {
        self.channels
            .is_none_or(|m| m & (bit(c.index()) as u16) != 0)
    }
    fn direction_ok(&self, d: Direction) -> bool {
        self.directions
            .is_none_or(|m| m & (bit(d.index()) as u8) != 0)
    }
    fn theme_ok(&self, t: Option<Theme>) -> bool {
        match (self.themes, t) {
            (None, _) | (_, None) => true,
            (Some(m), Some(t)) => m & bit(t.index()) != 0,
        }
    }
    fn contact_ok(&self, k: ContactKind) -> bool {
        k == ContactKind::Unknown || self.contact_kinds.is_none_or(|m| m & contact_bit(k) != 0)
    }
    fn transactional_ok(&self, v: Option<bool>) -> bool {
        match (self.transactional, v) {
            (Some(want), Some(v)) => want == v,
            _ => true,
        }
    }
    fn replies_ok(&self, answers_borrower: bool) -> bool {
        !(answers_borrower && self.replies == Some(Replies::Exclude))
    }

    /// True if the filter covers a communication with these facts. Unknown
    /// facts (no theme, no contact kind, unknown transactional-ness) are
    /// covered: an unknown fact never makes the guard more permissive.
    #[allow(clippy::too_many_arguments, reason = "one argument per filtered fact")]
    pub fn covers(
        &self,
        channel: Channel,
        direction: Direction,
        theme: Option<Theme>,
        contact: ContactKind,
        transactional: Option<bool>,
        answers_borrower: bool,
    ) -> bool {
        self.channel_ok(channel)
            && self.direction_ok(direction)
            && self.theme_ok(theme)
            && self.contact_ok(contact)
            && self.transactional_ok(transactional)
            && self.replies_ok(answers_borrower)
    }

    /// True if the filter covers a history entry; `answers_borrower` is
    /// whether the entry answers the borrower, read from the live history.
    pub fn covers_entry(&self, e: &Entry, answers_borrower: bool) -> bool {
        self.covers(
            e.channel,
            e.direction,
            e.theme,
            e.contact,
            e.transactional,
            answers_borrower,
        )
    }

    /// [`Filter::covers_entry`] without reading the entry's direction: for
    /// counts of conversations, which count whoever placed the call.
    pub fn covers_entry_any_direction(&self, e: &Entry, answers_borrower: bool) -> bool {
        self.channel_ok(e.channel)
            && self.theme_ok(e.theme)
            && self.contact_ok(e.contact)
            && self.transactional_ok(e.transactional)
            && self.replies_ok(answers_borrower)
    }

    /// True if the balance condition covers a send with this balance.
    pub fn covers_balance(&self, balance: Option<Decimal>) -> bool {
        match (self.minimum_balance, balance) {
            (Some(min), Some(b)) => b >= min,
            _ => true,
        }
    }
}

/// Which consents to another time lift a rule's permitted hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlessConsent {
    /// Only a consent recorded as given in writing lifts them.
    pub written: bool,
}

impl UnlessConsent {
    /// True if this consent lifts the hours (at the times it names): a
    /// `consentToTime`, written when the rule asks for writing. A consent
    /// not known to be written never lifts a rule that asks for writing.
    pub fn lifted_by(&self, r: &Restriction) -> bool {
        r.kind == RestrictionKind::ConsentToTime && (r.written || !self.written)
    }
}

/// The restriction a [`RuleKind::PeriodCap`] counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// Its kind.
    pub kind: RestrictionKind,
    /// Only restrictions sent by one of these mail types; `None`: any.
    pub mail_types: Option<Vec<MailType>>,
}

impl Since {
    /// True if `r` starts the count: of the kind, and sent by one of the
    /// mail types when the rule names some. An unknown mail type starts
    /// it (the cap only restricts, so applying it is the strict reading).
    pub fn started_by(&self, r: &Restriction) -> bool {
        r.kind == self.kind
            && match (&self.mail_types, r.mail_type) {
                (Some(types), Some(m)) => types.contains(&m),
                _ => true,
            }
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// At most `limit` counted communications in any `window_days`
    /// consecutive local days.
    FrequencyCap {
        /// The most allowed in a window.
        limit: u32,
        /// The window in local calendar days.
        window_days: u32,
        /// Per borrower or per debt.
        per: Per,
        /// What counts.
        counting: Counting,
        /// Calls inside a prior-consent period are neither counted nor
        /// checked (12 CFR 1006.14(b)(3)(i)).
        exempt_with_prior_consent: bool,
    },
    /// No covered send for `days` local days after an event.
    CoolDown {
        /// Length of the quiet in local days.
        days: u32,
        /// Whether the event's day is day 1.
        event_day_is_day_one: bool,
        /// Per borrower or per debt.
        per: Per,
        /// The event.
        event: Event,
        /// Which interactions can be the event.
        trigger: Filter,
        /// Calls inside a prior-consent period are not checked.
        exempt_with_prior_consent: bool,
    },
    /// Covered sends only between `from` (inclusive) and `until`
    /// (exclusive), local time, in every candidate zone, or at a time the
    /// borrower agreed to when `unless_consent` says a consent lifts them.
    PermittedHours {
        /// First permitted moment.
        from: NaiveTime,
        /// End of the permitted time.
        until: NaiveTime,
        /// Which consents to another time (`consentToTime`) lift the
        /// hours, at the times they name; `None`: none does.
        unless_consent: Option<UnlessConsent>,
    },
    /// At most `limit` counted communications in each local calendar
    /// month, or in all, counted from the receipt of a restriction and
    /// applied while it is in force (La. R.S. 9:3562(3)).
    PeriodCap {
        /// The most allowed in a window.
        limit: u32,
        /// Each calendar month, or every send since the receipt.
        window: CapWindow,
        /// Per borrower or per debt.
        per: Per,
        /// What counts.
        counting: Counting,
        /// The restriction counted from; `None` (a calendar month only):
        /// every month, whatever the borrower said.
        since: Option<Since>,
    },
    /// Covered sends are blocked while a borrower restriction of this kind
    /// is in force, with the exceptions the law gives for the kind.
    Restriction {
        /// The kind honoured.
        kind: RestrictionKind,
        /// Whether Regulation F's exceptions to a cease or an opt-out are
        /// applied (`exceptions: regulationF`, the default); false for a
        /// law that has none (`exceptions: none`).
        regulation_f_exceptions: bool,
    },
    /// No covered send on these local dates.
    BlackoutDates {
        /// Dates, as days from the common era, sorted.
        days: Vec<i32>,
        /// `(month, day)` pairs that recur every year, sorted.
        annually: Vec<(u32, u32)>,
    },
    /// Covered sends need a consent in force (and a notice recorded
    /// first), except `requests_limit` consent requests in any
    /// `requests_window_days` while there is no consent.
    ConsentRequired {
        /// The consent kind.
        consent: RestrictionKind,
        /// The notice kind, if one must come first.
        notice: Option<RestrictionKind>,
        /// Consent requests allowed per window.
        requests_limit: u32,
        /// The requests' window in local days.
        requests_window_days: u32,
        /// Per borrower or per debt: the notice and the consent.
        per: Per,
        /// Per borrower or per debt: the requests counted together
        /// (`requests.per`, the rule's `per` when unset).
        requests_per: Per,
    },
}

impl RuleKind {
    /// The longest history the rule reads, in days.
    pub fn window_days(&self) -> u32 {
        match self {
            RuleKind::FrequencyCap { window_days, .. } => *window_days,
            RuleKind::CoolDown {
                days,
                event_day_is_day_one,
                ..
            } => days.saturating_add(u32::from(!event_day_is_day_one)),
            RuleKind::PermittedHours { .. }
            | RuleKind::Restriction { .. }
            | RuleKind::BlackoutDates { .. } => 0,
            RuleKind::ConsentRequired {
                requests_window_days,
                ..
            } => *requests_window_days,
            // The longest month; a count since a receipt reads from the
            // receipt, however long ago (within the horizon), and has no
            // fixed length.
            RuleKind::PeriodCap {
                window: CapWindow::CalendarMonth,
                ..
            } => 31,
            RuleKind::PeriodCap {
                window: CapWindow::All,
                ..
            } => 0,
        }
    }

    /// True if the rule reads restrictions of this kind: it blocks while
    /// one is in force, or one exempts or permits sends under it.
    pub fn reads_restriction(&self, kind: RestrictionKind) -> bool {
        match self {
            RuleKind::Restriction { kind: k, .. } => *k == kind,
            RuleKind::FrequencyCap {
                exempt_with_prior_consent,
                ..
            }
            | RuleKind::CoolDown {
                exempt_with_prior_consent,
                ..
            } => *exempt_with_prior_consent && kind == RestrictionKind::PriorConsentToCall,
            RuleKind::ConsentRequired {
                consent, notice, ..
            } => *consent == kind || *notice == Some(kind),
            RuleKind::PermittedHours { unless_consent, .. } => {
                unless_consent.is_some() && kind == RestrictionKind::ConsentToTime
            }
            RuleKind::PeriodCap { since, .. } => since.as_ref().is_some_and(|s| s.kind == kind),
            RuleKind::BlackoutDates { .. } => false,
        }
    }

    /// True if the rule reads this very restriction: it reads its kind
    /// ([`RuleKind::reads_restriction`]) and, where the rule asks more of
    /// it, the restriction meets that: a cap's `since` names its mail type
    /// (or it is unknown), hours' `unlessConsent` finds it written when it
    /// must be. ExplainRestrictions lists these rules, so that a cease sent
    /// by ordinary mail is not shown under the caps that follow a
    /// certified one, nor an unwritten consent under hours it cannot lift.
    pub fn reads(&self, r: &Restriction) -> bool {
        match self {
            RuleKind::PeriodCap { since, .. } => since.as_ref().is_some_and(|s| s.started_by(r)),
            RuleKind::PermittedHours { unless_consent, .. } => {
                unless_consent.is_some_and(|u| u.lifted_by(r))
            }
            _ => self.reads_restriction(r.kind),
        }
    }

    /// The kind's name as rule files write it.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::FrequencyCap { .. } | RuleKind::PeriodCap { .. } => "frequencyCap",
            RuleKind::CoolDown { .. } => "coolDown",
            RuleKind::PermittedHours { .. } => "permittedHours",
            RuleKind::Restriction { .. } => "restriction",
            RuleKind::BlackoutDates { .. } => "blackoutDates",
            RuleKind::ConsentRequired { .. } => "consentRequired",
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, the complianceGuardRuleId.
    pub id: String,
    /// What it does.
    pub description: String,
    /// The legal citation.
    pub citation: String,
    /// Where the text was read.
    pub source: Option<String>,
    /// Whom it binds; empty is everyone.
    pub binds: Vec<Role>,
    /// Where it binds.
    pub jurisdictions: Vec<Jurisdiction>,
    /// Which sends it covers.
    pub applies: Filter,
    /// What it does.
    pub kind: RuleKind,
    /// Whether it binds this deployment (from [`LoadOptions::roles`]).
    pub binding: bool,
    /// Enforced, or only reported (shadow).
    pub mode: Mode,
    /// The file it came from.
    pub file: String,
    /// The line of its id.
    pub line: usize,
}

impl Rule {
    /// True if the rule binds in one of the places a borrower may be. With
    /// no place, every rule applies. A rule for a place inside one of them
    /// applies too: a borrower known only to be in `US-NY` may be in New
    /// York City, and an unknown fact never makes the guard more
    /// permissive. The one reading of places: the engine decides with it,
    /// and `rules list --jurisdiction` lists with it.
    pub fn binds_in(&self, places: &[Jurisdiction]) -> bool {
        places.is_empty()
            || self
                .jurisdictions
                .iter()
                .any(|r| places.iter().any(|p| r.contains(*p) || p.contains(*r)))
    }
}

/// A checked, immutable set of rules, with a version that identifies its
/// content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
    version: String,
    horizon_days: u32,
    /// The file names and texts it was compiled from, for the archive of
    /// every version that went live.
    sources: Vec<(String, String)>,
}

/// FNV-1a, 64 bits: a stable content hash with no dependency. It names a
/// version; it is not a security boundary.
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// Finds the 1-based line and column of a rule's key in its file's text:
/// the rule is found by its `id:` line (the `nth` one, counting from 0, for
/// an id written twice), and the key is the first line below
/// it that starts with `key:` before the next rule. Falls back to the id's
/// line, then to the start of the file.
fn locate(text: &str, rule_id: &str, key: Option<&str>, nth: usize) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    // A value as written: a trailing comment dropped, quotes removed.
    let unquote = |v: &str| {
        let v = v.split(" #").next().unwrap_or(v);
        v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned()
    };
    let id_line = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("id:").is_some_and(|v| unquote(v) == rule_id)
        })
        .map(|(i, _)| i)
        .nth(nth);
    let Some(start) = id_line else { return (1, 1) };
    let id_col = lines[start].find("id:").map_or(1, |c| c + 1);
    let Some(key) = key else {
        return (start + 1, id_col);
    };
    // A dotted key (`after.channels`) is found one segment after another.
    let mut from = start + 1;
    let mut found = None;
    for segment in key.split('.') {
        found = None;
        for (i, l) in lines.iter().enumerate().skip(from) {
            let t = l.trim_start();
            if t.starts_with("- id:") {
                break;
            }
            let t2 = t.trim_start_matches("- ");
            if t2.starts_with(&format!("{segment}:")) {
                found = Some((i + 1, l.len() - t2.len() + 1));
                from = i + 1;
                break;
            }
        }
        if found.is_none() {
            break;
        }
    }
    if let Some(at) = found {
        return at;
    }
    (start + 1, id_col)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
}

/// A local time of day, `HH:MM` or `HH:MM:SS`. Seconds let a rule say
/// "after 8:00 A.M." (an open interval) as `08:00:01`, the first whole
/// second after the hour, instead of a minute later.
fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() || h.len() != 2 || m.len() != 2 || sec.is_some_and(|x| x.len() != 2) {
        return None;
    }
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) || !sec.is_none_or(digits) {
        return None;
    }
    NaiveTime::from_hms_opt(
        h.parse().ok()?,
        m.parse().ok()?,
        sec.map_or(Some(0), |x| x.parse().ok())?,
    )
}

/// The keys that give a rule its kind, as messages name them.
const KIND_KEYS: &str = "`frequencyCap`, `coolDown`, `permittedHours`, `restriction`, `blackoutDates` or `consentRequired`";

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: &'a mut Vec<RuleError>,
    /// How many rules with each id came before in this file, so that the
    /// second of two rules with one id is located as the second.
    seen: std::collections::HashMap<String, usize>,
}

impl Checker<'_> {
    fn report(&mut self, rule: &str, key: Option<&str>, message: String) {
        let nth = self.seen.get(rule).copied().unwrap_or(0);
        let (line, column) = locate(self.text, rule, key, nth);
        self.errors.push(RuleError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }

    fn filter(&mut self, rule: &str, raw: &RawFilter) -> Filter {
        self.nonempty(rule, "channels", raw.channels.as_deref());
        self.nonempty(rule, "directions", raw.directions.as_deref());
        self.nonempty(rule, "themes", raw.themes.as_deref());
        self.nonempty(rule, "contactKinds", raw.contact_kinds.as_deref());
        Filter {
            channels: raw
                .channels
                .as_ref()
                .map(|v| v.iter().fold(0, |m, c| m | bit(c.index()) as u16)),
            directions: raw
                .directions
                .as_ref()
                .map(|v| v.iter().fold(0, |m, d| m | bit(d.index()) as u8)),
            themes: raw.themes.as_deref().map(theme_mask),
            contact_kinds: raw
                .contact_kinds
                .as_ref()
                .map(|v| v.iter().fold(0, |m, k| m | contact_bit(k.0))),
            transactional: raw.transactional,
            replies: raw.replies,
            minimum_balance: raw.minimum_balance.map(|a| a.0),
        }
    }

    fn nonempty<T>(&mut self, rule: &str, key: &str, list: Option<&[T]>) {
        if list.is_some_and(<[T]>::is_empty) {
            self.report(
                rule,
                Some(key),
                format!("rule `{rule}`: `{key}` is an empty list, so the rule can never match; remove the key to mean \"any\""),
            );
        }
    }

    fn rule(&mut self, raw: &RawRule, opts: &LoadOptions) -> Option<Rule> {
        let id = raw.id.as_str();
        let before = self.errors.len();
        if !valid_id(id) {
            self.report(
                id,
                None,
                format!("rule id `{id}` is not allowed; use 1 to {MAX_ID_CHARS} letters, digits, `-`, `_`, `.`, `(` or `)`"),
            );
        }
        if raw.description.trim().is_empty() {
            self.report(
                id,
                Some("description"),
                format!("rule `{id}`: `description` is empty; say what the rule does"),
            );
        }
        if raw.citation.trim().is_empty() {
            self.report(
                id,
                Some("citation"),
                format!("rule `{id}`: `citation` is empty; cite the legal text"),
            );
        }
        if raw.jurisdictions.is_empty() {
            self.report(
                id,
                Some("jurisdictions"),
                format!("rule `{id}`: `jurisdictions` is empty; name at least one, such as `US`"),
            );
        }
        let applies = self.filter(id, &raw.applies);
        let kinds = [
            raw.frequency_cap.is_some(),
            raw.cool_down.is_some(),
            raw.permitted_hours.is_some(),
            raw.restriction.is_some(),
            raw.blackout_dates.is_some(),
            raw.consent_required.is_some(),
        ];
        let kind = match kinds.iter().filter(|k| **k).count() {
            1 => self.kind(raw, opts),
            0 => {
                self.report(
                    id,
                    None,
                    format!("rule `{id}` says nothing to enforce; give one of {KIND_KEYS}"),
                );
                None
            }
            _ => {
                self.report(
                    id,
                    None,
                    format!(
                        "rule `{id}` has more than one of {KIND_KEYS}; write one rule for each"
                    ),
                );
                None
            }
        };
        let kind = kind?;
        if self.errors.len() > before {
            return None;
        }
        let binding = match &opts.roles {
            None => true,
            Some(roles) => {
                let held = Role::implied(roles);
                raw.binds.is_empty() || raw.binds.iter().any(|b| held.contains(b))
            }
        };
        Some(Rule {
            id: id.to_owned(),
            description: raw.description.trim().to_owned(),
            citation: raw.citation.trim().to_owned(),
            source: raw.source.as_ref().map(|s| s.trim().to_owned()),
            binds: raw.binds.clone(),
            jurisdictions: raw.jurisdictions.iter().map(|j| j.0).collect(),
            applies,
            kind,
            binding,
            mode: raw.mode,
            file: self.file.to_owned(),
            line: locate(self.text, id, None, self.seen.get(id).copied().unwrap_or(0)).0,
        })
    }

    /// Checks a window written as `days` under `key`, which reads `reach`
    /// days of history (one more than written for a quiet period that
    /// starts the day after its event).
    fn window(&mut self, id: &str, key: &str, days: u32, reach: u32, opts: &LoadOptions) {
        if days == 0 {
            self.report(
                id,
                Some(key),
                format!("rule `{id}`: `{key}` is 0; a window has at least 1 day"),
            );
        } else if reach > opts.horizon_days.min(crate::index::MAX_HORIZON_DAYS) {
            let extra = if reach > days {
                format!(" (it reads {reach} days of history)")
            } else {
                String::new()
            };
            self.report(
                id,
                Some(key),
                format!(
                    "rule `{id}`: `{key}` is {days} days{extra}, longer than the {} days of history the index keeps; shorten it or raise the horizon",
                    opts.horizon_days
                ),
            );
        }
    }

    fn kind(&mut self, raw: &RawRule, opts: &LoadOptions) -> Option<RuleKind> {
        let id = raw.id.as_str();
        if raw.exceptions.is_some() && raw.restriction.is_none() {
            self.report(
                id,
                Some("exceptions"),
                format!("rule `{id}`: `exceptions` goes with `restriction`, whose exceptions it chooses; this rule honours no restriction"),
            );
            return None;
        }
        if let Some(cap) = &raw.frequency_cap {
            if cap.limit == 0 || cap.limit > MAX_LIMIT {
                self.report(
                    id,
                    Some("limit"),
                    format!(
                        "rule `{id}`: `limit` is {}; allowed: 1 to {MAX_LIMIT}",
                        cap.limit
                    ),
                );
            }
            return self.cap(id, cap, opts);
        }
        if let Some(cd) = &raw.cool_down {
            self.window(
                id,
                "days",
                cd.days,
                cd.days.saturating_add(u32::from(!cd.event_day_is_day_one)),
                opts,
            );
            self.nonempty(id, "after.channels", cd.after.channels.as_deref());
            self.nonempty(id, "after.directions", cd.after.directions.as_deref());
            self.nonempty(id, "after.themes", cd.after.themes.as_deref());
            if cd
                .after
                .channels
                .as_ref()
                .is_some_and(|c| !c.is_empty() && !c.contains(&Channel::Voice))
            {
                self.report(
                    id,
                    Some("after.channels"),
                    format!("rule `{id}`: a conversation is a telephone call, so a quiet period after one on these channels can never start; include `voice`"),
                );
            }
            let trigger = Filter {
                channels: cd
                    .after
                    .channels
                    .as_ref()
                    .map(|v| v.iter().fold(0, |m, c| m | bit(c.index()) as u16)),
                directions: cd
                    .after
                    .directions
                    .as_ref()
                    .map(|v| v.iter().fold(0, |m, d| m | bit(d.index()) as u8)),
                themes: cd.after.themes.as_deref().map(theme_mask),
                ..Filter::default()
            };
            return Some(RuleKind::CoolDown {
                days: cd.days,
                event_day_is_day_one: cd.event_day_is_day_one,
                per: cd.per,
                event: cd.after.event,
                trigger,
                exempt_with_prior_consent: cd.exempt_with_prior_consent,
            });
        }
        if let Some(h) = &raw.permitted_hours {
            let from = parse_hhmm(&h.from);
            let until = parse_hhmm(&h.until);
            for (key, value, parsed) in [("from", &h.from, from), ("until", &h.until, until)] {
                if parsed.is_none() {
                    self.report(id, Some(key), format!("rule `{id}`: `{key}` `{value}` is not a time; write HH:MM or HH:MM:SS, for example \"08:00\""));
                }
            }
            let (from, until) = (from?, until?);
            if from >= until {
                self.report(
                    id,
                    Some("until"),
                    format!("rule `{id}`: permitted hours from {} until {} are empty; `until` must be later than `from`", h.from, h.until),
                );
            }
            return Some(RuleKind::PermittedHours {
                from,
                until,
                unless_consent: h
                    .unless_consent
                    .as_ref()
                    .map(|u| UnlessConsent { written: u.written }),
            });
        }
        if let Some(k) = raw.restriction {
            if !k.0.blocks() {
                self.report(
                    id,
                    Some("restriction"),
                    format!("rule `{id}`: `restriction` `{}` is not a restriction that blocks; a consent or notice is read by `consentRequired` or `exemptWithPriorConsent`; allowed: {}", k.0, RestrictionKind::ALL.iter().filter(|k| k.blocks()).map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
                );
                return None;
            }
            let exceptions = raw.exceptions.unwrap_or(raw::Exceptions::RegulationF);
            if exceptions == raw::Exceptions::None
                && !matches!(
                    k.0,
                    RestrictionKind::CeaseCommunication | RestrictionKind::MediumOptOut
                )
            {
                self.report(
                    id,
                    Some("exceptions"),
                    format!("rule `{id}`: `exceptions: none` is for a `ceaseCommunication` or `mediumOptOut` rule, whose exceptions it turns off; `{}` has no exceptions to turn off", k.0),
                );
                return None;
            }
            return Some(RuleKind::Restriction {
                kind: k.0,
                regulation_f_exceptions: exceptions == raw::Exceptions::RegulationF,
            });
        }
        if let Some(b) = &raw.blackout_dates {
            return self.blackout(id, b);
        }
        if let Some(c) = &raw.consent_required {
            let consents = [
                RestrictionKind::ElectronicConsent,
                RestrictionKind::PriorConsentToCall,
            ];
            if !consents.contains(&c.consent.0) {
                self.report(
                    id,
                    Some("consent"),
                    format!("rule `{id}`: `consent` `{}` is not a consent; allowed: electronicConsent, priorConsentToCall", c.consent.0),
                );
            }
            if let Some(n) = c.notice
                && n.0 != RestrictionKind::ElectronicNoticeMailed
            {
                self.report(
                    id,
                    Some("notice"),
                    format!("rule `{id}`: `notice` `{}` is not a notice; allowed: electronicNoticeMailed", n.0),
                );
            }
            self.window(
                id,
                "windowDays",
                c.requests.window_days,
                c.requests.window_days,
                opts,
            );
            if c.requests.limit > MAX_LIMIT {
                self.report(
                    id,
                    Some("limit"),
                    format!(
                        "rule `{id}`: `limit` is {}; allowed: 0 to {MAX_LIMIT}",
                        c.requests.limit
                    ),
                );
            }
            let requests_per = c.requests.per.unwrap_or(c.per);
            if c.per == Per::Borrower && requests_per == Per::Debt {
                self.report(
                    id,
                    Some("requests"),
                    format!("rule `{id}`: `requests.per` is `debt` but the rule's `per` is `borrower`; requests can be counted per debt only when notice and consent are; allowed: `borrower`, or leave it out"),
                );
            }
            return Some(RuleKind::ConsentRequired {
                consent: c.consent.0,
                notice: c.notice.map(|n| n.0),
                requests_limit: c.requests.limit,
                requests_window_days: c.requests.window_days,
                per: c.per,
                requests_per,
            });
        }
        None
    }

    /// A `frequencyCap`: a rolling window of `windowDays`, or a `window`
    /// that does not roll (each calendar month, or all since the receipt
    /// of the `since` restriction).
    fn cap(&mut self, id: &str, cap: &raw::RawCap, opts: &LoadOptions) -> Option<RuleKind> {
        let c = &cap.counting;
        if c.conversations && (c.attempts || !c.also_count.is_empty() || !c.never_count.is_empty())
        {
            self.report(
                id,
                Some("conversations"),
                format!("rule `{id}`: `counting.conversations` counts conversations alone; allowed with it: `neverCountOutcomes` only (not `attempts`, `alsoCount` or `neverCount`)"),
            );
        }
        let counting = Counting::from_raw(&cap.counting);
        let window = match (cap.window_days, cap.window) {
            (Some(days), None) => {
                self.window(id, "windowDays", days, days, opts);
                if cap.since.is_some() {
                    self.report(
                        id,
                        Some("since"),
                        format!("rule `{id}`: `since` goes with `window: calendarMonth` or `window: all`; a rolling `windowDays` cap counts whatever was sent in its window"),
                    );
                    return None;
                }
                return Some(RuleKind::FrequencyCap {
                    limit: cap.limit,
                    window_days: days,
                    per: cap.per,
                    counting,
                    exempt_with_prior_consent: cap.exempt_with_prior_consent,
                });
            }
            (None, Some(w)) => w,
            (Some(_), Some(_)) => {
                self.report(
                    id,
                    Some("window"),
                    format!("rule `{id}`: `window` and `windowDays` are both given; allowed: `windowDays` (a rolling window of days) or `window` (calendarMonth, all), not both"),
                );
                return None;
            }
            (None, None) => {
                self.report(
                    id,
                    Some("frequencyCap"),
                    format!("rule `{id}`: `frequencyCap` has no window; give `windowDays` (a rolling window of days) or `window` (calendarMonth, or all with `since`)"),
                );
                return None;
            }
        };
        if cap.exempt_with_prior_consent {
            self.report(
                id,
                Some("exemptWithPriorConsent"),
                format!("rule `{id}`: `exemptWithPriorConsent` goes with a `windowDays` cap (12 CFR 1006.14(b)(3)(i)); `window: {}` has none", window.as_str()),
            );
        }
        let reach = 31;
        if window == CapWindow::CalendarMonth
            && reach > opts.horizon_days.min(crate::index::MAX_HORIZON_DAYS)
        {
            self.report(
                id,
                Some("window"),
                format!(
                    "rule `{id}`: `window: calendarMonth` reads up to {reach} days of history, longer than the {} days of history the index keeps; raise the horizon",
                    opts.horizon_days
                ),
            );
        }
        let since = match &cap.since {
            None if window == CapWindow::All => {
                self.report(
                    id,
                    Some("window"),
                    format!("rule `{id}`: `window: all` counts every send since a restriction's receipt; give `since` with the restriction kind"),
                );
                return None;
            }
            None => None,
            Some(raw_since) => {
                let kind = raw_since.restriction.0;
                self.nonempty(id, "since.mailType", raw_since.mail_type.as_deref());
                if raw_since.mail_type.is_some() && kind != RestrictionKind::CeaseCommunication {
                    self.report(
                        id,
                        Some("since.mailType"),
                        format!("rule `{id}`: `since.mailType` reads how a request was sent, which only a `ceaseCommunication` records; `{kind}` has no mail type"),
                    );
                }
                Some(Since {
                    kind,
                    mail_types: raw_since
                        .mail_type
                        .as_ref()
                        .map(|v| v.iter().map(|m| m.0).collect()),
                })
            }
        };
        Some(RuleKind::PeriodCap {
            limit: cap.limit,
            window,
            per: cap.per,
            counting,
            since,
        })
    }

    fn blackout(&mut self, id: &str, b: &raw::RawBlackout) -> Option<RuleKind> {
        if b.dates.is_empty() && b.annually.is_empty() {
            self.report(
                id,
                Some("blackoutDates"),
                format!("rule `{id}`: `blackoutDates` lists no date; give `dates` (YYYY-MM-DD) or `annually` (MM-DD)"),
            );
            return None;
        }
        if b.dates.len() + b.annually.len() > MAX_BLACKOUT_DATES {
            self.report(
                id,
                Some("blackoutDates"),
                format!(
                    "rule `{id}`: `blackoutDates` lists {} dates; allowed: at most {MAX_BLACKOUT_DATES}",
                    b.dates.len() + b.annually.len()
                ),
            );
            return None;
        }
        let mut days = Vec::with_capacity(b.dates.len());
        for d in &b.dates {
            let strict = d.len() == 10 && d.as_bytes().get(4) == Some(&b'-');
            match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(date) if strict => days.push(chrono::Datelike::num_days_from_ce(&date)),
                _ => self.report(
                    id,
                    Some("blackoutDates.dates"),
                    format!("rule `{id}`: date `{d}` in `dates` is not a date; write YYYY-MM-DD, for example \"2026-12-25\""),
                ),
            }
        }
        let mut annually = Vec::with_capacity(b.annually.len());
        for md in &b.annually {
            // A leap year, so that 02-29 is accepted.
            let parsed = (md.len() == 5)
                .then(|| chrono::NaiveDate::parse_from_str(&format!("2024-{md}"), "%Y-%m-%d").ok())
                .flatten();
            match parsed {
                Some(date) => annually.push((
                    chrono::Datelike::month(&date),
                    chrono::Datelike::day(&date),
                )),
                None => self.report(
                    id,
                    Some("blackoutDates.annually"),
                    format!("rule `{id}`: `{md}` in `annually` is not a day of the year; write MM-DD, for example \"12-25\""),
                ),
            }
        }
        days.sort_unstable();
        days.dedup();
        annually.sort_unstable();
        annually.dedup();
        Some(RuleKind::BlackoutDates { days, annually })
    }
}

/// Every parse problem of a file, not only the first: serde_yaml stops at
/// the first error, so each rule of the `rules:` list is parsed again on
/// its own (the file cut at its `- ` items) and its errors are moved back to
/// the file's lines. Falls back to the first error alone when the file is
/// not laid out as a list of rules.
fn every_parse_error(file: &str, text: &str, first: &serde_yaml::Error) -> Vec<RuleError> {
    let whole = yaml_error(file, first);
    // A syntax error makes every later position doubtful: report it alone.
    // Only a file that is valid YAML is cut into rules and parsed again.
    if serde_yaml::from_str::<serde_yaml::Value>(text).is_err() {
        return vec![whole];
    }
    let lines: Vec<&str> = text.lines().collect();
    let Some(list_at) = lines.iter().position(|l| l.trim_end() == "rules:") else {
        return vec![whole];
    };
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let Some(first_item) = lines
        .iter()
        .skip(list_at + 1)
        .position(|l| l.trim_start().starts_with("- "))
    else {
        return vec![whole];
    };
    let first_item = list_at + 1 + first_item;
    let indent = indent_of(lines[first_item]);
    let mut starts: Vec<usize> = (first_item..lines.len())
        .filter(|i| indent_of(lines[*i]) == indent && lines[*i].trim_start().starts_with("- "))
        .collect();
    starts.push(lines.len());
    let mut found = Vec::new();
    for pair in starts.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let chunk = format!("rules:\n{}\n", lines[from..to].join("\n"));
        if let Err(e) = serde_yaml::from_str::<RawFile>(&chunk) {
            let mut err = yaml_error(file, &e);
            // An anchor defined in another rule is not an error of this one.
            if err.message.contains("unknown anchor") {
                continue;
            }
            if err.line >= 2 && err.line - 2 < to - from {
                err.line = err.line - 2 + from + 1;
                // The chunk's rule is always item 0; name its place in the file.
                let item = starts.iter().position(|s| *s == from).unwrap_or(0);
                err.message = err
                    .message
                    .replacen("rules[0]", &format!("rules[{item}]"), 1);
                found.push(err);
            }
        }
    }
    // The file's own first error stands first (it may lie outside every
    // rule, in which case the per-rule errors add nothing).
    let mut all = vec![whole];
    for e in found {
        if !all.iter().any(|a| a.line == e.line && a.column == e.column) {
            all.push(e);
        }
    }
    all
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> RuleError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    // serde_yaml appends " at line N column M", which we print in front
    // instead; any other position in the message (the start of an unclosed
    // string, say) stays.
    let mut message = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    if message.ends_with(&suffix) {
        message.truncate(message.len() - suffix.len());
    }
    RuleError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// True for a file name an editor leaves beside the real one (a swap,
/// backup or lock file), which is never a rule file.
fn is_editor_file(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~')
}

/// Reads every rule file (`*.yaml`, `*.yml`) directly in `dir`, in name
/// order, as `(path, text)` pairs, skipping editors' temporary, swap and
/// backup files.
pub fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, RuleErrors> {
    let fail = |message: String| {
        RuleErrors(vec![RuleError {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            message,
        }])
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("cannot read the rules directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("cannot read the rules directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let is_yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
        if is_yaml && !is_editor_file(&name.to_string_lossy()) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.len() > MAX_FILES {
        return Err(fail(format!(
            "{} rule files; allowed: at most {MAX_FILES}",
            paths.len()
        )));
    }
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let read = std::fs::metadata(&path).and_then(|m| {
            if m.len() > MAX_FILE_BYTES {
                Err(std::io::Error::other(format!(
                    "{} bytes; allowed: at most {MAX_FILE_BYTES}",
                    m.len()
                )))
            } else {
                std::fs::read_to_string(&path)
            }
        });
        match read {
            Ok(text) => sources.push((name, text)),
            Err(e) => errors.push(RuleError {
                file: name,
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    if sources.is_empty() {
        return Err(fail(
            "no rule files (*.yaml) found; an empty rule set would allow everything".into(),
        ));
    }
    Ok(sources)
}

impl RuleSet {
    /// Checks and compiles rule files given as `(name, text)` pairs. All
    /// problems are collected; any problem refuses the whole set.
    pub fn compile(
        sources: &[(String, String)],
        opts: &LoadOptions,
    ) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut sorted: Vec<&(String, String)> = sources.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for (name, text) in &sorted {
            // The version names the content: the file's own name and text,
            // not the directory it was read from.
            let base = Path::new(name.as_str())
                .file_name()
                .map_or(name.as_str(), |b| b.to_str().unwrap_or(name));
            fnv1a(&mut hash, base.as_bytes());
            fnv1a(&mut hash, &[0]);
            fnv1a(&mut hash, text.as_bytes());
            fnv1a(&mut hash, &[0]);
            let file: RawFile = match serde_yaml::from_str(text) {
                Ok(f) => f,
                Err(e) => {
                    errors.extend(every_parse_error(name, text, &e));
                    continue;
                }
            };
            let mut checker = Checker {
                file: name,
                text,
                errors: &mut errors,
                seen: Default::default(),
            };
            for raw in &file.rules {
                let rule = checker.rule(raw, opts);
                let place = checker.seen.get(&raw.id).copied().unwrap_or(0);
                if let Some(rule) = rule {
                    if let Some(first) = rules.iter().find(|r| r.id == rule.id) {
                        let message = format!(
                            "rule id `{}` is used twice; it is already defined at {}:{}; ids must be unique",
                            rule.id, first.file, first.line
                        );
                        checker.report(&rule.id, None, message);
                    } else {
                        rules.push(rule);
                    }
                }
                checker.seen.insert(raw.id.clone(), place + 1);
            }
        }
        if rules.len() > MAX_RULES {
            errors.push(RuleError {
                file: "(all files)".into(),
                line: 0,
                column: 0,
                message: format!("{} rules; allowed: at most {MAX_RULES}", rules.len()),
            });
        }
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(RuleSet {
            rules,
            version: format!("{hash:016x}"),
            horizon_days: opts.horizon_days,
            sources: sources.to_vec(),
        })
    }

    /// Loads every `*.yaml` and `*.yml` file directly in `dir` (not in its
    /// subdirectories), in name order, and compiles them as one set.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, RuleErrors> {
        RuleSet::compile(&read_sources(dir)?, opts)
    }

    /// The same set restricted to the rules named in `ids`, for what-if
    /// questions and tests that look at one rule alone. Unknown ids are
    /// returned as the error. The version records the restriction.
    pub fn subset(&self, ids: &[&str]) -> Result<RuleSet, Vec<String>> {
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| self.get(id).is_none())
            .map(|id| (*id).to_owned())
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        fnv1a(&mut hash, self.version.as_bytes());
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| ids.contains(&r.id.as_str()))
            .cloned()
            .collect();
        for r in &rules {
            fnv1a(&mut hash, r.id.as_bytes());
            fnv1a(&mut hash, &[0]);
        }
        Ok(RuleSet {
            rules,
            version: format!("{}+only-{hash:016x}", self.version),
            horizon_days: self.horizon_days,
            sources: self.sources.clone(),
        })
    }

    /// The `(file, text)` pairs the set was compiled from.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// Every rule, sorted by id.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A rule by id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules
            .binary_search_by(|r| r.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.rules[i])
    }

    /// The content hash of the files the set was compiled from (their names
    /// and texts, not the directory): two sets with the same version were
    /// compiled from the same text.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The horizon the set was checked against.
    pub fn horizon_days(&self) -> u32 {
        self.horizon_days
    }

    /// The longest window of any rule, in days.
    pub fn longest_window_days(&self) -> u32 {
        self.rules
            .iter()
            .map(|r| r.kind.window_days())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_under_their_rule() {
        let text = "rules:\n  - id: a\n    limit: 1\n  - id: b\n    description: x\n    limit: 2\n";
        assert_eq!(locate(text, "b", Some("limit"), 0), (6, 5));
        assert_eq!(locate(text, "a", Some("limit"), 0), (3, 5));
        assert_eq!(locate(text, "b", None, 0), (4, 5));
        assert_eq!(locate(text, "zz", None, 0), (1, 1));
        let twice = "rules:\n  - id: a\n    limit: 1\n  - id: a\n    limit: 2\n";
        assert_eq!(locate(twice, "a", Some("limit"), 1), (5, 5));
    }
}
