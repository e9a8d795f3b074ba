//! Running jobs.
//!
//! - [`port`]: the executor port, the one interface every backend
//!   (processes, containers) implements;
//! - [`process`]: the process executor (each step a process group).

pub mod port;
pub mod process;
