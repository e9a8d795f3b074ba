//! Cases: the queue: FIFO candidates, exclusive claims, fencing,
//! cancellation, completion, lost leases.

use super::fixtures::*;
use crate::ports::{Store, StoreError};
use crate::types::*;
use kiln_model::{AgentId, FailureClass, InstanceId, JobStatus};
use std::sync::Arc;

/// Candidates: queued instances oldest first, across runs, at most
/// `limit`, without running or cancelled ones; a candidate carries the
/// repository, labels and weight.
pub async fn candidates_are_fifo<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    let (_, first) = run_with_queued(&s, &a, 2).await;
    let (run_b, second) = run_with_queued(&s, &b, 2).await;
    let order: Vec<InstanceId> = first.iter().chain(&second).map(|i| i.id).collect();
    let all = s.candidates(10).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), order);
    assert_eq!(all[0].repo, a.id);
    assert_eq!(all[2].repo, b.id);
    assert_eq!(all[1].runs_on, vec!["linux".to_owned(), "x64".to_owned()]);
    assert_eq!(all[1].weight, first[1].weight);
    assert_eq!(
        s.candidates(3)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        order[..3]
    );

    let agent = add_agent(&s, "agent-1").await;
    s.claim(order[0], agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.apply(
        run_b.id,
        Transition {
            expected_version: run_b.version,
            graph: "g".into(),
            cancel: vec![order[2]],
            now: t(11),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.candidates(10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![order[1], order[3]]
    );
}

/// A claim starts the first attempt: Running, the agent and its name, the
/// lease, `started_at`; an attempt row is recorded. Claiming a job that is
/// not queued gets `None`; an unknown job or agent is NotFound.
pub async fn claim_records_the_attempt<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 1).await;
    let agent = add_agent(&s, "agent-1").await;
    let id = instances[0].id;
    assert_not_found(s.claim(id, AgentId(agent.id.0 + 1000), t(10), t(40)).await);
    assert_eq!(
        s.instance(id).await.unwrap(),
        instances[0],
        "a failed claim changes nothing"
    );

    let got = s.claim(id, agent.id, t(10), t(40)).await.unwrap().unwrap();
    assert_eq!(got.status, JobStatus::Running);
    assert_eq!(got.attempt, 1);
    assert_eq!(got.agent, Some(agent.id));
    assert_eq!(got.agent_name.as_deref(), Some("agent-1"));
    assert_eq!(got.lease_expires_at, Some(t(40)));
    assert_eq!(got.started_at, Some(t(10)));
    assert_eq!(got.finished_at, None);
    assert_eq!(got.queued_at, instances[0].queued_at);
    assert_eq!(s.instance(id).await.unwrap(), got);
    assert_eq!(
        s.attempts(run.id).await.unwrap(),
        vec![AttemptRecord {
            instance: id,
            attempt: 1,
            agent_name: "agent-1".into(),
            status: JobStatus::Running,
            reason: None,
            failure: None,
            started_at: t(10),
            finished_at: None,
            result: None,
        }]
    );
    assert!(s.candidates(10).await.unwrap().is_empty());

    let other = add_agent(&s, "agent-2").await;
    assert_eq!(s.claim(id, other.id, t(11), t(41)).await.unwrap(), None);
    assert_eq!(s.instance(id).await.unwrap(), got);
    assert_not_found(
        s.claim(InstanceId(id.0 + 1000), agent.id, t(11), t(41))
            .await,
    );
}

