//! The run graph: which jobs of one workflow run may start, given what has
//! finished.
//!
//! A run is a DAG of *nodes* (the jobs under `jobs:`), each expanded into one
//! or more *instances* (matrix combinations) when its `needs` are done. The
//! graph decides; the driver acts:
//!
//! 1. [`RunGraph::start`] returns [`Command::Evaluate`] for every node without
//!    needs. The driver evaluates the node's `if:` and matrix and answers with
//!    [`Event::Expanded`] or [`Event::Skipped`].
//! 2. The graph answers with [`Command::Start`] for instances that fit the
//!    capacity (sum of running weights ≤ capacity, `max-parallel` per node,
//!    FIFO by node order then matrix index). An instance heavier than the
//!    whole capacity starts when nothing else runs, instead of never.
//! 3. The driver reports [`Event::Finished`] per instance; the graph frees
//!    capacity, applies fail-fast ([`Command::Cancel`] for running siblings,
//!    queued siblings end as cancelled), evaluates dependants whose needs are
//!    all done, and finally emits [`Command::RunFinished`].
//!
//! Invariants: an instance is started at most once; a node is evaluated at
//! most once and only after every node it needs is done; `RunFinished` is the
//! last command and comes exactly once.

use kiln_model::JobStatus;
use serde::{Deserialize, Serialize};

/// A node's index: its position in the job list given to [`RunGraph::new`].
pub type NodeIx = usize;

/// One matrix instance of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    pub node: NodeIx,
    /// Position in the node's expansion (0 for a job without a matrix).
    pub index: usize,
}

/// What the graph needs to know about a job before the run starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Indices of the nodes this one needs.
    pub needs: Vec<NodeIx>,
}

/// The combined status of a node's needs, as `success()`/`failure()` see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedsStatus {
    /// Every need succeeded (or the node has none).
    Success,
    /// At least one need failed.
    Failure,
    /// No need failed, but at least one was skipped or cancelled.
    NotSuccess,
    /// The run was cancelled.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Expanded {
        node: NodeIx,
        expansion: Expansion,
    },
    /// The node's `if:` was false: the node and its instances are skipped.
    Skipped {
        node: NodeIx,
    },
    /// Evaluating the node failed (a bad expression, an empty matrix): the
    /// node fails without running.
    EvaluationFailed {
        node: NodeIx,
    },
    Finished {
        key: InstanceKey,
        status: JobStatus,
    },
    /// Cancel the whole run (Ctrl-C, `kiln cancel`).
    CancelRun,
}

/// What the driver found when it evaluated a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expansion {
    /// Capacity units per instance (all instances share the job's weight).
    pub weight: u32,
    /// How many instances (matrix combinations); at least 1.
    pub instances: usize,
    pub fail_fast: bool,
    pub max_parallel: Option<usize>,
    /// Per instance: a failure does not fail the node (`continue-on-error`,
    /// which may differ per matrix combination). Missing entries are false.
    pub continue_on_error: Vec<bool>,
}

