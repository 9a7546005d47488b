//! Start-up benchmark (issue 15): how long the server takes to turn
//! SERVING on a data directory holding N interactions inside the counting
//! horizon and M older ones, over B borrowers, and how much memory it
//! holds then. Kept out of CI (it writes gigabytes at tens of millions).
//!
//! ```sh
//! cargo run --release --example startup -- --in-horizon 1M --beyond 0 --borrowers 100k /tmp/startup-1m-0
//! cargo run --release --example startup -- --in-horizon 1M --beyond 2M --borrowers 100k /tmp/startup-1m-2m
//! ```
//!
//! Its last line is
//! `startup: in_horizon=N beyond=M borrowers=B start_s=S rss_bytes=R rss_anon=A rss_file=F`:
//! S is the time from starting the server to its health service answering
//! SERVING; R, A and F are VmRSS, RssAnon and RssFile of this process
//! (`/proc/self/status`, in bytes) at that moment. The line before it,
//! `start peak: peak_rss_bytes=P`, is the most the process held on the
//! way (VmHWM): the start runs in a process of its own. Memory beyond the
//! horizon is R at M = 20 M less R at M = 0, with N and B the same.
//! Counts take `k` and `M` suffixes and `_` separators.
//!
//! **The history** is written by a bulk load equivalent to the write path:
//! B person records, then the N + M interactions in time order, each
//! validated by `InteractionInput::validate` and encoded by `wire::pb_of`
//! as a write journals it, with the ids the write path would give (`BO-…`
//! in registration order, `IT-…` in creation order). The M older ones are
//! spread over the three years Regulation F keeps records for, ending
//! `--horizon-days` (default: the server's) plus a margin ago; the N
//! inside the horizon over the rest, up to a minute ago. Each borrower has
//! one to three loans, a phone number (real area codes), an email address
//! and a name; the interactions mix calls (no pickup, voicemail,
//! conversation, busy, failed, inbound), texts (sent, failed, replies),
//! emails (sent, delivered, opened, bounced) and letters, most with an
//! external id shaped like its carrier's (Twilio call and message SIDs,
//! UUIDs, Lob ids). No content or metadata JSON: the records are as large
//! as those of `examples/replay.rs`, where the 1,160 bytes per interaction
//! come from.
//!
//! By default the records go straight into the store
//! (`DIR/store/history.sqlite3`), applied by the store's own writer
//! (`store::Writing::apply`, what a server's follower runs) in
//! transactions of 100,000, at the start of an empty journal: the state a
//! server leaves once the store holds everything. That scales to the
//! issue's N = 10 M, M = 20 M (30 M records, about 14 GB of store).
//!
//! **The migration** (`--older-layout`). The history is written instead in
//! the layout of the releases before the store: a snapshot
//! (`DIR/journal/snapshot-00000000.snap`, what such a server left once its
//! start compacted the journal). The first start on it migrates it into
//! the store (the journal rolls to a new generation and the snapshot is
//! deleted), once. The benchmark makes that start in a process of its own,
//! measured like the others (to SERVING), stops it cleanly, and reports it
//! on a line of its own:
//! `migration: in_horizon=N beyond=M borrowers=B migrate_s=S rss_bytes=R rss_anon=A peak_rss_bytes=P snapshot_bytes=J0 store_bytes=D wal_bytes=W journal_bytes=J`:
//! S the time to SERVING, R and A the memory then, P the process's peak
//! (VmHWM: the migration holds the whole history in memory before moving
//! what is beyond the horizon out, so it does not fit at tens of
//! millions), J0 the older layout's files, D the store's file and W
//! SQLite's log beside it after the clean stop, J the journal left. Then
//! it runs itself again (`exec`) for the measured start, which reads the
//! store: every later start on DIR does.
//!
//! A store the benchmark wrote with an earlier release is of that
//! release's store format; the first start of this one migrates it (a
//! format 1 store gains the listing's columns, logged as `migrating the
//! store from format 1 to format 2`), and that start is the one measured.
//!
//! A marker file, `DIR/startup-history.txt`, names the parameters the
//! history was written with: a later run with the same parameters reuses
//! it (within a few days, before the in-horizon ones would age out of the
//! horizon), so runs repeat without rewriting or migrating again; a
//! history still in the older layout (written with `--older-layout`, or
//! by an earlier version of this benchmark, and whose migration start
//! stopped before the store's commit) is migrated first. `--rewrite` writes it again. DIR must be empty, absent,
//! or a directory this benchmark wrote. After writing, the benchmark runs
//! itself again (`exec`), so that the migration and the start are each
//! measured in a fresh process: nothing the writing allocated is counted.
//!
//! **The start** is the real server code, `server::serve`, in this process,
//! configured as `compliance-guard serve` configures it by default (the
//! shipped `rules/`, a generated API key in DIR, `--durability sync`,
//! compaction past 1,000,000 journal records, the decision log, live
//! reload, media at its defaults; caches, if any, at their default caps),
//! on `--listen` (default `127.0.0.1:0`). The clock starts just before
//! `serve` is called and stops when a health `Watch` of the server answers
//! SERVING.
//!
//! **Clean stop and `kill -9`.** A run ends with a clean stop (health
//! NOT_SERVING, in-flight calls finished, the server returns), so the next
//! run on the same DIR measures the start after a clean stop. With
//! `--kill` the run ends instead by `kill -9` of itself right after its
//! last line, so the next run measures the start after `kill -9`:
//!
//! ```sh
//! cargo run --release --example startup -- --in-horizon 1M --beyond 0 --borrowers 100k --kill /tmp/s
//! cargo run --release --example startup -- --in-horizon 1M --beyond 0 --borrowers 100k /tmp/s  # after kill -9
//! ```
//!
//! Each run says how the previous one on DIR ended, and whether an index
//! checkpoint is there (`index checkpoint: N bytes`). A clean stop writes
//! one (the stop's time and the file's size are on stderr, `stop:
//! stop_s=S checkpoint_bytes=C`), and the next start reads memory from it
//! instead of rebuilding it from the store. A start keeps the file: after
//! `kill -9` the next start reads it too, and replays the journal written
//! since (none here, unless `--serve` took writes before the kill). The
//! first run on a history it just wrote rebuilds, and writes a checkpoint
//! before it serves: delete `DIR/index.checkpoint` to measure a rebuild
//! again. With `--serve`, the server builds the checkpoint again from the
//! store once the journal after it filled a generation (`--compact-after`).
//!
//! With `--serve` the server keeps serving after the last line until
//! Ctrl-C, for `examples/loadgen.rs` on the same history (its key is
//! `DIR/api-key`: `loadgen --data-dir DIR`).
//!
//! The page cache is left as it is: the first run after the migration,
//! and every repeated run, reads a warm cache. For a cold start, as root:
//! `sync; echo 3 > /proc/sys/vm/drop_caches` before the run. `RUST_LOG=info`
//! shows the server's log on stderr.

