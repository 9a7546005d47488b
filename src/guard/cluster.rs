//! A guard as one node of a cluster on NATS JetStream: the cluster's
//! stream is its log of record in place of the local journal.
//!
//! - **Writing.** A write is planned under the write lock as on a single
//!   node, but nothing is applied then: its changes are published with,
//!   for each bucket of a key it decides on (the person's id and names,
//!   the `externalId`s it sets or frees; [`keys`]), the bucket's last
//!   sequence the node had applied ([`Node::to_publish`]). JetStream
//!   refuses the write if any moved since, and the guard then catches up
//!   on those buckets and plans again ([`Guard::write_through`]). So a
//!   person's writes are decided one at a time across the cluster (a cap
//!   holds across nodes; a lost `voiceSpokeWithFirstParty` cannot happen),
//!   writes about different people go on in parallel, and a name or an
//!   `externalId` is never taken twice. Generated ids (`IT-`, `BO-`,
//!   `RS-`) carry a node number each process start claims in the stream,
//!   so two processes never make the same one.
//! - **Applying.** A node's state changes only by applying the stream: a
//!   task reads it in order ([`follow`]) and applies each message to
//!   memory, under the write lock, and hands it to the store's follower,
//!   which writes it with the stream's sequence as its position. A write
//!   is answered once the node has applied its own message.
//! - **Reading.** Before a Check or a read, the node learns the stream's
//!   last sequence from its leader, in a round trip that starts after the
//!   read began and is shared by every read waiting at once, and waits
//!   until it has applied it ([`Guard::read_barrier`]): a Check sees every
//!   write acknowledged before it began, on any node. A node that cannot
//!   reach the leader answers UNAVAILABLE, never an allow.
//! - **A gap** in the stream (a message deleted or purged, which the
//!   stream's settings forbid) stops the node: it answers no Check until
//!   it is rebuilt. So does a stream behind the node's store at start
//!   ([`Guard::check_stream_not_behind`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_stream::StreamExt;

use super::{Guard, GuardError, frames};
use crate::cluster::{BUCKETS, ClusterConfig, Entry, Fenced, Link, PublishFailure};
use crate::index::IndexConfig;
use crate::journal::{self as jn, Commit, Durability, JournalError, Layout, Position, Tapped};
use crate::ledger::{Change, Ledger};
use crate::store::{Follower, Reader, Store};

/// How many times a write is planned again after losing to another
/// node's before it answers UNAVAILABLE.
const MAX_CONFLICTS: u32 = 200;

/// How long a write acknowledged by the stream may take to be applied on
/// its own node before the node answers UNAVAILABLE (the write stands).
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// How long the stream may deliver nothing before the node asks its
/// leader whether it is behind.
const QUIET: Duration = Duration::from_millis(1000);

/// What a write waits for before its answer is sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Pending {
    /// Nothing (no journal, or a cluster node's state read as applied).
    Done,
    /// The local journal's commit.
    Journal(Commit),
    /// A cluster node's changes, to publish to the stream.
    Publish(Publication),
}

impl Pending {
    /// Waits for the local journal (an import's batch). A cluster's
    /// publication is not waited on here: imports go through a single
    /// node's data directory.
    pub async fn wait(self) -> Result<(), JournalError> {
        match self {
            Pending::Done => Ok(()),
            Pending::Journal(commit) => commit.wait().await,
            Pending::Publish(_) => Err(JournalError::Failed(
                "a cluster node's change is published by the server, not by a command".into(),
            )),
        }
    }

    /// Waits for the local journal, blocking the thread (the commands
    /// that run outside an async runtime: import). A cluster's
    /// publication is not waited on here: those commands never open a
    /// cluster node.
    pub fn wait_blocking(self) -> Result<(), JournalError> {
        match self {
            Pending::Done => Ok(()),
            Pending::Journal(commit) => commit.wait_blocking(),
            Pending::Publish(_) => Err(JournalError::Failed(
                "a cluster node's change is published by the server, not by a command".into(),
            )),
        }
    }
}

/// One write's changes as a cluster node publishes them: a message per
/// bucket, the first with the changes.
#[derive(Debug)]
pub struct Publication {
    messages: Vec<Fenced>,
}

