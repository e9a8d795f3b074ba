//! Cases: concurrency groups and environments (gate entries, holds,
//! approvals, environment records).

use super::fixtures::*;
use crate::ports::Store;
use crate::types::*;
use kiln_core::gate::{Approval, GateKind};
use kiln_model::JobStatus;
use kiln_proto::api::{WaitKind, Waiting};

fn gate(kind: GateKind, name: &str, commit: &str, approval: Approval) -> NewGate {
    NewGate {
        kind,
        name: name.into(),
        commit: commit.into(),
        force: false,
        cancel_in_progress: false,
        approval,
        actor: "alice".into(),
    }
}

fn waiting(kind: WaitKind, name: &str) -> Waiting {
    Waiting {
        kind,
        name: name.into(),
    }
}

/// A held instance enters its gate with its transition, is never a
/// candidate or claimable while held, and becomes both once released; an
/// entry is released once.
pub async fn held_instances_wait_for_release<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let mut inst = new_instance(0, 0, JobStatus::Queued);
    inst.gate = Some((
        gate(
            GateKind::Environment,
            "production",
            "c1",
            Approval::NotNeeded,
        ),
        waiting(WaitKind::Environment, "production"),
    ));
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "{}".into(),
            new_instances: vec![inst],
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let i = &s.instances(run.id).await.unwrap()[0];
    assert_eq!(i.hold, Some(waiting(WaitKind::Environment, "production")));
    assert!(s.candidates(10).await.unwrap().is_empty());
    let agent = add_agent(&s, "a1").await;
    assert!(
        s.claim(i.id, agent.id, t(3), t(30))
            .await
            .unwrap()
            .is_none()
    );

    let key = GateKey {
        repo: repo.id,
        kind: GateKind::Environment,
        name: "production".into(),
    };
    assert_eq!(s.live_gates().await.unwrap(), vec![key.clone()]);
    let entries = s.gate_entries(&key).await.unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.instance, Some(i.id));
    assert_eq!(e.job_key.as_deref(), Some("job0"));
    assert_eq!(e.state, EntryState::Waiting);
    assert_eq!(e.subject_status, JobStatus::Queued);
    assert_eq!(e.commit, "c1");

    assert!(s.release_entry(e.id, t(4)).await.unwrap());
    assert!(!s.release_entry(e.id, t(4)).await.unwrap());
    assert_eq!(s.instances(run.id).await.unwrap()[0].hold, None);
    assert_eq!(s.candidates(10).await.unwrap().len(), 1);
    assert_eq!(
        s.gate_entries(&key).await.unwrap()[0].state,
        EntryState::Holding
    );
}

