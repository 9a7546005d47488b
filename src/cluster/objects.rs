//! The audio a cluster's nodes share: recordings and voicemails in a
//! JetStream object store, and the key media links are signed with in a
//! JetStream key-value bucket, both replicated as the stream is.
//!
//! A node's own `media/` directory is then a cache of the object store:
//! an upload is put here before its record is published (so that a record
//! never names audio the cluster does not hold), and a node asked for
//! audio it does not hold fetches it from here first. What the bytes mean
//! and how they are checked is [`crate::media`]'s; this is the link to
//! NATS only.

use std::path::Path;
use std::time::SystemTime;

use async_nats::jetstream::{kv, object_store, stream::StorageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

use super::{ClusterError, Link};

/// The key-value entry holding the link key.
const LINK_KEY_ENTRY: &str = "media-link-key";

/// How long a fetch waits for the next chunk of an object before it gives
/// up (an object removed while it is read, a server gone quiet).
pub const FETCH_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The object store of a cluster's audio (`<stream>-media`).
#[derive(Clone)]
pub struct SharedMedia {
    store: object_store::ObjectStore,
    urls: String,
}

impl std::fmt::Debug for SharedMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMedia")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// The cluster's object store for audio, made if there is none: file
    /// storage, the stream's replica count, no age or size limit (audio is
    /// removed only by the retention sweep).
    pub async fn shared_media(&self) -> Result<SharedMedia, ClusterError> {
        let bucket = format!("{}-media", self.config.stream);
        let store = match self.js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(_) => self
                .js
                .create_object_store(object_store::Config {
                    bucket,
                    description: Some("compliance-guard's recordings and voicemails".into()),
                    storage: StorageType::File,
                    num_replicas: self.config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    self.nats_error("could not make or find the audio's object store", &e)
                })?,
        };
        Ok(SharedMedia {
            store,
            urls: self.config.urls.clone(),
        })
    }

    /// The cluster's object store for audio, which must exist already (a
    /// node makes it at its start): for a command that only reads it.
    pub async fn existing_shared_media(&self) -> Result<SharedMedia, ClusterError> {
        let bucket = format!("{}-media", self.config.stream);
        let store = self.js.get_object_store(&bucket).await.map_err(|e| {
            self.nats_error("has no audio object store", &format!("`{bucket}`: {e}"))
        })?;
        Ok(SharedMedia {
            store,
            urls: self.config.urls.clone(),
        })
    }

    /// The key every node signs media links with: the one already in the
    /// cluster's key-value bucket (`<stream>-meta`), or `fresh`, stored
    /// there create-only, so that two nodes starting at once still agree.
    pub async fn shared_link_key(&self, fresh: &[u8]) -> Result<Vec<u8>, ClusterError> {
        let bucket = format!("{}-meta", self.config.stream);
        let store = match self.js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => self
                .js
                .create_key_value(kv::Config {
                    bucket,
                    description: "compliance-guard's settings shared by its nodes".into(),
                    history: 1,
                    storage: StorageType::File,
                    num_replicas: self.config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| self.nats_error("could not make or find the settings bucket", &e))?,
        };
        match store.create(LINK_KEY_ENTRY, fresh.to_vec().into()).await {
            Ok(_) => Ok(fresh.to_vec()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => store
                .get(LINK_KEY_ENTRY)
                .await
                .map_err(|e| self.nats_error("did not give the media link key", &e))?
                .map(|b| b.to_vec())
                .ok_or_else(|| {
                    self.nats_error("did not give the media link key", &"it is deleted")
                }),
            Err(e) => Err(self.nats_error("refused the media link key", &e)),
        }
    }
}

impl SharedMedia {
    fn failed(&self, action: &'static str, e: &dyn std::fmt::Display) -> ClusterError {
        ClusterError::Nats {
            urls: self.urls.clone(),
            action,
            reason: e.to_string(),
        }
    }

    /// Puts the file at `path` under `key`; returns once every chunk is
    /// acknowledged by the object store's stream.
    ///
    /// A chunk refused before any of the object's description was written
    /// is tried again, twice, from the start: a server that has only just
    /// learned of the object store's stream answers "no responders" for a
    /// moment. Chunks of a failed try are never named by a description,
    /// and nothing reads them.
    pub async fn put(&self, key: &str, path: &Path) -> Result<(), ClusterError> {
        let mut tries = 0;
        loop {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| self.failed("was not sent the audio", &e))?;
            match self.store.put(key, &mut file).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == object_store::PutErrorKind::PublishChunks && tries < 2 => {
                    tries += 1;
                    tracing::warn!(error = %e, key = %key, "the object store refused a chunk; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(self.failed("did not take the audio", &e)),
            }
        }
    }

    /// Writes the object `key` to `out`, at most `limit` bytes of it;
    /// `Ok(false)` when the object store has no such object. The caller
    /// checks the bytes against its record; an object whose chunks do not
    /// match the digest it was put with is [`ClusterError::Damaged`]. A
    /// stream of chunks that stalls for `FETCH_IDLE` (30 s) is given up.
    pub async fn get(
        &self,
        key: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
        limit: u64,
    ) -> Result<bool, ClusterError> {
        let object = match self.store.get(key).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.failed("did not give the audio", &e)),
        };
        let mut object = object.take(limit);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(FETCH_IDLE, object.read(&mut buf)).await {
                Err(_) => {
                    return Err(self.failed(
                        "stalled sending the audio",
                        &format!("nothing for {} s", FETCH_IDLE.as_secs()),
                    ));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(ClusterError::Damaged {
                        key: crate::model::echo(key).to_string(),
                        what: e.to_string(),
                    });
                }
                Ok(Err(e)) => return Err(self.failed("broke off the audio", &e)),
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
            };
            out.write_all(&buf[..n])
                .await
                .map_err(|e| self.failed("was not written", &e))?;
        }
        out.flush()
            .await
            .map_err(|e| self.failed("was not written", &e))?;
        Ok(true)
    }

    /// Removes the object `key`; one already gone is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), ClusterError> {
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed("did not remove the audio", &e)),
        }
    }

    /// Every object stored, with when it was put.
    pub async fn stored(&self) -> Result<Vec<(String, SystemTime)>, ClusterError> {
        let mut list = self
            .store
            .list()
            .await
            .map_err(|e| self.failed("did not list the audio", &e))?;
        let mut out = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| self.failed("did not list the audio", &e))?;
            let modified = info
                .modified
                .map(SystemTime::from)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((info.name, modified));
        }
        Ok(out)
    }
}
