//! From a run's stored state and an event to the [`Transition`] that the
//! store applies atomically. Pure: the run graph (`kiln_core::graph`)
//! decides; this module evaluates jobs when the graph asks (`plan_job`) and
//! turns the graph's commands into rows.
//!
//! On the server the graph's capacity is unbounded: its `Start` means
//! "enqueue", and the queue (with agents' labels and capacities) decides
//! when a job really starts.

use jiff::Timestamp;
use kiln_core::gate::{Approval, GateKind};
use kiln_core::graph::{Command, Event, Expansion, InstanceKey, NeedsStatus, RunGraph};
use kiln_model::workflow::Workflow;
use kiln_model::{InstanceId, JobStatus, RetryPolicy, Value};
use kiln_pipeline::expr::StatusCheck;
use kiln_pipeline::plan::{Decision, JobContexts as PlanContexts, Plan, plan_job};
use kiln_proto::agent::JobContexts;
use kiln_proto::api::{WaitKind, Waiting};
use kiln_store::types::{GraphParts, InstanceState, NewGate, NewInstance, RunRecord, Transition};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A fresh graph for `wf`, in its parts for the store.
pub fn new_graph(wf: &Workflow) -> GraphParts {
    let nodes = wf
        .jobs
        .iter()
        .map(|j| kiln_core::graph::NodeSpec {
            needs: j
                .needs
                .iter()
                .filter_map(|n| wf.jobs.iter().position(|k| &k.id == n))
                .collect(),
        })
        .collect();
    let (head, nodes) = RunGraph::new(nodes, u32::MAX).to_parts();
    GraphParts { head, nodes }
}

/// The stored instances a transition may look at: those of some nodes
/// (what the engine expects the transition to need), or all of them.
#[derive(Debug, Default)]
pub struct Instances {
    by_node: HashMap<u32, Vec<InstanceState>>,
    /// Every instance of the run is here: a node without any has none.
    complete: bool,
}

impl Instances {
    /// Every instance of the run.
    pub fn all(states: Vec<InstanceState>) -> Instances {
        Instances {
            complete: true,
            ..Instances::of_nodes(&[], states)
        }
    }

    /// The instances of `nodes` (those nodes may have none).
    pub fn of_nodes(nodes: &[u32], states: Vec<InstanceState>) -> Instances {
        let mut by_node: HashMap<u32, Vec<InstanceState>> =
            nodes.iter().map(|n| (*n, Vec::new())).collect();
        for s in states {
            by_node.entry(s.node).or_default().push(s);
        }
        Instances {
            by_node,
            complete: false,
        }
    }

    fn of(&self, node: usize) -> Result<&[InstanceState], TransitionError> {
        match self.by_node.get(&(node as u32)) {
            Some(states) => Ok(states),
            None if self.complete => Ok(&[]),
            None => Err(TransitionError::Missing(node)),
        }
    }
}

/// Why a transition could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// The instances of this node were not given: compute again with all.
    #[error("the instances of node {0} were not loaded")]
    Missing(usize),
    #[error("{0}")]
    Invalid(String),
}

/// The nodes whose instances a transition on `input` may read: for a
/// finished instance of node N, N's (fail-fast stops its siblings), the
/// nodes N needs (N's next instance starts with their outputs), and the
/// nodes needed by those that need N (they may be evaluated now). `None`:
/// any node's.
pub fn nodes_to_read(wf: &Workflow, input: &Input) -> Option<Vec<u32>> {
    let Input::Events(events) = input else {
        return None;
    };
    let position = |id: &kiln_model::JobId| wf.jobs.iter().position(|j| &j.id == id);
    let mut nodes = std::collections::BTreeSet::new();
    for e in events {
        let Event::Finished { key, .. } = e else {
            return None;
        };
        let job = wf.jobs.get(key.node)?;
        nodes.insert(key.node);
        nodes.extend(job.needs.iter().filter_map(position));
        for dependant in wf.jobs.iter().filter(|j| j.needs.contains(&job.id)) {
            nodes.extend(dependant.needs.iter().filter_map(position));
        }
    }
    Some(nodes.into_iter().map(|n| n as u32).collect())
}

