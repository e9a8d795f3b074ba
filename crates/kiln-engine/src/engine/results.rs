//! The results document of a run, as `kiln exec --json` writes it, with
//! what only the server knows added: the queue wait before each attempt,
//! the agent that ran it, and every attempt with its failure class (an
//! agent lost mid-job, or a failure its `retry:` retries, shows as a failed
//! attempt followed by the retry).

use jiff::Timestamp;
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_proto::results::{JobResult, Phase, PhaseKind, RunResult};
use kiln_store::types::{AttemptRecord, InstanceRecord, RunRecord};
use std::collections::BTreeMap;

pub fn run_result(
    run: &RunRecord,
    instances: &[InstanceRecord],
    attempts: &[AttemptRecord],
) -> RunResult {
    let mut jobs = Vec::new();
    for inst in instances {
        let mine: Vec<&AttemptRecord> = attempts.iter().filter(|a| a.instance == inst.id).collect();
        if mine.is_empty() {
            jobs.push(never_ran(inst));
            continue;
        }
        let mut previous_end = inst.queued_at;
        for a in mine {
            let mut r = a.result.clone().unwrap_or_else(|| lost(inst, a));
            if r.failure.is_none() {
                r.failure = a.failure.map(Failure::of);
            }
            r.attempt = a.attempt;
            r.agent = Some(a.agent_name.clone());
            r.queued_at = Some(inst.queued_at);
            let wait = a.started_at.duration_since(previous_end);
            r.phases.retain(|p| p.kind != PhaseKind::QueueWait);
            r.phases.insert(
                0,
                Phase {
                    kind: PhaseKind::QueueWait,
                    name: "queue".into(),
                    started_at: previous_end,
                    duration_ms: wait.as_millis().max(0) as u64,
                },
            );
            previous_end = a.finished_at.unwrap_or(a.started_at);
            jobs.push(r);
        }
    }
    let finished = run.finished_at.unwrap_or_else(Timestamp::now);
    let started = run.started_at.unwrap_or(run.created_at);
    RunResult {
        workflow_file: run.workflow_file.clone(),
        workflow_name: run.workflow_name.clone(),
        event: run.event.clone(),
        commit: Some(run.commit.clone()),
        git_ref: run.git_ref.clone(),
        status: run.status,
        started_at: started,
        finished_at: finished,
        duration_ms: finished.duration_since(started).as_millis().max(0) as u64,
        jobs,
    }
}

fn matrix_map(v: &Option<Value>) -> Option<BTreeMap<String, Value>> {
    match v {
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) | None => None,
    }
}

fn never_ran(inst: &InstanceRecord) -> JobResult {
    JobResult {
        deploy: None,
        job: inst.job_key.clone(),
        name: inst.name.clone(),
        matrix: matrix_map(&inst.matrix),
        status: inst.status,
        reason: inst.reason.clone(),
        // A job that failed without running: its `if:`, matrix or name
        // could not be evaluated.
        failure: match inst.status {
            JobStatus::Failure => Some(Failure::of(FailureClass::Other)),
            JobStatus::Queued
            | JobStatus::Running
            | JobStatus::Success
            | JobStatus::Cancelled
            | JobStatus::Skipped => None,
        },
        attempt: inst.attempt,
        agent: None,
        queued_at: Some(inst.queued_at),
        started_at: None,
        finished_at: inst.finished_at,
        duration_ms: 0,
        phases: Vec::new(),
        outputs: BTreeMap::new(),
        steps: Vec::new(),
    }
}

/// An attempt without a result: still running, or its agent was lost.
fn lost(inst: &InstanceRecord, a: &AttemptRecord) -> JobResult {
    let end = a.finished_at;
    JobResult {
        deploy: None,
        job: inst.job_key.clone(),
        name: inst.name.clone(),
        matrix: matrix_map(&inst.matrix),
        status: if a.status == JobStatus::Running {
            JobStatus::Running
        } else {
            a.status
        },
        reason: a.reason.clone(),
        failure: a.failure.map(Failure::of),
        attempt: a.attempt,
        agent: Some(a.agent_name.clone()),
        queued_at: Some(inst.queued_at),
        started_at: Some(a.started_at),
        finished_at: end,
        duration_ms: end
            .map(|e| e.duration_since(a.started_at).as_millis().max(0) as u64)
            .unwrap_or(0),
        phases: Vec::new(),
        outputs: BTreeMap::new(),
        steps: Vec::new(),
    }
}
