//! The validated pipeline IR: what a workflow file means once it has been
//! read and checked.
//!
//! `kiln-pipeline` builds these from YAML (and is the only producer); the core,
//! the job runner and the server consume them. Fields that may hold
//! expressions are [`Template`]s (text with `${{ }}` parts, already checked
//! for syntax) or [`Dyn`] (a literal, or a template evaluated at run time).
//! Every node that a run-time error can point at keeps its [`Loc`].

use crate::ids::{JobId, StepId};
use crate::retry::RetryPolicy;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// A 1-based line and column in a workflow file.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

/// Text that may contain `${{ expr }}` parts; the syntax was checked when the
/// file was loaded. `loc` is where the text starts in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub src: String,
    pub loc: Loc,
}

impl Template {
    pub fn new(src: impl Into<String>, loc: Loc) -> Self {
        Template {
            src: src.into(),
            loc,
        }
    }

    /// True when the text has no `${{` and so renders to itself.
    pub fn is_literal(&self) -> bool {
        !self.src.contains("${{")
    }
}

/// An `if:` condition as written: either a bare expression
/// (`github.ref == 'refs/heads/main'`) or one wrapped in `${{ }}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cond {
    pub src: String,
    pub loc: Loc,
}

/// A literal value, or an expression that yields one at run time
/// (`continue-on-error: ${{ matrix.experimental }}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Dyn<T> {
    Lit(T),
    Expr(Template),
}

/// Ordered `NAME: value` pairs (`env:`, `outputs:`, `with:`).
pub type Pairs = Vec<(String, Template)>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The file's path as it was given (relative to the repository root when
    /// found by discovery), used in every diagnostic.
    pub file: String,
    pub name: Option<String>,
    pub on: Triggers,
    pub env: Pairs,
    pub defaults: RunDefaults,
    pub concurrency: Option<Concurrency>,
    /// kiln's `priority:` for every job that has none of its own.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Jobs in file order.
    pub jobs: Vec<Job>,
}

/// The bounds of `priority:` (a job's, a workflow's, a repository's).
pub const PRIORITY_MIN: i32 = -1000;
pub const PRIORITY_MAX: i32 = 1000;

impl Workflow {
    /// The priority of `job`: its own, else the workflow's, else
    /// `fallback` (the repository's default).
    pub fn priority_of(&self, job: &Job, fallback: i32) -> i32 {
        job.priority.or(self.priority).unwrap_or(fallback)
    }

    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.iter().find(|j| &j.id == id)
    }

    /// A copy without its jobs (the caller adds the ones it needs).
    pub fn clone_head(&self) -> Workflow {
        Workflow {
            file: self.file.clone(),
            name: self.name.clone(),
            on: self.on.clone(),
            env: self.env.clone(),
            defaults: self.defaults.clone(),
            concurrency: self.concurrency.clone(),
            priority: self.priority,
            jobs: Vec::new(),
        }
    }

    /// Does this workflow run on `event` (`push`, `pull_request`,
    /// `workflow_dispatch`, `schedule`, `comment`, or a GitHub-only event)?
    pub fn runs_on_event(&self, event: &str) -> bool {
        let on = &self.on;
        match event {
            "push" => on.push.is_some(),
            "pull_request" => on.pull_request.is_some(),
            "workflow_dispatch" => on.workflow_dispatch.is_some(),
            "schedule" => !on.schedule.is_empty(),
            "comment" => on.comment.is_some(),
            other => on.other.iter().any(|e| e == other),
        }
    }

    /// Does `name` name this workflow: its `name:`, its path, its file name,
    /// or its file stem?
    pub fn is_named(&self, name: &str) -> bool {
        let file = self.file.rsplit('/').next().unwrap_or(&self.file);
        self.name.as_deref() == Some(name)
            || self.file == name
            || file == name
            || self.display_name() == name
            || {
                let stem = file
                    .strip_suffix(".yml")
                    .or_else(|| file.strip_suffix(".yaml"))
                    .unwrap_or(file);
                stem == name
            }
    }

    /// The workflow's display name: `name:` or the file stem.
    pub fn display_name(&self) -> &str {
        if let Some(n) = &self.name {
            return n;
        }
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        base.strip_suffix(".yml")
            .or_else(|| base.strip_suffix(".yaml"))
            .unwrap_or(base)
    }
}

/// `defaults.run` at workflow or job level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunDefaults {
    pub shell: Option<Shell>,
    pub working_directory: Option<Template>,
}

/// The events a workflow reacts to (`on:`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Triggers {
    pub push: Option<RefFilter>,
    pub pull_request: Option<PullRequestTrigger>,
    pub schedule: Vec<Schedule>,
    pub workflow_dispatch: Option<Dispatch>,
    pub comment: Option<CommentTrigger>,
    /// GitHub events kiln knows but never raises (`release`, `merge_group`,
    /// …): accepted so that GitHub workflows load, and listed by
    /// `kiln validate` as never triggering.
    pub other: Vec<String>,
}