#![allow(
    clippy::expect_used,
    reason = "a benchmark: a failure must stop the run"
)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use compliance_guard::index::{DEFAULT_HORIZON_DAYS, IndexConfig};
use compliance_guard::journal::{self, Durability, Layout};
use compliance_guard::model::{ContactInput, InteractionInput};
use compliance_guard::pb::journal::{Person, Record, record::Op};
use compliance_guard::server::{ServeConfig, serve};
use compliance_guard::store::Store;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The marker file: the parameters the history was written with.
const MARKER: &str = "startup-history.txt";
/// Bumped when the generated history changes, so that an old one is not
/// reused.
const FORMAT: u32 = 1;
/// Set in the environment of the run that measures after a run that
/// wrote: that run must find the history it was just handed.
const WRITTEN_ENV: &str = "COMPLIANCE_GUARD_STARTUP_WRITTEN";
/// Set in the environment of the run that measures after a run that
/// migrated: that run must find the history in the store.
const MIGRATED_ENV: &str = "COMPLIANCE_GUARD_STARTUP_MIGRATED";
/// How long Regulation F keeps records: the older interactions are spread
/// over these days.
const KEPT_DAYS: i64 = 3 * 365;
/// The latest start the benchmark waits for before giving up.
const START_LIMIT: Duration = Duration::from_secs(3600);

/// Writes a synthetic history, starts the server on it, and reports the
/// time to SERVING and the resident memory then.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Interactions inside the counting horizon (N).
    #[arg(long, value_parser = count)]
    in_horizon: u64,
    /// Interactions older than the horizon, within three years (M).
    #[arg(long, value_parser = count)]
    beyond: u64,
    /// Borrowers the interactions are spread over (B).
    #[arg(long, value_parser = count)]
    borrowers: u64,
    /// The server's `--horizon-days`: where "inside the horizon" ends.
    #[arg(long, default_value_t = DEFAULT_HORIZON_DAYS)]
    horizon_days: u32,
    /// End the run with `kill -9` of itself instead of a clean stop, so
    /// that the next run measures the start after `kill -9`.
    #[arg(long, conflicts_with = "serve")]
    kill: bool,
    /// Keep serving after the last line, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Where the server listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The server's `--compact-after`: the journal rolls after this many
    /// records, and with `--serve` the index checkpoint is built again
    /// from the store while serving once a generation after it is full
    /// (lower it to measure that build under load).
    #[arg(long, value_parser = count, default_value = "1M")]
    compact_after: u64,
    /// Write the history again even when DIR holds one written with the
    /// same parameters.
    #[arg(long)]
    rewrite: bool,
    /// Write the history in the layout of the releases before the store
    /// (a snapshot), so that the first start migrates it and the migration
    /// is measured. It holds the whole history in memory: at tens of
    /// millions of interactions it does not fit. Without it, the history
    /// is written into the store directly. A DIR holding a history with
    /// the same parameters is reused as it is: add `--rewrite`.
    #[arg(long)]
    older_layout: bool,
    /// The data directory.
    dir: PathBuf,
}

