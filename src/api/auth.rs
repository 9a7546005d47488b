//! API keys: where they come from and how a presented key is checked.
//!
//! Access mirrors upstream: a bearer token (`authorization: Bearer KEY`) or
//! an API-key header (`x-api-key: KEY`). Keys come from, in this order:
//! 1. a keys file (`--keys FILE`), YAML:
//!    ```yaml
//!    keys:
//!      - name: pipeline          # becomes createdBy / updatedBy
//!        key: 9f2c...            # at least 32 characters
//!        sensitive: false        # may read sensitive interactions
//!        agent: false            # an agent: may join conversations
//!        company: acme           # its company (optional; none if absent)
//!    ```
//! 2. the environment variable `COMPLIANCE_GUARD_API_KEY` (one key, named
//!    `env`, with the sensitive right);
//! 3. otherwise the file `api-key` in the data dir, created at first start
//!    with a random key and owner-only permissions (one key, named
//!    `admin`, with the sensitive right).
//!
//! The guard never runs without keys unless told so explicitly, and then
//! only on loopback (see the `serve` command).
//!
//! Everything about who is calling is here: the keys ([`Keys`]), how the
//! server's flags choose them ([`resolve_access`]), the interceptor that
//! checks every request's key ([`authenticate`]), and how a handler reads
//! the [`Caller`] it found.

use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tonic::{Request, Status};

use crate::request::Caller;

/// Shortest key accepted.
pub const MIN_KEY_CHARS: usize = 32;
/// The name of the generated key file in the data dir.
pub const KEY_FILE: &str = "api-key";

/// Errors reading or creating keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The keys file could not be read.
    #[error("cannot read the keys file `{path}`: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The keys file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The generated key could not be written.
    #[error("cannot create the key file `{path}`: {cause}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Running without keys was asked for on an address other than loopback.
    #[error(
        "refusing to run without API keys on `{0}`: `--insecure-no-auth` is allowed only on a loopback address"
    )]
    OpenOffLoopback(SocketAddr),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    key: String,
    #[serde(default)]
    sensitive: bool,
    /// An agent (upstream: a user of type Agent), who may join
    /// conversations. Absent means not an agent.
    #[serde(default)]
    agent: bool,
    /// The company the key belongs to; what it creates belongs to it.
    /// Absent means no company.
    #[serde(default)]
    company: Option<String>,
}

/// The keys the server accepts.
#[derive(Clone)]
pub struct Keys {
    entries: Vec<KeyEntry>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets themselves.
        let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("Keys").field("names", &names).finish()
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_entries(path: &Path, entries: &[KeyEntry]) -> Result<(), AuthError> {
    let invalid = |message: String| AuthError::Invalid {
        path: path.to_owned(),
        message,
    };
    if entries.is_empty() {
        return Err(invalid("no keys; give at least one".into()));
    }
    for (i, e) in entries.iter().enumerate() {
        if e.name.trim().is_empty() || e.name.chars().count() > 100 {
            return Err(invalid(format!(
                "keys[{i}]: `name` must have 1 to 100 characters"
            )));
        }
        if e.key.chars().count() < MIN_KEY_CHARS || !e.key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "keys[{i}] (`{}`): `key` must have at least {MIN_KEY_CHARS} printable characters and no spaces",
                e.name
            )));
        }
        if let Some(c) = &e.company
            && (c.is_empty() || c.chars().count() > 100 || !c.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(invalid(format!(
                "keys[{i}] (`{}`): `company` must have 1 to 100 printable characters and no spaces",
                e.name
            )));
        }
        if entries[..i].iter().any(|o| o.key == e.key) {
            return Err(invalid(format!(
                "keys[{i}] (`{}`): the same key is listed twice",
                e.name
            )));
        }
    }
    Ok(())
}

impl Keys {
    /// One key with a name and the sensitive right as given; it is not an
    /// agent.
    pub fn single(name: &str, key: &str, sensitive: bool) -> Result<Keys, AuthError> {
        let entries = vec![KeyEntry {
            name: name.to_owned(),
            key: key.to_owned(),
            sensitive,
            agent: false,
            company: None,
        }];
        check_entries(Path::new("(key)"), &entries)?;
        Ok(Keys { entries })
    }

    /// Reads a keys file (see the module docs for its format).
    pub fn load_file(path: &Path) -> Result<Keys, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|cause| AuthError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let file: KeysFile = serde_yaml::from_str(&text).map_err(|e| AuthError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        check_entries(path, &file.keys)?;
        Ok(Keys { entries: file.keys })
    }

