//! End-to-end tests of the gRPC server: the real server on 127.0.0.1:0 and
//! real tonic clients. This file holds the harness and the tests of the
//! server as a whole (health, reflection, access, start-up and shutdown);
//! `check.rs` and `interactions.rs` beside it test the two services.

use std::path::PathBuf;
use std::time::Duration;

use compliance_guard::api::auth::Access;
use compliance_guard::api::auth::Keys;
use compliance_guard::index::IndexConfig;
use compliance_guard::pb::compliance_guard_client::ComplianceGuardClient;
use compliance_guard::pb::interactions_client::InteractionsClient;
use compliance_guard::server::{ServeConfig, ServeError, serve};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The pipeline's key: no right to sensitive interactions.
pub const PIPELINE_KEY: &str = "pipeline-key-0123456789abcdef0123456789";
/// The auditor's key: may read sensitive interactions.
pub const AUDITOR_KEY: &str = "auditor-key-0123456789abcdef0123456789ab";

/// A running server and what is needed to talk to it and stop it.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

/// Options for [`start_with`].
pub struct Options {
    pub rules_dir: PathBuf,
    pub hold: Option<oneshot::Receiver<()>>,
    pub open: bool,
    /// Long by default: the tests reserve at recorded 2025 dates.
    pub reserve_tolerance: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rules_dir: PathBuf::from("rules"),
            hold: None,
            open: false,
            reserve_tolerance: Duration::from_secs(u32::MAX.into()),
        }
    }
}

/// The harness's keys file: `pipeline`, and `auditor` with the sensitive
/// right.
pub fn basic_keys() -> String {
    format!(
        "keys:\n  - name: pipeline\n    key: {PIPELINE_KEY}\n  - name: auditor\n    key: {AUDITOR_KEY}\n    sensitive: true\n"
    )
}

