//! Cases: `apply`: the version check, atomicity, and the instances a
//! transition creates.

use super::fixtures::*;
use crate::ports::Store;
use crate::types::*;
use kiln_model::{InstanceId, JobStatus, RunId};

/// `apply` with the current version succeeds and returns the next one; with
/// an old version it is a Conflict and nothing changes.
pub async fn apply_checks_the_version<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let v1 = run.version;
    let v2 = s
        .apply(
            run.id,
            Transition {
                expected_version: v1,
                graph: "g2".into(),
                graph_nodes: vec![(1, "node 1, changed".into())],
                status: Some(JobStatus::Running),
                started_at: Some(t(2)),
                now: t(2),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
    assert!(v2 > v1, "the version must move on: {v1} -> {v2}");
    let after = s.run(run.id).await.unwrap();
    assert_eq!(after.version, v2);
    assert_eq!(after.graph.as_deref(), Some("g2"));
    assert_eq!(
        s.graph_nodes(run.id).await.unwrap(),
        vec![
            (0, "{\"node\":0}".to_owned()),
            (1, "node 1, changed".to_owned())
        ],
        "only the nodes the transition changed are rewritten"
    );
    assert_eq!(after.status, JobStatus::Running);
    assert_eq!(after.started_at, Some(t(2)));
    assert_eq!(after.finished_at, None);

    // A second writer still holding v1 loses, and changes nothing.
    assert_conflict(
        s.apply(
            run.id,
            Transition {
                expected_version: v1,
                graph: "lost".into(),
                graph_nodes: vec![(0, "lost".into())],
                status: Some(JobStatus::Failure),
                finished_at: Some(t(3)),
                new_instances: vec![new_instance(0, 0, JobStatus::Queued)],
                now: t(3),
                ..Transition::default()
            },
        )
        .await,
    );
    assert_eq!(s.run(run.id).await.unwrap(), after);
    assert_eq!(s.graph_nodes(run.id).await.unwrap()[0].1, "{\"node\":0}");
    assert!(s.instances(run.id).await.unwrap().is_empty());
    assert!(s.candidates(10).await.unwrap().is_empty());

    // Fields left `None` are kept.
    let v3 = s
        .apply(
            run.id,
            Transition {
                expected_version: v2,
                graph: "g3".into(),
                status: Some(JobStatus::Success),
                finished_at: Some(t(4)),
                now: t(4),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
    let done = s.run(run.id).await.unwrap();
    assert_eq!(done.version, v3);
    assert_eq!(done.started_at, Some(t(2)));
    assert_eq!(done.finished_at, Some(t(4)));
    assert_eq!(done.status, JobStatus::Success);
    assert!(s.active_runs().await.unwrap().is_empty());

    assert_not_found(
        s.apply(
            RunId(run.id.0 + 1000),
            Transition {
                expected_version: v3,
                ..Transition::default()
            },
        )
        .await,
    );
}

/// A transition that fails part-way (an unknown instance to cancel) leaves
/// no trace: no version bump, no new instances.
pub async fn apply_is_all_or_nothing<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 1).await;
    let result = s
        .apply(
            run.id,
            Transition {
                expected_version: run.version,
                graph: "half".into(),
                new_instances: vec![new_instance(1, 0, JobStatus::Queued)],
                cancel: vec![InstanceId(instances[0].id.0 + 1000)],
                now: t(5),
                ..Transition::default()
            },
        )
        .await;
    assert!(
        result.is_err(),
        "cancelling an unknown job must fail, got {result:?}"
    );
    assert_eq!(s.run(run.id).await.unwrap(), run);
    assert_eq!(s.instances(run.id).await.unwrap(), instances);
}

/// New instances: queued ones enter the queue; terminal ones are stored
/// terminal, finished at `now`, already applied to the graph, and never
/// queued. `instances` orders by (node, index). Pinned: `graph_applied` is
/// true for queued instances too (it is false only while a terminal status
/// waits to be fed back).
pub async fn transition_creates_instances<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let news = vec![
        new_instance(1, 1, JobStatus::Queued),
        new_instance(2, 0, JobStatus::Skipped),
        new_instance(1, 0, JobStatus::Queued),
        new_instance(0, 0, JobStatus::Cancelled),
    ];
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            new_instances: news.clone(),
            now: t(3),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let got = s.instances(run.id).await.unwrap();
    let keys: Vec<(u32, u32)> = got.iter().map(|i| (i.node, i.index)).collect();
    assert_eq!(keys, vec![(0, 0), (1, 0), (1, 1), (2, 0)]);
    for i in &got {
        let new = news
            .iter()
            .find(|n| (n.node, n.index) == (i.node, i.index))
            .unwrap();
        assert_eq!(i.run, run.id);
        assert_eq!(i.repo, repo.id);
        assert_eq!(i.job_key, new.job_key);
        assert_eq!(i.name, new.name);
        assert_eq!(i.matrix, new.matrix);
        assert_eq!(i.runs_on, new.runs_on);
        assert_eq!(i.weight, new.weight);
        assert_eq!(i.status, new.status);
        assert_eq!(i.reason, new.reason);
        assert_eq!(i.contexts, new.contexts);
        assert_eq!(i.retry, new.retry);
        assert_eq!(i.priority, new.priority);
        assert_eq!(i.attempt, 0);
        assert_eq!(i.agent, None);
        assert_eq!(i.agent_name, None);
        assert_eq!(i.lease_expires_at, None);
        assert!(!i.cancel_requested);
        assert_eq!(i.result, None);
        assert!(i.graph_applied, "{} must count as applied", i.name);
        assert_eq!(i.queued_at, t(3));
        assert_eq!(i.started_at, None);
        match i.status {
            JobStatus::Queued => assert_eq!(i.finished_at, None),
            JobStatus::Cancelled | JobStatus::Skipped => assert_eq!(i.finished_at, Some(t(3))),
            JobStatus::Running | JobStatus::Success | JobStatus::Failure => {
                panic!("unexpected status {}", i.status)
            }
        }
        assert_eq!(&s.instance(i.id).await.unwrap(), i);
    }
    let queued: Vec<InstanceId> = s
        .candidates(10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let expected: Vec<InstanceId> = [(1, 1), (1, 0)]
        .iter()
        .map(|k| got.iter().find(|i| (i.node, i.index) == *k).unwrap().id)
        .collect();
    assert_eq!(queued, expected, "queued in creation order");
    assert!(s.unapplied().await.unwrap().is_empty());
    assert_not_found(s.instance(InstanceId(got[3].id.0 + 1000)).await);
    assert_not_found(s.instances(RunId(run.id.0 + 1000)).await);

    // The light views agree with the full records.
    let states = s.instance_states(run.id).await.unwrap();
    let light: Vec<(InstanceId, u32, u32, String, JobStatus)> = states
        .iter()
        .map(|i| (i.id, i.node, i.index, i.job_key.clone(), i.status))
        .collect();
    let full: Vec<(InstanceId, u32, u32, String, JobStatus)> = got
        .iter()
        .map(|i| (i.id, i.node, i.index, i.job_key.clone(), i.status))
        .collect();
    assert_eq!(light, full);
    assert!(states.iter().all(|i| i.outputs.is_empty()));
    let head = s.run_head(run.id).await.unwrap();
    let mut whole = s.run(run.id).await.unwrap();
    whole.workflow = None;
    assert_eq!(head, whole, "run_head is the run without its workflow");
    assert_not_found(s.run_head(RunId(run.id.0 + 1000)).await);
}
