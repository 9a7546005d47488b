//! Load generator: drives a running `compliance-guard serve` over gRPC (or,
//! with `--target postgres`, the SQL peer a lender would otherwise build)
//! and reports requests, errors by code, throughput and p50/p99/p99.9
//! latency per operation. Kept out of CI runs (CI only builds it);
//! `benches/load.sh` and `benches/pg-peer.sh` drive it.
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:50051 \
//!     --connections 4 --concurrency 32 --mix check --duration 10s
//! cargo run --release --example loadgen -- --rate 20000 --mix mixed --no-seed
//! cargo run --release --example loadgen -- --emit-csv history.csv   # the same history, for SQL
//! cargo run --release --example loadgen -- --mix get --concurrency 8 --per-borrower 30
//! ```
//!
//! `--mix get` and `--mix list` read what the server holds by our ids, as a
//! fresh data directory hands them out in order: GetInteraction of
//! `IT-…` number 1 to `--interactions` (default: as many as seeding
//! recorded), and one borrower's first page of 25 (ListInteractions of
//! `BO-…` number 1 to `--borrowers`); a page of fewer than 25 rows counts
//! as the error `ShortPage`, so give the seeded history `--per-borrower 25`
//! or more. The same flags with `--no-seed` read a history that
//! `examples/startup.rs --serve` wrote.
//!
//! Closed loop (`--concurrency N`): N tasks, each with one request in
//! flight, task i on connection i mod K. Open loop (`--rate R`): requests
//! are scheduled at fixed intended start times by a dedicated thread and
//! their latency is measured from the intended start, so a server (or a
//! generator) that falls behind shows as latency instead of being hidden
//! (coordinated omission); at most `--max-in-flight` are outstanding, and
//! an arrival that finds no slot is dropped and counted as an error.
//!
//! Every random choice comes from `--seed`: the same seed and
//! `--borrowers` give the same history and the same request sequence.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Duration as Days, TimeZone, Timelike, Utc};
use clap::{Parser, ValueEnum};
use compliance_guard::pb;
use pb::compliance_guard_service_client::ComplianceGuardServiceClient;
use pb::interactions_service_client::InteractionsServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mix {
    /// Check (no reserve).
    Check,
    /// Reserving Check (journaled when allowed).
    Reserve,
    /// CreateInteraction of a new record.
    Create,
    /// 70% Check, 15% reserving Check then UpdateInteraction, 15% Create.
    Mixed,
    /// CheckBaseline: the same request, answered without deciding.
    Baseline,
    /// GetInteraction of one interaction by our id.
    Get,
    /// ListInteractions of one borrower: the first page of 25.
    List,
    /// ListInteractions of everyone's, narrowed by `startedAtAfter` and
    /// `startedAtBefore` to a random `--list-window` between `--list-from`
    /// and `--list-to`: the first page of 25.
    ListRange,
}

/// Whom to send it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// compliance-guard over gRPC.
    Guard,
    /// PostgreSQL: the same checks as one SQL statement each.
    Postgres,
}

