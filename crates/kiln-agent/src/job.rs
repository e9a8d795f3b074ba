//! One assignment, from claim to acknowledged completion.
//!
//! Order: start the heartbeat and the log shipper; prepare a fresh
//! workspace and temp directory; run the job with the runner (mirroring
//! `kiln exec`'s job task: phases `workspace`, the steps, `cleanup`);
//! remove the job's directory; flush the logs but the last chunk; hand
//! the result with that chunk to the agent's loop, which reports it with
//! its next `work` call; stop the heartbeat once the server decided. The
//! heartbeat runs until the very end so that the lease outlives a slow
//! flush or report. When the lease is lost (the heartbeat saw 409) before
//! the report is handed over, the job is killed, nothing more is sent,
//! and nothing is reported; once the report is on its way, its own
//! outcome decides (a heartbeat may well get 409 because the result was
//! just stored).

use crate::checkout::{GitCheckout, Mirrors};
use crate::events::{AgentEvents, JobEnd};
use crate::heartbeat::{self, Beat};
use crate::logs::{self, JobLog, Shipped};
use crate::spool::{self, Spool};
use crate::workdir::{self, Layout};
use jiff::Timestamp;
use kiln_client::Client;
use kiln_exec::port::Cancel;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobRun, run_job};
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_proto::agent::{Assignment, LogChunk, Report};
use kiln_proto::results::{JobResult, Phase, PhaseKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What every job of the agent shares.
pub(crate) struct Shared {
    pub client: Client,
    pub name: String,
    pub layout: Layout,
    pub kill_grace: Duration,
    pub executor: kiln_exec::select::Executors,
    pub mirrors: Arc<Mirrors>,
    pub base_env: Arc<Vec<(String, String)>>,
    pub events: Arc<dyn AgentEvents>,
    /// Finished attempts, to the agent's loop.
    pub reports: mpsc::UnboundedSender<Delivery>,
}

/// Run `a` to the end and report it. Never fails: every problem becomes
/// a failed job or a [`JobEnd`] other than `Reported`.
pub(crate) async fn run(shared: Arc<Shared>, a: Assignment) -> JobEnd {
    let job = a.job;
    let attempt = a.attempt;
    let cancel = Cancel::default();
    let lost = CancellationToken::new();
    let stop_beat = CancellationToken::new();
    let reporting = CancellationToken::new();
    let beat = tokio::spawn(heartbeat::beat(
        Beat {
            client: shared.client.clone(),
            job,
            attempt,
            every: Duration::from_millis(a.heartbeat_ms),
            lease: Duration::from_millis(a.lease_ms),
            cancel: cancel.clone(),
            lost: lost.clone(),
            reporting: reporting.clone(),
            events: shared.events.clone(),
        },
        stop_beat.clone(),
    ));
    let spool = Arc::new(Spool::new(
        spool::LIMITS,
        shared.layout.spill_file(job, attempt),
    ));
    let mut shipper = tokio::spawn(logs::ship(
        shared.client.clone(),
        job,
        attempt,
        spool.clone(),
        shared.events.clone(),
    ));
    let observer: Arc<dyn JobObserver> = Arc::new(JobLog::new(spool.clone()));

    let result = execute(&shared, a, observer, &cancel).await;

    let end = if lost.is_cancelled() {
        JobEnd::LeaseLost
    } else {
        // The shipper sends what does not fit in one chunk; the last
        // chunk rides with the result.
        spool.finish();
        let shipped = tokio::select! {
            r = &mut shipper => r.unwrap_or_else(|e| Shipped::Rejected(e.to_string())),
            _ = lost.cancelled() => Shipped::Stale,
        };
        // From here on a 409 on a heartbeat may be the answer to our own
        // report (stored, acknowledgement in flight): the report's own
        // outcome decides.
        reporting.cancel();
        match shipped {
            _ if lost.is_cancelled() => JobEnd::LeaseLost,
            Shipped::All { next_seq } => {
                let lines = spool.take();
                let logs = (!lines.is_empty()).then_some(LogChunk {
                    attempt,
                    seq: next_seq,
                    lines,
                });
                deliver(
                    &shared,
                    Report {
                        job,
                        attempt,
                        logs,
                        result,
                    },
                )
                .await
            }
            // Logs refused for good still leave a result worth reporting.
            Shipped::Rejected(_) => {
                deliver(
                    &shared,
                    Report {
                        job,
                        attempt,
                        logs: None,
                        result,
                    },
                )
                .await
            }
            Shipped::Stale => JobEnd::LeaseLost,
        }
    };
    shipper.abort();
    spool.discard();
    stop_beat.cancel();
    let _ = beat.await;
    end
}

/// Prepare, run and clean up; the result as `kiln exec` builds it.
async fn execute(
    shared: &Shared,
    a: Assignment,
    observer: Arc<dyn JobObserver>,
    cancel: &Cancel,
) -> JobResult {
    let started_at = Timestamp::now();
    let clock = Instant::now();
    let mut result = JobResult {
        deploy: None,
        job: a
            .workflow
            .jobs
            .get(a.job_index)
            .map(|j| j.id.to_string())
            .unwrap_or_default(),
        name: a.name.clone(),
        matrix: match &a.contexts.matrix {
            Value::Object(m) => Some(m.clone()),
            Value::Null
            | Value::Bool(_)
            | Value::Number(_)
            | Value::String(_)
            | Value::Array(_) => None,
        },
        status: JobStatus::Running,
        reason: None,
        failure: None,
        attempt: a.attempt,
        agent: Some(shared.name.clone()),
        queued_at: None,
        started_at: Some(started_at),
        finished_at: None,
        duration_ms: 0,
        phases: Vec::new(),
        outputs: BTreeMap::new(),
        steps: Vec::new(),
    };
    if a.job_index >= a.workflow.jobs.len() {
        let reason = format!(
            "the assignment names job {} of a workflow with {} job(s)",
            a.job_index,
            a.workflow.jobs.len()
        );
        return fail(&*observer, result, clock, reason);
    }

    // Workspace: a fresh directory per attempt.
    let ws_started = Timestamp::now();
    let ws_clock = Instant::now();
    let dir = shared.layout.job_dir(a.job, a.attempt);
    let workspace = dir.join("ws");
    let temp = dir.join("tmp");
    let prepared = {
        let (dir, workspace, temp) = (dir.clone(), workspace.clone(), temp.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            workdir::remove(&dir)?;
            std::fs::create_dir_all(&workspace)?;
            std::fs::create_dir_all(&temp)
        })
        .await
    };
    result.phases.push(Phase {
        kind: PhaseKind::Workspace,
        name: "workspace".into(),
        started_at: ws_started,
        duration_ms: ws_clock.elapsed().as_millis() as u64,
    });
    match prepared {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let reason = format!("preparing the workspace {}: {e}", dir.display());
            let mut r = fail(&*observer, result, clock, reason);
            r.failure = Some(Failure::of(FailureClass::Checkout));
            remove_dir(dir).await;
            return r;
        }
        Err(e) => {
            let reason = format!("preparing the workspace {}: {e}", dir.display());
            let mut r = fail(&*observer, result, clock, reason);
            r.failure = Some(Failure::of(FailureClass::Checkout));
            return r;
        }
    }

    let c = a.contexts;
    let mut github = c.github;
    if let Value::Object(g) = &mut github {
        g.insert(
            "workspace".into(),
            Value::str(workspace.display().to_string()),
        );
    }
    let contexts = BaseContexts {
        github,
        inputs: c.inputs,
        needs: c.needs,
        kiln: c.kiln,
        secrets: c.secrets,
        vars: c.vars,
        strategy: c.strategy,
        matrix: c.matrix,
        runner: Value::object([
            ("os", Value::str("Linux")),
            ("arch", Value::str(runner_arch())),
            ("name", Value::str(shared.name.clone())),
            ("temp", Value::str(temp.display().to_string())),
            ("workspace", Value::str(workspace.display().to_string())),
        ]),
    };
    let run = JobRun {
        workflow: Arc::new(a.workflow),
        job_index: a.job_index,
        contexts,
        workspace,
        temp,
        base_env: shared.base_env.as_ref().clone(),
        kill_grace: shared.kill_grace,
        label: label(&shared.name, a.job, a.attempt),
        checkout: Some(Arc::new(GitCheckout {
            mirrors: shared.mirrors.clone(),
            repo_name: a.repo_name,
            url: a.repo_url,
            commit: a.commit,
        })),
    };
    let executor = shared.executor.executor_for(&run);
    let outcome = run_job(executor.as_ref(), &run, observer.clone(), cancel).await;

    // Cleanup: the runner stopped leftovers; remove the job's directory.
    let cleanup_clock = Instant::now();
    remove_dir(dir).await;
    let mut phases = outcome.phases;
    if let Some(last) = phases.last_mut()
        && last.kind == PhaseKind::Cleanup
    {
        last.duration_ms += cleanup_clock.elapsed().as_millis() as u64;
    }
    result.phases.extend(phases);
    result.status = outcome.status;
    result.reason = outcome.reason;
    result.outputs = outcome.outputs;
    result.steps = outcome.steps;
    result.deploy = outcome.deploy;
    result.failure = outcome.failure;
    result.finished_at = Some(Timestamp::now());
    result.duration_ms = clock.elapsed().as_millis() as u64;
    match &result.reason {
        Some(r) if r != result.status.as_str() => observer.note(&format!("{}: {r}", result.status)),
        Some(_) | None => {}
    }
    result
}

