//! The one integration-test binary (one link instead of one per file).
//! Each module drives a public interface: the library API, or the command
//! line as a subprocess.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod backup_import;
mod cli;
mod compat;
mod docs;
mod durability;
mod engine_api;
mod golden;
mod grpc;
mod grpc_cases;
mod grpc_check;
mod grpc_company;
mod grpc_convo;
mod grpc_fuzz;
mod grpc_input;
mod grpc_interactions;
mod grpc_media;
mod grpc_restrictions;
mod grpc_searchable;
mod index;
mod model;
mod races;
mod recovery;
mod regressions;
mod regressions_audit;
mod reload;
mod rules_files;
mod scenarios;
mod soak;