/// A count: digits, `_` separators allowed, with an optional `k` (10^3)
/// or `M` (10^6) suffix.
fn count(s: &str) -> Result<u64, String> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    let (number, scale) = match digits.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1_000),
        None => match digits.strip_suffix('M') {
            Some(n) => (n, 1_000_000),
            None => (digits.as_str(), 1),
        },
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{s}` is not a count (digits, optionally with k or M)"))
}

// ------------------------------------------------------------------ history

/// SplitMix64's finalizer: a well-mixed hash of a number, so that every
/// choice is deterministic.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Our id for the `n`th (from 1) of `prefix`, as the write path writes it.
fn our_id(prefix: &str, n: u64) -> String {
    format!("{prefix}-{:04X}-{:08X}", n >> 32, n & 0xFFFF_FFFF)
}

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Maria",
    "Carlos",
    "Wei",
    "Aisha",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Nguyen",
    "Okafor",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "hotmail.com",
];
/// Area codes of many states and zones, as a lender's book has them.
const AREA_CODES: &[u16] = &[
    212, 213, 214, 305, 310, 312, 313, 404, 415, 503, 512, 602, 617, 702, 713, 718, 801, 808, 907,
    303, 206, 215, 314, 414, 469, 504, 615, 704, 786, 919,
];
const STREETS: &[&str] = &["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Blvd"];

/// What a borrower's interactions name: their contact values and loans.
#[derive(Debug)]
struct Borrower {
    id: String,
    phone: String,
    home_phone: String,
    email: String,
    name: String,
    address: String,
    loans: u64,
    p: u64,
}

impl Borrower {
    fn of(p: u64) -> Borrower {
        let h = mix(p ^ 0xB0B0);
        let pick = |list: &[&'static str], shift: u32| list[((h >> shift) as usize) % list.len()];
        let (first, last) = (pick(FIRST, 0), pick(LAST, 8));
        let area = AREA_CODES[((h >> 16) as usize) % AREA_CODES.len()];
        let line = |salt: u64| {
            let g = mix(p ^ salt);
            format!("+1{area}{}{:04}", 200 + g % 800, (g >> 16) % 10_000)
        };
        Borrower {
            id: our_id("BO", p + 1),
            phone: line(1),
            home_phone: line(2),
            email: format!(
                "{}.{}{}@{}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                (h >> 24) % 1000,
                pick(DOMAINS, 40)
            ),
            name: format!("{first} {last}"),
            address: format!(
                "{} {}, Springfield, IL 627{:02}",
                100 + (h >> 32) % 9900,
                pick(STREETS, 48),
                (h >> 56) % 100
            ),
            // 70% one loan, 25% two, 5% three.
            loans: match (h >> 52) % 20 {
                0..14 => 1,
                14..19 => 2,
                _ => 3,
            },
            p,
        }
    }

    fn loan(&self, l: u64) -> String {
        format!("LN-{:08X}-{}", self.p, l + 1)
    }
}

/// One kind of interaction: `channel direction status statusDetails
/// agentOutcome theme subject`, `-` for none.
#[derive(Debug, Clone, Copy)]
struct Kind {
    channel: &'static str,
    direction: &'static str,
    status: &'static str,
    details: Option<&'static str>,
    outcome: Option<&'static str>,
    theme: &'static str,
    subject: Option<&'static str>,
}

impl Kind {
    fn parse(text: &'static str) -> Kind {
        let f: Vec<&'static str> = text.split_whitespace().collect();
        assert_eq!(f.len(), 7, "seven fields in `{text}`");
        let opt = |v: &'static str| Some(v).filter(|v| *v != "-");
        Kind {
            channel: f[0],
            direction: f[1],
            status: f[2],
            details: opt(f[3]),
            outcome: opt(f[4]),
            theme: f[5],
            subject: opt(f[6]),
        }
    }
}

