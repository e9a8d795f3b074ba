//! `kiln validate`: check workflow files and explain every problem.

use crate::cli::ValidateArgs;
use crate::error::CliError;
use crate::exit;
use crate::repo::Repo;
use crate::workflows::{discover, load_files, render_all};
use kiln_pipeline::diag::{Diagnostic, Severity};
use std::io::Write;
use std::path::PathBuf;

pub fn run(args: &ValidateArgs, color: bool) -> Result<i32, CliError> {
    let cwd = std::env::current_dir()?;
    let root = Repo::discover(&cwd).ok().map(|r| r.root);
    let paths = if args.paths.is_empty() {
        let base = root.clone().unwrap_or_else(|| cwd.clone());
        vec![base.join(".kiln/workflows")]
    } else {
        args.paths.clone()
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for p in &paths {
        if p.is_dir() {
            let found = discover(p)?;
            if found.is_empty() {
                return Err(CliError::Usage(format!(
                    "no *.yml or *.yaml workflow files in {}",
                    p.display()
                )));
            }
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(CliError::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    let loaded = load_files(&files, root.as_deref())?;
    let errors = loaded
        .iter()
        .flat_map(|f| &f.loaded.diagnostics)
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded
        .iter()
        .flat_map(|f| &f.loaded.diagnostics)
        .filter(|d| d.severity == Severity::Warning)
        .count();

    let mut out = std::io::stdout().lock();
    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            valid: bool,
            files: Vec<&'a str>,
            diagnostics: Vec<&'a Diagnostic>,
        }
        let report = Report {
            valid: errors == 0,
            files: loaded.iter().map(|f| f.display.as_str()).collect(),
            diagnostics: loaded.iter().flat_map(|f| &f.loaded.diagnostics).collect(),
        };
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        let text = render_all(&loaded, color);
        if !text.is_empty() {
            write!(out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
        let n = loaded.len();
        let files_word = if n == 1 { "file" } else { "files" };
        if errors == 0 {
            let w = if warnings > 0 {
                format!(" ({warnings} warning{})", plural(warnings))
            } else {
                String::new()
            };
            eprintln!("{n} workflow {files_word} valid{w}");
        } else {
            eprintln!(
                "{errors} error{} in {n} workflow {files_word}{}",
                plural(errors),
                if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(if errors == 0 {
        exit::SUCCESS
    } else {
        exit::INVALID
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
