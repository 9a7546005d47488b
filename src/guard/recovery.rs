//! Opening a data directory: the store and the journal after it read
//! back into a ledger (through [`Ledger::apply_record`], the one
//! interpreter), an older release's snapshot and journal migrated into
//! the store, the journal materialized into the store when it has grown,
//! and the journal reopened for writing, in a new generation when the
//! store took the old one.

use std::path::Path;

use chrono::Utc;

use super::horizon::let_go_at;
use super::{Guard, GuardError};
use crate::index::{IndexConfig, Lean, LeanNames, LetGo};
use crate::journal::{self as jn, Durability, Journal, JournalError, Layout, Position, Recovered};
use crate::ledger::Ledger;
use crate::ledger::changes;
use crate::store::{Loaded, Pinned, Reader, Span, Store, Texts};

/// Whether the store follows the journal while a guard serves
/// ([`Guard::open_as`]), and whether the index checkpoint is then built
/// again from the store once the journal after it filled a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The store does not follow: the journal grows until a start finds
    /// it longer than `compact_after` records and applies it. For the
    /// tests and tools that need the journal's tail as a crash would
    /// leave it.
    Off,
    /// The store follows, and the checkpoint is built again while serving
    /// (what [`Guard::open`] does, and the server by default).
    On,
    /// The store follows, and no checkpoint is built while serving
    /// (`--no-checkpoint-while-serving`): no second index is ever held,
    /// and a start after a crash rebuilds once the journal after the
    /// checkpoint has grown past a generation.
    WithoutCheckpointBuilds,
}

impl Guard {
    /// Opens a data directory: takes its lock (a second server is refused),
    /// reads the store and the journal after it back into memory (or, the
    /// first time, an older release's snapshot and journal, migrated into
    /// the store), materializes the journal into the store when it has
    /// grown past `compact_after` records, and opens the journal for
    /// writing. `progress` is called every 1,000,000 records.
    ///
    /// While it serves, the store follows the journal
    /// ([`crate::store::Follower`]): every batch the journal makes durable
    /// is applied to the store, the journal rolls to a new generation
    /// after `compact_after` records and the journal the store holds is
    /// deleted, and what leaves the horizon can leave memory
    /// ([`Guard::let_go`]). A start applies the journal's tail (what the
    /// store had not applied when the last process stopped) first.
    pub fn open(
        config: IndexConfig,
        data_dir: &Path,
        durability: Durability,
        compact_after: u64,
        progress: impl FnMut(u64),
    ) -> Result<(Guard, Recovered), JournalError> {
        Guard::open_as(
            config,
            data_dir,
            durability,
            compact_after,
            Follow::On,
            progress,
        )
    }

