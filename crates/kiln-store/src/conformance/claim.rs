//! Claiming in the store (`QueueStore::claim_next`): the rules of
//! `kiln_core::dispatch::pick`, over the whole queue, with the round-robin
//! cursor kept in the store.

use super::fixtures::*;
use crate::ports::Store;
use crate::types::*;
use kiln_core::dispatch::{Asker, Queued, pick};
use kiln_model::{AgentId, InstanceId, JobStatus, RepoId};

/// Queue `jobs` (runs-on, weight, priority) as one run of `repo`.
async fn queue<S: Store>(
    s: &S,
    repo: &RepoRecord,
    jobs: &[(&[&str], u32, i32)],
) -> Vec<InstanceId> {
    let run = s.create_run(new_run(repo, t(1))).await.expect("create_run");
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "{}".into(),
            status: Some(JobStatus::Running),
            started_at: Some(t(2)),
            new_instances: jobs
                .iter()
                .enumerate()
                .map(|(i, (runs_on, weight, priority))| NewInstance {
                    runs_on: runs_on.iter().map(|l| l.to_string()).collect(),
                    weight: *weight,
                    priority: *priority,
                    ..new_instance(0, i as u32, JobStatus::Queued)
                })
                .collect(),
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .expect("apply");
    s.instances(run.id)
        .await
        .expect("instances")
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn ask(agent: AgentId, labels: &[&str], capacity: u32, free: u32) -> ClaimAsk {
    ClaimAsk {
        agent,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        capacity,
        free,
    }
}

/// Ten thousand queued jobs that no agent's labels cover do not stand in
/// front of a job the asking agent can run, queued after all of them.
pub async fn claim_next_is_not_stalled_by_unmatchable_jobs<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "stall").await;
    let gpu: Vec<(&[&str], u32, i32)> = vec![(&["gpu", "a100"], 1, 0); 10_000];
    queue(&s, &repo, &gpu).await;
    let mine = queue(&s, &repo, &[(&["linux"], 1, 0)]).await;
    let agent = add_agent(&s, "cpu").await;
    let got = s
        .claim_next(&ask(agent.id, &["linux", "x64"], 4, 4), t(10), t(40))
        .await
        .unwrap()
        .expect("the linux job is claimed");
    assert_eq!(got.id, mine[0]);
    assert_eq!(got.attempt, 1);
    assert_eq!(got.status, JobStatus::Running);
    // Nothing else fits this agent: the gpu jobs stay queued.
    assert_eq!(
        s.claim_next(&ask(agent.id, &["linux", "x64"], 4, 3), t(11), t(41))
            .await
            .unwrap(),
        None
    );
}

/// Labels, weights, priorities, round-robin and FIFO: every claim takes
/// what the reference `pick` takes from the whole queue, with the cursor
/// moved to the claimed job's repository.
pub async fn claim_next_follows_the_reference_rules<S: Store + 'static>(s: S) {
    let repos = [
        add_repo(&s, "r1").await,
        add_repo(&s, "r2").await,
        add_repo(&s, "r3").await,
    ];
    let labels: [&[&str]; 4] = [&[], &["linux"], &["linux", "gpu"], &["mac"]];
    // A fixed pseudo-random queue: varied labels, weights 1-3, priorities 0-2.
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for round in 0..6 {
        let jobs: Vec<(&[&str], u32, i32)> = (0..8)
            .map(|_| (labels[next(4) as usize], 1 + next(3) as u32, next(3) as i32))
            .collect();
        queue(&s, &repos[round % 3], &jobs).await;
    }
    let agents = [
        (add_agent(&s, "small").await.id, &["linux"][..], 2u32),
        (add_agent(&s, "gpu").await.id, &["linux", "gpu"][..], 3),
        (add_agent(&s, "mac").await.id, &["mac"][..], 1),
    ];
    let mut last: Option<RepoId> = None;
    let mut claimed = 0;
    for step in 0..60 {
        let (agent, agent_labels, capacity) = agents[step % 3];
        let free = 1 + next(u64::from(capacity)) as u32;
        let candidates = s.candidates(10_000).await.unwrap();
        let reference: Vec<Queued<'_>> = candidates
            .iter()
            .map(|c| Queued {
                id: c.id,
                repo: c.repo,
                runs_on: &c.runs_on,
                weight: c.weight,
                priority: c.priority,
            })
            .collect();
        let owned: Vec<String> = agent_labels.iter().map(|l| l.to_string()).collect();
        let expected = pick(
            &reference,
            &Asker {
                labels: &owned,
                capacity,
                free,
            },
            last,
        );
        let got = s
            .claim_next(&ask(agent, agent_labels, capacity, free), t(10), t(40))
            .await
            .unwrap();
        assert_eq!(
            got.as_ref().map(|i| i.id),
            expected,
            "step {step}: agent {agent_labels:?} free {free}/{capacity}, last repo {last:?}"
        );
        if let Some(i) = got {
            last = Some(i.repo);
            claimed += 1;
        }
    }
    assert!(claimed > 20, "the case exercised claims ({claimed})");
}

