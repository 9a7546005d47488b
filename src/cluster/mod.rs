//! The cluster's log of record: a NATS JetStream stream that every node
//! publishes its changes to and applies, in the stream's order, to its own
//! store and memory.
//!
//! This module is the link to NATS and nothing else: connecting, making
//! sure the stream exists as configured, a conditional publish, the last
//! sequence of a subject or of the stream as its leader reports it, a
//! node's number, and the stream's messages in order. What a message
//! means is the ledger's ([`crate::ledger::Change`], framed as the journal
//! frames it); how a node uses the link is [`crate::guard`]'s.
//!
//! **Subjects.** Every key a write decides on (a person's id, each of its
//! names, an `externalId`) falls in one of [`BUCKETS`] buckets by a stable
//! hash, and each bucket is a subject, `cg.<stream>.p<partition>.k<bucket>`:
//! a hash, because a client's ids may hold `.`, `*` or `>`, and a bounded
//! number of subjects, so that the servers' per-subject state stays small.
//! The partition number is there from the first release, so that a later
//! one can split people across nodes without changing the stream's layout.
//!
//! **Conditional publishes.** A write carries, for each bucket it touches,
//! `Nats-Expected-Last-Subject-Sequence`: the bucket's last sequence the
//! node had applied when it decided. JetStream refuses the write if any of
//! them moved since, so no two nodes decide on the same person, name or
//! `externalId` at once, while writes about different people go on in
//! parallel. A write over several buckets is one atomic batch (ADR-50,
//! server 2.12 or later): all of its messages are stored, or none.

mod objects;
pub mod peers;
mod rounds;

pub use objects::SharedMedia;

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use tokio_stream::StreamExt;

/// The largest message the stream takes: NATS' default `max_payload` (1
/// MiB) less room for the headers.
pub const MAX_MESSAGE_BYTES: usize = (1 << 20) - 4096;

/// The most replicas a stream may have (JetStream's own bound).
pub const MAX_REPLICAS: usize = 5;

/// The most partitions the subjects may name.
pub const MAX_PARTITIONS: u32 = 1024;

/// How many buckets the keys fall in (each a subject): two writes about
/// different keys conflict only when their keys share a bucket.
pub const BUCKETS: u32 = 1 << 16;

/// The most node numbers a stream hands out (the first four hex digits of
/// a generated id; 0 is a single node's).
pub const MAX_NODES: u16 = 0xFFFF;