    /// [`Guard::open`], with the store following the journal or not, and
    /// the index checkpoint built again while serving or not, as `how`
    /// says ([`Follow`]).
    pub fn open_as(
        config: IndexConfig,
        data_dir: &Path,
        durability: Durability,
        compact_after: u64,
        how: Follow,
        mut progress: impl FnMut(u64),
    ) -> Result<(Guard, Recovered), JournalError> {
        let follow = how != Follow::Off;
        let lock = jn::lock(data_dir)?;
        let layout = Layout {
            dir: data_dir.to_owned(),
        };
        // A cluster node's directory holds the stream's state at its
        // position, and no journal: alone, it would start, then decide
        // without every later write of the cluster.
        if layout.is_cluster_node() {
            return Err(JournalError::Store {
                path: data_dir.to_owned(),
                reason: format!(
                    "`{}` is a cluster node's data directory; start it with `--cluster`, or restore a backup of it into a new directory to run it alone",
                    data_dir.display()
                ),
            });
        }
        let mut store = Store::open(data_dir)?;
        if follow {
            // What this start commits stays in SQLite's log, with what a
            // crashed process left there (gigabytes after a crash during a
            // checkpoint build): the follower's folder folds it in the
            // background once serving, on a connection of its own.
            store.fold_every(0)?;
        }
        let from = store.position()?;
        let mut ledger = Ledger::new(config);
        let (snaps, logs) = layout.generations()?;
        let older_layout = from.is_none() && !(snaps.is_empty() && logs.is_empty());
        if from.is_none() {
            // A journal of this release's format says the history before
            // it is in the store: without the store, starting would start
            // from less than was acknowledged.
            for g in &logs {
                let path = layout.journal(*g);
                if jn::header_version(&path)?.is_some_and(|v| v >= 2) {
                    return Err(JournalError::Store {
                        path: store.path().to_owned(),
                        reason: format!(
                            "the store `{}` holds no history, but `{}` is a journal of version 2, whose history before it is in the store: the store was lost or replaced; restore the data directory from a backup (`compliance-guard restore`)",
                            store.path().display(),
                            path.display()
                        ),
                    });
                }
            }
        }
        let bytes: u64 = snaps
            .iter()
            .map(|g| layout.snapshot(*g))
            .chain(logs.iter().map(|g| layout.journal(*g)))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let reader = Reader::open(data_dir)?;
        let mut n = 0u64;
        let mut tick = |n: &mut u64| {
            *n += 1;
            if n.is_multiple_of(1_000_000) {
                progress(*n);
            }
        };
        // Memory as a clean stop left it: its checkpoint, when it is of
        // the store as it is now, or behind it with the journal from its
        // position on (a crash since; the journal is replayed from there
        // below); otherwise rebuilt from the store.
        let checkpoint = match from {
            Some(at) if !older_layout => super::checkpoint::take(
                data_dir,
                config,
                at,
                store.next_interaction_seq()?,
                |made_at| journal_whole_from(&layout, made_at),
            ),
            _ => {
                super::checkpoint::discard(data_dir, "this start does not read one");
                None
            }
        };
        let mut base = checkpoint.as_ref().map(|(_, made_at)| *made_at);
        // The checkpoint's memory, with the journal from its position
        // replayed (an interaction the journal creates after it is
        // created, never read from the store, which holds it too). A
        // replay that fails (a record this release refuses, say) falls
        // back to a rebuild, the checkpoint removed.
        let mut loaded_replayed = None;
        if let Some((index, made_at)) = checkpoint {
            let created_from = index.next_seq();
            ledger.index = index;
            let tried = load_beside_index(&mut ledger, &store, config, &mut || tick(&mut n))
                .and_then(|loaded| {
                    let replayed = jn::recover_from(&layout, Some(made_at), |record| {
                        apply_logged_from(&mut ledger, Some(&reader), record, created_from)
                            .map_err(JournalError::Failed)?;
                        tick(&mut n);
                        Ok(())
                    })?;
                    Ok((loaded, replayed))
                });
            match tried {
                Ok(done) => loaded_replayed = Some(done),
                Err(e) => {
                    tracing::warn!(error = %e, "the journal after the index checkpoint could not be replayed onto it; memory is rebuilt from the store");
                    super::checkpoint::discard(
                        data_dir,
                        "the journal after it could not be replayed",
                    );
                    base = None;
                    ledger = Ledger::new(config);
                    n = 0;
                }
            }
        }
        let from_checkpoint = base.is_some();
        let replay_from = base.or(from);
        // How many records were replayed onto the checkpoint.
        let onto_base = loaded_replayed
            .as_ref()
            .map_or(0, |(_, r): &(FromStore, Recovered)| r.journal_records);
        let (loaded, mut replayed) = match loaded_replayed {
            Some(done) => done,
            None => {
                // About 160 bytes a record in a journal: make room up front.
                let loaded = load_store(
                    &mut ledger,
                    &store,
                    config,
                    bytes / 160,
                    Some(let_go_at(Utc::now().timestamp())),
                    &mut || {
                        tick(&mut n);
                        Ok(())
                    },
                    None,
                )?;
                let replayed = jn::recover_from(&layout, from, |record| {
                    apply_logged(&mut ledger, Some(&reader), record)
                        .map_err(JournalError::Failed)?;
                    tick(&mut n);
                    Ok(())
                })?;
                (loaded, replayed)
            }
        };
        let (now, store_latest, from_store) = (loaded.now, loaded.latest, loaded.records);
        if replay_from != from {
            // What the store has not taken yet: the journal after its
            // position (what is materialized below).
            replayed.journal_records = jn::recover_from(&layout, from, |_| Ok(()))?.journal_records;
        }
        if from.is_some() {
            replayed.snapshot_records = from_store;
        }
        if let Some((path, offset, reason)) = &replayed.cut {
            tracing::warn!(file = %path.display(), offset, reason, "a record cut short at the end of the journal (a crash mid-write) was dropped");
        }
        let cutoff = memory_cutoff(&ledger, config, now, store_latest);
        let mut generation = replayed.generation;
        let mut cut_to = replayed.cut.as_ref().map(|(_, offset, _)| *offset);
        let fresh = from.is_none() && !older_layout;
        if fresh {
            // A new data directory: an empty store at the start of
            // generation 0, whose journal opens below.
            store.begin()?.commit(Position::default())?;
        }
        // A journal of version 1 is never appended to once the store
        // exists (a crash cut the migration short after the store's
        // commit): an older release would read it alone, without the
        // history in the store, and start from less than was acknowledged.
        let older_journal = jn::header_version(&layout.journal(replayed.generation))?
            .is_some_and(|v| v < jn::VERSION);
        // When the store follows the journal while serving, the journal
        // after the store's position (what it had not applied when the
        // last process stopped) is applied at every start: the store then
        // starts at the journal's end. Otherwise once it has grown.
        let tail = if follow { 0 } else { compact_after };
        let materialize =
            older_layout || (from.is_some() && (replayed.journal_records > tail || older_journal));
        if materialize {
            // A record cut short at the end goes first: once the journal
            // rolls, that file is no longer the newest, where a cut record
            // would read as damage.
            if let Some((path, offset, _)) = &replayed.cut {
                cut_file(path, *offset)?;
            }
            // What is materialized must be on disk in the journal first:
            // the store never holds what a power cut could take from it.
            sync_journals(&layout, from)?;
            let mut writing = store.begin()?;
            let applied = match from {
                // An older layout (or a new directory): the whole state.
                None => {
                    for record in ledger.snapshot() {
                        writing.apply(record)?;
                    }
                    replayed.snapshot_records + replayed.journal_records
                }
                // The journal after the store's position, read again.
                Some(_) => {
                    let mut failed = None;
                    jn::recover_from(&layout, from, |record| {
                        if let Err(e) = writing.apply(record) {
                            failed = Some(e);
                            return Err(JournalError::Failed("the store refused a record".into()));
                        }
                        Ok(())
                    })
                    .map_err(|e| failed.take().map_or(e, JournalError::from))?;
                    replayed.journal_records
                }
            };
            let now = chrono::Utc::now();
            writing.forget_answers_before(
                (now - chrono::Duration::hours(crate::ledger::REQUEST_ID_TTL_HOURS)).timestamp(),
            )?;
            writing.commit(replayed.end)?;
            crate::hooks::abort_here("store-committed");
            if older_layout {
                tracing::info!(
                    records = applied,
                    store = %store.path().display(),
                    "migrated the data directory to the store (format of this release); releases before it refuse this directory now"
                );
            } else {
                tracing::info!(records = applied, "materialized the journal into the store");
            }
            generation = replayed.generation + 1;
            cut_to = None;
            // Everything read is in the store now: what left the horizon
            // leaves memory.
            let reserved = ledger.reservations().clone();
            let let_go = let_go_at(Utc::now().timestamp());
            let moved = ledger
                .index
                .move_to_disk(cutoff, u64::MAX, Some(let_go), |id| {
                    reserved.contains_key(id)
                });
            tracing::info!(
                records = moved,
                "full records beyond the horizon left memory"
            );
        }
        if !materialize
            && replayed.journal_records == 0
            && from.is_some_and(|p| p.generation < replayed.generation)
        {
            // A crash after the journal rolled, before the store's
            // position moved: the store holds everything, and the newer
            // generation nothing yet.
            store.set_position(Position {
                generation: replayed.generation,
                records: 0,
            })?;
        }
        // Where the store is once this start is done: the end of the
        // journal opened below.
        let start = match (materialize, store.position()?) {
            (true, _) | (false, None) => Position {
                generation,
                records: 0,
            },
            (false, Some(p)) => p,
        };
        let (handed, tap) = crate::store::Follower::channel(start.records, compact_after);
        let (handed, tap) = if follow {
            (Some(handed), Some(tap))
        } else {
            (None, None)
        };
        let journal = Journal::open(&layout, lock, generation, cut_to, durability, tap)?;
        if materialize {
            crate::hooks::abort_here("journal-rolled");
            store.set_position(Position {
                generation,
                records: 0,
            })?;
            crate::hooks::abort_here("position-moved");
        }
        // The journal from the index checkpoint's position stays (a start
        // after a crash replays it from there), as the follower keeps it:
        // when it is past a generation after it, the thread that builds a
        // new checkpoint from the store (`rebase`) is due at once, and the
        // follower keeps it while that one is built (and removes it, past
        // the bound, once none is). Not when this start replayed more
        // than a generation's records onto it (crashes that came before
        // any build finished): the next would replay more, so this start
        // writes one at its position below. And only while a follower
        // keeps it: without one (a tool's start) nothing would let it go.
        if base.is_some() && (!follow || onto_base > compact_after) {
            super::checkpoint::discard(
                data_dir,
                "the journal after it is not kept (longer than a generation, or no follower)",
            );
            base = None;
        }
        let keep = store.position()?.map(|p| match base {
            Some(b) if b.generation < p.generation => Position {
                generation: b.generation,
                records: 0,
            },
            _ => p,
        });
        remove_before(&layout, keep)?;
        // Without a follower (a tool's start), what SQLite's log holds is
        // folded into the file and the log emptied now; with one, its
        // folder does that while serving, off the follower's commits.
        if !follow {
            store.checkpoint()?;
        }
        let out_of_range = out_of_range_records(&ledger);
        if out_of_range > 0 {
            tracing::warn!(
                records = out_of_range,
                "records with a time outside what the API now accepts (an event before 1900, a time past 9999 or before year 1) were loaded as stored and count as usual; proto3 JSON clients cannot read them"
            );
        } else {
            tracing::info!(
                records = 0,
                "no record has a time outside what the API accepts"
            );
        }
        let on_disk = log_loaded(&mut ledger, None);
        // Memory from a checkpoint holds history from where the stopped
        // process held it (its walks moved that on, and dropped what was
        // before it), never from earlier.
        let held = from_checkpoint.then(|| ledger.index.held_from());
        let held_from = match (on_disk > 0, held) {
            (true, held) => Some(cutoff.max(held.unwrap_or(i64::MIN))),
            (false, Some(held)) => Some(held),
            (false, None) => None,
        };
        if let Some(held_from) = held_from {
            ledger.index.set_held_from(held_from);
        }
        // A start that leaves no checkpoint to replay a crash's journal
        // onto (it rebuilt memory, or the journal after its checkpoint
        // was past what is kept) writes one of memory as it is now, at
        // the store's position, before it serves: a crash from here on
        // starts from it rather than rebuilding again.
        if follow && base.is_none() {
            // The store's position it is made at may rest on the commits
            // of the process before that SQLite's log holds unflushed
            // (this start folded nothing): flushed first, a power cut
            // never leaves the store behind it.
            store.flush_log()?;
            match super::checkpoint::write_counted(
                data_dir,
                &ledger,
                start,
                "start",
                "index checkpoint written at the start: a start after a crash reads it and replays the journal after it",
            ) {
                Ok(_) => base = Some(start),
                Err(e) => {
                    super::checkpoint::discard(data_dir, "this start could not write one");
                    tracing::warn!(error = %e, "the index checkpoint could not be written at the start; a start after a crash rebuilds memory from the store");
                }
            }
        }
        let follower = match handed {
            Some(handed) => Some(crate::store::Follower::start(
                store,
                layout.clone(),
                start,
                durability,
                handed,
                Some(super::checkpoint::path_in(data_dir)),
                base.map(|b| b.generation),
            )?),
            None => {
                drop(store);
                None
            }
        };
        // Without it the server serves as well; a start after a crash
        // then replays more of the journal, or rebuilds.
        let rebase = follower.as_ref().filter(|_| how == Follow::On).and_then(|f| {
            super::rebase::Rebase::start(data_dir, config, f.checkpoints())
                .inspect_err(|e| tracing::warn!(error = %e, "the thread that moves the index checkpoint forward while serving could not be started; the server serves without it"))
                .ok()
        });
        let mut guard = Guard::over(ledger, Some((journal, follower)), Some(reader));
        guard.rebase = rebase;
        guard.from_checkpoint = from_checkpoint;
        if follow {
            guard.checkpoint_dir = Some(data_dir.to_owned());
        }
        if let Some(held_from) = held_from {
            guard.hold_from(held_from)?;
        }
        // What the start read with and let go of (the page cache the
        // follower's connection freed as it started; after a rebuild, the
        // rows read on a thread of their own and their connection's
        // cache) goes back to the system: glibc would keep it in its
        // arenas. After a rebuild at N = 10 M that was 72 MB
        // (docs/performance.md).
        super::os::give_back_freed_memory();
        Ok((guard, replayed))
    }