/// What happened, besides the transition itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// Instances that entered the queue.
    pub queued: usize,
    /// The run ended with this status.
    pub finished: Option<JobStatus>,
    /// Some new instance entered a gate.
    pub gated: bool,
}

#[derive(Clone, Debug)]
pub enum Input {
    /// Start the run (idempotent on a started graph).
    Start,
    Events(Vec<Event>),
    /// A newer run of a concurrency group with `cancel-in-progress`
    /// cancels this one: like `CancelRun`, but a deploy that is running
    /// keeps running (only a person stops a deploy). `reason` is kept as
    /// the run's error.
    ConcurrencyCancel {
        reason: String,
    },
    /// Stop these instances (job-level `cancel-in-progress`).
    CancelInstances(Vec<InstanceId>),
}

/// Feed `input` to `graph` (the run's, as stored at `run.version`) and
/// compute what the store must write. On an error the graph may be half
/// changed: read it again.
#[allow(clippy::too_many_arguments)]
pub fn transition(
    run: &RunRecord,
    wf: &Workflow,
    graph: &mut RunGraph,
    instances: &Instances,
    input: Input,
    applied: Vec<InstanceId>,
    now: Timestamp,
    default_retries: u32,
) -> Result<(Transition, Effects), TransitionError> {
    let q = Queueing {
        wf,
        repo_priority: run.contexts.repo_priority,
        default_retries,
    };
    let mut spare_deploys = false;
    let mut error = None;
    let mut cancel_now = Vec::new();
    let mut cmds: VecDeque<Command> = match input {
        Input::Start => graph.start().into(),
        Input::Events(events) => events.into_iter().flat_map(|e| graph.on(e)).collect(),
        Input::ConcurrencyCancel { reason } => {
            spare_deploys = true;
            error = Some(reason);
            graph.on(Event::CancelRun).into()
        }
        Input::CancelInstances(ids) => {
            cancel_now = ids;
            VecDeque::new()
        }
    };
    let mut t = Transition {
        expected_version: run.version,
        graph: String::new(),
        applied,
        error,
        cancel: cancel_now,
        now,
        ..Transition::default()
    };
    let mut fx = Effects::default();
    let mut plans: HashMap<usize, Plan> = HashMap::new();
    let empty = Value::Object(BTreeMap::new());

    while let Some(cmd) = cmds.pop_front() {
        match cmd {
            Command::Evaluate { node, needs } => {
                let job = &wf.jobs[node];
                let needs_ctx = needs_context(wf, node, graph, instances, &run.contexts.reuse)?;
                let cx = PlanContexts {
                    github: &run.contexts.github,
                    inputs: &run.contexts.inputs,
                    needs: &needs_ctx,
                    vars: &empty,
                    kiln: &run.contexts.kiln,
                    secrets: &empty,
                };
                match plan_job(job, cx, status_check(needs)) {
                    Ok(Decision::Skip) => {
                        let (status, reason) =
                            kiln_pipeline::plan::not_run(job, status_check(needs));
                        t.new_instances
                            .push(terminal(wf, node, 0, None, status, reason, &q));
                        cmds.extend(graph.on(Event::Skipped { node }));
                    }
                    Ok(Decision::Run(plan)) => {
                        let expansion = Expansion {
                            weight: plan.weight,
                            instances: plan.instances.len(),
                            fail_fast: plan.fail_fast,
                            max_parallel: plan.max_parallel,
                            continue_on_error: plan
                                .instances
                                .iter()
                                .map(|i| i.continue_on_error)
                                .collect(),
                        };
                        plans.insert(node, plan);
                        cmds.extend(graph.on(Event::Expanded { node, expansion }));
                    }
                    Err(e) => {
                        t.new_instances.push(terminal(
                            wf,
                            node,
                            0,
                            None,
                            JobStatus::Failure,
                            &e.message,
                            &q,
                        ));
                        cmds.extend(graph.on(Event::EvaluationFailed { node }));
                    }
                }
            }
            Command::Start { key }
                if run
                    .contexts
                    .reuse
                    .contains_key(wf.jobs[key.node].id.as_str()) =>
            {
                // `retry --failed-only`: this job succeeded in the retried run.
                let name = plans
                    .get(&key.node)
                    .and_then(|p| p.instances.get(key.index))
                    .map(|i| i.name.clone());
                let reason = match run.contexts.retry_of {
                    Some(old) => format!("reused from run {old}, where it succeeded"),
                    None => "reused from the retried run".to_owned(),
                };
                t.new_instances.push(terminal(
                    wf,
                    key.node,
                    key.index,
                    name,
                    JobStatus::Success,
                    &reason,
                    &q,
                ));
                cmds.extend(graph.on(Event::Finished {
                    key,
                    status: JobStatus::Success,
                }));
            }
            Command::Start { key } => {
                let plan = match plans.get(&key.node) {
                    Some(p) => p,
                    None => {
                        // Started in a later transition (max-parallel): plan again; the
                        // inputs (needs, contexts) have not changed since.
                        let needs_ctx =
                            needs_context(wf, key.node, graph, instances, &run.contexts.reuse)?;
                        let cx = PlanContexts {
                            github: &run.contexts.github,
                            inputs: &run.contexts.inputs,
                            needs: &needs_ctx,
                            vars: &empty,
                            kiln: &run.contexts.kiln,
                            secrets: &empty,
                        };
                        match plan_job(&wf.jobs[key.node], cx, StatusCheck::Success) {
                            Ok(Decision::Run(p)) => plans.entry(key.node).or_insert(p),
                            Ok(Decision::Skip) | Err(_) => {
                                return Err(TransitionError::Invalid(format!(
                                    "job `{}` could not be planned again",
                                    wf.jobs[key.node].id
                                )));
                            }
                        }
                    }
                };
                let Some(inst) = plan.instances.get(key.index) else {
                    return Err(TransitionError::Invalid(format!(
                        "no instance {} of job `{}`",
                        key.index, wf.jobs[key.node].id
                    )));
                };
                let job = &wf.jobs[key.node];
                let mut github = run.contexts.github.clone();
                if let Value::Object(m) = &mut github {
                    m.insert("job".into(), Value::str(job.id.to_string()));
                    m.insert("run_id".into(), Value::str(run.id.to_string()));
                    m.insert("run_number".into(), Value::str(run.id.to_string()));
                }
                t.new_instances.push(NewInstance {
                    priority: q.priority(key.node),
                    node: key.node as u32,
                    index: key.index as u32,
                    job_key: job.id.to_string(),
                    name: inst.name.clone(),
                    matrix: inst.matrix.as_ref().map(|m| m.to_value()),
                    runs_on: inst.runs_on.clone(),
                    weight: plan.weight,
                    status: JobStatus::Queued,
                    reason: None,
                    gate: gate_for(run, inst),
                    contexts: JobContexts {
                        github,
                        inputs: run.contexts.inputs.clone(),
                        needs: needs_context(wf, key.node, graph, instances, &run.contexts.reuse)?,
                        matrix: inst
                            .matrix
                            .as_ref()
                            .map(|m| m.to_value())
                            .unwrap_or(Value::Null),
                        strategy: inst.strategy.clone(),
                        kiln: run.contexts.kiln.clone(),
                        secrets: empty.clone(),
                        vars: empty.clone(),
                    },
                    retry: q.retry(key.node),
                });
                fx.queued += 1;
                fx.gated |= inst.environment.is_some() || inst.concurrency.is_some();
            }
            Command::Cancel { key } => {
                let states = instances.of(key.node)?;
                if let Some(i) = states.iter().find(|i| i.index as usize == key.index) {
                    let running_deploy =
                        i.status == JobStatus::Running && wf.jobs[key.node].environment.is_some();
                    if !(spare_deploys && running_deploy) {
                        t.cancel.push(i.id);
                    }
                }
            }
            Command::Dropped { key, status } => {
                let name = plans
                    .get(&key.node)
                    .and_then(|p| p.instances.get(key.index))
                    .map(|i| i.name.clone());
                t.new_instances.push(terminal(
                    wf,
                    key.node,
                    key.index,
                    name,
                    status,
                    "cancelled before it started",
                    &q,
                ));
            }
            Command::RunFinished { status } => {
                t.status = Some(status);
                t.finished_at = Some(now);
                fx.finished = Some(status);
            }
        }
    }
    if run.status == JobStatus::Queued && fx.queued > 0 && t.status.is_none() {
        t.status = Some(JobStatus::Running);
        t.started_at = Some(now);
    }
    let (head, nodes) = graph.changed_parts();
    t.graph = head;
    t.graph_nodes = nodes.into_iter().map(|(n, s)| (n as u32, s)).collect();
    Ok((t, fx))
}