/// What a cluster node reports of itself: health, metrics and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// This node's name.
    pub node_id: String,
    /// The stream's last sequence applied to memory.
    pub applied: u64,
    /// Why the node stopped applying the stream, if it did.
    pub failed: Option<String>,
}

/// A bucket whose last sequence the node does not know (after a restart:
/// the array is not stored); it is asked of the leader before a write
/// fences it.
const UNKNOWN: u64 = u64::MAX;

/// A cluster node's side of the guard.
#[derive(Debug)]
pub(crate) struct Node {
    link: Link,
    /// The last sequence applied of each bucket ([`crate::cluster::BUCKETS`]);
    /// it moves only under the ledger's write lock.
    buckets: Vec<AtomicU64>,
    /// The stream's last sequence applied to memory; it moves only under
    /// the ledger's write lock, so a plan reads the sequence its state is
    /// at.
    applied: AtomicU64,
    /// The same, for waiting on.
    applied_tx: tokio::sync::watch::Sender<u64>,
    /// To the store's follower; `None` once closing.
    tap: Mutex<Option<SyncSender<Tapped>>>,
    /// Why the node stopped applying the stream.
    failed: Mutex<Option<String>>,
    /// When the last read barrier that succeeded began: every write
    /// acknowledged before it is applied here.
    fresh_as_of: Mutex<Option<std::time::Instant>>,
    /// The task that follows the stream.
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// The data directory's lock, let go after the store's follower ends.
    lock: Mutex<Option<std::fs::File>>,
}

impl Node {
    fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    fn fail(&self, why: String) {
        tracing::error!(reason = %why, "this node stopped applying the cluster's stream and answers no Check until it is rebuilt (from a backup, or from the stream's start with an empty data directory)");
        metrics::counter!("compliance_guard_cluster_failures_total").increment(1);
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(why);
        }
    }

    /// The changes of a plan, framed to publish with the last sequence of
    /// each bucket they touch, as the node had applied them (the caller
    /// holds the write lock, so they are the sequences its plan read). A
    /// bucket the node does not know yet is a conflict: it is asked of the
    /// leader and the plan made again.
    pub(crate) fn to_publish(
        &self,
        ledger: &mut Ledger,
        changes: &[Change],
    ) -> Result<Pending, GuardError> {
        if changes.is_empty() {
            return Ok(Pending::Done);
        }
        // The ids this plan made are taken from now on, whether or not
        // the stream takes the write.
        for change in changes {
            match change {
                Change::Interaction(i) => ledger.index.note_planned("IT", &i.id),
                Change::Person { names, .. } => ledger.index.note_planned("BO", &names.id),
                Change::Restriction(r) => ledger.index.note_planned("RS", &r.id),
                _ => {}
            }
        }
        let buckets: std::collections::BTreeSet<u32> = keys(ledger, changes)
            .iter()
            .map(|k| ClusterConfig::bucket(k))
            .collect();
        let unknown: Vec<u32> = buckets
            .iter()
            .copied()
            .filter(|b| self.bucket_seq(*b) == UNKNOWN)
            .collect();
        if !unknown.is_empty() {
            return Err(GuardError::Conflict(unknown));
        }
        let mut bytes = Vec::new();
        for records in frames(changes) {
            jn::frame_operation(&records, &mut bytes);
        }
        let mut messages: Vec<Fenced> = buckets
            .iter()
            .map(|b| Fenced {
                bucket: *b,
                expected: self.bucket_seq(*b),
                bytes: Vec::new(),
            })
            .collect();
        if let Some(first) = messages.first_mut() {
            first.bytes = bytes;
        }
        Ok(Pending::Publish(Publication { messages }))
    }

    fn bucket_seq(&self, bucket: u32) -> u64 {
        self.buckets
            .get(bucket as usize)
            .map_or(UNKNOWN, |b| b.load(Ordering::Acquire))
    }

    /// Publishes, then waits until this node applied the message.
    pub(crate) async fn publish(&self, p: Publication) -> Result<(), GuardError> {
        if let Some(why) = self.failure() {
            return Err(stopped(&why));
        }
        let buckets: Vec<u32> = p.messages.iter().map(|m| m.bucket).collect();
        match self.link.publish(p.messages).await {
            Ok(seq) => self.wait_applied(seq, APPLY_WAIT).await.map_err(|()| {
                GuardError::Unavailable(format!(
                    "the cluster acknowledged the change (sequence {seq}) but this node has not applied it within {} s; it stands: read it back before retrying",
                    APPLY_WAIT.as_secs()
                ))
            }),
            Err(PublishFailure::Conflict) => Err(GuardError::Conflict(buckets)),
            Err(e @ PublishFailure::TooLarge { .. }) => Err(GuardError::FailedPrecondition(
                format!("{e}; nothing was recorded"),
            )),
            Err(e @ PublishFailure::NotAcknowledged(_)) => Err(GuardError::Unavailable(format!(
                "{e}; it may have been recorded: retry with the same externalId or requestId"
            ))),
        }
    }

    /// Asks the leader for a bucket's last sequence and waits until the
    /// node has applied it; returns it.
    async fn caught_up_on(&self, bucket: u32) -> Result<u64, GuardError> {
        let last = self.link.last_of_bucket(bucket).await.map_err(cut_off)?;
        self.apply_up_to(last).await?;
        Ok(last)
    }

    /// Waits, for at most the cluster's timeout, until the node has
    /// applied `last`; UNAVAILABLE after it.
    async fn apply_up_to(&self, last: u64) -> Result<(), GuardError> {
        let within = self.link.config().timeout;
        self.wait_applied(last, within).await.map_err(|()| {
            GuardError::Unavailable(format!(
                "this node has not applied the cluster's stream up to sequence {last} within {} ms; retry",
                within.as_millis()
            ))
        })
    }

    /// Waits until the node has applied `seq`; `Err` after `within`.
    async fn wait_applied(&self, seq: u64, within: Duration) -> Result<(), ()> {
        let mut rx = self.applied_tx.subscribe();
        match tokio::time::timeout(within, rx.wait_for(|a| *a >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(()),
        }
    }

    /// Lets the follower apply what it was handed, then the lock go.
    pub(crate) fn close(&self, follower: Option<Follower>) {
        if let Ok(mut t) = self.task.lock()
            && let Some(task) = t.take()
        {
            task.abort();
        }
        if let Ok(mut tap) = self.tap.lock() {
            tap.take();
        }
        if let Some(follower) = follower {
            follower.finish();
        }
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }
}

