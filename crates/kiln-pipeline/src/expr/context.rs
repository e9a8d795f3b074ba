//! A [`Context`] over fixed values.
//!
//! For places that evaluate without a running job (load-time checks, matrix
//! expansion, `kiln exec` dry runs) and for tests: contexts are given up
//! front, the status is fixed, and `hashFiles` answers with a fixed hash or
//! says it is not available.

use std::collections::BTreeMap;

use kiln_model::Value;

use super::{Context, StatusCheck};

#[derive(Clone, Debug)]
pub struct StaticContext {
    contexts: BTreeMap<String, Value>,
    status: StatusCheck,
    files_hash: Option<String>,
}

impl Default for StaticContext {
    fn default() -> Self {
        StaticContext {
            contexts: BTreeMap::new(),
            status: StatusCheck::Success,
            files_hash: None,
        }
    }
}

impl StaticContext {
    /// No contexts, status success, no `hashFiles`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the context `name` (stored lower-cased).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.contexts
            .insert(name.to_ascii_lowercase(), value.into());
        self
    }

    pub fn with_status(mut self, status: StatusCheck) -> Self {
        self.status = status;
        self
    }

    /// What `hashFiles(…)` returns, whatever the patterns.
    pub fn with_files_hash(mut self, hash: impl Into<String>) -> Self {
        self.files_hash = Some(hash.into());
        self
    }
}

impl Context for StaticContext {
    fn context(&self, name: &str) -> Option<&Value> {
        self.contexts.get(name)
    }

    fn status(&self) -> StatusCheck {
        self.status
    }

    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        self.files_hash
            .clone()
            .ok_or_else(|| "hashFiles is not available here".to_owned())
    }
}
