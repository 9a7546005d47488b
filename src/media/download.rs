//! A download, as the recording and voicemail RPCs answer it: a signed
//! link ([`MediaHub::link`]), or the stored audio read in chunks and
//! checked against its recorded size and SHA-256 as it goes
//! ([`MediaHub::read`]), so that damaged audio ends the download with an
//! error rather than passing for whole.

use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{CHUNK_BYTES, Disposition, MediaCheck, MediaError, MediaHub};
use crate::model::{Media, MediaKind};

/// The `target` of the damaged-audio log line: the module that logged it
/// before this one (`compliance_guard::service`), kept so that filters
/// and log queries on the target still find it.
const LOG_TARGET: &str = "compliance_guard::service";

/// Chunks read ahead of a slow client: it holds its stream and these,
/// never a thread of the blocking pool.
const READ_AHEAD: usize = 4;

/// A `returnUrl` download asked of a server that runs no media HTTP
/// listener: a link nothing serves is refused rather than handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "`returnUrl` needs the media HTTP listener, and this server runs none; start it with `--media-listen ADDR`, or download by stream (`returnUrl` false)"
)]
pub struct NoLinkListener;

impl MediaHub {
    /// A signed link to the audio `media` of the interaction
    /// `interaction_id` (ours), valid from `now` for the configured time.
    /// Returns the URL and when it expires.
    pub fn link(
        &self,
        interaction_id: &str,
        kind: MediaKind,
        media: &Media,
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), NoLinkListener> {
        let links = self.links.as_ref().ok_or(NoLinkListener)?;
        Ok(links.link(interaction_id, kind, &media.storage_key, disposition, now))
    }

    /// Opens the stored audio `media` and reads it in a task of its own,
    /// chunk by chunk into the channel returned, checking its size and
    /// SHA-256 as it goes ([`MediaCheck`]). A failed check (or a read
    /// error) is logged, counted in `compliance_guard_media_damaged_total`,
    /// and sent as the channel's last item; a whole file ends the channel
    /// after its last chunk. A file that cannot be opened is an error now.
    pub async fn read(
        &self,
        interaction_id: &str,
        media: &Media,
    ) -> Result<mpsc::Receiver<Result<Vec<u8>, MediaError>>, MediaError> {
        let path = self
            .store
            .path(&media.storage_key)
            .ok_or_else(|| MediaError::Damaged {
                key: media.storage_key.clone(),
                what: "the storage key is not a file name".into(),
            })?;
        let mut file = self.store.open_local(media, &path).await?;
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let id = interaction_id.to_owned();
        let mut check = MediaCheck::new(media);
        // Async reads in a task of its own: a slow client holds its stream
        // and a few chunks, never a thread of the blocking pool.
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let item = match file.read(&mut buf).await {
                    Ok(0) => match check.finish() {
                        Ok(()) => return,
                        Err(e) => Err(e),
                    },
                    Ok(n) => {
                        buf.truncate(n);
                        check.update(&buf).map(|()| buf)
                    }
                    Err(cause) => Err(MediaError::Io {
                        action: "cannot read",
                        path: path.clone(),
                        cause,
                    }),
                };
                if let Err(e) = &item {
                    tracing::error!(target: LOG_TARGET, error = %e, interaction = %id, "download: the stored audio failed its check");
                    metrics::counter!("compliance_guard_media_damaged_total").increment(1);
                }
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
