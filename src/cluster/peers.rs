//! What the nodes of a cluster say of themselves to each other: every few
//! seconds each node publishes its name and the version of the rules it
//! has in force on a plain NATS subject (not the stream: nothing of it is
//! kept), and each listens to the others. Nodes that disagree on the
//! rules decide the same send differently, so a disagreement is logged
//! and shown in `compliance_guard_cluster_rules_versions` (1 when every
//! node heard from has the same rules).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;

/// How often a node says what it has.
pub const EVERY: Duration = Duration::from_secs(5);

/// A node not heard from for this long is left out of the comparison.
const FORGET_AFTER: Duration = Duration::from_secs(20);

/// The longest name or version taken from a peer's message.
const MAX_FIELD: usize = 128;

/// What one node said of itself: `name version`.
fn said(name: &str, version: &str) -> String {
    format!("{name} {version}")
}

/// A peer's message, read strictly: two bounded fields.
fn heard(payload: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, version) = text.split_once(' ')?;
    (name.len() <= MAX_FIELD && version.len() <= MAX_FIELD && !version.contains(' '))
        .then(|| (name.to_owned(), version.to_owned()))
}

/// The versions in force among the nodes heard from lately, with who has
/// each.
#[derive(Debug, Default)]
pub struct Peers {
    seen: BTreeMap<String, (String, Instant)>,
}

impl Peers {
    /// Notes what a node said at `at`.
    pub fn note(&mut self, name: String, version: String, at: Instant) {
        self.seen.insert(name, (version, at));
    }

    /// Each version in force among the nodes heard from within
    /// [`FORGET_AFTER`] of `now`, with the nodes that have it.
    pub fn versions(&mut self, now: Instant) -> BTreeMap<String, Vec<String>> {
        self.seen
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= FORGET_AFTER);
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, (version, _)) in &self.seen {
            out.entry(version.clone()).or_default().push(name.clone());
        }
        out
    }
}

/// Says what this node has every [`EVERY`], listens to the others, and
/// reports disagreements, until the connection closes. `version` reads
/// the version in force now (it changes on reload).
pub async fn exchange(
    client: async_nats::Client,
    subject: String,
    name: String,
    version: impl Fn() -> Option<String> + Send + 'static,
) {
    let mut inbox = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hear the other nodes' rules versions");
            return;
        }
    };
    let mut peers = Peers::default();
    let mut tick = tokio::time::interval(EVERY);
    let mut reported = String::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(v) = version() {
                    let _ = client.publish(subject.clone(), said(&name, &v).into()).await;
                }
                let versions = peers.versions(Instant::now());
                metrics::gauge!("compliance_guard_cluster_rules_versions").set(versions.len() as f64);
                let now = format!("{versions:?}");
                if versions.len() > 1 && now != reported {
                    tracing::warn!(versions = %now, "the cluster's nodes have different rules in force: they decide the same send differently until every node has the same rules");
                }
                reported = now;
            }
            message = inbox.next() => {
                let Some(message) = message else { return };
                if let Some((peer, v)) = heard(&message.payload) {
                    peers.note(peer, v, Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_group_nodes_and_forget_the_silent() {
        let start = Instant::now();
        let mut p = Peers::default();
        p.note("a".into(), "v1".into(), start);
        p.note("b".into(), "v2".into(), start + Duration::from_secs(10));
        let now = start + Duration::from_secs(25);
        let v = p.versions(now);
        assert_eq!(v.len(), 1, "a was not heard for 25 s: {v:?}");
        assert_eq!(v["v2"], vec!["b".to_owned()]);
        assert_eq!(heard(b"n1 abc"), Some(("n1".into(), "abc".into())));
        assert_eq!(heard(b"n1 a b"), None);
        assert_eq!(heard(&[0xff, b' ', b'a']), None);
    }
}
