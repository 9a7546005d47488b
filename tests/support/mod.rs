//! What the test modules share: the constants ([`consts`]), the guard
//! opened on a data directory ([`library`]), the one in-process server
//! harness ([`server`]) and the one `compliance-guard` subprocess
//! ([`process`]).

pub(crate) mod consts;
pub(crate) mod library;
pub(crate) mod nats;
pub(crate) mod process;
pub(crate) mod server;
