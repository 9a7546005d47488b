//! The constants the test modules share: borrowers, moments, lengths of
//! time, and the API keys of the harness's keys file
//! ([`super::server::every_key`]).

/// A borrower, by our id: the one most tests are about.
pub const P: &str = "BO-AAAA-0001";
/// A second borrower.
pub const Q: &str = "BO-BBBB-0002";

/// Mon 2020-03-02 14:00 UTC (09:00 in New York): the recorded histories'
/// moment, in Unix seconds.
pub const T0: i64 = 1_583_157_600;
/// Mon 2025-12-01 15:00 UTC, 10:00 in New York: inside every
/// permitted-hours rule, in Unix seconds.
pub const MONDAY_10: i64 = 1_764_601_200;

/// A minute, in seconds.
pub const MINUTE: i64 = 60;
/// An hour, in seconds.
pub const HOUR: i64 = 3_600;
/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// The pipeline's key: no right to sensitive interactions, no company.
pub const PIPELINE_KEY: &str = "pipeline-key-0123456789abcdef0123456789";
/// The auditor's key: may read sensitive interactions.
pub const AUDITOR_KEY: &str = "auditor-key-0123456789abcdef0123456789ab";
/// A key of the company `acme`.
pub const ACME_KEY: &str = "acme-key-0123456789abcdef0123456789abcdef";
/// A key of the company `globex`.
pub const GLOBEX_KEY: &str = "globex-key-0123456789abcdef0123456789abcd";
/// An agent's key (`ann`).
pub const ANN_KEY: &str = "ann-agent-key-0123456789abcdef0123456789";
/// Another agent's key (`bob`).
pub const BOB_KEY: &str = "bob-agent-key-0123456789abcdef0123456789";
/// A third agent's key (`cat`).
pub const CAT_KEY: &str = "cat-agent-key-0123456789abcdef0123456789";
/// A key with every right (`everything`: sensitive and agent).
pub const EVERY_RIGHT_KEY: &str = "fuzz-key-0123456789abcdef0123456789abcdef";