/// A server on a data directory the test keeps, so that it can be stopped
/// and started again on it: the restart tests of every service use it.
pub struct Restartable {
    pub addr: std::net::SocketAddr,
    shutdown: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts a server on `dir/data` with the keys file `keys` (written to
/// `dir/keys.yaml`), compacting into a snapshot after `compact_after`
/// records, and waits until it is SERVING.
pub async fn start_on(dir: &std::path::Path, keys: &str, compact_after: u64) -> Restartable {
    start_media(dir, keys, compact_after, Default::default()).await
}

/// [`start_on`] with recordings and voicemails configured as `media` says
/// (its listener, if any, bound by the caller: see [`media_listener`]).
pub async fn start_media(
    dir: &std::path::Path,
    keys: &str,
    compact_after: u64,
    media: compliance_guard::media::MediaConfig,
) -> Restartable {
    let keys_path = dir.join("keys.yaml");
    std::fs::write(&keys_path, keys).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        rules_dir: "rules".into(),
        data_dir: dir.join("data"),
        access: Access::Keys(std::sync::Arc::new(Keys::load_file(&keys_path).unwrap())),
        tls: None,
        index: IndexConfig::default(),
        roles: None,
        durability: compliance_guard::journal::Durability::Sync,
        reload: None,
        decision_log: None,
        compact_after,
        shutdown_grace: Duration::from_secs(5),
        hold_until: None,
        reserve_tolerance: Duration::from_secs(u32::MAX.into()),
        media,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(config, listener, async move {
        let _ = rx.await;
    }));
    let server = Restartable {
        addr,
        shutdown: tx,
        handle,
    };
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    for _ in 0..1000 {
        assert!(!server.handle.is_finished(), "the server stopped");
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.get_ref().status);
        if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never became SERVING");
}

/// Creates `i` for `person`, which must succeed, and returns the record.
pub async fn create_in(
    records: &mut Records,
    person: &str,
    i: compliance_guard::pb::Interaction,
) -> compliance_guard::pb::Interaction {
    records
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

/// A listener for media links on 127.0.0.1:0, and the address it got.
pub async fn media_listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

impl Restartable {
    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// An Interactions client with `key`.
    pub async fn records(&self, key: &'static str) -> Records {
        InteractionsClient::with_interceptor(self.channel().await, WithKey(Some(key)))
    }

    /// A ComplianceGuard client with `key`.
    pub async fn guard(&self, key: &'static str) -> Guard {
        ComplianceGuardClient::with_interceptor(self.channel().await, WithKey(Some(key)))
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        self.handle.await.unwrap().unwrap();
    }
}

pub async fn start() -> TestServer {
    start_with(Options::default()).await
}

pub async fn start_with(opts: Options) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.yaml");
    std::fs::write(&keys_path, basic_keys()).unwrap();
    let access = if opts.open {
        Access::Open
    } else {
        Access::Keys(std::sync::Arc::new(Keys::load_file(&keys_path).unwrap()))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        rules_dir: opts.rules_dir,
        data_dir: dir.path().join("data"),
        access,
        tls: None,
        index: IndexConfig::default(),
        roles: None,
        durability: compliance_guard::journal::Durability::Buffered,
        reload: None,
        decision_log: None,
        compact_after: 1_000_000,
        shutdown_grace: Duration::from_secs(5),
        hold_until: opts.hold,
        reserve_tolerance: opts.reserve_tolerance,
        media: Default::default(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(config, listener, async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

/// Adds a key to every request.
#[derive(Clone)]
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

pub type Guard = ComplianceGuardClient<InterceptedService<Channel, WithKey>>;
pub type Records = InteractionsClient<InterceptedService<Channel, WithKey>>;

impl TestServer {
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A ComplianceGuard client with the pipeline's key.
    pub async fn guard(&self) -> Guard {
        ComplianceGuardClient::with_interceptor(self.channel().await, WithKey(Some(PIPELINE_KEY)))
    }

    /// A ComplianceGuard client with a given key (or none).
    pub async fn guard_with(&self, key: Option<&'static str>) -> Guard {
        ComplianceGuardClient::with_interceptor(self.channel().await, WithKey(key))
    }

    /// An Interactions client with the pipeline's key.
    pub async fn interactions(&self) -> Records {
        InteractionsClient::with_interceptor(self.channel().await, WithKey(Some(PIPELINE_KEY)))
    }

    /// An Interactions client with a given key (or none).
    pub async fn records_with(&self, key: Option<&'static str>) -> Records {
        InteractionsClient::with_interceptor(self.channel().await, WithKey(key))
    }

    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    /// Waits until the server reports SERVING on "".
    pub async fn ready(&self) {
        let mut health = self.health().await;
        for _ in 0..500 {
            let r = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap();
            if r.get_ref().status == ServingStatus::Serving as i32 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server never became SERVING");
    }

    /// Stops the server and returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap().await.unwrap()
    }

    /// Waits for `serve` to return on its own (a failed start).
    pub async fn join(mut self) -> Result<(), ServeError> {
        self.handle.take().unwrap().await.unwrap()
    }
}

/// A started, ready server.
pub async fn ready_server() -> TestServer {
    let s = start().await;
    s.ready().await;
    s
}

// ---- the server as a whole ------------------------------------------------

#[tokio::test]
async fn health_is_not_serving_until_loaded_then_serving_then_not_serving_on_shutdown() {
    let (release, hold) = oneshot::channel();
    let server = start_with(Options {
        hold: Some(hold),
        ..Options::default()
    })
    .await;
    let mut health = server.health().await;
    for service in [
        "",
        "complianceguard.v1.ComplianceGuard",
        "complianceguard.v1.Interactions",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            r.get_ref().status,
            ServingStatus::NotServing as i32,
            "{service}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    release.send(()).unwrap();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    for service in [
        "",
        "complianceguard.v1.ComplianceGuard",
        "complianceguard.v1.Interactions",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            r.get_ref().status,
            ServingStatus::Serving as i32,
            "{service}"
        );
    }
    let stop = tokio::spawn(server.stop());
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    // The open Watch stream would hold a graceful shutdown; closing the
    // client lets the server finish at once, well inside its grace period.
    drop(watch);
    drop(health);
    stop.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_missing_rules_directory_stops_the_start() {
    let bad = tempfile::tempdir().unwrap();
    let server = start_with(Options {
        rules_dir: bad.path().join("missing"),
        ..Options::default()
    })
    .await;
    let err = server.join().await.unwrap_err();
    assert!(matches!(err, ServeError::Rules(_)), "{err}");
    assert!(
        err.to_string().contains("cannot read the rules directory"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rules_directory_that_fails_its_check_stops_the_start_with_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "rules:\n  - id: x\n    description: d\n    citation: c\n    jurisdictions: [US-XX]\n",
    )
    .unwrap();
    let server = start_with(Options {
        rules_dir: dir.path().to_owned(),
        ..Options::default()
    })
    .await;
    let text = server.join().await.unwrap_err().to_string();
    assert!(
        text.contains("bad.yaml:5:21: rules[0].jurisdictions[0]: unknown jurisdiction `US-XX`"),
        "{text}"
    );
}

#[tokio::test]
async fn reflection_lists_both_services_and_needs_a_key() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = ready_server().await;
    let ask = || {
        tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let mut client = ServerReflectionClient::with_interceptor(
        server.channel().await,
        WithKey(Some(PIPELINE_KEY)),
    );
    let mut stream = client
        .server_reflection_info(ask())
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in [
        "complianceguard.v1.ComplianceGuard",
        "complianceguard.v1.Interactions",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    let mut anonymous = ServerReflectionClient::new(server.channel().await);
    let err = anonymous.server_reflection_info(ask()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn missing_and_wrong_keys_are_unauthenticated_but_health_is_open() {
    use compliance_guard::pb::CheckRequest;
    let server = ready_server().await;
    let request = || CheckRequest {
        person_id: "BO-AAAA-0001".into(),
        channel: "voice".into(),
        ..CheckRequest::default()
    };
    let err = server
        .guard_with(None)
        .await
        .check(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("no API key"), "{}", err.message());
    let err = server
        .guard_with(Some("not-a-real-key-not-a-real-key-0000"))
        .await
        .check(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "the API key is not valid");
    let err = server
        .records_with(None)
        .await
        .list_interactions(compliance_guard::pb::ListInteractionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The x-api-key header works too.
    let mut client = ComplianceGuardClient::with_interceptor(
        server.channel().await,
        |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert("x-api-key", PIPELINE_KEY.parse().unwrap());
            Ok(req)
        },
    );
    assert!(client.check(request()).await.is_ok());
    let mut health = server.health().await;
    assert!(
        health
            .check(HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn open_access_is_refused_off_loopback_and_keys_are_created_once() {
    use compliance_guard::api::auth::{AuthError, resolve_access};
    let dir = tempfile::tempdir().unwrap();
    let public: std::net::SocketAddr = "0.0.0.0:50051".parse().unwrap();
    let err = resolve_access(None, None, dir.path(), true, public).unwrap_err();
    assert!(matches!(err, AuthError::OpenOffLoopback(_)), "{err}");
    let local: std::net::SocketAddr = "127.0.0.1:50051".parse().unwrap();
    assert!(matches!(
        resolve_access(None, None, dir.path(), true, local)
            .unwrap()
            .0,
        Access::Open
    ));
    let (_, line) = resolve_access(None, None, dir.path(), false, public).unwrap();
    assert!(line.starts_with("created an API key in"), "{line}");
    let path = dir.path().join("api-key");
    let key = std::fs::read_to_string(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (_, line) = resolve_access(None, None, dir.path(), false, public).unwrap();
    assert!(line.starts_with("API key from"), "{line}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "the key is created once"
    );
    let (access, _) = resolve_access(None, None, dir.path(), false, public).unwrap();
    let Access::Keys(keys) = access else {
        panic!("keys expected")
    };
    assert!(keys.verify(key.trim()).is_some());
}

#[tokio::test]
async fn tls_serves_and_a_plaintext_client_is_refused() {
    use compliance_guard::server::TlsFiles;
    use tonic::transport::{Certificate, ClientTlsConfig};
    // tests/tls holds a test-only CA and a localhost certificate it signed
    // (valid for 100 years); they protect nothing.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        rules_dir: PathBuf::from("rules"),
        data_dir: dir.path().to_owned(),
        access: Access::Keys(std::sync::Arc::new(
            Keys::single("tls", PIPELINE_KEY, false).unwrap(),
        )),
        tls: Some(TlsFiles {
            cert: "tests/tls/cert.pem".into(),
            key: "tests/tls/key.pem".into(),
        }),
        index: IndexConfig::default(),
        roles: None,
        durability: compliance_guard::journal::Durability::Buffered,
        reload: None,
        decision_log: None,
        compact_after: 1_000_000,
        shutdown_grace: Duration::from_secs(5),
        hold_until: None,
        reserve_tolerance: Duration::from_secs(u32::MAX.into()),
        media: Default::default(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(config, listener, async move {
        let _ = rx.await;
    }));
    let ca = Certificate::from_pem(std::fs::read("tests/tls/ca.pem").unwrap());
    let tls = ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let mut serving = false;
    for _ in 0..500 {
        if health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .get_ref()
            .status
            == ServingStatus::Serving as i32
        {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(serving);
    let mut guard = ComplianceGuardClient::with_interceptor(channel, WithKey(Some(PIPELINE_KEY)));
    let answer = guard
        .check(compliance_guard::pb::CheckRequest {
            person_id: "BO-TLS-0001".into(),
            channel: "email".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!answer.get_ref().rules_version.is_empty());
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        let err = HealthClient::new(plain)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_err();
        assert_ne!(err.code(), tonic::Code::Ok);
    }
    drop(health);
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
