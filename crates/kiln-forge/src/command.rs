//! Comment commands (stub).
