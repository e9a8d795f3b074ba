//! Scheduler traces: a tiny driver replays scripted outcomes and the tests
//! compare the commands the graph gave, in order.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

/// How the scripted driver answers `Evaluate` for a node.
#[derive(Clone, Debug)]
enum Eval {
    Skip,
    Fail,
    Expand(Expansion),
}

fn exp(instances: usize, weight: u32) -> Expansion {
    Expansion {
        weight,
        instances,
        fail_fast: true,
        max_parallel: None,
        continue_on_error: vec![],
    }
}

/// Drive a graph to the end. Running instances finish in start order with
/// the scripted status (default success); `Cancel` makes an instance finish
/// as cancelled. Returns the trace, one command per line.
fn drive(
    needs: &[&[usize]],
    capacity: u32,
    evals: &[Eval],
    outcomes: &BTreeMap<(usize, usize), JobStatus>,
    cancel_after_starts: Option<usize>,
) -> Vec<String> {
    let specs = needs
        .iter()
        .map(|n| NodeSpec { needs: n.to_vec() })
        .collect();
    let mut g = RunGraph::new(specs, capacity);
    let mut trace = Vec::new();
    let mut running: VecDeque<InstanceKey> = VecDeque::new();
    let mut cancelled: Vec<InstanceKey> = Vec::new();
    let mut pending = g.start();
    let mut starts = 0;
    loop {
        let mut events = Vec::new();
        for c in pending.drain(..) {
            trace.push(fmt(&c));
            match c {
                Command::Evaluate { node, .. } => events.push(match &evals[node] {
                    Eval::Skip => Event::Skipped { node },
                    Eval::Fail => Event::EvaluationFailed { node },
                    Eval::Expand(e) => Event::Expanded {
                        node,
                        expansion: e.clone(),
                    },
                }),
                Command::Start { key } => {
                    running.push_back(key);
                    starts += 1;
                    if Some(starts) == cancel_after_starts {
                        events.push(Event::CancelRun);
                    }
                }
                Command::Cancel { key } => cancelled.push(key),
                Command::Dropped { .. } | Command::RunFinished { .. } => {}
            }
        }
        if events.is_empty() {
            let Some(key) = running.pop_front() else {
                break;
            };
            let status = if cancelled.contains(&key) {
                JobStatus::Cancelled
            } else {
                outcomes
                    .get(&(key.node, key.index))
                    .copied()
                    .unwrap_or(JobStatus::Success)
            };
            trace.push(format!("done {}.{} {status}", key.node, key.index));
            events.push(Event::Finished { key, status });
        }
        for e in events {
            pending.extend(g.on(e));
        }
    }
    assert!(g.is_finished(), "graph did not finish: {trace:?}");
    trace
}

fn fmt(c: &Command) -> String {
    match c {
        Command::Evaluate { node, needs } => format!("evaluate {node} ({needs:?})"),
        Command::Start { key } => format!("start {}.{}", key.node, key.index),
        Command::Cancel { key } => format!("cancel {}.{}", key.node, key.index),
        Command::Dropped { key, status } => format!("drop {}.{} {status}", key.node, key.index),
        Command::RunFinished { status } => format!("finished {status}"),
    }
}

#[test]
fn diamond_runs_in_dependency_order() {
    let e = Eval::Expand(exp(1, 1));
    let trace = drive(
        &[&[], &[0], &[0], &[1, 2]],
        4,
        &[e.clone(), e.clone(), e.clone(), e],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "done 0.0 success",
            "evaluate 1 (Success)",
            "evaluate 2 (Success)",
            "start 1.0",
            "start 2.0",
            "done 1.0 success",
            "done 2.0 success",
            "evaluate 3 (Success)",
            "start 3.0",
            "done 3.0 success",
            "finished success",
        ]
    );
}

#[test]
fn failed_need_is_reported_to_the_dependant() {
    let e = Eval::Expand(exp(1, 1));
    let outcomes = BTreeMap::from([((0, 0), JobStatus::Failure)]);
    let trace = drive(&[&[], &[0]], 2, &[e.clone(), Eval::Skip], &outcomes, None);
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "done 0.0 failure",
            "evaluate 1 (Failure)",
            "finished failure",
        ]
    );
}

#[test]
fn skipped_need_is_not_success() {
    let trace = drive(
        &[&[], &[0]],
        2,
        &[Eval::Skip, Eval::Skip],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "evaluate 1 (NotSuccess)",
            "finished skipped"
        ]
    );
}

#[test]
fn weights_keep_a_heavy_job_alone() {
    // capacity 2: the heavy job (weight 2) waits until 0 is done, runs alone,
    // and FIFO keeps 2 behind it.
    let trace = drive(
        &[&[], &[], &[]],
        2,
        &[
            Eval::Expand(exp(1, 1)),
            Eval::Expand(exp(1, 2)),
            Eval::Expand(exp(1, 1)),
        ],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "evaluate 1 (Success)",
            "evaluate 2 (Success)",
            "start 0.0",
            "done 0.0 success",
            "start 1.0",
            "done 1.0 success",
            "start 2.0",
            "done 2.0 success",
            "finished success",
        ]
    );
}

