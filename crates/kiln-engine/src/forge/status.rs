//! What kiln tells a forge about a run: pure rules from the run and its
//! jobs to a commit status and a pull request comment, and the retry
//! backoff. No I/O here; [`super::report`] sends what these return.
//!
//! Rules (also in `docs/design/forge-api.md`):
//! - one status per run, context `kiln/<workflow name>`, on the run's
//!   commit: the same workflow re-run updates the same status, which is
//!   what a forge's required checks key on;
//! - queued or running → `pending`; success → `success`; failure →
//!   `failure`; cancelled → `error` (no forge has "cancelled" in its
//!   status API, and a cancelled run must not let a merge through);
//! - a run skipped because no changed path matched → `success` with
//!   `skipped: no matching changes`, so a required check does not wait
//!   forever for a workflow that had nothing to do.

use jiff::SignedDuration;
use kiln_forge::api::{ApiError, CommitStatus, StatusState};
use kiln_model::JobStatus;
use kiln_store::types::{InstanceRecord, RunRecord};
use std::fmt::Write;

/// The status context of a workflow.
pub fn context(workflow_name: &str) -> String {
    format!("kiln/{workflow_name}")
}

/// How far the jobs of a run are.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    total: usize,
    running: usize,
    done: usize,
    failed: Vec<String>,
    skipped: usize,
}

fn tally(jobs: &[InstanceRecord]) -> Tally {
    let mut t = Tally {
        total: jobs.len(),
        ..Tally::default()
    };
    for j in jobs {
        match j.status {
            JobStatus::Queued => {}
            JobStatus::Running => t.running += 1,
            JobStatus::Success => t.done += 1,
            JobStatus::Failure | JobStatus::Cancelled => {
                t.done += 1;
                t.failed.push(j.name.clone());
            }
            JobStatus::Skipped => {
                t.done += 1;
                t.skipped += 1;
            }
        }
    }
    t
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The default description of a run skipped by path filters.
pub const SKIPPED_NO_CHANGES: &str = "skipped: no matching changes";

/// The commit status for a run in its current state.
pub fn commit_status(
    run: &RunRecord,
    jobs: &[InstanceRecord],
    target_url: Option<String>,
) -> CommitStatus {
    let t = tally(jobs);
    let (state, description) = match run.status {
        JobStatus::Queued => (StatusState::Pending, "queued".to_owned()),
        JobStatus::Running if t.running == 0 && t.done == 0 => {
            (StatusState::Pending, "queued".to_owned())
        }
        JobStatus::Running => (
            StatusState::Pending,
            format!("running: {} of {} done", t.done, plural(t.total, "job")),
        ),
        JobStatus::Success => (
            StatusState::Success,
            if t.skipped > 0 {
                format!(
                    "{} passed, {} skipped",
                    plural(t.total - t.skipped, "job"),
                    t.skipped
                )
            } else {
                format!("{} passed", plural(t.total, "job"))
            },
        ),
        JobStatus::Failure if t.failed.is_empty() => (
            StatusState::Failure,
            match &run.error {
                Some(_) if jobs.is_empty() => "invalid workflow: see the run".to_owned(),
                _ => "failed".to_owned(),
            },
        ),
        JobStatus::Failure => {
            let mut names: Vec<&str> = t.failed.iter().map(String::as_str).take(3).collect();
            if t.failed.len() > 3 {
                names.push("…");
            }
            (
                StatusState::Failure,
                format!(
                    "{} of {} failed: {}",
                    t.failed.len(),
                    plural(t.total, "job"),
                    names.join(", ")
                ),
            )
        }
        JobStatus::Cancelled => (StatusState::Error, "cancelled".to_owned()),
        JobStatus::Skipped => (
            StatusState::Success,
            run.error
                .as_deref()
                .filter(|e| e.starts_with("skipped"))
                .unwrap_or(SKIPPED_NO_CHANGES)
                .to_owned(),
        ),
    };
    CommitStatus {
        state,
        context: context(&run.workflow_name),
        description,
        target_url,
    }
}

fn icon(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "⏳",
        JobStatus::Running => "🔄",
        JobStatus::Success => "✅",
        JobStatus::Failure => "❌",
        JobStatus::Cancelled => "⛔",
        JobStatus::Skipped => "⏭️",
    }
}

/// The first line kiln writes in its comments: lets people (and kiln)
/// recognise the comment of a run.
pub fn comment_marker(run: &RunRecord) -> String {
    format!("<!-- kiln run {} -->", run.id)
}

/// The body of the run's pull request comment: the run's state, a link,
/// and one line per job.
pub fn comment_body(run: &RunRecord, jobs: &[InstanceRecord], target_url: Option<&str>) -> String {
    let status = commit_status(run, jobs, None);
    let mut s = comment_marker(run);
    s.push('\n');
    let run_ref = match target_url {
        Some(u) => format!("[run {}]({u})", run.id),
        None => format!("run {}", run.id),
    };
    let _ = writeln!(
        s,
        "{} **kiln** `{}` {}: {} ({run_ref}, commit `{}`)",
        icon(run.status),
        run.workflow_name,
        run.status,
        status.description,
        run.commit.get(..12).unwrap_or(&run.commit),
    );
    if !jobs.is_empty() {
        s.push_str("\n| job | status | note |\n|---|---|---|\n");
        for j in jobs {
            let note = j
                .reason
                .as_deref()
                .map(|r| r.lines().next().unwrap_or("").replace('|', "\\|"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} {} | {} |",
                j.name.replace('|', "\\|"),
                icon(j.status),
                j.status,
                note
            );
        }
    }
    s
}

