//! docs/jurisdictions.md against the vocabulary and the shipped rules:
//! every jurisdiction code has its row, every city of the survey too, and
//! every shipped rule is listed in the row of each place it is written
//! for, with a status that says whether it blocks. A rule added, moved or
//! removed without its row fails here, as does a code added to
//! `src/jurisdiction.rs` without one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use compliance_guard::jurisdiction::Jurisdiction;
use compliance_guard::rules::{LoadOptions, Mode, RuleSet};

const PAGE: &str = "docs/jurisdictions.md";

/// The cities of the survey without a code of their own: each has a row
/// whose code cell says `(none: ...)`.
const SURVEY_CITIES: [&str; 3] = ["Chicago", "Yonkers", "Buffalo"];

/// The statuses a row may give, each part of its status cell (split at
/// `;`) starting with one of them.
const STATUSES: [&str; 6] = [
    "enforced",
    "shadow",
    "standard only",
    "covered by 12 CFR 1006",
    "none found",
    "not surveyed",
];

/// One row of the table.
#[derive(Debug)]
struct Row {
    line: usize,
    code: String,
    place: String,
    rules: String,
    status: String,
}

/// The rows of the page's table: the lines that start with `| ` and have
/// its 8 cells, past the header and its rule.
fn rows(text: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("| Code | Place |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with("| ") {
            if !out.is_empty() {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(
            cells.len(),
            8,
            "{PAGE}:{}: a row has 8 cells: {line}",
            i + 1
        );
        out.push(Row {
            line: i + 1,
            code: cells[0].to_owned(),
            place: cells[1].to_owned(),
            rules: cells[4].to_owned(),
            status: cells[5].to_owned(),
        });
    }
    out
}

/// The `code spans` of a cell.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_jurisdictions_page_has_every_place_and_every_shipped_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(PAGE)).unwrap();
    let rows = rows(&text);
    let mut problems: Vec<String> = Vec::new();

    // Every code of the vocabulary has exactly one row, and every row's
    // code is one.
    let mut by_code: BTreeMap<&str, &Row> = BTreeMap::new();
    for row in &rows {
        if row.code.starts_with("(none") {
            continue;
        }
        let code = row.code.trim_matches('`');
        if Jurisdiction::parse(code).is_err() {
            problems.push(format!(
                "{PAGE}:{}: `{code}` is not a jurisdiction code",
                row.line
            ));
        } else if by_code.insert(code, row).is_some() {
            problems.push(format!("{PAGE}:{}: a second row for `{code}`", row.line));
        }
    }
    for j in Jurisdiction::all() {
        if !by_code.contains_key(j.code()) {
            problems.push(format!(
                "{PAGE}: no row for `{}` ({}); add one, with its status",
                j.code(),
                j.name()
            ));
        }
    }
    for city in SURVEY_CITIES {
        if !rows
            .iter()
            .any(|r| r.place == city && r.code.starts_with("(none"))
        {
            problems.push(format!("{PAGE}: no row for {city}, a city of the survey"));
        }
    }

    // Every row's status is of the vocabulary.
    for row in &rows {
        for part in row.status.split(';').map(str::trim) {
            if !STATUSES.iter().any(|s| part.starts_with(s)) {
                problems.push(format!(
                    "{PAGE}:{}: status `{part}` is none of {STATUSES:?}",
                    row.line
                ));
            }
        }
    }

    // Every shipped rule is in the row of each place it is written for;
    // every id in a row is a shipped rule of that place; and the status
    // says "enforced" when one of them blocks, "shadow" when one only
    // reports.
    let set = RuleSet::load_dir(&root.join("rules"), &LoadOptions::default()).unwrap();
    let mut listed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (code, row) in &by_code {
        listed.insert(code, spans(&row.rules).into_iter().collect());
    }
    for rule in set.rules() {
        for j in &rule.jurisdictions {
            if !listed
                .get(j.code())
                .is_some_and(|ids| ids.contains(rule.id.as_str()))
            {
                problems.push(format!(
                    "{PAGE}: the row of `{}` does not list the shipped rule `{}` ({}:{})",
                    j.code(),
                    rule.id,
                    rule.file,
                    rule.line
                ));
            }
        }
    }
    for (code, ids) in &listed {
        let row = by_code[code];
        let mut modes = BTreeSet::new();
        for id in ids {
            match set.get(id) {
                Some(rule) if rule.jurisdictions.iter().any(|j| j.code() == *code) => {
                    modes.insert(rule.mode == Mode::Enforce);
                }
                Some(_) => problems.push(format!(
                    "{PAGE}:{}: `{id}` is not written for `{code}`",
                    row.line
                )),
                None => problems.push(format!("{PAGE}:{}: `{id}` is not a shipped rule", row.line)),
            }
        }
        let says = |s: &str| row.status.split(';').any(|p| p.trim().starts_with(s));
        if modes.contains(&true) && !says("enforced") {
            problems.push(format!(
                "{PAGE}:{}: `{code}` ships an enforced rule but its status does not say `enforced`",
                row.line
            ));
        }
        if modes.contains(&false) && !says("shadow") {
            problems.push(format!(
                "{PAGE}:{}: `{code}` ships a shadow rule but its status does not say `shadow`",
                row.line
            ));
        }
        if modes.is_empty() && (says("enforced") || says("shadow")) {
            problems.push(format!(
                "{PAGE}:{}: `{code}` lists no rule but its status says it ships one",
                row.line
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // 50 states, D.C., 5 territories, `US`, New York City, and 3 cities
    // without codes.
    assert_eq!(
        rows.len(),
        Jurisdiction::all().count() + SURVEY_CITIES.len()
    );
}