/// A node that could not learn a sequence from the stream's leader.
fn cut_off(e: crate::cluster::ClusterError) -> GuardError {
    GuardError::Unavailable(format!("this node is cut off from the cluster: {e}"))
}

fn stopped(why: &str) -> GuardError {
    GuardError::Unavailable(format!(
        "this node stopped applying the cluster's stream ({why}); it answers nothing until it is rebuilt"
    ))
}

impl Guard {
    /// Opens a cluster node's data directory: its store (made the first
    /// time) read into memory as [`Guard::open`] reads it, with the
    /// stream's sequence the store reached; the ids it makes are those of
    /// node `number`, which this process claimed ([`Link::node_number`]). A
    /// directory of another stream, or of a stream of the same name made
    /// again since, is refused. A directory of a single node
    /// (a journal in it) or of another stream is refused. The node follows
    /// the stream once [`Guard::follow_cluster`] starts it.
    pub fn open_node(
        config: IndexConfig,
        data_dir: &Path,
        link: Link,
        number: u16,
        mut progress: impl FnMut(u64),
    ) -> Result<Guard, JournalError> {
        let lock = jn::lock(data_dir)?;
        let layout = Layout {
            dir: data_dir.to_owned(),
        };
        let refuse = |reason: String| JournalError::Store {
            path: data_dir.to_owned(),
            reason,
        };
        let (snaps, logs) = layout.generations()?;
        if !snaps.is_empty() || !logs.is_empty() {
            return Err(refuse(format!(
                "the data directory `{}` holds a single node's journal; a cluster node starts from an empty directory or its own",
                data_dir.display()
            )));
        }
        let stream = link.stream_identity();
        let marker = layout.cluster_marker();
        // A node's memory is always rebuilt from its store: a checkpoint
        // here (none is written by a node) is never read.
        super::checkpoint::discard(
            data_dir,
            "a cluster node's memory is rebuilt from its store",
        );
        let mut store = Store::open(data_dir)?;
        let from = store.position()?;
        match std::fs::read_to_string(&marker) {
            Ok(found) if found.trim() == stream => {}
            Ok(found) => {
                return Err(refuse(format!(
                    "the data directory is a node of stream `{}` (name and creation), not of `{stream}`: a stream made again starts its sequences again; rebuild this node from an empty data directory",
                    crate::model::echo(found.trim())
                )));
            }
            Err(_) if from.is_some() => {
                return Err(refuse(
                    "the data directory holds a store but no cluster marker: it is not a cluster node's".into(),
                ));
            }
            Err(_) => {
                store.begin()?.commit(Position::default())?;
                std::fs::write(&marker, format!("{stream}\n")).map_err(|cause| {
                    JournalError::Io {
                        action: "writing",
                        path: marker.clone(),
                        cause,
                    }
                })?;
            }
        }
        let at = store.position()?.unwrap_or_default();
        let mut ledger = Ledger::new(config);
        let mut n = 0u64;
        // The node's store holds what it loads: the records of the horizon
        // more than a day old leave memory as they are read, as on a single
        // node (the stream's messages after it that change one read it
        // back from the store first).
        let loaded = super::recovery::load_store(
            &mut ledger,
            &store,
            config,
            0,
            Some(super::horizon::let_go_at(chrono::Utc::now().timestamp())),
            &mut || {
                n += 1;
                if n.is_multiple_of(1_000_000) {
                    progress(n);
                }
                Ok(())
            },
            None,
        )?;
        let cutoff = loaded
            .latest
            .map(|l| super::recovery::horizon_cutoff(config, loaded.now, l));
        ledger.index.use_id_range(
            number,
            store.largest_interaction_of_node(number)?.as_deref(),
        );
        // What SQLite's log holds is folded by the follower's folder,
        // while serving.
        let (handed, tap) = Follower::channel(at.records, 0);
        let follower = Follower::start(store, layout, at, Durability::Sync, handed, None, None)?;
        let reader = Reader::open(data_dir)?;
        let on_disk = super::recovery::log_loaded(&mut ledger, Some(at.records));
        let (applied_tx, _) = tokio::sync::watch::channel(at.records);
        // A node that starts from the stream's start knows every bucket;
        // one that starts from its store asks the leader for a bucket's
        // last sequence before its first write to it.
        let known = if at.records == 0 { 0 } else { UNKNOWN };
        tracing::info!(
            node = number,
            "this node's number in the cluster (its ids start with it)"
        );
        let node = Node {
            link,
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(known)).collect(),
            applied: AtomicU64::new(at.records),
            applied_tx,
            tap: Mutex::new(Some(tap.to)),
            failed: Mutex::new(None),
            fresh_as_of: Mutex::new(None),
            task: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
        };
        let mut guard = Guard::over(ledger, None, Some(reader));
        guard.follower = Some(follower);
        guard.cluster = Some(Arc::new(node));
        if on_disk > 0
            && let Some(cutoff) = cutoff
        {
            guard.hold_from(cutoff)?;
        }
        // What the start read with and let go of goes back to the system
        // (see `Guard::open_as`).
        super::os::give_back_freed_memory();
        Ok(guard)
    }

    /// Starts following the cluster's stream (a task on the current
    /// runtime), from the sequence after the store's.
    pub fn follow_cluster(self: &Arc<Self>) {
        let Some(node) = &self.cluster else { return };
        let (guard, supervised) = (Arc::downgrade(self), Arc::clone(node));
        // Supervised: a follower that ends by a panic stops the node, so
        // that it never serves on as if it followed.
        let following = tokio::spawn(follow(guard, Arc::clone(&supervised)));
        let task = following.abort_handle();
        tokio::spawn(async move {
            if let Err(e) = following.await
                && e.is_panic()
            {
                supervised.fail(format!("the stream's follower panicked: {e}"));
            }
        });
        if let Ok(mut t) = node.task.lock() {
            *t = Some(task);
        }
    }

    /// On a cluster node, a task that tells the other nodes which rules
    /// are in force here and reports when they differ
    /// ([`crate::cluster::peers`]); `None` on a single node.
    pub fn exchange_rules(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let node = self.cluster.as_ref()?;
        let link = node.link.clone();
        let guard = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            link.exchange_rules(move || {
                guard
                    .upgrade()
                    .and_then(|g| g.rules())
                    .map(|r| r.version().to_owned())
            })
            .await;
        }))
    }

    /// At a cluster node's start, before it follows: refuses a stream
    /// whose last sequence stays below what the node's store applied (the
    /// stream cut back, or restored from an older copy), whose sequences
    /// no longer name what the node holds. Asked a few times over a few
    /// seconds: the leader's store may trail by the messages it is still
    /// applying. Nothing on a single node.
    pub async fn check_stream_not_behind(&self) -> Result<(), GuardError> {
        let Some(node) = &self.cluster else {
            return Ok(());
        };
        let had = node.applied();
        let mut last = 0;
        for _ in 0..10 {
            last = node.link.last_seq().await.map_err(cut_off)?;
            if last >= had {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(GuardError::FailedPrecondition(format!(
            "the cluster's stream ends at sequence {last}, behind the {had} this node's store applied: the stream was cut back or restored from an older copy; rebuild this node from an empty data directory"
        )))
    }

    /// What a cluster node reports of itself; `None` on a single node.
    pub fn cluster_state(&self) -> Option<ClusterState> {
        self.cluster.as_ref().map(|n| ClusterState {
            node_id: n.link.config().node_id.clone(),
            applied: n.applied(),
            failed: n.failure(),
        })
    }

    /// Publishes changes read from a backup as they are, as one message
    /// stored only if the stream's last sequence is still `after` (the
    /// restore's previous message, or the stream's end when it began),
    /// and waits until this node applied it; returns its sequence. How a
    /// single node's history moves into a cluster
    /// ([`crate::ops::restore_published`]). Nothing is decided (a backup
    /// holds what its node decided) and nothing is fenced per person: the
    /// restore must be the stream's only writer, and any other write in
    /// between (a node started too early) stops it with
    /// FAILED_PRECONDITION rather than interleave with it.
    pub async fn replay_published(
        &self,
        changes: &[Change],
        after: u64,
    ) -> Result<u64, GuardError> {
        let Some(node) = &self.cluster else {
            return Err(GuardError::Internal(
                "a backup is published into a cluster by a cluster node only".into(),
            ));
        };
        let mut bytes = Vec::new();
        for records in frames(changes) {
            jn::frame_operation(&records, &mut bytes);
        }
        let seq = match node.link.publish_exclusive(0, after, bytes).await {
            Ok(seq) => seq,
            Err(PublishFailure::Conflict) => {
                return Err(GuardError::FailedPrecondition(format!(
                    "another writer wrote to the cluster's stream during the restore (after sequence {after}); the stream holds part of the backup: start no node during a restore, and restore again into a new stream"
                )));
            }
            Err(e @ PublishFailure::TooLarge { .. }) => {
                return Err(GuardError::FailedPrecondition(format!(
                    "{e}; the restore stopped"
                )));
            }
            Err(e @ PublishFailure::NotAcknowledged(_)) => {
                return Err(GuardError::Unavailable(format!(
                    "{e}; the restore stopped, and the stream may hold part of the backup: restore again into a new stream"
                )));
            }
        };
        // The node applies what it publishes; one that cannot (a record it
        // refuses) says why at once, not after the wait.
        let started = std::time::Instant::now();
        loop {
            if node
                .wait_applied(seq, Duration::from_millis(100))
                .await
                .is_ok()
            {
                return Ok(seq);
            }
            if let Some(why) = node.failure() {
                return Err(stopped(&why));
            }
            if started.elapsed() > APPLY_WAIT {
                return Err(GuardError::Unavailable(format!(
                    "the cluster acknowledged sequence {seq} but this node has not applied it within {} s",
                    APPLY_WAIT.as_secs()
                )));
            }
        }
    }

    /// The link to the cluster's stream, on a cluster node: what the
    /// server's other parts (the shared audio) reach the cluster by.
    pub fn cluster_link(&self) -> Option<&crate::cluster::Link> {
        self.cluster.as_ref().map(|n| &n.link)
    }

    /// On a cluster node, waits until it has applied everything the
    /// stream's leader had when asked: what a Check reads is then at
    /// least every write acknowledged before it began. UNAVAILABLE if the
    /// leader does not answer, or the node does not catch up, within the
    /// cluster's timeout. Nothing on a single node.
    pub async fn read_barrier(&self) -> Result<(), GuardError> {
        let Some(node) = &self.cluster else {
            return Ok(());
        };
        if let Some(why) = node.failure() {
            return Err(stopped(&why));
        }
        let started = std::time::Instant::now();
        let last = node.link.last_seq_shared().await.map_err(cut_off)?;
        node.apply_up_to(last).await?;
        if let Ok(mut fresh) = node.fresh_as_of.lock() {
            *fresh = Some(fresh.map_or(started, |f| f.max(started)));
        }
        metrics::histogram!("compliance_guard_cluster_read_barrier_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// [`Guard::read_barrier`], or, on a node that allows stale reads
    /// (`--cluster-stale-reads-ms`) and confirmed its catch-up within that
    /// bound, nothing; returns how stale what the node holds may be (zero
    /// after a barrier, and on a single node).
    pub async fn read_barrier_bounded(&self) -> Result<std::time::Duration, GuardError> {
        let Some(node) = &self.cluster else {
            return Ok(std::time::Duration::ZERO);
        };
        let bound = node.link.config().stale_reads;
        if !bound.is_zero()
            && node.failure().is_none()
            && let Some(fresh) = node.fresh_as_of.lock().ok().and_then(|f| *f)
        {
            let stale = fresh.elapsed();
            if stale <= bound {
                return Ok(stale);
            }
        }
        self.read_barrier().await?;
        Ok(std::time::Duration::ZERO)
    }

    /// After a publish lost to another node's (or met a bucket it does
    /// not know): asks the leader for those buckets' last sequences, waits
    /// until it has applied them, then plans again, up to
    /// [`MAX_CONFLICTS`] times.
    pub(super) async fn after_conflict(
        &self,
        conflicts: u32,
        buckets: &[u32],
    ) -> Result<(), GuardError> {
        metrics::counter!("compliance_guard_cluster_conflicts_total").increment(1);
        if conflicts > MAX_CONFLICTS {
            return Err(GuardError::Unavailable(format!(
                "the write lost to other nodes' writes {MAX_CONFLICTS} times in a row; nothing was recorded: retry"
            )));
        }
        let Some(node) = &self.cluster else {
            return Ok(());
        };
        for bucket in buckets {
            let last = node.caught_up_on(*bucket).await?;
            // Every message of the bucket up to `last` is applied here, and
            // one after it would have set the bucket itself.
            let _ledger = self.write()?;
            if let Some(b) = node.buckets.get(*bucket as usize) {
                let known = b.load(Ordering::Acquire);
                if known == UNKNOWN || known < last {
                    b.store(last, Ordering::Release);
                }
            }
        }
        Ok(())
    }

    /// Applies one message of the stream: its changes to memory under the
    /// write lock (records on disk only read back first, as a start does),
    /// then to the store's follower.
    fn apply_entry(&self, node: &Node, mut entry: Entry) -> Result<(), String> {
        if entry.claim.is_some() {
            // A process's claim of a node number: nothing for the ledger.
            entry.bytes.clear();
        } else if entry.bucket.is_none() {
            return Err(format!(
                "message {} is on a subject this release does not know; a newer release may be writing the stream",
                entry.seq
            ));
        }
        {
            let mut ledger = self.write().map_err(|e| e.to_string())?;
            ledger.index.set_frame(entry.seq);
            for record in jn::unframe(&entry.bytes) {
                let record = record.map_err(|e| format!("message {}: {e}", entry.seq))?;
                super::recovery::apply_logged(&mut ledger, self.store.as_ref(), record)
                    .map_err(|e| format!("message {}: {e}", entry.seq))?;
            }
            if let Some(b) = entry.bucket.and_then(|b| node.buckets.get(b as usize)) {
                b.store(entry.seq, Ordering::Release);
            }
            node.applied.store(entry.seq, Ordering::Release);
        }
        node.applied_tx.send_replace(entry.seq);
        metrics::gauge!("compliance_guard_cluster_applied_sequence").set(entry.seq as f64);
        let tapped = Tapped::Frames {
            generation: 0,
            bytes: entry.bytes,
            end: entry.seq,
            seq: entry.seq,
        };
        let tap = node.tap.lock().map_err(|_| "lock poisoned".to_owned())?;
        if let Some(to) = tap.as_ref() {
            match to.try_send(tapped) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                // The store is behind by a full channel: wait for it
                // here, off the runtime's other tasks.
                Err(TrySendError::Full(t)) => {
                    let _ = tokio::task::block_in_place(|| to.send(t));
                }
            }
        }
        Ok(())
    }
}

/// Follows the stream from the sequence after the node's, for as long as
/// the guard lives: a lost consumer is made again from where the node is.
async fn follow(guard: Weak<Guard>, node: Arc<Node>) {
    let mut waited = Duration::from_millis(100);
    loop {
        let from = node.applied() + 1;
        let stream = match node.link.follow(from).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, from, "cannot follow the cluster's stream yet; trying again");
                tokio::time::sleep(waited).await;
                waited = (waited * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        waited = Duration::from_millis(100);
        tokio::pin!(stream);
        loop {
            // A consumer whose server died may go quiet rather than fail:
            // when nothing comes for a while and the leader has more, the
            // consumer is made again from where the node is.
            let next = match tokio::time::timeout(QUIET, stream.next()).await {
                Ok(next) => next,
                Err(_) => match node.link.last_seq().await {
                    Ok(last) if last > node.applied() => {
                        tracing::warn!(
                            applied = node.applied(),
                            last,
                            "the cluster's stream went quiet while behind its leader; following it again"
                        );
                        break;
                    }
                    _ => continue,
                },
            };
            let Some(entry) = next else { break };
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "the cluster's stream stopped; following it again");
                    break;
                }
            };
            let Some(guard) = guard.upgrade() else { return };
            let applied = node.applied();
            if entry.seq <= applied {
                continue;
            }
            if entry.seq != applied + 1 {
                node.fail(format!(
                    "the stream gives sequence {} after {applied}: a gap",
                    entry.seq
                ));
                return;
            }
            if let Err(e) = guard.apply_entry(&node, entry) {
                node.fail(format!("a message could not be applied: {e}"));
                return;
            }
        }
        tokio::time::sleep(waited).await;
    }
}