    /// Puts the boundary before which history may be on disk only at
    /// `cutoff` (a start that left records on disk).
    pub(super) fn hold_from(&self, cutoff: i64) -> Result<(), JournalError> {
        self.write()
            .map_err(|e| JournalError::Failed(e.to_string()))?
            .index
            .set_held_from(cutoff);
        self.memory_from
            .store(cutoff, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many records (interactions and restrictions) hold a time
    /// outside what a request may give now
    /// ([`crate::model::Interaction::has_time_out_of_range`], a
    /// restriction's `receivedAt` or end before 1900 or past 9999): stored
    /// before the bound, loaded and counted as they are. [`Guard::open`]
    /// logs it.
    pub fn out_of_range_records(&self) -> Result<u64, GuardError> {
        Ok(out_of_range_records(&*self.read()?))
    }
}

/// True when the journal holds every generation from `at`'s to the
/// newest: a start from an index checkpoint behind the store replays them
/// into memory. One deleted there leaves the checkpoint unused; one
/// damaged there fails the replay, which falls back to a rebuild (so the
/// journal is read once, by the replay itself).
fn journal_whole_from(layout: &Layout, at: Position) -> bool {
    let Ok((_, logs)) = layout.generations() else {
        return false;
    };
    let Some(&newest) = logs.last() else {
        return false;
    };
    (at.generation..=newest).all(|g| logs.contains(&g))
}

/// Flushes the journals a materialization reads (those at and after the
/// store's position): a record written but not flushed by a process that
/// crashed is in the page cache, readable, yet not on disk.
fn sync_journals(layout: &Layout, from: Option<Position>) -> Result<(), JournalError> {
    let (_, logs) = layout.generations()?;
    for g in logs
        .into_iter()
        .filter(|g| from.is_none_or(|p| *g >= p.generation))
    {
        let path = layout.journal(g);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|cause| JournalError::Io {
                action: "flushing",
                path,
                cause,
            })?;
    }
    Ok(())
}

/// Cuts a journal to `len` bytes (a torn last record), flushed.
fn cut_file(path: &Path, len: u64) -> Result<(), JournalError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|cause| JournalError::Io {
            action: "cutting",
            path: path.to_owned(),
            cause,
        })
}

