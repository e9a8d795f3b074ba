//! Cases: trigger settings, polled refs, delivery and event claims,
//! schedules, pull request polling state, held runs.

use super::fixtures::*;
use crate::ports::{Store, StoreError};
use crate::types::*;
use kiln_model::{JobStatus, RepoId, RunId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Settings: the defaults until set, then exactly what was set, per
/// repository; an unknown repository is NotFound.
pub async fn trigger_settings_default_then_set<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    let defaults = s.trigger_settings(a.id).await.unwrap();
    assert_eq!(defaults, TriggerSettings::default());
    assert_eq!(defaults.poll_interval_secs, 60);
    assert!(defaults.fork_approval);
    let set = TriggerSettings {
        poll_interval_secs: 0,
        webhook_secret: Some("s3cret".into()),
        fork_approval: false,
        command_allowlist: vec!["alice".into(), "bob".into()],
        reply_to_outsiders: false,
        priority: -1000,
    };
    s.set_trigger_settings(a.id, &set).await.unwrap();
    assert_eq!(s.trigger_settings(a.id).await.unwrap(), set);
    assert_eq!(
        s.trigger_settings(b.id).await.unwrap(),
        TriggerSettings::default()
    );
    let again = TriggerSettings {
        poll_interval_secs: 5,
        priority: 1000,
        ..set
    };
    s.set_trigger_settings(a.id, &again).await.unwrap();
    assert_eq!(s.trigger_settings(a.id).await.unwrap(), again);
    assert_not_found(s.trigger_settings(RepoId(999)).await);
    assert_not_found(s.set_trigger_settings(RepoId(999), &again).await);
}

/// Polled refs: `None` before the baseline, then the last map stored (an
/// empty map is a baseline too).
pub async fn polled_refs_baseline_and_replace<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    assert_eq!(s.polled_refs(a.id).await.unwrap(), None);
    s.set_polled_refs(a.id, &BTreeMap::new(), t(1))
        .await
        .unwrap();
    assert_eq!(s.polled_refs(a.id).await.unwrap(), Some(BTreeMap::new()));
    let refs: BTreeMap<String, String> = [
        ("refs/heads/main".to_owned(), "a".repeat(40)),
        ("refs/tags/v1".to_owned(), "b".repeat(40)),
    ]
    .into();
    s.set_polled_refs(a.id, &refs, t(2)).await.unwrap();
    assert_eq!(s.polled_refs(a.id).await.unwrap(), Some(refs));
    assert_not_found(s.polled_refs(RepoId(999)).await);
}

/// Deliveries and event keys are claimed once: the first caller gets
/// `true`, every later one `false`, also among 16 concurrent callers;
/// keys are per repository and delivery ids per forge.
pub async fn deliveries_and_events_claim_once<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    assert!(s.record_delivery("github", "d-1", t(1)).await.unwrap());
    assert!(!s.record_delivery("github", "d-1", t(2)).await.unwrap());
    assert!(s.record_delivery("gitea", "d-1", t(2)).await.unwrap());

    let key = "push:refs/heads/main:0123";
    assert!(s.claim_event(a.id, key, t(1)).await.unwrap());
    assert!(!s.claim_event(a.id, key, t(2)).await.unwrap());
    assert!(s.claim_event(b.id, key, t(2)).await.unwrap());
    assert!(s.event_claimed(a.id, key).await.unwrap());
    assert!(
        !s.event_claimed(a.id, "push:refs/heads/main:4567")
            .await
            .unwrap()
    );
    assert_not_found(s.claim_event(RepoId(999), key, t(3)).await);

    let s = Arc::new(s);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let repo = a.id;
            tokio::spawn(async move {
                let d = s.record_delivery("gitlab", "same", t(4)).await.unwrap();
                let e = s.claim_event(repo, "comment:77", t(4)).await.unwrap();
                (d, e)
            })
        })
        .collect();
    let mut deliveries = 0;
    let mut events = 0;
    for task in tasks {
        let (d, e) = task.await.unwrap();
        deliveries += usize::from(d);
        events += usize::from(e);
    }
    assert_eq!((deliveries, events), (1, 1));
}

/// Schedules: compare-and-set on the stored next fire; only one of two
/// callers expecting the same value wins; the cron text is kept.
pub async fn schedules_compare_and_set<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let file = ".kiln/workflows/nightly.yml";
    assert_eq!(s.schedule(a.id, file, 0).await.unwrap(), None);
    let first = ScheduleState {
        cron: "0 3 * * *".into(),
        next_fire: t(10),
    };
    assert!(
        s.advance_schedule(a.id, file, 0, None, &first)
            .await
            .unwrap()
    );
    assert!(
        !s.advance_schedule(a.id, file, 0, None, &first)
            .await
            .unwrap()
    );
    assert_eq!(
        s.schedule(a.id, file, 0).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(s.schedule(a.id, file, 1).await.unwrap(), None);
    let second = ScheduleState {
        cron: "0 3 * * *".into(),
        next_fire: t(20),
    };
    assert!(
        s.advance_schedule(a.id, file, 0, Some(t(10)), &second)
            .await
            .unwrap()
    );
    assert!(
        !s.advance_schedule(a.id, file, 0, Some(t(10)), &second)
            .await
            .unwrap()
    );
    assert_eq!(s.schedule(a.id, file, 0).await.unwrap(), Some(second));
}