/// The graph event for an instance that reached a terminal status.
pub fn finished(node: u32, index: u32, status: JobStatus) -> Event {
    Event::Finished {
        key: InstanceKey {
            node: node as usize,
            index: index as usize,
        },
        status,
    }
}

/// How a job waits in the queue: its priority (the job's, else the
/// workflow's, else the repository's) and its retry policy (its `retry:`,
/// else the server's default: `default_retries` retries of
/// infrastructure failures).
struct Queueing<'w> {
    wf: &'w Workflow,
    repo_priority: i32,
    default_retries: u32,
}

impl Queueing<'_> {
    fn priority(&self, node: usize) -> i32 {
        self.wf.priority_of(&self.wf.jobs[node], self.repo_priority)
    }

    fn retry(&self, node: usize) -> RetryPolicy {
        self.wf.jobs[node]
            .retry
            .clone()
            .unwrap_or_else(|| RetryPolicy::infrastructure(self.default_retries))
    }
}

fn status_check(n: NeedsStatus) -> StatusCheck {
    match n {
        NeedsStatus::Success => StatusCheck::Success,
        NeedsStatus::Failure => StatusCheck::Failure,
        NeedsStatus::NotSuccess => StatusCheck::NotSuccess,
        NeedsStatus::Cancelled => StatusCheck::Cancelled,
    }
}

