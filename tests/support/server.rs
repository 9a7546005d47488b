//! The one in-process server harness: the library's `serve` on
//! 127.0.0.1:0 in this process, configured by [`Options`] (a builder:
//! [`options`]), and tonic clients that carry an API key.
//!
//! ```ignore
//! let server = options().data_dir(dir.join("data")).sync().serving().await;
//! let mut checks = server.checks().await;
//! let mut interactions = server.interactions_as(AUDITOR_KEY).await;
//! server.stop().await.unwrap();
//! ```
//!
//! By default: the shipped rules, a temporary data directory, every key of
//! [`every_key`] (the clients carry [`PIPELINE_KEY`]), `Buffered`
//! durability, no compaction, no reload, no decision log, and a reserve
//! tolerance long enough for the recorded dates the tests reserve at.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use compliance_guard::api::auth::{Access, Keys};
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::{Durability, JournalError};
use compliance_guard::media::MediaConfig;
use compliance_guard::pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use compliance_guard::pb::interactions_service_client::InteractionsServiceClient;
use compliance_guard::reload::ReloadStats;
use compliance_guard::server::{ServeConfig, ServeError, TlsFiles, serve};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::consts::{
    ACME_KEY, ANN_KEY, AUDITOR_KEY, BOB_KEY, CAT_KEY, EVERY_RIGHT_KEY, GLOBEX_KEY, PIPELINE_KEY,
};
use super::library::LOCK_RETRIES;

/// A ComplianceGuard client (Check, reservations, people, restrictions).
pub type Checks = ComplianceGuardServiceClient<InterceptedService<Channel, WithKey>>;
/// An Interactions client.
pub type Interactions = InteractionsServiceClient<InterceptedService<Channel, WithKey>>;

/// How long a server may take to turn SERVING (or to stop) before the test
/// fails: far beyond any start here, so that only a hang reaches it.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The harness's keys file: `pipeline` (no right, no company), `auditor`
/// (sensitive), `acme-pipeline` and `globex-pipeline` (a company each),
/// the agents `ann`, `bob` and `cat`, and `everything` (sensitive and
/// agent).
pub fn every_key() -> String {
    format!(
        "keys:
  - name: pipeline
    key: {PIPELINE_KEY}
  - name: auditor
    key: {AUDITOR_KEY}
    sensitive: true
  - name: acme-pipeline
    key: {ACME_KEY}
    company: acme
  - name: globex-pipeline
    key: {GLOBEX_KEY}
    company: globex
  - name: ann
    key: {ANN_KEY}
    agent: true
  - name: bob
    key: {BOB_KEY}
    agent: true
  - name: cat
    key: {CAT_KEY}
    agent: true
    sensitive: false
  - name: everything
    key: {EVERY_RIGHT_KEY}
    sensitive: true
    agent: true
"
    )
}

