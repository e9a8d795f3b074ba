//! The agent protocol, for agents.
