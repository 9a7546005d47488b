//! The retention sweep: purges the audio of interactions deleted longer
//! ago than the retention, and files no record names once they are old
//! enough not to be an upload about to be journaled.
//!
//! Apart from the store: the sweep decides *what* goes, from what the
//! index says of each storage key; the store only lists and removes.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::{MediaError, MediaStore, ORPHAN_GRACE};

/// What the sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Audio of interactions deleted longer ago than the retention.
    pub purged: usize,
    /// Files no record names, older than [`ORPHAN_GRACE`].
    pub orphans: usize,
}

/// One pass of the sweep: removes the audio of interactions deleted more
/// than `retention` before `now`, and files no interaction names that are
/// older than [`ORPHAN_GRACE`]. `status(key)` says what the index knows of
/// a storage key: `None` if no interaction names it, `Some(deleted_at)`
/// otherwise; when it cannot say (`Err`), the sweep stops and removes
/// nothing more: a file is never taken for an orphan because the index
/// could not be read.
pub fn sweep(
    store: &MediaStore,
    now: DateTime<Utc>,
    retention: Duration,
    status: impl Fn(&str) -> Result<Option<Option<DateTime<Utc>>>, String>,
) -> Result<Swept, MediaError> {
    let mut swept = Swept::default();
    for (key, modified) in store.stored()? {
        match verdict(&key, modified, now, retention, &status)? {
            Verdict::Keep => {}
            Verdict::Purge => {
                store.remove(&key)?;
                swept.purged += 1;
            }
            Verdict::Orphan => {
                store.remove(&key)?;
                swept.orphans += 1;
            }
        }
    }
    Ok(swept)
}

/// One pass of the sweep over the cluster's object store, on a cluster
/// node (nothing on a single node): the same verdicts as [`sweep`], on
/// every object and the time it was put. The caller runs it only right
/// after the node has caught up with the stream (the read barrier), so
/// that a record another node has published is never missed and its
/// audio taken for an orphan; the hour of [`ORPHAN_GRACE`] covers an
/// upload whose record is still being published.
pub async fn sweep_shared(
    store: &MediaStore,
    now: DateTime<Utc>,
    retention: Duration,
    status: impl Fn(&str) -> Result<Option<Option<DateTime<Utc>>>, String> + Send + 'static,
) -> Result<Swept, MediaError> {
    let Some(shared) = &store.shared else {
        return Ok(Swept::default());
    };
    let listed = shared
        .stored()
        .await
        .map_err(|e| MediaError::Shared(e.to_string()))?;
    // The index may be read from disk: off the async threads.
    let verdicts = tokio::task::spawn_blocking(move || {
        listed
            .into_iter()
            .map(|(key, modified)| Ok((verdict(&key, modified, now, retention, &status)?, key)))
            .collect::<Result<Vec<_>, MediaError>>()
    })
    .await
    .map_err(|e| MediaError::Shared(format!("a sweep task failed: {e}")))??;
    let mut swept = Swept::default();
    for (verdict, key) in verdicts {
        if verdict == Verdict::Keep {
            continue;
        }
        shared
            .remove(&key)
            .await
            .map_err(|e| MediaError::Shared(e.to_string()))?;
        match verdict {
            Verdict::Purge => swept.purged += 1,
            _ => swept.orphans += 1,
        }
    }
    Ok(swept)
}

/// On a cluster node, removes its copies of audio nobody asked it for in
/// `cache_for` (a file's modification time is when it was uploaded,
/// fetched, or last asked for: [`MediaStore::ensure_local`] touches it):
/// the cluster's object store holds the audio, and a copy removed is
/// fetched again when asked for. Returns how many were removed; nothing on
/// a single node, whose files are the only copy.
pub fn trim_cache(
    store: &MediaStore,
    now: DateTime<Utc>,
    cache_for: Duration,
) -> Result<usize, MediaError> {
    if !store.is_shared() {
        return Ok(0);
    }
    let now = SystemTime::from(now);
    let mut trimmed = 0;
    for (key, modified) in store.stored()? {
        if now.duration_since(modified).unwrap_or_default() >= cache_for {
            store.remove(&key)?;
            trimmed += 1;
        }
    }
    Ok(trimmed)
}

/// What the sweep does with one stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Its interaction was deleted longer ago than the retention.
    Purge,
    /// No record names it, and it is older than [`ORPHAN_GRACE`].
    Orphan,
}

/// The verdict on the file `key`, stored (or last changed) at `modified`,
/// from what `status` says of it; an error when the index cannot say.
fn verdict(
    key: &str,
    modified: SystemTime,
    now: DateTime<Utc>,
    retention: Duration,
    status: &impl Fn(&str) -> Result<Option<Option<DateTime<Utc>>>, String>,
) -> Result<Verdict, MediaError> {
    let known = status(key).map_err(|why| MediaError::Damaged {
        key: key.to_owned(),
        what: format!("the index cannot be read ({why}); the sweep stopped"),
    })?;
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    Ok(match known {
        Some(Some(deleted_at))
            if deleted_at
                .checked_add_signed(retention)
                .is_some_and(|purge_at| purge_at <= now) =>
        {
            Verdict::Purge
        }
        Some(_) => Verdict::Keep,
        None => {
            let age = SystemTime::from(now)
                .duration_since(modified)
                .unwrap_or_default();
            if age >= ORPHAN_GRACE {
                Verdict::Orphan
            } else {
                Verdict::Keep
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_purges_after_retention_and_spares_young_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 100).unwrap();
        for key in ["kept", "deleted-long-ago", "deleted-just-now", "orphan"] {
            let mut w = store.begin(key).unwrap();
            w.write(b"x").unwrap();
            w.finish(None).unwrap();
        }
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        let status = |key: &str| {
            Ok(match key {
                "kept" => Some(None),
                "deleted-long-ago" => Some(Some(now - chrono::Duration::days(2))),
                "deleted-just-now" => Some(Some(now)),
                _ => None,
            })
        };
        // An index that cannot be read stops the sweep: nothing is taken
        // for an orphan, however old.
        let e = sweep(
            &store,
            now + chrono::Duration::days(9),
            Duration::ZERO,
            |_| Err("poisoned".to_owned()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the sweep stopped"), "{e}");
        assert_eq!(store.stored().unwrap().len(), 4);
        let swept = sweep(&store, now, day, status).unwrap();
        assert_eq!(
            swept,
            Swept {
                purged: 1,
                orphans: 0
            }
        );
        let mut left: Vec<String> = store
            .stored()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        left.sort();
        assert_eq!(left, ["deleted-just-now", "kept", "orphan"]);
        // An hour on, the orphan goes too; retention zero purges at once.
        let later = now + chrono::Duration::hours(2);
        let swept = sweep(&store, later, Duration::ZERO, status).unwrap();
        assert_eq!(
            swept,
            Swept {
                purged: 1,
                orphans: 1
            }
        );
        // A retention too long to add never purges (and never panics).
        let swept = sweep(&store, later, Duration::MAX, status).unwrap();
        assert_eq!(swept, Swept::default());
    }
}