/// Drives compliance-guard (or its PostgreSQL peer) with a synthetic
/// lender's traffic.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The server's address (host:port or http://host:port); several,
    /// comma-separated (the nodes of a cluster), share the connections
    /// round-robin.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The API key; else COMPLIANCE_GUARD_API_KEY, else DATA_DIR/api-key.
    #[arg(long, env = "COMPLIANCE_GUARD_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where the server keeps its generated api-key.
    #[arg(long, env = "COMPLIANCE_GUARD_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// HTTP/2 connections (or PostgreSQL connections).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Closed loop: tasks, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop: arrivals per second (overrides --concurrency).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: the most requests outstanding; an arrival beyond it is dropped.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// Measured time (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before measuring (its requests are not counted).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// The traffic.
    #[arg(long, value_enum, default_value = "check")]
    mix: Mix,
    /// Synthetic borrowers.
    #[arg(long, default_value_t = 10_000)]
    borrowers: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The end of the synthetic history (RFC 3339); default: this hour.
    /// Give the same value to runs that must share a history.
    #[arg(long)]
    history_end: Option<DateTime<Utc>>,
    /// Do not record the synthetic history first.
    #[arg(long)]
    no_seed: bool,
    /// Interactions per borrower in the seeded history; default 2 to 8 at
    /// random.
    #[arg(long)]
    per_borrower: Option<u64>,
    /// With --mix list-range: the earliest start of a window (RFC 3339).
    #[arg(long)]
    list_from: Option<DateTime<Utc>>,
    /// With --mix list-range: the latest end of a window (RFC 3339).
    #[arg(long)]
    list_to: Option<DateTime<Utc>>,
    /// With --mix list-range: how long a window is (e.g. 60m, 10m).
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    list_window: Duration,
    /// With --mix get: the interactions the server holds (IT-… 1 to N);
    /// default: as many as seeding recorded.
    #[arg(long)]
    interactions: Option<u64>,
    /// Write the synthetic history as CSV (for PostgreSQL's COPY) and exit.
    #[arg(long)]
    emit_csv: Option<PathBuf>,
    /// guard or postgres.
    #[arg(long, value_enum, default_value = "guard")]
    target: Target,
    /// With --target postgres: the connection string.
    #[arg(long, default_value = "host=127.0.0.1 user=postgres dbname=postgres")]
    pg_url: String,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A name for this run in the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1e3,
        "m" => v * 60.0,
        _ => return Err(format!("bad unit in `{s}` (s, ms, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------- random

/// SplitMix64: small, fast, deterministic.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability pct/100.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

// ---------------------------------------------------------------- population

/// Where the synthetic borrowers live: (jurisdiction, zone, weight).
const PLACES: &[(&str, &str, u64)] = &[
    ("US-CA", "America/Los_Angeles", 12),
    ("US-TX", "America/Chicago", 9),
    ("US-FL", "America/New_York", 7),
    ("US-NY", "America/New_York", 6),
    ("US-PA", "America/New_York", 4),
    ("US-IL", "America/Chicago", 4),
    ("US-OH", "America/New_York", 4),
    ("US-GA", "America/New_York", 3),
    ("US-WA", "America/Los_Angeles", 2),
    ("US-AZ", "America/Phoenix", 2),
    ("US-CO", "America/Denver", 2),
    ("US-MA", "America/New_York", 2),
];

#[derive(Debug)]
struct Borrower {
    id: String,
    loans: Vec<String>,
    jurisdiction: &'static str,
    zone: &'static str,
}

#[derive(Debug)]
struct Record {
    external_id: String,
    person: usize,
    loan: usize,
    channel: &'static str,
    status: &'static str,
    status_details: Option<&'static str>,
    agent_outcome: Option<&'static str>,
    started_at: DateTime<Utc>,
}

fn population(seed: u64, n: usize) -> Vec<Borrower> {
    let total: u64 = PLACES.iter().map(|p| p.2).sum();
    (0..n)
        .map(|i| {
            let mut r = Rng::new(seed, i as u64);
            let loans = if r.pct(80) { 1 } else { 2 };
            let mut w = r.below(total);
            let place = PLACES
                .iter()
                .find(|p| {
                    if w < p.2 {
                        true
                    } else {
                        w -= p.2;
                        false
                    }
                })
                .unwrap_or(&PLACES[0]);
            Borrower {
                id: format!("lg{seed}-{i:07}"),
                loans: (1..=loans)
                    .map(|l| format!("lg{seed}-{i:07}-L{l}"))
                    .collect(),
                jurisdiction: place.0,
                zone: place.1,
            }
        })
        .collect()
}

/// Each borrower: 2 to 8 calls, texts and emails spread over the last 7 to
/// 30 days; some failed, some conversations.
fn history(
    seed: u64,
    people: &[Borrower],
    end: DateTime<Utc>,
    per_borrower: Option<u64>,
) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, b) in people.iter().enumerate() {
        let mut r = Rng::new(seed ^ 0x5EED, i as u64);
        let span_s = (7 + r.below(24)) * 86_400;
        // Drawn even when the count is given: the other draws stay as
        // they were.
        let drawn = 2 + r.below(7);
        let n = per_borrower.unwrap_or(drawn);
        for j in 0..n {
            let started_at = end - Days::seconds((1 + r.below(span_s)) as i64);
            let loan = r.below(b.loans.len() as u64) as usize;
            let c = r.below(100);
            let (channel, status, status_details, agent_outcome) = if c < 55 {
                match r.below(100) {
                    0..10 => ("voice", "failed", Some("voiceFailedToInitiate"), None),
                    10..18 => (
                        "voice",
                        "attempted",
                        Some("voiceSpokeWithFirstParty"),
                        Some("voiceSpokeWithFirstParty"),
                    ),
                    18..28 => ("voice", "attempted", Some("voiceLineBusyNoRing"), None),
                    28..55 => ("voice", "attempted", Some("voiceLeftVoicemail"), None),
                    _ => ("voice", "attempted", Some("voiceRangNoPickup"), None),
                }
            } else if c < 80 {
                if r.pct(10) {
                    ("text", "failed", Some("textDeviceUnreachable"), None)
                } else {
                    ("text", "succeeded", None, None)
                }
            } else if r.pct(10) {
                ("email", "failed", Some("emailBounced"), None)
            } else {
                ("email", "succeeded", Some("emailDelivered"), None)
            };
            out.push(Record {
                external_id: format!("lg{seed}-h-{i:07}-{j}"),
                person: i,
                loan,
                channel,
                status,
                status_details,
                agent_outcome,
                started_at,
            });
        }
    }
    out
}

