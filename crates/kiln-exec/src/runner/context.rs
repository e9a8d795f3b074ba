//! The expression contexts a job sees, and their [`Context`] implementation.

use super::hash::hash_files;
use kiln_model::Value;
use kiln_pipeline::expr::{Context, StatusCheck};
use std::path::Path;

/// Contexts fixed for the whole job instance (filled by the caller).
#[derive(Clone, Debug, Default)]
pub struct BaseContexts {
    pub github: Value,
    pub inputs: Value,
    pub needs: Value,
    pub kiln: Value,
    pub secrets: Value,
    pub vars: Value,
    pub strategy: Value,
    pub matrix: Value,
    pub runner: Value,
}

/// One evaluation's view: the base plus what changes step by step.
pub struct Ctx<'a> {
    pub base: &'a BaseContexts,
    pub env: &'a Value,
    pub steps: &'a Value,
    pub job: &'a Value,
    pub status: StatusCheck,
    pub workspace: &'a Path,
}

impl Context for Ctx<'_> {
    fn context(&self, name: &str) -> Option<&Value> {
        Some(match name {
            "github" => &self.base.github,
            "inputs" => &self.base.inputs,
            "needs" => &self.base.needs,
            "kiln" => &self.base.kiln,
            "secrets" => &self.base.secrets,
            "vars" => &self.base.vars,
            "strategy" => &self.base.strategy,
            "matrix" => &self.base.matrix,
            "runner" => &self.base.runner,
            "env" => self.env,
            "steps" => self.steps,
            "job" => self.job,
            _ => return None,
        })
    }

    fn status(&self) -> StatusCheck {
        self.status
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        hash_files(self.workspace, patterns)
    }
}

/// A string field of an object context, or "".
pub fn field<'v>(v: &'v Value, key: &str) -> &'v str {
    match v.get_ci(key) {
        Some(Value::String(s)) => s,
        Some(
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_),
        )
        | None => "",
    }
}