/// Sixteen tasks claim the same job at once: exactly one wins, and exactly
/// one attempt is recorded.
pub async fn claim_is_exclusive<S: Store + 'static>(s: S) {
    let s = Arc::new(s);
    let repo = add_repo(&*s, "alpha").await;
    let (run, instances) = run_with_queued(&*s, &repo, 1).await;
    let id = instances[0].id;
    let mut agents = Vec::new();
    for n in 0..16 {
        agents.push(add_agent(&*s, &format!("agent-{n:02}")).await.id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(agents.len()));
    let tasks: Vec<_> = agents
        .iter()
        .map(|&agent| {
            let s = Arc::clone(&s);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                s.claim(id, agent, t(10), t(40)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(won) = task.await.expect("task").expect("claim must not fail") {
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(winners[0].attempt, 1);
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(Some(attempts[0].agent_name.clone()), winners[0].agent_name);
    assert_eq!(s.instance(id).await.unwrap(), winners[0]);
}

/// After a lost lease and a new claim, calls carrying the old attempt are
/// Stale and change nothing; the new attempt works.
pub async fn fencing_rejects_old_attempts<S: Store + 'static>(s: S) {
    let (run, first, agent) = claimed(&s).await;
    let id = first.id;
    assert_eq!(s.expire_leases(t(41)).await.unwrap().len(), 1);
    let second = s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);

    assert_stale(s.heartbeat(id, agent.id, 1, t(51), t(90)).await);
    assert_stale(
        s.complete(id, agent.id, 1, job_result(JobStatus::Success, 1), t(52))
            .await,
    );
    assert_stale(
        s.append_logs(id, agent.id, 1, 0, &[line(id, 1, 1, "late")])
            .await,
    );
    assert_stale(s.heartbeat(id, agent.id, 3, t(51), t(90)).await);
    assert_eq!(s.instance(id).await.unwrap(), second);
    assert!(s.logs(run.id, None, 0).await.unwrap().entries.is_empty());
    assert_eq!(s.attempts(run.id).await.unwrap().len(), 2);

    assert!(!s.heartbeat(id, agent.id, 2, t(53), t(90)).await.unwrap());
    assert_eq!(s.instance(id).await.unwrap().lease_expires_at, Some(t(90)));
    assert_eq!(
        s.complete(id, agent.id, 2, job_result(JobStatus::Success, 2), t(54))
            .await
            .unwrap(),
        Completed {
            run: run.id,
            requeued: false
        }
    );
    // Once complete, the attempt is no longer running.
    assert_stale(s.heartbeat(id, agent.id, 2, t(55), t(95)).await);
    assert_stale(
        s.complete(id, agent.id, 2, job_result(JobStatus::Failure, 2), t(55))
            .await,
    );
    assert_eq!(s.instance(id).await.unwrap().status, JobStatus::Success);
    assert_not_found(
        s.heartbeat(InstanceId(id.0 + 1000), agent.id, 1, t(55), t(95))
            .await,
    );
}

/// Several reports in one call: each is recorded or refused on its own
/// (its log chunk with it), in order; a refused one leaves no trace.
pub async fn complete_many_records_each_report_on_its_own<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "many").await;
    let (run, instances) = run_with_queued(&s, &repo, 3).await;
    let agent = add_agent(&s, "agent-1").await;
    for i in &instances {
        s.claim(i.id, agent.id, t(10), t(40))
            .await
            .expect("claim")
            .expect("claim wins");
    }
    let (a, b, c) = (instances[0].id, instances[1].id, instances[2].id);
    let report = |id: InstanceId, attempt: u32, status: JobStatus, text: &str| FinishedAttempt {
        instance: id,
        attempt,
        logs: Some((0, vec![line(id, attempt, 1, text)])),
        result: job_result(status, attempt),
    };
    let outcomes = s
        .complete_many(
            agent.id,
            vec![
                report(a, 1, JobStatus::Success, "a's last line"),
                report(b, 7, JobStatus::Success, "b from a stale attempt"),
                report(c, 1, JobStatus::Running, "c is not final"),
                report(InstanceId(a.0 + 1000), 1, JobStatus::Success, "nobody's"),
                FinishedAttempt {
                    logs: None,
                    ..report(b, 1, JobStatus::Failure, "")
                },
            ],
            t(20),
        )
        .await
        .expect("complete_many");
    assert_eq!(outcomes.len(), 5);
    assert_eq!(
        outcomes[0].as_ref().expect("a is recorded"),
        &Completed {
            run: run.id,
            requeued: false
        }
    );
    assert!(
        matches!(outcomes[1], Err(StoreError::Stale(_))),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2], Err(StoreError::Invalid(_))),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(StoreError::NotFound(_))),
        "{:?}",
        outcomes[3]
    );
    assert!(outcomes[4].is_ok(), "{:?}", outcomes[4]);
    assert_eq!(s.instance(a).await.unwrap().status, JobStatus::Success);
    assert_eq!(s.instance(b).await.unwrap().status, JobStatus::Failure);
    assert_eq!(s.instance(c).await.unwrap().status, JobStatus::Running);
    let page = s.logs(run.id, None, 0).await.unwrap();
    assert_eq!(
        texts(&page),
        vec!["a's last line"],
        "refused reports store no lines"
    );
    // Sent again after a lost answer: stale, and nothing changes.
    let again = s
        .complete_many(
            agent.id,
            vec![report(a, 1, JobStatus::Failure, "again")],
            t(21),
        )
        .await
        .expect("complete_many");
    assert!(
        matches!(again[0], Err(StoreError::Stale(_))),
        "{:?}",
        again[0]
    );
    assert_eq!(s.instance(a).await.unwrap().status, JobStatus::Success);
    // Another agent's report on a job leased to agent-1 is refused.
    let other = add_agent(&s, "agent-2").await;
    let foreign = s
        .complete_many(
            other.id,
            vec![report(c, 1, JobStatus::Success, "not mine")],
            t(22),
        )
        .await
        .expect("complete_many");
    assert!(
        matches!(foreign[0], Err(StoreError::NotOwner(_))),
        "{:?}",
        foreign[0]
    );
    assert_eq!(s.instance(c).await.unwrap().status, JobStatus::Running);
}