fn emit_csv(
    path: &PathBuf,
    people: &[Borrower],
    recs: &[Record],
    end: DateTime<Utc>,
) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for r in recs {
        writeln!(
            w,
            "{},{},{},{},outbound,opsCollDebt,{},{},{},{}",
            r.external_id,
            people[r.person].id,
            people[r.person].loans[r.loan],
            r.channel,
            r.status,
            r.status_details.unwrap_or(""),
            r.agent_outcome.unwrap_or(""),
            r.started_at.to_rfc3339(),
        )?;
    }
    w.flush()?;
    // The schema, the load and the indexes, with the predicates the
    // queries use (the planner matches a partial index by its predicate).
    let sql = path.with_extension("sql");
    std::fs::write(
        &sql,
        format!(
            "DROP TABLE IF EXISTS interactions;\n\
             CREATE TABLE interactions (id bigserial PRIMARY KEY, external_id text NOT NULL, \
             person_id text NOT NULL, loan_id text, channel text NOT NULL, direction text NOT NULL, \
             theme text, status text NOT NULL, status_details text, agent_outcome text, \
             started_at timestamptz NOT NULL);\n\
             \\copy interactions (external_id, person_id, loan_id, channel, direction, theme, status, \
             status_details, agent_outcome, started_at) FROM '{csv}' WITH (FORMAT csv)\n\
             CREATE UNIQUE INDEX interactions_external_id ON interactions (external_id);\n\
             CREATE INDEX interactions_person_loan_started ON interactions (person_id, loan_id, started_at);\n\
             CREATE INDEX interactions_counted_calls ON interactions (person_id, loan_id, started_at) \
             WHERE {PG_COUNTED};\n\
             CREATE INDEX interactions_conversations ON interactions (person_id, loan_id, started_at) \
             WHERE {PG_CONVERSATION};\n\
             VACUUM ANALYZE interactions;\n",
            csv = path.display()
        ),
    )
    .with_context(|| format!("writing {}", sql.display()))?;
    // The check's plan, for one borrower, to see which indexes it reads.
    let b = &people[0];
    std::fs::write(
        path.with_extension("explain.sql"),
        format!(
            "PREPARE chk(text, text, text, text) AS {};\n\
             EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE chk('{}', '{}', '{}', '{}');\n",
            pg_check_sql(),
            b.id,
            b.loans[0],
            end.to_rfc3339(),
            b.zone
        ),
    )?;
    eprintln!(
        "wrote {} interactions of {} borrowers to {} (schema and load: {})",
        recs.len(),
        people.len(),
        path.display(),
        sql.display()
    );
    Ok(())
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn interaction(r: &Record, people: &[Borrower]) -> pb::CreateInteractionRequest {
    let b = &people[r.person];
    pb::CreateInteractionRequest {
        searchable: false,
        person_id: format!("ext-{}", b.id),
        interaction: Some(pb::Interaction {
            external_id: Some(r.external_id.clone()),
            channel: r.channel.to_owned(),
            direction: "outbound".to_owned(),
            theme: Some("opsCollDebt".to_owned()),
            status: r.status.to_owned(),
            status_details: r.status_details.map(str::to_owned),
            agent_outcome: r.agent_outcome.map(str::to_owned),
            loan_id: Some(b.loans[r.loan].clone()),
            started_at: Some(ts(r.started_at)),
            contact: Some(contact(r.channel, r.person)),
            ..pb::Interaction::default()
        }),
    }
}

fn contact(channel: &str, person: usize) -> pb::Contact {
    if channel == "email" {
        pb::Contact {
            kind: "email".to_owned(),
            value: format!("b{person}@example.com"),
            name: String::new(),
        }
    } else {
        pb::Contact {
            kind: "mobilePhone".to_owned(),
            value: format!("+1555{:07}", person % 10_000_000),
            name: String::new(),
        }
    }
}

// ---------------------------------------------------------------- stats