/// Deletes what the store holds now: journals of generations before its
/// position, and every snapshot (an older layout's, migrated). A file
/// left by a crash before this ran is deleted at the next start.
fn remove_before(layout: &Layout, at: Option<Position>) -> Result<(), JournalError> {
    let Some(at) = at else {
        return Ok(());
    };
    let (snaps, logs) = layout.generations()?;
    let old_logs = logs.into_iter().filter(|g| *g < at.generation);
    let paths = snaps
        .iter()
        .flat_map(|g| [layout.snapshot(*g), layout.snapshot_count(*g)])
        .chain(old_logs.map(|g| layout.journal(g)));
    jn::remove_files(paths).map(|_| ())
}

fn out_of_range_records(ledger: &Ledger) -> u64 {
    let index = &ledger.index;
    let interactions = index
        .held_records()
        .filter(|r| r.has_time_out_of_range())
        .count();
    let restrictions = index
        .person_keys()
        .flat_map(|k| index.person_restrictions(k).iter())
        .filter(|r| {
            crate::model::out_of_range(r.received_at)
                || r.ended_at.is_some_and(crate::model::out_of_range)
                || r.ends_at.is_some_and(crate::model::outside_proto_json)
                || crate::model::outside_proto_json(r.recorded_at)
        })
        .count();
    u64::try_from(interactions + restrictions).unwrap_or(u64::MAX)
}