/// A lender's collections and servicing traffic, each kind with how often
/// it happens (per 100): about half calls, a quarter texts, a fifth
/// emails, a few letters.
#[rustfmt::skip]
const KINDS: &[(u64, &str)] = &[
    (17, "voice outbound attempted voiceRangNoPickup - opsCollDebt -"),
    (13, "voice outbound attempted voiceLeftVoicemail - opsCollDebt -"),
    (6, "voice outbound attempted voiceSpokeWithFirstParty voiceSpokeWithFirstParty opsCollDebt -"),
    (4, "voice outbound attempted voiceLineBusyNoRing - opsCollDebt -"),
    (3, "voice outbound failed voiceFailedToInitiate - opsCollDebt -"),
    (2, "voice outbound failed voiceNumberDisconnected - opsCollDebt -"),
    (3, "voice inbound attempted voiceConnected - inbCollections -"),
    (14, "text outbound succeeded - - opsCollDebt loanOverdueFirstNotice"),
    (4, "text outbound succeeded - - opsServicing autopayPaymentReminder"),
    (3, "text outbound failed textDeviceUnreachable - opsCollDebt -"),
    (4, "text inbound succeeded - - inbPayments -"),
    (8, "email outbound attempted emailSent - opsCollDebt loanOverdueFirstNotice"),
    (9, "email outbound succeeded emailDelivered - opsServicing loanDetails"),
    (3, "email outbound succeeded emailOpened - opsCollDebt -"),
    (2, "email outbound failed emailBounced - opsCollDebt -"),
    (3, "mail outbound succeeded letterDelivered - opsServicingDebtValidation debtValidationNotice"),
];

/// The time range a part of the history is spread over.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    count: u64,
}

impl Span {
    /// The `i`th of `count` moments spread evenly over the range, each
    /// somewhere in its own slot, so the sequence keeps time order.
    fn at(&self, i: u64) -> DateTime<Utc> {
        let secs = u128::try_from((self.to - self.from).num_seconds().max(1)).unwrap_or(1);
        let count = u128::from(self.count.max(1));
        let slot = (secs * u128::from(i) + u128::from(mix(i)) % secs) / count;
        self.from + chrono::Duration::seconds(i64::try_from(slot).unwrap_or(0))
    }
}