#[derive(Debug, Default)]
struct OpStats {
    latencies_ns: Vec<u64>,
    ok: u64,
    blocked: u64,
    errors: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Stats {
    ops: BTreeMap<&'static str, OpStats>,
    dropped: u64,
    sent: u64,
    /// RPCs completed in the warm-up (not in the figures), so that a
    /// caller measuring the server's CPU over the whole run can divide it.
    warmup_requests: u64,
}

impl Stats {
    fn record(&mut self, op: &'static str, lat: Duration, outcome: Outcome) {
        let s = self.ops.entry(op).or_default();
        s.latencies_ns.push(lat.as_nanos() as u64);
        match outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Blocked => {
                s.ok += 1;
                s.blocked += 1;
            }
            Outcome::Err(code) => *s.errors.entry(code).or_default() += 1,
        }
    }
    fn merge(&mut self, other: Stats) {
        self.dropped += other.dropped;
        self.sent += other.sent;
        self.warmup_requests += other.warmup_requests;
        for (k, v) in other.ops {
            let s = self.ops.entry(k).or_default();
            s.latencies_ns.extend(v.latencies_ns);
            s.ok += v.ok;
            s.blocked += v.blocked;
            for (c, n) in v.errors {
                *s.errors.entry(c).or_default() += n;
            }
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Ok,
    Blocked,
    Err(String),
}

fn status_outcome(s: &tonic::Status) -> Outcome {
    Outcome::Err(format!("{:?}", s.code()))
}

// ---------------------------------------------------------------- targets

#[derive(Debug, Clone)]
struct GuardConn {
    guard: ComplianceGuardServiceClient<Channel>,
    interactions: InteractionsServiceClient<Channel>,
}

#[derive(Debug)]
struct PgConn {
    client: tokio_postgres::Client,
    check: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

#[derive(Debug)]
enum Conns {
    Guard(Vec<GuardConn>),
    Pg(Vec<Arc<PgConn>>),
}

/// Everything a request needs.
#[derive(Debug)]
struct Ctx {
    conns: Conns,
    auth: AsciiMetadataValue,
    people: Vec<Borrower>,
    /// The base of checks' `at`: the next 17:00 UTC (daytime in every
    /// mainland zone), plus up to 5 h.
    check_base: DateTime<Utc>,
    mix: Mix,
    /// The interactions the server holds, for GetInteraction by our id.
    interactions: u64,
    /// Where a list-range window may be.
    list_range: (DateTime<Utc>, DateTime<Utc>),
    /// How long a list-range window is.
    list_window: Duration,
    /// Makes ids unique across runs.
    nonce: String,
    counter: AtomicU64,
}

/// A counted call, as the guard counts one toward 7 calls in 7 days.
const PG_COUNTED: &str = "channel = 'voice' AND direction = 'outbound' \
     AND status NOT IN ('failed', 'canceled') \
     AND coalesce(status_details, '') NOT IN ('voiceLineBusyNoRing', 'voiceNumberDisconnected', \
     'voiceNumberInvalid', 'voiceFailedToInitiate')";

/// A conversation, which starts a quiet period of 7 days.
const PG_CONVERSATION: &str = "channel = 'voice' AND (status_details = 'voiceSpokeWithFirstParty' \
     OR agent_outcome = 'voiceSpokeWithFirstParty')";

fn pg_check_sql() -> String {
    // One round trip: the 7 local days ending on the send's local day
    // (AT TIME ZONE, so the days are the borrower's), the counted calls in
    // them, whether a conversation happened in them, and the local hour.
    format!(
        "WITH w AS (SELECT \
           (date_trunc('day', $3::text::timestamptz AT TIME ZONE $4::text) - interval '6 days') \
              AT TIME ZONE $4::text AS lo, \
           (date_trunc('day', $3::text::timestamptz AT TIME ZONE $4::text) + interval '1 day') \
              AT TIME ZONE $4::text AS hi, \
           extract(hour FROM $3::text::timestamptz AT TIME ZONE $4::text)::int AS local_hour) \
         SELECT (SELECT count(*) FROM interactions i WHERE i.person_id = $1::text AND i.loan_id = $2::text \
                   AND i.started_at >= w.lo AND i.started_at < w.hi AND {PG_COUNTED}) AS calls, \
                EXISTS (SELECT 1 FROM interactions i WHERE i.person_id = $1::text AND i.loan_id = $2::text \
                   AND i.started_at >= w.lo AND i.started_at < w.hi AND {PG_CONVERSATION}) AS spoke, \
                w.local_hour \
         FROM w"
    )
}

const PG_INSERT: &str = "INSERT INTO interactions \
    (external_id, person_id, loan_id, channel, direction, theme, status, status_details, agent_outcome, started_at) \
    VALUES ($1::text, $2::text, $3::text, $4::text, 'outbound', 'opsCollDebt', $5::text, NULLIF($6::text, ''), NULL, \
    $7::text::timestamptz)";

async fn connect(args: &Args) -> Result<Conns> {
    match args.target {
        Target::Guard => {
            let urls: Vec<String> = args
                .addr
                .split(',')
                .map(|a| {
                    if a.contains("://") {
                        a.to_owned()
                    } else {
                        format!("http://{a}")
                    }
                })
                .collect();
            let mut v = Vec::new();
            for i in 0..args.connections.max(1) {
                let url = &urls[i % urls.len()];
                let ch = Endpoint::from_shared(url.clone())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {url}"))?;
                v.push(GuardConn {
                    guard: ComplianceGuardServiceClient::new(ch.clone()),
                    interactions: InteractionsServiceClient::new(ch),
                });
            }
            Ok(Conns::Guard(v))
        }
        Target::Postgres => {
            let mut v = Vec::new();
            for _ in 0..args.connections.max(1) {
                let (client, conn) = tokio_postgres::connect(&args.pg_url, tokio_postgres::NoTls)
                    .await
                    .with_context(|| format!("connecting to {}", args.pg_url))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        eprintln!("postgres connection: {e}");
                    }
                });
                let check = client.prepare(&pg_check_sql()).await?;
                let insert = client.prepare(PG_INSERT).await?;
                v.push(Arc::new(PgConn {
                    client,
                    check,
                    insert,
                }));
            }
            Ok(Conns::Pg(v))
        }
    }
}

fn key(args: &Args) -> Result<String> {
    if let Some(k) = &args.key {
        return Ok(k.clone());
    }
    if let Ok(k) = std::env::var("COMPLIANCE_GUARD_API_KEY") {
        return Ok(k);
    }
    let p = args.data_dir.join("api-key");
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("no --key and cannot read {}", p.display()))?
        .trim()
        .to_owned())
}