/// Errors of the link to NATS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A setting is out of range.
    #[error("cluster setting `{field}` is `{value}`; allowed: {allowed}")]
    Setting {
        /// The flag.
        field: &'static str,
        /// The value given (bounded).
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// NATS could not be reached, or did not answer in time.
    #[error("NATS at `{urls}` {action}: {reason}")]
    Nats {
        /// The servers tried.
        urls: String,
        /// What was being done.
        action: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An object of the cluster's object store did not read back as it
    /// was put (its digest, or its chunks).
    #[error("the cluster's copy of `{key}` is damaged: {what}")]
    Damaged {
        /// The object.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// The stream exists with settings this node would not write to.
    #[error("stream `{stream}` exists with {field} `{found}`; this node needs `{wanted}`")]
    StreamMismatch {
        /// The stream.
        stream: String,
        /// The setting.
        field: &'static str,
        /// What the stream has.
        found: String,
        /// What the node needs.
        wanted: String,
    },
}

/// How a node reaches the cluster: `serve --cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS servers, as `nats://host:port`, comma-separated.
    pub urls: String,
    /// This node's name (in logs, metrics and the NATS connection name).
    pub node_id: String,
    /// The stream's name.
    pub stream: String,
    /// The stream's replicas (a majority of them holds every ack).
    pub replicas: usize,
    /// How many partitions the subjects name (fixed when the stream is
    /// made).
    pub partitions: u32,
    /// How long a node waits for the stream's leader before it calls
    /// itself cut off.
    pub timeout: Duration,
    /// How stale a Check may be (0: none, the default): within this long
    /// of the node's last confirmed catch-up, a Check skips the leader's
    /// round trip and its answer says how stale it may be.
    pub stale_reads: Duration,
}

impl ClusterConfig {
    /// The defaults for everything but the servers and the node's name.
    pub fn new(urls: impl Into<String>, node_id: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            urls: urls.into(),
            node_id: node_id.into(),
            stream: "compliance-guard".into(),
            replicas: 3,
            partitions: 1,
            timeout: Duration::from_secs(2),
            stale_reads: Duration::ZERO,
        }
    }

    /// Checks every setting; a node never starts on a setting it would
    /// later refuse.
    pub fn check(&self) -> Result<(), ClusterError> {
        let bounded = |s: &str| crate::model::echo(s).to_string();
        if self.urls.is_empty() || self.urls.len() > 4096 {
            return Err(ClusterError::Setting {
                field: "--cluster",
                value: bounded(&self.urls),
                allowed: "one or more `nats://host:port`, comma-separated, at most 4,096 bytes",
            });
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.node_id) {
            return Err(ClusterError::Setting {
                field: "--node-id",
                value: bounded(&self.node_id),
                allowed: "1 to 64 of A-Z, a-z, 0-9, `-` and `_`",
            });
        }
        if !name_ok(&self.stream) {
            return Err(ClusterError::Setting {
                field: "--cluster-stream",
                value: bounded(&self.stream),
                allowed: "1 to 64 of A-Z, a-z, 0-9, `-` and `_`",
            });
        }
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(ClusterError::Setting {
                field: "--cluster-replicas",
                value: self.replicas.to_string(),
                allowed: "1 to 5 (3 tolerates one lost server, 5 two)",
            });
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(ClusterError::Setting {
                field: "--cluster-partitions",
                value: self.partitions.to_string(),
                allowed: "1 to 1024",
            });
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(60) {
            return Err(ClusterError::Setting {
                field: "--cluster-timeout-ms",
                value: self.timeout.as_millis().to_string(),
                allowed: "100 to 60,000",
            });
        }
        if self.stale_reads > Duration::from_secs(60) {
            return Err(ClusterError::Setting {
                field: "--cluster-stale-reads-ms",
                value: self.stale_reads.as_millis().to_string(),
                allowed: "0 (none, the default) to 60,000",
            });
        }
        Ok(())
    }

    /// The subjects' common start: `cg.<stream>`.
    fn prefix(&self) -> String {
        format!("cg.{}", self.stream)
    }

    /// The bucket of a key ([`BUCKETS`]).
    pub fn bucket(key: &str) -> u32 {
        u32::try_from(fnv1a(key.as_bytes()) % u64::from(BUCKETS)).unwrap_or(0)
    }

    /// A bucket's subject: `cg.<stream>.p<partition>.k<bucket>`.
    pub fn subject(&self, bucket: u32) -> String {
        format!(
            "{}.p{}.k{bucket:04x}",
            self.prefix(),
            bucket % self.partitions
        )
    }

    /// The bucket a subject names, if it is one of [`Self::subject`]'s.
    pub fn bucket_of(&self, subject: &str) -> Option<u32> {
        let rest = subject.strip_prefix(&self.prefix())?.strip_prefix(".p")?;
        let (_, bucket) = rest.split_once(".k")?;
        u32::from_str_radix(bucket, 16)
            .ok()
            .filter(|b| *b < BUCKETS)
    }

    /// The subject where node number `n` is claimed.
    fn node_subject(&self, n: u16) -> String {
        format!("{}.n.{n}", self.prefix())
    }

    /// The node number a claim's subject names, if it is one of
    /// [`Self::node_subject`]'s.
    pub fn node_of(&self, subject: &str) -> Option<u16> {
        subject
            .strip_prefix(&self.prefix())?
            .strip_prefix(".n.")?
            .parse()
            .ok()
    }
}

/// FNV-1a, 64 bits: a stable hash (the same on every node and release),
/// which the standard library's is not.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Why a publish was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishFailure {
    /// Something was appended after the sequence the node decided at:
    /// catch up and decide again.
    #[error("the stream moved on since this node decided (wrong last sequence)")]
    Conflict,
    /// The change is larger than a message may be.
    #[error("the change is {bytes} bytes; a message of the cluster's stream holds at most {most}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        most: usize,
    },
    /// JetStream did not acknowledge it (no quorum, no leader, timed out,
    /// or cut off): it may or may not be in the stream.
    #[error("the cluster did not acknowledge the change: {0}")]
    NotAcknowledged(String),
}

