//! The guard: the rule set and the ledger together, with the operations
//! the service offers, each one atomic.
//!
//! This is where a Check with `reserve` becomes check-and-record in one
//! step: the decision and the recording happen under one write lock, so 50
//! concurrent reserving Checks under a 7-call cap yield exactly 7 allows.
//!
//! Every write has one shape (`Guard::commit`): under the write lock,
//! plan the change from the state as it is (nothing changes if the plan
//! is refused), append its records to the journal, then apply those same
//! changes to the ledger ([`crate::ledger::Ledger::apply`], which recovery
//! also uses). The caller answers once the commit is durable.
//!
//! One file per family of operations: [`check`](Guard::check),
//! interactions, media, conversations, people and reservations,
//! restrictions, with `access` deciding what a caller may see and
//! `recovery` opening a data directory (and `lean_read`, which reads the
//! counting fields of a stored interaction in place, its bytes never
//! decoded whole, at a start; `checkpoint`, the index written at a clean
//! stop (or by a start that rebuilt) and read back by the next start
//! instead; `rebase`, the same file built again from the store while
//! serving). Nothing here knows about gRPC:
//! the API layer translates requests into these calls and [`GuardError`]
//! into statuses, and logs decisions and metrics.

mod access;
mod check;
mod checkpoint;
pub mod cluster;
mod convos;
mod horizon;
mod interactions;
mod lean_read;
mod media;
mod os;
mod people;
mod rebase;
mod recovery;
mod restrictions;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};

use crate::index::{IndexConfig, IndexError, Resolved};
use crate::journal::{self as jn, Commit, Journal, JournalError};
use crate::ledger::{Change, Ledger};
use crate::model::ValidationError;
use crate::problem::FieldProblem;
use crate::rules::RuleSet;
use crate::store::Reader;

pub use cluster::{ClusterState, Pending};
pub use horizon::{Following, LET_GO_PART};
pub use recovery::Follow;

/// Most records one operation reads back from disk (a chain of earlier
/// interactions walks one at a time).
const MAX_LOADS: usize = 1_000;

/// Most interactions on disk only that one listing reads into memory.
pub const MAX_LISTED_FROM_DISK: usize = 100_000;

/// Most rows of the store one listing reads and decodes, whether its
/// filters keep them or not: a filter the store has no index for (a
/// channel, the content) is applied to each record read, and this bounds
/// what one request costs (see docs/operating.md for the cost measured).
pub const MAX_EXAMINED_FROM_DISK: usize = 1_000_000;

/// What a listing refused for its size is told.
const NARROW_IT: &str = "narrow it by time with `startedAfter` and `startedBefore` or `createdAfter` and `createdBefore` (the store reads those by its indexes), or name a `personId`";

pub use crate::ledger::Reservation;
pub use check::DEFAULT_RESERVE_TOLERANCE;
pub use restrictions::{RestrictionEffect, restriction_problems};

/// Why an operation failed. Nothing is stored when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The request is malformed; each problem names its field.
    #[error("{}", crate::problem::joined(.0))]
    Invalid(Vec<FieldProblem>),
    /// No such person or interaction (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),
    /// The id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's key lacks a right the operation needs (joining a
    /// conversation needs the agent right).
    #[error("{0}")]
    PermissionDenied(String),
    /// The guard is not ready to decide (no rule set loaded yet).
    #[error("{0}")]
    Unavailable(String),
    /// The caller's deadline passed before the answer was committed.
    #[error("the deadline passed before the reservation was committed; nothing was recorded")]
    DeadlineExceeded,
    /// A broken invariant; the request was not carried out.
    #[error("internal error: {0}")]
    Internal(String),
    /// A cluster node decided on a history the stream has moved past in
    /// one of these buckets (another node wrote first), or does not know
    /// a bucket's last sequence yet: the guard catches up on them and
    /// decides again. Never an answer.
    #[error("internal error: the cluster's stream moved on while deciding")]
    Conflict(Vec<u32>),
    /// An interaction's full record is on disk only: the guard reads it
    /// (without its lock), puts it back in memory and runs the operation
    /// again. Never an answer: one that reaches a caller is an internal
    /// error.
    #[error("internal error: interaction `{}` is on disk only", crate::model::echo(.id))]
    OnDisk {
        /// The person asked for, as given (`*`: any).
        person: String,
        /// The interaction asked for, as given.
        id: String,
    },
    /// An interaction brought back from disk whose conversation memory
    /// does not hold: the guard reads it from the store (without its
    /// lock), keeps it in memory and runs the operation again. Never an
    /// answer.
    #[error("internal error: the conversation of interaction `{}` is on disk only", crate::model::echo(.id))]
    ConvoOnDisk {
        /// Our id of the interaction.
        id: String,
        /// Its channel (an interaction without a stored conversation has
        /// an open, empty one of this channel).
        channel: crate::model::Channel,
    },
}