impl Ctx {
    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", self.auth.clone());
        r
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn check_request(&self, rng: &mut Rng, reserve: bool) -> (usize, pb::CheckRequest) {
        let p = rng.below(self.people.len() as u64) as usize;
        let b = &self.people[p];
        let loan = b.loans[rng.below(b.loans.len() as u64) as usize].clone();
        let channel = match rng.below(100) {
            0..60 => "voice",
            60..85 => "text",
            _ => "email",
        };
        let at = self.check_base + Days::seconds(rng.below(5 * 3600) as i64);
        let request_id = if reserve {
            format!("lg-{}-{}", self.nonce, self.next_id())
        } else {
            String::new()
        };
        (
            p,
            pb::CheckRequest {
                person_id: format!("ext-{}", b.id),
                channel: channel.to_owned(),
                theme: "opsCollDebt".to_owned(),
                loan_ids: vec![loan],
                contact: Some(contact(channel, p)),
                at: Some(ts(at)),
                jurisdictions: vec![b.jurisdiction.to_owned()],
                time_zones: vec![b.zone.to_owned()],
                reserve,
                request_id,
                ..pb::CheckRequest::default()
            },
        )
    }

    /// One arrival of the mix; `start` is when its first request was due.
    async fn op(&self, slot: usize, rng: &mut Rng, start: Instant, st: &mut Stats) {
        match &self.conns {
            Conns::Guard(c) => self.guard_op(&c[slot % c.len()], rng, start, st).await,
            Conns::Pg(c) => self.pg_op(&c[slot % c.len()], rng, start, st).await,
        }
    }

    async fn guard_op(&self, c: &GuardConn, rng: &mut Rng, start: Instant, st: &mut Stats) {
        let kind = match self.mix {
            Mix::Mixed => match rng.below(100) {
                0..70 => Mix::Check,
                70..85 => Mix::Reserve,
                _ => Mix::Create,
            },
            m => m,
        };
        match kind {
            Mix::Check | Mix::Baseline => {
                let (_, req) = self.check_request(rng, false);
                let mut g = c.guard.clone();
                let r = if kind == Mix::Baseline {
                    let baseline = pb::CheckBaselineRequest { check: Some(req) };
                    g.check_baseline(self.req(baseline))
                        .await
                        .map(|r| r.map(|b| b.answer.unwrap_or_default()))
                } else {
                    g.check(self.req(req)).await
                };
                let name = if kind == Mix::Baseline {
                    "CheckBaseline"
                } else {
                    "Check"
                };
                st.record(name, start.elapsed(), check_outcome(&r));
            }
            Mix::Reserve => {
                let (p, req) = self.check_request(rng, true);
                let channel = req.channel.clone();
                let r = c.guard.clone().check(self.req(req)).await;
                st.record("Check(reserve)", start.elapsed(), check_outcome(&r));
                let id = r.map(|r| r.into_inner().interaction_id).unwrap_or_default();
                if self.mix == Mix::Mixed && !id.is_empty() {
                    // The send went out: it was attempted, or it failed.
                    let failed = rng.pct(20);
                    let (status, details) = match (channel.as_str(), failed) {
                        ("voice", false) => ("attempted", "voiceRangNoPickup"),
                        ("voice", true) => ("failed", "voiceFailedToInitiate"),
                        ("text", true) => ("failed", "textDeviceUnreachable"),
                        ("email", true) => ("failed", "emailBounced"),
                        _ => ("attempted", ""),
                    };
                    let upd = pb::UpdateInteractionRequest {
                        person_id: format!("ext-{}", self.people[p].id),
                        interaction_id: id,
                        interaction: Some(pb::Interaction {
                            status: status.to_owned(),
                            status_details: (!details.is_empty()).then(|| details.to_owned()),
                            ..pb::Interaction::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["status".to_owned(), "status_details".to_owned()],
                        }),
                    };
                    let t = Instant::now();
                    let r = c
                        .interactions
                        .clone()
                        .update_interaction(self.req(upd))
                        .await;
                    let o = match &r {
                        Ok(_) => Outcome::Ok,
                        Err(s) => status_outcome(s),
                    };
                    st.record("UpdateInteraction", t.elapsed(), o);
                }
            }
            Mix::Create => {
                let p = rng.below(self.people.len() as u64) as usize;
                let rec = Record {
                    external_id: format!("lg-{}-c{}", self.nonce, self.next_id()),
                    person: p,
                    loan: rng.below(self.people[p].loans.len() as u64) as usize,
                    channel: if rng.pct(50) { "email" } else { "text" },
                    status: "succeeded",
                    status_details: None,
                    agent_outcome: None,
                    started_at: Utc::now() - Days::seconds(rng.below(600) as i64),
                };
                let req = interaction(&rec, &self.people);
                let r = c
                    .interactions
                    .clone()
                    .create_interaction(self.req(req))
                    .await;
                let o = match &r {
                    Ok(_) => Outcome::Ok,
                    Err(s) => status_outcome(s),
                };
                st.record("CreateInteraction", start.elapsed(), o);
            }
            Mix::Get => {
                let n = 1 + rng.below(self.interactions.max(1));
                let req = pb::GetInteractionRequest {
                    interaction_id: our_id("IT", n),
                    ..pb::GetInteractionRequest::default()
                };
                let r = c.interactions.clone().get_interaction(self.req(req)).await;
                let o = match &r {
                    Ok(_) => Outcome::Ok,
                    Err(s) => status_outcome(s),
                };
                st.record("GetInteraction", start.elapsed(), o);
            }
            Mix::List | Mix::ListRange => {
                let req = if kind == Mix::List {
                    let n = 1 + rng.below(self.people.len() as u64);
                    pb::ListInteractionsRequest {
                        person_id: our_id("BO", n),
                        limit: 25,
                        ..pb::ListInteractionsRequest::default()
                    }
                } else {
                    let (from, to) = self.list_range;
                    let window = chrono::Duration::from_std(self.list_window).unwrap_or_default();
                    let span = (to - from - window).num_seconds().max(1) as u64;
                    let after = from + chrono::Duration::seconds(rng.below(span) as i64);
                    let stamp = |t: DateTime<Utc>| prost_types::Timestamp {
                        seconds: t.timestamp(),
                        nanos: 0,
                    };
                    pb::ListInteractionsRequest {
                        started_at_after: Some(stamp(after)),
                        started_at_before: Some(stamp(after + window)),
                        limit: 25,
                        ..pb::ListInteractionsRequest::default()
                    }
                };
                let r = c
                    .interactions
                    .clone()
                    .list_interactions(self.req(req))
                    .await;
                let o = match &r {
                    Ok(page) if page.get_ref().count > 0 => Outcome::Ok,
                    Ok(_) => Outcome::Err("EmptyPage".to_owned()),
                    Err(s) => status_outcome(s),
                };
                st.record("ListInteractions", start.elapsed(), o);
            }
            Mix::Mixed => {}
        }
    }

