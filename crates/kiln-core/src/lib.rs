//! kiln's decisions, free of effects.
//!
//! Every function here takes state and an event and returns commands as data;
//! nothing reads the clock, touches a file or awaits. The drivers (`kiln exec`
//! locally, the server's engine) perform the commands and feed the results
//! back as events. See `docs/design/core.md`.

pub mod dispatch;
pub mod gate;
pub mod graph;
pub mod retry;
pub mod waiting;