/// What a start read from the store ([`load_store`]).
pub(super) struct FromStore {
    /// The clock's time at the start (Unix seconds).
    pub now: i64,
    /// The latest interaction the store holds at or before `now`.
    pub latest: Option<i64>,
    /// Records read.
    pub records: u64,
}

/// The time before which history is beyond every window a Check reads:
/// the horizon and a day before `latest` (or before `now`, if earlier).
pub(super) fn horizon_cutoff(config: IndexConfig, now: i64, latest: i64) -> i64 {
    latest
        .min(now)
        .saturating_sub((i64::from(config.horizon_days) + 1) * 86_400)
}

/// Where memory read from the store (and the journal after it) holds
/// history from: the horizon before the latest interaction at or before
/// `now`. The journal after the store may hold later interactions than
/// `store_latest`, the store's latest: the latest of all counts, so the
/// cutoff is never earlier than the one the store's load left on disk.
pub(super) fn memory_cutoff(
    ledger: &Ledger,
    config: IndexConfig,
    now: i64,
    store_latest: Option<i64>,
) -> i64 {
    let latest_in_memory = ledger
        .index
        .held_records()
        .map(|r| r.occurs_at().timestamp())
        .filter(|t| *t <= now)
        .max();
    horizon_cutoff(
        config,
        now,
        store_latest.max(latest_in_memory).unwrap_or(now),
    )
}

