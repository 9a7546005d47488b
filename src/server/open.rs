//! Opening the history a server serves: a single node's data directory
//! (replayed), or a node of a cluster (connected, read from its store and
//! caught up with the stream), with the retries a node's start makes
//! while NATS is not ready, and the watch that turns a failed node
//! NOT_SERVING.

use std::future::Future;
use std::sync::Arc;

use tonic_health::ServingStatus;

use super::{ServeConfig, ServeError, set_all};
use crate::guard::{Guard, GuardError};

/// Opens a single node's data directory: the store and the journal after
/// it read back into memory.
pub(super) async fn open_single(config: &ServeConfig) -> Result<Arc<Guard>, ServeError> {
    let data_dir = config.data_dir.clone();
    let (index, durability, compact_after) =
        (config.index, config.durability, config.compact_after);
    let follow = config.follow;
    let opened = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        // The location datasets are read before the first Check needs them.
        crate::location::warm();
        tracing::info!(data_dir = %data_dir.display(), "replaying the journal");
        let opened = Guard::open_as(index, &data_dir, durability, compact_after, follow, |n| {
            tracing::info!(records = n, "replaying")
        });
        if let Ok((g, r)) = &opened {
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                snapshot_records = r.snapshot_records,
                journal_records = r.journal_records,
                from_checkpoint = g.started_from_checkpoint(),
                seconds,
                "replay finished"
            );
            metrics::gauge!("compliance_guard_start_seconds").set(seconds);
            metrics::gauge!("compliance_guard_start_from_checkpoint").set(
                if g.started_from_checkpoint() {
                    1.0
                } else {
                    0.0
                },
            );
        }
        opened
    })
    .await;
    match opened {
        Ok(Ok((guard, _))) => Ok(Arc::new(guard)),
        Ok(Err(e)) => Err(ServeError::Journal(e)),
        Err(e) => Err(ServeError::Task(e.to_string())),
    }
}

/// Opens a cluster node: connects to NATS (the stream made if there is
/// none), reads the node's store into memory, follows the stream and
/// returns once the node has applied everything the stream's leader had
/// when it asked, so that health turns SERVING only on a node that has
/// caught up.
///
/// `import` opens a node this way too, to write into the cluster.
pub async fn open_node(
    index: crate::index::IndexConfig,
    data_dir: &std::path::Path,
    cluster: crate::cluster::ClusterConfig,
) -> Result<Arc<Guard>, ServeError> {
    let started = std::time::Instant::now();
    tracing::info!(urls = %cluster.urls, node = %cluster.node_id, stream = %cluster.stream, "connecting to the cluster");
    // NATS may come up after the guard, or be electing a leader: the node
    // waits NOT_SERVING, and stops only on what waiting cannot mend (a
    // setting, a stream of other settings).
    let (link, number) = until_ready("cannot join the cluster yet", || async {
        let link = crate::cluster::Link::connect(cluster.clone()).await?;
        let number = link.node_number().await?;
        Ok((link, number))
    })
    .await?;
    let data_dir = data_dir.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        crate::location::warm();
        Guard::open_node(index, &data_dir, link, number, |n| {
            tracing::info!(records = n, "loading");
        })
    })
    .await
    .map_err(|e| ServeError::Task(e.to_string()))?
    .map_err(ServeError::Journal)?;
    let guard = Arc::new(opened);
    until_ready("cannot reach the cluster's stream yet", || {
        let guard = Arc::clone(&guard);
        async move { guard.check_stream_not_behind().await.map_err(Try::from) }
    })
    .await?;
    guard.follow_cluster();
    until_ready("catching up with the cluster's stream", || {
        let guard = Arc::clone(&guard);
        async move {
            match guard.read_barrier().await {
                Err(e) if guard.cluster_state().is_some_and(|s| s.failed.is_some()) => {
                    Err(Try::Stop(ServeError::Cluster(e.to_string())))
                }
                other => other.map_err(Try::from),
            }
        }
    })
    .await?;
    tracing::info!(
        applied = guard.cluster_state().map_or(0, |s| s.applied),
        seconds = started.elapsed().as_secs_f64(),
        "caught up with the cluster's stream"
    );
    Ok(guard)
}

/// Why a step of a cluster node's start did not succeed: wait and try
/// again, or stop the start.
pub(super) enum Try {
    Again(String),
    Stop(ServeError),
}

impl From<crate::cluster::ClusterError> for Try {
    fn from(e: crate::cluster::ClusterError) -> Try {
        match e {
            // NATS unreachable or without a leader yet: waiting mends it.
            crate::cluster::ClusterError::Nats { .. } => Try::Again(e.to_string()),
            e => Try::Stop(ServeError::Cluster(e.to_string())),
        }
    }
}

impl From<GuardError> for Try {
    fn from(e: GuardError) -> Try {
        match e {
            GuardError::Unavailable(m) => Try::Again(m),
            e => Try::Stop(ServeError::Cluster(e.to_string())),
        }
    }
}

/// Runs a step of a cluster node's start until it succeeds, logging
/// `waiting` and waiting longer after each try (100 ms, doubling to 2 s);
/// a step that cannot succeed by waiting stops the start.
pub(super) async fn until_ready<T, Fut>(
    waiting: &'static str,
    mut step: impl FnMut() -> Fut,
) -> Result<T, ServeError>
where
    Fut: Future<Output = Result<T, Try>>,
{
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match step().await {
            Ok(done) => return Ok(done),
            Err(Try::Stop(e)) => return Err(e),
            Err(Try::Again(why)) => {
                tracing::warn!(error = %why, "{waiting}; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

/// On a cluster node, health follows the node: NOT_SERVING once it has
/// stopped applying the stream (a gap), SERVING again never (it must be
/// rebuilt).
pub(super) async fn watch_node(guard: Arc<Guard>, reporter: tonic_health::server::HealthReporter) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if guard.cluster_state().is_some_and(|s| s.failed.is_some()) {
            set_all(&reporter, ServingStatus::NotServing).await;
            return;
        }
    }
}