fn terminal(
    wf: &Workflow,
    node: usize,
    index: usize,
    name: Option<String>,
    status: JobStatus,
    reason: &str,
    q: &Queueing<'_>,
) -> NewInstance {
    let job = &wf.jobs[node];
    NewInstance {
        priority: q.priority(node),
        node: node as u32,
        index: index as u32,
        job_key: job.id.to_string(),
        name: name.unwrap_or_else(|| job.id.to_string()),
        matrix: None,
        runs_on: Vec::new(),
        weight: job.weight,
        status,
        reason: Some(reason.to_owned()),
        contexts: JobContexts::default(),
        retry: q.retry(node),
        gate: None,
    }
}

/// The gate an instance enters, and what it waits for until released: its
/// environment (a deploy), else its job-level concurrency group.
fn gate_for(run: &RunRecord, inst: &kiln_pipeline::plan::Instance) -> Option<(NewGate, Waiting)> {
    let actor = match run.contexts.github.get_ci("actor") {
        Some(Value::String(s)) => s.clone(),
        _ => "kiln".to_owned(),
    };
    if let Some(env) = &inst.environment {
        let approval = if env.approval {
            Approval::Pending
        } else {
            Approval::NotNeeded
        };
        let waiting = Waiting {
            kind: if env.approval {
                WaitKind::Approval
            } else {
                WaitKind::Environment
            },
            name: env.name.clone(),
        };
        return Some((
            NewGate {
                kind: GateKind::Environment,
                name: env.name.clone(),
                commit: run.commit.clone(),
                force: run.contexts.force_deploy,
                cancel_in_progress: false,
                approval,
                actor,
            },
            waiting,
        ));
    }
    let group = inst.concurrency.as_ref()?;
    Some((
        NewGate {
            kind: GateKind::Group,
            name: group.name.clone(),
            commit: run.commit.clone(),
            force: false,
            cancel_in_progress: group.cancel_in_progress,
            approval: Approval::NotNeeded,
            actor,
        },
        Waiting {
            kind: WaitKind::Group,
            name: group.name.clone(),
        },
    ))
}

