//! Group-commit benchmark: acknowledged writes per second through the
//! guard (validate, index, journal, wait for durability) with 1, 8 and 64
//! concurrent writers, in `sync` and `buffered` durability, and the batch
//! sizes the writer thread formed. Kept out of CI.
//!
//! ```sh
//! cargo run --release --example journal_throughput -- 3
//! ```
//!
//! The argument is the seconds per cell (default 3).

#![allow(
    clippy::expect_used,
    reason = "a benchmark: a failure must stop the run"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use compliance_guard::guard::Guard;
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::Durability;
use compliance_guard::model::InteractionInput;
use compliance_guard::request::Caller;

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .map_or(3, |a| a.parse().expect("seconds"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| durability | writers | writes/s | batches | records per batch (mean / max) |");
    println!("|---|---|---|---|---|");
    for durability in [Durability::Sync, Durability::Buffered] {
        for writers in [1usize, 8, 64] {
            let dir = tempfile::tempdir().expect("temp dir");
            let (guard, _) = Guard::open(
                IndexConfig::default(),
                dir.path(),
                durability,
                u64::MAX,
                |_| {},
            )
            .expect("open");
            let guard = Arc::new(guard);
            let deadline = Instant::now() + Duration::from_secs(secs);
            let done: u64 = runtime.block_on(async {
                let mut tasks = Vec::new();
                for w in 0..writers {
                    let guard = Arc::clone(&guard);
                    tasks.push(tokio::spawn(async move {
                        let caller = Caller {
                            company: None,
                            name: "bench".into(),
                            sensitive: true,
                            agent: false,
                        };
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let input = InteractionInput {
                                channel: Some("voice".into()),
                                direction: Some("outbound".into()),
                                status: Some("attempted".into()),
                                status_details: Some("voiceRangNoPickup".into()),
                                loan_id: Some("LN-1".into()),
                                ..InteractionInput::default()
                            };
                            guard
                                .create(
                                    &format!("BO-W{w:03}-{}", n % 100),
                                    &input,
                                    &caller,
                                    Utc::now(),
                                )
                                .await
                                .expect("write");
                            n += 1;
                        }
                        n
                    }));
                }
                let mut total = 0;
                for t in tasks {
                    total += t.await.expect("task");
                }
                total
            });
            let stats = guard.journal_stats().expect("a journal");
            println!(
                "| {durability:?} | {writers} | {:.0} | {} | {:.1} / {} |",
                done as f64 / secs as f64,
                stats.batches,
                stats.records as f64 / stats.batches.max(1) as f64,
                stats.largest_batch
            );
        }
    }
}
