//! Diagnostics: what is wrong, where (file:line:col), and a hint.

use kiln_model::workflow::Loc;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub loc: Loc,
    /// Length of the underlined text in characters (at least 1).
    pub len: u32,
    /// What is wrong, lower case, no trailing period.
    pub message: String,
    /// An optional hint ("did you mean `runs-on`?").
    pub help: Option<String>,
}
