//! Signed, time-limited links to stored audio (upstream's `returnUrl`):
//! the HMAC key kept in the data dir, and how a link is made, read back
//! and checked.
//!
//! Apart from the store: a link never touches the audio. It names an
//! interaction, a kind and the storage key of the upload it was made for;
//! the listener (`http.rs`) opens the file only once the link has passed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::{
    Disposition, LINK_KEY_FILE, MAX_LINK_TTL, MEDIA_DIR, MediaError, hex, io, sync_dir, unhex,
};
use crate::model::MediaKind;

/// `text` with every byte but ASCII letters, digits and `-_.~` as `%XX`,
/// for a path segment (imported ids may hold anything).
fn percent_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or
/// text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a link names, once its signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The interaction's id (ours).
    pub interaction_id: String,
    /// Which audio.
    pub kind: MediaKind,
    /// How the response presents it.
    pub disposition: Disposition,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not a link of ours: a wrong path, a missing or malformed parameter.
    #[error("not a media link: {0}")]
    Malformed(String),
    /// The signature does not match (or the content it was made for is
    /// gone or replaced).
    #[error("the link is not valid")]
    BadSignature,
    /// A genuine link past its expiry.
    #[error("the link expired at {0}")]
    Expired(String),
}

/// Signs and checks links to stored audio.
#[derive(Debug)]
pub struct LinkSigner {
    key: hmac::Key,
    base: String,
    ttl: Duration,
}

impl LinkSigner {
    /// Loads the data dir's link key, creating it (32 random bytes, mode
    /// 0600) at first start, so links survive a restart. Deleting the file
    /// and restarting revokes every link. `base` is the listener's public
    /// URL (`http://host:port`), `ttl` how long links live.
    pub fn load_or_create(
        data_dir: &Path,
        base: &str,
        ttl: Duration,
    ) -> Result<LinkSigner, MediaError> {
        let dir = data_dir.join(MEDIA_DIR);
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        let path = dir.join(LINK_KEY_FILE);
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => unhex(text.trim()).filter(|k| k.len() >= 32).ok_or_else(|| {
                MediaError::Damaged {
                    key: LINK_KEY_FILE.into(),
                    what: format!(
                        "`{}` does not hold 64 or more hex digits; delete it to make a new key (links given out stop working)",
                        path.display()
                    ),
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = LinkSigner::new_key()?;
                // Written whole to a temporary file, then renamed: a crash
                // never leaves an empty or partial key behind.
                let tmp = dir.join(format!("{LINK_KEY_FILE}.tmp"));
                let _ = std::fs::remove_file(&tmp);
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let mut file = options.open(&tmp).map_err(io("cannot create", &tmp))?;
                file.write_all(format!("{}\n", hex(&secret)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io("cannot write", &tmp))?;
                std::fs::rename(&tmp, &path).map_err(io("cannot move into place", &path))?;
                sync_dir(&dir)?;
                secret
            }
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        LinkSigner::with_key(&secret, base, ttl)
    }

    /// A signer over a key kept elsewhere: a cluster's nodes share one
    /// ([`crate::cluster::Link::shared_link_key`]), so that a link any node
    /// gives out is served by every node. The key must be 32 bytes or
    /// more.
    pub fn with_key(secret: &[u8], base: &str, ttl: Duration) -> Result<LinkSigner, MediaError> {
        if secret.len() < 32 {
            return Err(MediaError::Damaged {
                key: "media-link-key".into(),
                what: format!(
                    "the cluster's media link key is {} bytes; allowed: 32 or more",
                    secret.len()
                ),
            });
        }
        Ok(LinkSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            base: base.trim_end_matches('/').to_owned(),
            ttl: ttl.min(MAX_LINK_TTL),
        })
    }

    /// 32 random bytes: a new link key.
    pub fn new_key() -> Result<Vec<u8>, MediaError> {
        let mut secret = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| MediaError::Random)?;
        Ok(secret)
    }

    /// How long links live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn message(target: &LinkTarget, storage_key: &str) -> String {
        format!(
            "compliance-guard media link v1\n{}\n{}\n{}\n{}\n{}",
            target.interaction_id,
            target.kind,
            storage_key,
            target.disposition.as_str(),
            target.expires_at.timestamp()
        )
    }