/// Where everything of one history is: the time ranges and how
/// interactions are spread over borrowers.
#[derive(Debug, Clone, Copy)]
struct Plan {
    beyond: Span,
    inside: Span,
    borrowers: u64,
    /// Coprime with `borrowers`: interaction k belongs to borrower
    /// `(k mod B) * stride + offset of block k / B`, mod B, so each run of B
    /// interactions touches every borrower once, in a scrambled order that
    /// shifts from run to run (a borrower's interactions are not evenly
    /// spaced).
    stride: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Plan {
    fn new(args: &Args, anchor: DateTime<Utc>) -> Plan {
        let horizon = chrono::Duration::days(i64::from(args.horizon_days));
        let inside = Span {
            from: anchor - horizon + slack(args.horizon_days),
            to: anchor - chrono::Duration::minutes(1),
            count: args.in_horizon,
        };
        let beyond = Span {
            from: anchor - chrono::Duration::days(KEPT_DAYS) + slack(args.horizon_days),
            to: anchor - horizon - slack(args.horizon_days),
            count: args.beyond,
        };
        let b = args.borrowers.max(1);
        let mut stride = (b as f64 * 0.618_033_988_7) as u64 | 1;
        while gcd(stride, b) != 1 {
            stride += 2;
        }
        Plan {
            beyond,
            inside,
            borrowers: b,
            stride,
        }
    }

    fn total(&self) -> u64 {
        self.beyond.count + self.inside.count
    }

    /// The `k`th interaction in time order (the M older ones first), as
    /// the journal record a write of it makes.
    fn interaction(&self, k: u64) -> Record {
        let (b, offset) = (
            u128::from(self.borrowers),
            u128::from(mix(k / self.borrowers)),
        );
        let p = (u128::from(k % self.borrowers) * u128::from(self.stride) + offset) % b;
        let b = Borrower::of(u64::try_from(p).unwrap_or(0));
        let started = if k < self.beyond.count {
            self.beyond.at(k)
        } else {
            self.inside.at(k - self.beyond.count)
        };
        let h = mix(k);
        let mut w = h % 100;
        let kind = KINDS
            .iter()
            .find(|(weight, _)| {
                if w < *weight {
                    true
                } else {
                    w -= weight;
                    false
                }
            })
            .map_or(KINDS[0].1, |(_, k)| *k);
        let kind = Kind::parse(kind);
        let hex = |salt: u64| format!("{:016x}{:016x}", mix(h ^ salt), mix(h ^ salt ^ 1));
        // Most interactions come with the carrier's id; a few (manual
        // entries) without.
        let external_id = (h >> 40) % 100 >= 8;
        let external_id = external_id.then(|| match kind.channel {
            "voice" => format!("CA{}", hex(1)),
            "text" => format!("SM{}", hex(2)),
            "mail" => format!("ltr_{}", &hex(3)[..24]),
            _ => {
                let x = hex(4);
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &x[..8],
                    &x[8..12],
                    &x[12..15],
                    &x[15..18],
                    &x[18..30]
                )
            }
        });
        let (contact_kind, value) = match kind.channel {
            "voice" if (h >> 48).is_multiple_of(5) => ("homePhone", b.home_phone.clone()),
            "voice" | "text" => ("mobilePhone", b.phone.clone()),
            "email" => ("email", b.email.clone()),
            _ => ("postalAddress", b.address.clone()),
        };
        let ended = (kind.channel == "voice")
            .then(|| started + chrono::Duration::seconds(5 + ((h >> 20) % 600) as i64));
        let failed = kind.status == "failed";
        let input = InteractionInput {
            external_id,
            channel: Some(kind.channel.into()),
            direction: Some(kind.direction.into()),
            status: Some(kind.status.into()),
            status_details: kind.details.map(Into::into),
            agent_outcome: kind.outcome.map(Into::into),
            theme: Some(kind.theme.into()),
            subject: kind.subject.map(Into::into),
            loan_id: Some(b.loan((h >> 8) % b.loans)),
            started_at: Some(started.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ended_at: ended.map(|e| e.to_rfc3339_opts(SecondsFormat::Secs, true)),
            contact: Some(ContactInput {
                kind: Some(contact_kind.into()),
                value: Some(value),
                name: (h >> 12).is_multiple_of(3).then(|| b.name.clone()),
            }),
            twilio_error_code: (failed && kind.channel == "text").then(|| "30003".into()),
            failure_description_short: failed.then(|| "carrier reported a failure".into()),
            created_by: Some("pipeline".into()),
            ..InteractionInput::default()
        };
        // Recorded a few seconds after it started (or ended), as a
        // pipeline reports it.
        let recorded = ended.unwrap_or(started) + chrono::Duration::seconds(1 + (h % 30) as i64);
        let mut record = input
            .validate(recorded)
            .expect("a valid synthetic interaction");
        record.id = our_id("IT", k + 1);
        record.person_id = b.id;
        Record {
            op: Some(Op::Interaction(compliance_guard::wire::pb_of(&record))),
        }
    }
}

/// The margin kept between the history's ranges and the horizon's edge:
/// a written history stays valid this long.
fn slack(horizon_days: u32) -> chrono::Duration {
    chrono::Duration::days(i64::from(horizon_days / 10).clamp(0, 7))
}

/// The person record of borrower `p`, as a snapshot holds it.
fn person(p: u64) -> Record {
    Record {
        op: Some(Op::Person(Person {
            id: our_id("BO", p + 1),
            external_ids: vec![format!("crm-{p:08}")],
            alias_ids: vec![],
            at: None,
        })),
    }
}

// ------------------------------------------------------------------ marker

/// What the marker file says.
#[derive(Debug, PartialEq, Eq)]
struct Marker {
    /// `in_horizon=… beyond=… borrowers=… horizon_days=… format=…`.
    params: String,
    /// When the history was written (its "now").
    anchor: DateTime<Utc>,
    /// How the last run on the directory ended.
    stop: String,
}

fn params(args: &Args) -> String {
    format!(
        "in_horizon={} beyond={} borrowers={} horizon_days={} format={FORMAT}",
        args.in_horizon, args.beyond, args.borrowers, args.horizon_days
    )
}

fn read_marker(dir: &Path) -> Option<Marker> {
    let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Some(Marker {
        params: field("params")?,
        anchor: DateTime::parse_from_rfc3339(&field("written")?)
            .ok()?
            .with_timezone(&Utc),
        stop: field("last_stop").unwrap_or_else(|| "unknown".into()),
    })
}

fn write_marker(dir: &Path, marker: &Marker) {
    let tmp = dir.join(format!("{MARKER}.tmp"));
    std::fs::write(
        &tmp,
        format!(
            "params={}\nwritten={}\nlast_stop={}\n",
            marker.params,
            marker.anchor.to_rfc3339_opts(SecondsFormat::Secs, true),
            marker.stop
        ),
    )
    .expect("write the marker");
    std::fs::rename(&tmp, dir.join(MARKER)).expect("put the marker in place");
}

/// Where a history DIR holds is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// In the store (`DIR/store/history.sqlite3`, with its journal
    /// position): migrated, or started since.
    Store,
    /// In the older layout (the snapshot as written): the next start
    /// migrates it into the store.
    Older,
}

