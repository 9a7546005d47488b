//! Import: the history from before the guard, as JSON lines in the
//! upstream Interaction format, each validated with the API's rules; into
//! a data directory ([`import`]) or into a running cluster
//! ([`import_published`]), the lines read and tallied the same way
//! (`ImportLines`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::OpsError;
use crate::guard::{Guard, GuardError};
use crate::index::IndexConfig;
use crate::journal::Durability;
use crate::model::InteractionInput;
use crate::request::Caller;

/// One line of an import that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Interactions recorded.
    pub imported: u64,
    /// Lines already present (same externalId, or same id), left as they are.
    pub already_present: u64,
    /// Lines refused.
    pub problems: Vec<LineProblem>,
    /// Fields not in the Interaction format that were ignored, with how many
    /// lines had each.
    pub ignored_fields: Vec<(String, u64)>,
    /// Lines with neither `id` nor `externalId`: a second import would
    /// record them again.
    pub without_ids: u64,
}

/// The upstream Interaction's fields (camelCase, as upstream spells them),
/// as `InteractionInput` knows them; anything else is ignored and counted.
fn known_field(name: &str) -> bool {
    // `updatedBy` is ours, not upstream's: an import does not take it.
    crate::model::UPDATABLE_FIELDS.contains(&name)
        || (crate::model::READ_ONLY_FIELDS.contains(&name) && name != "updatedBy")
}

/// Imports JSON lines from `reader` into the data directory (which must not
/// be in use by a server). Every line is validated with the API's rules; a
/// bad line is reported and skipped, the good ones are kept. Idempotent on
/// externalId and on id. `progress` is called every 100,000 lines. Every
/// record belongs to `company` (`None`: no company), as if a key of that
/// company had created it.
pub fn import(
    data_dir: &Path,
    reader: impl BufRead,
    by: &str,
    company: Option<&str>,
    durability: Durability,
    now: DateTime<Utc>,
    progress: impl FnMut(u64),
) -> Result<ImportReport, OpsError> {
    let (guard, _) = Guard::open(
        IndexConfig::default(),
        data_dir,
        durability,
        u64::MAX,
        |_| {},
    )?;
    let caller = importer(by, company);
    let mut lines = ImportLines::new(reader, progress);
    let mut last = crate::guard::Pending::Done;
    while let Some((number, person, input)) = lines.next_record()? {
        let outcome = guard
            .import(&person, &input, &caller, now)
            .map(|(_, created, commit)| {
                if created {
                    last = commit;
                }
                created
            });
        lines.outcome(number, outcome)?;
        if lines.report.imported.is_multiple_of(10_000) {
            std::mem::replace(&mut last, crate::guard::Pending::Done).wait_blocking()?;
        }
    }
    last.wait_blocking()?;
    Ok(lines.finish())
}

/// Records an import keeps publishing while it reads on: a cluster node's
/// writes wait for the stream's acknowledgement, so one at a time would
/// leave the import at one round trip per line.
pub const IMPORT_IN_FLIGHT: usize = 32;

/// [`import`] into a cluster, through `guard`, a node opened for the
/// import (caught up with the stream): every record is published to the
/// cluster's stream, fenced as any write is, and acknowledged before the
/// import ends. Up to [`IMPORT_IN_FLIGHT`] records are in flight at once,
/// but never two that name the same person (as given), `externalId` or
/// `id`: those go in file order, so the outcome is the one a single
/// node's import gives, whatever the timing. Problems are reported in line
/// order. A write the cluster cannot take (UNAVAILABLE) stops the import:
/// no line is read after it, what was in flight is waited for, and the
/// error says where it stopped.
pub async fn import_published(
    guard: std::sync::Arc<Guard>,
    reader: impl BufRead,
    by: &str,
    company: Option<&str>,
    now: DateTime<Utc>,
    progress: impl FnMut(u64),
) -> Result<ImportReport, OpsError> {
    let caller = importer(by, company);
    let mut lines = ImportLines::new(reader, progress);
    let mut in_flight: tokio::task::JoinSet<Done> = tokio::task::JoinSet::new();
    let mut busy: std::collections::HashMap<String, usize> = Default::default();
    let mut stop: Option<(u64, GuardError)> = None;
    while stop.is_none() {
        let Some((number, person, input)) = lines.next_record()? else {
            break;
        };
        let mut names = vec![format!("p:{person}")];
        names.extend(input.external_id.iter().map(|e| format!("x:{e}")));
        names.extend(input.id.iter().map(|i| format!("i:{i}")));
        while in_flight.len() >= IMPORT_IN_FLIGHT || names.iter().any(|n| busy.contains_key(n)) {
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            settle(done, &mut lines, &mut busy, &mut stop);
        }
        if stop.is_some() {
            break;
        }
        for name in &names {
            *busy.entry(name.clone()).or_default() += 1;
        }
        let (guard, caller) = (std::sync::Arc::clone(&guard), caller.clone());
        in_flight.spawn(async move {
            let outcome = guard
                .import_published(&person, &input, &caller, now)
                .await
                .map(|(_, created)| created);
            (number, names, outcome)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        settle(done, &mut lines, &mut busy, &mut stop);
    }
    match stop {
        None => Ok(lines.finish()),
        Some((line, cause)) => Err(OpsError::ImportStopped {
            line,
            imported: lines.report.imported,
            cause,
        }),
    }
}

/// A record of an import into a cluster, written or refused: its line,
/// the names it kept from other records in flight, and its outcome.
type Done = (u64, Vec<String>, Result<bool, GuardError>);

/// Takes one finished record of [`import_published`]: its outcome tallied,
/// its names free for the lines waiting on them; the first line (in file
/// order) whose write the cluster could not take is where the import
/// stopped.
fn settle<R: BufRead, P: FnMut(u64)>(
    done: Result<Done, tokio::task::JoinError>,
    lines: &mut ImportLines<R, P>,
    busy: &mut std::collections::HashMap<String, usize>,
    stop: &mut Option<(u64, GuardError)>,
) {
    let (number, names, outcome) = match done {
        Ok(done) => done,
        Err(e) => (0, Vec::new(), Err(GuardError::Internal(e.to_string()))),
    };
    for name in names {
        if let Some(n) = busy.get_mut(&name) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&name);
            }
        }
    }
    if let Err(OpsError::Guard(e)) = lines.outcome(number, outcome)
        && stop.as_ref().is_none_or(|(n, _)| *n >= number)
    {
        *stop = Some((number, e));
    }
}