/// One message of the stream.
#[derive(Debug)]
pub struct Entry {
    /// Its sequence in the stream.
    pub seq: u64,
    /// The bucket its subject names (`None`: not a bucket's).
    pub bucket: Option<u32>,
    /// The node number its subject claims (`None`: not a claim).
    pub claim: Option<u16>,
    /// Its payload: framed journal records (empty: a fence of its bucket
    /// only).
    pub bytes: Vec<u8>,
}

/// One message of a write: a bucket, the bucket's last sequence the node
/// decided at, and the payload (empty for every message but the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The bucket.
    pub bucket: u32,
    /// Its last sequence as the node had applied it (0: never written).
    pub expected: u64,
    /// The changes' frames, or nothing.
    pub bytes: Vec<u8>,
}

/// A node's connection to the cluster's stream.
#[derive(Debug, Clone)]
pub struct Link {
    config: ClusterConfig,
    js: jetstream::Context,
    /// The leader round trips readers share ([`Link::last_seq_shared`]).
    rounds: Arc<rounds::Rounds>,
    /// When the stream was made (Unix nanoseconds): with its name, which
    /// stream a node's store follows ([`Link::stream_identity`]).
    created: i128,
}

impl Link {
    /// Connects, then makes the stream if there is none, or checks that
    /// the one there has the replicas and subjects this node writes to.
    pub async fn connect(config: ClusterConfig) -> Result<Link, ClusterError> {
        Link::open(config, true).await
    }

    /// [`Link::connect`] to a stream that must exist already: what a
    /// command that only reads the cluster (a backup) uses, so that a
    /// mistyped `--cluster-stream` makes nothing on the servers.
    pub async fn connect_existing(config: ClusterConfig) -> Result<Link, ClusterError> {
        Link::open(config, false).await
    }