/// Pull request polls: inserted, replaced by number, listed by number.
pub async fn pull_request_polls_upsert<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    assert_eq!(s.pull_request_polls(a.id).await.unwrap(), vec![]);
    let p9 = PullRequestPoll {
        number: 9,
        head_sha: "c".repeat(40),
        last_comment: 0,
    };
    let p3 = PullRequestPoll {
        number: 3,
        head_sha: "d".repeat(40),
        last_comment: 1_234_567_890_123,
    };
    s.set_pull_request_poll(a.id, &p9).await.unwrap();
    s.set_pull_request_poll(a.id, &p3).await.unwrap();
    let p9b = PullRequestPoll {
        head_sha: "e".repeat(40),
        last_comment: 5,
        ..p9
    };
    s.set_pull_request_poll(a.id, &p9b).await.unwrap();
    assert_eq!(s.pull_request_polls(a.id).await.unwrap(), vec![p3, p9b]);
}

/// Held runs: created held in one step (queued, never started), listed,
/// released once; a run that was never held is not released.
pub async fn held_runs_release_once<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let plain = s.create_run(new_run(&a, t(1))).await.unwrap();
    let held = s
        .create_held_run(new_run(&a, t(2)), "waiting for approval")
        .await
        .unwrap();
    assert_eq!(held.status, JobStatus::Queued);
    assert_eq!(
        s.run_hold(held.id).await.unwrap().as_deref(),
        Some("waiting for approval")
    );
    assert_eq!(s.run_hold(plain.id).await.unwrap(), None);
    assert_eq!(
        s.held_runs().await.unwrap(),
        vec![(held.id, "waiting for approval".to_owned())]
    );
    assert!(!s.release_run(plain.id).await.unwrap());
    assert!(s.release_run(held.id).await.unwrap());
    assert!(!s.release_run(held.id).await.unwrap());
    assert_eq!(s.held_runs().await.unwrap(), vec![]);
    let mut orphan = new_run(&a, t(3));
    orphan.repo = RepoId(999);
    assert_not_found(s.create_held_run(orphan, "x").await);
    assert!(!s.release_run(RunId(999)).await.unwrap());
}

/// An event's runs and its claim are one transaction: of 16 concurrent
/// callers creating runs for one event key, exactly one creates its runs
/// (all of them), the others create nothing; without a claim, runs are
/// always created.
pub async fn create_runs_claims_the_event_once<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "once").await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let repo = repo.clone();
            tokio::spawn(async move {
                s.create_runs(
                    Some(EventClaim {
                        repo: repo.id,
                        key: "push:refs/heads/main:abc".into(),
                        now: t(5),
                    }),
                    vec![new_run(&repo, t(5)), new_run(&repo, t(5))],
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(runs) = task.await.unwrap() {
            winners.push(runs);
        }
    }
    assert_eq!(winners.len(), 1, "one caller creates the event's runs");
    assert_eq!(winners[0].len(), 2);
    assert_eq!(s.runs(Some(repo.id), 100).await.unwrap().len(), 2);
    assert!(
        s.event_claimed(repo.id, "push:refs/heads/main:abc")
            .await
            .unwrap()
    );
    // A failed creation claims nothing: an unknown repository.
    let mut ghost = new_run(&repo, t(6));
    ghost.repo = RepoId(999);
    let missing = s
        .create_runs(
            Some(EventClaim {
                repo: repo.id,
                key: "push:refs/heads/main:def".into(),
                now: t(6),
            }),
            vec![ghost],
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert!(
        !s.event_claimed(repo.id, "push:refs/heads/main:def")
            .await
            .unwrap()
    );
    let free = s
        .create_runs(None, vec![new_run(&repo, t(7))])
        .await
        .unwrap();
    assert_eq!(free.map(|r| r.len()), Some(1));
}

/// Polling takes turns through the store: the first caller due polls and
/// moves the next poll; a second one (another server) is told when it is
/// due and changes nothing; once due, the next caller polls again.
pub async fn polls_take_turns<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "polled").await;
    assert_eq!(
        s.claim_poll(repo.id, t(10), t(70)).await.unwrap(),
        PollTurn::Mine
    );
    assert_eq!(
        s.claim_poll(repo.id, t(11), t(71)).await.unwrap(),
        PollTurn::NotDue(t(70))
    );
    assert_eq!(
        s.claim_poll(repo.id, t(70), t(130)).await.unwrap(),
        PollTurn::Mine
    );
    assert_not_found(s.claim_poll(RepoId(999), t(1), t(2)).await);
}
