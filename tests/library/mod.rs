//! The library API in this process, without a server: the model, the
//! index, the engine, and the guard with its journal.

mod engine_api;
mod follow;
mod index;
mod location;
mod model;
mod on_disk;
mod regressions;
mod regressions_audit;
mod rule_language;
