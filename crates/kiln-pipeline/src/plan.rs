//! Job planning: a job's `if:`, matrix and strategy evaluated into the
//! instances that will run.
//!
//! Called once per job when every job it needs is done (so `needs.*` and a
//! dynamic `${{ fromJSON(…) }}` matrix are known). Pure: the caller passes
//! the contexts in. The same function serves `kiln exec` and the server.

use crate::expr::{self, Context, StatusCheck};
use crate::expr::{EvalError, ExprError};
use crate::matrix::{self, Combination, MatrixError};
use kiln_model::Value;
use kiln_model::workflow::{Concurrency, Dyn, Job, Matrix, Template};

/// Contexts available at job level (GitHub allows `github`, `needs`,
/// `inputs`, `vars`; kiln adds `kiln`; `matrix` and `strategy` appear per
/// instance).
#[derive(Clone, Copy, Debug)]
pub struct JobContexts<'a> {
    pub github: &'a Value,
    pub inputs: &'a Value,
    pub needs: &'a Value,
    pub vars: &'a Value,
    pub kiln: &'a Value,
    pub secrets: &'a Value,
}

/// One matrix combination of a job (or the job itself without a matrix).
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub matrix: Option<Combination>,
    /// Display name: `name:` rendered, or the job id, with the combination.
    pub name: String,
    pub runs_on: Vec<String>,
    pub continue_on_error: bool,
    /// The `strategy` context: fail-fast, job-index, job-total, max-parallel.
    pub strategy: Value,
    /// `environment:` evaluated: the instance is a deploy.
    pub environment: Option<DeployTarget>,
    /// Job-level `concurrency:` evaluated.
    pub concurrency: Option<Group>,
}

/// Where a deploy goes, evaluated for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployTarget {
    pub name: String,
    /// `environment.approval` was true.
    pub approval: bool,
}

/// A concurrency group, evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub cancel_in_progress: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub instances: Vec<Instance>,
    pub fail_fast: bool,
    pub max_parallel: Option<usize>,
    pub weight: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The job's `if:` is false.
    Skip,
    Run(Plan),
}

/// Why a job could not be planned; the job fails with this message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("job `{job}`: {message}")]
pub struct PlanError {
    pub job: String,
    pub message: String,
}

/// Why one value of a job (its `if:`, `matrix`, `name`, …) or of a
/// workflow's `concurrency:` could not be evaluated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error("{0}")]
    Parse(#[from] ExprError),
    #[error("{0}")]
    Eval(#[from] EvalError),
    #[error("{0}")]
    Matrix(#[from] MatrixError),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("expected a number, got `{0}`")]
    NotNumeric(String),
    #[error("expected a positive number, got {0}")]
    NotPositive(f64),
    #[error("expected a list, got `{0}`")]
    NotAList(String),
    #[error("the group name is empty")]
    EmptyGroup,
    #[error("the name is empty")]
    EmptyName,
    /// The error of the field at `at` (`if`, `matrix.os`, …).
    #[error("{at}: {source}")]
    At { at: String, source: Box<FieldError> },
}

impl FieldError {
    fn at(self, at: impl Into<String>) -> FieldError {
        FieldError::At {
            at: at.into(),
            source: Box::new(self),
        }
    }
}

struct JobCx<'a> {
    base: JobContexts<'a>,
    matrix: Value,
    strategy: Value,
    status: StatusCheck,
}

impl Context for JobCx<'_> {
    fn context(&self, name: &str) -> Option<&Value> {
        Some(match name {
            "github" => self.base.github,
            "inputs" => self.base.inputs,
            "needs" => self.base.needs,
            "vars" => self.base.vars,
            "kiln" => self.base.kiln,
            "secrets" => self.base.secrets,
            "matrix" => &self.matrix,
            "strategy" => &self.strategy,
            _ => return None,
        })
    }

    fn status(&self) -> StatusCheck {
        self.status
    }

    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        Err("hashFiles() is only available in steps".into())
    }
}

/// How a job that [`plan_job`] decided to skip ends, and why, in the words
/// `kiln exec` and the server both record: cancelled when the run was
/// cancelled before it started; skipped because a needed job did not
/// succeed (no `if:` of its own); skipped by its own `if:`.
pub fn not_run(job: &Job, needs: StatusCheck) -> (kiln_model::JobStatus, &'static str) {
    use kiln_model::JobStatus;
    if needs == StatusCheck::Cancelled {
        (
            JobStatus::Cancelled,
            "cancelled: the run was cancelled before it started",
        )
    } else if job.if_.is_none() && needs != StatusCheck::Success {
        (
            JobStatus::Skipped,
            "skipped: a job it needs did not succeed",
        )
    } else {
        (JobStatus::Skipped, "skipped: its if condition was false")
    }
}

