//! Running jobs.
//!
//! - [`port`]: the executor port, the one interface every backend
//!   (processes, containers) implements;
//! - [`process`]: the process executor (each step a process group);
//! - [`runner`]: the job runner, shared by `kiln exec` and agents.

pub mod port;
pub mod process;
pub mod runner;