/// Reads what memory holds from the store into `ledger`: everything after
/// the horizon in full, and of what is before it only what counting
/// needs. `reserve` is room to make beyond the store's records; `tick` is
/// called once a record. With `let_go`, the full records of
/// interactions in the horizon that happen before it leave memory as they
/// are read ([`crate::index::Index::let_go_in`]): a start holds what the
/// walk while serving would.
///
/// Beside a writer (a checkpoint built while serving), `store` reads in a
/// transaction the caller began, and the rows are read on `pinned`, a
/// connection the caller pinned to the same state of the store
/// ([`Store::pin_for_load`]). An error from `tick` stops the load.
pub(super) fn load_store(
    ledger: &mut Ledger,
    store: &Store,
    config: IndexConfig,
    reserve: u64,
    let_go: Option<LetGo>,
    tick: &mut dyn FnMut() -> Result<(), JournalError>,
    pinned: Option<Pinned>,
) -> Result<FromStore, JournalError> {
    // The interactions it records are numbered in creation order as the
    // store will number them when they reach it.
    ledger.index.set_next_seq(store.next_interaction_seq()?);
    // What happens more than the horizon (and a day) before now is beyond
    // every window a Check reads: its full record stays on disk (as
    // `Index::prune` drops counting entries). "Now" is the clock, or the
    // latest interaction recorded before it when that is earlier (a
    // restored backup, a lender idle for months): memory then keeps the
    // horizon before it, so that what was last recorded can still be
    // checked against.
    let now = Utc::now().timestamp();
    // `None`: the store holds no interaction, none goes to disk.
    let latest = store.latest_at_or_before(now)?;
    let cutoff = latest.map(|l| horizon_cutoff(config, now, l));
    let from = store.position()?;
    let in_full = match from {
        Some(_) => store.interactions_from(cutoff)?,
        None => 0,
    };
    let people = match from {
        Some(_) => store.people()?,
        None => 0,
    };
    ledger.index.reserve(
        usize::try_from(reserve + in_full).unwrap_or(0),
        usize::try_from(people).unwrap_or(0),
    );
    // People get their lists at the end, each at its size.
    ledger
        .index
        .begin_start(usize::try_from(in_full).unwrap_or(0));
    let prepare = |bytes: &[u8], texts: &mut Texts| lean_row(bytes, let_go?, texts);
    let records = match from {
        Some(_) => store.load(pinned, cutoff, prepare, |loaded| {
            match loaded {
                Loaded::Record(record) => ledger
                    .apply_record(*record)
                    .map_err(|e| JournalError::Failed(e.to_string()))?,
                Loaded::Interaction { seq, record } => {
                    ledger.index.set_next_seq(seq);
                    ledger
                        .apply_record(*record)
                        .map_err(|e| JournalError::Failed(e.to_string()))?;
                    // The store holds it: only its slot and counting entry
                    // stay, as the walk while serving would leave them.
                    if let Some(let_go) = let_go {
                        ledger.index.let_go_newest(let_go);
                    }
                }
                Loaded::Prepared {
                    seq,
                    prepared,
                    texts,
                } => {
                    ledger.index.set_next_seq(seq);
                    // One loan, the most common, needs no list.
                    let one;
                    let many: Vec<&str>;
                    let loans: &[&str] = match prepared.loan_count {
                        0 => &[],
                        1 => {
                            one = texts.get(prepared.loans);
                            std::slice::from_ref(&one)
                        }
                        n => {
                            many = texts.run(prepared.loans, n).collect();
                            &many
                        }
                    };
                    let names = LeanNames {
                        person_id: texts.get(prepared.person_id),
                        id: texts.get(prepared.id),
                        previous: prepared.previous.map(|p| texts.get(p)),
                        loans,
                    };
                    ledger
                        .index
                        .restore_lean(prepared.lean, names)
                        .map_err(|e| JournalError::Failed(format!("interaction: {e}")))?;
                }
                Loaded::OnDisk {
                    count,
                    next_seq,
                    largest_id,
                } => ledger
                    .index
                    .restore_on_disk(count, next_seq, largest_id.as_deref()),
            }
            tick()
        })?,
        None => 0,
    };
    ledger.index.finish_start();
    Ok(FromStore {
        now,
        latest,
        records,
    })
}