    async fn open(config: ClusterConfig, create: bool) -> Result<Link, ClusterError> {
        config.check()?;
        let failed = |action: &'static str| {
            let urls = config.urls.clone();
            move |e: &dyn std::fmt::Display| ClusterError::Nats {
                urls: urls.clone(),
                action,
                reason: e.to_string(),
            }
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("compliance-guard {}", config.node_id))
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.urls.split(',').map(str::trim).collect::<Vec<_>>())
            .await
            .map_err(|e| failed("could not be reached")(&e))?;
        let mut js = jetstream::new(client);
        js.set_timeout(config.timeout);
        let mut link = Link {
            config,
            js,
            rounds: Arc::default(),
            created: 0,
        };
        link.created = link.ensure_stream(create).await?;
        Ok(link)
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn nats_error(&self, action: &'static str, e: &dyn std::fmt::Display) -> ClusterError {
        ClusterError::Nats {
            urls: self.config.urls.clone(),
            action,
            reason: e.to_string(),
        }
    }

    /// Says this node's rules version to the other nodes and hears theirs
    /// until the connection closes ([`peers`]); `version` reads the
    /// version in force.
    pub async fn exchange_rules(&self, version: impl Fn() -> Option<String> + Send + 'static) {
        peers::exchange(
            self.js.client(),
            format!("cgx.{}.nodes", self.config.stream),
            self.config.node_id.clone(),
            version,
        )
        .await;
    }

    /// The stream's name and when it was made: a stream deleted and made
    /// again under the same name is another stream, whose sequences a
    /// node's store must not be taken to follow.
    pub fn stream_identity(&self) -> String {
        format!("{} {}", self.config.stream, self.created)
    }

    /// Makes the stream (if `create`), or checks the one there; returns
    /// when it was made.
    async fn ensure_stream(&self, create: bool) -> Result<i128, ClusterError> {
        let c = &self.config;
        let wanted = stream::Config {
            name: c.stream.clone(),
            subjects: vec![format!("{}.>", c.prefix())],
            // History is kept for years (12 CFR 1006.100): no age, size or
            // count limit removes a change, and nothing is deleted or
            // purged; a node that finds a gap refuses to serve.
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::ZERO,
            max_bytes: -1,
            max_messages: -1,
            max_message_size: i32::try_from(MAX_MESSAGE_BYTES).unwrap_or(i32::MAX),
            storage: stream::StorageType::File,
            num_replicas: c.replicas,
            discard: stream::DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            allow_atomic_publish: true,
            duplicate_window: Duration::from_secs(120),
            description: Some(format!(
                "compliance-guard's log of record ({} partitions)",
                c.partitions
            )),
            ..Default::default()
        };
        let stream = if create {
            self.js
                .get_or_create_stream(wanted.clone())
                .await
                .map_err(|e| self.nats_error("could not make or find the stream", &e))?
        } else {
            self.js
                .get_stream(&c.stream)
                .await
                .map_err(|e| match e.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(_) => self.nats_error(
                        "has no such stream (check --cluster-stream)",
                        &format!("`{}`: {e}", c.stream),
                    ),
                    _ => self.nats_error("did not answer", &e),
                })?
        };
        let created = stream.cached_info().created.unix_timestamp_nanos();
        let found = &stream.cached_info().config;
        let mismatch = |field, found: String, wanted: String| ClusterError::StreamMismatch {
            stream: c.stream.clone(),
            field,
            found,
            wanted,
        };
        if found.subjects != wanted.subjects {
            return Err(mismatch(
                "subjects",
                found.subjects.join(","),
                wanted.subjects.join(","),
            ));
        }
        if found.num_replicas != c.replicas {
            return Err(mismatch(
                "replicas",
                found.num_replicas.to_string(),
                c.replicas.to_string(),
            ));
        }
        if found.max_age != Duration::ZERO || found.max_messages > 0 || found.max_bytes > 0 {
            return Err(mismatch(
                "limits",
                format!(
                    "max_age {:?}, max_msgs {}, max_bytes {}",
                    found.max_age, found.max_messages, found.max_bytes
                ),
                "none: history is kept".into(),
            ));
        }
        if found.description != wanted.description {
            return Err(mismatch(
                "partitions",
                found.description.clone().unwrap_or_default(),
                wanted.description.clone().unwrap_or_default(),
            ));
        }
        Ok(created)
    }

    /// The stream's last sequence, as its leader reports it (0: empty).
    /// A node that cannot learn it within the timeout is cut off.
    pub async fn last_seq(&self) -> Result<u64, ClusterError> {
        // The stream's info, from its leader: constant work for the
        // server, where the last message on a wildcard is a walk of every
        // subject.
        let action = "did not report the stream's last sequence";
        let info = self
            .within_timeout(action, async {
                self.stream()
                    .await?
                    .get_info()
                    .await
                    .map_err(|e| self.nats_error(action, &e))
            })
            .await?;
        Ok(info.state.last_sequence)
    }

    /// The stream's last sequence as its leader reports it in a round trip
    /// that starts after this call, shared with every caller waiting at
    /// once ([`rounds`]): what a read waits for, at one request to the
    /// leader per round rather than per read.
    pub async fn last_seq_shared(&self) -> Result<u64, ClusterError> {
        let link = self.clone();
        let found = self
            .rounds
            .next(move || {
                let link = link.clone();
                async move { link.last_seq().await.map_err(|e| e.to_string()) }
            })
            .await;
        found.map_err(|reason| ClusterError::Nats {
            urls: self.config.urls.clone(),
            action: "did not report the stream's last sequence",
            reason,
        })
    }

    /// Publishes a write: one message, or several as one atomic batch,
    /// each stored only if its bucket's last sequence is still the one
    /// the node decided at; returns the last message's sequence once
    /// JetStream acknowledged the write (stored by a majority of the
    /// replicas).
    pub async fn publish(&self, messages: Vec<Fenced>) -> Result<u64, PublishFailure> {
        let bytes: usize = messages.iter().map(|m| m.bytes.len()).sum();
        if bytes > MAX_MESSAGE_BYTES {
            return Err(PublishFailure::TooLarge {
                bytes,
                most: MAX_MESSAGE_BYTES,
            });
        }
        let refused = |e: &dyn std::fmt::Display| PublishFailure::NotAcknowledged(e.to_string());
        // A batch's id: unique among those in flight (an inbox's random
        // part).
        let batch = (messages.len() > 1).then(|| {
            let inbox = self.js.client().new_inbox();
            inbox.rsplit('.').next().unwrap_or_default().to_owned()
        });
        let count = messages.len();
        let mut last = None;
        for (i, m) in messages.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                m.expected.to_string().as_str(),
            );
            if let Some(id) = &batch {
                headers.insert("Nats-Batch-Id", id.as_str());
                headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                if i + 1 == count {
                    headers.insert("Nats-Batch-Commit", "1");
                }
            }
            let subject = self.config.subject(m.bucket);
            if i + 1 < count {
                // A batch's messages before the last go without a reply;
                // the last one's acknowledgement answers for all.
                self.js
                    .client()
                    .publish_with_headers(subject, headers, m.bytes.into())
                    .await
                    .map_err(|e| refused(&e))?;
            } else {
                last = Some(
                    self.js
                        .publish_with_headers(subject, headers, m.bytes.into())
                        .await
                        .map_err(|e| refused(&e))?,
                );
            }
        }
        let Some(ack) = last else {
            return Err(PublishFailure::NotAcknowledged("an empty write".into()));
        };
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if is_conflict(&e) => Err(PublishFailure::Conflict),
            Err(e) => Err(refused(&e)),
        }
    }

    /// Publishes one message on `bucket`'s subject, stored only if the
    /// stream's last sequence is still `after`
    /// (`Nats-Expected-Last-Sequence`): for a writer that must be the
    /// stream's only one while it writes, as a restore into a cluster with
    /// no history is. Any other write in between refuses it
    /// ([`PublishFailure::Conflict`]). Returns its sequence once
    /// acknowledged.
    pub async fn publish_exclusive(
        &self,
        bucket: u32,
        after: u64,
        bytes: Vec<u8>,
    ) -> Result<u64, PublishFailure> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(PublishFailure::TooLarge {
                bytes: bytes.len(),
                most: MAX_MESSAGE_BYTES,
            });
        }
        let refused = |e: &dyn std::fmt::Display| PublishFailure::NotAcknowledged(e.to_string());
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Sequence", after.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(self.config.subject(bucket), headers, bytes.into())
            .await
            .map_err(|e| refused(&e))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if is_conflict(&e) => Err(PublishFailure::Conflict),
            Err(e) => Err(refused(&e)),
        }
    }

    /// A bucket's last sequence, as the stream's leader reports it (0:
    /// never written).
    pub async fn last_of_bucket(&self, bucket: u32) -> Result<u64, ClusterError> {
        self.last_of_subject(&self.config.subject(bucket))
            .await
            .map(|m| m.map_or(0, |(seq, _)| seq))
    }

    async fn last_of_subject(&self, subject: &str) -> Result<Option<(u64, Vec<u8>)>, ClusterError> {
        let action = "did not report a subject's last message";
        self.within_timeout(action, async {
            match self
                .stream()
                .await?
                .get_last_raw_message_by_subject(subject)
                .await
            {
                Ok(m) => Ok(Some((m.sequence, m.payload.to_vec()))),
                Err(e)
                    if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(self.nats_error(action, &e)),
            }
        })
        .await
    }

    /// The stream's handle (no request to the servers).
    async fn stream(&self) -> Result<jetstream::stream::Stream<()>, ClusterError> {
        self.js
            .get_stream_no_info(&self.config.stream)
            .await
            .map_err(|e| self.nats_error("did not answer for the stream", &e))
    }

    /// `ask`, or the error of `action` once the cluster's timeout passed:
    /// a node that cannot reach the leader in time is cut off.
    async fn within_timeout<T>(
        &self,
        action: &'static str,
        ask: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.config.timeout, ask)
            .await
            .map_err(|_| {
                self.nats_error(
                    action,
                    &format!("no answer within {} ms", self.config.timeout.as_millis()),
                )
            })?
    }

    /// A node number (1 to [`MAX_NODES`]) for this process alone: the one
    /// after the highest claimed, claimed by a create-only publish
    /// (expected subject sequence 0) with the node's name. Every process
    /// start takes a new one, so two processes never make the same
    /// generated ids, even two started under one name by mistake; the
    /// numbers last for 65,535 starts of the cluster's nodes.
    pub async fn node_number(&self) -> Result<u16, ClusterError> {
        let highest = self
            .last_of_subject(&format!("{}.n.>", self.config.prefix()))
            .await?;
        let mut n = match highest {
            None => 1,
            Some((seq, _)) => u32::from(self.claimed_number(seq).await?) + 1,
        };
        while let Ok(number) = u16::try_from(n) {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
            let ack = self
                .js
                .publish_with_headers(
                    self.config.node_subject(number),
                    headers,
                    self.config.node_id.clone().into_bytes().into(),
                )
                .await
                .map_err(|e| self.nats_error("refused a node's claim", &e))?
                .await;
            match ack {
                Ok(_) => return Ok(number),
                // Another process took it first: the next one.
                Err(e) if is_conflict(&e) => n += 1,
                Err(e) => return Err(self.nats_error("refused a node's claim", &e)),
            }
        }
        Err(ClusterError::Setting {
            field: "--node-id",
            value: crate::model::echo(&self.config.node_id).to_string(),
            allowed: "a start of a node; all 65,535 node numbers of this stream were taken by earlier starts: make a new stream (--cluster-stream) from a backup",
        })
    }

    /// The number the claim at sequence `seq` took, from its subject.
    async fn claimed_number(&self, seq: u64) -> Result<u16, ClusterError> {
        let message = self
            .stream()
            .await?
            .get_raw_message(seq)
            .await
            .map_err(|e| self.nats_error("did not give a node's claim", &e))?;
        self.config
            .node_of(message.subject.as_str())
            .ok_or_else(|| self.nats_error("gave a node's claim", &"on another subject"))
    }

    /// The stream's messages in order from sequence `from`, for as long as
    /// the stream lasts; an ordered consumer (ephemeral, made again by the
    /// client if it is lost), so that no node leaves state on the servers.
    pub async fn follow(
        &self,
        from: u64,
    ) -> Result<impl tokio_stream::Stream<Item = Result<Entry, ClusterError>> + use<>, ClusterError>
    {
        let consumer = self
            .stream()
            .await?
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| self.nats_error("refused a consumer of the stream", &e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| self.nats_error("did not deliver the stream", &e))?;
        let urls = self.config.urls.clone();
        let config = self.config.clone();
        Ok(messages.map(move |m| {
            let failed = |reason: String| ClusterError::Nats {
                urls: urls.clone(),
                action: "stopped delivering the stream",
                reason,
            };
            let m = m.map_err(|e| failed(e.to_string()))?;
            let seq = m.info().map_err(|e| failed(e.to_string()))?.stream_sequence;
            Ok(Entry {
                seq,
                bucket: config.bucket_of(m.subject.as_str()),
                claim: config.node_of(m.subject.as_str()),
                bytes: m.payload.to_vec(),
            })
        }))
    }
}

