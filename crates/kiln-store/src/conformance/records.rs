//! Cases: repositories, runs, agents, tokens, and timestamp precision.

use super::fixtures::*;
use crate::ports::Store;
use crate::types::*;
use jiff::Timestamp;
use kiln_model::{AgentId, JobStatus, RepoId, RunId};
use kiln_proto::api::Role;

/// Repositories: add, a taken name is a Conflict, list, look up by name.
pub async fn repos_add_duplicate_list<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    assert_eq!(a.name, "alpha");
    assert_eq!(a.url, "https://forge.invalid/alpha.git");
    assert_eq!(a.created_at, t(0));
    let b = add_repo(&s, "beta").await;
    assert_ne!(a.id, b.id);
    assert_conflict(s.add_repo("alpha", "file:///elsewhere", t(1)).await);

    let mut all = s.repos().await.unwrap();
    all.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(all, vec![a.clone(), b]);
    assert_eq!(s.repo_by_name("alpha").await.unwrap(), Some(a));
    assert_eq!(s.repo_by_name("gamma").await.unwrap(), None);
}

/// Runs: create, read back exactly, list newest first (by repository and
/// limited), active runs; unknown repository or run is NotFound. A run
/// created terminal (an invalid workflow) is not active.
pub async fn runs_create_read_list<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    let r1 = s.create_run(new_run(&a, t(1))).await.unwrap();
    let mut invalid = new_run(&b, t(2));
    invalid.status = JobStatus::Failure;
    invalid.error = Some("ci.yml:3:5: error: unknown key `jobz`".into());
    invalid.graph = None;
    let r2 = s.create_run(invalid).await.unwrap();
    let r3 = s.create_run(new_run(&a, t(3))).await.unwrap();

    let expected = new_run(&a, t(1));
    assert_eq!(r1.repo, a.id);
    assert_eq!(r1.repo_name, "alpha");
    assert_eq!(r1.repo_url, a.url);
    assert_eq!(r1.workflow_file, expected.workflow_file);
    assert_eq!(r1.workflow_name, expected.workflow_name);
    assert_eq!(r1.commit, expected.commit);
    assert_eq!(r1.git_ref, expected.git_ref);
    assert_eq!(r1.event, expected.event);
    assert_eq!(r1.workflow, None);
    assert_eq!(r1.contexts, expected.contexts);
    assert_eq!(r1.status, JobStatus::Queued);
    assert_eq!(r1.error, None);
    let graph = expected.graph.expect("a graph");
    assert_eq!(r1.graph.as_deref(), Some(graph.head.as_str()));
    assert_eq!(
        s.graph_nodes(r1.id).await.unwrap(),
        vec![(0, graph.nodes[0].clone()), (1, graph.nodes[1].clone())]
    );
    assert_eq!(r1.created_at, t(1));
    assert_eq!(r1.started_at, None);
    assert_eq!(r1.finished_at, None);
    assert_eq!(r2.status, JobStatus::Failure);
    assert_eq!(
        r2.error.as_deref(),
        Some("ci.yml:3:5: error: unknown key `jobz`")
    );
    assert_eq!(r2.graph, None);
    assert!(s.graph_nodes(r2.id).await.unwrap().is_empty());

    assert_eq!(s.run(r1.id).await.unwrap(), r1);
    assert_eq!(s.run(r2.id).await.unwrap(), r2);
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.runs(None, 10).await.unwrap()),
        vec![r3.id, r2.id, r1.id]
    );
    assert_eq!(ids(s.runs(None, 2).await.unwrap()), vec![r3.id, r2.id]);
    assert_eq!(
        ids(s.runs(Some(a.id), 10).await.unwrap()),
        vec![r3.id, r1.id]
    );
    assert_eq!(ids(s.runs(Some(b.id), 10).await.unwrap()), vec![r2.id]);
    let mut active = s.active_runs().await.unwrap();
    active.sort();
    assert_eq!(active, vec![r1.id, r3.id]);

    assert_not_found(s.run(RunId(r3.id.0 + 1000)).await);
    let mut orphan = new_run(&a, t(4));
    orphan.repo = RepoId(a.id.0 + b.id.0 + 1000);
    assert_not_found(s.create_run(orphan).await);
    assert_eq!(s.runs(None, 10).await.unwrap().len(), 3);
}

/// Every timestamp comes back exactly, to the microsecond.
pub async fn timestamps_keep_microseconds<S: Store + 'static>(s: S) {
    let at = Timestamp::from_microsecond(1_712_345_678_901_234).unwrap();
    let repo = s.add_repo("micro", "file:///micro", at).await.unwrap();
    assert_eq!(repo.created_at, at);
    assert_eq!(
        s.repo_by_name("micro").await.unwrap().unwrap().created_at,
        at
    );
    let agent = s.register_agent("a", &[], 1, "s-a-at", at).await.unwrap();
    assert_eq!(s.agent(agent.id).await.unwrap().last_seen, at);
}

/// Agents register by name: again with the same name keeps the id and
/// updates labels, capacity and `last_seen`; `touch_agent` moves
/// `last_seen`; an unknown id is NotFound.
pub async fn agents_upsert<S: Store + 'static>(s: S) {
    let a = s
        .register_agent("builder", &["linux".into()], 2, "s-builder-0", t(0))
        .await
        .unwrap();
    assert_eq!(a.name, "builder");
    assert_eq!(a.labels, vec!["linux".to_owned()]);
    assert_eq!(a.capacity, 2);
    assert_eq!(a.last_seen, t(0));
    let b = s
        .register_agent("other", &[], 1, "s-other-1", t(1))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);

    let again = s
        .register_agent(
            "builder",
            &["linux".into(), "gpu".into()],
            8,
            "s-builder-5",
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(again.labels, vec!["linux".to_owned(), "gpu".to_owned()]);
    assert_eq!(again.capacity, 8);
    assert_eq!(again.last_seen, t(5));
    assert_eq!(s.agent(a.id).await.unwrap(), again);

    s.touch_agent(a.id, t(9)).await.unwrap();
    assert_eq!(s.agent(a.id).await.unwrap().last_seen, t(9));
    let mut all = s.agents().await.unwrap();
    all.sort_by_key(|r| r.id);
    assert_eq!(all.len(), 2);
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["builder", "other"]
    );

    let unknown = AgentId(a.id.0 + b.id.0 + 1000);
    assert_not_found(s.agent(unknown).await);
    assert_not_found(s.touch_agent(unknown, t(10)).await);
}

/// Tokens are stored and found by hash; a hash stored twice is a Conflict.
pub async fn tokens<S: Store + 'static>(s: S) {
    assert_eq!(s.token_count().await.unwrap(), 0);
    let h1 = "a".repeat(64);
    let h2 = "b".repeat(64);
    let admin = s
        .add_token(&h1, Role::Admin, Some("bootstrap"), t(0))
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.name.as_deref(), Some("bootstrap"));
    assert_eq!(admin.created_at, t(0));
    let agent = s.add_token(&h2, Role::Agent, None, t(1)).await.unwrap();
    assert_ne!(admin.id, agent.id);
    assert_conflict(s.add_token(&h1, Role::Viewer, None, t(2)).await);
    assert_eq!(s.token_count().await.unwrap(), 2);
    assert_eq!(s.token_by_hash(&h1).await.unwrap(), Some(admin));
    assert_eq!(s.token_by_hash(&h2).await.unwrap(), Some(agent));
    assert_eq!(s.token_by_hash(&"c".repeat(64)).await.unwrap(), None);
}