impl GuardError {
    /// One field's problem.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> GuardError {
        GuardError::Invalid(vec![FieldProblem::new(field, message)])
    }
}

impl From<Vec<FieldProblem>> for GuardError {
    fn from(problems: Vec<FieldProblem>) -> Self {
        GuardError::Invalid(problems)
    }
}

impl From<ValidationError> for GuardError {
    fn from(e: ValidationError) -> Self {
        GuardError::Invalid(vec![e.into()])
    }
}

impl From<IndexError> for GuardError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Invalid(v) => GuardError::Invalid(vec![v.into()]),
            IndexError::Problems(all) => {
                GuardError::Invalid(all.into_iter().map(FieldProblem::from).collect())
            }
            IndexError::UnknownPerson(_)
            | IndexError::UnknownInteraction { .. }
            | IndexError::UnknownRestriction { .. } => GuardError::NotFound(e.to_string()),
            IndexError::Duplicate { .. } => GuardError::AlreadyExists(e.to_string()),
            IndexError::OnDisk { person, id } => GuardError::OnDisk { person, id },
            IndexError::PersonChange { .. } => GuardError::field("personId", e.to_string()),
            IndexError::BadDebt { .. } => GuardError::field("loanIds", e.to_string()),
            IndexError::WouldJoin { .. }
            | IndexError::LoanInTwoDebts { .. }
            | IndexError::NotExternal(_)
            | IndexError::TooManyRestrictions(_)
            | IndexError::MediaRefused { .. }
            | IndexError::Deleted(_) => GuardError::FailedPrecondition(e.to_string()),
            // A start's own path: never a request's.
            IndexError::LeanRefused { .. } => GuardError::Internal(e.to_string()),
        }
    }
}

/// The changes a write starts with: the person it registers, when it names
/// someone the index does not know yet (`at` is when), so that the
/// journal has the person before anything of theirs.
fn registration(who: &Resolved, at: DateTime<Utc>) -> Vec<Change> {
    let mut changes = Vec::with_capacity(4);
    if let Some(names) = who.new_person() {
        changes.push(Change::Person {
            names: names.clone(),
            at: Some(at),
        });
    }
    changes
}

/// The changes' records as the frames they travel in: one frame per run
/// of changes; a change that must travel alone gets a frame of its own.
fn frames(changes: &[Change]) -> Vec<Vec<crate::pb::journal::Record>> {
    let mut frames = Vec::new();
    let mut run = Vec::with_capacity(changes.len());
    for c in changes {
        if c.travels_alone() {
            if !run.is_empty() {
                frames.push(std::mem::take(&mut run));
            }
            frames.push(vec![c.record()]);
        } else {
            run.push(c.record());
        }
    }
    if !run.is_empty() {
        frames.push(run);
    }
    frames
}

/// A failure to make a change durable: the caller must treat it as not
/// done (the change is not acknowledged, and the guard stops answering).
fn not_durable(e: JournalError) -> GuardError {
    GuardError::Unavailable(format!("the change could not be made durable: {e}"))
}