/// True for JetStream's "wrong last sequence", in either of its forms
/// (10071 with the sequence, 10164 without).
fn is_conflict(e: &jetstream::context::PublishError) -> bool {
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
        .is_some_and(|j| {
            matches!(
                j.error_code(),
                jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                    | jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_a_partition_and_a_bucket_of_the_key() {
        let mut c = ClusterConfig::new("nats://127.0.0.1:4222", "a");
        c.partitions = 8;
        let b = ClusterConfig::bucket("ext-a.b*>");
        assert!(b < BUCKETS);
        assert_eq!(b, ClusterConfig::bucket("ext-a.b*>"), "stable");
        let s = c.subject(b);
        assert_eq!(s, format!("cg.compliance-guard.p{}.k{b:04x}", b % 8));
        assert_eq!(c.bucket_of(&s), Some(b));
        assert_eq!(c.bucket_of("cg.compliance-guard.n.1"), None);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn settings_are_checked() {
        let mut c = ClusterConfig::new("nats://127.0.0.1:4222", "node.1");
        assert!(c.check().unwrap_err().to_string().contains("--node-id"));
        c.node_id = "n1".into();
        c.replicas = 0;
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("--cluster-replicas")
        );
        c.replicas = 3;
        assert!(c.check().is_ok());
    }
}