#[test]
fn heavier_than_capacity_still_runs_alone() {
    let trace = drive(
        &[&[]],
        1,
        &[Eval::Expand(exp(1, 8))],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "done 0.0 success",
            "finished success",
        ]
    );
}

#[test]
fn fail_fast_cancels_siblings() {
    let outcomes = BTreeMap::from([((0, 0), JobStatus::Failure)]);
    let trace = drive(&[&[]], 2, &[Eval::Expand(exp(4, 1))], &outcomes, None);
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "start 0.1",
            "done 0.0 failure",
            "cancel 0.1",
            "drop 0.2 cancelled",
            "drop 0.3 cancelled",
            "done 0.1 cancelled",
            "finished failure",
        ]
    );
}

#[test]
fn no_fail_fast_runs_every_instance() {
    let mut e = exp(3, 1);
    e.fail_fast = false;
    let outcomes = BTreeMap::from([((0, 0), JobStatus::Failure)]);
    let trace = drive(&[&[]], 1, &[Eval::Expand(e)], &outcomes, None);
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "done 0.0 failure",
            "start 0.1",
            "done 0.1 success",
            "start 0.2",
            "done 0.2 success",
            "finished failure",
        ]
    );
}

#[test]
fn continue_on_error_makes_the_node_succeed() {
    let mut e = exp(2, 1);
    e.continue_on_error = vec![false, true];
    let outcomes = BTreeMap::from([((0, 1), JobStatus::Failure)]);
    let trace = drive(
        &[&[], &[0]],
        4,
        &[Eval::Expand(e), Eval::Expand(exp(1, 1))],
        &outcomes,
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "start 0.1",
            "done 0.0 success",
            "done 0.1 failure",
            "evaluate 1 (Success)",
            "start 1.0",
            "done 1.0 success",
            "finished success",
        ]
    );
}

#[test]
fn max_parallel_limits_a_matrix() {
    let mut e = exp(3, 1);
    e.max_parallel = Some(1);
    let trace = drive(
        &[&[], &[]],
        8,
        &[Eval::Expand(e), Eval::Expand(exp(1, 1))],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "evaluate 1 (Success)",
            "start 0.0",
            "start 1.0",
            "done 0.0 success",
            "start 0.1",
            "done 1.0 success",
            "done 0.1 success",
            "start 0.2",
            "done 0.2 success",
            "finished success",
        ]
    );
}

#[test]
fn cancel_run_stops_running_and_drops_the_rest() {
    // Node 1 has no `if: always()`: evaluated under cancellation, it skips.
    let e = Eval::Expand(exp(2, 1));
    let trace = drive(&[&[], &[0]], 1, &[e, Eval::Skip], &BTreeMap::new(), Some(1));
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "drop 0.1 cancelled",
            "cancel 0.0",
            "done 0.0 cancelled",
            "evaluate 1 (Cancelled)",
            "finished cancelled",
        ]
    );
}

#[test]
fn an_always_job_still_runs_after_a_cancel() {
    // Node 1 is `if: always()`: evaluated under cancellation, it expands and runs.
    let e = Eval::Expand(exp(1, 1));
    let trace = drive(&[&[], &[0]], 1, &[e.clone(), e], &BTreeMap::new(), Some(1));
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "start 0.0",
            "cancel 0.0",
            "done 0.0 cancelled",
            "evaluate 1 (Cancelled)",
            "start 1.0",
            "done 1.0 success",
            "finished cancelled",
        ]
    );
}

#[test]
fn evaluation_failure_fails_the_node() {
    let trace = drive(
        &[&[], &[0]],
        1,
        &[Eval::Fail, Eval::Skip],
        &BTreeMap::new(),
        None,
    );
    assert_eq!(
        trace,
        [
            "evaluate 0 (Success)",
            "evaluate 1 (Failure)",
            "finished failure"
        ]
    );
}

#[test]
fn empty_run_finishes_at_once() {
    let trace = drive(&[], 1, &[], &BTreeMap::new(), None);
    assert_eq!(trace, ["finished success"]);
}