/// The guard: rules and history, shared by every request.
#[derive(Debug)]
pub struct Guard {
    rules: ArcSwapOption<RuleSet>,
    ledger: RwLock<Ledger>,
    /// `None`: in memory only (tests, benchmarks).
    journal: Option<Journal>,
    /// The store following the journal while serving; it finishes after
    /// the journal closes and before the data directory's lock is let go
    /// (`Drop`), so that it applies everything the journal wrote and no
    /// other process writes the store beside it.
    follower: Option<crate::store::Follower>,
    /// The store's full records of what memory holds no longer (`None`:
    /// in memory only).
    store: Option<Reader>,
    /// `Some`: a node of a cluster, whose log of record is the cluster's
    /// stream rather than `journal` (which is then `None`).
    cluster: Option<Arc<cluster::Node>>,
    /// The time (Unix seconds) before which counting entries may be on
    /// disk only: a Check whose windows reach before it is refused
    /// ([`Guard::check`]). `i64::MIN`: everything is in memory.
    memory_from: AtomicI64,
    /// When the rule set in force was put in force.
    rules_loaded_at: Mutex<Option<DateTime<Utc>>>,
    /// How many seconds before `now` a reserving Check's `at` may be;
    /// negative: any (see [`Guard::set_reserve_tolerance`]).
    reserve_tolerance: AtomicI64,
    /// Set when a journaled change could not be applied: memory no longer
    /// holds what the journal says, so no Check is answered again.
    broken: AtomicBool,
    /// The data directory a clean stop writes the index checkpoint in
    /// (`None`: in memory only, or a store that does not follow the
    /// journal; see `checkpoint`).
    checkpoint_dir: Option<std::path::PathBuf>,
    /// True when this guard's memory was read from the index checkpoint
    /// (with the journal after it replayed) rather than rebuilt from the
    /// store.
    from_checkpoint: bool,
    /// The thread that moves the index checkpoint forward while serving
    /// (`rebase`), with a follower.
    rebase: Option<rebase::Rebase>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Before anything else: a checkpoint it builds never meets the
        // one this stop writes.
        if let Some(rebase) = self.rebase.take() {
            rebase.stop();
        }
        if let Some(node) = self.cluster.take() {
            node.close(self.follower.take());
            return;
        }
        let Some(journal) = self.journal.take() else {
            return;
        };
        let (lock, whole) = journal.close_keeping_lock();
        // A clean stop leaves a checkpoint of its own position, or none
        // (not the one it started from, which a start after a crash
        // would replay the journal from).
        match self.follower.take().map(crate::store::Follower::finish) {
            Some(Some(at)) if whole => self.write_checkpoint(at),
            Some(_) => {
                if let Some(dir) = self.checkpoint_dir.as_deref() {
                    checkpoint::discard(dir, "this stop writes none");
                }
                // Memory may hold changes applied before their write
                // failed, which the journal does not, or the store is
                // behind the journal: a start must rebuild.
                tracing::warn!(
                    "no index checkpoint is written: a journal write failed, or the store stopped following the journal; the next start rebuilds memory from the store"
                );
            }
            None => {}
        }
        drop(lock);
    }
}

impl Guard {
    /// A guard with an empty ledger and no rule set: it answers no Check
    /// until [`Guard::set_rules`] is called.
    pub fn new(config: IndexConfig) -> Guard {
        Guard::over(Ledger::new(config), None, None)
    }

    fn over(
        ledger: Ledger,
        journal: Option<(Journal, Option<crate::store::Follower>)>,
        store: Option<Reader>,
    ) -> Guard {
        let (journal, follower) = journal.unzip();
        let follower = follower.flatten();
        Guard {
            rules: ArcSwapOption::empty(),
            ledger: RwLock::new(ledger),
            journal,
            follower,
            store,
            cluster: None,
            memory_from: AtomicI64::new(i64::MIN),
            rules_loaded_at: Mutex::new(None),
            reserve_tolerance: AtomicI64::new(check::tolerance_seconds(Some(
                DEFAULT_RESERVE_TOLERANCE,
            ))),
            broken: AtomicBool::new(false),
            checkpoint_dir: None,
            from_checkpoint: false,
            rebase: None,
        }
    }

    /// True when memory was read from the index checkpoint (a clean
    /// stop's, a start's or one built while serving, with the journal
    /// after it replayed; `checkpoint`), false when it was rebuilt from
    /// the store (or this guard has no data directory).
    pub fn started_from_checkpoint(&self) -> bool {
        self.from_checkpoint
    }