/// The form of DIR's history: in the store when the store holds a journal
/// position, else in the older layout when the snapshot is there.
fn form(dir: &Path) -> Result<Form, String> {
    let position = match Store::open_read_only(dir) {
        Ok(Some(store)) => store.position().map_err(|e| e.to_string())?,
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    if position.is_some() {
        return Ok(Form::Store);
    }
    if (Layout {
        dir: dir.to_owned(),
    })
    .snapshot(0)
    .exists()
    {
        return Ok(Form::Older);
    }
    Err("it holds neither a store with a journal position nor the snapshot written".into())
}

/// Whether DIR holds a history this run can use as it is, and in which
/// form.
fn reusable(args: &Args, marker: Option<&Marker>, now: DateTime<Utc>) -> Result<Form, String> {
    let Some(m) = marker else {
        return Err("no history written yet".into());
    };
    if m.params != params(args) {
        return Err(format!("written with other parameters ({})", m.params));
    }
    let age = now - m.anchor;
    if age < chrono::Duration::zero() || age > slack(args.horizon_days) {
        return Err(format!(
            "written at {}, too long ago: its interactions may have crossed the horizon",
            m.anchor
        ));
    }
    form(&args.dir)
}

/// Writes the history into an empty DIR and the marker beside it; `why`
/// says why it is written.
fn write_history(args: &Args, now: DateTime<Utc>, why: &str) {
    let dir = &args.dir;
    let ours = dir.join(MARKER).exists();
    let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    if !empty && !ours {
        eprintln!(
            "error: {} is not empty and holds no {MARKER}: not a directory this benchmark wrote; give an empty or absent one",
            dir.display()
        );
        std::process::exit(2);
    }
    println!("writing the history ({why})");
    if ours {
        std::fs::remove_dir_all(dir).expect("remove the old history");
    }
    let layout = Layout { dir: dir.clone() };
    std::fs::create_dir_all(layout.journal_dir()).expect("create the journal dir");
    // Whole seconds, as the marker keeps it.
    let anchor = DateTime::from_timestamp(now.timestamp(), 0).expect("a time of this era");
    // Until the history is whole, the marker names no parameters: a run
    // stopped while writing leaves a directory the next run writes again.
    write_marker(
        dir,
        &Marker {
            params: "none (being written)".into(),
            anchor,
            stop: "none (being written)".into(),
        },
    );
    let plan = Plan::new(args, anchor);
    let started = Instant::now();
    let records = (0..args.borrowers)
        .map(person)
        .chain((0..plan.total()).map(|k| plan.interaction(k)));
    let (written, path) = if args.older_layout {
        let written = journal::write_snapshot(&layout, 0, records).expect("write the snapshot");
        (written, layout.snapshot(0))
    } else {
        (
            write_store(dir, records),
            compliance_guard::store::path_in(dir),
        )
    };
    let bytes = file_bytes(&path);
    println!(
        "wrote {written} records ({} borrowers, {} interactions inside the {}-day horizon from {}, {} older from {} to {}) to {}: {:.0} MiB in {:.1} s",
        args.borrowers,
        args.in_horizon,
        args.horizon_days,
        plan.inside.from.date_naive(),
        args.beyond,
        plan.beyond.from.date_naive(),
        plan.beyond.to.date_naive(),
        path.display(),
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );
    write_marker(
        dir,
        &Marker {
            params: params(args),
            anchor,
            stop: "none (freshly written)".into(),
        },
    );
}

/// How many records one transaction of the store's bulk load applies.
const STORE_BATCH: u64 = 100_000;

/// Writes `records` into DIR's store as the store's own writer applies
/// the journal's records (`Writing::apply`, the code a server's follower
/// and a materialization run), in transactions of [`STORE_BATCH`], each
/// committed at the start of an empty journal (generation 0): the state a
/// server leaves once the store holds everything and the journal was cut
/// short. Returns how many records.
fn write_store(dir: &Path, records: impl Iterator<Item = Record>) -> u64 {
    let mut store = Store::open(dir).expect("create the store");
    // Flushed once, at the end: a crash while writing leaves a history
    // the marker does not name yet, written again by the next run.
    store.set_synchronous(false).expect("set up the store");
    let mut records = records.peekable();
    let mut written = 0u64;
    while records.peek().is_some() {
        let mut writing = store.begin().expect("start a transaction");
        for record in records.by_ref().take(STORE_BATCH as usize) {
            writing.apply(record).expect("store a record");
            written += 1;
        }
        writing
            .commit(journal::Position::default())
            .expect("commit to the store");
        if written.is_multiple_of(10 * STORE_BATCH) {
            eprintln!("  {written} records in the store");
        }
    }
    store.set_synchronous(true).expect("set up the store");
    store
        .set_position(journal::Position::default())
        .expect("commit to the store");
    store.checkpoint().expect("checkpoint the store");
    written
}

// ------------------------------------------------------------------ start

/// A field of `/proc/self/status` given in kB, in bytes.
fn status_bytes(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// VmRSS, RssAnon and RssFile of this process, in bytes.
fn rss() -> (u64, u64, u64) {
    (
        status_bytes("VmRSS"),
        status_bytes("RssAnon"),
        status_bytes("RssFile"),
    )
}

/// The size of a file, 0 if it is missing.
fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The sizes of DIR's store file and of SQLite's write-ahead log beside
/// it (empty or gone after a clean stop), in bytes.
fn store_bytes(dir: &Path) -> (u64, u64) {
    let file = compliance_guard::store::path_in(dir);
    let mut wal = file.clone().into_os_string();
    wal.push("-wal");
    (file_bytes(&file), file_bytes(Path::new(&wal)))
}

/// The bytes of the files in DIR/journal (snapshots and journals).
fn journal_bytes(dir: &Path) -> u64 {
    let layout = Layout {
        dir: dir.to_owned(),
    };
    std::fs::read_dir(layout.journal_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The configuration `compliance-guard serve` builds from its defaults.
fn default_config(args: &Args) -> ServeConfig {
    let (access, _) =
        compliance_guard::api::auth::resolve_access(None, None, &args.dir, false, args.listen)
            .expect("the generated API key");
    ServeConfig {
        rules_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
        data_dir: args.dir.clone(),
        access,
        tls: None,
        index: IndexConfig {
            horizon_days: args.horizon_days,
        },
        roles: None,
        durability: Durability::Sync,
        compact_after: args.compact_after,
        follow: compliance_guard::guard::Follow::On,
        cluster: None,
        decision_log: Some(compliance_guard::decisions::LogConfig::under(&args.dir)),
        reload: Some(Arc::new(compliance_guard::reload::ReloadStats::default())),
        shutdown_grace: Duration::from_secs(10),
        hold_until: None,
        reserve_tolerance: compliance_guard::guard::DEFAULT_RESERVE_TOLERANCE,
        media: compliance_guard::media::MediaConfig::default(),
    }
}

/// Waits until the server at `addr` answers SERVING for "".
async fn serving(addr: SocketAddr) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    loop {
        let watched = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(stream) = watched {
            let mut stream = stream.into_inner();
            while let Ok(Some(answer)) = stream.message().await {
                if answer.status == ServingStatus::Serving as i32 {
                    return;
                }
            }
        }
        // Not listening yet, or the stream broke: ask again.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A server started in this process and SERVING.
struct Started {
    /// Seconds from calling `serve` to health SERVING.
    start_s: f64,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), compliance_guard::server::ServeError>>,
}

/// Starts the server on DIR as `compliance-guard serve` would and waits
/// for SERVING; exits the process if it stops or takes too long.
async fn start(args: &Args) -> Started {
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .expect("bind the listener");
    let addr = listener.local_addr().expect("the listener's address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(default_config(args), listener, async move {
        let _ = stopped.await;
    }));
    tokio::select! {
        () = serving(addr) => {}
        ended = &mut server => {
            eprintln!("error: the server stopped before SERVING: {ended:?}");
            std::process::exit(1);
        }
        () = tokio::time::sleep(START_LIMIT) => {
            eprintln!("error: not SERVING after {START_LIMIT:?}");
            std::process::exit(1);
        }
    }
    Started {
        start_s: started.elapsed().as_secs_f64(),
        addr,
        stop,
        server,
    }
}

/// Stops a started server cleanly (health NOT_SERVING, in-flight calls
/// finished, `serve` returned); exits the process if it does not.
async fn stop(started: Started) {
    let _ = started.stop.send(());
    match started.server.await {
        Ok(Ok(())) => {}
        other => {
            eprintln!("error: the server did not stop cleanly: {other:?}");
            std::process::exit(1);
        }
    }
}

fn log_to_stderr() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime")
}

/// Records in the marker how the run on DIR ended (or, before it ends,
/// that it has not ended cleanly).
fn mark_stop(dir: &Path, stop: &str) {
    let marker = read_marker(dir).expect("the marker");
    write_marker(
        dir,
        &Marker {
            stop: stop.into(),
            ..marker
        },
    );
}

/// The one-time start that migrates a history in the older layout into
/// the store, measured as a start is (to SERVING), then stopped cleanly.
fn migrate(args: &Args, marker: &Marker) {
    log_to_stderr();
    let snapshot_bytes = journal_bytes(&args.dir);
    println!(
        "history of {} (written {}) in the older layout ({:.0} MiB of snapshot and journal); the previous run on it ended: {}; its first start migrates it into the store",
        args.dir.display(),
        marker.anchor.to_rfc3339_opts(SecondsFormat::Secs, true),
        snapshot_bytes as f64 / 1_048_576.0,
        marker.stop
    );
    mark_stop(&args.dir, "unclean (the migration start did not finish)");
    let (start_s, (rss_bytes, rss_anon, _)) = runtime().block_on(async {
        let started = start(args).await;
        let at = (started.start_s, rss());
        stop(started).await;
        at
    });
    let peak = status_bytes("VmHWM");
    let (store, wal) = store_bytes(&args.dir);
    println!(
        "migration: in_horizon={} beyond={} borrowers={} migrate_s={start_s:.3} rss_bytes={rss_bytes} rss_anon={rss_anon} peak_rss_bytes={peak} snapshot_bytes={snapshot_bytes} store_bytes={store} wal_bytes={wal} journal_bytes={}",
        args.in_horizon,
        args.beyond,
        args.borrowers,
        journal_bytes(&args.dir)
    );
    mark_stop(&args.dir, "clean stop (the migration start)");
}

fn measure(args: &Args, marker: &Marker) {
    log_to_stderr();
    let (store, wal) = store_bytes(&args.dir);
    println!(
        "history of {} (written {}) in the store ({store} bytes, its log {wal}; journal {} bytes); the previous run on it ended: {}",
        args.dir.display(),
        marker.anchor.to_rfc3339_opts(SecondsFormat::Secs, true),
        journal_bytes(&args.dir),
        marker.stop
    );
    // Until this run stops cleanly (or kills itself on purpose), the next
    // one must not take its end for a clean stop.
    mark_stop(&args.dir, "unclean (the run did not finish)");
    // The index checkpoint a clean stop left: the start reads memory from
    // it when it is of the store as it is (`RUST_LOG=info` shows which).
    let checkpoint = args.dir.join("index.checkpoint");
    match std::fs::metadata(&checkpoint) {
        Ok(m) => println!("index checkpoint: {} bytes", m.len()),
        Err(_) => println!("index checkpoint: none (memory is rebuilt from the store)"),
    }
    runtime().block_on(async {
        let started = start(args).await;
        let start_s = started.start_s;
        let (rss_bytes, rss_anon, rss_file) = rss();
        if args.serve {
            eprintln!(
                "serving on {} until Ctrl-C; the API key is in {}",
                started.addr,
                args.dir.join("api-key").display()
            );
        }
        // What the start held at most on the way (a start stages people's
        // lists before it gives them out), on a line before the last.
        println!("start peak: peak_rss_bytes={}", status_bytes("VmHWM"));
        println!(
            "startup: in_horizon={} beyond={} borrowers={} start_s={start_s:.3} rss_bytes={rss_bytes} rss_anon={rss_anon} rss_file={rss_file}",
            args.in_horizon, args.beyond, args.borrowers
        );
        std::io::stdout().flush().expect("flush stdout");
        if args.kill {
            mark_stop(&args.dir, "kill -9");
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            // `kill` missing: the closest there is without it.
            std::process::abort();
        }
        if args.serve {
            let _ = tokio::signal::ctrl_c().await;
        }
        // The clean stop, on stderr (after the last line): how long it
        // took, the index checkpoint's writing included, and its size.
        let stopping = std::time::Instant::now();
        stop(started).await;
        eprintln!(
            "stop: stop_s={:.3} checkpoint_bytes={}",
            stopping.elapsed().as_secs_f64(),
            std::fs::metadata(&checkpoint).map_or(0, |m| m.len())
        );
    });
    mark_stop(&args.dir, "clean stop");
}

/// Runs this benchmark again with the same arguments (but `--rewrite`),
/// `env` set, in place of this process: what follows is measured in a
/// fresh process, where nothing allocated so far is counted.
fn run_again(env: &str) -> ! {
    let exe = std::env::current_exe().expect("this program's path");
    let mut again = std::process::Command::new(exe);
    again
        .args(std::env::args_os().skip(1).filter(|a| a != "--rewrite"))
        .env(env, "1");
    std::io::stdout().flush().expect("flush stdout");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let e = again.exec();
        eprintln!("error: cannot run the measurement: {e}");
        std::process::exit(1);
    }
    #[cfg(not(unix))]
    {
        let status = again.status().expect("run the measurement");
        std::process::exit(status.code().unwrap_or(1));
    }
}

