//! The agent's work directory:
//!
//! ```text
//! WORK_DIR/
//!   jobs/<job>-<attempt>/ws     a job's workspace (fresh per attempt)
//!   jobs/<job>-<attempt>/tmp    its RUNNER_TEMP (scripts, file commands)
//!   jobs/<job>-<attempt>.spill  log lines waiting for the server, when
//!                               too many to keep in memory
//!   mirrors/<repo>-<hash>.git   bare mirror per repository URL
//! ```
//!
//! Everything under `jobs/` belongs to running jobs, so at start it is
//! leftovers of a crashed agent and is removed; mirrors are kept.

use crate::error::AgentError;
use crate::events::{AgentEvents, Event};
use kiln_model::InstanceId;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub jobs: PathBuf,
    pub mirrors: PathBuf,
}

impl Layout {
    pub(crate) fn job_dir(&self, job: InstanceId, attempt: u32) -> PathBuf {
        self.jobs.join(format!("{job}-{attempt}"))
    }

    pub(crate) fn spill_file(&self, job: InstanceId, attempt: u32) -> PathBuf {
        self.jobs.join(format!("{job}-{attempt}.spill"))
    }
}

/// Create the directories and remove leftovers of an earlier run.
pub(crate) fn prepare(work_dir: &Path, events: &dyn AgentEvents) -> Result<Layout, AgentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AgentError::Io { path, source }
    };
    let layout = Layout {
        jobs: work_dir.join("jobs"),
        mirrors: work_dir.join("mirrors"),
    };
    for dir in [&layout.jobs, &layout.mirrors] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    for entry in std::fs::read_dir(&layout.jobs).map_err(io(&layout.jobs))? {
        let path = entry.map_err(io(&layout.jobs))?.path();
        remove(&path).map_err(io(&path))?;
        events.event(&Event::Cleaned { path });
    }
    // Half-made mirrors (a clone interrupted by a crash).
    for entry in std::fs::read_dir(&layout.mirrors).map_err(io(&layout.mirrors))? {
        let path = entry.map_err(io(&layout.mirrors))?.path();
        if path.extension().is_some_and(|e| e == "partial") {
            remove(&path).map_err(io(&path))?;
            events.event(&Event::Cleaned { path });
        }
    }
    Ok(layout)
}

/// Remove a file or a directory tree; missing is fine.
pub(crate) fn remove(path: &Path) -> std::io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Event>>);
    impl AgentEvents for Seen {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn removes_job_leftovers_and_partial_mirrors_only() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        std::fs::create_dir_all(jobs.join("7-1/ws/sub")).unwrap();
        std::fs::write(jobs.join("7-1/ws/sub/f"), "x").unwrap();
        std::fs::write(jobs.join("7-1.spill"), "x").unwrap();
        let mirrors = dir.path().join("mirrors");
        std::fs::create_dir_all(mirrors.join("a-123.git")).unwrap();
        std::fs::create_dir_all(mirrors.join("b-456.partial")).unwrap();
        let seen = Seen::default();
        let layout = prepare(dir.path(), &seen).unwrap();
        assert_eq!(std::fs::read_dir(&layout.jobs).unwrap().count(), 0);
        assert!(mirrors.join("a-123.git").is_dir());
        assert!(!mirrors.join("b-456.partial").exists());
        assert_eq!(seen.0.lock().unwrap().len(), 3);
    }
}
