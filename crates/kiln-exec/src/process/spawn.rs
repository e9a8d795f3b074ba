//! Checking a step's command before spawning it, so that the common
//! mistakes (a program not in the step's `PATH`, a missing working
//! directory) come back as clear [`StepExit::SpawnFailed`] messages instead
//! of a bare "No such file or directory".
//!
//! [`StepExit::SpawnFailed`]: crate::port::StepExit::SpawnFailed

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::port::StepSpec;

/// Why a step's command could not be spawned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("the step has an empty command")]
    EmptyCommand,
    #[error(transparent)]
    Cwd(#[from] CwdError),
    #[error(transparent)]
    Program(#[from] ProgramError),
}

/// Why a step's working directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CwdError {
    #[error("working directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("working directory {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("working directory {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a step's program could not be found, as a shell would say it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProgramError {
    #[error("the step's program name is empty")]
    EmptyName,
    #[error("{0}: permission denied (not executable)")]
    PathNotExecutable(String),
    #[error("{0}: no such file")]
    PathMissing(String),
    #[error("{0}: command not found (the step's environment has no PATH)")]
    NoPath(String),
    #[error("{program}: found {} in PATH but it is not executable", .found.display())]
    FoundNotExecutable { program: String, found: PathBuf },
    #[error("{program}: command not found in PATH ({path})")]
    NotFound { program: String, path: String },
}

/// Builds the command for `step`: its program resolved against the `PATH` of
/// the step's own environment, exactly that environment, its working
/// directory, stdin from `/dev/null`, stdout and stderr piped, and a new
/// process group led by the step's process.
pub(crate) async fn command_for(step: &StepSpec) -> Result<Command, SpawnError> {
    let Some((program, args)) = step.argv.split_first() else {
        return Err(SpawnError::EmptyCommand);
    };
    check_cwd(&step.cwd).await?;
    let resolved = resolve_program(program, &step.env, &step.cwd).await?;
    let mut command = Command::new(resolved);
    command
        .arg0(program)
        .args(args)
        .env_clear()
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&step.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // The job handle owns the group's lifetime (finish / Drop), not the
        // `Child` value.
        .kill_on_drop(false);
    Ok(command)
}

async fn check_cwd(cwd: &Path) -> Result<(), CwdError> {
    check_dir(cwd)
}

/// Whether `cwd` is a directory a step can run in (also used by the
/// container executor for the mounted workspace).
pub(crate) fn check_dir(cwd: &Path) -> Result<(), CwdError> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(CwdError::NotADirectory(cwd.to_path_buf())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(CwdError::Missing(cwd.to_path_buf()))
        }
        Err(source) => Err(CwdError::Unreadable {
            path: cwd.to_path_buf(),
            source,
        }),
    }
}

/// The value of `PATH` in a step's environment; as with `execve`, a later
/// duplicate wins.
fn path_var(env: &[(String, String)]) -> Option<&str> {
    env.iter()
        .rev()
        .find(|(key, _)| key == "PATH")
        .map(|(_, value)| value.as_str())
}

/// Plain `stat` calls: microseconds each, cheaper than a round trip to
/// the blocking pool per `PATH` entry.
///
/// Finds `program` as a shell would: a name with a `/` is a path (relative to
/// the step's working directory); a bare name is looked up in the `PATH` of
/// the step's environment, never in kiln's own.
async fn resolve_program(
    program: &str,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<PathBuf, ProgramError> {
    if program.is_empty() {
        return Err(ProgramError::EmptyName);
    }
    if program.contains('/') {
        let path = cwd.join(program);
        return match executable(&path).await {
            Candidate::Executable => Ok(path),
            Candidate::NotExecutable => Err(ProgramError::PathNotExecutable(program.to_owned())),
            Candidate::Missing => Err(ProgramError::PathMissing(program.to_owned())),
        };
    }
    let Some(path_value) = path_var(env) else {
        return Err(ProgramError::NoPath(program.to_owned()));
    };
    let mut not_executable = None;
    for dir in path_value.split(':') {
        // An empty PATH entry means the current directory.
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let candidate = dir.join(program);
        match executable(&candidate).await {
            Candidate::Executable => return Ok(candidate),
            Candidate::NotExecutable => {
                not_executable.get_or_insert(candidate);
            }
            Candidate::Missing => {}
        }
    }
    match not_executable {
        Some(found) => Err(ProgramError::FoundNotExecutable {
            program: program.to_owned(),
            found,
        }),
        None => Err(ProgramError::NotFound {
            program: program.to_owned(),
            path: path_value.to_owned(),
        }),
    }
}

enum Candidate {
    Executable,
    NotExecutable,
    Missing,
}

async fn executable(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Candidate::Executable
        }
        Ok(meta) if meta.is_file() => Candidate::NotExecutable,
        Ok(_) | Err(_) => Candidate::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_last_path_wins() {
        let env = env(&[("PATH", "/a"), ("X", "1"), ("PATH", "/b")]);
        assert_eq!(path_var(&env), Some("/b"));
    }

    #[tokio::test]
    async fn a_program_is_looked_up_only_in_the_step_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_program("sh", &env(&[("PATH", "/nonexistent")]), dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "sh: command not found in PATH (/nonexistent)");
        let err = resolve_program("sh", &env(&[]), dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no PATH"), "{err}");
    }

    #[tokio::test]
    async fn a_file_without_execute_bit_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), "#!/bin/sh\n").unwrap();
        let path = dir.path().display().to_string();
        let err = resolve_program("tool", &env(&[("PATH", &path)]), dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not executable"), "{err}");
    }
}
