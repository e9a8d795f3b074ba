//! Finding and loading workflow files from disk (the pipeline crate is pure;
//! this is its file-system edge).

use crate::error::CliError;
use kiln_pipeline::diag::Diagnostic;
use kiln_pipeline::load::{Loaded, load};
use std::path::{Path, PathBuf};

/// One workflow file as read from disk.
#[derive(Debug)]
pub struct WorkflowFile {
    /// The name used in diagnostics (relative to the repository root when
    /// the file is inside it).
    pub display: String,
    pub source: String,
    pub loaded: Loaded,
}

/// `*.yml` and `*.yaml` files directly in `dir`, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::Usage(format!(
            "cannot read workflow directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Read and load each file; `root` shortens names in diagnostics.
pub fn load_files(paths: &[PathBuf], root: Option<&Path>) -> Result<Vec<WorkflowFile>, CliError> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let source = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        let display = display_name(path, root);
        let loaded = load(&display, &source);
        out.push(WorkflowFile {
            display,
            source,
            loaded,
        });
    }
    Ok(out)
}

fn display_name(path: &Path, root: Option<&Path>) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(root) = root
        && let Ok(rel) = abs.strip_prefix(root)
    {
        return rel.display().to_string();
    }
    path.display().to_string()
}

/// Every diagnostic of `files`, with a source lookup for rendering.
pub fn render_all(files: &[WorkflowFile], color: bool) -> String {
    render_where(files, color, |_, _| true)
}

/// The warnings of the files `keep` names (by display name).
pub fn render_warnings(files: &[WorkflowFile], color: bool, keep: impl Fn(&str) -> bool) -> String {
    render_where(files, color, |f, d| {
        d.severity == kiln_pipeline::diag::Severity::Warning && keep(&f.display)
    })
}

fn render_where(
    files: &[WorkflowFile],
    color: bool,
    keep: impl Fn(&WorkflowFile, &Diagnostic) -> bool,
) -> String {
    let diags: Vec<Diagnostic> = files
        .iter()
        .flat_map(|f| f.loaded.diagnostics.iter().filter(|d| keep(f, d)).cloned())
        .collect();
    kiln_pipeline::diag::render(
        &diags,
        |name| {
            files
                .iter()
                .find(|f| f.display == name)
                .map(|f| f.source.as_str())
        },
        color,
    )
}
