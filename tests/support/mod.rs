//! What the test modules share: the constants ([`consts`]), the guard
//! opened on a data directory ([`library`]) and the one in-process server
//! harness ([`server`]).

pub(crate) mod consts;
pub(crate) mod legacy;
pub(crate) mod library;
pub(crate) mod server;
