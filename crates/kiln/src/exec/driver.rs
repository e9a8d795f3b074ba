//! The driver of one `kiln exec` run: it builds the combined job graph of
//! the chosen workflows, carries out the graph's commands (evaluate a job,
//! start an instance, cancel, drop), feeds finished jobs and Ctrl-C back as
//! events, and reports the runs when the graph says it is finished.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kiln_core::graph::{Command, Event, Expansion, InstanceKey, NeedsStatus, NodeSpec, RunGraph};
use kiln_exec::port::Cancel;
use kiln_exec::runner::JobObserver;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::select::Executors;
use kiln_model::workflow::Workflow;
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_pipeline::expr::StatusCheck;
use kiln_pipeline::plan::{Decision, Instance, JobContexts, Plan, plan_job};
use kiln_proto::results::{JobResult, RunResult};
use tokio::sync::mpsc;

use super::output::{self, Printer};
use super::{JobTask, blank_result, combination_map, interrupts, run_status, select, workspace};
use crate::cli::ExecArgs;
use crate::error::CliError;
use crate::repo::Repo;

/// One node of the combined graph: a job of one of the chosen workflows.
struct Node {
    wf: usize,
    job: usize,
}

/// What the driver keeps per started or planned instance.
struct Slot {
    instance: Instance,
    queued_at: Timestamp,
    queued_clock: Instant,
    cancel: Cancel,
}

pub(super) struct Driver<'a> {
    pub(super) repo: Repo,
    pub(super) args: &'a ExecArgs,
    pub(super) inputs: Vec<Value>,
    pub(super) flags: Value,
    pub(super) source: Option<Arc<workspace::Source>>,
    pub(super) scratch: PathBuf,
    pub(super) printer: Arc<Printer>,
    pub(super) run_id: String,
}

/// A finished instance, as reported by its task.
struct Done {
    key: InstanceKey,
    result: JobResult,
}

/// What the driver keeps while the run goes on.
struct Run<'c> {
    chosen: &'c [Arc<Workflow>],
    nodes: Vec<Node>,
    /// The `github` context of each chosen workflow.
    githubs: Vec<Value>,
    graph: RunGraph,
    slots: HashMap<InstanceKey, Slot>,
    results: BTreeMap<InstanceKey, JobResult>,
    plans: HashMap<usize, Plan>,
    executor: Executors,
    base_env: Arc<Vec<(String, String)>>,
    done: mpsc::UnboundedSender<Done>,
    /// Instances started so far, numbering their log prefixes.
    started: usize,
    /// Ctrl-C presses so far.
    interrupted: u32,
}

