//! The `compliance-guard` command: a thin shell over the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use compliance_guard::rules::{LoadOptions, Role, RuleSet};

/// compliance-guard: may we contact this borrower now, on this channel,
/// about this debt?
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeArgs>),
    /// Copy a data directory's history into one file, consistently, while
    /// the server runs.
    ///
    /// Of a cluster node's data directory, give the node's `--cluster`
    /// flags too: the audio the node does not hold is fetched from the
    /// cluster's object store into the backup.
    Backup {
        /// The data directory.
        #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Restore a backup into an empty data directory (then start the server
    /// on it).
    ///
    /// With `--cluster` and `--node-id`, into a cluster whose stream holds
    /// no history yet: a node of its own opens on `--data-dir` (empty),
    /// puts the backup's audio in the cluster's object store and publishes
    /// its records to the stream. How a single node's history moves into a
    /// cluster; start the cluster's nodes once it is done.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The (empty) data directory.
        #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Import existing history: JSON lines in the upstream Interaction
    /// format (each with its personId), from FILE or `-` for stdin. The
    /// server must be stopped. Bad lines are reported and skipped.
    ///
    /// With `--cluster` and `--node-id`, the import writes into a running
    /// cluster instead: it opens a node of its own on `--data-dir` (a
    /// fresh directory, or a stopped node's), catches up with the stream,
    /// and publishes every record as any node's write, fenced and
    /// acknowledged.
    Import {
        /// The data directory.
        #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The file to read, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        /// createdBy for records that do not name one.
        #[arg(long, default_value = "import")]
        created_by: String,
        /// The company every imported record belongs to (as a key's
        /// `company`); unset: no company, seen only by keys without one.
        #[arg(long)]
        company: Option<String>,
        /// `sync` or `buffered` (see `serve --durability`); a cluster's
        /// writes are always acknowledged by the stream.
        #[arg(long, default_value = "sync")]
        durability: compliance_guard::journal::Durability,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

/// How a command reaches a cluster on NATS JetStream: `serve` runs a node
/// of it, `import` writes into it, `backup` fetches its audio. One set of
/// flags (and environment variables) for all three, so that a command
/// names the stream exactly as the nodes do.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Run as one node of a cluster on NATS JetStream: the NATS servers,
    /// as `nats://HOST:PORT`, comma-separated. Every change goes to the
    /// cluster's stream before it is acknowledged, and every node applies
    /// the stream in order. Unset: a single node with its local journal.
    #[arg(long, env = "COMPLIANCE_GUARD_CLUSTER")]
    cluster: Option<String>,
    /// This node's name in the cluster (A-Z, a-z, 0-9, `-`, `_`); needed
    /// with `--cluster` by `serve` and `import`.
    #[arg(long, env = "COMPLIANCE_GUARD_NODE_ID")]
    node_id: Option<String>,
    /// The cluster's stream (made at the first start if there is none).
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_CLUSTER_STREAM",
        default_value = "compliance-guard"
    )]
    cluster_stream: String,
    /// Replicas of the cluster's stream: a write is acknowledged once a
    /// majority of them stored it.
    #[arg(long, env = "COMPLIANCE_GUARD_CLUSTER_REPLICAS", default_value_t = 3)]
    cluster_replicas: usize,
    /// Partitions the stream's subjects name (fixed when the stream is
    /// made; one node serves them all in this release).
    #[arg(long, env = "COMPLIANCE_GUARD_CLUSTER_PARTITIONS", default_value_t = 1)]
    cluster_partitions: u32,
    /// How long a node waits for the stream's leader (an acknowledgement,
    /// the last sequence) before it answers UNAVAILABLE.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_CLUSTER_TIMEOUT_MS",
        default_value_t = 2000
    )]
    cluster_timeout_ms: u64,
}

