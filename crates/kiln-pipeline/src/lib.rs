//! Workflow files to kiln's pipeline IR.
//!
//! Pure: strings in, IR and diagnostics out. File-system access (finding
//! workflow files, `hashFiles`) belongs to the callers, which pass contents
//! and callbacks in. Modules:
//! - [`expr`]: the GitHub Actions expression language (parse, evaluate);
//! - [`load`]: YAML to [`kiln_model::workflow::Workflow`] with diagnostics;
//! - [`inputs`]: typed `workflow_dispatch` inputs;
//! - [`diag`]: diagnostics and their rustc-style rendering;
//! - [`matrix`]: `strategy.matrix` expansion;
//! - [`plan`]: a job's `if:`, matrix and strategy evaluated into instances.

pub mod contexts;
pub mod diag;
pub mod expr;
pub mod filters;
pub mod inputs;
pub mod load;
pub mod matrix;
pub mod plan;
