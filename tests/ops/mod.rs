//! What an operator runs: the `compliance-guard` command as a subprocess
//! ([`crate::support::process`]), backup, restore and import, durability
//! across crashes and restarts, live reload of the rules, and the soak
//! test.

pub(crate) mod backup_import;
pub(crate) mod cli;
mod cluster;
pub(crate) mod durability;
mod reload;
mod soak;