    async fn pg_op(&self, c: &PgConn, rng: &mut Rng, start: Instant, st: &mut Stats) {
        match self.mix {
            Mix::Check => {
                let (p, req) = self.check_request(rng, false);
                let b = &self.people[p];
                let at = req
                    .at
                    .as_ref()
                    .and_then(|t| Utc.timestamp_opt(t.seconds, 0).single())
                    .unwrap_or_else(Utc::now)
                    .to_rfc3339();
                let r = c
                    .client
                    .query_one(&c.check, &[&b.id, &req.loan_ids[0], &at, &b.zone])
                    .await;
                let o = match r {
                    Ok(row) => {
                        let calls: i64 = row.get(0);
                        let spoke: bool = row.get(1);
                        let hour: i32 = row.get(2);
                        let hours_ok = (8..21).contains(&hour);
                        let voice_ok = req.channel != "voice" || (calls < 7 && !spoke);
                        if hours_ok && voice_ok {
                            Outcome::Ok
                        } else {
                            Outcome::Blocked
                        }
                    }
                    Err(e) => Outcome::Err(pg_code(&e)),
                };
                st.record("SQL check", start.elapsed(), o);
            }
            Mix::Create => {
                let p = rng.below(self.people.len() as u64) as usize;
                let b = &self.people[p];
                let loan = &b.loans[rng.below(b.loans.len() as u64) as usize];
                let ext = format!("lg-{}-c{}", self.nonce, self.next_id());
                let channel = if rng.pct(50) { "email" } else { "text" };
                let at = (Utc::now() - Days::seconds(rng.below(600) as i64)).to_rfc3339();
                let r = c
                    .client
                    .execute(
                        &c.insert,
                        &[&ext, &b.id, loan, &channel, &"succeeded", &"", &at],
                    )
                    .await;
                let o = match r {
                    Ok(_) => Outcome::Ok,
                    Err(e) => Outcome::Err(pg_code(&e)),
                };
                st.record("SQL insert", start.elapsed(), o);
            }
            _ => {}
        }
    }
}

/// Our id of the `n`th (from 1) of `prefix`, as the server hands them out.
fn our_id(prefix: &str, n: u64) -> String {
    format!("{prefix}-{:04X}-{:08X}", n >> 32, n & 0xFFFF_FFFF)
}

fn pg_code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map_or_else(|| "pg-client".to_owned(), |c| format!("pg-{}", c.code()))
}

fn check_outcome(r: &Result<tonic::Response<pb::CheckResponse>, tonic::Status>) -> Outcome {
    match r {
        Ok(resp) if resp.get_ref().allowed => Outcome::Ok,
        Ok(_) => Outcome::Blocked,
        Err(s) => status_outcome(s),
    }
}

// ---------------------------------------------------------------- seeding