fn fail(
    observer: &dyn JobObserver,
    mut result: JobResult,
    clock: Instant,
    reason: String,
) -> JobResult {
    observer.note(&reason);
    result.status = JobStatus::Failure;
    result.failure = Some(Failure::of(FailureClass::Other));
    result.reason = Some(reason);
    result.finished_at = Some(Timestamp::now());
    result.duration_ms = clock.elapsed().as_millis() as u64;
    result
}

async fn remove_dir(dir: std::path::PathBuf) {
    let _ = tokio::task::spawn_blocking(move || workdir::remove(&dir)).await;
}

/// A finished attempt on its way to the server, and where its outcome
/// goes.
pub(crate) struct Delivery {
    pub report: Report,
    pub ack: oneshot::Sender<JobEnd>,
}

/// Hand the report to the agent's loop, which sends it with its next
/// `work` call (retrying until the server decides) and frees the job's
/// capacity at once; wait for the outcome. The heartbeat keeps the lease
/// until then.
async fn deliver(shared: &Shared, report: Report) -> JobEnd {
    let (ack, outcome) = oneshot::channel();
    if shared.reports.send(Delivery { report, ack }).is_err() {
        return JobEnd::Rejected("the agent stopped before the result was sent".into());
    }
    outcome
        .await
        .unwrap_or_else(|_| JobEnd::Rejected("the agent stopped before the result was sent".into()))
}

/// The executor label: unique per agent, job and attempt.
fn label(agent: &str, job: kiln_model::InstanceId, attempt: u32) -> String {
    let safe: String = agent
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("kiln-agent-{safe}-{job}-{attempt}")
}

fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        "x86" => "X86",
        "arm" => "ARM",
        other => other,
    }
}