    /// Writes the index checkpoint at a clean stop: the journal closed,
    /// and the store, at `at`, holding all of it. Not when memory was
    /// found to disagree with the journal. A failure is logged: the next
    /// start rebuilds from the store.
    fn write_checkpoint(&self, at: jn::Position) {
        let Some(dir) = self.checkpoint_dir.as_deref() else {
            return;
        };
        let ledger = match self.ledger.read() {
            Ok(ledger) if !self.broken.load(Ordering::SeqCst) => ledger,
            _ => {
                checkpoint::discard(dir, "this stop writes none");
                tracing::warn!(
                    "no index checkpoint is written: memory stopped agreeing with the journal; the next start rebuilds it from the store"
                );
                return;
            }
        };
        if checkpoint::is_at(dir, at, ledger.index.next_seq()) {
            tracing::info!(
                made_at = %format!("{}:{}", at.generation, at.records),
                "the index checkpoint in place is of this stop's position (nothing was written since it was made); it is not written again"
            );
            // Its rename is on disk before the journals go (one built
            // while serving whose flush failed).
            if let Err(e) = checkpoint::flush_dir(dir) {
                tracing::warn!(error = %e, "the data directory could not be flushed at the stop; the journals are kept for the next start");
                return;
            }
        } else {
            let written = checkpoint::write_counted(
                dir,
                &ledger,
                at,
                "stop",
                "index checkpoint written: the next start reads memory from it",
            );
            if let Err(e) = written {
                checkpoint::discard(dir, "this stop could not write one");
                tracing::warn!(error = %e, "the index checkpoint could not be written; the next start rebuilds memory from the store");
                return;
            }
        }
        // The checkpoint is of the store's position: the journals before
        // its generation, kept for an older one, are no longer needed.
        let layout = jn::Layout {
            dir: dir.to_owned(),
        };
        if let Err(e) = jn::remove_journals_before(&layout, at.generation) {
            tracing::warn!(error = %e, "the journals the store and the index checkpoint hold could not be deleted at the stop; the next start deletes them");
        }
    }

    /// The journal's writer counters, if there is a journal.
    pub fn journal_stats(&self) -> Option<jn::Stats> {
        self.journal.as_ref().map(Journal::stats)
    }

