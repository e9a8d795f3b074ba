//! The runner's state while it walks a job's steps: the `env`, `steps`
//! and `job` contexts so far, the job's failure and cancellation flags,
//! and the evaluation of templates and conditions against them.

use std::collections::BTreeMap;

use kiln_model::workflow::{Builtin, Dyn, Job, Shell, Step, StepAction, Template, Workflow};
use kiln_model::{Failure, FailureClass, StepStatus, Value};
use kiln_pipeline::expr::{self, EvalError, ExprError, StatusCheck};
use kiln_proto::results::StepResult;

use super::JobRun;
use super::context::Ctx;

/// Why a value of the job or of a step (an `env:` entry, `if:`,
/// `timeout-minutes`, …) could not be evaluated; its message is the reason
/// the step or the job failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ValueError {
    #[error("{0}")]
    Parse(#[from] ExprError),
    #[error("{0}")]
    Eval(#[from] EvalError),
    #[error("{what}: `{text}` is not a number of minutes")]
    NotMinutes { what: &'static str, text: String },
    #[error("{what}: expected a number, got {got}")]
    NotANumber { what: &'static str, got: String },
    #[error("{what}: must be a positive number of minutes, got {n}")]
    NotPositive { what: &'static str, n: f64 },
    /// The error of the value at `at` (`if`, `job env `X``, …).
    #[error("{at}: {source}")]
    At { at: String, source: Box<ValueError> },
}

impl ValueError {
    fn at(self, at: impl Into<String>) -> ValueError {
        ValueError::At {
            at: at.into(),
            source: Box::new(self),
        }
    }
}

/// The runner's state while it walks the steps.
pub(super) struct JobState<'r> {
    pub(super) run: &'r JobRun,
    /// `env` context so far: workflow, then job, then `$KILN_ENV` additions.
    pub(super) env: BTreeMap<String, String>,
    /// Directories from `$KILN_PATH`, newest first.
    pub(super) path_prefix: Vec<String>,
    pub(super) steps: BTreeMap<String, Value>,
    pub(super) job_ctx: Value,
    pub(super) failed: bool,
    pub(super) cancelled: bool,
    pub(super) timed_out: bool,
    /// The first step failure that counted (after `continue-on-error`).
    pub(super) failure: Option<Failure>,
    /// The class of the step `execute` ran last, if it failed.
    pub(super) step_class: FailureClass,
    /// The environment's rendered name, for `$KILN_ENVIRONMENT`.
    pub(super) environment: Option<String>,
    /// `$KILN_ROLLBACK_TO`, set while the rollback steps run.
    pub(super) rollback_to: Option<String>,
    pub(super) shell: Shell,
    pub(super) working_directory: Option<Template>,
}

impl<'r> JobState<'r> {
    pub(super) fn new(run: &'r JobRun, job: &Job) -> Self {
        let defaults = [&job.defaults, &run.workflow.defaults];
        JobState {
            run,
            env: BTreeMap::new(),
            path_prefix: Vec::new(),
            steps: BTreeMap::new(),
            job_ctx: Value::object([("status", Value::str("success"))]),
            failed: false,
            cancelled: false,
            timed_out: false,
            failure: None,
            step_class: FailureClass::Other,
            environment: None,
            rollback_to: None,
            shell: defaults
                .iter()
                .find_map(|d| d.shell.clone())
                .unwrap_or(Shell::Bash),
            working_directory: defaults.iter().find_map(|d| d.working_directory.clone()),
        }
    }

    pub(super) fn status(&self) -> StatusCheck {
        if self.cancelled || self.timed_out {
            StatusCheck::Cancelled
        } else if self.failed {
            StatusCheck::Failure
        } else {
            StatusCheck::Success
        }
    }

    pub(super) fn env_value(&self, extra: &BTreeMap<String, String>) -> Value {
        Value::Object(
            self.env
                .iter()
                .chain(extra.iter())
                .map(|(k, v)| (k.clone(), Value::str(v.clone())))
                .collect(),
        )
    }

    pub(super) fn with_ctx<T>(
        &self,
        extra_env: &BTreeMap<String, String>,
        f: impl FnOnce(&Ctx<'_>) -> T,
    ) -> T {
        let env = self.env_value(extra_env);
        let steps = Value::Object(self.steps.clone());
        let ctx = Ctx {
            base: &self.run.contexts,
            env: &env,
            steps: &steps,
            job: &self.job_ctx,
            status: self.status(),
            workspace: &self.run.workspace,
        };
        f(&ctx)
    }

    pub(super) fn render(&self, tpl: &Template) -> Result<String, ValueError> {
        self.render_with(tpl, &BTreeMap::new())
    }

    pub(super) fn render_with(
        &self,
        tpl: &Template,
        extra: &BTreeMap<String, String>,
    ) -> Result<String, ValueError> {
        if tpl.is_literal() {
            return Ok(tpl.src.clone());
        }
        let parsed = expr::parse_template(&tpl.src)?;
        Ok(self.with_ctx(extra, |ctx| parsed.render(ctx))?)
    }

    pub(super) fn eval_value(&self, tpl: &Template) -> Result<Value, ValueError> {
        let parsed = expr::parse_template(&tpl.src)?;
        Ok(self.with_ctx(&BTreeMap::new(), |ctx| parsed.eval(ctx))?)
    }

    pub(super) fn eval_bool(&self, d: &Dyn<bool>) -> Result<bool, ValueError> {
        match d {
            Dyn::Lit(b) => Ok(*b),
            Dyn::Expr(t) => self.eval_value(t).map(|v| expr::truthy(&v)),
        }
    }

    pub(super) fn eval_minutes(
        &self,
        d: Option<&Dyn<f64>>,
        what: &'static str,
    ) -> Result<Option<f64>, ValueError> {
        let n = match d {
            None => return Ok(None),
            Some(Dyn::Lit(n)) => *n,
            Some(Dyn::Expr(t)) => match self.eval_value(t)? {
                Value::Number(n) => n,
                Value::String(s) => {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| ValueError::NotMinutes {
                            what,
                            text: s.clone(),
                        })?
                }
                other => {
                    return Err(ValueError::NotANumber {
                        what,
                        got: expr::to_string(&other),
                    });
                }
            },
        };
        if !(n > 0.0 && n.is_finite()) {
            return Err(ValueError::NotPositive { what, n });
        }
        Ok(Some(n))
    }

    pub(super) fn evaluate_job_env(&mut self, wf: &Workflow, job: &Job) -> Result<(), ValueError> {
        for (scope, pairs) in [("workflow", &wf.env), ("job", &job.env)] {
            for (k, tpl) in pairs {
                let v = self
                    .render(tpl)
                    .map_err(|e| e.at(format!("{scope} env `{k}`")))?;
                self.env.insert(k.clone(), v);
            }
        }
        Ok(())
    }

    /// Render the environment's name once, for `$KILN_ENVIRONMENT` and the
    /// deploy's messages.
    pub(super) fn evaluate_environment(&mut self, job: &Job) -> Result<(), ValueError> {
        if let Some(env) = &job.environment {
            let name = self
                .render(&env.name)
                .map_err(|e| e.at("environment name"))?;
            self.environment = Some(name);
        }
        Ok(())
    }

    pub(super) fn step_name(&self, step: &Step) -> String {
        if let Some(n) = &step.name {
            if let Ok(s) = self.render(n) {
                return s;
            }
            return n.src.clone();
        }
        match &step.action {
            StepAction::Run { script, .. } => {
                let first = script
                    .src
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                format!("Run {}", first.trim())
            }
            StepAction::Uses {
                builtin: Builtin::Checkout,
                ..
            } => "Run actions/checkout".into(),
            StepAction::Unsupported { uses } => format!("Run {uses}"),
        }
    }

    /// Whether the step's condition holds. `Err` is an evaluation error,
    /// which fails the step.
    pub(super) fn should_run(&self, step: &Step, status: StatusCheck) -> Result<bool, ValueError> {
        match &step.if_ {
            None => Ok(status == StatusCheck::Success),
            Some(cond) => {
                let parsed =
                    expr::parse_condition(&cond.src).map_err(|e| ValueError::from(e).at("if"))?;
                self.with_ctx(&BTreeMap::new(), |ctx| parsed.eval(ctx))
                    .map_err(|e| ValueError::from(e).at("if"))
            }
        }
    }

    pub(super) fn record(
        &mut self,
        step: &Step,
        result: &StepResult,
        outputs: BTreeMap<String, String>,
    ) {
        let class = std::mem::replace(&mut self.step_class, FailureClass::Other);
        match result.status {
            StepStatus::Failure => {
                self.failed = true;
                self.failure.get_or_insert(Failure {
                    class,
                    step: Some(result.number),
                    exit_code: result.exit_code.filter(|&c| c != 0),
                });
            }
            StepStatus::Cancelled => self.cancelled = true,
            StepStatus::Success | StepStatus::Skipped => {}
        }
        self.refresh_job_ctx();
        if let Some(id) = &step.id {
            let outputs = Value::Object(
                outputs
                    .into_iter()
                    .map(|(k, v)| (k, Value::str(v)))
                    .collect(),
            );
            self.steps.insert(
                id.to_string(),
                Value::object([
                    ("outputs", outputs),
                    ("outcome", Value::str(result.outcome.as_str())),
                    ("conclusion", Value::str(result.status.as_str())),
                ]),
            );
        }
    }

    /// `job.status` from the flags.
    pub(super) fn refresh_job_ctx(&mut self) {
        self.job_ctx = Value::object([(
            "status",
            Value::str(if self.cancelled || self.timed_out {
                "cancelled"
            } else if self.failed {
                "failure"
            } else {
                "success"
            }),
        )]);
    }
}
