//! Running the server: health, reflection, keys, TLS, start-up and
//! graceful shutdown around the [`crate::api::Service`].
//!
//! Start-up order: the listener accepts at once, with health NOT_SERVING
//! for "" and both services; the rules are loaded (a rules directory that
//! fails its check stops the start with the problems listed); then health
//! turns SERVING. On shutdown health turns NOT_SERVING first, in-flight
//! calls finish, then the server returns.
//!
//! Metrics: [`describe_metrics`] names every Prometheus metric once the
//! command has installed the recorder, and while serving a task samples
//! the size gauges every [`GAUGE_INTERVAL`].
//!
//! Opening the history is `open.rs` (a single node's data directory, or a
//! node of a cluster, with the retries of its start); the media parts
//! (the audio store, links and their listener, the sweeps) are
//! `media.rs`.

mod media;
mod open;

use media::open_media;
pub use open::open_node;
use open::{open_single, watch_node};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::api::Service;
use crate::api::auth::{Access, AuthError, authenticate};
use crate::guard::Guard;
use crate::index::IndexConfig;
use crate::media::MediaHub;
use crate::pb::compliance_guard_service_server::ComplianceGuardServiceServer;
use crate::pb::interactions_service_server::InteractionsServiceServer;
use crate::rules::{LoadOptions, Role, RuleErrors, RuleSet};

/// The gRPC service names, as health and reflection know them.
pub const SERVICE_NAMES: [&str; 2] = [
    "complianceguard.v1.ComplianceGuardService",
    "complianceguard.v1.InteractionsService",
];

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The rules directory failed its check at start.
    #[error("the rules failed their check; the server did not start:\n{0}")]
    Rules(RuleErrors),
    /// The data directory could not be opened or replayed.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Keys could not be read or created, or running without them was
    /// asked for off loopback.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The TLS files could not be read.
    #[error("cannot read the TLS file `{path}`: {cause}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The transport failed.
    #[error("the gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptors.
    #[error("server reflection could not be built: {0}")]
    Reflection(String),
    /// A task of the server failed.
    #[error("a server task failed: {0}")]
    Task(String),
    /// A cluster node could not join its cluster.
    #[error("the node could not join the cluster: {0}")]
    Cluster(String),
}

/// Certificate and key files (PEM) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Everything `serve` needs besides the listener.
#[derive(Debug)]
pub struct ServeConfig {
    /// The rules directory.
    pub rules_dir: PathBuf,
    /// The data directory (the generated key file lives there).
    pub data_dir: PathBuf,
    /// How callers are authenticated.
    pub access: Access,
    /// TLS, if wanted.
    pub tls: Option<TlsFiles>,
    /// The index's settings.
    pub index: IndexConfig,
    /// What the lender is; `None`: every rule binds.
    pub roles: Option<Vec<Role>>,
    /// What a write waits for before it is acknowledged.
    pub durability: crate::journal::Durability,
    /// The journal rolls to a new generation after this many records while
    /// serving (the store following it, the journal the store holds is
    /// then deleted); without following, a start applies the journal to
    /// the store once it holds more records than this.
    pub compact_after: u64,
    /// Whether the store follows the journal while serving, and whether
    /// the index checkpoint is built again from it meanwhile
    /// ([`Guard::open_as`]): [`crate::guard::Follow::On`] in the binary,
    /// [`crate::guard::Follow::WithoutCheckpointBuilds`] with
    /// `--no-checkpoint-while-serving`; [`crate::guard::Follow::Off`]
    /// keeps every write in the journal until a start, for tests of the
    /// journal's replay.
    pub follow: crate::guard::Follow,
    /// `Some`: a node of a cluster on NATS JetStream
    /// ([`crate::cluster`]); the journal settings above are then unused.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// The decision log: `Some` logs every answered Check there; `None`
    /// keeps none.
    pub decision_log: Option<crate::decisions::LogConfig>,
    /// Live reload of the rules: `Some` watches `rules_dir` (and SIGHUP)
    /// and counts reloads there; `None` keeps the rules loaded at start.
    pub reload: Option<Arc<crate::reload::ReloadStats>>,
    /// How long in-flight calls may run after shutdown begins; streams
    /// still open then (a health Watch, say) are cut.
    pub shutdown_grace: std::time::Duration,
    /// Holds the server NOT_SERVING, after loading, until this fires or is
    /// dropped: for tests of start-up and for orchestrators that warm up
    /// first. `None` goes SERVING as soon as everything is loaded.
    pub hold_until: Option<oneshot::Receiver<()>>,
    /// How far before the server's clock a reserving Check's `at` may be
    /// ([`Guard::set_reserve_tolerance`]); usually
    /// [`crate::guard::DEFAULT_RESERVE_TOLERANCE`]. Tests that replay
    /// recorded dates set it long.
    pub reserve_tolerance: std::time::Duration,
    /// Recordings and voicemails: size bound, retention, and the optional
    /// HTTP listener for signed links.
    pub media: crate::media::MediaConfig,
}

