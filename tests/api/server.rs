//! The gRPC server as a whole: health, reflection, access, start-up and
//! shutdown, TLS. `check.rs` and `interactions.rs` beside it test the two
//! services.

use std::time::Duration;

use compliance_guard::api::auth::Access;
use compliance_guard::pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use compliance_guard::server::ServeError;
use tokio::sync::oneshot;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::consts::{MONDAY_10, PIPELINE_KEY};
use crate::support::server::{WithKey, checks_on, options, ready_server};

// ---- the server as a whole ------------------------------------------------

#[tokio::test]
async fn health_is_not_serving_until_loaded_then_serving_then_not_serving_on_shutdown() {
    let (release, hold) = oneshot::channel();
    let server = options().hold(hold).start().await;
    let mut health = server.health().await;
    for service in [
        "",
        "complianceguard.v1.ComplianceGuardService",
        "complianceguard.v1.InteractionsService",
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
        "complianceguard.v1.ComplianceGuardService",
        "complianceguard.v1.InteractionsService",
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
    let server = options()
        .rules_dir(bad.path().join("missing"))
        .start()
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
    let server = options().rules_dir(dir.path()).start().await;
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
        "complianceguard.v1.ComplianceGuardService",
        "complianceguard.v1.InteractionsService",
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
    // Monday 10:00 in New York: allowed, whatever the clock says.
    let request = || CheckRequest {
        person_id: "BO-AAAA-0001".into(),
        channel: "voice".into(),
        jurisdictions: vec!["US-NY".into()],
        at: Some(prost_types::Timestamp {
            seconds: MONDAY_10,
            nanos: 0,
        }),
        ..CheckRequest::default()
    };
    let err = server
        .checks_without_key()
        .await
        .check(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("no API key"), "{}", err.message());
    let err = server
        .checks_as("not-a-real-key-not-a-real-key-0000")
        .await
        .check(request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "the API key is not valid");
    let err = server
        .interactions_without_key()
        .await
        .list_interactions(compliance_guard::pb::ListInteractionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The x-api-key header works too.
    let mut client = ComplianceGuardServiceClient::with_interceptor(
        server.channel().await,
        |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert("x-api-key", PIPELINE_KEY.parse().unwrap());
            Ok(req)
        },
    );
    let answer = client.check(request()).await.unwrap().into_inner();
    assert!(answer.allowed, "{answer:?}");
    assert_eq!(answer.compliance_guard_rule_id, "");
    // Health needs no key.
    let mut health = server.health().await;
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
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
    let server = options()
        .tls(TlsFiles {
            cert: "tests/tls/cert.pem".into(),
            key: "tests/tls/key.pem".into(),
        })
        .start()
        .await;
    let addr = server.addr;
    // A plaintext client gets no answer, not even NOT_SERVING (which a
    // plaintext server answers from the moment it listens).
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        HealthClient::new(plain).check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("a plaintext call is refused, not left hanging");
    assert!(
        refused.is_err(),
        "a plaintext client was answered: {refused:?}"
    );
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
    let limit = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            break;
        }
        assert!(tokio::time::Instant::now() < limit, "not SERVING over TLS");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut checks = checks_on(channel, Some(PIPELINE_KEY));
    let answer = checks
        .check(compliance_guard::pb::CheckRequest {
            person_id: "BO-TLS-0001".into(),
            channel: "email".into(),
            jurisdictions: vec!["US-NY".into()],
            at: Some(prost_types::Timestamp {
                seconds: MONDAY_10,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.allowed, "{answer:?}");
    assert!(!answer.rules_version.is_empty());
    drop(health);
    server.stop().await.unwrap();
}