/// The key of a person's name (our id, an alias or an external id).
fn name_key(name: &str) -> String {
    format!("n:{name}")
}

/// The keys a write decides on: the id of every person its changes are
/// about, every name of a person it registers or changes, and every
/// `externalId` it sets or frees. A write is stored only if no other write
/// touched the buckets of these keys since the node decided.
fn keys(ledger: &Ledger, changes: &[Change]) -> Vec<String> {
    let mut keys = Vec::with_capacity(changes.len() + 2);
    let person_of = |interaction: &str| {
        ledger
            .reservations()
            .get(interaction)
            .map(|r| r.person_id.clone())
            .or_else(|| {
                ledger
                    .index
                    .get(None, interaction)
                    .ok()
                    .map(|r| r.person_id.clone())
            })
    };
    for change in changes {
        match change {
            Change::Person { names, .. } => {
                keys.push(name_key(&names.id));
                keys.extend(names.aliases.iter().map(|a| name_key(a)));
                keys.extend(names.external_ids.iter().map(|e| name_key(e)));
            }
            Change::Interaction(i) => {
                // A new record's id needs a key only when a client gave
                // it (an import): generated ids carry the number of the
                // process that made them, so no other node makes them.
                if !ledger.index.knows(&i.id) && !ledger.index.is_own_generated("IT", &i.id) {
                    keys.push(format!("i:{}", i.id));
                }
                keys.push(name_key(&i.person_id));
                if let Some(ext) = &i.external_id {
                    keys.push(format!("x:{ext}"));
                }
                if let Ok(before) = ledger.index.get(None, &i.id)
                    && let Some(ext) = &before.external_id
                    && i.external_id.as_ref() != Some(ext)
                {
                    keys.push(format!("x:{ext}"));
                }
            }
            Change::ReservationClosed(id) => match person_of(id) {
                Some(p) => keys.push(name_key(&p)),
                None => keys.push(format!("i:{id}")),
            },
            Change::Convo(c) => match person_of(&c.interaction_id) {
                Some(p) => keys.push(name_key(&p)),
                None => keys.push(format!("i:{}", c.interaction_id)),
            },
            other => {
                if let Some(p) = other.person_id() {
                    keys.push(name_key(p));
                }
            }
        }
    }
    keys
}
