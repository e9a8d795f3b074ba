//! Cases: retry by failure class. A completed attempt that failed in a
//! way its instance's retry policy retries goes back to the queue at its
//! old place; the attempt row keeps its result and class; a lost lease
//! follows the same policy; a cancelled job is never retried.

use super::fixtures::*;
use crate::ports::Store;
use crate::types::*;
use kiln_model::{Failure, FailureClass, InstanceId, JobStatus, RetryOn, RetryPolicy};
use kiln_proto::results::JobResult;

/// A run of a fresh repository `name` whose first instance has `policy`,
/// with a second, ordinary instance queued after it; the first is claimed
/// at t(10) by a fresh agent. Returns the run, the two ids and the agent.
async fn retrying<S: Store>(
    s: &S,
    name: &str,
    policy: RetryPolicy,
) -> (RunRecord, InstanceId, InstanceId, AgentRecord) {
    let repo = add_repo(s, name).await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let mut first = new_instance(0, 0, JobStatus::Queued);
    first.retry = policy;
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            new_instances: vec![first, new_instance(1, 0, JobStatus::Queued)],
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let instances = s.instances(run.id).await.unwrap();
    let agent = add_agent(s, &format!("agent-of-{name}")).await;
    s.claim(instances[0].id, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    (run, instances[0].id, instances[1].id, agent)
}

fn failed(attempt: u32, failure: Option<Failure>) -> JobResult {
    JobResult {
        failure,
        ..job_result(JobStatus::Failure, attempt)
    }
}

fn exit(code: i32) -> Option<Failure> {
    Some(Failure {
        class: FailureClass::ExitCode,
        step: Some(1),
        exit_code: Some(code),
    })
}

/// `retry: {max: 1, on: [{exit-code: [2]}]}`: the first failure (exit 2)
/// requeues the job ahead of the one queued after it, with nothing to
/// feed to the graph; the second claim is attempt 2; its failure ends the
/// job (max reached). Both attempt rows keep their result and class.
pub async fn complete_requeues_what_the_policy_retries<S: Store + 'static>(s: S) {
    let policy = RetryPolicy {
        max: 1,
        on: vec![RetryOn::ExitCode(vec![2])],
    };
    let (run, id, later, agent) = retrying(&s, "retrying", policy).await;
    let first = failed(1, exit(2));
    assert_eq!(
        s.complete(id, agent.id, 1, first.clone(), t(20))
            .await
            .unwrap(),
        Completed {
            run: run.id,
            requeued: true
        }
    );
    let queued = s.instance(id).await.unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempt, 1);
    assert_eq!(queued.agent, None);
    assert_eq!(queued.lease_expires_at, None);
    assert_eq!(queued.finished_at, None);
    assert!(queued.graph_applied, "nothing to feed to the graph");
    assert!(s.unapplied().await.unwrap().is_empty());
    assert_eq!(
        s.candidates(10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![id, later],
        "its FIFO place is kept"
    );
    // The attempt is fenced: the old attempt can no longer report.
    assert!(
        s.complete(id, agent.id, 1, first.clone(), t(21))
            .await
            .is_err()
    );

    let again = s.claim(id, agent.id, t(30), t(60)).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    let second = failed(2, exit(2));
    assert_eq!(
        s.complete(id, agent.id, 2, second.clone(), t(40))
            .await
            .unwrap(),
        Completed {
            run: run.id,
            requeued: false
        }
    );
    let done = s.instance(id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failure);
    assert_eq!(done.result.as_ref(), Some(&second));
    assert!(!done.graph_applied);
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, id)]);

    let attempts = s.attempts(run.id).await.unwrap();
    let rows: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.failure, a.result.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                1,
                JobStatus::Failure,
                Some(FailureClass::ExitCode),
                Some(first)
            ),
            (
                2,
                JobStatus::Failure,
                Some(FailureClass::ExitCode),
                Some(second)
            ),
        ]
    );
}

/// A retried job that then succeeds ends success at attempt 2.
pub async fn complete_succeeds_after_a_retry<S: Store + 'static>(s: S) {
    let policy = RetryPolicy {
        max: 2,
        on: vec![RetryOn::ExitCode(Vec::new())],
    };
    let (run, id, _, agent) = retrying(&s, "retrying", policy).await;
    let c = s
        .complete(id, agent.id, 1, failed(1, exit(1)), t(20))
        .await
        .unwrap();
    assert!(c.requeued);
    s.claim(id, agent.id, t(30), t(60)).await.unwrap().unwrap();
    let c = s
        .complete(id, agent.id, 2, job_result(JobStatus::Success, 2), t(40))
        .await
        .unwrap();
    assert!(!c.requeued);
    let done = s.instance(id).await.unwrap();
    assert_eq!((done.status, done.attempt), (JobStatus::Success, 2));
    let attempts = s.attempts(run.id).await.unwrap();
    let rows: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.failure))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, JobStatus::Failure, Some(FailureClass::ExitCode)),
            (2, JobStatus::Success, None),
        ]
    );
}

