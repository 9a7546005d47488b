//! Soak test: the real server under a realistic mix for a fixed time.
//! Ignored by default (it runs for a minute); run it with
//!
//! ```text
//! SOAK_SECONDS=300 cargo test --release --test integration soak -- --ignored --nocapture
//! ```
//!
//! (`SOAK_SECONDS` defaults to 60; `SOAK_CLIENTS`, default 8, sets how many
//! concurrent clients, each on its own connection; `SOAK_QUIET_SECONDS`,
//! default a sixth of the run and at least 10, the Checks-only phase after
//! it.) `.ci/run` runs it with `SOAK_SECONDS=10`.
//!
//! It starts `compliance-guard serve` as a subprocess on port 0 with a
//! temporary data directory and the default durability (`sync`: an
//! fdatasync before every acknowledged write), and drives it from several
//! clients over a few thousand borrowers, each with a jurisdiction:
//! about 70% Checks without reserve, 15% reserving Checks (each allow then
//! reported as attempted or failed by an UpdateInteraction, but one in ten
//! left open, as a pipeline that crashed mid-send would), and 15%
//! CreateInteraction of past contacts. Each client's sequence of requests
//! comes from a seeded generator, so a run is repeatable up to the
//! interleaving of clients and the wall clock (which moves the hours rules).
//!
//! It shows:
//!
//! - **no request fails**: every answer is OK (a block is an answer);
//! - **memory is bounded by what is stored**: the server's resident set
//!   (VmRSS) is sampled every few seconds and printed. It cannot be flat
//!   while writes go on: the index keeps every interaction in memory (the
//!   horizon limits what is counted, not what is kept), and a reserving
//!   Check's answer is kept 24 hours for retries with its request id, so
//!   it must grow with each thing stored. What is asserted is that, over
//!   the second half of the mixed run (after warm-up: thread stacks,
//!   connection buffers, allocator arenas), it grows by no more than
//!   [`BYTES_PER_STORED`] per interaction or answer stored plus [`SLACK`]
//!   (a record costing many times its size fails it); and that in a final
//!   phase of Checks only, which store nothing, it is flat: within
//!   [`QUIET_SLACK`] (a leak per request fails it);
//! - **the counts survive a restart**: the server is stopped with SIGTERM,
//!   started again on the same data directory, and the interactions and
//!   open reservations the clients tracked are exactly those that
//!   ListInteractions, ListReservations and the gauges report after the
//!   journal's replay.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use compliance_guard::pb::{
    CheckRequest, CreateInteractionRequest, Interaction, ListInteractionsRequest,
    ListReservationsRequest, UpdateInteractionRequest,
};
use prost_types::{FieldMask, Timestamp};
use tonic::transport::Channel;

use crate::support::process::{ServeProcess, sample, scrape, serve};
use crate::support::server::{checks_on, connect, interactions_on};

/// How many borrowers the load spreads over.
const BORROWERS: u64 = 3_000;
/// Where the borrowers live; each has one, by its number.
const PLACES: [&str; 8] = [
    "US-NY", "US-CA", "US-TX", "US-MA", "US-FL", "US-IL", "US-WA", "US-PA",
];
const CHANNELS: [&str; 4] = ["voice", "text", "email", "mail"];
/// How often the server's resident set is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The most resident memory one stored thing (an interaction, with its
/// reservation if reserved, or a reserving Check's answer kept for
/// retries) may cost over the second half: its strings and ids, the maps
/// that find it, and the allocator's slack around them, with room to
/// spare. Measured at about 1.3 KiB in a release build.
const BYTES_PER_STORED: u64 = 4 * 1024;
/// Growth allowed whatever is stored: allocator arenas and buffers that
/// settle late, and the page granularity of RSS.
const SLACK: u64 = 16 * 1024 * 1024;
/// How long after the mixed phase the Checks-only phase is measured from:
/// the writes in flight at the switch land first.
const SETTLE: Duration = Duration::from_secs(1);
/// Growth allowed over the Checks-only phase, which stores nothing.
const QUIET_SLACK: u64 = 8 * 1024 * 1024;