    /// A link to the audio of `kind` of `interaction_id`, stored under
    /// `storage_key`, valid from `now` for the configured time.
    pub fn link(
        &self,
        interaction_id: &str,
        kind: MediaKind,
        storage_key: &str,
        disposition: Disposition,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let expires_at = now
            + chrono::Duration::from_std(self.ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let target = LinkTarget {
            interaction_id: interaction_id.to_owned(),
            kind,
            disposition,
            expires_at,
        };
        let tag = hmac::sign(&self.key, Self::message(&target, storage_key).as_bytes());
        let url = format!(
            "{}/media/{}/{kind}?disposition={}&expires={}&signature={}",
            self.base,
            percent_encode(interaction_id),
            disposition.as_str(),
            expires_at.timestamp(),
            hex(tag.as_ref())
        );
        (url, expires_at)
    }

    /// Reads a link's path and query (`/media/{id}/{kind}?...`) without
    /// checking its signature: the caller looks up the storage key the
    /// link must have been made for, then calls [`LinkSigner::verify`].
    pub fn parse(path: &str, query: &str) -> Result<(LinkTarget, Vec<u8>), LinkError> {
        let rest = path.strip_prefix("/media/").ok_or_else(|| {
            LinkError::Malformed("the path is not /media/{interactionId}/{kind}".into())
        })?;
        let (id, kind) = rest.split_once('/').ok_or_else(|| {
            LinkError::Malformed("the path is not /media/{interactionId}/{kind}".into())
        })?;
        let kind = MediaKind::parse(kind).ok_or_else(|| {
            LinkError::Malformed("the kind is not `recording` or `voicemail`".into())
        })?;
        let id = percent_decode(id)
            .filter(|id| !id.is_empty() && id.chars().count() <= crate::model::MAX_ID_CHARS + 4)
            .ok_or_else(|| LinkError::Malformed("the interaction id is not one of ours".into()))?;
        let id = id.as_str();
        let (mut disposition, mut expires, mut signature) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "disposition" => &mut disposition,
                "expires" => &mut expires,
                "signature" => &mut signature,
                _ => {
                    return Err(LinkError::Malformed(format!(
                        "unknown parameter `{}`",
                        crate::model::echo(k)
                    )));
                }
            };
            if slot.replace(v).is_some() {
                return Err(LinkError::Malformed(format!("`{k}` is given twice")));
            }
        }
        let disposition = Disposition::parse(disposition.unwrap_or("attachment"))
            .map_err(LinkError::Malformed)?;
        let expires_at = expires
            .and_then(|e| e.parse::<i64>().ok())
            .and_then(|e| DateTime::from_timestamp(e, 0))
            .ok_or_else(|| {
                LinkError::Malformed("`expires` is missing or not a Unix time".into())
            })?;
        let signature = signature
            .and_then(unhex)
            .ok_or_else(|| LinkError::Malformed("`signature` is missing or not hex".into()))?;
        Ok((
            LinkTarget {
                interaction_id: id.to_owned(),
                kind,
                disposition,
                expires_at,
            },
            signature,
        ))
    }

    /// Checks a parsed link against the storage key of the content it
    /// names now (`None`: nothing stored, which no signature matches), in
    /// constant time, then its expiry.
    pub fn verify(
        &self,
        target: &LinkTarget,
        signature: &[u8],
        storage_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let Some(storage_key) = storage_key else {
            return Err(LinkError::BadSignature);
        };
        hmac::verify(
            &self.key,
            Self::message(target, storage_key).as_bytes(),
            signature,
        )
        .map_err(|_| LinkError::BadSignature)?;
        if now >= target.expires_at {
            return Err(LinkError::Expired(
                target
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{DEFAULT_LINK_TTL, MediaStore, is_storage_key};
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn signer(dir: &Path) -> LinkSigner {
        LinkSigner::load_or_create(dir, "http://127.0.0.1:9/", Duration::from_secs(60)).unwrap()
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.strip_prefix("http://127.0.0.1:9").unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        (path.to_owned(), query.to_owned())
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_only_for_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer(dir.path());
        let (url, expires) = s.link(
            "IT-0000-00000001",
            MediaKind::Recording,
            "k1",
            Disposition::Inline,
            at(1_000),
        );
        assert_eq!(expires, at(1_060));
        let (path, query) = split(&url);
        assert_eq!(path, "/media/IT-0000-00000001/recording");
        let (target, sig) = LinkSigner::parse(&path, &query).unwrap();
        assert_eq!(target.disposition, Disposition::Inline);
        assert_eq!(s.verify(&target, &sig, Some("k1"), at(1_059)), Ok(()));
        // Expired at the second it names.
        assert!(matches!(
            s.verify(&target, &sig, Some("k1"), at(1_060)),
            Err(LinkError::Expired(_))
        ));
        // Another upload, or nothing stored: not valid.
        assert_eq!(
            s.verify(&target, &sig, Some("k2"), at(1_000)),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            s.verify(&target, &sig, None, at(1_000)),
            Err(LinkError::BadSignature)
        );
        // Any altered part: not valid.
        for altered in [
            query.replace("disposition=inline", "disposition=attachment"),
            query.replace("expires=1060", "expires=9999"),
        ] {
            let (t, sig) = LinkSigner::parse(&path, &altered).unwrap();
            assert_eq!(
                s.verify(&t, &sig, Some("k1"), at(1_000)),
                Err(LinkError::BadSignature)
            );
        }
        let (t, sig) = LinkSigner::parse("/media/IT-0000-00000001/voicemail", &query).unwrap();
        assert_eq!(
            s.verify(&t, &sig, Some("k1"), at(1_000)),
            Err(LinkError::BadSignature)
        );
        // The key survives a restart; links stay valid.
        let again = signer(dir.path());
        assert_eq!(
            again.verify(&target, &sig_of(&query), Some("k1"), at(1_000)),
            Ok(())
        );
    }

    fn sig_of(query: &str) -> Vec<u8> {
        let hexsig = query.split("signature=").nth(1).unwrap();
        unhex(hexsig).unwrap()
    }

    #[test]
    fn any_imported_id_gets_a_short_key_and_a_working_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::open(dir.path(), 10).unwrap();
        let s = signer(dir.path());
        for id in [
            "IT-AAAA-0001.2".to_owned(),
            format!("ext-{}", "x/é ?#%".repeat(30)),
            format!("IT-{}", "A".repeat(250)),
        ] {
            let key = store.new_key(&id, MediaKind::Voicemail).unwrap();
            assert!(is_storage_key(&key) && key.len() <= 120, "{key}");
            let (url, _) = s.link(
                &id,
                MediaKind::Voicemail,
                &key,
                Disposition::Attachment,
                at(0),
            );
            let (path, query) = split(&url);
            let (target, sig) = LinkSigner::parse(&path, &query).unwrap();
            assert_eq!(target.interaction_id, id);
            assert_eq!(s.verify(&target, &sig, Some(&key), at(1)), Ok(()));
        }
        assert!(!is_storage_key("../x") && !is_storage_key("/etc/passwd") && !is_storage_key(""));
    }

    #[test]
    fn malformed_links_are_refused_by_name() {
        for (path, query, says) in [
            ("/other/IT-1/recording", "", "path"),
            ("/media/IT-1/photo", "", "kind"),
            ("/media/%ZZ/recording", "", "interaction id"),
            (
                "/media/IT-1/recording",
                "expires=1&signature=zz",
                "signature",
            ),
            ("/media/IT-1/recording", "signature=00", "expires"),
            (
                "/media/IT-1/recording",
                "expires=1&expires=2&signature=00",
                "twice",
            ),
            (
                "/media/IT-1/recording",
                "disposition=x&expires=1&signature=00",
                "disposition",
            ),
            (
                "/media/IT-1/recording",
                "expires=1&signature=00&x=1",
                "unknown parameter",
            ),
        ] {
            let e = LinkSigner::parse(path, query).unwrap_err().to_string();
            assert!(e.contains(says), "{path}?{query}: {e}");
        }
    }

    #[test]
    fn a_damaged_link_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(MEDIA_DIR)).unwrap();
        std::fs::write(dir.path().join(MEDIA_DIR).join(LINK_KEY_FILE), "short").unwrap();
        let e = LinkSigner::load_or_create(dir.path(), "http://x", DEFAULT_LINK_TTL).unwrap_err();
        assert!(e.to_string().contains("delete it to make a new key"), "{e}");
    }
}