/// Cancelling a queued job ends it at once (Cancelled, reason `cancelled`,
/// waiting to be fed back); a running one gets `cancel_requested`, which
/// its heartbeat reports; a finished one is left alone.
pub async fn cancel_queued_and_running<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 3).await;
    let agent = add_agent(&s, "agent-1").await;
    let (queued, running, done) = (instances[0].id, instances[1].id, instances[2].id);
    s.claim(running, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(done, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.complete(done, agent.id, 1, job_result(JobStatus::Success, 1), t(12))
        .await
        .unwrap();
    let run = s.run(run.id).await.unwrap();
    let done_before = s.instance(done).await.unwrap();

    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "cancelling".into(),
            cancel: vec![queued, running, done],
            now: t(13),
            ..Transition::default()
        },
    )
    .await
    .unwrap();

    let q = s.instance(queued).await.unwrap();
    assert_eq!(q.status, JobStatus::Cancelled);
    assert_eq!(q.reason.as_deref(), Some("cancelled"));
    assert!(!q.graph_applied);
    assert_eq!(q.finished_at, Some(t(13)));
    assert_eq!(s.claim(queued, agent.id, t(14), t(44)).await.unwrap(), None);

    let r = s.instance(running).await.unwrap();
    assert_eq!(r.status, JobStatus::Running);
    assert!(r.cancel_requested);
    assert!(
        s.heartbeat(running, agent.id, 1, t(14), t(44))
            .await
            .unwrap()
    );

    assert_eq!(s.instance(done).await.unwrap(), done_before);
    let unapplied = s.unapplied().await.unwrap();
    assert!(unapplied.contains(&(run.id, queued)));
    assert!(!unapplied.contains(&(run.id, running)));
    assert!(s.candidates(10).await.unwrap().is_empty());

    // The agent stops the job and reports it; the result decides.
    s.complete(
        running,
        agent.id,
        1,
        job_result(JobStatus::Cancelled, 1),
        t(15),
    )
    .await
    .unwrap();
    assert_eq!(
        s.instance(running).await.unwrap().status,
        JobStatus::Cancelled
    );
}

/// `complete` ends the attempt with the result's status and reason, stores
/// the result, and leaves `graph_applied = false`: `unapplied` lists the job
/// until a transition marks it applied.
pub async fn complete_until_applied<S: Store + 'static>(s: S) {
    let (run, job, agent) = claimed(&s).await;
    let result = job_result(JobStatus::Failure, 1);
    let refused = s
        .complete(
            job.id,
            agent.id,
            1,
            job_result(JobStatus::Running, 1),
            t(20),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "a non-final result is refused as invalid, got {refused:?}"
    );
    assert_eq!(
        s.complete(job.id, agent.id, 1, result.clone(), t(20))
            .await
            .unwrap(),
        Completed {
            run: run.id,
            requeued: false
        }
    );
    let done = s.instance(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failure);
    assert_eq!(done.reason, result.reason);
    assert_eq!(done.result.as_ref(), Some(&result));
    assert_eq!(done.finished_at, Some(t(20)));
    assert_eq!(done.started_at, Some(t(10)));
    assert_eq!(done.attempt, 1);
    assert_eq!(done.agent_name.as_deref(), Some("agent-1"));
    assert!(!done.graph_applied);
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, JobStatus::Failure);
    assert_eq!(attempts[0].reason, result.reason);
    assert_eq!(attempts[0].failure, Some(FailureClass::ExitCode));
    assert_eq!(attempts[0].finished_at, Some(t(20)));
    assert_eq!(attempts[0].result.as_ref(), Some(&result));
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, job.id)]);
    assert!(s.running_by_agent().await.unwrap().is_empty());
    // The light view carries the result's outputs.
    let state = s
        .instance_states(run.id)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == job.id)
        .unwrap();
    assert_eq!(state.status, JobStatus::Failure);
    assert_eq!(state.outputs, result.outputs);

    let run = s.run(run.id).await.unwrap();
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "fed".into(),
            applied: vec![job.id],
            now: t(21),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert!(s.instance(job.id).await.unwrap().graph_applied);
    assert!(s.unapplied().await.unwrap().is_empty());
}

