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

/// Builds the command for `step`: its program resolved against the `PATH` of
/// the step's own environment, exactly that environment, its working
/// directory, stdin from `/dev/null`, stdout and stderr piped, and a new
/// process group led by the step's process.
pub(crate) async fn command_for(step: &StepSpec) -> Result<Command, String> {
    let Some((program, args)) = step.argv.split_first() else {
        return Err("the step has an empty command".to_owned());
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

async fn check_cwd(cwd: &Path) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "working directory {} is not a directory",
            cwd.display()
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "working directory {} does not exist",
            cwd.display()
        )),
        Err(err) => Err(format!("working directory {}: {err}", cwd.display())),
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
) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the step's program name is empty".to_owned());
    }
    if program.contains('/') {
        let path = cwd.join(program);
        return match executable(&path).await {
            Candidate::Executable => Ok(path),
            Candidate::NotExecutable => {
                Err(format!("{program}: permission denied (not executable)"))
            }
            Candidate::Missing => Err(format!("{program}: no such file")),
        };
    }
    let Some(path_value) = path_var(env) else {
        return Err(format!(
            "{program}: command not found (the step's environment has no PATH)"
        ));
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
        Some(found) => Err(format!(
            "{program}: found {} in PATH but it is not executable",
            found.display()
        )),
        None => Err(format!(
            "{program}: command not found in PATH ({path_value})"
        )),
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
            .unwrap_err();
        assert_eq!(err, "sh: command not found in PATH (/nonexistent)");
        let err = resolve_program("sh", &env(&[]), dir.path())
            .await
            .unwrap_err();
        assert!(err.contains("has no PATH"), "{err}");
    }

    #[tokio::test]
    async fn a_file_without_execute_bit_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), "#!/bin/sh\n").unwrap();
        let path = dir.path().display().to_string();
        let err = resolve_program("tool", &env(&[("PATH", &path)]), dir.path())
            .await
            .unwrap_err();
        assert!(err.contains("not executable"), "{err}");
    }
}