/// A small, seeded generator (SplitMix64): repeatable without a
/// dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// `compliance-guard serve` as a child process (killed when dropped),
/// with its gRPC and metrics addresses.
struct Server {
    process: ServeProcess,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    /// Starts the server on `data` (`--durability sync`, open access,
    /// metrics on a port of their own) and waits until it is SERVING.
    async fn spawn(data: &Path) -> Server {
        let process = serve([
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--durability".as_ref(),
            "sync".as_ref(),
            "--insecure-no-auth".as_ref(),
            "--metrics-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ])
        .rust_log("warn")
        .echo()
        .spawn();
        let addr = process.addr();
        let metrics = process.metrics_addr();
        process.wait_serving(addr).await;
        Server {
            process,
            addr,
            metrics,
        }
    }

    /// A new connection.
    async fn connect(&self) -> Channel {
        connect(self.addr).await
    }

    fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// The gauges, once the sampler (every second) has caught up with
    /// `expected` or after a few seconds, whichever is first.
    async fn gauges(&self, expected: Option<(f64, f64, f64)>) -> (f64, f64, f64) {
        let mut got = (f64::NAN, f64::NAN, f64::NAN);
        for _ in 0..50 {
            let body = scrape(self.metrics);
            let g = |name| sample(&body, name, &[]).unwrap_or(f64::NAN);
            got = (
                g("compliance_guard_borrowers"),
                g("compliance_guard_interactions"),
                g("compliance_guard_open_reservations"),
            );
            if expected.is_none_or(|e| e == got) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got
    }

    /// Sends SIGTERM and waits for a clean exit.
    async fn terminate(self) {
        self.process.terminate().await;
    }
}

/// What one client did, and what it expects the server to hold.
#[derive(Default)]
struct Tally {
    checks: u64,
    blocked: u64,
    reserves: u64,
    reserved: u64,
    updates: u64,
    creates: u64,
    /// Interactions this client caused to be recorded.
    interactions: u64,
    /// Reservations left open, by interaction id.
    open: HashSet<String>,
    /// Borrowers with at least one recorded interaction.
    borrowers: HashSet<u64>,
    /// Every request that did not answer OK.
    failures: Vec<String>,
}

fn person(n: u64) -> String {
    format!("BO-SOAK-{n:04}")
}

fn now_minus(seconds: i64) -> Option<Timestamp> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Some(Timestamp {
        seconds: now - seconds,
        nanos: 0,
    })
}

/// What the clients have had stored so far, for the memory samples.
#[derive(Default)]
struct Stored {
    interactions: AtomicU64,
    answers: AtomicU64,
    requests: AtomicU64,
}

/// One client: the mix, from its own seed, until `until`; then Checks
/// only until `quiet_until`.
async fn client(
    worker: u64,
    channel: Channel,
    until: Instant,
    quiet_until: Instant,
    stored: Arc<Stored>,
) -> Tally {
    let mut checks = checks_on(channel.clone(), None);
    let mut records = interactions_on(channel, None);
    let mut rng = Rng(0x5EED_0000 + worker);
    let mut t = Tally::default();
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        if now >= quiet_until {
            break;
        }
        n += 1;
        let who = rng.below(BORROWERS);
        let place = PLACES[(who % PLACES.len() as u64) as usize];
        let roll = rng.below(100);
        let roll = if now < until { roll } else { 0 };
        stored.requests.fetch_add(1, Ordering::Relaxed);
        if roll < 85 {
            let reserve = roll >= 70;
            let request = CheckRequest {
                person_id: person(who),
                channel: rng.pick(&CHANNELS).into(),
                jurisdictions: vec![place.into()],
                reserve,
                request_id: if reserve {
                    format!("soak-{worker}-{n}")
                } else {
                    String::new()
                },
                ..CheckRequest::default()
            };
            let answer = match checks.check(request).await {
                Ok(a) => a.into_inner(),
                Err(s) => {
                    t.failures.push(format!("Check: {s:?}"));
                    continue;
                }
            };
            t.checks += 1;
            if !answer.allowed {
                t.blocked += 1;
            }
            if !reserve {
                continue;
            }
            t.reserves += 1;
            stored.answers.fetch_add(1, Ordering::Relaxed);
            let id = answer.interaction_id;
            if !answer.allowed || id.is_empty() {
                continue;
            }
            t.reserved += 1;
            t.interactions += 1;
            t.borrowers.insert(who);
            stored.interactions.fetch_add(1, Ordering::Relaxed);
            // One in ten is left open: the pipeline never reported it.
            if rng.below(10) == 0 {
                t.open.insert(id);
                continue;
            }
            stored.requests.fetch_add(1, Ordering::Relaxed);
            let status = if rng.below(4) == 0 {
                "failed"
            } else {
                "attempted"
            };
            let update = UpdateInteractionRequest {
                person_id: person(who),
                interaction_id: id.clone(),
                interaction: Some(Interaction {
                    status: status.into(),
                    ..Interaction::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["status".into()],
                }),
            };
            match records.update_interaction(update).await {
                Ok(_) => t.updates += 1,
                Err(s) => {
                    t.failures.push(format!("UpdateInteraction {id}: {s:?}"));
                    t.open.insert(id);
                }
            }
        } else {
            let create = CreateInteractionRequest {
                searchable: false,
                person_id: person(who),
                interaction: Some(Interaction {
                    channel: rng.pick(&CHANNELS).into(),
                    direction: "outbound".into(),
                    status: "attempted".into(),
                    started_at: now_minus(60 + rng.below(3 * 86_400) as i64),
                    ..Interaction::default()
                }),
            };
            match records.create_interaction(create).await {
                Ok(_) => {
                    t.creates += 1;
                    t.interactions += 1;
                    t.borrowers.insert(who);
                    stored.interactions.fetch_add(1, Ordering::Relaxed);
                }
                Err(s) => t.failures.push(format!("CreateInteraction: {s:?}")),
            }
        }
    }
    t
}

/// One look at the server's memory and at what the clients had stored.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the load started.
    at: f64,
    rss: u64,
    interactions: u64,
    answers: u64,
    requests: u64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs for SOAK_SECONDS (60 by default); see the module's docs"]
async fn soak() {
    let seconds = env_u64("SOAK_SECONDS", 60);
    let clients = env_u64("SOAK_CLIENTS", 8).max(1);
    let quiet = env_u64("SOAK_QUIET_SECONDS", (seconds / 6).max(10));
    let data = tempfile::tempdir().unwrap();
    let server = Server::spawn(data.path()).await;
    let mut channels = Vec::new();
    for _ in 0..clients {
        channels.push(server.connect().await);
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let quiet_until = until + Duration::from_secs(quiet);
    let stored = Arc::new(Stored::default());
    let workers: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            tokio::spawn(client(
                i as u64,
                ch,
                until,
                quiet_until,
                Arc::clone(&stored),
            ))
        })
        .collect();