/// Branch, tag and path filters of `on.push` and `on.pull_request`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RefFilter {
    pub branches: Vec<String>,
    pub branches_ignore: Vec<String>,
    pub tags: Vec<String>,
    pub tags_ignore: Vec<String>,
    pub paths: Vec<String>,
    pub paths_ignore: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PullRequestTrigger {
    /// Activity types; empty means GitHub's default (opened, synchronize, reopened).
    pub types: Vec<String>,
    pub filter: RefFilter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub cron: String,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    pub inputs: Vec<DispatchInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatchInput {
    pub name: String,
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
    pub kind: InputKind,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InputKind {
    String,
    Boolean,
    Number,
    Choice(Vec<String>),
    Environment,
}

/// kiln's `on: comment: {command: "!testme"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommentTrigger {
    pub command: String,
    /// The flags the command takes (`on.comment.flags`): `extra` is a
    /// boolean flag (`--extra`), `only=` takes a value (`--only JOB`).
    /// Empty: the `kiln.flags.NAME` the workflow's expressions read, as
    /// booleans.
    #[serde(default)]
    pub flags: Vec<String>,
}

/// `concurrency:` at workflow or job level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concurrency {
    pub group: Template,
    pub cancel_in_progress: Dyn<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub loc: Loc,
    pub name: Option<Template>,
    pub needs: Vec<JobId>,
    /// `runs-on` labels, matched against agent labels by the scheduler.
    pub runs_on: Vec<Template>,
    pub if_: Option<Cond>,
    pub env: Pairs,
    pub defaults: RunDefaults,
    pub timeout_minutes: Option<Dyn<f64>>,
    pub continue_on_error: Dyn<bool>,
    pub outputs: Pairs,
    pub strategy: Strategy,
    /// kiln's `weight:` — capacity units the job takes on an agent.
    pub weight: u32,
    /// kiln's `priority:` — claim order, higher first; overrides the
    /// workflow's and the repository's.
    #[serde(default)]
    pub priority: Option<i32>,
    /// kiln's `retry:`; `None`: the server's default (infrastructure
    /// failures only).
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    pub concurrency: Option<Concurrency>,
    pub environment: Option<Environment>,
    pub container: Option<Container>,
    pub services: Vec<Service>,
    pub steps: Vec<Step>,
    /// `rollback:` — steps run when the environment's health check never
    /// passes, with `KILN_ROLLBACK_TO` set to the last good commit.
    #[serde(default)]
    pub rollback: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    pub matrix: Option<Matrix>,
    pub fail_fast: Dyn<bool>,
    pub max_parallel: Option<Dyn<f64>>,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            matrix: None,
            fail_fast: Dyn::Lit(true),
            max_parallel: None,
        }
    }
}

/// `strategy.matrix`: written out, or one expression producing the whole
/// object (`${{ fromJSON(needs.plan.outputs.matrix) }}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Matrix {
    Static(MatrixSpec),
    Dynamic(Template),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixSpec {
    /// Axes in file order; each is a list of values or an expression giving one.
    pub axes: Vec<(String, Dyn<Vec<Value>>)>,
    pub include: Dyn<Vec<Value>>,
    pub exclude: Dyn<Vec<Value>>,
}

impl Default for Dyn<Vec<Value>> {
    fn default() -> Self {
        Dyn::Lit(Vec::new())
    }
}

/// `environment:` — a deploy target. A job with an environment is a
/// deploy: the server serializes deploys per repository and environment
/// (see `docs/deploys.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: Template,
    pub url: Option<Template>,
    /// `approval: true` or an expression: the job waits for a maintainer's
    /// `kiln approve` before it runs. `Dyn::Lit(false)` when absent.
    #[serde(default = "no_approval")]
    pub approval: Dyn<bool>,
    /// Run after the job's steps succeed; if it never passes, the job's
    /// `rollback:` steps run.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

fn no_approval() -> Dyn<bool> {
    Dyn::Lit(false)
}

/// `environment.health-check:` — a command that must pass after a deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub loc: Loc,
    /// The script, run like a `run:` step (the job's default shell).
    pub run: Template,
    /// Attempts after the first one (`retries: 2` = up to three runs).
    pub retries: u32,
    /// Pause between attempts, in milliseconds.
    pub interval_ms: u64,
    /// Longest one attempt may take, in milliseconds.
    pub timeout_ms: u64,
}

/// `container:` — the image every step of the job runs in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub image: Template,
    pub env: Pairs,
    pub options: Option<Template>,
    pub volumes: Vec<Template>,
    pub credentials: Option<Credentials>,
    /// `ports:` published from the job container.
    #[serde(default)]
    pub ports: Vec<Template>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: Template,
    pub password: Template,
}

/// `services.<name>:` — a container started beside the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub image: Template,
    pub env: Pairs,
    pub ports: Vec<Template>,
    pub options: Option<Template>,
    pub loc: Loc,
    #[serde(default)]
    pub volumes: Vec<Template>,
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub loc: Loc,
    pub id: Option<StepId>,
    pub name: Option<Template>,
    pub if_: Option<Cond>,
    pub env: Pairs,
    pub continue_on_error: Dyn<bool>,
    pub timeout_minutes: Option<Dyn<f64>>,
    pub action: StepAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepAction {
    Run {
        script: Template,
        shell: Option<Shell>,
        working_directory: Option<Template>,
    },
    Uses {
        builtin: Builtin,
        with: Pairs,
    },
    /// An action kiln does not implement. A workflow holding one is invalid
    /// (an error diagnostic names it); the IR keeps it so tools can still
    /// inspect the rest of the file.
    Unsupported {
        uses: String,
    },
}

/// Actions kiln implements natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    /// `actions/checkout@*`: the workspace already holds the commit, so this
    /// only honours `path:` style options that make sense locally.
    Checkout,
}

/// The interpreter of a `run:` step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shell {
    /// `bash --noprofile --norc -eo pipefail {0}` (the default).
    Bash,
    /// `sh -e {0}`.
    Sh,
    /// `python {0}`.
    Python,
    /// `pwsh -command ". '{0}'"`.
    Pwsh,
    /// Windows PowerShell; never available on the machines kiln runs on.
    Powershell,
    /// Windows `cmd`; never available on the machines kiln runs on.
    Cmd,
    /// A custom command line containing `{0}` for the script file.
    Custom(String),
}
