//! The links of README.md and docs/*.md: every relative link names a file
//! that exists and, after a `#`, a heading of that file, as GitHub makes
//! its anchors; and the README links every file of docs/. The documents'
//! example rule tests pass, as written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, then docs/*.md in name order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

/// The lines outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, each space a `-`, punctuation
/// other than `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a document's headings; a repeated one gets `-1`, `-2`, ...
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for (_, line) in prose(text) {
        let title = line.trim_start_matches('#');
        if title.len() == line.len() || !title.starts_with(' ') {
            continue;
        }
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` of a document, with
/// their line numbers, leaving out code blocks and `code spans`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let outside_code: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        for (at, _) in outside_code.match_indices("](") {
            let rest = &outside_code[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push((n, rest[..end].to_owned()));
            }
        }
    }
    out
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Durability, backup and import"),
        "durability-backup-and-import"
    );
    assert_eq!(slug("What-if replay"), "what-if-replay");
    assert_eq!(slug("The gRPC API"), "the-grpc-api");
    assert_eq!(slug("`foo_bar` — baz (2)"), "foo_bar--baz-2");
    let a = anchors("# Title\n## Notes\n```\n# not a heading\n```\n## Notes\n#tag\n");
    let expected: HashSet<String> = ["title", "notes", "notes-1"].map(String::from).into();
    assert_eq!(a, expected);
}

#[test]
fn relative_links_of_readme_and_docs_resolve() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            if !file.exists() {
                problems.push(format!("{name}:{line}: `{target}`: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let Ok(target_text) = std::fs::read_to_string(&file) else {
                    problems.push(format!("{name}:{line}: `{target}`: not a text file"));
                    continue;
                };
                if !anchors(&target_text).contains(anchor) {
                    problems.push(format!("{name}:{line}: `{target}`: no such heading"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check reads real links: the README alone has more than ten.
    assert!(checked > 20, "only {checked} relative links found");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for doc in &documents()[1..] {
        let linked = links(&readme)
            .iter()
            .any(|(_, t)| t.split('#').next() == doc.strip_prefix(root()).unwrap().to_str());
        assert!(linked, "README.md does not link {}", doc.display());
    }
}

/// The `yaml` code blocks of a document that are rule test files (they
/// start with `tests:`), with the line each starts on.
fn rule_test_examples(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_end() == "```yaml" => block = Some((i + 2, String::new())),
            Some(_) if line.trim_start().starts_with("```") => {
                let (at, body) = block.take().unwrap();
                if body.starts_with("tests:") {
                    out.push((at, body));
                }
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Every example of a rule test in README.md and docs/*.md runs against
/// the shipped rules and passes: the format they show is the one read.
#[test]
fn the_documents_rule_test_examples_pass() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    let mut cases = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let stem = doc.file_stem().unwrap().to_string_lossy().into_owned();
        for (line, example) in rule_test_examples(&text) {
            cases += example.matches("\n  - name:").count();
            std::fs::write(
                dir.path().join("tests").join(format!("{stem}-{line}.yaml")),
                example,
            )
            .unwrap();
        }
    }
    assert!(cases >= 6, "only {cases} example cases found");
    let report = compliance_guard::ruletest::run(dir.path()).unwrap();
    let failed: Vec<String> = report.failed.iter().map(ToString::to_string).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(report.passed, cases);
}