proptest! {
    /// Whatever the DAG, weights and outcomes: every instance starts at most
    /// once, running weight never exceeds capacity unless one instance runs
    /// alone, a node is evaluated only after its needs, and the run ends
    /// exactly once, last.
    #[test]
    fn invariants_hold(
        edges in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..3), 1..8),
        sizes in proptest::collection::vec((1usize..4, 1u32..4, any::<bool>(), any::<bool>()), 8),
        fails in proptest::collection::vec(any::<bool>(), 32),
        capacity in 1u32..5,
    ) {
        // Needs only point backwards, so the graph is acyclic.
        let needs: Vec<Vec<usize>> = edges.iter().enumerate().map(|(i, es)| {
            if i == 0 { vec![] } else { es.iter().map(|e| e.index(i)).collect() }
        }).collect();
        let evals: Vec<Eval> = (0..needs.len()).map(|i| {
            let (n, w, ff, skip) = sizes[i];
            if skip && i % 3 == 2 { Eval::Skip } else {
                Eval::Expand(Expansion { weight: w, instances: n, fail_fast: ff, max_parallel: None, continue_on_error: vec![] })
            }
        }).collect();
        let mut outcomes = BTreeMap::new();
        for (i, f) in fails.iter().enumerate() {
            if *f && i % 4 == 0 { outcomes.insert((i / 4, i % 4), JobStatus::Failure); }
        }
        let need_refs: Vec<&[usize]> = needs.iter().map(|v| v.as_slice()).collect();
        let trace = drive(&need_refs, capacity, &evals, &outcomes, None);

        prop_assert_eq!(trace.iter().filter(|l| l.starts_with("finished")).count(), 1);
        prop_assert!(trace.last().unwrap().starts_with("finished"));
        let mut started = std::collections::BTreeSet::new();
        for l in &trace {
            if let Some(k) = l.strip_prefix("start ") {
                prop_assert!(started.insert(k.to_string()), "started twice: {}", k);
            }
        }
        // Evaluation order respects needs.
        let pos = |n: usize| trace.iter().position(|l| l.starts_with(&format!("evaluate {n} ")));
        for (i, ns) in needs.iter().enumerate() {
            if let Some(pi) = pos(i) {
                for &n in ns {
                    if let Some(pn) = pos(n) { prop_assert!(pn < pi); }
                }
            }
        }
    }
}

/// A store that keeps the graph in parts, writing only what changed.
struct Stored {
    head: String,
    nodes: BTreeMap<usize, String>,
}

impl Stored {
    fn new(g: &mut RunGraph) -> Stored {
        let (head, nodes) = g.changed_parts();
        Stored {
            head,
            nodes: nodes.into_iter().collect(),
        }
    }

    /// Write what changed; how many nodes that was.
    fn write(&mut self, g: &mut RunGraph) -> usize {
        let (head, nodes) = g.changed_parts();
        self.head = head;
        let n = nodes.len();
        self.nodes.extend(nodes);
        n
    }

    fn read(&self) -> RunGraph {
        RunGraph::from_parts(
            &self.head,
            self.nodes.iter().map(|(n, s)| (*n, s.clone())).collect(),
        )
        .expect("stored parts read back")
    }
}

/// Written a changed node at a time, the stored graph is always the live
/// one; finishing one of many independent jobs rewrites one node.
#[test]
fn parts_written_as_they_change_read_back_equal() {
    // 0 and 1 independent, 2 needs both, 3 needs 2; node 1 fails.
    let specs = [&[][..], &[], &[0, 1], &[2]]
        .iter()
        .map(|n| NodeSpec { needs: n.to_vec() })
        .collect();
    let mut g = RunGraph::new(specs, u32::MAX);
    let mut stored = Stored::new(&mut g);
    let mut pending: VecDeque<Command> = g.start().into();
    stored.write(&mut g);
    assert_eq!(stored.read().to_parts(), g.to_parts());
    while let Some(cmd) = pending.pop_front() {
        let event = match cmd {
            Command::Evaluate { node, .. } => Event::Expanded {
                node,
                expansion: Expansion {
                    fail_fast: false,
                    ..exp(if node == 0 { 3 } else { 1 }, 1)
                },
            },
            Command::Start { key } => Event::Finished {
                key,
                status: if key.node == 1 {
                    JobStatus::Failure
                } else {
                    JobStatus::Success
                },
            },
            Command::Cancel { .. } | Command::Dropped { .. } | Command::RunFinished { .. } => {
                continue;
            }
        };
        let finishing = matches!(event, Event::Finished { .. });
        pending.extend(g.on(event));
        let written = stored.write(&mut g);
        assert!(written <= 2, "one event rewrote {written} nodes");
        if finishing
            && pending
                .iter()
                .all(|c| !matches!(c, Command::Evaluate { .. }))
        {
            assert!(written >= 1, "a finished instance changes its node");
        }
        assert_eq!(stored.read().to_parts(), g.to_parts());
    }
    assert!(g.is_finished());
    assert!(stored.read().is_finished());
}

#[test]
fn parts_must_number_every_node_once() {
    let g = RunGraph::new(vec![NodeSpec { needs: vec![] }; 2], 1);
    let (head, nodes) = g.to_parts();
    let both = vec![(1, nodes[1].clone()), (0, nodes[0].clone())];
    assert_eq!(
        RunGraph::from_parts(&head, both)
            .expect("in any order")
            .to_parts(),
        g.to_parts()
    );
    assert!(matches!(
        RunGraph::from_parts(&head, vec![(1, nodes[1].clone())]),
        Err(PartsError::Numbering(1))
    ));
    assert!(matches!(
        RunGraph::from_parts(&head, vec![(0, nodes[0].clone()), (0, nodes[1].clone())]),
        Err(PartsError::Numbering(2))
    ));
    assert!(matches!(
        RunGraph::from_parts("{", vec![]),
        Err(PartsError::Head(_))
    ));
}