/// `needs.<job>.{result, outputs}` for `node`, from stored instances.
fn needs_context(
    wf: &Workflow,
    node: usize,
    graph: &RunGraph,
    instances: &Instances,
    reuse: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Value, TransitionError> {
    let mut out = BTreeMap::new();
    for need in &wf.jobs[node].needs {
        let Some(ni) = wf.jobs.iter().position(|j| &j.id == need) else {
            continue;
        };
        let status = graph.node_status(ni).unwrap_or(JobStatus::Skipped);
        let mut outputs: BTreeMap<String, Value> = reuse
            .get(need.as_str())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::str(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        for inst in instances.of(ni)? {
            for (k, v) in &inst.outputs {
                outputs.insert(k.clone(), Value::str(v.clone()));
            }
        }
        out.insert(
            need.to_string(),
            Value::object([
                ("result", Value::str(status.as_str())),
                ("outputs", Value::Object(outputs)),
            ]),
        );
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::{Input, Instances, new_graph, transition};
    use kiln_core::graph::RunGraph;

    /// The graph of a new run of `wf`, read back from its parts.
    fn fresh(wf: &Workflow) -> RunGraph {
        let parts = new_graph(wf);
        RunGraph::from_parts(&parts.head, parts.nodes.into_iter().enumerate().collect())
            .expect("parts")
    }
    use jiff::Timestamp;
    use kiln_model::workflow::Workflow;
    use kiln_model::{JobStatus, RepoId, RetryOn, RetryPolicy, RunId, Value};
    use kiln_store::types::{RunContexts, RunRecord};

    fn workflow(yaml: &str) -> Workflow {
        let loaded = kiln_pipeline::load::load("w.yml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.workflow.expect("workflow")
    }

    fn run(wf: &Workflow, repo_priority: i32) -> RunRecord {
        RunRecord {
            id: RunId(1),
            repo: RepoId(1),
            repo_name: "r".into(),
            repo_url: "file:///r".into(),
            workflow_file: wf.file.clone(),
            workflow_name: wf.display_name().to_owned(),
            commit: "0".repeat(40),
            git_ref: None,
            event: "push".into(),
            workflow: Some(wf.clone()),
            contexts: RunContexts {
                github: Value::object([("actor", Value::str("me"))]),
                inputs: Value::object::<&str>([]),
                kiln: Value::object::<&str>([]),
                repo_priority,
                ..RunContexts::default()
            },
            status: JobStatus::Queued,
            error: None,
            graph: Some(new_graph(wf).head),
            hold: None,
            version: 1,
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
        }
    }

    /// Priority: the job's, else the workflow's, else the repository's;
    /// retry: the job's `retry:`, else the server's default retries of
    /// infrastructure failures.
    #[test]
    fn new_instances_carry_priority_and_retry_policy() {
        let yaml = "on: push
jobs:
  plain:
    runs-on: local
    steps: [{run: make}]
  urgent:
    runs-on: local
    priority: 50
    retry: {max: 1, on: [exit-code]}
    steps: [{run: make}]
";
        let wf = workflow(yaml);
        let (t, _) = transition(
            &run(&wf, -7),
            &wf,
            &mut fresh(&wf),
            &Instances::all(Vec::new()),
            Input::Start,
            Vec::new(),
            Timestamp::UNIX_EPOCH,
            2,
        )
        .expect("transition");
        let got: Vec<_> = t
            .new_instances
            .iter()
            .map(|i| (i.job_key.as_str(), i.priority, i.retry.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("plain", -7, RetryPolicy::infrastructure(2)),
                (
                    "urgent",
                    50,
                    RetryPolicy {
                        max: 1,
                        on: vec![RetryOn::ExitCode(Vec::new())],
                    }
                ),
            ]
        );

        let wf = workflow(&yaml.replace("on: push\n", "on: push\npriority: 3\n"));
        let (t, _) = transition(
            &run(&wf, -7),
            &wf,
            &mut fresh(&wf),
            &Instances::all(Vec::new()),
            Input::Start,
            Vec::new(),
            Timestamp::UNIX_EPOCH,
            2,
        )
        .expect("transition");
        let priorities: Vec<i32> = t.new_instances.iter().map(|i| i.priority).collect();
        assert_eq!(
            priorities,
            vec![3, 50],
            "the workflow's over the repository's"
        );
    }
}
