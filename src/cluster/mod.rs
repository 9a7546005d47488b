//! The cluster's log of record: a NATS JetStream stream that every node
//! publishes its changes to and applies, in the stream's order, to its own
//! store and memory.
//!
//! This module is the link to NATS and nothing else: connecting, making
//! sure the stream exists as configured, a conditional publish, the
//! stream's last sequence as its leader reports it, and the stream's
//! messages in order from a sequence. What a message means is the
//! ledger's ([`crate::ledger::Change`], framed as the journal frames it);
//! how a node uses the link is [`crate::guard`]'s.
//!
//! Every publish carries `Nats-Expected-Last-Sequence`: the stream's last
//! sequence the node had applied when it decided. JetStream refuses it if
//! anything was appended since, so every change is decided on the whole
//! history before it, as the single node's write lock makes it (the
//! server must be 2.9.21 or later for the check to hold under
//! concurrency; README names the version). Subjects carry a partition
//! number and a hash of the person from the first release, so that a
//! later release can fence per person and split people across nodes
//! without changing the stream's layout.

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
        Ok(())
    }

    /// The subjects' common start: `cg.<stream>`.
    fn prefix(&self) -> String {
        format!("cg.{}", self.stream)
    }

    /// The subject of a change about `person` (a person's id or name, or
    /// `""` for one about no person): `cg.<stream>.p<partition>.<hash>`.
    /// A hash, because a client's ids may hold `.`, `*` or `>`.
    pub fn subject(&self, person: &str) -> String {
        let hash = fnv1a(person.as_bytes());
        let partition = hash % u64::from(self.partitions);
        format!("{}.p{partition}.{hash:016x}", self.prefix())
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
    /// Its payload: framed journal records.
    pub bytes: Vec<u8>,
}

/// A node's connection to the cluster's stream.
#[derive(Debug, Clone)]
pub struct Link {
    config: ClusterConfig,
    js: jetstream::Context,
}

impl Link {
    /// Connects, then makes the stream if there is none, or checks that
    /// the one there has the replicas and subjects this node writes to.
    pub async fn connect(config: ClusterConfig) -> Result<Link, ClusterError> {
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
        let link = Link { config, js };
        link.ensure_stream().await?;
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

    async fn ensure_stream(&self) -> Result<(), ClusterError> {
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
            duplicate_window: Duration::from_secs(120),
            description: Some(format!(
                "compliance-guard's log of record ({} partitions)",
                c.partitions
            )),
            ..Default::default()
        };
        let stream = self
            .js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| self.nats_error("could not make or find the stream", &e))?;
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
        Ok(())
    }

    /// The stream's last sequence, as its leader reports it (0: empty).
    /// A node that cannot learn it within the timeout is cut off.
    pub async fn last_seq(&self) -> Result<u64, ClusterError> {
        let ask = async {
            let stream = self
                .js
                .get_stream_no_info(&self.config.stream)
                .await
                .map_err(|e| self.nats_error("did not answer for the stream", &e))?;
            stream
                .get_info()
                .await
                .map_err(|e| self.nats_error("did not report the stream's last sequence", &e))
        };
        let info = tokio::time::timeout(self.config.timeout, ask)
            .await
            .map_err(|_| {
                self.nats_error(
                    "did not report the stream's last sequence",
                    &format!("no answer within {} ms", self.config.timeout.as_millis()),
                )
            })??;
        Ok(info.state.last_sequence)
    }

    /// Publishes a change about `person` if the stream's last sequence is
    /// still `expected`; returns its sequence once JetStream acknowledged
    /// it (stored by a majority of the replicas).
    pub async fn publish(
        &self,
        person: &str,
        bytes: Vec<u8>,
        expected: u64,
    ) -> Result<u64, PublishFailure> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(PublishFailure::TooLarge {
                bytes: bytes.len(),
                most: MAX_MESSAGE_BYTES,
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Sequence", expected.to_string().as_str());
        let refused = |e: &dyn std::fmt::Display| PublishFailure::NotAcknowledged(e.to_string());
        let ack = self
            .js
            .publish_with_headers(self.config.subject(person), headers, bytes.into())
            .await
            .map_err(|e| refused(&e))?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if is_conflict(&e) => Err(PublishFailure::Conflict),
            Err(e) => Err(refused(&e)),
        }
    }

    /// The stream's messages in order from sequence `from`, for as long as
    /// the stream lasts; an ordered consumer (ephemeral, made again by the
    /// client if it is lost), so that no node leaves state on the servers.
    pub async fn follow(
        &self,
        from: u64,
    ) -> Result<impl tokio_stream::Stream<Item = Result<Entry, ClusterError>> + use<>, ClusterError>
    {
        let stream = self
            .js
            .get_stream_no_info(&self.config.stream)
            .await
            .map_err(|e| self.nats_error("did not answer for the stream", &e))?;
        let consumer = stream
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
    fn subjects_hash_the_person_and_name_a_partition() {
        let mut c = ClusterConfig::new("nats://127.0.0.1:4222", "a");
        c.partitions = 8;
        let s = c.subject("ext-a.b*>");
        assert!(s.starts_with("cg.compliance-guard.p"), "{s}");
        assert!(!s["cg.compliance-guard.".len()..].contains(['*', '>']));
        assert_eq!(s, c.subject("ext-a.b*>"), "stable");
        assert_eq!(s.split('.').count(), 4, "{s}");
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