/// Plan `job`; `status` is what `success()`/`failure()` see (its needs).
pub fn plan_job(
    job: &Job,
    cx: JobContexts<'_>,
    status: StatusCheck,
) -> Result<Decision, PlanError> {
    let err = |e: FieldError| PlanError {
        job: job.id.to_string(),
        message: e.to_string(),
    };
    let mut jcx = JobCx {
        base: cx,
        matrix: Value::Null,
        strategy: Value::Null,
        status,
    };

    let run = match &job.if_ {
        None => status == StatusCheck::Success,
        Some(cond) => {
            let c =
                expr::parse_condition(&cond.src).map_err(|e| err(FieldError::from(e).at("if")))?;
            c.eval(&jcx)
                .map_err(|e| err(FieldError::from(e).at("if")))?
        }
    };
    if !run {
        return Ok(Decision::Skip);
    }

    let fail_fast = eval_bool(&job.strategy.fail_fast, &jcx).map_err(|e| err(e.at("fail-fast")))?;
    let max_parallel = match &job.strategy.max_parallel {
        None => None,
        Some(d) => Some(eval_count(d, &jcx).map_err(|e| err(e.at("max-parallel")))?),
    };
    let combos: Vec<Option<Combination>> = match &job.strategy.matrix {
        None => vec![None],
        Some(m) => expand(m, &jcx)
            .map_err(err)?
            .into_iter()
            .map(Some)
            .collect(),
    };
    let total = combos.len();
    let mut instances = Vec::with_capacity(total);
    for (index, combo) in combos.into_iter().enumerate() {
        jcx.matrix = combo
            .as_ref()
            .map(Combination::to_value)
            .unwrap_or(Value::Null);
        jcx.strategy = Value::object([
            ("fail-fast", Value::Bool(fail_fast)),
            ("job-index", Value::Number(index as f64)),
            ("job-total", Value::Number(total as f64)),
            (
                "max-parallel",
                Value::Number(max_parallel.unwrap_or(total) as f64),
            ),
        ]);
        let name = match (&job.name, &combo) {
            (Some(t), _) if !t.is_literal() => render(t, &jcx).map_err(|e| err(e.at("name")))?,
            (Some(t), Some(c)) => matrix::display_name(&t.src, c),
            (Some(t), None) => t.src.clone(),
            (None, Some(c)) => matrix::display_name(job.id.as_str(), c),
            (None, None) => job.id.to_string(),
        };
        let mut runs_on = Vec::new();
        for t in &job.runs_on {
            let label = render(t, &jcx).map_err(|e| err(e.at("runs-on")))?;
            if !label.is_empty() {
                runs_on.push(label);
            }
        }
        let continue_on_error =
            eval_bool(&job.continue_on_error, &jcx).map_err(|e| err(e.at("continue-on-error")))?;
        let environment = match &job.environment {
            None => None,
            Some(env) => {
                let name = render(&env.name, &jcx).map_err(|e| err(e.at("environment")))?;
                if name.trim().is_empty() {
                    return Err(err(FieldError::EmptyName.at("environment")));
                }
                let approval = eval_bool(&env.approval, &jcx)
                    .map_err(|e| err(e.at("environment.approval")))?;
                Some(DeployTarget { name, approval })
            }
        };
        let concurrency = match &job.concurrency {
            None => None,
            Some(c) => Some(group(c, &jcx).map_err(err)?),
        };
        instances.push(Instance {
            matrix: combo,
            name,
            runs_on,
            continue_on_error,
            strategy: jcx.strategy.clone(),
            environment,
            concurrency,
        });
    }
    Ok(Decision::Run(Plan {
        instances,
        fail_fast,
        max_parallel,
        weight: job.weight,
    }))
}

/// A workflow's `concurrency:` evaluated with the run's contexts (GitHub
/// allows `github`, `inputs` and `vars` there).
pub fn workflow_group(c: &Concurrency, cx: JobContexts<'_>) -> Result<Group, FieldError> {
    let jcx = JobCx {
        base: cx,
        matrix: Value::Null,
        strategy: Value::Null,
        status: StatusCheck::Success,
    };
    group(c, &jcx)
}