impl ClusterArgs {
    /// The cluster's settings, if `--cluster` is given; `node` names the
    /// connection when `--node-id` is not given (`None`: it is required).
    fn config(
        &self,
        node: Option<&str>,
    ) -> anyhow::Result<Option<compliance_guard::cluster::ClusterConfig>> {
        let Some(urls) = &self.cluster else {
            return Ok(None);
        };
        let Some(node_id) = self.node_id.as_deref().or(node) else {
            anyhow::bail!("--cluster needs --node-id NAME (this node's name in the cluster)");
        };
        Ok(Some(compliance_guard::cluster::ClusterConfig {
            stream: self.cluster_stream.clone(),
            replicas: self.cluster_replicas,
            partitions: self.cluster_partitions,
            timeout: std::time::Duration::from_millis(self.cluster_timeout_ms),
            ..compliance_guard::cluster::ClusterConfig::new(urls.clone(), node_id)
        }))
    }
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    listen: SocketAddr,
    /// The rules directory.
    #[arg(long, env = "COMPLIANCE_GUARD_RULES", default_value = "rules")]
    rules: PathBuf,
    /// The data directory (the generated API key lives there).
    #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// A YAML file of API keys (see docs/operating.md, "Access").
    #[arg(long, env = "COMPLIANCE_GUARD_KEYS")]
    keys: Option<PathBuf>,
    /// Run without API keys. Allowed only on a loopback address.
    #[arg(long)]
    insecure_no_auth: bool,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, env = "COMPLIANCE_GUARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, env = "COMPLIANCE_GUARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// What the lender is (debtCollector, creditor, licensee,
    /// smallLoanLicensee, which implies creditor), comma separated. Unset:
    /// every rule binds.
    #[arg(long, env = "COMPLIANCE_GUARD_ROLES", value_delimiter = ',')]
    roles: Vec<String>,
    /// What a write waits for before it is acknowledged: `sync` (fdatasync;
    /// survives a power cut) or `buffered` (survives a process crash only).
    #[arg(long, env = "COMPLIANCE_GUARD_DURABILITY", default_value = "sync")]
    durability: compliance_guard::journal::Durability,
    /// Roll the journal to a new generation after this many records: the
    /// store follows the journal while serving, and deletes each journal
    /// once it holds it, so the journal on disk stays about this long.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_COMPACT_AFTER",
        default_value_t = 1_000_000
    )]
    compact_after: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Let a Check be this many milliseconds stale: within that long of
    /// the node's last confirmed catch-up it skips the round trip to the
    /// stream's leader, and its answer says how stale it may be
    /// (`staleUpToMs`). 0, the default: every Check sees every write
    /// acknowledged anywhere before it began. See README, "Cluster".
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_CLUSTER_STALE_READS_MS",
        default_value_t = 0
    )]
    cluster_stale_reads_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example
    /// 127.0.0.1:9464; port 0 takes a free one, printed at start). Unset:
    /// no metrics endpoint.
    #[arg(long, env = "COMPLIANCE_GUARD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Keep no decision log (see docs/operating.md: what is lost then).
    #[arg(long)]
    no_decision_log: bool,
    /// Days the decision log's files are kept; 0 keeps them forever.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_DECISION_LOG_RETENTION_DAYS",
        default_value_t = 1095
    )]
    decision_log_retention_days: u32,
    /// Start a new decision log file past this many MiB.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_DECISION_LOG_MAX_MIB",
        default_value_t = 256
    )]
    decision_log_max_mib: u64,
    /// Do not watch the rules directory (SIGHUP does not reload either).
    #[arg(long)]
    no_reload: bool,
    /// Build no index checkpoint while serving: no second index is held
    /// in memory, and the writes' tail latency does not rise while one is
    /// built; a start after a crash rebuilds memory from the store once
    /// the journal after the last checkpoint grew past a generation (see
    /// docs/operating.md, "The index checkpoint").
    #[arg(long)]
    no_checkpoint_while_serving: bool,
    /// Seconds in-flight calls may run after a shutdown signal.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10
    )]
    shutdown_grace_seconds: u64,
    /// Days of history the index keeps for counting.
    #[arg(long, env = "COMPLIANCE_GUARD_HORIZON_DAYS", default_value_t = compliance_guard::index::DEFAULT_HORIZON_DAYS)]
    horizon_days: u32,
    /// How many seconds before the server's clock a reserving Check's `at`
    /// may be (clock skew between hosts); an earlier one is refused.
    #[arg(long, env = "COMPLIANCE_GUARD_RESERVE_TOLERANCE_SECONDS", default_value_t = compliance_guard::guard::DEFAULT_RESERVE_TOLERANCE.as_secs())]
    reserve_tolerance_seconds: u64,
    /// Serve signed, time-limited links to recordings and voicemails at
    /// http://ADDR/media/... (for example 127.0.0.1:8081). Unset: no
    /// links; downloads by stream only.
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_LISTEN")]
    media_listen: Option<SocketAddr>,
    /// The URL links start with, where a proxy (with TLS) publishes the
    /// media listener, for example https://media.lender.example. Unset:
    /// http:// and the listener's address.
    #[arg(
        long,
        env = "COMPLIANCE_GUARD_MEDIA_PUBLIC_URL",
        requires = "media_listen"
    )]
    media_public_url: Option<String>,
    /// The largest recording or voicemail accepted, in MiB.
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_MAX_MIB", default_value_t = compliance_guard::media::DEFAULT_MAX_BYTES >> 20)]
    media_max_mib: u64,
    /// Seconds a deleted interaction's audio stays on disk (unreachable)
    /// before it is purged; 0 purges at the next sweep.
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_RETENTION_SECONDS", default_value_t = compliance_guard::media::DEFAULT_RETENTION.as_secs())]
    media_retention_seconds: u64,
    /// On a cluster node: seconds its copy of a recording or voicemail
    /// nobody asked it for is kept (the cluster's object store holds the
    /// audio; a copy removed is fetched again when asked for).
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_CACHE_SECONDS", default_value_t = compliance_guard::media::DEFAULT_CACHE_FOR.as_secs())]
    media_cache_seconds: u64,
    /// Seconds a link stays valid (at most 86400).
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_LINK_TTL_SECONDS", default_value_t = compliance_guard::media::DEFAULT_LINK_TTL.as_secs())]
    media_link_ttl_seconds: u64,
    /// Seconds between two sweeps for audio to purge.
    #[arg(long, env = "COMPLIANCE_GUARD_MEDIA_SWEEP_SECONDS", default_value_t = compliance_guard::media::DEFAULT_SWEEP_EVERY.as_secs())]
    media_sweep_seconds: u64,
    /// How the log lines on stderr are written: `text` (colored only when
    /// stderr is a terminal) or `json` (one JSON object per line).
    #[arg(long, env = "COMPLIANCE_GUARD_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// How `serve` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// One line of text per event; ANSI colors only on a terminal.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (with the
    /// `message`), `target`, and the spans it happened in.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`; allowed: text, json")),
        }
    }
}

