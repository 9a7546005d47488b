//! The `compliance-guard` command as a subprocess, as an operator runs it:
//! [`run`] for a command that ends, [`serve`] for the server. Every child
//! starts in the crate's directory (for `rules/`) with a cleared
//! environment: only [`KEPT`] is passed on, so that nothing exported in the
//! shell that runs the tests (`COMPLIANCE_GUARD_ROLES`, `_KEYS`, `_RULES`,
//! `NO_COLOR`, `RUST_LOG`, ...) changes what the tests see.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The variables passed on to a child: where to find `kill` and the
/// like, backtraces, and coverage profiles.
pub const KEPT: [&str; 3] = ["PATH", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"];

/// How long a server may take to say something, or to exit after SIGTERM,
/// before the test fails: far beyond any here, so that only a hang
/// reaches it.
const LIMIT: Duration = Duration::from_secs(60);

/// `compliance-guard` in the crate's directory with a cleared environment
/// (but [`KEPT`]).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_compliance-guard"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).env_clear();
    for name in KEPT {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// Runs `compliance-guard ARGS` to its end, with nothing on stdin.
pub fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// Runs `compliance-guard ARGS` to its end with `input` on stdin.
pub fn run_with_input(args: &[&str], input: &str) -> Output {
    let mut child = command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// A command's stdout, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A command's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `compliance-guard serve ARGS`, to start with [`Serve::spawn`]; logs at
/// `info` unless told otherwise.
pub fn serve<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Serve {
    let mut command = command();
    command.arg("serve").args(args);
    Serve {
        command,
        rust_log: "info",
        echo: false,
    }
}

/// A `serve` command not yet started.
#[derive(Debug)]
pub struct Serve {
    command: Command,
    rust_log: &'static str,
    echo: bool,
}

impl Serve {
    /// Logs at `level` (`RUST_LOG`).
    pub fn rust_log(mut self, level: &'static str) -> Serve {
        self.rust_log = level;
        self
    }

    /// Sets the environment variable `key` to `value`.
    pub fn env(mut self, key: &str, value: &str) -> Serve {
        self.command.env(key, value);
        self
    }

    /// Copies every line the server writes to stderr to the test's own
    /// (`server: ...`), as it comes.
    pub fn echo(mut self) -> Serve {
        self.echo = true;
        self
    }

    /// Starts it. Its stderr is read on a thread, so that it never blocks on
    /// a full pipe, and kept ([`ServeProcess::log`]).
    pub fn spawn(mut self) -> ServeProcess {
        let mut child = self
            .command
            .env("RUST_LOG", self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stderr = child.stderr.take().unwrap();
        let shared = Arc::new(Lines::default());
        let lines = Arc::clone(&shared);
        let echo = self.echo;
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("server: {line}");
                }
                lines.state.lock().unwrap().0.push(line);
                lines.changed.notify_all();
            }
            lines.state.lock().unwrap().1 = true;
            lines.changed.notify_all();
        });
        ServeProcess {
            child,
            lines: shared,
            reader: Some(reader),
        }
    }
}

/// What a server wrote to stderr so far, and whether it closed it.
#[derive(Debug, Default)]
struct Lines {
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// A running `compliance-guard serve`; killed when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    lines: Arc<Lines>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// The first line of stderr, from its start, that `find` takes, once it
    /// is written. Panics, with the log, if stderr closes first (the server
    /// exited) or nothing is found within a minute.
    pub fn find_line<T>(&self, find: impl Fn(&str) -> Option<T>) -> T {
        let limit = Instant::now() + LIMIT;
        let mut state = self.lines.state.lock().unwrap();
        let mut seen = 0;
        loop {
            if let Some(found) = state.0[seen..].iter().find_map(|l| find(l)) {
                return found;
            }
            seen = state.0.len();
            assert!(!state.1, "the server closed stderr: {:#?}", state.0);
            let now = Instant::now();
            assert!(now < limit, "not found in a minute: {:#?}", state.0);
            state = self
                .lines
                .changed
                .wait_timeout(state, limit - now)
                .unwrap()
                .0;
        }
    }

