//! compliance-guard answers one question for a lender's messaging pipeline,
//! right before every send: may we contact this borrower now, on this
//! channel, about this debt?
//!
//! It answers from the borrower's history of interactions and from
//! jurisdiction rules that compliance officers write in YAML. The answer is
//! allow or block, with the id of the deciding rule, the interactions that
//! were counted, and when the send would next be allowed.
//!
//! # Layout
//!
//! - [`model`]: the upstream Interactions API's record, vocabularies, ids
//!   and validation rules.
//! - [`jurisdiction`]: the jurisdiction codes (`US`, `US-MA`, `US-NY-NYC`)
//!   and the time zones each spans.
//! - [`index`]: the in-memory per-borrower index, with the person registry
//!   (aliases) and the debt registry (which loans form one debt).
//! - [`restrictions`]: what the borrower has said (cease, opt-outs,
//!   consents, designated times and places, representation) and
//!   do-not-interact periods, per borrower or per debt.
//! - [`rules`]: rule files, from their raw YAML form to a checked
//!   [`rules::RuleSet`].
//! - [`engine`]: the pure decide function, with `now` passed in.
//! - [`ruletest`]: rule tests as stories, one format and one driver for the
//!   officers' tests (`rules/tests/*.yaml`) and the scenarios.
//! - [`journal`]: the append-only log under the index (group commit,
//!   replay, snapshots, the data-dir lock).
//! - [`media`]: call recordings and voicemails: the files in the data
//!   dir, signed time-limited links, the HTTP listener serving them, and
//!   the upload and download workflows of the API ([`media::MediaHub`]).
//! - [`ops`]: operator commands on a data directory: backup, restore,
//!   import.
//! - [`whatif`]: what-if replay of the decision log against other rules.
//! - [`wire`]: protobuf messages and domain values, both ways (shared by
//!   the API and the journal).
//! - [`reload`]: live reload of the rules (watch and SIGHUP, check, swap
//!   whole or refuse).
//! - [`decisions`]: the decision log (every answered Check as a JSON line,
//!   off the hot path).
//! - [`guard`]: rules and index together; the operations the service
//!   offers, each atomic (a reserving Check decides and records under one
//!   lock).
//! - [`api`]: the gRPC services; the only module that builds a
//!   `tonic::Status`. `api/mod.rs` holds the service, the timing of every
//!   RPC and the two dispatch tables; `status.rs` maps errors to statuses;
//!   `codec.rs` decodes messages; `auth.rs` is all of authentication (the
//!   keys file, the environment or a generated key, the interceptor); then
//!   one file per area: `check.rs` (with the decision log and metrics),
//!   `restrictions.rs`, `people.rs`, `interactions.rs`, `convos.rs` and
//!   `media.rs`.
//! - [`server`]: health, reflection, TLS, start-up and graceful shutdown.
//! - [`pb`]: the code generated from `proto/complianceguard/v1`.
//!
//! A decision in four lines:
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use compliance_guard::{engine, index::Index, model::{Channel, Direction}, rules::RuleSet};
//! let rules = RuleSet::load_dir("rules".as_ref(), &Default::default()).unwrap();
//! let index = Index::default();
//! let send = engine::Proposal::new(Channel::Voice, Direction::Outbound);
//! let decision = engine::decide(&rules, &index.view("BO-AAAA-0001").unwrap(), &send, Utc::now());
//! # let _ = (decision, Utc.timestamp_opt(0, 0));
//! ```

pub mod api;
pub mod decisions;
pub mod engine;
pub mod guard;
pub mod index;
pub mod journal;
pub mod jurisdiction;
pub mod ledger;
pub mod media;
pub mod model;
pub mod ops;
pub mod problem;
pub mod reload;
pub mod request;
pub mod restrictions;
pub mod rules;
pub mod ruletest;
pub mod server;
pub mod whatif;
pub mod wire;

/// The generated protobuf and gRPC code of `proto/complianceguard/v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub mod pb {
    /// The generated modules, nested as the protobuf packages are.
    pub mod complianceguard {
        /// `complianceguard.v1`: the gRPC contract.
        pub mod v1 {
            tonic::include_proto!("complianceguard.v1");
        }
        /// `complianceguard.journal.v1`: the journal's record format.
        pub mod journal {
            /// Version 1 of the journal's records.
            pub mod v1 {
                tonic::include_proto!("complianceguard.journal.v1");
            }
        }
    }
    pub use complianceguard::journal::v1 as journal;
    pub use complianceguard::v1::*;

    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("compliance_descriptor");
}