/// Set once `serve` logs as JSON: from then on a fatal error is a log line
/// too, so that stderr stays one JSON object per line.
static LOGS_AS_JSON: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// Sends the `tracing` events to stderr, at `RUST_LOG`'s levels (`info` by
/// default), in `format`. Colors are written only when stderr is a
/// terminal and `NO_COLOR` is unset or empty: a file or a pipe gets no
/// escape codes.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        LogFormat::Json => {
            builder.json().with_ansi(false).init();
            let _ = LOGS_AS_JSON.set(());
        }
    }
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Check every rule file in DIR and report each problem as
    /// `file:line:column: message`; exits 1 if there is any.
    Check {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
        /// Days of history the index keeps; longer windows are refused.
        #[arg(long, default_value_t = compliance_guard::index::DEFAULT_HORIZON_DAYS)]
        horizon_days: u32,
    },
    /// Run the rule tests in DIR/tests/*.yaml against the rules in DIR:
    /// one line per failing case, then `N passed, M failed`; exits 1 if any
    /// case fails.
    Test {
        /// The rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
    /// Replay the decision log against other rules: had NEW been live, what
    /// would it have changed? Reads only; runs while the server is up.
    Replay {
        /// The rule set to try.
        #[arg(long)]
        rules: PathBuf,
        /// The data directory whose decision log and journal are replayed.
        #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Only decisions at or after this moment (RFC 3339 or a date).
        #[arg(long)]
        from: Option<String>,
        /// Only decisions before this moment (RFC 3339 or a date).
        #[arg(long)]
        to: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// What the lender is, as given to `serve` (the same environment
        /// variable): it decides which rules bind, in the archived sets as
        /// in the new one. Unset: every rule binds.
        #[arg(long, env = "COMPLIANCE_GUARD_ROLES", value_delimiter = ',')]
        roles: Vec<String>,
        /// Days of history the index keeps, as given to `serve`; longer
        /// windows are refused.
        #[arg(long, env = "COMPLIANCE_GUARD_HORIZON_DAYS", default_value_t = compliance_guard::index::DEFAULT_HORIZON_DAYS)]
        horizon_days: u32,
    },
    /// List the rules that bind a lender in a place: one line per rule,
    /// tab-separated: id, kind, jurisdictions, citation, mode (enforce or
    /// shadow), file:line. A place takes the rules written for it, for the
    /// places that contain it (US) and for the places inside it, as a
    /// Check naming it does; a summary line goes to stderr.
    List {
        /// The rules directory (the older positional form; --rules is the
        /// same).
        #[arg(conflicts_with = "rules")]
        dir: Option<PathBuf>,
        /// The rules directory [default: rules].
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Only the rules that bind there: `US`, `US-` and a state,
        /// district or territory code (`US-FL`), or a city code
        /// (`US-NY-NYC`). Unset: every place.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Only the rules that bind a lender of these roles, as given to
        /// `serve --roles` (debtCollector, creditor, licensee), comma
        /// separated. Unset: every role. The environment variable is not
        /// read: the list says what the flags ask.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// `text` (tab-separated lines) or `json` (an array of objects).
        #[arg(long, default_value = "text")]
        format: compliance_guard::rules::listing::ListFormat,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            if LOGS_AS_JSON.get().is_some() {
                tracing::error!("error: {err:#}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(2)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use compliance_guard::api::auth::resolve_access;
    use compliance_guard::server::{ServeConfig, TlsFiles, serve};
    init_logs(args.log_format);
    let text = args.log_format == LogFormat::Text;
    let roles = parse_roles(&args.roles)?;
    if args.horizon_days == 0 || args.horizon_days > compliance_guard::index::MAX_HORIZON_DAYS {
        anyhow::bail!(
            "--horizon-days {} is out of range; allowed: 1 to {}",
            args.horizon_days,
            compliance_guard::index::MAX_HORIZON_DAYS
        );
    }
    let env_key = std::env::var("COMPLIANCE_GUARD_API_KEY").ok();
    let (access, access_line) = resolve_access(
        args.keys.as_deref(),
        env_key.as_deref(),
        &args.data_dir,
        args.insecure_no_auth,
        args.listen,
    )?;
    let decision_log = (!args.no_decision_log).then(|| compliance_guard::decisions::LogConfig {
        max_file_bytes: args.decision_log_max_mib.max(1) << 20,
        retention_days: args.decision_log_retention_days,
        ..compliance_guard::decisions::LogConfig::under(&args.data_dir)
    });
    let max_ttl = compliance_guard::media::MAX_LINK_TTL.as_secs();
    if args.media_link_ttl_seconds == 0 || args.media_link_ttl_seconds > max_ttl {
        anyhow::bail!(
            "--media-link-ttl-seconds {} is out of range; allowed: 1 to {max_ttl} (a link is a credential)",
            args.media_link_ttl_seconds
        );
    }
    if args.media_max_mib == 0 {
        anyhow::bail!("--media-max-mib 0 is out of range; allowed: 1 or more");
    }
    if let Some(url) = &args.media_public_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        anyhow::bail!(
            "--media-public-url `{url}` is not an http(s) URL; allowed: `https://host[:port][/path]`"
        );
    }
    let mut config = ServeConfig {
        rules_dir: args.rules,
        data_dir: args.data_dir,
        access,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        index: compliance_guard::index::IndexConfig {
            horizon_days: args.horizon_days,
        },
        roles,
        durability: args.durability,
        decision_log,
        reload: (!args.no_reload)
            .then(|| std::sync::Arc::new(compliance_guard::reload::ReloadStats::default())),
        compact_after: args.compact_after,
        follow: match args.no_checkpoint_while_serving {
            false => compliance_guard::guard::Follow::On,
            true => compliance_guard::guard::Follow::WithoutCheckpointBuilds,
        },
        cluster: args
            .cluster
            .config(None)?
            .map(|c| compliance_guard::cluster::ClusterConfig {
                stale_reads: std::time::Duration::from_millis(args.cluster_stale_reads_ms),
                ..c
            }),
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace_seconds),
        hold_until: None,
        reserve_tolerance: std::time::Duration::from_secs(args.reserve_tolerance_seconds),
        media: compliance_guard::media::MediaConfig {
            max_bytes: args.media_max_mib.saturating_mul(1 << 20),
            retention: std::time::Duration::from_secs(args.media_retention_seconds),
            sweep_every: std::time::Duration::from_secs(args.media_sweep_seconds.max(1)),
            cache_for: std::time::Duration::from_secs(args.media_cache_seconds),
            link_ttl: std::time::Duration::from_secs(args.media_link_ttl_seconds),
            listener: None,
            public_url: args.media_public_url,
            sweep_passes: None,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if let Some(addr) = args.metrics_listen {
            use compliance_guard::server::{BATCH_BUCKETS, SECONDS_BUCKETS, describe_metrics};
            use metrics_exporter_prometheus::Matcher;
            // Buckets make the histograms real Prometheus histograms, which
            // aggregate across instances; the default would be summaries.
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("compliance_guard_journal_batch_records".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder())
                .with_context(|| format!("serving metrics on {addr}"))?;
            // Bound here rather than by the exporter, so that the address
            // actually bound (port 0 included) can be told.
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            let bound = listener
                .local_addr()
                .context("reading the metrics listener's address")?;
            tokio::spawn(compliance_guard::server::serve_metrics(listener, handle));
            describe_metrics();
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
            if text {
                eprintln!("compliance-guard metrics on http://{bound}/metrics");
            }
        }
        if let Some(addr) = args.media_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for media links on {addr}"))?;
            let bound = listener.local_addr().context("reading the media listener's address")?;
            if !bound.ip().is_loopback() && config.media.public_url.is_none() {
                tracing::warn!(%bound, "media links are served over plain HTTP on a non-loopback address; put a TLS proxy in front and give --media-public-url");
            }
            // As JSON, stderr holds log lines only: the server logs this
            // address itself ("media links served over HTTP").
            if text {
                eprintln!("compliance-guard media links on http://{bound}/media/");
            }
            config.media.listener = Some(listener);
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener
            .local_addr()
            .context("reading the listening address")?;
        tracing::info!(%addr, "{access_line}");
        // The line tests and scripts read; as JSON, the log line above.
        if text {
            eprintln!("compliance-guard listening on {addr}; {access_line}");
        }
        serve(config, listener, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A backup of a cluster node's data dir, with the audio the node does
/// not hold fetched from the cluster's object store.
fn backup_of_node(
    data_dir: &std::path::Path,
    to: &std::path::Path,
    config: compliance_guard::cluster::ClusterConfig,
) -> anyhow::Result<compliance_guard::ops::BackupReport> {
    let runtime = tokio::runtime::Runtime::new()?;
    let shared = runtime.block_on(async {
        let link = compliance_guard::cluster::Link::connect_existing(config).await?;
        link.existing_shared_media().await
    })?;
    let mut fetch = |key: &str, size: u64, path: &std::path::Path| {
        runtime.block_on(async {
            let mut file = tokio::fs::File::create(path)
                .await
                .map_err(|e| e.to_string())?;
            // The check against the record follows; one byte past the size
            // recorded is enough for it to refuse a damaged object.
            shared
                .get(key, &mut file, size.saturating_add(1))
                .await
                .map_err(|e| e.to_string())
        })
    };
    let report = compliance_guard::ops::backup_fetching(data_dir, to, &mut fetch)?;
    Ok(report)
}

/// Restores a backup into a cluster with no history yet, through a node
/// opened on `data_dir` for it.
fn restore_into_cluster(
    from: &std::path::Path,
    data_dir: &std::path::Path,
    config: compliance_guard::cluster::ClusterConfig,
) -> anyhow::Result<compliance_guard::ops::RestoreReport> {
    // A missing file is refused before a node is opened for it.
    if !from.is_file() {
        anyhow::bail!("`{}` is not a backup file", from.display());
    }
    let (runtime, guard) = open_node(data_dir, config)?;
    let mut shown = 0;
    let report = runtime.block_on(compliance_guard::ops::restore_published(guard, from, |n| {
        if n / 100_000 > shown {
            shown = n / 100_000;
            eprintln!("restore: {n} records published");
        }
    }))?;
    Ok(report)
}

/// A cluster node of a command's own (import, restore) on `data_dir`,
/// caught up with the stream, and the runtime it runs on; its log lines
/// go to stderr.
fn open_node(
    data_dir: &std::path::Path,
    config: compliance_guard::cluster::ClusterConfig,
) -> anyhow::Result<(
    tokio::runtime::Runtime,
    std::sync::Arc<compliance_guard::guard::Guard>,
)> {
    init_logs(LogFormat::Text);
    let runtime = tokio::runtime::Runtime::new()?;
    let guard = runtime.block_on(compliance_guard::server::open_node(
        compliance_guard::index::IndexConfig::default(),
        data_dir,
        config,
    ))?;
    Ok((runtime, guard))
}

fn import(
    data_dir: &std::path::Path,
    file: &str,
    created_by: &str,
    company: Option<&str>,
    durability: compliance_guard::journal::Durability,
    cluster: Option<compliance_guard::cluster::ClusterConfig>,
) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    if let Some(c) = company
        && (c.is_empty() || c.chars().count() > 100 || !c.bytes().all(|b| b.is_ascii_graphic()))
    {
        anyhow::bail!(
            "--company `{c}` is not allowed; allowed: 1 to 100 printable characters and no spaces (as a key's `company`)"
        );
    }
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening `{file}`"))?,
        ))
    };
    let progress = |n| eprintln!("import: {n} lines read");
    let report = match cluster {
        None => compliance_guard::ops::import(
            data_dir,
            reader,
            created_by,
            company,
            durability,
            chrono::Utc::now(),
            progress,
        )?,
        Some(config) => {
            let (runtime, guard) = open_node(data_dir, config)?;
            runtime.block_on(compliance_guard::ops::import_published(
                guard,
                reader,
                created_by,
                company,
                chrono::Utc::now(),
                progress,
            ))?
        }
    };
    for p in &report.problems {
        eprintln!("{file}:{}: {}", p.line, p.message);
    }
    for (field, n) in &report.ignored_fields {
        eprintln!(
            "import: ignored the field `{field}` (not in the Interaction format) on {n} line(s)"
        );
    }
    if report.without_ids > 0 {
        eprintln!(
            "import: {} line(s) had neither `id` nor `externalId`; importing the same file again would record them twice",
            report.without_ids
        );
    }
    println!(
        "imported {} of {} lines; {} already present; {} refused",
        report.imported,
        report.lines,
        report.already_present,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--roles` as the rules read them; empty means every rule binds.
fn parse_roles(roles: &[String]) -> anyhow::Result<Option<Vec<Role>>> {
    if roles.is_empty() {
        return Ok(None);
    }
    let parsed: Result<Vec<Role>, _> = roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                anyhow::anyhow!("unknown role `{r}`; allowed: {}", Role::NAMES.join(", "))
            })
        })
        .collect();
    Ok(Some(parsed?))
}

fn replay(
    rules: &std::path::Path,
    data_dir: &std::path::Path,
    opts: &LoadOptions,
    from: Option<String>,
    to: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let time = |t: Option<String>| -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        t.map(|t| {
            compliance_guard::model::parse_time("from/to", &t).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .transpose()
    };
    let report = compliance_guard::whatif::what_if(rules, data_dir, opts, time(from)?, time(to)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "replayed {} decisions ({} skipped)",
        report.decisions, report.skipped
    );
    if let Some(from) = &report.history_from {
        println!(
            "history read from {from}: {} interaction records",
            report.interactions_read
        );
    }
    let ids: std::collections::BTreeSet<&String> =
        report.before.keys().chain(report.after.keys()).collect();
    println!(
        "{:<48} {:>8} {:>8}",
        "violations per rule", "before", "after"
    );
    for id in ids {
        let n = |m: &std::collections::BTreeMap<String, u64>| m.get(id).copied().unwrap_or(0);
        println!("{id:<48} {:>8} {:>8}", n(&report.before), n(&report.after));
    }
    println!("allowed -> blocked: {}", report.newly_blocked.len());
    for c in &report.newly_blocked {
        println!(
            "  {} {} {}: now blocked by `{}`",
            c.logged_at,
            c.person_id,
            c.channel,
            c.now_rule_id.as_deref().unwrap_or("?")
        );
    }
    println!("blocked -> allowed: {}", report.newly_allowed.len());
    for c in &report.newly_allowed {
        println!(
            "  {} {} {}: was blocked by `{}`",
            c.logged_at,
            c.person_id,
            c.channel,
            c.was_rule_id.as_deref().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Backup {
            data_dir,
            to,
            cluster,
        } => {
            let report = match cluster.config(Some("backup"))? {
                None => compliance_guard::ops::backup(&data_dir, &to)?,
                Some(config) => backup_of_node(&data_dir, &to, config)?,
            };
            println!(
                "backed up {} records ({} bytes) to {}",
                report.records,
                report.bytes,
                to.display()
            );
            if report.media_files > 0 {
                println!(
                    "and {} recordings and voicemails ({} bytes) to {}",
                    report.media_files,
                    report.media_bytes,
                    compliance_guard::ops::media_dir_of(&to).display()
                );
            }
            for key in &report.media_missing {
                eprintln!(
                    "warning: stored audio `{key}` is named by a record but is not on disk; it is not in the backup"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            from,
            data_dir,
            cluster,
        } => {
            let report = match cluster.config(None)? {
                None => {
                    let report = compliance_guard::ops::restore(&from, &data_dir)?;
                    println!(
                        "restored {} records into {}; start the server with --data-dir {}",
                        report.records,
                        data_dir.display(),
                        data_dir.display()
                    );
                    report
                }
                Some(config) => {
                    let stream = config.stream.clone();
                    let report = restore_into_cluster(&from, &data_dir, config)?;
                    println!(
                        "restored {} records into the cluster's stream `{stream}`; start its nodes (this one with --data-dir {})",
                        report.records,
                        data_dir.display()
                    );
                    report
                }
            };
            if report.media_files > 0 {
                println!(
                    "and {} recordings and voicemails, each checked against its SHA-256",
                    report.media_files
                );
            }
            for key in &report.media_missing {
                eprintln!(
                    "warning: stored audio `{key}` is named by a record but is not in the backup; its download will fail"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            data_dir,
            file,
            created_by,
            company,
            durability,
            cluster,
        } => import(
            &data_dir,
            &file,
            &created_by,
            company.as_deref(),
            durability,
            cluster.config(None)?,
        ),
        Command::Serve(args) => serve(*args),
        Command::Rules {
            command: RulesCommand::Check { dir, horizon_days },
        } => {
            let opts = LoadOptions {
                horizon_days,
                ..LoadOptions::default()
            };
            match RuleSet::load_dir(&dir, &opts) {
                Ok(set) => {
                    println!("ok: {} rules, version {}", set.rules().len(), set.version());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        println!("{e}");
                    }
                    eprintln!(
                        "{} problem{} found",
                        errors.0.len(),
                        if errors.0.len() == 1 { "" } else { "s" }
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Rules {
            command:
                RulesCommand::Replay {
                    rules,
                    data_dir,
                    from,
                    to,
                    json,
                    roles,
                    horizon_days,
                },
        } => {
            let opts = LoadOptions {
                horizon_days,
                roles: parse_roles(&roles)?,
            };
            replay(&rules, &data_dir, &opts, from, to, json)
        }
        Command::Rules {
            command: RulesCommand::Test { dir },
        } => {
            let report = compliance_guard::ruletest::run(&dir).map_err(|e| anyhow::anyhow!(e))?;
            for f in &report.failed {
                println!("{f}");
            }
            println!("{} passed, {} failed", report.passed, report.failed.len());
            Ok(if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Rules {
            command:
                RulesCommand::List {
                    dir,
                    rules,
                    jurisdiction,
                    roles,
                    format,
                },
        } => {
            use compliance_guard::jurisdiction::Jurisdiction;
            use compliance_guard::rules::listing;
            let place = jurisdiction
                .map(|j| Jurisdiction::parse(&j))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?;
            let roles = parse_roles(&roles)?;
            let dir = rules.or(dir).unwrap_or_else(|| PathBuf::from("rules"));
            let opts = LoadOptions {
                roles: roles.clone(),
                ..LoadOptions::default()
            };
            let set = RuleSet::load_dir(&dir, &opts)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("loading rules from {}", dir.display()))?;
            let listed = listing::binding_in(&set, place);
            print!("{}", listing::render(&listed, format));
            eprintln!("{}", listing::summary(&listed, place, roles.as_deref()));
            Ok(ExitCode::SUCCESS)
        }
    }
}