    /// The rest of the first line of stderr that starts with `prefix`.
    pub fn line_after(&self, prefix: &str) -> String {
        self.find_line(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    /// Where it serves gRPC: the plain line `compliance-guard listening on
    /// ADDR; ...` (text logs only).
    pub fn addr(&self) -> SocketAddr {
        let rest = self.line_after("compliance-guard listening on ");
        rest.split(';').next().unwrap().parse().unwrap()
    }

    /// Where it serves metrics (`--metrics-listen`, text logs only).
    pub fn metrics_addr(&self) -> SocketAddr {
        let rest = self.line_after("compliance-guard metrics on http://");
        rest.trim_end_matches("/metrics").parse().unwrap()
    }

    /// Where it serves media links (`--media-listen`, text logs only).
    pub fn media_addr(&self) -> SocketAddr {
        let rest = self.line_after("compliance-guard media links on http://");
        rest.trim_end_matches("/media/").parse().unwrap()
    }

    /// Waits until the server at `addr` (its gRPC address) answers health
    /// SERVING; panics, with the log, if stderr closes first (the server
    /// exited) or after a minute.
    pub async fn wait_serving(&self, addr: SocketAddr) {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::health_client::HealthClient;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let mut health = HealthClient::new(channel);
        let limit = tokio::time::Instant::now() + LIMIT;
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|r| r.get_ref().status);
            if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
                return;
            }
            assert!(
                !self.lines.state.lock().unwrap().1,
                "the server exited before SERVING: {:#?}",
                self.log()
            );
            assert!(
                tokio::time::Instant::now() < limit,
                "not SERVING within {LIMIT:?} ({status:?}): {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every line of stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.state.lock().unwrap().0.clone()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) with `kill`.
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits for the reader to see stderr close, and returns every line.
    fn finish(mut self) -> Vec<String> {
        self.reader.take().unwrap().join().unwrap();
        self.log()
    }

    /// Sends SIGTERM, waits for the exit (polling, so that this runtime
    /// keeps serving the client side of connections while the server
    /// drains them), asserts that it exited 0, and returns the whole log.
    pub async fn terminate(mut self) -> Vec<String> {
        let exit = self.exit_after_term().await;
        assert!(exit.success(), "after SIGTERM: {exit:?}: {:#?}", self.log());
        self.finish()
    }

    /// Sends SIGTERM and waits for the exit, polling.
    async fn exit_after_term(&mut self) -> ExitStatus {
        self.signal("TERM");
        let limit = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(
                tokio::time::Instant::now() < limit,
                "the server did not exit within {LIMIT:?} of SIGTERM: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit, as [`ServeProcess::terminate`]
    /// does, but asserts that the process aborted on the way out (a
    /// `COMPLIANCE_GUARD_TEST_ABORT_AT` step of the clean stop); returns
    /// the whole log.
    pub async fn terminate_aborting(mut self) -> Vec<String> {
        use std::os::unix::process::ExitStatusExt;
        let exit = self.exit_after_term().await;
        assert_eq!(exit.signal(), Some(6), "{exit:?}: {:#?}", self.log());
        self.finish()
    }

    /// Sends SIGKILL, waits for the process to end, asserts that the signal
    /// ended it, and returns the whole log.
    pub fn kill_9(mut self) -> Vec<String> {
        use std::os::unix::process::ExitStatusExt;
        self.signal("KILL");
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
        self.finish()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET /metrics over raw HTTP/1.1: the body only.
pub fn scrape(addr: SocketAddr) -> String {
    use std::io::Read;
    let mut response = String::new();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// One sample of a Prometheus text exposition: the value of the series
/// `name` whose labels include every pair of `labels` (in any order).
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if series_name != name {
            return None;
        }
        let have: Vec<(&str, &str)> = rest
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| {
                let (k, v) = kv.split_once("=\"")?;
                Some((k, v.trim_end_matches('"')))
            })
            .collect();
        labels
            .iter()
            .all(|l| have.contains(l))
            .then(|| value.parse().ok())
            .flatten()
    })
}
