//! The media parts of a running server: the data dir's audio store (on a
//! cluster node, a cache of the cluster's object store), the link key and
//! the HTTP listener, and the sweeps (retention, the object store, a
//! cluster node's cache).

use std::sync::Arc;

use super::ServeError;
use super::open::until_ready;
use crate::guard::Guard;
use crate::media::MediaHub;

/// The media parts of a running server.
pub(super) struct RunningMedia {
    /// What the recording and voicemail RPCs use.
    pub(super) hub: Arc<MediaHub>,
    /// The sweeps' task, aborted at shutdown.
    pub(super) sweeper: tokio::task::JoinHandle<()>,
    /// The link listener's task, if one runs.
    pub(super) http: Option<tokio::task::JoinHandle<()>>,
    /// Tells the link listener to stop.
    pub(super) stop: tokio::sync::watch::Sender<bool>,
}

/// Opens the data dir's audio store (clearing unfinished uploads), the
/// link key and the HTTP listener if one was given, and starts the sweep
/// that purges deleted interactions' audio after the retention.
pub(super) async fn open_media(
    data_dir: &std::path::Path,
    config: crate::media::MediaConfig,
    guard: Arc<Guard>,
) -> Result<RunningMedia, ServeError> {
    use crate::media::{LinkSigner, MediaStore};
    let failed =
        |e: crate::media::MediaError| ServeError::Task(format!("cannot open the media store: {e}"));
    let dir = data_dir.to_owned();
    let max_bytes = config.max_bytes;
    let store = tokio::task::spawn_blocking(move || MediaStore::open(&dir, max_bytes))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))?
        .map_err(failed)?;
    // A cluster node's audio is in the cluster's object store, its own
    // directory a cache; its links are signed with the cluster's key.
    let (store, shared_key) = match guard.cluster_link() {
        None => (store, None),
        Some(link) => {
            let fresh = LinkSigner::new_key().map_err(failed)?;
            let (shared, key) =
                until_ready("cannot reach the cluster's audio store yet", || async {
                    Ok((
                        link.shared_media().await?,
                        link.shared_link_key(&fresh).await?,
                    ))
                })
                .await?;
            (store.with_shared(shared), Some(key))
        }
    };
    let store = Arc::new(store);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut links = None;
    let mut http = None;
    if let Some(listener) = config.listener {
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Task(format!("the media listener has no address: {e}")))?;
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let signer = Arc::new(
            match &shared_key {
                Some(key) => LinkSigner::with_key(key, &base, config.link_ttl),
                None => LinkSigner::load_or_create(data_dir, &base, config.link_ttl),
            }
            .map_err(failed)?,
        );
        links = Some(Arc::clone(&signer));
        let server = Arc::new(crate::media::http::LinkServer {
            signer,
            store: Arc::clone(&store),
            guard: Arc::clone(&guard),
        });
        let mut rx = stop_rx.clone();
        tracing::info!(%addr, base = %base, "media links served over HTTP");
        http = Some(tokio::spawn(crate::media::http::serve(
            listener,
            server,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
            std::time::Duration::from_secs(5),
        )));
    }
    let sweeper = {
        let (store, retention, every) = (Arc::clone(&store), config.retention, config.sweep_every);
        let cache_for = config.cache_for;
        let passes = config.sweep_passes;
        tokio::spawn(async move {
            loop {
                let (local, guard_now) = (Arc::clone(&store), Arc::clone(&guard));
                let swept = tokio::task::spawn_blocking(move || {
                    crate::media::sweep(&local, chrono::Utc::now(), retention, |key| {
                        guard_now.media_file(key).map_err(|e| e.to_string())
                    })
                })
                .await;
                match swept {
                    Ok(Ok(s)) if s.purged + s.orphans > 0 => {
                        tracing::info!(
                            purged = s.purged,
                            orphans = s.orphans,
                            "media sweep removed audio"
                        );
                        metrics::counter!("compliance_guard_media_purged_total")
                            .increment(s.purged as u64);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "media sweep failed; it will run again")
                    }
                    Err(e) => tracing::warn!(error = %e, "media sweep task failed"),
                }
                if store.is_shared() {
                    sweep_shared(&store, &guard, retention).await;
                    let local = Arc::clone(&store);
                    let trimmed = tokio::task::spawn_blocking(move || {
                        crate::media::trim_cache(&local, chrono::Utc::now(), cache_for)
                    })
                    .await;
                    match trimmed {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(
                            removed = n,
                            "media sweep removed this node's copies of audio nobody asked for (the cluster's object store keeps it)"
                        ),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "media cache trim failed; it will run again")
                        }
                        Err(e) => tracing::warn!(error = %e, "media cache trim task failed"),
                    }
                }
                if let Some(passes) = &passes {
                    passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::time::sleep(every).await;
            }
        })
    };
    Ok(RunningMedia {
        hub: Arc::new(MediaHub::new(store, links)),
        sweeper,
        http,
        stop,
    })
}

/// One pass of the sweep over a cluster's object store, once the node
/// has caught up with the stream (so that no record published elsewhere
/// is missed); a node that cannot catch up sweeps nothing this time.
async fn sweep_shared(
    store: &crate::media::MediaStore,
    guard: &Arc<Guard>,
    retention: std::time::Duration,
) {
    if let Err(e) = guard.read_barrier().await {
        tracing::warn!(error = %e, "the cluster's audio was not swept: this node could not catch up; it will run again");
        return;
    }
    let status = {
        let guard = Arc::clone(guard);
        move |key: &str| guard.media_file(key).map_err(|e| e.to_string())
    };
    match crate::media::sweep_shared(store, chrono::Utc::now(), retention, status).await {
        Ok(s) if s.purged + s.orphans > 0 => {
            tracing::info!(
                purged = s.purged,
                orphans = s.orphans,
                "media sweep removed audio from the cluster's object store"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the sweep of the cluster's audio failed; it will run again")
        }
    }
}