/// Adds a key to every request (`Authorization: Bearer KEY`); `None` adds
/// none.
#[derive(Clone, Debug)]
pub struct WithKey(pub Option<&'static str>);

impl Interceptor for WithKey {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = self.0 {
            let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// A ComplianceGuard client on `channel` with `key`.
pub fn checks_on(channel: Channel, key: Option<&'static str>) -> Checks {
    ComplianceGuardServiceClient::with_interceptor(channel, WithKey(key))
}

/// An Interactions client on `channel` with `key`.
pub fn interactions_on(channel: Channel, key: Option<&'static str>) -> Interactions {
    InteractionsServiceClient::with_interceptor(channel, WithKey(key))
}

/// A connected channel to `addr` over plain HTTP/2.
pub async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// What the server is started with; [`options`] gives the defaults.
#[derive(Debug)]
pub struct Options {
    rules_dir: PathBuf,
    data_dir: Option<PathBuf>,
    /// The keys file's text; `None`: open access.
    keys: Option<String>,
    client_key: Option<&'static str>,
    tls: Option<TlsFiles>,
    durability: Durability,
    compact_after: u64,
    follows: bool,
    reload: Option<Arc<ReloadStats>>,
    decision_log: bool,
    hold: Option<oneshot::Receiver<()>>,
    reserve_tolerance: Duration,
    /// The media settings but the listener, which [`Options::media_links`]
    /// asks the harness to bind.
    media: MediaConfig,
    media_links: bool,
}

/// The defaults (see the module's docs).
pub fn options() -> Options {
    Options {
        rules_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
        data_dir: None,
        keys: Some(every_key()),
        client_key: Some(PIPELINE_KEY),
        tls: None,
        durability: Durability::Buffered,
        compact_after: u64::MAX,
        follows: true,
        reload: None,
        decision_log: false,
        hold: None,
        reserve_tolerance: Duration::from_secs(u32::MAX.into()),
        media: MediaConfig::default(),
        media_links: false,
    }
}

/// A started server, SERVING, with the defaults.
pub async fn ready_server() -> TestServer {
    options().serving().await
}

/// A server on `dir/data` (a directory the test keeps, so that it can be
/// stopped and started again on it), `Sync`, the store not following the
/// journal (a start applies it past `compact_after` records), SERVING.
pub async fn start_on(dir: &Path, compact_after: u64) -> TestServer {
    options()
        .data_dir(dir.join("data"))
        .sync()
        .unfollowed()
        .compact_after(compact_after)
        .serving()
        .await
}

impl Options {
    /// The rules directory.
    pub fn rules_dir(mut self, dir: impl Into<PathBuf>) -> Options {
        self.rules_dir = dir.into();
        self
    }

    /// A data directory the test keeps (by default a temporary one the
    /// server owns).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Options {
        self.data_dir = Some(dir.into());
        self
    }

    /// The keys file's text, instead of [`every_key`]; the clients then
    /// carry no key unless asked ([`TestServer::checks_as`]).
    pub fn keys(mut self, text: impl Into<String>) -> Options {
        self.keys = Some(text.into());
        self.client_key = None;
        self
    }

    /// Open access (`--insecure-no-auth`): every caller is `anonymous`, and
    /// the clients carry no key.
    pub fn open(mut self) -> Options {
        self.keys = None;
        self.client_key = None;
        self
    }

    /// TLS with these files.
    pub fn tls(mut self, files: TlsFiles) -> Options {
        self.tls = Some(files);
        self
    }

    /// What a write waits for.
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// `Sync` durability, the server's own default: a fdatasync before every
    /// acknowledged write.
    pub fn sync(self) -> Options {
        self.durability(Durability::Sync)
    }

    /// Roll the journal after this many records while serving; without
    /// following ([`Options::unfollowed`]), apply it to the store at a
    /// start past this many records.
    pub fn compact_after(mut self, records: u64) -> Options {
        self.compact_after = records;
        self
    }

    /// The store does not follow the journal while serving: every write
    /// stays in the journal until a start applies it (past
    /// `compact_after` records), so that a test can read it back from the
    /// journal.
    pub fn unfollowed(mut self) -> Options {
        self.follows = false;
        self
    }

    /// Live reload of the rules, counted in `stats`.
    pub fn reload(mut self, stats: Arc<ReloadStats>) -> Options {
        self.reload = Some(stats);
        self
    }

    /// The decision log, under the data directory.
    pub fn decision_log(mut self) -> Options {
        self.decision_log = true;
        self
    }

    /// Holds the server NOT_SERVING, after loading, until `hold` fires.
    pub fn hold(mut self, hold: oneshot::Receiver<()>) -> Options {
        self.hold = Some(hold);
        self
    }

    /// How far before the server's clock a reserving Check's `at` may be.
    pub fn reserve_tolerance(mut self, tolerance: Duration) -> Options {
        self.reserve_tolerance = tolerance;
        self
    }

    /// Recordings and voicemails as `media` says; its `listener` must be
    /// `None` (see [`Options::media_links`]).
    pub fn media(mut self, media: MediaConfig) -> Options {
        assert!(
            media.listener.is_none(),
            "ask for the link listener with media_links()"
        );
        self.media = media;
        self
    }

    /// Serve signed media links on a listener of their own, on
    /// 127.0.0.1:0 ([`TestServer::media`] says where).
    pub fn media_links(mut self) -> Options {
        self.media_links = true;
        self
    }

    /// Starts the server and returns at once, before it is SERVING (for
    /// tests of start-up, and of starts that must fail: see
    /// [`TestServer::join`]).
    pub async fn start(self) -> TestServer {
        let dirs = tempfile::tempdir().unwrap();
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| dirs.path().join("data"));
        let access = match &self.keys {
            Some(text) => {
                let path = dirs.path().join("keys.yaml");
                std::fs::write(&path, text).unwrap();
                Access::Keys(Arc::new(Keys::load_file(&path).unwrap()))
            }
            None => Access::Open,
        };
        let mut media = MediaConfig {
            max_bytes: self.media.max_bytes,
            retention: self.media.retention,
            sweep_every: self.media.sweep_every,
            cache_for: self.media.cache_for,
            link_ttl: self.media.link_ttl,
            listener: None,
            public_url: self.media.public_url.clone(),
            sweep_passes: self.media.sweep_passes.clone(),
        };
        let mut media_addr = None;
        if self.media_links {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            media_addr = Some(listener.local_addr().unwrap());
            media.listener = Some(listener);
        }
        let config = ServeConfig {
            rules_dir: self.rules_dir.clone(),
            data_dir: data_dir.clone(),
            access,
            tls: self.tls.clone(),
            index: IndexConfig::default(),
            roles: None,
            durability: self.durability,
            reload: self.reload.clone(),
            decision_log: self
                .decision_log
                .then(|| compliance_guard::decisions::LogConfig::under(&data_dir)),
            compact_after: self.compact_after,
            follow: match self.follows {
                true => compliance_guard::guard::Follow::On,
                false => compliance_guard::guard::Follow::Off,
            },
            cluster: None,
            shutdown_grace: Duration::from_secs(5),
            hold_until: self.hold,
            reserve_tolerance: self.reserve_tolerance,
            media,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(config, listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            media: media_addr,
            key: self.client_key,
            shutdown: Some(tx),
            handle: Some(handle),
            _dirs: dirs,
        }
    }

    /// Starts the server and waits until it is SERVING; panics if it stops
    /// instead. On a data directory the test keeps, a start refused because
    /// this process still held the directory's lock is tried again (see
    /// [`LOCK_RETRIES`]).
    pub async fn serving(self) -> TestServer {
        let mut options = self;
        for _ in 0..LOCK_RETRIES {
            let again = options.data_dir.is_some().then(|| options.again());
            match options.start().await.wait_serving().await {
                Ok(server) => return server,
                Err(ServeError::Journal(JournalError::Locked(_))) if again.is_some() => {
                    options = again.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("the server did not start: {e}"),
            }
        }
        panic!("the data directory stayed locked")
    }

    /// The same options again, for a second start on the same directory
    /// (a hold, which fires once, is not carried over).
    fn again(&self) -> Options {
        Options {
            rules_dir: self.rules_dir.clone(),
            data_dir: self.data_dir.clone(),
            keys: self.keys.clone(),
            client_key: self.client_key,
            tls: self.tls.clone(),
            durability: self.durability,
            compact_after: self.compact_after,
            follows: self.follows,
            reload: self.reload.clone(),
            decision_log: self.decision_log,
            hold: None,
            reserve_tolerance: self.reserve_tolerance,
            media: MediaConfig {
                max_bytes: self.media.max_bytes,
                retention: self.media.retention,
                sweep_every: self.media.sweep_every,
                cache_for: self.media.cache_for,
                link_ttl: self.media.link_ttl,
                listener: None,
                public_url: self.media.public_url.clone(),
                sweep_passes: self.media.sweep_passes.clone(),
            },
            media_links: self.media_links,
        }
    }
}

/// A running server (stopped when dropped) and what is needed to talk to
/// it and stop it.
#[derive(Debug)]
pub struct TestServer {
    /// Where it serves gRPC.
    pub addr: SocketAddr,
    /// Where it serves media links, if asked ([`Options::media_links`]).
    pub media: Option<SocketAddr>,
    /// The key the clients carry unless told otherwise.
    key: Option<&'static str>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    /// The keys file, and the data directory unless the test gave one.
    _dirs: tempfile::TempDir,
}

impl TestServer {
    /// Waits until the server reports SERVING on "", or returns what `serve`
    /// returned if it stopped first.
    pub async fn wait_serving(mut self) -> Result<TestServer, ServeError> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy();
        let mut health = HealthClient::new(channel);
        let limit = tokio::time::Instant::now() + START_LIMIT;
        loop {
            if self.handle.as_ref().unwrap().is_finished() {
                let result = self.handle.take().unwrap().await.unwrap();
                self.shutdown = None;
                return Err(result.expect_err("serve returned Ok before it was stopped"));
            }
            let status = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|r| r.get_ref().status);
            if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
                return Ok(self);
            }
            assert!(
                tokio::time::Instant::now() < limit,
                "the server was not SERVING after {START_LIMIT:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A connected channel to the server.
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// A ComplianceGuard client with the harness's key (none if access is
    /// open or the keys were the test's own).
    pub async fn checks(&self) -> Checks {
        checks_on(self.channel().await, self.key)
    }

    /// A ComplianceGuard client with `key`.
    pub async fn checks_as(&self, key: &'static str) -> Checks {
        checks_on(self.channel().await, Some(key))
    }

    /// A ComplianceGuard client with no key.
    pub async fn checks_without_key(&self) -> Checks {
        checks_on(self.channel().await, None)
    }

    /// An Interactions client with the harness's key.
    pub async fn interactions(&self) -> Interactions {
        interactions_on(self.channel().await, self.key)
    }

    /// An Interactions client with `key`.
    pub async fn interactions_as(&self, key: &'static str) -> Interactions {
        interactions_on(self.channel().await, Some(key))
    }

    /// An Interactions client with no key.
    pub async fn interactions_without_key(&self) -> Interactions {
        interactions_on(self.channel().await, None)
    }

    /// A health client (health needs no key).
    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    /// Stops the server gracefully and returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap().await.unwrap()
    }

    /// Waits for `serve` to return on its own (a refused start).
    pub async fn join(mut self) -> Result<(), ServeError> {
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(START_LIMIT, handle)
            .await
            .expect("serve did not return")
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Creates `i` for `person`, which must succeed, and returns the record.
pub async fn create_in(
    interactions: &mut Interactions,
    person: &str,
    i: compliance_guard::pb::Interaction,
) -> compliance_guard::pb::Interaction {
    interactions
        .create_interaction(compliance_guard::pb::CreateInteractionRequest {
            person_id: person.into(),
            interaction: Some(i),
            searchable: false,
        })
        .await
        .unwrap()
        .into_inner()
        .interaction
        .unwrap()
}