fn group(c: &Concurrency, cx: &JobCx<'_>) -> Result<Group, FieldError> {
    let name = render(&c.group, cx).map_err(|e| e.at("concurrency.group"))?;
    if name.trim().is_empty() {
        return Err(FieldError::EmptyGroup.at("concurrency.group"));
    }
    let cancel_in_progress =
        eval_bool(&c.cancel_in_progress, cx).map_err(|e| e.at("concurrency.cancel-in-progress"))?;
    Ok(Group {
        name,
        cancel_in_progress,
    })
}

fn expand(m: &Matrix, cx: &JobCx<'_>) -> Result<Vec<Combination>, FieldError> {
    let (axes, include, exclude) = match m {
        Matrix::Dynamic(t) => {
            let v = eval(t, cx).map_err(|e| e.at("matrix"))?;
            matrix::split(&v)?
        }
        Matrix::Static(spec) => {
            let mut axes = Vec::with_capacity(spec.axes.len());
            for (name, values) in &spec.axes {
                axes.push((
                    name.clone(),
                    eval_list(values, cx).map_err(|e| e.at(format!("matrix.{name}")))?,
                ));
            }
            let include = eval_list(&spec.include, cx).map_err(|e| e.at("matrix.include"))?;
            let exclude = eval_list(&spec.exclude, cx).map_err(|e| e.at("matrix.exclude"))?;
            (axes, include, exclude)
        }
    };
    Ok(matrix::expand(&axes, &include, &exclude)?)
}

fn eval(t: &Template, cx: &dyn Context) -> Result<Value, FieldError> {
    let parsed = expr::parse_template(&t.src)?;
    Ok(parsed.eval(cx)?)
}

fn render(t: &Template, cx: &dyn Context) -> Result<String, FieldError> {
    if t.is_literal() {
        return Ok(t.src.clone());
    }
    let parsed = expr::parse_template(&t.src)?;
    Ok(parsed.render(cx)?)
}

fn eval_bool(d: &Dyn<bool>, cx: &dyn Context) -> Result<bool, FieldError> {
    match d {
        Dyn::Lit(b) => Ok(*b),
        Dyn::Expr(t) => eval(t, cx).map(|v| expr::truthy(&v)),
    }
}

fn eval_count(d: &Dyn<f64>, cx: &dyn Context) -> Result<usize, FieldError> {
    let n = match d {
        Dyn::Lit(n) => *n,
        Dyn::Expr(t) => match eval(t, cx)? {
            Value::Number(n) => n,
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| FieldError::NotANumber(s.clone()))?,
            other => return Err(FieldError::NotNumeric(expr::to_string(&other))),
        },
    };
    if n >= 1.0 && n.is_finite() {
        Ok(n as usize)
    } else {
        Err(FieldError::NotPositive(n))
    }
}

fn eval_list(d: &Dyn<Vec<Value>>, cx: &dyn Context) -> Result<Vec<Value>, FieldError> {
    match d {
        Dyn::Lit(v) => Ok(v.clone()),
        Dyn::Expr(t) => match eval(t, cx)? {
            Value::Array(a) => Ok(a),
            other => Err(FieldError::NotAList(expr::to_string(&other))),
        },
    }
}

#[cfg(test)]
mod not_run_tests {
    use super::*;
    use kiln_model::JobStatus;

    fn jobs() -> Vec<Job> {
        let text = "on: push\njobs:\n  plain:\n    runs-on: x\n    steps: [{run: 'true'}]\n  \
                    own-if:\n    if: github.ref == 'x'\n    runs-on: x\n    steps: [{run: 'true'}]\n";
        let loaded = crate::load::load("ci.yml", text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.workflow.expect("workflow").jobs
    }

    #[test]
    fn a_skipped_job_says_why_the_same_way_everywhere() {
        let jobs = jobs();
        let (plain, own_if) = (&jobs[0], &jobs[1]);
        assert_eq!(
            not_run(plain, StatusCheck::Cancelled),
            (
                JobStatus::Cancelled,
                "cancelled: the run was cancelled before it started"
            )
        );
        assert_eq!(
            not_run(plain, StatusCheck::Failure),
            (
                JobStatus::Skipped,
                "skipped: a job it needs did not succeed"
            )
        );
        assert_eq!(
            not_run(own_if, StatusCheck::Failure),
            (JobStatus::Skipped, "skipped: its if condition was false")
        );
        assert_eq!(
            not_run(plain, StatusCheck::Success),
            (JobStatus::Skipped, "skipped: its if condition was false")
        );
    }
}