    /// Puts a rule set in force; every later Check sees it whole.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        self.rules.store(Some(rules));
        if let Ok(mut at) = self.rules_loaded_at.lock() {
            *at = Some(Utc::now());
        }
    }

    /// When the rule set in force was put in force.
    pub fn rules_loaded_at(&self) -> Option<DateTime<Utc>> {
        self.rules_loaded_at.lock().ok().and_then(|at| *at)
    }

    /// The rule set in force, if one is loaded.
    pub fn rules(&self) -> Option<Arc<RuleSet>> {
        self.rules.load_full()
    }

    /// The rule set in force, or UNAVAILABLE.
    fn rules_in_force(&self) -> Result<Arc<RuleSet>, GuardError> {
        self.rules().ok_or_else(|| {
            GuardError::Unavailable("no rule set is loaded yet; retry shortly".into())
        })
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Ledger>, GuardError> {
        self.ledger
            .read()
            .map_err(|_| GuardError::Internal("the index lock is poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Ledger>, GuardError> {
        self.ledger
            .write()
            .map_err(|_| GuardError::Internal("the index lock is poisoned".into()))
    }

    /// The one shape of a write: under the write lock, `plan` reads the
    /// ledger and returns the changes to make and the answer (refusing
    /// leaves everything as it was); the changes are appended to the
    /// journal, then applied to the ledger. The commit resolves when they
    /// are durable; [`Guard::durable`] waits for it.
    ///
    /// A plan that needs a record on disk only ([`GuardError::OnDisk`]) is
    /// run again once the record is back in memory ([`Guard::load`]).
    fn commit<T>(
        &self,
        mut plan: impl FnMut(&Ledger) -> Result<(Vec<Change>, T), GuardError>,
    ) -> Result<(T, Pending), GuardError> {
        let mut loads = 0;
        loop {
            let mut ledger = self.write()?;
            match plan(&ledger) {
                Err(GuardError::OnDisk { person, id }) if loads < MAX_LOADS => {
                    drop(ledger);
                    self.load(&person, &id)?;
                    loads += 1;
                }
                Err(GuardError::ConvoOnDisk { id, channel }) if loads < MAX_LOADS => {
                    drop(ledger);
                    let convo = self.stored_convo(&id, channel)?;
                    self.write()?.recall_convo(convo);
                    loads += 1;
                }
                Err(e) => return Err(e),
                Ok((changes, answer)) => {
                    let commit = self.commit_locked(&mut ledger, changes)?;
                    return Ok((answer, commit));
                }
            }
        }
    }

    /// [`Guard::commit`], then [`Guard::durable`], through
    /// [`Guard::retrying`].
    async fn write_through<T>(
        &self,
        mut plan: impl FnMut(&Ledger) -> Result<(Vec<Change>, T), GuardError>,
    ) -> Result<T, GuardError> {
        self.retrying(|| self.commit(&mut plan)).await
    }

    /// Runs `attempt` (a plan and its commit) and waits until it is
    /// durable. On a cluster node:
    /// - a plan that met a bucket it does not know, or whose publish lost
    ///   to another node's, catches up on those buckets and runs again, so
    ///   that every answer is decided on the whole history before it;
    /// - a plan refused as not found or not allowed in the state it read
    ///   runs once more after the read barrier, so that a thing just made
    ///   on another node is found (the refusal stands if it still holds).
    async fn retrying<T>(
        &self,
        mut attempt: impl FnMut() -> Result<(T, Pending), GuardError>,
    ) -> Result<T, GuardError> {
        let mut conflicts = 0;
        let mut fresh = self.cluster.is_none();
        loop {
            let outcome = match attempt() {
                Ok((answer, pending)) => self.durable(pending).await.map(|()| answer),
                Err(e) => Err(e),
            };
            match outcome {
                Err(GuardError::Conflict(buckets)) => {
                    conflicts += 1;
                    self.after_conflict(conflicts, &buckets).await?;
                }
                Err(GuardError::NotFound(_) | GuardError::FailedPrecondition(_)) if !fresh => {
                    fresh = true;
                    self.read_barrier().await?;
                }
                other => return other,
            }
        }
    }

    /// An interaction on disk only, read from the store with its place in
    /// creation order (the caller holds no lock); `None` when the store
    /// has none by that id.
    fn read_disk(
        &self,
        any_id: &str,
    ) -> Result<Option<(u64, crate::model::Interaction)>, GuardError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        store
            .get(any_id)
            .map_err(|e| GuardError::Internal(e.to_string()))
    }

    /// The conversation the store holds for an interaction (an open,
    /// empty one of `channel` when it holds none), read without the lock.
    fn stored_convo(
        &self,
        interaction_id: &str,
        channel: crate::model::Channel,
    ) -> Result<crate::model::Convo, GuardError> {
        let stored = match &self.store {
            Some(store) => store
                .convo(interaction_id)
                .map_err(|e| GuardError::Internal(e.to_string()))?,
            None => None,
        };
        Ok(stored.unwrap_or_else(|| crate::model::Convo::open(interaction_id, channel)))
    }

    /// An interaction by our id or `ext-<externalId>`, optionally checked
    /// to belong to `person`, from memory or else from the store (without
    /// the lock, and not put back in memory: a read of old history never
    /// grows memory). What the caller may see is the caller's to check.
    pub(crate) fn find(
        &self,
        person: Option<&str>,
        any_id: &str,
    ) -> Result<crate::model::Interaction, GuardError> {
        let unknown = || {
            GuardError::from(IndexError::UnknownInteraction {
                person: person.unwrap_or("*").to_owned(),
                id: any_id.to_owned(),
            })
        };
        match self.read()?.index.get(person, any_id) {
            Ok(found) => return Ok(found.clone()),
            Err(IndexError::OnDisk { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let (_, found) = self.read_disk(any_id)?.ok_or_else(unknown)?;
        {
            let ledger = self.read()?;
            // In memory whole now: a write brought it back while the store
            // was read (memory's is the latest), or it is in memory under
            // another name (an externalId since changed: the store's row
            // is stale, and the name names nothing). Memory answers either
            // way. (One let go in the horizon: the store's row is its
            // latest.)
            if ledger.index.holds(&found.id) {
                return match ledger.index.get(person, any_id) {
                    Ok(found) => Ok(found.clone()),
                    Err(_) => Err(unknown()),
                };
            }
        }
        if let Some(person) = person {
            let ledger = self.read()?;
            let owner = ledger.index.find_person(&found.person_id)?;
            if owner.is_none() || ledger.index.find_person(person)? != owner {
                return Err(unknown());
            }
        }
        Ok(found)
    }

    /// The interactions on disk only that a listing reads, those its
    /// filters pass, with their places in creation order (the caller holds
    /// no lock), and the index's [`crate::index::Index::epoch`] from before
    /// the store was read. The store reads only the rows within the
    /// listing's times and company, by its time indexes for a listing of
    /// everyone's; a listing is refused once more than
    /// [`MAX_LISTED_FROM_DISK`] pass its filters or more than
    /// [`MAX_EXAMINED_FROM_DISK`] would be read, so that it never holds an
    /// unbounded part of the history in memory nor reads it all.
    fn list_from_disk(
        &self,
        scope: &crate::index::DiskScope,
        q: &crate::index::ListQuery,
    ) -> Result<(Vec<(u64, crate::model::Interaction)>, u64), GuardError> {
        let Some(store) = &self.store else {
            return Ok((Vec::new(), self.read()?.index.epoch()));
        };
        let failed = |e: crate::store::StoreError| GuardError::Internal(e.to_string());
        // What happens from the history held whole on is in memory,
        // unless records in the horizon were let go: then every row is
        // read, and those memory holds whole are read from memory.
        let (before, epoch) = {
            let index = &self.read()?.index;
            let before = if index.let_go_count() > 0 {
                i64::MAX
            } else {
                index.held_from()
            };
            (before, index.epoch())
        };
        let narrow = crate::store::Narrow {
            times: q.time_bounds(),
            company: q.company.clone(),
        };
        let limits = crate::store::Limits {
            examined: MAX_EXAMINED_FROM_DISK,
            kept: MAX_LISTED_FROM_DISK,
        };
        let (listed, whose) = match scope {
            crate::index::DiskScope::Person(ids) => (
                store.of_people(ids, before, &narrow, limits, |r| q.matches(r)),
                "of this person's interactions",
            ),
            crate::index::DiskScope::All => (
                store.scan(before, &narrow, limits, |r| q.matches(r)),
                "interactions",
            ),
        };
        let listed = listed.map_err(failed)?;
        match listed.refused {
            None => Ok((listed.found, epoch)),
            Some(crate::store::Refused::Kept(most)) => {
                Err(GuardError::FailedPrecondition(format!(
                    "more than {most} {whose} whose full records are on disk only match this listing; {NARROW_IT}"
                )))
            }
            Some(crate::store::Refused::Examined(most)) => {
                Err(GuardError::FailedPrecondition(format!(
                    "this listing would read more than {most} {whose} from the store (its filters other than time and company are applied to each record read); {NARROW_IT}"
                )))
            }
        }
    }

    /// Puts the interactions these ids name back in memory if they are on
    /// disk only (the store is read without the lock), so that a write
    /// that checks them (an externalId or id taken) sees them.
    fn preload<'a>(&self, any_ids: impl IntoIterator<Item = &'a str>) -> Result<(), GuardError> {
        'names: for any_id in any_ids {
            for _ in 0..4 {
                let (on_disk, spared, epoch) = {
                    let ledger = self.read()?;
                    (
                        matches!(
                            ledger.index.get(None, any_id),
                            Err(IndexError::OnDisk { .. })
                        ),
                        ledger.index.spared(any_id),
                        ledger.index.epoch(),
                    )
                };
                // One brought back a walk ago would leave at the next walk:
                // the plan about to run must still find it.
                if spared {
                    self.write()?.index.renew(any_id);
                }
                if !on_disk {
                    continue 'names;
                }
                let Some((seq, record)) = self.read_disk(any_id)? else {
                    continue 'names;
                };
                let mut ledger = self.write()?;
                if ledger.index.holds(&record.id) {
                    continue 'names;
                }
                // Memory let go of records while the store was read: the
                // row may be older than a change made and let go since.
                if ledger.index.epoch() == epoch {
                    ledger.index.load_from_disk(record, seq)?;
                    continue 'names;
                }
            }
            return Err(GuardError::Unavailable(format!(
                "memory let go of records four times while `{}` was read from the store; retry",
                crate::model::echo(any_id)
            )));
        }
        Ok(())
    }

    /// Reads an interaction from the store (without the lock: a disk read
    /// never holds up a Check) and puts it back in memory, where it stays
    /// until the walk after next lets it go again ([`Guard::let_go`]); one
    /// the store does not have either is not found.
    fn load(&self, person: &str, any_id: &str) -> Result<(), GuardError> {
        let unknown = || {
            GuardError::from(IndexError::UnknownInteraction {
                person: person.to_owned(),
                id: any_id.to_owned(),
            })
        };
        let epoch = self.read()?.index.epoch();
        let Some((seq, record)) = self.read_disk(any_id)? else {
            return Err(unknown());
        };
        let mut ledger = self.write()?;
        // In memory whole now: another write brought it back while the
        // store was read (the plan runs again and finds it), or it is in
        // memory under another name (an externalId since changed: the
        // store's row is stale, and the name names nothing).
        if ledger.index.holds(&record.id) {
            return match ledger.index.get(None, any_id) {
                Ok(_) => Ok(()),
                Err(_) => Err(unknown()),
            };
        }
        // Memory let go of records while the store was read: the row may
        // be older than a change made and let go since. The plan runs
        // again and reads it again.
        if ledger.index.epoch() != epoch {
            return Ok(());
        }
        ledger.index.load_from_disk(record, seq)?;
        Ok(())
    }

    /// [`Guard::commit`]'s second half, for a caller that already holds
    /// the write lock: appends the changes' records (in the order the
    /// changes happen, since the lock is held), then applies the changes.
    /// On a cluster node nothing is applied here: the changes are to be
    /// published ([`Pending`]), and the node applies them as the stream
    /// gives them back.
    ///
    /// With no changes, the commit still waits for everything appended
    /// before it: an answer read from the ledger (a retry's repeated
    /// answer, an existing record) is never sent before what it rests on
    /// is durable.
    fn commit_locked(
        &self,
        ledger: &mut Ledger,
        changes: Vec<Change>,
    ) -> Result<Pending, GuardError> {
        if let Some(node) = &self.cluster {
            return node.to_publish(ledger, &changes);
        }
        let commit = match &self.journal {
            None => Commit::none(),
            Some(j) => {
                let mut commit = None;
                // The journal is sequential, so the last commit waits for
                // all of the frames.
                for records in frames(&changes) {
                    commit = Some(j.append(&records).map_err(not_durable)?);
                }
                match commit {
                    Some(commit) => commit,
                    None => j.append(&[]).map_err(not_durable)?,
                }
            }
        };
        // What these changes touch stays in memory until the store holds
        // their frame (the last one: none of them is later).
        ledger.index.set_frame(commit.seq());
        for change in changes {
            if let Err(e) = ledger.apply(change) {
                // The journal holds a change memory could not take: stop
                // answering rather than decide on a history that differs
                // from the one a restart would read.
                self.broken.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, "a journaled change could not be applied; no Check is answered until the server restarts");
                return Err(GuardError::Internal(format!(
                    "a journaled change could not be applied: {e}"
                )));
            }
        }
        Ok(Pending::Journal(commit))
    }

    /// A commit that resolves once everything appended so far is durable:
    /// what an answer read from the ledger waits for, so that it never
    /// rests on a change a crash could take back. A cluster node's state
    /// is what the stream acknowledged already.
    fn barrier(&self) -> Result<Pending, GuardError> {
        match &self.journal {
            None => Ok(Pending::Done),
            Some(j) => j.append(&[]).map(Pending::Journal).map_err(not_durable),
        }
    }

    /// Waits until a commit is durable: the journal's, or a cluster
    /// node's publish, acknowledged by the stream and applied here.
    async fn durable(&self, pending: Pending) -> Result<(), GuardError> {
        match pending {
            Pending::Done => Ok(()),
            Pending::Journal(commit) => commit.wait().await.map_err(not_durable),
            Pending::Publish(publication) => match &self.cluster {
                Some(node) => node.publish(publication).await,
                None => Err(GuardError::Internal(
                    "a change to publish on a node that is not in a cluster".into(),
                )),
            },
        }
    }

    /// How many interactions the index holds.
    pub fn len(&self) -> usize {
        self.read().map_or(0, |l| l.index.len())
    }

    /// True when the index holds no interaction.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How much the guard holds, read under one read lock (never the write
    /// lock), for the gauges the server samples: what grows with use and
    /// what should drain (open reservations).
    pub fn sizes(&self) -> Sizes {
        self.read().map_or(Sizes::default(), |l| Sizes {
            people: l.index.people_len(),
            interactions: l.index.len(),
            open_reservations: l.reservations().len(),
            whole_in_memory: l.index.len() - l.index.on_disk() - l.index.let_go_count(),
        })
    }
}

/// What [`Guard::sizes`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// People in the registry (borrowers, each counted once whatever its
    /// aliases).
    pub people: usize,
    /// Interactions in the index, deleted ones included.
    pub interactions: usize,
    /// Reservations recorded by a reserving Check and not yet updated,
    /// deleted or canceled.
    pub open_reservations: usize,
    /// Interactions whose full records are in memory: the others are on
    /// disk only (beyond the horizon) or, inside it, in memory as their
    /// counting entry and names only (let go once the store held them).
    pub whole_in_memory: usize,
}
