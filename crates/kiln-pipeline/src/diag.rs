//! Diagnostics: what is wrong, where (file:line:col), and a hint; and their
//! rustc-style rendering, so a workflow error reads like a compiler error:
//!
//! ```text
//! error: unknown key `runs_on` in job `build`
//!  --> .kiln/workflows/ci.yml:4:5
//!   |
//! 4 |     runs_on: ubuntu-latest
//!   |     ^^^^^^^
//!   |
//!   = help: did you mean `runs-on`?
//! ```
//!
//! Rendering is pure: the caller passes a way to get each file's text.

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
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

/// Render diagnostics in rustc's style, separated by blank lines.
/// `source_of` gives a file's text by the name in [`Diagnostic::file`]; when
/// it has none, only the location is printed.
pub fn render<'s>(
    diagnostics: &[Diagnostic],
    source_of: impl Fn(&str) -> Option<&'s str>,
    color: bool,
) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    diagnostics
        .iter()
        .map(|d| {
            let text = source_of(&d.file);
            renderer.render(&[group(d, text)])
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn group<'a>(d: &'a Diagnostic, text: Option<&'a str>) -> Group<'a> {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let line = text.and_then(|t| t.split('\n').nth((d.loc.line as usize).saturating_sub(1)));
    let title = level.primary_title(d.message.as_str());
    let mut group = match line {
        Some(line) => {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let start = byte_of_col(line, d.loc.col);
            let end = byte_of_col(line, d.loc.col + d.len.max(1)).max(start);
            title.element(
                Snippet::source(line)
                    .line_start(d.loc.line as usize)
                    .path(d.file.as_str())
                    .annotation(AnnotationKind::Primary.span(start..end)),
            )
        }
        None => title.element(
            Origin::path(d.file.as_str())
                .line(d.loc.line as usize)
                .char_column(d.loc.col as usize),
        ),
    };
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    group
}

/// The byte offset of 1-based character column `col`, clamped to the line.
fn byte_of_col(line: &str, col: u32) -> usize {
    line.char_indices()
        .nth((col as usize).saturating_sub(1))
        .map_or(line.len(), |(i, _)| i)
}

/// A closing line such as `error: 3 errors and 1 warning in .kiln/workflows/ci.yml`;
/// `None` when there is nothing to report.
pub fn summary(diagnostics: &[Diagnostic], file: &str) -> Option<String> {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    match (errors, warnings) {
        (0, 0) => None,
        (0, w) => Some(format!("warning: {} in {file}", plural(w, "warning"))),
        (e, 0) => Some(format!("error: {} in {file}", plural(e, "error"))),
        (e, w) => Some(format!(
            "error: {} and {} in {file}",
            plural(e, "error"),
            plural(w, "warning")
        )),
    }
}
