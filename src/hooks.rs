//! The test hooks of the storage layers, in one place: each is read from
//! an environment variable a test sets on the real binary, to stop, hold
//! or fail it at a named step as `kill -9`, a slow build or a full disk
//! would. Unset, none does anything.

/// `COMPLIANCE_GUARD_TEST_ABORT_AT=<step>`: the process aborts at `step`
/// (a start, a stop or a migration part-way), as `kill -9` would stop it
/// there.
pub(crate) fn abort_here(step: &str) {
    if std::env::var_os("COMPLIANCE_GUARD_TEST_ABORT_AT").is_some_and(|s| s == step) {
        std::process::abort();
    }
}

/// `COMPLIANCE_GUARD_TEST_HOLD_AT=<step>`: the thread waits at `step`
/// until `keep_going` turns false (a build of the index checkpoint held
/// until it is abandoned, or the server stops).
pub(crate) fn hold_here(step: &str, keep_going: &dyn Fn() -> bool) {
    if std::env::var_os("COMPLIANCE_GUARD_TEST_HOLD_AT").is_some_and(|s| s == step) {
        while keep_going() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The variable of [`fail_write_with`].
pub(crate) const FAIL_WRITE_WITH: &str = "COMPLIANCE_GUARD_TEST_FAIL_WRITE_WITH";

/// `COMPLIANCE_GUARD_TEST_FAIL_WRITE_WITH=<bytes>`: a journal batch that
/// holds these bytes fails to be written, as a full disk or a failing
/// device would fail it (and the file is left as it was). Read once, when
/// the journal opens.
pub(crate) fn fail_write_with() -> Option<Vec<u8>> {
    std::env::var_os(FAIL_WRITE_WITH)
        .map(|m| m.into_encoded_bytes())
        .filter(|m| !m.is_empty())
}
