//! After a deploy's steps: the environment's health check, then, when it
//! never passes, the job's `rollback:` steps. Order and rules are in
//! `docs/design/runner.md` ("Deploys").
//!
//! - Each attempt is a step result of its own, `Health check (N/M)`,
//!   numbered after the job's steps, with a `health-check` phase; a failed
//!   attempt stays `failure` in the results even when a later one passes
//!   (the job's status and `deploy` say what the deploy came to).
//! - Rollback steps follow, numbered after the attempts, with `rollback`
//!   phases and `$KILN_ROLLBACK_TO` set. One without `if:` runs unless an
//!   earlier rollback step failed; an `if:` is evaluated with the job
//!   status `failure` (or `cancelled`), so `failure()` and `always()` hold.
//! - A cancel during the health check stops it, and the rollback still
//!   runs (with a fresh graceful token, like cleanup steps); only an
//!   immediate cancel (a second Ctrl-C) leaves the rollback unstarted or
//!   stops it.

use super::context::field;
use super::state::JobState;
use super::{JobObserver, JobOutcome, failed_without_running, skipped};
use crate::port::{Cancel, JobHandle};
use jiff::Timestamp;
use kiln_model::StepStatus;
use kiln_model::workflow::{Dyn, Environment, Job, Step, StepAction};
use kiln_model::{Failure, FailureClass};
use kiln_proto::results::{DeployOutcome, Phase, PhaseKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Health check and rollback for a job whose steps succeeded. Returns the
/// deploy's outcome and, when it failed, the words for the job's reason.
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_steps(
    state: &mut JobState<'_>,
    job: &Job,
    env: &Environment,
    handle: &mut dyn JobHandle,
    deadline: Instant,
    cancel: &Cancel,
    observer: &Arc<dyn JobObserver>,
    outcome: &mut JobOutcome,
) -> (DeployOutcome, Option<String>) {
    let Some(hc) = &env.health_check else {
        return (DeployOutcome::Healthy, None);
    };
    let env_name = state.environment.clone().unwrap_or_default();
    let attempts = hc.retries.saturating_add(1);
    let check = Step {
        loc: hc.loc,
        id: None,
        name: None,
        if_: None,
        env: Vec::new(),
        continue_on_error: Dyn::Lit(false),
        timeout_minutes: Some(Dyn::Lit(hc.timeout_ms as f64 / 60_000.0)),
        action: StepAction::Run {
            script: hc.run.clone(),
            shell: None,
            working_directory: None,
        },
    };
    let mut passed = false;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let pause = tokio::time::sleep(Duration::from_millis(hc.interval_ms));
            let job_end = tokio::time::sleep_until(deadline.into());
            tokio::select! {
                () = pause => {}
                () = cancel.graceful.cancelled() => {}
                () = cancel.immediate.cancelled() => {}
                () = job_end => state.timed_out = true,
            }
        }
        if cancel.graceful.is_cancelled() || cancel.immediate.is_cancelled() {
            state.cancelled = true;
        }
        if state.cancelled || state.timed_out {
            break;
        }
        let number = outcome.steps.len() as u32 + 1;
        let name = format!("Health check ({attempt}/{attempts})");
        observer.step_started(number, &name);
        let started = Instant::now();
        let (result, _) = state
            .run_step(handle, number, &check, &name, deadline, cancel, observer)
            .await;
        outcome.phases.push(Phase {
            kind: PhaseKind::HealthCheck,
            name: name.clone(),
            started_at: result.started_at.unwrap_or_else(Timestamp::now),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        observer.step_finished(&result);
        let status = result.status;
        outcome.steps.push(result);
        match status {
            StepStatus::Success => {
                passed = true;
                break;
            }
            StepStatus::Cancelled => {
                state.cancelled = true;
                break;
            }
            StepStatus::Failure | StepStatus::Skipped => {}
        }
    }
    if passed {
        observer.note(&format!("health check passed: {env_name} is healthy"));
        return (DeployOutcome::Healthy, None);
    }
    // An interrupted check leaves the job `cancelled` (or timed out), not
    // `failure`: that is what the status functions and the job status say.
    let cause = if state.cancelled || state.timed_out {
        "health check interrupted"
    } else {
        state.failed = true;
        // The class is the health check's, whatever a rollback step does.
        state
            .failure
            .get_or_insert(Failure::of(FailureClass::Other));
        state.refresh_job_ctx();
        "health check failed"
    };
    if job.rollback.is_empty() {
        let reason = format!("{cause}: {env_name} is unhealthy (no rollback steps)");
        observer.note(&reason);
        return (DeployOutcome::Unhealthy, Some(reason));
    }
    if cancel.immediate.is_cancelled() {
        let reason = format!("{cause}: {env_name} is unhealthy (rollback not started)");
        observer.note(&reason);
        return (DeployOutcome::Unhealthy, Some(reason));
    }

    let rollback_to = rollback_to(state);
    let target = if rollback_to.is_empty() {
        observer.note(&format!(
            "{cause}; {env_name} has no earlier good commit: the rollback steps run with KILN_ROLLBACK_TO empty"
        ));
        "(no earlier good commit)".to_owned()
    } else {
        let short: String = rollback_to.chars().take(12).collect();
        observer.note(&format!("{cause}; rolling {env_name} back to {short}"));
        short
    };
    state.rollback_to = Some(rollback_to);
    let rolled_back = rollback(state, job, handle, deadline, cancel, observer, outcome).await;
    state.rollback_to = None;
    if rolled_back {
        (
            DeployOutcome::RolledBack,
            Some(format!("{cause}; rolled back to {target}")),
        )
    } else {
        (
            DeployOutcome::RollbackFailed,
            Some(format!(
                "{cause}; rollback to {target} failed: {env_name} is unhealthy"
            )),
        )
    }
}

/// The last good commit the caller put at `kiln.deploy.rollback_to`, or "".
fn rollback_to(state: &JobState<'_>) -> String {
    match state.run.contexts.kiln.get_ci("deploy") {
        Some(d) => field(d, "rollback_to").to_owned(),
        None => String::new(),
    }
}

/// The rollback steps; true when none failed or was cancelled.
async fn rollback(
    state: &mut JobState<'_>,
    job: &Job,
    handle: &mut dyn JobHandle,
    deadline: Instant,
    cancel: &Cancel,
    observer: &Arc<dyn JobObserver>,
    outcome: &mut JobOutcome,
) -> bool {
    // Like cleanup steps after a cancel: a fresh graceful token, so only
    // an immediate cancel stops a rollback.
    let step_cancel = Cancel {
        graceful: Default::default(),
        immediate: cancel.immediate.clone(),
    };
    let mut ok = true;
    for step in &job.rollback {
        let number = outcome.steps.len() as u32 + 1;
        let name = state.step_name(step);
        if cancel.immediate.is_cancelled() {
            let mut result = skipped(number, step, &name, Some("cancelled".into()));
            result.status = StepStatus::Cancelled;
            result.outcome = StepStatus::Cancelled;
            observer.step_finished(&result);
            outcome.steps.push(result);
            ok = false;
            continue;
        }
        let decision = match &step.if_ {
            None => Ok(ok),
            Some(_) => state
                .should_run(step, state.status())
                .map_err(|e| e.to_string()),
        };
        match decision {
            Ok(true) => {}
            Ok(false) => {
                let result = skipped(number, step, &name, None);
                observer.step_finished(&result);
                state.record(step, &result, BTreeMap::new());
                outcome.steps.push(result);
                continue;
            }
            Err(reason) => {
                observer.step_started(number, &name);
                let result = failed_without_running(number, step, &name, reason);
                observer.step_finished(&result);
                state.record(step, &result, BTreeMap::new());
                outcome.steps.push(result);
                ok = false;
                continue;
            }
        }
        observer.step_started(number, &name);
        let started = Instant::now();
        let (result, outputs) = state
            .run_step(
                handle,
                number,
                step,
                &name,
                deadline,
                &step_cancel,
                observer,
            )
            .await;
        outcome.phases.push(Phase {
            kind: PhaseKind::Rollback,
            name: name.clone(),
            started_at: result.started_at.unwrap_or_else(Timestamp::now),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        observer.step_finished(&result);
        match result.status {
            StepStatus::Failure | StepStatus::Cancelled => ok = false,
            StepStatus::Success | StepStatus::Skipped => {}
        }
        state.record(step, &result, outputs);
        outcome.steps.push(result);
    }
    ok
}