/// The upper bounds, in seconds, of the buckets of every `_seconds`
/// histogram: 50 µs (a Check from memory) to 5 s (a stuck disk), about
/// three to a decade, so that a p99 read from them is within a bucket of
/// the truth at every scale we care about.
pub const SECONDS_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The upper bounds of the journal's batch-size histogram, in records:
/// powers of two, from a lone write to a burst that group commit shares.
pub const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// How often the size gauges (`compliance_guard_borrowers`, `_interactions`,
/// `_open_reservations`) are sampled: often enough for a dashboard, rare
/// enough that the read lock it takes is invisible.
pub const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives every metric its HELP text and makes the ones that would
/// otherwise appear only after their first event (both reload outcomes)
/// show from the first scrape, at 0: an alert on failed reloads needs the
/// series to exist before it can see it rise. Call once, after the
/// recorder is installed.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "compliance_guard_checks_total",
        "answered Checks, by whether the send was allowed"
    );
    describe_counter!(
        "compliance_guard_blocks_total",
        "blocked Checks, by the deciding rule"
    );
    describe_counter!(
        "compliance_guard_decisions_total",
        "answered Checks, by result (allowed, blocked) and deciding rule (empty on an allow)"
    );
    describe_counter!(
        "compliance_guard_shadow_violations_total",
        "violations of shadow-mode rules, which did not block, by rule"
    );
    describe_counter!(
        "compliance_guard_rules_reloads_total",
        "rule reloads, by outcome: applied or refused (the last good set stays)"
    );
    describe_counter!(
        "compliance_guard_restrictions_total",
        "restrictions added and ended, by kind and op"
    );
    describe_counter!(
        "compliance_guard_decision_log_dropped_total",
        "decision log lines dropped because its writer fell behind or had stopped"
    );
    describe_histogram!(
        "compliance_guard_rpc_duration_seconds",
        Unit::Seconds,
        "time to answer an RPC, from the handler's start to its answer, by rpc and status code"
    );
    describe_histogram!(
        "compliance_guard_journal_sync_seconds",
        Unit::Seconds,
        "time to write one batch of journal records and fdatasync it (write only when buffered)"
    );
    describe_histogram!(
        "compliance_guard_journal_batch_records",
        Unit::Count,
        "journal records per write: how many writers one flush served"
    );
    describe_gauge!(
        "compliance_guard_start_seconds",
        Unit::Seconds,
        "how long the last start took to read the history into memory"
    );
    describe_gauge!(
        "compliance_guard_start_from_checkpoint",
        Unit::Count,
        "1 if the last start read memory from the index checkpoint, 0 if it rebuilt it from the store"
    );
    describe_counter!(
        "compliance_guard_checkpoints_total",
        Unit::Count,
        "index checkpoints written, by when: at a clean stop, at a start that rebuilt memory, or while serving (built from the store)"
    );
    describe_counter!(
        "compliance_guard_checkpoint_failures_total",
        Unit::Count,
        "index checkpoints that could not be built while serving (the one in place stays; tried again a minute later)"
    );
    describe_gauge!(
        "compliance_guard_borrowers",
        Unit::Count,
        "people in the registry"
    );
    describe_gauge!(
        "compliance_guard_interactions",
        Unit::Count,
        "interactions in the index, deleted ones included"
    );
    describe_gauge!(
        "compliance_guard_interactions_whole_in_memory",
        Unit::Count,
        "interactions whose full records are in memory (the rest: their counting entries and names only, or on disk only)"
    );
    describe_gauge!(
        "compliance_guard_open_reservations",
        Unit::Count,
        "reservations made by reserving Checks and not yet updated, canceled or deleted"
    );
    metrics::describe_counter!(
        "compliance_guard_media_uploaded_bytes_total",
        Unit::Bytes,
        "bytes of recordings and voicemails stored by uploads"
    );
    metrics::describe_counter!(
        "compliance_guard_media_purged_total",
        Unit::Count,
        "audio files of deleted interactions purged after the retention"
    );
    metrics::describe_counter!(
        "compliance_guard_media_damaged_total",
        Unit::Count,
        "downloads cut because the stored audio failed its size or SHA-256 check"
    );
    metrics::describe_counter!(
        "compliance_guard_media_link_requests_total",
        Unit::Count,
        "requests to the media link listener, by HTTP status"
    );
    describe_gauge!(
        "compliance_guard_cluster_applied_sequence",
        Unit::Count,
        "a cluster node: the last sequence of the cluster's stream it applied"
    );
    describe_counter!(
        "compliance_guard_cluster_conflicts_total",
        Unit::Count,
        "a cluster node: writes decided again because another node wrote about the same key first"
    );
    describe_counter!(
        "compliance_guard_cluster_failures_total",
        Unit::Count,
        "a cluster node stopped applying the stream (a gap, a subject it does not know, a message it cannot apply)"
    );
    describe_histogram!(
        "compliance_guard_cluster_read_barrier_seconds",
        Unit::Seconds,
        "a cluster node: the wait before a read for the leader's last sequence and for applying it"
    );
    describe_gauge!(
        "compliance_guard_cluster_rules_versions",
        Unit::Count,
        "a cluster node: the rules versions in force among the nodes heard from (1 when they agree)"
    );
    for outcome in ["applied", "refused"] {
        metrics::counter!("compliance_guard_rules_reloads_total", "outcome" => outcome).absolute(0);
    }
    // At 0 from the start, so that an alert on damaged audio (or a graph of
    // uploads and purges) works before the first event.
    for name in [
        "compliance_guard_media_uploaded_bytes_total",
        "compliance_guard_media_purged_total",
        "compliance_guard_media_damaged_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
}