/// Longest wait between two tries.
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_secs(300);
/// Failures of a kind that waiting will not fix (a refused token, an
/// unknown repository) after which kiln tries only hourly — and at the
/// run's next change.
pub const PERMANENT_TRIES: u32 = 5;

/// The wait before the next try, after `failures` failed tries (this one
/// included): 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32, error: &ApiError) -> SignedDuration {
    if !error.is_transient() && failures >= PERMANENT_TRIES {
        return SignedDuration::from_hours(1);
    }
    let exp = failures.saturating_sub(1).min(16);
    SignedDuration::from_secs(1i64 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use kiln_model::{InstanceId, RepoId, RunId};
    use kiln_proto::agent::JobContexts;
    use kiln_store::types::RunContexts;

    fn run(status: JobStatus, error: Option<&str>) -> RunRecord {
        RunRecord {
            hold: None,
            id: RunId(12),
            repo: RepoId(1),
            repo_name: "web".into(),
            repo_url: "https://github.com/octo/web".into(),
            workflow_file: ".kiln/workflows/ci.yml".into(),
            workflow_name: "ci".into(),
            commit: "0123456789abcdef".into(),
            git_ref: None,
            event: "push".into(),
            workflow: None,
            contexts: RunContexts::default(),
            status,
            error: error.map(str::to_owned),
            graph: None,
            version: 1,
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
        }
    }

    fn job(name: &str, status: JobStatus) -> InstanceRecord {
        InstanceRecord {
            hold: None,
            id: InstanceId(1),
            run: RunId(12),
            repo: RepoId(1),
            node: 0,
            index: 0,
            job_key: name.into(),
            name: name.into(),
            matrix: None,
            runs_on: vec![],
            weight: 1,
            priority: 0,
            status,
            attempt: 1,
            retry: kiln_model::RetryPolicy::infrastructure(2),
            agent: None,
            agent_name: None,
            lease_expires_at: None,
            reason: (status == JobStatus::Failure).then(|| "step 2 exited with 1".into()),
            contexts: JobContexts::default(),
            queued_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            result: None,
            graph_applied: true,
            cancel_requested: false,
        }
    }

    fn state(r: &RunRecord, jobs: &[InstanceRecord]) -> (StatusState, String) {
        let s = commit_status(r, jobs, None);
        assert_eq!(s.context, "kiln/ci");
        (s.state, s.description)
    }

    #[test]
    fn run_states_map_to_statuses() {
        use JobStatus::*;
        assert_eq!(
            state(&run(Queued, None), &[]),
            (StatusState::Pending, "queued".into())
        );
        assert_eq!(
            state(&run(Running, None), &[job("a", Queued)]),
            (StatusState::Pending, "queued".into())
        );
        assert_eq!(
            state(&run(Running, None), &[job("a", Success), job("b", Running)]),
            (StatusState::Pending, "running: 1 of 2 jobs done".into())
        );
        assert_eq!(
            state(&run(Success, None), &[job("a", Success), job("b", Skipped)]),
            (StatusState::Success, "1 job passed, 1 skipped".into())
        );
        assert_eq!(
            state(&run(Failure, None), &[job("a", Success), job("b", Failure)]),
            (StatusState::Failure, "1 of 2 jobs failed: b".into())
        );
        assert_eq!(
            state(&run(Failure, Some("ci.yml:1:1: error")), &[]),
            (StatusState::Failure, "invalid workflow: see the run".into())
        );
        assert_eq!(
            state(&run(Cancelled, None), &[job("a", Cancelled)]),
            (StatusState::Error, "cancelled".into())
        );
        assert_eq!(
            state(&run(Skipped, Some("skipped: no matching changes")), &[]),
            (StatusState::Success, "skipped: no matching changes".into())
        );
        assert_eq!(
            state(&run(Skipped, None), &[]),
            (StatusState::Success, SKIPPED_NO_CHANGES.into())
        );
    }

    #[test]
    fn comment_lists_jobs_with_a_link() {
        let body = comment_body(
            &run(JobStatus::Failure, None),
            &[
                job("build", JobStatus::Success),
                job("test", JobStatus::Failure),
            ],
            Some("http://kiln/api/v1/runs/12"),
        );
        assert_eq!(
            body,
            "<!-- kiln run 12 -->\n\
             ❌ **kiln** `ci` failure: 1 of 2 jobs failed: test ([run 12](http://kiln/api/v1/runs/12), commit `0123456789ab`)\n\
             \n| job | status | note |\n|---|---|---|\n\
             | build | ✅ success |  |\n\
             | test | ❌ failure | step 2 exited with 1 |\n"
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let down = ApiError::Unavailable("502".into());
        let denied = ApiError::Unauthorized("401".into());
        assert_eq!(backoff(1, &down), SignedDuration::from_secs(1));
        assert_eq!(backoff(2, &down), SignedDuration::from_secs(2));
        assert_eq!(backoff(4, &down), SignedDuration::from_secs(8));
        assert_eq!(backoff(30, &down), MAX_BACKOFF);
        assert_eq!(backoff(2, &denied), SignedDuration::from_secs(2));
        assert_eq!(backoff(5, &denied), SignedDuration::from_hours(1));
    }
}
