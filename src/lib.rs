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
//! Layers point down: a module imports only modules in the layers below it
//! (and its own layer's earlier ones), never above, so there is no import
//! circle.
//!
//! **The domain** (pure: no protobuf, no tokio, `now` passed in):
//! - [`model`]: the upstream Interactions API's record, its vocabularies,
//!   ids and validation rules; a text or chat conversation ([`model::Convo`]).
//! - [`problem`]: [`problem::FieldProblem`], the one field-error type every
//!   layer reports.
//! - [`jurisdiction`]: the jurisdiction codes (`US`, `US-MA`, `US-NY-NYC`)
//!   and the time zones each spans.
//! - [`location`]: locations read from the contact itself (a number's area
//!   code, a postal code) from datasets committed under `data/location/`,
//!   and why each zone and jurisdiction is weighed; they only ever add.
//! - [`restrictions`]: what the borrower has said (cease, opt-outs,
//!   consents, designated times and places, representation) and
//!   do-not-interact periods, per borrower or per debt, with the plain
//!   English sentence of what each does.
//! - [`rules`]: rule files, from their raw YAML form to a checked
//!   [`rules::RuleSet`], what counts ([`rules::counting`]), and which
//!   rules bind where ([`rules::listing`]).
//! - [`index`]: the per-borrower counting index, the person registry
//!   (aliases) and the debt registry; every write is planned (`plan_*`)
//!   before it is stored; `chunks`, the interactions' slots in chunks,
//!   each given back once the horizon has emptied it; `checkpoint`, the
//!   whole index written by number at a clean stop and read back by the
//!   next start.
//! - [`engine`]: the pure decide function: history, constraints, the
//!   next-allowed search, violations.
//! - [`request`]: a Check as asked ([`request::CheckInput`], the one shape
//!   of a Check below the API), who asks, the answer, and the one reading
//!   of a Check into an engine proposal.
//!
//! **The contract**:
//! - [`pb`]: the code generated from `proto/complianceguard/v1` and the
//!   journal's records.
//! - [`wire`]: protobuf messages and domain values, both ways.
//!
//! **State and storage**:
//! - `hooks`: the test hooks of the storage layers (a named step where the
//!   real binary aborts, holds, or fails a journal write), read from the
//!   environment; unset, they do nothing.
//! - [`journal`]: the append-only log (frame bytes, files and generations,
//!   recovery, the group-commit writer).
//! - [`ledger`]: the state behind the guard's lock and the one interpreter
//!   of the journal: a [`ledger::Change`] and its record, both ways, and
//!   [`ledger::Ledger::apply`], used by live writes, recovery and what-if.
//! - [`store`]: the journal materialized in SQLite with the position it
//!   reaches, so that the journal is cut short and a start reads state;
//!   [`store::Follower`] applies the journal to it while serving (its
//!   `fold.rs` folds SQLite's log on a thread of its own);
//!   [`store::read_history`] reads a data directory's whole history.
//! - [`decisions`]: the decision log (every answered Check as a JSON line,
//!   off the hot path).
//! - [`cluster`]: the link to a NATS JetStream stream, a cluster's log of
//!   record in place of the journal: the stream made and checked, bucketed
//!   subjects, a publish conditional on each bucket's last sequence (an
//!   atomic batch over several), node numbers, the leader's last sequence
//!   (with `rounds`, shared by readers waiting at once), the stream's
//!   messages in order, `peers`, the nodes' rules versions, and `objects`,
//!   the audio's object store and the shared link key.
//!
//! **Operations**:
//! - [`guard`]: rules and ledger together; one file per family of
//!   operations, each atomic, every write planned, journaled, then applied;
//!   `cluster.rs` the same guard as a node of a cluster (writes published,
//!   the stream applied, the read barrier); `checkpoint.rs`, the index
//!   checkpoint's file (written at a clean stop and by a start that
//!   rebuilt, read by the next start at the store's position, or behind it
//!   with the journal after it kept and replayed, after a crash);
//!   `rebase.rs`, the thread that builds the checkpoint again from the
//!   store while serving, once the journal after it filled a generation;
//!   `os.rs`, the two calls into the C library (the build's idle
//!   scheduling class, and freed memory given back after a build or a
//!   start).
//! - [`media`]: call recordings and voicemails: files in the data dir,
//!   uploads and downloads, signed links and their HTTP listener, the
//!   retention sweep; `shared.rs`, a cluster node's files as a checked
//!   cache of the cluster's object store.
//!
//! **Serving**:
//! - [`api`]: the gRPC services; the only module that builds a
//!   `tonic::Status`. `api/mod.rs` holds the service, the timing of every
//!   RPC and the two dispatch tables; `status.rs` maps errors to statuses;
//!   `codec.rs` decodes messages; `auth.rs` is all of authentication (the
//!   keys file, the environment or a generated key, the interceptor); then
//!   one file per area: `check.rs` (with the decision log and metrics),
//!   `restrictions.rs`, `people.rs`, `interactions.rs`, `convos.rs` and
//!   `media.rs`.
//! - [`reload`]: live reload of the rules (watch and SIGHUP, check, swap
//!   whole or refuse).
//! - [`server`]: health, reflection, TLS, start-up and graceful shutdown;
//!   `open.rs` opens a data directory or a cluster node, `media.rs` the
//!   audio store, links and sweeps.
//!
//! **Operator commands** (each a subcommand of the binary, `src/main.rs`):
//! - `serve`: [`server`].
//! - `backup`, `restore`, `import`: [`ops`] (`import.rs` the import;
//!   `published.rs` a backup restored into a cluster).
//! - `rules check`: [`rules`]; `rules list`: [`rules::listing`];
//!   `rules test`: [`ruletest`] (rule tests as
//!   stories, one format and one driver for the officers' tests and the
//!   scenarios); `rules replay` (what-if): [`whatif`].
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
pub mod cluster;
pub mod decisions;
pub mod engine;
pub mod guard;
mod hooks;
pub mod index;
pub mod journal;
pub mod jurisdiction;
pub mod ledger;
pub mod location;
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
pub mod store;
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