async fn seed_guard(ctx: &Arc<Ctx>, recs: Vec<Record>) -> Result<()> {
    let Conns::Guard(conns) = &ctx.conns else {
        return Ok(());
    };
    let recs = Arc::new(recs);
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let (ctx, recs, next) = (ctx.clone(), recs.clone(), next.clone());
        let mut client = conns[w % conns.len()].interactions.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = BTreeMap::<String, (u64, String)>::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = recs.get(i) else { break };
                let req = ctx.req(interaction(r, &ctx.people));
                if let Err(s) = client.create_interaction(req).await {
                    let e = errors.entry(format!("{:?}", s.code())).or_default();
                    e.0 += 1;
                    e.1 = s.message().to_owned();
                }
            }
            errors
        }));
    }
    let mut errors = BTreeMap::<String, (u64, String)>::new();
    for task in tasks {
        for (k, (n, m)) in task.await? {
            let e = errors.entry(k).or_default();
            e.0 += n;
            e.1 = m;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} interactions of {} borrowers through CreateInteraction in {secs:.1} s ({:.0}/s)",
        recs.len(),
        ctx.people.len(),
        recs.len() as f64 / secs
    );
    for (code, (n, msg)) in &errors {
        eprintln!("  seeding error {code}: {n} (last: {msg})");
    }
    if !errors.is_empty() {
        bail!("seeding failed");
    }
    Ok(())
}

// ---------------------------------------------------------------- loops

async fn closed_loop(ctx: Arc<Ctx>, args: &Args, seed: u64) -> Result<(Stats, Duration)> {
    let t0 = Instant::now();
    let measure_from = t0 + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ 0xC10_5ED, i as u64);
            let mut st = Stats::default();
            let mut warm = Stats::default();
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let into = if start >= measure_from {
                    &mut st
                } else {
                    &mut warm
                };
                into.sent += 1;
                ctx.op(i, &mut rng, start, into).await;
            }
            st.warmup_requests = warm.ops.values().map(|o| o.latencies_ns.len() as u64).sum();
            st
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await?);
    }
    Ok((all, args.duration))
}