/// Lost leases: nothing happens before the lease ends; then the attempt
/// ends `agent-lost` and the job is requeued, at its old place in the
/// queue (pinned: ahead of jobs queued after it); once `max_attempts` are
/// used up it fails for good with `agent-lost: gave up after N attempts`.
pub async fn expire_requeues_then_gives_up<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let mut flaky = new_instance(0, 0, JobStatus::Queued);
    flaky.retry.max = 1;
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            new_instances: vec![flaky, new_instance(1, 0, JobStatus::Queued)],
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let instances = s.instances(run.id).await.unwrap();
    let (id, later) = (instances[0].id, instances[1].id);
    let agent = add_agent(&s, "agent-1").await;

    s.claim(id, agent.id, t(10), t(40)).await.unwrap().unwrap();
    assert!(
        s.expire_leases(t(40)).await.unwrap().is_empty(),
        "the lease ends after t(40)"
    );
    assert_eq!(
        s.expire_leases(t(41)).await.unwrap(),
        vec![Expired {
            instance: id,
            run: run.id,
            attempt: 1,
            requeued: true
        }]
    );
    let requeued = s.instance(id).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Queued);
    assert_eq!(requeued.attempt, 1);
    assert_eq!(requeued.agent, None);
    assert_eq!(requeued.lease_expires_at, None);
    assert_eq!(requeued.finished_at, None);
    assert!(requeued.graph_applied);
    assert_eq!(
        s.candidates(10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![id, later]
    );
    assert!(s.unapplied().await.unwrap().is_empty());

    let again = s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    assert_eq!(
        again.started_at,
        Some(t(10)),
        "started_at is the first claim's"
    );
    assert_eq!(
        s.expire_leases(t(81)).await.unwrap(),
        vec![Expired {
            instance: id,
            run: run.id,
            attempt: 2,
            requeued: false
        }]
    );
    let failed = s.instance(id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failure);
    assert_eq!(
        failed.reason.as_deref(),
        Some("agent-lost: gave up after 2 attempts")
    );
    assert_eq!(failed.finished_at, Some(t(81)));
    assert_eq!(failed.lease_expires_at, None);
    assert!(!failed.graph_applied);
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, id)]);
    assert!(s.expire_leases(t(200)).await.unwrap().is_empty());

    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a.instance, id);
        assert_eq!(a.attempt as usize, n + 1);
        assert_eq!(a.status, JobStatus::Failure);
        assert_eq!(a.reason.as_deref(), Some("agent-lost"));
        assert_eq!(a.agent_name, "agent-1");
    }
    assert_eq!(attempts[0].finished_at, Some(t(41)));
    assert_eq!(attempts[1].finished_at, Some(t(81)));
}

/// A job whose cancellation was requested is not requeued when its lease
/// is lost: it ends Cancelled, waiting to be fed back.
pub async fn expire_cancelled_job<S: Store + 'static>(s: S) {
    let (run, job, _) = claimed(&s).await;
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            cancel: vec![job.id],
            now: t(11),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.expire_leases(t(41)).await.unwrap(),
        vec![Expired {
            instance: job.id,
            run: run.id,
            attempt: 1,
            requeued: false
        }]
    );
    let gone = s.instance(job.id).await.unwrap();
    assert_eq!(gone.status, JobStatus::Cancelled);
    assert!(!gone.graph_applied);
    assert_eq!(gone.finished_at, Some(t(41)));
    assert!(s.candidates(10).await.unwrap().is_empty());
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts[0].reason.as_deref(), Some("agent-lost"));
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, job.id)]);
}

