//! The REST API, for the CLI.