/// The caller an import writes as.
fn importer(by: &str, company: Option<&str>) -> Caller {
    Caller {
        company: company.map(str::to_owned),
        name: by.to_owned(),
        sensitive: true,
        agent: false,
    }
}

/// An import's input, line by line: each read, parsed and checked as an
/// Interaction with its person, and what became of it tallied in the
/// report.
struct ImportLines<R, P> {
    reader: R,
    progress: P,
    raw: Vec<u8>,
    number: u64,
    report: ImportReport,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl<R: BufRead, P: FnMut(u64)> ImportLines<R, P> {
    fn new(reader: R, progress: P) -> Self {
        ImportLines {
            reader,
            progress,
            raw: Vec::new(),
            number: 0,
            report: ImportReport::default(),
            ignored: Default::default(),
        }
    }

    fn refuse(&mut self, line: u64, message: String) {
        self.report.problems.push(LineProblem { line, message });
    }

    /// The next line that holds a record to import, with its number and
    /// person; blank lines are skipped, bad ones reported and skipped.
    fn next_record(&mut self) -> Result<Option<(u64, String, InteractionInput)>, OpsError> {
        loop {
            self.raw.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.raw)
                .map_err(|cause| OpsError::Io {
                    action: "reading",
                    path: PathBuf::from("(input)"),
                    cause,
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            let number = self.number;
            let text = String::from_utf8_lossy(&self.raw).into_owned();
            let line = text.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            self.report.lines += 1;
            if self.report.lines.is_multiple_of(100_000) {
                (self.progress)(self.report.lines);
            }
            if std::str::from_utf8(&self.raw).is_err() {
                self.refuse(number, "the line is not UTF-8 text".into());
                continue;
            }
            let mut value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    self.refuse(number, format!("not JSON: {e}"));
                    continue;
                }
            };
            let Some(object) = value.as_object_mut() else {
                self.refuse(number, "not a JSON object".into());
                continue;
            };
            let unknown: Vec<String> = object.keys().filter(|k| !known_field(k)).cloned().collect();
            for k in unknown {
                object.remove(&k);
                *self.ignored.entry(k).or_default() += 1;
            }
            let input: InteractionInput = match serde_json::from_value(value) {
                Ok(i) => i,
                Err(e) => {
                    self.refuse(number, format!("not an Interaction: {e}"));
                    continue;
                }
            };
            let Some(person) = input.person_id.clone().filter(|p| !p.is_empty()) else {
                self.refuse(number, "`personId` is required".into());
                continue;
            };
            if input.id.is_none() && input.external_id.is_none() {
                self.report.without_ids += 1;
            }
            return Ok(Some((number, person, input)));
        }
    }

    /// Tallies what became of line `number`: recorded (`true`), already
    /// present (`false`), or refused. A guard that can no longer write
    /// stops the import.
    fn outcome(&mut self, number: u64, outcome: Result<bool, GuardError>) -> Result<(), OpsError> {
        match outcome {
            Ok(true) => self.report.imported += 1,
            Ok(false) => self.report.already_present += 1,
            Err(GuardError::Invalid(problems)) => {
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.refuse(number, message);
            }
            Err(GuardError::Unavailable(m) | GuardError::Internal(m)) => {
                return Err(GuardError::Unavailable(m).into());
            }
            Err(e) => self.refuse(number, e.to_string()),
        }
        Ok(())
    }

    fn finish(mut self) -> ImportReport {
        self.report.problems.sort_by_key(|p| p.line);
        self.report.ignored_fields = self.ignored.into_iter().collect();
        self.report
    }
}