/// `extend_all_leases(until)` gives every running job a lease until at
/// least `until` (pinned: a longer lease is kept); queued jobs get none.
pub async fn extend_all_leases<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (_, instances) = run_with_queued(&s, &repo, 3).await;
    let agent = add_agent(&s, "agent-1").await;
    s.claim(instances[0].id, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[1].id, agent.id, t(10), t(500))
        .await
        .unwrap()
        .unwrap();
    s.extend_all_leases(t(300)).await.unwrap();
    assert_eq!(
        s.instance(instances[0].id).await.unwrap().lease_expires_at,
        Some(t(300))
    );
    assert_eq!(
        s.instance(instances[1].id).await.unwrap().lease_expires_at,
        Some(t(500))
    );
    assert_eq!(
        s.instance(instances[2].id).await.unwrap().lease_expires_at,
        None
    );
    assert!(s.expire_leases(t(299)).await.unwrap().is_empty());
    assert_eq!(s.expire_leases(t(301)).await.unwrap().len(), 1);
}

/// `running_by_agent` lists each running job with its agent and weight.
pub async fn running_by_agent<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (_, instances) = run_with_queued(&s, &repo, 3).await;
    let a = add_agent(&s, "agent-a").await;
    let b = add_agent(&s, "agent-b").await;
    s.claim(instances[0].id, a.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[1].id, b.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[2].id, a.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.complete(
        instances[2].id,
        a.id,
        1,
        job_result(JobStatus::Success, 1),
        t(11),
    )
    .await
    .unwrap();
    let mut got = s.running_by_agent().await.unwrap();
    got.sort();
    let mut expected = vec![
        (a.id, instances[0].id, instances[0].weight),
        (b.id, instances[1].id, instances[1].weight),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

/// Only the agent holding an attempt's lease may heartbeat, log or complete
/// it: another agent gets NotOwner even with the right attempt number, and
/// nothing changes.
pub async fn fencing_binds_attempts_to_their_agent<S: Store + 'static>(s: S) {
    let (run, job, holder) = claimed(&s).await;
    let id = job.id;
    let other = add_agent(&s, "agent-2").await;
    let not_owner = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::NotOwner(_))),
            "expected NotOwner, got {r:?}"
        );
    };
    not_owner(s.heartbeat(id, other.id, 1, t(11), t(99)).await.map(|_| ()));
    not_owner(
        s.append_logs(
            id,
            other.id,
            1,
            0,
            &[crate::conformance::fixtures::line(id, 1, 1, "forged")],
        )
        .await,
    );
    not_owner(
        s.complete(id, other.id, 1, job_result(JobStatus::Success, 1), t(12))
            .await
            .map(|_| ()),
    );
    let still = s.instance(id).await.unwrap();
    assert_eq!(still.status, JobStatus::Running);
    assert_eq!(
        still.lease_expires_at,
        Some(t(40)),
        "the forged heartbeat moved nothing"
    );
    assert!(s.logs(run.id, None, 0).await.unwrap().entries.is_empty());
    // The holder's own reports still go through.
    s.heartbeat(id, holder.id, 1, t(13), t(43)).await.unwrap();
    s.complete(id, holder.id, 1, job_result(JobStatus::Success, 1), t(14))
        .await
        .unwrap();
    assert_eq!(s.instance(id).await.unwrap().status, JobStatus::Success);
}

/// A lease that runs out declares its silent agent lost, in the store (so
/// it survives a restart); any call from the agent brings it back online.
/// `mark_lost_agents` does the same for agents silent without a job.
pub async fn lost_agents_are_recorded<S: Store + 'static>(s: S) {
    let (_, _, agent) = claimed(&s).await;
    let idle = add_agent(&s, "idle").await;
    assert_eq!(s.agent(agent.id).await.unwrap().lost_at, None);
    s.expire_leases(t(41)).await.unwrap();
    assert_eq!(s.agent(agent.id).await.unwrap().lost_at, Some(t(41)));
    assert_eq!(
        s.agent(idle.id).await.unwrap().lost_at,
        None,
        "no lease, no verdict"
    );
    s.touch_agent(agent.id, t(42)).await.unwrap();
    assert_eq!(s.agent(agent.id).await.unwrap().lost_at, None);
    let lost = s.mark_lost_agents(t(5), t(50)).await.unwrap();
    assert_eq!(lost, vec![idle.id], "only the one silent since before t(5)");
    assert_eq!(s.agent(idle.id).await.unwrap().lost_at, Some(t(50)));
    assert!(
        s.mark_lost_agents(t(5), t(60)).await.unwrap().is_empty(),
        "once"
    );
}
