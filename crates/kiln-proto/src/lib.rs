//! kiln's wire contract.
//!
//! One crate, used by every side: `kiln exec` writes the results document
//! defined here, the server will serve the same document, and agents and
//! clients will speak the types added here. Changing a type here changes the
//! contract for all of them at once, which is the point.

pub mod results;