/// Sets the size gauges from the guard every [`GAUGE_INTERVAL`] until
/// aborted. Sampling takes the read lock for three lengths, never the write
/// lock, so Checks do not wait on it; counting on the hot path instead
/// would cost every write.
async fn sample_sizes(guard: Arc<Guard>) {
    let borrowers = metrics::gauge!("compliance_guard_borrowers");
    let interactions = metrics::gauge!("compliance_guard_interactions");
    let open = metrics::gauge!("compliance_guard_open_reservations");
    let whole = metrics::gauge!("compliance_guard_interactions_whole_in_memory");
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sizes = guard.sizes();
        borrowers.set(sizes.people as f64);
        interactions.set(sizes.interactions as f64);
        open.set(sizes.open_reservations as f64);
        whole.set(sizes.whole_in_memory as f64);
    }
}

/// How often interactions beyond the horizon leave memory while serving
/// ([`Guard::let_go`]).
pub const LET_GO_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Lets go of what left the horizon, every [`LET_GO_EVERY`], off the
/// async threads.
async fn let_go_every(guard: Arc<Guard>) {
    let moved_total = metrics::counter!("compliance_guard_records_let_go_total");
    let mut tick = tokio::time::interval(LET_GO_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let guard = Arc::clone(&guard);
        match tokio::task::spawn_blocking(move || guard.let_go(chrono::Utc::now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(moved)) => {
                moved_total.increment(moved as u64);
                tracing::info!(
                    records = moved,
                    "interactions beyond the horizon left memory (the store holds them)"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "letting go of interactions beyond the horizon failed; it runs again")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the task letting go of interactions beyond the horizon failed")
            }
        }
    }
}