impl Expansion {
    fn tolerated(&self, index: usize) -> bool {
        self.continue_on_error.get(index).copied().unwrap_or(false)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Evaluate the node's `if:` and matrix, then answer with an event.
    Evaluate {
        node: NodeIx,
        needs: NeedsStatus,
    },
    Start {
        key: InstanceKey,
    },
    /// Stop a running instance; it still reports `Finished` (as cancelled).
    Cancel {
        key: InstanceKey,
    },
    /// A queued instance that will never start (fail-fast, run cancelled).
    Dropped {
        key: InstanceKey,
        status: JobStatus,
    },
    /// Every node is done.
    RunFinished {
        status: JobStatus,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum NodeState {
    Waiting,
    Evaluating,
    Expanded(Expansion),
    Done(JobStatus),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum InstState {
    Queued,
    Running,
    Done(JobStatus),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node {
    needs: Vec<NodeIx>,
    state: NodeState,
    instances: Vec<InstState>,
    /// Set when fail-fast tripped; later failures are then expected.
    fail_fast_tripped: bool,
}

/// The state of one run. See the module docs for the protocol.
///
/// Stored in parts ([`RunGraph::to_parts`]): a small head and one record
/// per node, so that a store rewrites only the nodes an event changed
/// ([`RunGraph::changed_parts`]), whatever the size of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunGraph {
    nodes: Vec<Node>,
    #[serde(flatten)]
    head: Head,
    /// Nodes changed since the graph was built, loaded or last asked.
    #[serde(skip)]
    changed: std::collections::BTreeSet<NodeIx>,
}

/// Everything of a graph but its nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    capacity: u32,
    used: u32,
    running: usize,
    cancelled: bool,
    finished: bool,
}

/// A stored graph that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error("the graph's head: {0}")]
    Head(String),
    #[error("node {node} of the graph: {message}")]
    Node { node: NodeIx, message: String },
    #[error("the graph's nodes are not numbered 0 to {0}")]
    Numbering(usize),
}

impl RunGraph {
    /// `capacity` is the sum of weights that may run at once (at least 1).
    /// `needs` must only point at existing nodes and form no cycle; the
    /// pipeline loader guarantees both.
    pub fn new(nodes: Vec<NodeSpec>, capacity: u32) -> Self {
        let nodes: Vec<Node> = nodes
            .into_iter()
            .map(|n| Node {
                needs: n.needs,
                state: NodeState::Waiting,
                instances: Vec::new(),
                fail_fast_tripped: false,
            })
            .collect();
        RunGraph {
            changed: (0..nodes.len()).collect(),
            nodes,
            head: Head {
                capacity: capacity.max(1),
                used: 0,
                running: 0,
                cancelled: false,
                finished: false,
            },
        }
    }

    /// The graph as stored: its head and every node, each as JSON.
    pub fn to_parts(&self) -> (String, Vec<String>) {
        let nodes = self.nodes.iter().map(json).collect();
        (json(&self.head), nodes)
    }

    /// The head, and the nodes changed since the graph was built (all of
    /// them), read back with [`RunGraph::from_parts`], or last asked: what
    /// a store must write to keep its copy equal to this graph.
    pub fn changed_parts(&mut self) -> (String, Vec<(NodeIx, String)>) {
        let changed = std::mem::take(&mut self.changed);
        let nodes = changed
            .into_iter()
            .filter_map(|ix| Some((ix, json(self.nodes.get(ix)?))))
            .collect();
        (json(&self.head), nodes)
    }

    /// The graph from its stored parts: the head and every node, numbered
    /// 0 to n - 1 (in any order).
    pub fn from_parts(head: &str, nodes: Vec<(NodeIx, String)>) -> Result<RunGraph, PartsError> {
        let head: Head = serde_json::from_str(head).map_err(|e| PartsError::Head(e.to_string()))?;
        let count = nodes.len();
        let mut slots: Vec<Option<Node>> = (0..count).map(|_| None).collect();
        for (ix, text) in nodes {
            let node: Node = serde_json::from_str(&text).map_err(|e| PartsError::Node {
                node: ix,
                message: e.to_string(),
            })?;
            match slots.get_mut(ix) {
                Some(slot @ None) => *slot = Some(node),
                Some(Some(_)) | None => return Err(PartsError::Numbering(count)),
            }
        }
        let nodes = slots
            .into_iter()
            .collect::<Option<Vec<Node>>>()
            .ok_or(PartsError::Numbering(count))?;
        Ok(RunGraph {
            nodes,
            head,
            changed: Default::default(),
        })
    }

    /// Mark node `ix` as changed and give it out for changing.
    fn node_mut(&mut self, ix: NodeIx) -> Option<&mut Node> {
        let node = self.nodes.get_mut(ix)?;
        self.changed.insert(ix);
        Some(node)
    }

    /// The first commands of the run.
    pub fn start(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        self.advance(&mut out);
        out
    }

    /// Apply an event; returns what to do next.
    pub fn on(&mut self, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::Expanded { node, expansion } => {
                if self.nodes.get(node).map(|n| &n.state) == Some(&NodeState::Evaluating)
                    && let Some(n) = self.node_mut(node)
                {
                    n.instances = vec![InstState::Queued; expansion.instances.max(1)];
                    // After a cancel, only nodes whose `if:` holds under
                    // `cancelled()` (such as `always()`) get here: they run.
                    n.state = NodeState::Expanded(expansion);
                }
            }
            Event::Skipped { node } => self.settle(node, JobStatus::Skipped),
            Event::EvaluationFailed { node } => self.settle(node, JobStatus::Failure),
            Event::Finished { key, status } => self.finish_instance(key, status, &mut out),
            Event::CancelRun => {
                if !self.head.cancelled {
                    self.head.cancelled = true;
                    for ix in 0..self.nodes.len() {
                        self.drop_queued(ix, JobStatus::Cancelled, &mut out);
                        for (index, st) in self.nodes[ix].instances.iter().enumerate() {
                            if *st == InstState::Running {
                                out.push(Command::Cancel {
                                    key: InstanceKey { node: ix, index },
                                });
                            }
                        }
                    }
                }
            }
        }
        self.advance(&mut out);
        out
    }

    /// True once `RunFinished` was emitted.
    pub fn is_finished(&self) -> bool {
        self.head.finished
    }

    /// The final status of a node, once it is done.
    pub fn node_status(&self, node: NodeIx) -> Option<JobStatus> {
        match self.nodes.get(node).map(|n| &n.state) {
            Some(NodeState::Done(s)) => Some(*s),
            Some(NodeState::Waiting | NodeState::Evaluating | NodeState::Expanded(_)) | None => {
                None
            }
        }
    }

    fn settle(&mut self, node: NodeIx, status: JobStatus) {
        if self.nodes.get(node).map(|n| &n.state) == Some(&NodeState::Evaluating)
            && let Some(n) = self.node_mut(node)
        {
            n.state = NodeState::Done(status);
        }
    }

    fn finish_instance(&mut self, key: InstanceKey, status: JobStatus, out: &mut Vec<Command>) {
        let running = self.nodes.get(key.node).and_then(|n| match &n.state {
            NodeState::Expanded(_) => n.instances.get(key.index),
            NodeState::Waiting | NodeState::Evaluating | NodeState::Done(_) => None,
        }) == Some(&InstState::Running);
        if !running {
            return;
        }
        self.changed.insert(key.node);
        let Some(node) = self.nodes.get_mut(key.node) else {
            return;
        };
        let NodeState::Expanded(exp) = &node.state else {
            return;
        };
        let exp = exp.clone();
        let Some(slot) = node.instances.get_mut(key.index) else {
            return;
        };
        *slot = InstState::Done(status);
        self.head.used -= exp.weight.min(self.head.used);
        self.head.running -= 1;
        let failed = matches!(status, JobStatus::Failure);
        if failed && exp.fail_fast && !exp.tolerated(key.index) && !node.fail_fast_tripped {
            node.fail_fast_tripped = true;
            for (index, st) in node.instances.iter().enumerate() {
                if *st == InstState::Running {
                    out.push(Command::Cancel {
                        key: InstanceKey {
                            node: key.node,
                            index,
                        },
                    });
                }
            }
            self.drop_queued(key.node, JobStatus::Cancelled, out);
        }
    }

    fn drop_queued(&mut self, node: NodeIx, status: JobStatus, out: &mut Vec<Command>) {
        if !self.nodes[node].instances.contains(&InstState::Queued) {
            return;
        }
        self.changed.insert(node);
        for (index, st) in self.nodes[node].instances.iter_mut().enumerate() {
            if *st == InstState::Queued {
                *st = InstState::Done(status);
                out.push(Command::Dropped {
                    key: InstanceKey { node, index },
                    status,
                });
            }
        }
    }

    /// Settle finished nodes, evaluate ready ones, start what fits, and
    /// finish the run when everything is done — repeated until nothing moves.
    fn advance(&mut self, out: &mut Vec<Command>) {
        if self.head.finished {
            return;
        }
        loop {
            let mut moved = false;
            for ix in 0..self.nodes.len() {
                match &self.nodes[ix].state {
                    NodeState::Waiting => {
                        if let Some(needs) = self.needs_status(ix) {
                            // Also after a cancel: `needs` is then `Cancelled`,
                            // and only `if: always()`/`cancelled()` jobs run.
                            self.changed.insert(ix);
                            self.nodes[ix].state = NodeState::Evaluating;
                            out.push(Command::Evaluate { node: ix, needs });
                            moved = true;
                        }
                    }
                    NodeState::Expanded(exp) => {
                        let n = &self.nodes[ix];
                        if n.instances.iter().all(|s| matches!(s, InstState::Done(_))) {
                            let status = aggregate(&n.instances, exp);
                            self.changed.insert(ix);
                            self.nodes[ix].state = NodeState::Done(status);
                            moved = true;
                        }
                    }
                    NodeState::Evaluating | NodeState::Done(_) => {}
                }
            }
            moved |= self.start_fitting(out);
            if !moved {
                break;
            }
        }
        if self
            .nodes
            .iter()
            .all(|n| matches!(n.state, NodeState::Done(_)))
        {
            self.head.finished = true;
            let status = self.run_status();
            out.push(Command::RunFinished { status });
        }
    }

    fn start_fitting(&mut self, out: &mut Vec<Command>) -> bool {
        let mut moved = false;
        for ix in 0..self.nodes.len() {
            let NodeState::Expanded(exp) = &self.nodes[ix].state else {
                continue;
            };
            let exp = exp.clone();
            let mut running_here = self.nodes[ix]
                .instances
                .iter()
                .filter(|s| **s == InstState::Running)
                .count();
            for index in 0..self.nodes[ix].instances.len() {
                if self.nodes[ix].instances[index] != InstState::Queued {
                    continue;
                }
                if exp.max_parallel.is_some_and(|m| running_here >= m.max(1)) {
                    break;
                }
                let fits =
                    self.head.used + exp.weight <= self.head.capacity || self.head.running == 0;
                if !fits {
                    // FIFO: nothing behind a waiting instance may overtake it.
                    return moved;
                }
                self.changed.insert(ix);
                self.nodes[ix].instances[index] = InstState::Running;
                self.head.used += exp.weight;
                self.head.running += 1;
                running_here += 1;
                moved = true;
                out.push(Command::Start {
                    key: InstanceKey { node: ix, index },
                });
            }
        }
        moved
    }

    /// `Some` once every need is done.
    fn needs_status(&self, ix: NodeIx) -> Option<NeedsStatus> {
        let mut status = NeedsStatus::Success;
        for &need in &self.nodes[ix].needs {
            match self.nodes.get(need).map(|n| &n.state) {
                Some(NodeState::Done(s)) => match s {
                    JobStatus::Success => {}
                    JobStatus::Failure => status = NeedsStatus::Failure,
                    JobStatus::Cancelled | JobStatus::Skipped => {
                        if status == NeedsStatus::Success {
                            status = NeedsStatus::NotSuccess;
                        }
                    }
                    JobStatus::Queued | JobStatus::Running => return None,
                },
                Some(NodeState::Waiting | NodeState::Evaluating | NodeState::Expanded(_)) => {
                    return None;
                }
                None => {}
            }
        }
        if self.head.cancelled {
            return Some(NeedsStatus::Cancelled);
        }
        Some(status)
    }

    fn run_status(&self) -> JobStatus {
        let statuses = self.nodes.iter().filter_map(|n| match n.state {
            NodeState::Done(s) => Some(s),
            NodeState::Waiting | NodeState::Evaluating | NodeState::Expanded(_) => None,
        });
        let mut any_failure = false;
        let mut any_success = false;
        for s in statuses {
            match s {
                JobStatus::Failure => any_failure = true,
                JobStatus::Success => any_success = true,
                JobStatus::Cancelled
                | JobStatus::Skipped
                | JobStatus::Queued
                | JobStatus::Running => {}
            }
        }
        if self.head.cancelled {
            JobStatus::Cancelled
        } else if any_failure {
            JobStatus::Failure
        } else if any_success || self.nodes.is_empty() {
            JobStatus::Success
        } else {
            JobStatus::Skipped
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // A graph is plain data (numbers, strings, booleans, lists): it
    // always serializes.
    serde_json::to_string(value).unwrap_or_default()
}

/// A node's status from its instances'.
fn aggregate(instances: &[InstState], exp: &Expansion) -> JobStatus {
    let mut any_failure = false;
    let mut any_tolerated = false;
    let mut any_cancelled = false;
    let mut any_success = false;
    for (index, st) in instances.iter().enumerate() {
        match st {
            InstState::Done(JobStatus::Failure) if exp.tolerated(index) => any_tolerated = true,
            InstState::Done(JobStatus::Failure) => any_failure = true,
            InstState::Done(JobStatus::Cancelled) => any_cancelled = true,
            InstState::Done(JobStatus::Success) => any_success = true,
            InstState::Done(JobStatus::Skipped | JobStatus::Queued | JobStatus::Running)
            | InstState::Queued
            | InstState::Running => {}
        }
    }
    if any_failure {
        JobStatus::Failure
    } else if any_cancelled {
        JobStatus::Cancelled
    } else if any_success || any_tolerated {
        JobStatus::Success
    } else {
        JobStatus::Skipped
    }
}

#[cfg(test)]
mod tests;
