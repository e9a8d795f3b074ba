//! YAML to the workflow IR, with diagnostics a person can act on.
//!
//! One pass over the file collects every problem (never only the first): an
//! unknown key names the closest known one, a wrong type says what was
//! expected and what was found, an expression error points at the exact
//! character even inside a quoted or block scalar, and every `uses:` that
//! kiln does not implement is an error at that line. The workflow is
//! produced whenever the YAML itself parses to a mapping, even with errors,
//! so tools can still show the rest; callers must not run a workflow whose
//! [`Loaded::has_errors`] is true.
//!
//! Layout: [`source`] maps value offsets to file positions, [`node`] reads
//! YAML nodes, [`cx`] holds the diagnostics and typed readers; `workflow`,
//! `triggers`, `job`, `step`, `strategy`, `runtime`, `deploy` and `queue`
//! (`priority`, `retry`) follow the file's sections, and `graph` checks `needs`.

mod cx;
mod deploy;
mod exprs;
mod graph;
mod job;
mod node;
mod queue;
mod runtime;
mod source;
mod step;
mod strategy;
mod suggest;
mod triggers;
mod workflow;
mod yaml;

use crate::diag::{Diagnostic, Severity};
use kiln_model::workflow::Workflow;

/// The result of loading one workflow file.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// `None` only when the text is not YAML or its top level is not a mapping.
    pub workflow: Option<Workflow>,
    /// In file order of discovery; errors and warnings mixed.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when some diagnostic is an error: the workflow must not run.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Load the workflow file `file` (its path, used in diagnostics) with contents `src`.
pub fn load(file: &str, src: &str) -> Loaded {
    let mut cx = cx::Cx::new(file, src);
    let workflow = yaml::parse(&mut cx, src).map(|root| workflow::workflow(&mut cx, &root));
    let mut diagnostics = cx.diags;
    diagnostics.sort_by_key(|d| d.loc);
    Loaded {
        workflow,
        diagnostics,
    }
}
