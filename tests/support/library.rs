//! The guard opened on a data directory in this process, as a server
//! opens it, for tests of the library and of its journal.

use std::path::Path;
use std::time::Duration;

use compliance_guard::guard::Guard;
use compliance_guard::index::IndexConfig;
use compliance_guard::journal::{Durability, JournalError, Recovered};

/// How many times an open (of the guard, or a server's start) on a data
/// directory this process just closed is tried again when it is refused
/// as locked.
///
/// The `LOCK` file's descriptor is close-on-exec, but while another test
/// in this process spawns a child, the child holds a copy of every
/// descriptor between its fork and its exec; a lock released here in that
/// window stays held until the exec. A server (one per process) never
/// meets this; tests that close and reopen a directory in one process do.
pub const LOCK_RETRIES: usize = 500;

/// Opens a data directory once, as a server would (`Sync`).
pub fn open_once(dir: &Path, compact_after: u64) -> Result<(Guard, Recovered), JournalError> {
    Guard::open(
        IndexConfig::default(),
        dir,
        Durability::Sync,
        compact_after,
        |_| {},
    )
}

/// Opens a data directory that this process may have closed just before
/// (see [`LOCK_RETRIES`]).
pub fn open_with(dir: &Path, compact_after: u64) -> Result<(Guard, Recovered), JournalError> {
    for _ in 0..LOCK_RETRIES {
        match open_once(dir, compact_after) {
            Err(JournalError::Locked(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => return other,
        }
    }
    open_once(dir, compact_after)
}