/// What the policy does not cover ends the job: a class not listed, an
/// exit code not listed, a failure without a class; the default policy
/// retries a failed checkout but not a failing step; a job whose cancel
/// was requested is never retried.
pub async fn complete_ends_what_the_policy_does_not_retry<S: Store + 'static>(s: S) {
    let only_137 = RetryPolicy {
        max: 3,
        on: vec![RetryOn::Timeout, RetryOn::ExitCode(vec![137])],
    };
    let cases: Vec<(RetryPolicy, Option<Failure>, bool)> = vec![
        (only_137.clone(), exit(1), false),
        (only_137.clone(), exit(137), true),
        (
            only_137.clone(),
            Some(Failure::of(FailureClass::Other)),
            false,
        ),
        (only_137, None, false),
        (RetryPolicy::infrastructure(2), exit(1), false),
        (
            RetryPolicy::infrastructure(2),
            Some(Failure::of(FailureClass::Checkout)),
            true,
        ),
        (
            RetryPolicy::infrastructure(0),
            Some(Failure::of(FailureClass::Checkout)),
            false,
        ),
    ];
    let repo = add_repo(&s, "alpha").await;
    let agent = add_agent(&s, "agent-1").await;
    for (n, (policy, failure, requeued)) in cases.into_iter().enumerate() {
        let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
        let mut inst = new_instance(0, 0, JobStatus::Queued);
        inst.retry = policy.clone();
        s.apply(
            run.id,
            Transition {
                expected_version: run.version,
                graph: "g".into(),
                new_instances: vec![inst],
                now: t(2),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
        let id = s.instances(run.id).await.unwrap()[0].id;
        s.claim(id, agent.id, t(10), t(40)).await.unwrap().unwrap();
        let c = s
            .complete(id, agent.id, 1, failed(1, failure), t(20))
            .await
            .unwrap();
        assert_eq!(
            c.requeued, requeued,
            "case {n}: {policy:?} with {failure:?}"
        );
        let status = s.instance(id).await.unwrap().status;
        let want = if requeued {
            JobStatus::Queued
        } else {
            JobStatus::Failure
        };
        assert_eq!(status, want, "case {n}");
        if requeued {
            // Out of the way of the next case.
            let run = s.run(run.id).await.unwrap();
            s.apply(
                run.id,
                Transition {
                    expected_version: run.version,
                    graph: "g".into(),
                    cancel: vec![id],
                    now: t(21),
                    ..Transition::default()
                },
            )
            .await
            .unwrap();
        }
    }

    // Cancel requested while it ran: a retryable failure still ends it.
    let policy = RetryPolicy {
        max: 2,
        on: vec![RetryOn::ExitCode(Vec::new())],
    };
    let (run, id, _, agent) = retrying(&s, "retrying", policy).await;
    s.apply(
        run.id,
        Transition {
            expected_version: s.run(run.id).await.unwrap().version,
            graph: "g".into(),
            cancel: vec![id],
            now: t(15),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let c = s
        .complete(id, agent.id, 1, failed(1, exit(1)), t(20))
        .await
        .unwrap();
    assert!(!c.requeued, "a cancelled job is never retried");
    assert_eq!(s.instance(id).await.unwrap().status, JobStatus::Failure);
}

/// A lost lease follows the policy too: a job whose `retry.on` leaves out
/// `agent-lost` fails at its first lost lease; the attempt's class is
/// `agent-lost` either way.
pub async fn expire_follows_the_retry_policy<S: Store + 'static>(s: S) {
    let policy = RetryPolicy {
        max: 3,
        on: vec![RetryOn::ExitCode(Vec::new())],
    };
    let (run, id, _, _) = retrying(&s, "retrying", policy).await;
    assert_eq!(
        s.expire_leases(t(41)).await.unwrap(),
        vec![Expired {
            instance: id,
            run: run.id,
            attempt: 1,
            requeued: false
        }]
    );
    let failed = s.instance(id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failure);
    assert_eq!(
        failed.reason.as_deref(),
        Some("agent-lost: gave up after 1 attempts")
    );
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts[0].failure, Some(FailureClass::AgentLost));
    assert_eq!(attempts[0].reason.as_deref(), Some("agent-lost"));
}