/// Reads from the store what memory holds beside an index read from the
/// index checkpoint ([`Store::for_each_beside_index`]), and
/// "now" and the latest interaction as [`load_store`] finds them.
fn load_beside_index(
    ledger: &mut Ledger,
    store: &Store,
    config: IndexConfig,
    tick: &mut dyn FnMut(),
) -> Result<FromStore, JournalError> {
    let now = Utc::now().timestamp();
    let latest = store.latest_at_or_before(now)?;
    // The conversations of every interaction memory holds: from where the
    // stopped process held history (earlier than this start's cutoff when
    // time passed since it stopped), or all of them when none is on disk.
    // Those of interactions on disk only leave memory after
    // (`log_loaded`).
    let index = &ledger.index;
    let convos_from = match index.on_disk() {
        0 => None,
        _ => latest.map(|l| horizon_cutoff(config, now, l).min(index.held_from())),
    };
    let records = store.for_each_beside_index(convos_from, |record| {
        ledger
            .apply_record(record)
            .map_err(|e| JournalError::Failed(e.to_string()))?;
        tick();
        Ok(())
    })?;
    Ok(FromStore {
        now,
        latest,
        records,
    })
}

/// What a start's reading thread makes of an interaction's record whose
/// full record the start lets go as it reads it ([`Lean`]), its texts
/// kept in the batch's [`Texts`].
struct LeanRow {
    lean: Lean,
    person_id: Span,
    id: Span,
    previous: Option<Span>,
    loans: Span,
    loan_count: usize,
}