    /// Reads the data dir's key file, creating it with a random key (mode
    /// 0600) if it does not exist. Returns the keys, the file's path, and
    /// whether it was created now.
    pub fn load_or_create(data_dir: &Path) -> Result<(Keys, PathBuf, bool), AuthError> {
        let path = data_dir.join(KEY_FILE);
        let create = |cause| AuthError::Create {
            path: path.clone(),
            cause,
        };
        if path.exists() {
            let key = std::fs::read_to_string(&path).map_err(|cause| AuthError::Read {
                path: path.clone(),
                cause,
            })?;
            let keys = Keys::single("admin", key.trim(), true).map_err(|e| AuthError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            return Ok((keys, path, false));
        }
        std::fs::create_dir_all(data_dir).map_err(create)?;
        let key = random_key().map_err(create)?;
        write_private(&path, &key).map_err(create)?;
        let keys = Keys::single("admin", &key, true)?;
        Ok((keys, path, true))
    }

    /// The caller a presented key belongs to, if any.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let mut found = None;
        // Compare against every key, so the time taken does not tell which
        // key came close.
        for e in &self.entries {
            if same(e.key.as_bytes(), presented.as_bytes()) {
                found = Some(Caller {
                    name: e.name.clone(),
                    sensitive: e.sensitive,
                    agent: e.agent,
                    company: e.company.clone(),
                });
            }
        }
        found
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is none (never the case for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Access {
    /// Every RPC but Health needs one of these keys.
    Keys(Arc<Keys>),
    /// No key is asked for (explicitly chosen, loopback only); every caller
    /// is `anonymous` with the sensitive right.
    Open,
}

/// The tonic interceptor: checks `authorization: Bearer KEY` or
/// `x-api-key: KEY` and puts the [`Caller`] into the request's extensions.
pub fn authenticate(access: Access) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let caller = match &access {
            Access::Open => Caller {
                company: None,
                name: "anonymous".into(),
                sensitive: true,
                agent: false,
            },
            Access::Keys(keys) => {
                let md = req.metadata();
                let presented = md
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .or_else(|| md.get("x-api-key").and_then(|v| v.to_str().ok()));
                let Some(presented) = presented else {
                    return Err(Status::unauthenticated(
                        "no API key; send `authorization: Bearer KEY` or `x-api-key: KEY`",
                    ));
                };
                keys.verify(presented.trim())
                    .ok_or_else(|| Status::unauthenticated("the API key is not valid"))?
            }
        };
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller [`authenticate`] found, for a handler: every RPC that acts
/// for someone (createdBy, rights, company) reads it here. A request that
/// did not pass the interceptor has none and is UNAUTHENTICATED.
pub(super) fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credential on the request"))
}

/// Where keys come from, in order: a keys file, the key in
/// `COMPLIANCE_GUARD_API_KEY` (passed in as `env_key`), the data dir's key
/// file (created at first start). `open` (no keys) is allowed only on a
/// loopback address. Returns the access and a line for the operator.
pub fn resolve_access(
    keys_file: Option<&Path>,
    env_key: Option<&str>,
    data_dir: &Path,
    open: bool,
    listen: SocketAddr,
) -> Result<(Access, String), AuthError> {
    if open {
        if !listen.ip().is_loopback() {
            return Err(AuthError::OpenOffLoopback(listen));
        }
        return Ok((
            Access::Open,
            "running WITHOUT API keys (--insecure-no-auth), loopback only".into(),
        ));
    }
    if let Some(path) = keys_file {
        let keys = Keys::load_file(path)?;
        let n = keys.len();
        return Ok((
            Access::Keys(Arc::new(keys)),
            format!("{n} API key(s) from {}", path.display()),
        ));
    }
    if let Some(key) = env_key.filter(|k| !k.is_empty()) {
        let keys = Keys::single("env", key, true)?;
        return Ok((
            Access::Keys(Arc::new(keys)),
            "API key from COMPLIANCE_GUARD_API_KEY".into(),
        ));
    }
    let (keys, path, created) = Keys::load_or_create(data_dir)?;
    let line = if created {
        format!(
            "created an API key in {} (owner-only); send it as `authorization: Bearer <key>`",
            path.display()
        )
    } else {
        format!("API key from {}", path.display())
    };
    Ok((Access::Keys(Arc::new(keys)), line))
}

/// 32 random bytes from the operating system, as 64 hex digits.
fn random_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_listed_keys() {
        let keys = Keys::single("pipeline", &"k".repeat(40), false).unwrap();
        assert_eq!(keys.verify(&"k".repeat(40)).unwrap().name, "pipeline");
        assert!(keys.verify(&"k".repeat(39)).is_none());
        assert!(keys.verify("").is_none());
        assert!(Keys::single("short", "abc", false).is_err());
        assert!(!format!("{keys:?}").contains("kkkk"));
        assert!(!keys.verify(&"k".repeat(40)).unwrap().agent);
    }

    #[test]
    fn the_agent_right_is_read_and_off_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        std::fs::write(
            &path,
            format!("keys:\n  - name: ann\n    key: {a}\n    agent: true\n  - name: svc\n    key: {b}\n    sensitive: true\n"),
        )
        .unwrap();
        let keys = Keys::load_file(&path).unwrap();
        let ann = keys.verify(&a).unwrap();
        assert!(ann.agent && !ann.sensitive);
        let svc = keys.verify(&b).unwrap();
        assert!(!svc.agent && svc.sensitive);
    }
}
