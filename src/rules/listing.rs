//! `rules list`: which rules bind a lender of some roles in a place, as an
//! officer asks before collecting there ("what applies in Florida to us, a
//! creditor?").
//!
//! The answer reads places and roles exactly as the engine does: a rule
//! binds in a place when it is written for that place, for a place that
//! contains it (`US`), or for a place inside it (a borrower known only to
//! be in `US-NY` may be in New York City), by [`Rule::binds_in`]; and it
//! binds the roles when [`LoadOptions::roles`](super::LoadOptions) made it
//! binding. So the list is the set of rules a Check naming that place
//! would weigh on a server run with those roles, no more and no fewer.

use std::fmt::Write as _;
use std::str::FromStr;

use super::{Mode, Role, Rule, RuleSet};
use crate::jurisdiction::Jurisdiction;

/// How the list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    /// One line per rule, tab-separated: id, kind, jurisdictions,
    /// citation, mode, `file:line`. The first four columns are those the
    /// command printed before it took a place, so scripts that cut them
    /// keep working.
    #[default]
    Text,
    /// One JSON array of objects, for tools.
    Json,
}

/// A `--format` that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`; allowed: text, json")]
pub struct UnknownFormat(pub String);

impl FromStr for ListFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s {
            "text" => Ok(ListFormat::Text),
            "json" => Ok(ListFormat::Json),
            other => Err(UnknownFormat(crate::model::echo(other))),
        }
    }
}

/// The rules of `set` that bind in `place` (every place when `None`) a
/// lender of the roles the set was loaded with, in the set's order (by
/// id).
pub fn binding_in(set: &RuleSet, place: Option<Jurisdiction>) -> Vec<&Rule> {
    let places: Vec<Jurisdiction> = place.into_iter().collect();
    set.rules()
        .iter()
        .filter(|r| r.binding && r.binds_in(&places))
        .collect()
}

/// The mode as rule files write it.
fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow",
    }
}

/// The rules as `format` prints them, ending with a newline (an empty
/// JSON array, or nothing, when there is none).
pub fn render(rules: &[&Rule], format: ListFormat) -> String {
    match format {
        ListFormat::Text => {
            let mut out = String::new();
            for r in rules {
                let places: Vec<&str> = r.jurisdictions.iter().map(|j| j.code()).collect();
                // Writing to a String cannot fail.
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}:{}",
                    r.id,
                    r.kind.name(),
                    places.join(","),
                    r.citation,
                    mode_name(r.mode),
                    r.file,
                    r.line
                );
            }
            out
        }
        ListFormat::Json => {
            let items: Vec<Listed<'_>> = rules
                .iter()
                .map(|r| Listed {
                    id: &r.id,
                    mode: mode_name(r.mode),
                    kind: r.kind.name(),
                    jurisdictions: r.jurisdictions.iter().map(|j| j.code()).collect(),
                    binds: r.binds.iter().map(|b| b.as_str()).collect(),
                    citation: &r.citation,
                    file: &r.file,
                    line: r.line,
                })
                .collect();
            // Strings and numbers always serialize.
            let mut text = serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into());
            text.push('\n');
            text
        }
    }
}

/// One rule as `--format json` prints it, fields in this order.
#[derive(serde::Serialize)]
struct Listed<'a> {
    id: &'a str,
    mode: &'static str,
    kind: &'static str,
    jurisdictions: Vec<&'static str>,
    /// Empty: every role.
    binds: Vec<&'static str>,
    citation: &'a str,
    file: &'a str,
    line: usize,
}