/// Between repositories, round-robin: each claim serves the repository
/// after the one served last (the cursor is kept in the store), FIFO
/// within each.
pub async fn claim_next_round_robin_between_repositories<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "a").await;
    let b = add_repo(&s, "b").await;
    let a_jobs = queue(&s, &a, &[(&[], 1, 0), (&[], 1, 0), (&[], 1, 0)]).await;
    let b_jobs = queue(&s, &b, &[(&[], 1, 0), (&[], 1, 0)]).await;
    let agent = add_agent(&s, "any").await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let got = s
            .claim_next(&ask(agent.id, &[], 100, 100), t(10), t(40))
            .await
            .unwrap()
            .expect("a job");
        order.push(got.id);
    }
    assert_eq!(
        order,
        [a_jobs[0], b_jobs[0], a_jobs[1], b_jobs[1], a_jobs[2]],
        "alternating between repositories, FIFO within each"
    );
}

/// One claim takes several jobs: in claim order, while they fit the free
/// capacity (a job heavier than the whole capacity only alone), at most
/// `max`; each is leased as a single claim leases it.
pub async fn claim_batch_fills_the_free_capacity<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "batch").await;
    let ids = queue(
        &s,
        &repo,
        &[
            (&["linux"], 1, 0),
            (&["linux"], 2, 0),
            (&["gpu"], 1, 0),
            (&["linux"], 1, 0),
            (&["linux"], 1, 0),
            (&["linux"], 8, 0),
            (&["linux"], 1, 0),
        ],
    )
    .await;
    let agent = add_agent(&s, "batcher").await;
    let got = s
        .claim_batch(&ask(agent.id, &["linux"], 4, 4), 10, t(10), t(40))
        .await
        .expect("claim_batch");
    let taken: Vec<InstanceId> = got.iter().map(|i| i.id).collect();
    assert_eq!(
        taken,
        vec![ids[0], ids[1], ids[3]],
        "1 + 2 + 1 units; gpu skipped"
    );
    for i in &got {
        assert_eq!(i.status, JobStatus::Running);
        assert_eq!(i.attempt, 1);
        assert_eq!(i.agent_name.as_deref(), Some("batcher"));
        assert_eq!(i.lease_expires_at, Some(t(40)));
    }
    let run = s.instance(ids[0]).await.expect("instance").run;
    assert_eq!(s.attempts(run).await.expect("attempts").len(), 3);

    // `max` bounds the batch even with capacity to spare.
    let one = s
        .claim_batch(&ask(agent.id, &["linux"], 4, 4), 1, t(11), t(41))
        .await
        .expect("claim_batch");
    assert_eq!(one.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[4]]);
    // Next in line weighs 8 > capacity 4: only an idle agent takes it, so
    // a busy one gets the job behind it (what does not fit never stalls
    // the queue).
    let behind = s
        .claim_batch(&ask(agent.id, &["linux"], 4, 3), 5, t(12), t(42))
        .await
        .expect("claim_batch");
    assert_eq!(
        behind.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[6]]
    );
    let heavy = s
        .claim_batch(&ask(agent.id, &["linux"], 4, 4), 5, t(12), t(42))
        .await
        .expect("claim_batch");
    assert_eq!(heavy.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[5]]);
    assert!(
        s.claim_batch(&ask(agent.id, &["linux"], 4, 0), 5, t(13), t(43))
            .await
            .expect("claim_batch")
            .is_empty(),
        "no free capacity, nothing claimed"
    );
    assert_eq!(heavy[0].weight, 8, "and it takes the whole agent, alone");
}

/// Two store handles on one database (two servers) racing to claim: every
/// job is claimed exactly once. Not in the one-store list: an adapter's
/// tests call it with two handles opened on the same database.
pub async fn two_handles_never_claim_one_job_twice<S: Store + 'static>(a: S, b: S) {
    let repo = add_repo(&a, "race").await;
    let jobs: Vec<(&[&str], u32, i32)> = vec![(&["linux"], 1, 0); 200];
    let mut all = queue(&a, &repo, &jobs).await;
    let stores: [std::sync::Arc<dyn Store>; 2] = [std::sync::Arc::new(a), std::sync::Arc::new(b)];
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for k in 0..4 {
            let store = store.clone();
            let agent = add_agent(&*store, &format!("agent-{n}-{k}")).await.id;
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let ask = ask(agent, &["linux"], 1000, 1000);
                // Half the agents claim one at a time, half in batches.
                loop {
                    let got = store
                        .claim_batch(&ask, if k % 2 == 0 { 1 } else { 3 }, t(10), t(40))
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|i| i.id));
                }
                mine
            }));
        }
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("task"));
    }
    claimed.sort();
    all.sort();
    assert_eq!(claimed, all, "each job claimed once, none missed");
}
