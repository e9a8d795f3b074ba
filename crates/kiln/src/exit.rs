//! Exit codes: the one table. Documented in `docs/cli.md`.

/// Everything succeeded.
pub const SUCCESS: i32 = 0;
/// A job failed (or `kiln validate` found nothing wrong but a run failed).
pub const FAILURE: i32 = 1;
/// Invalid workflow, bad usage, or an environment kiln cannot work in.
pub const INVALID: i32 = 2;
/// The client commands could not use the server: no server configured,
/// not reachable, not answering like kiln (5xx included), or it refused the
/// token (401, 403).
pub const SERVER: i32 = 3;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;
