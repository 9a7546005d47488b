//! The one integration-test binary (one link instead of one per file).
//!
//! The modules are grouped by the interface they drive:
//!
//! - [`api`]: the real gRPC server, in this process, with real tonic
//!   clients (`tests/api/`);
//! - [`library`]: the library API without a server: the model, the index,
//!   the engine and the guard (`tests/library/`);
//! - [`ops`]: what an operator runs: the command line as a subprocess,
//!   backup and import, durability across crashes and restarts, live
//!   reload, and the soak test (`tests/ops/`).
//!
//! The rest are kept at the top: the documents (and the jurisdictions
//! page against the vocabulary and the rules), the rule files, the
//! scenarios, the golden and compatibility corpora, recovery, the races
//! and the access table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod library;
mod ops;
mod support;

mod auth;
mod compat;
mod docs;
mod golden;
mod jurisdictions;
mod races;
mod recovery;
mod rules_files;
mod scenarios;