async fn set_all(reporter: &tonic_health::server::HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Runs the server on `listener` until `shutdown` completes. Returns an
/// error, and stops, if the rules fail their check at start.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_all(&reporter, ServingStatus::NotServing).await;

    let cell = Arc::new(std::sync::OnceLock::<Arc<Guard>>::new());
    let media_cell = Arc::new(std::sync::OnceLock::<Arc<MediaHub>>::new());
    let decisions_cell = Arc::new(std::sync::OnceLock::<Arc<crate::decisions::DecisionLog>>::new());
    let service = Service::pending(
        Arc::clone(&cell),
        Arc::clone(&media_cell),
        Arc::clone(&decisions_cell),
    );
    let auth = authenticate(config.access.clone());
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|cause| ServeError::Tls {
                path: p.clone(),
                cause,
            })
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let router = builder
        .add_service(health)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(InterceptedService::new(
            ComplianceGuardServiceServer::new(service.clone()),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            InteractionsServiceServer::new(service),
            auth,
        ));

    // The server stops on the caller's shutdown, or when start-up fails.
    // Once stopping, in-flight calls get `shutdown_grace` to finish.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let stop_reporter = reporter.clone();
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            _ = stop_rx => {}
        }
        tracing::info!("shutting down: NOT_SERVING, letting in-flight calls finish");
        set_all(&stop_reporter, ServingStatus::NotServing).await;
        let _ = stopping_tx.send(());
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let grace = config.shutdown_grace;
    let server = tokio::spawn(async move {
        let serving = router.serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result,
            _ = stopping_rx => {}
        }
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace_seconds = grace.as_secs_f64(),
                    "calls still open after the grace period were cut"
                );
                Ok(())
            }
        }
    });

    // Replay the history, then load the rules; health stays NOT_SERVING
    // and every RPC answers UNAVAILABLE until both are done.
    let opened = match config.cluster.clone() {
        None => open_single(&config).await,
        Some(cluster) => open_node(config.index, &config.data_dir, cluster).await,
    };
    let guard = match opened {
        Ok(guard) => guard,
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(e);
        }
    };
    let opts = LoadOptions {
        horizon_days: config.index.horizon_days,
        roles: config.roles.clone(),
    };
    let rules_dir = config.rules_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || RuleSet::load_dir(&rules_dir, &opts)).await;
    let rules = match loaded {
        Ok(Ok(rules)) => rules,
        Ok(Err(errors)) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            close(guard, cell).await;
            return Err(ServeError::Rules(errors));
        }
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            close(guard, cell).await;
            return Err(ServeError::Task(e.to_string()));
        }
    };
    tracing::info!(rules = rules.rules().len(), version = rules.version(), dir = %config.rules_dir.display(), "rules loaded");
    if let Some(log) = config.decision_log.clone() {
        match crate::decisions::DecisionLog::start(log.clone()) {
            Ok(l) => {
                let _ = decisions_cell.set(Arc::new(l));
            }
            Err(e) => {
                let _ = stop_tx.send(());
                let _ = server.await;
                close(guard, cell).await;
                return Err(ServeError::Task(format!(
                    "cannot start the decision log in `{}`: {e}",
                    log.dir.display()
                )));
            }
        }
    }
    if let Err(e) = crate::reload::archive(&config.data_dir, &rules) {
        tracing::warn!(error = %e, "the rules version could not be archived");
    }
    guard.set_rules(Arc::new(rules));
    guard.set_reserve_tolerance(Some(config.reserve_tolerance));
    let media = match open_media(&config.data_dir, config.media, Arc::clone(&guard)).await {
        Ok(m) => m,
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            close(guard, cell).await;
            return Err(e);
        }
    };
    let _ = media_cell.set(Arc::clone(&media.hub));
    let _ = cell.set(Arc::clone(&guard));
    if let Some(hold) = config.hold_until {
        let _ = hold.await;
    }
    // Keep the stop channel open while serving: dropping it would stop us.
    let _stop = stop_tx;
    // The reloader's watch is in place before SERVING: an edit made right
    // after a caller sees SERVING is reloaded, never missed until the next
    // one.
    let (reload_stop, reload_rx) = tokio::sync::watch::channel(false);
    let reloader = config.reload.clone().map(|stats| {
        let opts = LoadOptions {
            horizon_days: config.index.horizon_days,
            roles: config.roles.clone(),
        };
        tokio::spawn(crate::reload::watch(
            config.rules_dir.clone(),
            config.data_dir.clone(),
            opts,
            Arc::clone(&guard),
            stats,
            reload_rx,
        ))
    });
    if let Some(stats) = &config.reload {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !stats.watching.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    set_all(&reporter, ServingStatus::Serving).await;
    tracing::info!(data_dir = %config.data_dir.display(), "SERVING");
    let sampler = tokio::spawn(sample_sizes(Arc::clone(&guard)));
    let node_watch = guard
        .cluster_state()
        .is_some()
        .then(|| tokio::spawn(watch_node(Arc::clone(&guard), reporter.clone())));
    let peers = guard.exchange_rules();
    let letting_go = tokio::spawn(let_go_every(Arc::clone(&guard)));
    let result = match server.await {
        Ok(result) => result.map_err(ServeError::from),
        Err(e) => Err(ServeError::Task(e.to_string())),
    };
    sampler.abort();
    letting_go.abort();
    if let Some(w) = &node_watch {
        w.abort();
    }
    if let Some(p) = &peers {
        p.abort();
    }
    media.sweeper.abort();
    let _ = media.stop.send(true);
    if let Some(http) = media.http {
        let _ = http.await;
    }
    let _ = reload_stop.send(true);
    if let Some(r) = reloader {
        let _ = r.await;
    }
    if let Some(log) = decisions_cell.get() {
        log.close();
    }
    // The tasks that hold the guard are gone before this returns (an
    // aborted task is dropped when the runtime next reaches it): the
    // guard then closes here, its journal and store finished and the
    // index checkpoint written, rather than whenever the runtime ends.
    let _ = sampler.await;
    let _ = letting_go.await;
    if let Some(w) = node_watch {
        let _ = w.await;
    }
    if let Some(p) = peers {
        let _ = p.await;
    }
    let _ = media.sweeper.await;
    drop(media.hub);
    close(guard, cell).await;
    result
}