/// One line saying what was listed, for a reader (the command prints it
/// on stderr, so that stdout stays the list): how many rules bind whom
/// where, and how many of them block.
pub fn summary(rules: &[&Rule], place: Option<Jurisdiction>, roles: Option<&[Role]>) -> String {
    let enforced = rules.iter().filter(|r| r.mode == Mode::Enforce).count();
    let who = match roles {
        None => "any lender".to_owned(),
        Some(roles) => {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!("a lender that is {}", names.join(" or "))
        }
    };
    let place = match place {
        None => "anywhere".to_owned(),
        Some(j) => format!("in {} ({})", j.code(), j.name()),
    };
    let n = rules.len();
    let (noun, verb) = if n == 1 {
        ("rule", "binds")
    } else {
        ("rules", "bind")
    };
    format!(
        "{n} {noun} {verb} {who} {place}: {enforced} enforced, {} in shadow",
        n - enforced
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::LoadOptions;

    const FILE: &str = "rules:
  - id: a-us
    description: d
    citation: c1
    binds: [debtCollector]
    jurisdictions: [US]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: b-ny
    description: d
    citation: c2
    mode: shadow
    jurisdictions: [US-NY]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: c-nyc
    description: d
    citation: c3
    binds: [creditor]
    jurisdictions: [US-NY-NYC]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
  - id: d-ma
    description: d
    citation: c4
    jurisdictions: [US-MA]
    permittedHours: {from: \"08:00\", until: \"21:00\"}
";

    fn set(roles: Option<Vec<Role>>) -> RuleSet {
        let opts = LoadOptions {
            roles,
            ..LoadOptions::default()
        };
        RuleSet::compile(&[("t.yaml".into(), FILE.into())], &opts).unwrap()
    }

    fn ids(rules: &[&Rule]) -> Vec<String> {
        rules.iter().map(|r| r.id.clone()).collect()
    }

    fn place(code: &str) -> Option<Jurisdiction> {
        Some(Jurisdiction::parse(code).unwrap())
    }

    #[test]
    fn a_place_takes_its_parents_and_the_places_inside_it() {
        let s = set(None);
        assert_eq!(
            ids(&binding_in(&s, None)),
            ["a-us", "b-ny", "c-nyc", "d-ma"]
        );
        assert_eq!(
            ids(&binding_in(&s, place("US-NY"))),
            ["a-us", "b-ny", "c-nyc"]
        );
        assert_eq!(
            ids(&binding_in(&s, place("US-NY-NYC"))),
            ["a-us", "b-ny", "c-nyc"]
        );
        assert_eq!(ids(&binding_in(&s, place("US-MA"))), ["a-us", "d-ma"]);
        assert_eq!(ids(&binding_in(&s, place("US-FL"))), ["a-us"]);
        // `US` holds every place.
        assert_eq!(
            ids(&binding_in(&s, place("US"))),
            ["a-us", "b-ny", "c-nyc", "d-ma"]
        );
    }

    #[test]
    fn roles_are_read_as_the_server_reads_them() {
        let s = set(Some(vec![Role::Creditor]));
        // A rule with no `binds` binds every role.
        assert_eq!(ids(&binding_in(&s, place("US-NY"))), ["b-ny", "c-nyc"]);
        let s = set(Some(vec![Role::DebtCollector]));
        assert_eq!(ids(&binding_in(&s, place("US-NY"))), ["a-us", "b-ny"]);
    }

    #[test]
    fn text_json_and_summary() {
        let s = set(Some(vec![Role::Creditor, Role::Licensee]));
        let listed = binding_in(&s, place("US-NY"));
        assert_eq!(
            render(&listed, ListFormat::Text),
            "b-ny\tpermittedHours\tUS-NY\tc2\tshadow\tt.yaml:8\n\
             c-nyc\tpermittedHours\tUS-NY-NYC\tc3\tenforce\tt.yaml:14\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&listed, ListFormat::Json)).unwrap();
        assert_eq!(
            json[1],
            serde_json::json!({"id": "c-nyc", "mode": "enforce", "kind": "permittedHours",
                "jurisdictions": ["US-NY-NYC"], "binds": ["creditor"], "citation": "c3",
                "file": "t.yaml", "line": 14})
        );
        assert_eq!(render(&[], ListFormat::Text), "");
        assert_eq!(render(&[], ListFormat::Json), "[]\n");
        assert_eq!(
            summary(
                &listed,
                place("US-NY"),
                Some(&[Role::Creditor, Role::Licensee])
            ),
            "2 rules bind a lender that is creditor or licensee in US-NY (New York): 1 enforced, 1 in shadow"
        );
        assert_eq!(
            summary(&listed[..1], None, None),
            "1 rule binds any lender anywhere: 0 enforced, 1 in shadow"
        );
        assert_eq!(
            "yaml".parse::<ListFormat>().unwrap_err().to_string(),
            "unknown format `yaml`; allowed: text, json"
        );
    }
}