fn main() {
    let args = Args::parse();
    if args.borrowers == 0 && args.in_horizon + args.beyond > 0 {
        eprintln!("error: --borrowers must be at least 1");
        std::process::exit(2);
    }
    if args.beyond > 0
        && i64::from(args.horizon_days) + 2 * slack(args.horizon_days).num_days() >= KEPT_DAYS
    {
        eprintln!(
            "error: with --horizon-days {} no time is left beyond the horizon within three years",
            args.horizon_days
        );
        std::process::exit(2);
    }
    let now = Utc::now();
    let marker = read_marker(&args.dir);
    let why = if args.rewrite {
        Err("--rewrite".to_owned())
    } else {
        reusable(&args, marker.as_ref(), now)
    };
    match (why, marker) {
        (Ok(Form::Store), Some(marker)) => measure(&args, &marker),
        (Ok(Form::Older), Some(marker)) => {
            if std::env::var_os(MIGRATED_ENV).is_some() {
                eprintln!("error: the history is still in the older layout after its migration");
                std::process::exit(1);
            }
            migrate(&args, &marker);
            run_again(MIGRATED_ENV);
        }
        (why, _) => {
            if std::env::var_os(WRITTEN_ENV).is_some() {
                eprintln!("error: the history just written is not reusable: {why:?}");
                std::process::exit(1);
            }
            write_history(&args, now, &why.err().unwrap_or_default());
            run_again(WRITTEN_ENV);
        }
    }
}