/// [`LeanRow`] of a store's record, read in place from its bytes on the
/// thread that reads the store (`lean_read`): `None` for anything but one
/// interaction whose full record `let_go` lets go, or one that reading
/// in place does not take (the caller's thread decodes it whole, and
/// meets any error the record holds).
fn lean_row(bytes: &[u8], let_go: LetGo, texts: &mut Texts) -> Option<LeanRow> {
    let f = super::lean_read::fields(bytes)?;
    let lean = f.lean(let_go)?;
    let person_id = texts.push(f.person_id);
    let id = texts.push(f.id);
    let previous = f.previous_interaction_id.map(|p| texts.push(p));
    let loans = f.loans();
    // The first loan's place, or where one would be.
    let mut first = None;
    for l in &loans {
        let at = texts.push(l);
        first.get_or_insert(at);
    }
    Some(LeanRow {
        lean,
        person_id,
        id,
        previous,
        loans: first.unwrap_or(id),
        loan_count: loans.len(),
    })
}

/// Applies one logged record (a journal's, or a cluster's message's) to
/// the ledger: a change to an interaction on disk only applies to its
/// full record, read back from the store first.
pub(super) fn apply_logged(
    ledger: &mut Ledger,
    reader: Option<&Reader>,
    record: crate::pb::journal::Record,
) -> Result<(), String> {
    apply_logged_from(ledger, reader, record, u64::MAX)
}

/// [`apply_logged`], for a journal replayed onto an index checkpoint
/// behind the store: an interaction the store numbered at or after
/// `created_from` (the checkpoint's next place in creation order) was
/// created after the checkpoint, by a change the replay applies, and is
/// never read from the store (which holds it too, in a later state, and
/// would make it one brought back from disk).
fn apply_logged_from(
    ledger: &mut Ledger,
    reader: Option<&Reader>,
    record: crate::pb::journal::Record,
    created_from: u64,
) -> Result<(), String> {
    for change in changes(record) {
        let change = change.map_err(|e| e.to_string())?;
        if let Some(id) = change.interaction_id()
            && ledger.index.may_be_on_disk(id)
            && let Some(reader) = reader
            && let Some((seq, r)) = reader.get(id).map_err(|e| e.to_string())?
            && seq < created_from
        {
            ledger
                .index
                .load_from_disk(r, seq)
                .map_err(|e| e.to_string())?;
        }
        ledger.apply(change).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// After a start read what memory holds: the conversations of
/// interactions left on disk leave memory too, and the counts are logged
/// (with the stream's sequence, on a cluster node). Returns how many
/// interactions are on disk only.
pub(super) fn log_loaded(ledger: &mut Ledger, stream_sequence: Option<u64>) -> usize {
    let on_disk = ledger.index.on_disk();
    if on_disk > 0 {
        ledger.forget_convos_on_disk();
    }
    tracing::info!(
        in_memory = ledger.index.len() - on_disk,
        on_disk_only = on_disk,
        entries_only = ledger.index.let_go_count(),
        stream_sequence,
        "interactions loaded"
    );
    on_disk
}
