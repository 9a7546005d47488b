//! Recording throughput: upload by gRPC stream, download by gRPC stream,
//! and download by signed link over HTTP, through a real server on
//! loopback (in this process, `--durability sync`, a temporary data dir).
//! Each cell is the median of the runs given; kept out of CI.
//!
//! ```sh
//! cargo run --release --example media_throughput -- 7
//! ```
//!
//! The argument is the runs per cell (default 5).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a benchmark: a failure must stop the run"
)]

use std::time::{Duration, Instant};

use compliance_guard::api::auth::Access;
use compliance_guard::index::IndexConfig;
use compliance_guard::pb::interactions_service_client::InteractionsServiceClient;
use compliance_guard::pb::{
    CreateInteractionRequest, DownloadInteractionRecordingRequest, Interaction,
    UploadInteractionRecordingRequest, UploadMediaHeader, download_interaction_recording_response,
    upload_interaction_recording_request,
};
use compliance_guard::server::{ServeConfig, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 256 * 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("runs"));
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let media_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media_addr = media_listener.local_addr().unwrap();
    let config = ServeConfig {
        rules_dir: "rules".into(),
        data_dir: dir.path().join("data"),
        access: Access::Open,
        tls: None,
        index: IndexConfig::default(),
        roles: None,
        durability: compliance_guard::journal::Durability::Sync,
        compact_after: u64::MAX,
        follow: compliance_guard::guard::Follow::On,
        cluster: None,
        decision_log: None,
        reload: None,
        shutdown_grace: Duration::from_secs(5),
        hold_until: None,
        reserve_tolerance: Duration::from_secs(300),
        media: compliance_guard::media::MediaConfig {
            max_bytes: 256 << 20,
            listener: Some(media_listener),
            ..Default::default()
        },
    };
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(config, listener, async move {
        let _ = rx.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = InteractionsServiceClient::new(channel)
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20);
    // Wait until it serves.
    let mut ready = false;
    for _ in 0..500 {
        if client
            .list_interactions(compliance_guard::pb::ListInteractionsRequest::default())
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ready, "the server never served");

    println!("| audio | upload MB/s | stream download MB/s | link download MB/s |");
    println!("|---|---|---|---|");
    let mut n = 0;
    for mib in [1usize, 16, 64] {
        let audio: Vec<u8> = (0..mib << 20).map(|i| (i * 31 % 251) as u8).collect();
        let (mut up, mut down, mut link) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            n += 1;
            let id = client
                .create_interaction(CreateInteractionRequest {
                    person_id: format!("BO-BNCH-{n:04}"),
                    interaction: Some(Interaction {
                        channel: "voice".into(),
                        direction: "outbound".into(),
                        status: "succeeded".into(),
                        ..Interaction::default()
                    }),
                    searchable: false,
                })
                .await
                .unwrap()
                .into_inner()
                .interaction
                .unwrap()
                .id;
            let mut parts = vec![UploadInteractionRecordingRequest {
                part: Some(upload_interaction_recording_request::Part::Header(
                    UploadMediaHeader {
                        interaction_id: id.clone(),
                        content_type: "audio/wav".into(),
                        ..UploadMediaHeader::default()
                    },
                )),
            }];
            parts.extend(
                audio
                    .chunks(CHUNK)
                    .map(|c| UploadInteractionRecordingRequest {
                        part: Some(upload_interaction_recording_request::Part::Chunk(
                            c.to_vec(),
                        )),
                    }),
            );
            let started = Instant::now();
            client
                .upload_interaction_recording(tokio_stream::iter(parts))
                .await
                .unwrap();
            up.push(started.elapsed().as_secs_f64());

            let started = Instant::now();
            let mut stream = client
                .download_interaction_recording(DownloadInteractionRecordingRequest {
                    interaction_id: id.clone(),
                    ..DownloadInteractionRecordingRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut got = 0;
            while let Some(m) = stream.message().await.unwrap() {
                if let Some(download_interaction_recording_response::Part::Chunk(c)) = m.part {
                    got += c.len();
                }
            }
            down.push(started.elapsed().as_secs_f64());
            assert_eq!(got, audio.len());

            let url = match client
                .download_interaction_recording(DownloadInteractionRecordingRequest {
                    interaction_id: id.clone(),
                    return_url: true,
                    ..DownloadInteractionRecordingRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .message()
                .await
                .unwrap()
                .and_then(|m| m.part)
            {
                Some(download_interaction_recording_response::Part::Link(l)) => l.url,
                other => panic!("no link: {other:?}"),
            };
            let path = url
                .strip_prefix(&format!("http://{media_addr}"))
                .unwrap()
                .to_owned();
            let started = Instant::now();
            let mut s = tokio::net::TcpStream::connect(media_addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut body = Vec::with_capacity(audio.len() + 1024);
            s.read_to_end(&mut body).await.unwrap();
            link.push(started.elapsed().as_secs_f64());
            assert!(body.starts_with(b"HTTP/1.1 200"));
            assert!(body.len() > audio.len());
        }
        let rate = |secs: f64| (mib << 20) as f64 / secs / 1e6;
        println!(
            "| {mib} MiB | {:.0} | {:.0} | {:.0} |",
            rate(median(up)),
            rate(median(down)),
            rate(median(link))
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