async fn open_loop(ctx: Arc<Ctx>, args: &Args, seed: u64, rate: f64) -> Result<(Stats, Duration)> {
    if rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let handle = tokio::runtime::Handle::current();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight.max(1)));
    let shared = Arc::new(Mutex::new(Stats::default()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let t0 = Instant::now() + Duration::from_millis(10);
    let measure_from = t0 + args.warmup;
    let end = measure_from + args.duration;
    let warm = Arc::new(AtomicU64::new(0));
    let (s2, sem2, warm2) = (shared.clone(), sem.clone(), warm.clone());
    // A thread of its own sleeps until each intended start (nanosleep, not
    // the runtime's 1 ms timer wheel) and hands the request to the runtime.
    let scheduler = std::thread::spawn(move || {
        let mut k: u64 = 0;
        let mut dropped = 0u64;
        let mut sent = 0u64;
        loop {
            let intended = t0 + interval.mul_f64(k as f64);
            if intended >= end {
                break;
            }
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let measured = intended >= measure_from;
            match sem2.clone().try_acquire_owned() {
                Ok(permit) => {
                    if measured {
                        sent += 1;
                    }
                    let (ctx, shared, warm) = (ctx.clone(), s2.clone(), warm2.clone());
                    handle.spawn(async move {
                        let mut rng = Rng::new(seed ^ 0x0_9E17, k);
                        let mut st = Stats::default();
                        ctx.op(k as usize, &mut rng, intended, &mut st).await;
                        drop(permit);
                        if !measured {
                            let n = st.ops.values().map(|o| o.latencies_ns.len() as u64).sum();
                            warm.fetch_add(n, Ordering::Relaxed);
                        } else if let Ok(mut s) = shared.lock() {
                            s.merge(st);
                        }
                    });
                }
                Err(_) => {
                    if measured {
                        dropped += 1;
                    }
                }
            }
            k += 1;
        }
        (sent, dropped)
    });
    let (sent, dropped) = tokio::task::spawn_blocking(move || scheduler.join())
        .await?
        .map_err(|_| anyhow!("the scheduler thread panicked"))?;
    // Let what is in flight finish (its latency counts).
    let _all = sem
        .acquire_many(args.max_in_flight.max(1) as u32)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut st = std::mem::take(&mut *shared.lock().map_err(|_| anyhow!("poisoned"))?);
    st.sent = sent;
    st.dropped = dropped;
    st.warmup_requests = warm.load(Ordering::Relaxed);
    Ok((st, args.duration))
}

// ---------------------------------------------------------------- report

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn report(args: &Args, mut st: Stats, secs: f64) -> Result<()> {
    let mode = match args.rate {
        Some(r) => format!("open loop {r:.0}/s (max in flight {})", args.max_in_flight),
        None => format!("closed loop N={}", args.concurrency),
    };
    let target = match args.target {
        Target::Guard => "guard",
        Target::Postgres => "postgres",
    };
    let mix = format!("{:?}", args.mix).to_lowercase();
    let completed: u64 = st.ops.values().map(|o| o.latencies_ns.len() as u64).sum();
    println!(
        "{}target={target} mix={mix} {mode} K={} borrowers={} measured {:.1} s",
        if args.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", args.label)
        },
        args.connections,
        args.borrowers,
        secs
    );
    println!(
        "{:<18} {:>9} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  errors",
        "op", "requests", "ok", "blocked", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let mut ops_json = serde_json::Map::new();
    for (name, o) in &mut st.ops {
        o.latencies_ns.sort_unstable();
        let n = o.latencies_ns.len();
        let (p50, p99, p999) = (
            pct(&o.latencies_ns, 50.0),
            pct(&o.latencies_ns, 99.0),
            pct(&o.latencies_ns, 99.9),
        );
        let max = o.latencies_ns.last().copied().unwrap_or(0) as f64 / 1000.0;
        let mut errs = String::new();
        for (c, k) in &o.errors {
            let _ = write!(errs, "{c}={k} ");
        }
        println!(
            "{:<18} {:>9} {:>9} {:>7} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}  {}",
            name,
            n,
            o.ok,
            o.blocked,
            n as f64 / secs,
            p50,
            p99,
            p999,
            max,
            if errs.is_empty() {
                "-"
            } else {
                errs.trim_end()
            }
        );
        ops_json.insert(
            (*name).to_owned(),
            serde_json::json!({
                "requests": n, "ok": o.ok, "blocked": o.blocked, "errors": o.errors,
                "throughput": n as f64 / secs,
                "p50_us": p50, "p99_us": p99, "p999_us": p999, "max_us": max,
            }),
        );
    }
    let total_errors: u64 = st.ops.values().flat_map(|o| o.errors.values()).sum();
    println!(
        "total: {completed} requests, {:.0} req/s, {total_errors} errors{}",
        completed as f64 / secs,
        if args.rate.is_some() {
            format!(
                "; arrivals sent {} ({:.0}/s achieved), dropped {} (counted as errors)",
                st.sent,
                st.sent as f64 / secs,
                st.dropped
            )
        } else {
            String::new()
        }
    );
    if args.json {
        let j = serde_json::json!({
            "label": args.label, "target": target, "mix": mix,
            "connections": args.connections, "concurrency": args.concurrency,
            "rate": args.rate, "seconds": secs, "requests": completed,
            "throughput": completed as f64 / secs,
            "achieved_rate": st.sent as f64 / secs, "dropped": st.dropped,
            "warmup_requests": st.warmup_requests,
            "errors": total_errors + st.dropped, "ops": ops_json,
        });
        println!("JSON {j}");
    }
    std::io::stdout().flush()?;
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() -> Result<()> {
    let args = Args::parse();
    let end = args.history_end.unwrap_or_else(|| {
        let now = Utc::now();
        now - Days::seconds(i64::from(now.minute() * 60 + now.second()))
            - Days::nanoseconds(i64::from(now.nanosecond()))
    });
    let people = population(args.seed, args.borrowers.max(1));
    if let Some(path) = &args.emit_csv {
        let recs = history(args.seed, &people, end, args.per_borrower);
        return emit_csv(path, &people, &recs, end);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args, people, end))
}

async fn run(args: Args, people: Vec<Borrower>, end: DateTime<Utc>) -> Result<()> {
    match (args.target, args.mix) {
        (Target::Postgres, Mix::Check | Mix::Create) | (Target::Guard, _) => {}
        (Target::Postgres, m) => bail!("--target postgres runs --mix check or create, not {m:?}"),
    }
    let auth: AsciiMetadataValue = match args.target {
        Target::Guard => MetadataValue::try_from(format!("Bearer {}", key(&args)?))?,
        Target::Postgres => MetadataValue::from_static("none"),
    };
    let now = Utc::now();
    let today17 = now
        .date_naive()
        .and_hms_opt(17, 0, 0)
        .map(|d| d.and_utc())
        .ok_or_else(|| anyhow!("17:00"))?;
    let check_base = if today17 > now + Days::hours(1) {
        today17
    } else {
        today17 + Days::days(1)
    };
    let conns = connect(&args).await?;
    let seeded = (args.target == Target::Guard && !args.no_seed)
        .then(|| history(args.seed, &people, end, args.per_borrower));
    let interactions = args
        .interactions
        .or(seeded.as_ref().map(|r| r.len() as u64))
        .unwrap_or(0);
    let list_range = match (args.mix, args.list_from, args.list_to) {
        (Mix::ListRange, Some(from), Some(to)) if to > from => (from, to),
        (Mix::ListRange, ..) => bail!("--mix list-range needs --list-from and a later --list-to"),
        _ => (now, now),
    };
    let ctx = Arc::new(Ctx {
        conns,
        auth,
        people,
        check_base,
        list_range,
        list_window: args.list_window,
        mix: args.mix,
        interactions,
        nonce: format!("{:x}", now.timestamp_millis()),
        counter: AtomicU64::new(0),
    });
    if let Some(recs) = seeded {
        seed_guard(&ctx, recs).await?;
    }
    if args.mix == Mix::Get && ctx.interactions == 0 {
        bail!("--mix get with --no-seed needs --interactions N");
    }
    let (st, d) = match args.rate {
        Some(r) => open_loop(ctx, &args, args.seed, r).await?,
        None => closed_loop(ctx, &args, args.seed).await?,
    };
    report(&args, st, d.as_secs_f64())
}
