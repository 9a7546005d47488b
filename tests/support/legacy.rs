//! The harness's old names, for the two files that still use them:
//! `tests/races.rs` and `tests/auth.rs`, which other changes in flight
//! own. Once they call [`super::server`] directly (`checks()` for
//! `guard()`, `start_on(dir, n)` with `Options::keys` for a keys file of
//! their own, `stop().await.unwrap()`), this module goes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

pub use super::consts::PIPELINE_KEY;
pub use super::server::{TestServer, WithKey, ready_server};

/// The old name of [`super::server::Checks`].
pub type Guard = super::server::Checks;

/// `server.guard()`: the old name of [`TestServer::checks`].
pub trait GuardClient {
    /// A ComplianceGuard client with the harness's key.
    fn guard(&self) -> impl Future<Output = Guard>;
}

impl GuardClient for TestServer {
    fn guard(&self) -> impl Future<Output = Guard> {
        self.checks()
    }
}

/// A server on a directory the test keeps, whose `stop` unwraps.
#[derive(Debug)]
pub struct Restartable {
    /// Where it serves gRPC.
    pub addr: SocketAddr,
    server: TestServer,
}

impl Restartable {
    /// Stops the server gracefully; panics if it stopped with an error.
    pub async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

/// A server on `dir/data` with the keys file `keys`, `Sync`, compacting
/// past `compact_after` records, SERVING.
pub async fn start_on(dir: &Path, keys: &str, compact_after: u64) -> Restartable {
    let server = super::server::options()
        .data_dir(dir.join("data"))
        .keys(keys)
        .sync()
        .compact_after(compact_after)
        .serving()
        .await;
    Restartable {
        addr: server.addr,
        server,
    }
}