/// Ending a waiting entry ends its held subject (fed back to the graph);
/// ending a holder records the environment in the same call; done entries
/// leave the live set but stay in the history, newest first.
pub async fn ending_entries_and_environments<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let mut a = new_instance(0, 0, JobStatus::Queued);
    a.gate = Some((
        gate(GateKind::Environment, "prod", "c1", Approval::NotNeeded),
        waiting(WaitKind::Environment, "prod"),
    ));
    let mut b = new_instance(1, 0, JobStatus::Queued);
    b.gate = Some((
        gate(GateKind::Environment, "prod", "c2", Approval::Pending),
        waiting(WaitKind::Approval, "prod"),
    ));
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "{}".into(),
            new_instances: vec![a, b],
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let key = GateKey {
        repo: repo.id,
        kind: GateKind::Environment,
        name: "prod".into(),
    };
    let entries = s.gate_entries(&key).await.unwrap();
    let (ea, eb) = (&entries[0], &entries[1]);
    assert_eq!(eb.approval, Approval::Pending);

    // Approval: once, and only while pending.
    assert!(
        s.set_approval(
            eb.id,
            Approval::Granted,
            "bob",
            Some(waiting(WaitKind::Environment, "prod")),
            t(3)
        )
        .await
        .unwrap()
    );
    assert!(
        !s.set_approval(eb.id, Approval::Rejected, "eve", None, t(3))
            .await
            .unwrap()
    );
    let eb2 = &s.gate_entries(&key).await.unwrap()[1];
    assert_eq!(eb2.approval, Approval::Granted);
    assert_eq!(eb2.approver.as_deref(), Some("bob"));

    // The older one is superseded: its instance ends skipped, unapplied.
    assert!(
        s.end_entry(EndEntry {
            id: ea.id,
            outcome: "superseded by c2".into(),
            end_subject: Some(JobStatus::Skipped),
            environment: None,
            now: t(4),
        })
        .await
        .unwrap()
    );
    let ia = s.instance(ea.instance.unwrap()).await.unwrap();
    assert_eq!(ia.status, JobStatus::Skipped);
    assert_eq!(ia.reason.as_deref(), Some("superseded by c2"));
    assert!(!ia.graph_applied);
    assert!(s.unapplied().await.unwrap().contains(&(run.id, ia.id)));

    // The newer one deploys and records the environment.
    assert!(s.release_entry(eb.id, t(5)).await.unwrap());
    assert_eq!(s.environment(repo.id, "prod").await.unwrap(), None);
    let env = EnvironmentRecord {
        repo: repo.id,
        name: "prod".into(),
        commit: "c2".into(),
        healthy: true,
        run: run.id,
        entry: eb.id,
        deployed_by: "alice (approved by bob)".into(),
        deployed_at: t(6),
    };
    assert!(
        s.end_entry(EndEntry {
            id: eb.id,
            outcome: "deployed".into(),
            end_subject: None,
            environment: Some(env.clone()),
            now: t(6),
        })
        .await
        .unwrap()
    );
    assert_eq!(s.environment(repo.id, "prod").await.unwrap(), Some(env));
    assert!(s.live_gates().await.unwrap().is_empty());
    let history = s.gate_history(&key, 10).await.unwrap();
    let outcomes: Vec<_> = history.iter().map(|e| e.outcome.as_deref()).collect();
    assert_eq!(outcomes, vec![Some("deployed"), Some("superseded by c2")]);
    assert_eq!(
        s.environment_names(repo.id).await.unwrap(),
        vec!["prod".to_owned()]
    );
    // Ending twice changes nothing.
    assert!(
        !s.end_entry(EndEntry {
            id: eb.id,
            outcome: "again".into(),
            end_subject: None,
            environment: None,
            now: t(7),
        })
        .await
        .unwrap()
    );
}

/// A run held by its workflow's group starts no graph until released; a
/// waiting run ended by its gate ends with the outcome as its error.
pub async fn held_runs_in_groups<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let mut nr = new_run(&repo, t(1));
    nr.hold = Some(waiting(WaitKind::Group, "ci"));
    nr.gate = Some(gate(GateKind::Group, "ci", "c1", Approval::NotNeeded));
    let r1 = s.create_run(nr.clone()).await.unwrap();
    assert_eq!(r1.hold, Some(waiting(WaitKind::Group, "ci")));
    let r2 = s.create_run(nr).await.unwrap();
    let key = GateKey {
        repo: repo.id,
        kind: GateKind::Group,
        name: "ci".into(),
    };
    let entries = s.gate_entries(&key).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].instance, None);
    assert!(s.release_entry(entries[0].id, t(2)).await.unwrap());
    assert_eq!(s.run(r1.id).await.unwrap().hold, None);
    assert!(
        s.end_entry(EndEntry {
            id: entries[1].id,
            outcome: "cancelled by run 1".into(),
            end_subject: Some(JobStatus::Cancelled),
            environment: None,
            now: t(3),
        })
        .await
        .unwrap()
    );
    let r2 = s.run(r2.id).await.unwrap();
    assert_eq!(r2.status, JobStatus::Cancelled);
    assert_eq!(r2.error.as_deref(), Some("cancelled by run 1"));
    assert_eq!(r2.finished_at, Some(t(3)));
}