/// Waits, a few seconds at most, until `guard` is held only here and in
/// `cell`, and `cell` only here (connections still closing hold both
/// through the service), then lets both go: the guard closes on a
/// blocking thread (see [`Guard`]'s `Drop`). Still held by then, it
/// closes when its last holder lets it go.
async fn close(guard: Arc<Guard>, cell: Arc<std::sync::OnceLock<Arc<Guard>>>) {
    let only_here = |guard: &Arc<Guard>, cell: &Arc<std::sync::OnceLock<Arc<Guard>>>| {
        Arc::strong_count(cell) == 1
            && Arc::strong_count(guard) == 1 + usize::from(cell.get().is_some())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !only_here(&guard, &cell) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if !only_here(&guard, &cell) {
        tracing::warn!(
            "the guard is still held after the shutdown; it closes when its last holder lets it go"
        );
    }
    drop(cell);
    // The journal closes, the store finishes and the checkpoint is
    // written on a blocking thread, not on the runtime's.
    let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
}

/// Metrics connections served at once: a scraper needs one or two; more
/// wait to be accepted, so slow or idle clients cannot pile up.
pub const METRICS_CONNECTIONS: usize = 16;
/// How long a metrics client may take to send its request's headers.
pub const METRICS_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the Prometheus text exposition on `listener`, as the exporter's
/// own HTTP listener does (`/health` answers `OK`, every other path the
/// metrics), and runs the recorder's upkeep every 5 s, as its exporter
/// would. The listener is bound by the caller, so that `--metrics-listen`
/// with port 0 can print the address it got. At most
/// [`METRICS_CONNECTIONS`] at once, each with [`METRICS_HEADER_TIMEOUT`]
/// to send its headers.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "the metrics listener could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    let body = if req.uri().path() == "/health" {
                        "OK".to_owned()
                    } else {
                        tokio::task::spawn_blocking(move || handle.render())
                            .await
                            .unwrap_or_default()
                    };
                    let mut response =
                        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain"),
                    );
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(METRICS_HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::warn!(error = %e, "a metrics connection failed");
            }
        });
    }
}
