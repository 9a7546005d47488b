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

/// Opens a data directory once, as a server would (`Sync`), but with the
/// store not following the journal while serving
/// ([`Guard::open_as`] with `Follow::Off`): the journal holds what the test wrote
/// until a start finds it longer than `compact_after` records.
pub fn open_once(dir: &Path, compact_after: u64) -> Result<(Guard, Recovered), JournalError> {
    Guard::open_as(
        IndexConfig::default(),
        dir,
        Durability::Sync,
        compact_after,
        compliance_guard::guard::Follow::Off,
        |_| {},
    )
}

/// Opens a data directory as a server does, the store following the
/// journal while serving ([`Guard::open`]).
pub fn open_following(dir: &Path, compact_after: u64) -> Result<(Guard, Recovered), JournalError> {
    for _ in 0..LOCK_RETRIES {
        match Guard::open(
            IndexConfig::default(),
            dir,
            Durability::Sync,
            compact_after,
            |_| {},
        ) {
            Err(JournalError::Locked(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => return other,
        }
    }
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

/// A guard whose answered Checks are written to the decision log, as the
/// API layer writes them: for the tests of what-if and of the decision log
/// that drive the guard itself.
#[derive(Debug)]
pub struct Logged {
    /// The guard.
    pub g: Guard,
    /// Its decision log.
    pub log: compliance_guard::decisions::DecisionLog,
}

impl std::ops::Deref for Logged {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.g
    }
}

impl Logged {
    /// [`Guard::check`], then the answer logged as decided at `now`.
    pub async fn check(
        &self,
        input: &compliance_guard::request::CheckInput,
        caller: &compliance_guard::request::Caller,
        now: chrono::DateTime<chrono::Utc>,
        deadline: Option<std::time::Instant>,
    ) -> Result<compliance_guard::request::CheckOutcome, compliance_guard::guard::GuardError> {
        let out = self.g.check(input, caller, now, deadline).await?;
        self.log.record(input, caller, &out, now);
        Ok(out)
    }
}