    println!(
        "soak: {seconds} s mixed then {quiet} s Checks only, {clients} clients, {BORROWERS} borrowers, durability sync, data in {}",
        data.path().display()
    );
    let sample_now = || Sample {
        at: started.elapsed().as_secs_f64(),
        rss: server.rss_bytes(),
        interactions: stored.interactions.load(Ordering::Relaxed),
        answers: stored.answers.load(Ordering::Relaxed),
        requests: stored.requests.load(Ordering::Relaxed),
    };
    let mut samples = vec![sample_now()];
    // The phase change is a sample too, and so is a moment after it, once
    // the writes in flight have landed: each phase is measured from its own
    // start.
    let mut marks: Vec<Instant> = (1..)
        .map(|i| started + SAMPLE_EVERY * i)
        .take_while(|t| *t < quiet_until)
        .chain([until, until + SETTLE, quiet_until])
        .collect();
    marks.sort();
    marks.dedup();
    for mark in marks {
        tokio::time::sleep_until(mark.into()).await;
        let s = sample_now();
        println!(
            "soak: t={:>5.1}s rss={:>7.1} MiB interactions={:>8} answers={:>8} requests={:>8}{}",
            s.at,
            mib(s.rss),
            s.interactions,
            s.answers,
            s.requests,
            if mark > until { " (Checks only)" } else { "" }
        );
        samples.push(s);
    }
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.unwrap();
        total.checks += t.checks;
        total.blocked += t.blocked;
        total.reserves += t.reserves;
        total.reserved += t.reserved;
        total.updates += t.updates;
        total.creates += t.creates;
        total.interactions += t.interactions;
        total.open.extend(t.open);
        total.borrowers.extend(t.borrowers);
        total.failures.extend(t.failures);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = stored.requests.load(Ordering::Relaxed);
    println!(
        "soak: {sent} requests in {elapsed:.1} s ({:.0}/s): {} Checks ({} blocked), {} reserving ({} allowed, {} updated, {} left open), {} creates; {} interactions for {} borrowers",
        sent as f64 / elapsed,
        total.checks,
        total.blocked,
        total.reserves,
        total.reserved,
        total.updates,
        total.open.len(),
        total.creates,
        total.interactions,
        total.borrowers.len()
    );