impl Driver<'_> {
    pub(super) async fn drive(
        &self,
        chosen: &[Arc<Workflow>],
        capacity: u32,
    ) -> Result<(Vec<RunResult>, bool), CliError> {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let (nodes, specs) = self.graph_nodes(chosen)?;
        let executor = Executors::new(
            self.args
                .containers
                .exec_config()
                .map_err(CliError::Usage)?,
        );
        let (done, mut finished) = mpsc::unbounded_channel::<Done>();
        let mut run = Run {
            chosen,
            nodes,
            githubs: self.github_contexts(chosen),
            graph: RunGraph::new(specs, capacity),
            slots: HashMap::new(),
            results: BTreeMap::new(),
            plans: HashMap::new(),
            executor,
            base_env: Arc::new(std::env::vars().collect()),
            done,
            started: 0,
            interrupted: 0,
        };
        let mut interrupts = interrupts();
        let mut pending = run.graph.start();

        loop {
            let mut events = Vec::new();
            for cmd in pending.drain(..) {
                self.carry_out(&mut run, cmd, &mut events);
            }
            for e in events.drain(..) {
                pending.extend(run.graph.on(e));
            }
            if !pending.is_empty() {
                continue;
            }
            if run.graph.is_finished() {
                break;
            }
            tokio::select! {
                done = finished.recv() => {
                    let Some(Done { key, result }) = done else { break };
                    let status = result.status;
                    run.results.insert(key, result);
                    pending.extend(run.graph.on(Event::Finished { key, status }));
                }
                Some(()) = interrupts.recv() => {
                    run.interrupted += 1;
                    if run.interrupted == 1 {
                        self.printer.line("interrupted: cancelling running jobs (Ctrl-C again to kill them now)");
                        pending.extend(run.graph.on(Event::CancelRun));
                    } else {
                        self.printer.line("interrupted again: killing running jobs");
                        for slot in run.slots.values() {
                            slot.cancel.immediate.cancel();
                        }
                    }
                }
            }
        }

        let runs = self.run_results(&run, started_at, clock);
        self.print_summary(&runs, clock);
        Ok((runs, run.interrupted > 0))
    }

    /// The selected jobs of every chosen workflow as graph nodes, with
    /// their `needs` among them.
    fn graph_nodes(
        &self,
        chosen: &[Arc<Workflow>],
    ) -> Result<(Vec<Node>, Vec<NodeSpec>), CliError> {
        let mut nodes = Vec::new();
        let mut specs = Vec::new();
        for (wi, wf) in chosen.iter().enumerate() {
            let jobs = select::jobs(wf, &self.args.jobs, self.args.workflow.is_some())?;
            let base = nodes.len();
            for &ji in &jobs {
                let needs = wf.jobs[ji]
                    .needs
                    .iter()
                    .filter_map(|n| {
                        jobs.iter()
                            .position(|&j| &wf.jobs[j].id == n)
                            .map(|p| base + p)
                    })
                    .collect();
                nodes.push(Node { wf: wi, job: ji });
                specs.push(NodeSpec { needs });
            }
        }
        Ok((nodes, specs))
    }

    fn github_contexts(&self, chosen: &[Arc<Workflow>]) -> Vec<Value> {
        chosen
            .iter()
            .zip(&self.inputs)
            .map(|(wf, inputs)| {
                select::github_context(&self.repo, wf, self.args, inputs, &self.run_id)
            })
            .collect()
    }

    /// Carries out one command of the graph; what it learns right away (a
    /// job planned, skipped or failed to plan) goes into `events`.
    fn carry_out(&self, run: &mut Run<'_>, cmd: Command, events: &mut Vec<Event>) {
        match cmd {
            Command::Evaluate { node, needs } => events.push(self.evaluate(run, node, needs)),
            Command::Start { key } => self.start(run, key),
            Command::Cancel { key } => {
                if let Some(slot) = run.slots.get(&key) {
                    slot.cancel.graceful.cancel();
                    if run.interrupted >= 2 {
                        slot.cancel.immediate.cancel();
                    }
                }
            }
            Command::Dropped { key, status } => {
                let n = &run.nodes[key.node];
                let wf = &run.chosen[n.wf];
                let mut r = blank_result(wf, n.job, wf.jobs[n.job].id.as_str(), status);
                if let Some(slot) = run.slots.get(&key) {
                    r.name = slot.instance.name.clone();
                    r.matrix = slot.instance.matrix.as_ref().map(combination_map);
                    r.queued_at = Some(slot.queued_at);
                }
                r.reason = Some("cancelled before it started".into());
                run.results.insert(key, r);
            }
            Command::RunFinished { .. } => {}
        }
    }

    /// Plans the job of `node` now that its needs are done: skipped, run
    /// (its instances get slots), or failed to plan.
    fn evaluate(&self, run: &mut Run<'_>, node: usize, needs: NeedsStatus) -> Event {
        let empty = Value::Object(BTreeMap::new());
        let chosen = run.chosen;
        let n = &run.nodes[node];
        let wf = &chosen[n.wf];
        let job = &wf.jobs[n.job];
        let job_index = n.job;
        let needs_ctx = self.needs_context(run, node);
        let kiln = Value::object([("flags", self.flags.clone())]);
        let cx = JobContexts {
            github: &run.githubs[n.wf],
            inputs: &self.inputs[n.wf],
            needs: &needs_ctx,
            vars: &empty,
            kiln: &kiln,
            secrets: &empty,
        };
        let status = match needs {
            NeedsStatus::Success => StatusCheck::Success,
            NeedsStatus::Failure => StatusCheck::Failure,
            NeedsStatus::NotSuccess => StatusCheck::NotSuccess,
            NeedsStatus::Cancelled => StatusCheck::Cancelled,
        };
        let key = InstanceKey { node, index: 0 };
        match plan_job(job, cx, status) {
            Ok(Decision::Skip) => {
                let (status, reason) = kiln_pipeline::plan::not_run(job, status);
                let mut r = blank_result(wf, job_index, job.id.as_str(), status);
                r.reason = Some(reason.to_owned());
                self.printer.job(node, job.id.as_str()).say(reason);
                run.results.insert(key, r);
                Event::Skipped { node }
            }
            Ok(Decision::Run(plan)) => {
                let now = Timestamp::now();
                let expansion = Expansion {
                    weight: plan.weight,
                    instances: plan.instances.len(),
                    fail_fast: plan.fail_fast,
                    max_parallel: plan.max_parallel,
                    continue_on_error: plan.instances.iter().map(|i| i.continue_on_error).collect(),
                };
                for (index, inst) in plan.instances.iter().enumerate() {
                    run.slots.insert(
                        InstanceKey { node, index },
                        Slot {
                            instance: inst.clone(),
                            queued_at: now,
                            queued_clock: Instant::now(),
                            cancel: Cancel::default(),
                        },
                    );
                }
                run.plans.insert(node, plan);
                Event::Expanded { node, expansion }
            }
            Err(e) => {
                let mut r = blank_result(wf, job_index, job.id.as_str(), JobStatus::Failure);
                r.reason = Some(e.message.clone());
                r.failure = Some(Failure::of(FailureClass::Other));
                self.printer
                    .job(node, job.id.as_str())
                    .note(&format!("error: {e}"));
                run.results.insert(key, r);
                Event::EvaluationFailed { node }
            }
        }
    }

    /// Starts instance `key` in a task of its own; it reports through
    /// `run.done`.
    fn start(&self, run: &mut Run<'_>, key: InstanceKey) {
        run.started += 1;
        let empty = Value::Object(BTreeMap::new());
        let n = &run.nodes[key.node];
        let Some(slot) = run.slots.get(&key) else {
            return;
        };
        let wf = run.chosen[n.wf].clone();
        let mut github = run.githubs[n.wf].clone();
        if let Value::Object(m) = &mut github {
            m.insert("job".into(), Value::str(wf.jobs[n.job].id.to_string()));
        }
        let contexts = BaseContexts {
            github,
            inputs: self.inputs[n.wf].clone(),
            needs: self.needs_context(run, key.node),
            kiln: Value::object([("flags", self.flags.clone())]),
            secrets: empty.clone(),
            vars: empty,
            strategy: slot.instance.strategy.clone(),
            matrix: slot
                .instance
                .matrix
                .as_ref()
                .map(|m| m.to_value())
                .unwrap_or(Value::Null),
            runner: Value::Null,
        };
        let task = JobTask {
            key,
            wf,
            job_index: n.job,
            instance: slot.instance.clone(),
            contexts,
            queued_at: slot.queued_at,
            queued_clock: slot.queued_clock,
            cancel: slot.cancel.clone(),
            dir: self.scratch.join(format!("{}-{}", key.node, key.index)),
            in_place: self.args.in_place.then(|| self.repo.root.clone()),
            source: self.source.clone(),
            kill_grace: Duration::from_secs_f64(self.args.kill_grace.max(0.0)),
            observer: self.printer.job(run.started, &slot.instance.name),
            executor: run.executor.clone(),
            base_env: run.base_env.clone(),
        };
        let done = run.done.clone();
        tokio::spawn(async move {
            let result = task.run().await;
            let _ = done.send(Done { key, result });
        });
    }

    /// One result per chosen workflow, with its jobs' results.
    fn run_results(&self, run: &Run<'_>, started_at: Timestamp, clock: Instant) -> Vec<RunResult> {
        let finished_at = Timestamp::now();
        run.chosen
            .iter()
            .enumerate()
            .map(|(wi, wf)| {
                let jobs: Vec<JobResult> = run
                    .results
                    .iter()
                    .filter(|(k, _)| run.nodes[k.node].wf == wi)
                    .map(|(_, r)| r.clone())
                    .collect();
                RunResult {
                    workflow_file: wf.file.clone(),
                    workflow_name: wf.display_name().to_owned(),
                    event: self.args.event.clone(),
                    commit: self.repo.head.clone(),
                    git_ref: self.repo.branch.as_ref().map(|b| format!("refs/heads/{b}")),
                    status: run_status(
                        (0..run.nodes.len())
                            .filter(|n| run.nodes[*n].wf == wi)
                            .filter_map(|n| run.graph.node_status(n)),
                        run.interrupted > 0,
                    ),
                    started_at,
                    finished_at,
                    duration_ms: clock.elapsed().as_millis() as u64,
                    jobs,
                }
            })
            .collect()
    }

    fn print_summary(&self, runs: &[RunResult], clock: Instant) {
        let all: Vec<&JobResult> = runs.iter().flat_map(|r| &r.jobs).collect();
        self.printer.line(&output::summary(&self.printer, &all));
        let failed = all
            .iter()
            .filter(|j| j.status == JobStatus::Failure)
            .count();
        let ok = all
            .iter()
            .filter(|j| j.status == JobStatus::Success)
            .count();
        self.printer.line(&format!(
            "{} job{}: {ok} succeeded, {failed} failed, {} other, in {}",
            all.len(),
            if all.len() == 1 { "" } else { "s" },
            all.len() - ok - failed,
            output::fmt_ms(clock.elapsed().as_millis() as u64)
        ));
    }

    /// The `needs` context of `node`: result and outputs of each job it needs.
    fn needs_context(&self, run: &Run<'_>, node: usize) -> Value {
        let (nodes, graph, results) = (&run.nodes, &run.graph, &run.results);
        let n = &nodes[node];
        let wf = &run.chosen[n.wf];
        let mut out = BTreeMap::new();
        for need in &wf.jobs[n.job].needs {
            let Some(ni) = nodes
                .iter()
                .position(|m| m.wf == n.wf && &wf.jobs[m.job].id == need)
            else {
                continue;
            };
            let status = graph.node_status(ni).unwrap_or(JobStatus::Skipped);
            let mut outputs = BTreeMap::new();
            for (_, r) in results.range(
                InstanceKey { node: ni, index: 0 }..=InstanceKey {
                    node: ni,
                    index: usize::MAX,
                },
            ) {
                for (k, v) in &r.outputs {
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
        Value::Object(out)
    }
}
