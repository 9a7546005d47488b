//! The one integration-test binary (one link instead of one per file).
//! Each module drives a public interface: the library API, or the command
//! line as a subprocess.

mod scenarios;
