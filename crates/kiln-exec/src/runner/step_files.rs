//! The files behind a step's file commands (`$KILN_OUTPUT`, `$KILN_ENV`,
//! `$KILN_PATH`, `$KILN_STEP_SUMMARY`): where they are, and what a step
//! wrote in them.

use std::path::{Path, PathBuf};

use super::files::{self, FileCommandError};

/// The per-step files behind `$KILN_OUTPUT`, `$KILN_ENV`, `$KILN_PATH` and
/// `$KILN_STEP_SUMMARY`.
pub(super) struct StepFiles {
    pub(super) output: PathBuf,
    pub(super) env: PathBuf,
    pub(super) path: PathBuf,
    pub(super) summary: PathBuf,
}

impl StepFiles {
    pub(super) fn new(temp: &Path, number: u32) -> Self {
        let f = |kind: &str| temp.join(format!("step-{number}.{kind}"));
        StepFiles {
            output: f("output"),
            env: f("env"),
            path: f("path"),
            summary: f("summary.md"),
        }
    }

    /// Nothing to create: `>>` creates a file on first write, and a file
    /// never written reads as empty. Only stale files of an earlier use of
    /// the same temp directory are removed.
    pub(super) fn create(&self) -> std::io::Result<()> {
        for p in [&self.output, &self.env, &self.path, &self.summary] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn read(
        &self,
    ) -> Result<(Vec<(String, String)>, Vec<(String, String)>, Vec<String>), FileCommandError> {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let outputs = files::parse_pairs("$KILN_OUTPUT", &read(&self.output))?;
        let env = files::parse_pairs("$KILN_ENV", &read(&self.env))?;
        let paths = files::parse_paths(&read(&self.path));
        Ok((outputs, env, paths))
    }
}
