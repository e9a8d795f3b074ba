//! Baselines: how fast this machine, right now, runs the processes that a
//! benchmarked kiln command runs, without kiln.
//!
//! Both baselines run `n` processes, `p` at a time, from `p` threads that
//! each spawn a process and wait for it before taking the next one: the
//! same shape as `kiln exec --parallel p` over `n` independent one-step
//! jobs, minus everything kiln does around each process.

use anyhow::{Context, Result, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a baseline spawns.
#[derive(Clone, Debug)]
pub enum Baseline {
    /// `/bin/true`, stdio to `/dev/null`: the raw cost of a process.
    True,
    /// The command kiln runs for a `run:` step with the default shell,
    /// configured as kiln's process executor configures it: the resolved
    /// `bash --noprofile --norc -eo pipefail SCRIPT`, in `cwd`, in a new
    /// process group, stdin from `/dev/null`, stdout and stderr piped and
    /// read to the end.
    BashScript {
        bash: PathBuf,
        script: PathBuf,
        cwd: PathBuf,
    },
}

impl Baseline {
    /// A bash baseline for a script containing `true`, written in `dir`;
    /// the script runs in `cwd`.
    pub fn bash_script(dir: &Path, cwd: &Path) -> Result<Baseline> {
        let script = dir.join("step-1.sh");
        std::fs::write(&script, "true").context("writing the baseline script")?;
        Ok(Baseline::BashScript {
            bash: which("bash")?,
            script,
            cwd: cwd.to_path_buf(),
        })
    }

    /// Spawns the process once and waits for it; an error unless it
    /// exited with 0.
    fn run_once(&self) -> Result<()> {
        let status = match self {
            Baseline::True => Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("spawning /bin/true")?,
            Baseline::BashScript { bash, script, cwd } => {
                Command::new(bash)
                    .arg0("bash")
                    .args(["--noprofile", "--norc", "-eo", "pipefail"])
                    .arg(script)
                    .current_dir(cwd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .output()
                    .context("spawning bash")?
                    .status
            }
        };
        if !status.success() {
            bail!("{self:?} exited with {status}");
        }
        Ok(())
    }

    /// Runs `n` processes, `p` at a time; the wall time of the whole batch.
    pub fn measure(&self, n: usize, p: usize) -> Result<Duration> {
        let next = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..p.clamp(1, n.max(1)))
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        while next.fetch_add(1, Ordering::Relaxed) < n {
                            self.run_once()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("a baseline worker panicked")?;
            }
            Ok(())
        })?;
        Ok(started.elapsed())
    }

    pub fn label(&self) -> &'static str {
        match self {
            Baseline::True => "/bin/true",
            Baseline::BashScript { .. } => "bash step (as kiln)",
        }
    }
}

/// `program` resolved against `PATH`, as kiln resolves a step's program.
pub fn which(program: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| format!("{program} not found in PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_process_once_with_any_parallelism() {
        let dir = tempfile::tempdir().unwrap();
        for p in [1, 3, 10] {
            Baseline::True.measure(5, p).unwrap();
            Baseline::bash_script(dir.path(), dir.path())
                .unwrap()
                .measure(5, p)
                .unwrap();
        }
    }

    #[test]
    fn a_failing_process_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = Baseline::bash_script(dir.path(), dir.path()).unwrap();
        std::fs::write(dir.path().join("step-1.sh"), "false").unwrap();
        assert!(b.measure(2, 2).is_err());
    }
}
