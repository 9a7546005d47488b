//! The gRPC API end to end: the real server on 127.0.0.1:0, in this
//! process ([`crate::support::server`]), and real tonic clients.

mod cases;
mod check;
mod company;
mod convo;
mod fuzz;
pub(crate) mod input;
pub(crate) mod interactions;
pub(crate) mod media;
mod restrictions;
mod searchable;
pub(crate) mod server;
