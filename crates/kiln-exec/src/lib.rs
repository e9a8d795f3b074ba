//! Running jobs.
//!
//! - [`port`]: the executor port, the one interface every backend
//!   (processes, containers) implements;
//! - [`process`]: the process executor (each step a process group);
//! - [`container`]: the container executor (each job a container, through
//!   the Docker Engine API; Docker or Podman);
//! - [`select`]: which executor a job gets;
//! - [`config`]: what operators configure about executors;
//! - [`runner`]: the job runner, shared by `kiln exec` and agents.

pub mod config;
pub mod container;
pub mod port;
pub mod process;
pub mod runner;
pub mod select;