    // (a) Nothing failed.
    assert!(
        total.failures.is_empty(),
        "{} requests failed, the first: {:?}",
        total.failures.len(),
        &total.failures[..total.failures.len().min(5)]
    );
    assert!(total.checks > 0 && total.interactions > 0);

    // (b) Over the second half of the mixed run, memory grew no more than
    // what was stored explains; over the Checks-only phase, not at all.
    let mixed = seconds as f64;
    let half = samples.iter().find(|s| s.at >= mixed / 2.0).unwrap();
    let end = samples.iter().find(|s| s.at >= mixed).unwrap();
    let settled = samples
        .iter()
        .find(|s| s.at >= mixed + SETTLE.as_secs_f64())
        .unwrap();
    let last = samples.last().unwrap();
    let growth = end.rss.saturating_sub(half.rss);
    let added = (end.interactions + end.answers) - (half.interactions + half.answers);
    let allowed = added * BYTES_PER_STORED + SLACK;
    println!(
        "soak: mixed, second half (t={:.0}s to {:.0}s): rss {:+.1} MiB for {} interactions and {} answers stored ({:.0} bytes each); allowed {:.1} MiB ({BYTES_PER_STORED} bytes each + {:.0} MiB)",
        half.at,
        end.at,
        mib(end.rss) - mib(half.rss),
        end.interactions - half.interactions,
        end.answers - half.answers,
        growth as f64 / added.max(1) as f64,
        mib(allowed),
        mib(SLACK)
    );
    let quiet_growth = last.rss.saturating_sub(settled.rss);
    println!(
        "soak: Checks only (t={:.0}s to {:.0}s): {} requests, rss {:+.1} MiB; allowed {:+.1} MiB",
        settled.at,
        last.at,
        last.requests - settled.requests,
        mib(last.rss) - mib(settled.rss),
        mib(QUIET_SLACK)
    );
    assert!(
        growth <= allowed,
        "resident memory grew {growth} bytes over the second half for {added} things stored; allowed {allowed}"
    );
    assert_eq!(
        last.interactions, settled.interactions,
        "the Checks-only phase stored nothing"
    );
    assert!(
        quiet_growth <= QUIET_SLACK,
        "resident memory grew {quiet_growth} bytes over the Checks-only phase; allowed {QUIET_SLACK}"
    );

    // (c) The counts survive a restart: what the clients tracked is what
    // the server holds before, and after replaying its journal.
    let expected = (
        total.borrowers.len() as f64,
        total.interactions as f64,
        total.open.len() as f64,
    );
    assert_eq!(server.gauges(Some(expected)).await, expected, "before");
    server.terminate().await;
    let again = Server::spawn(data.path()).await;
    let channel = again.connect().await;
    let listed: HashSet<String> = checks_on(channel.clone(), None)
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reservations
        .into_iter()
        .map(|r| r.interaction_id)
        .collect();
    assert_eq!(listed, total.open, "open reservations after the restart");
    let stored = interactions_on(channel, None)
        .list_interactions(ListInteractionsRequest {
            limit: 1,
            ..ListInteractionsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .total;
    assert_eq!(
        u64::from(stored),
        total.interactions,
        "interactions after the restart"
    );
    assert_eq!(again.gauges(Some(expected)).await, expected, "after");
    println!(
        "soak: after the restart: {stored} interactions, {} open reservations, {} borrowers, as tracked",
        listed.len(),
        total.borrowers.len()
    );
    again.terminate().await;
}
