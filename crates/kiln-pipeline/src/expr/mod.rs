//! The GitHub Actions expression language: `${{ }}` templates and `if:`
//! conditions.
//!
//! Public surface (stable: the loader, the job runner and the server use it):
//! - [`parse`], [`parse_template`], [`parse_condition`] check syntax once and
//!   give back reusable ASTs; errors carry a byte offset into the source so
//!   the loader can point at file:line:col;
//! - [`Context`] is how an evaluation reaches the outside world (contexts,
//!   job status for `success()`/`failure()`, `hashFiles`);
//! - [`to_string`], [`truthy`] are GitHub's coercions.

use kiln_model::Value;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    _todo: (),
}

/// A syntax error, `offset` bytes into the text that was parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// An evaluation error (an unknown context, a bad `fromJSON` argument, …).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

/// The status that `success()`, `failure()` and `cancelled()` test: of the
/// steps so far in a step's `if:`, of the needed jobs in a job's `if:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCheck {
    Success,
    Failure,
    Cancelled,
}

/// What an evaluation may read.
pub trait Context {
    /// A named context (`github`, `env`, `matrix`, `steps`, `needs`, `inputs`,
    /// `job`, `runner`, `kiln`, `secrets`, `vars`, `strategy`), by its lower-case
    /// name. `None` when it is not available here: evaluating a reference to it
    /// is then an error.
    fn context(&self, name: &str) -> Option<&Value>;
    /// Status for the status functions.
    fn status(&self) -> StatusCheck;
    /// `hashFiles(patterns…)`: SHA-256 hex of the matched files, or "" when none match.
    fn hash_files(&self, patterns: &[String]) -> Result<String, String>;
}

/// Every context name the language knows (lower case).
pub const CONTEXTS: &[&str] = &[
    "github", "env", "matrix", "steps", "needs", "inputs", "job", "runner", "kiln", "secrets",
    "vars", "strategy",
];

/// Parse one expression (the text between `${{` and `}}`, or a bare `if:`).
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let _ = src;
    todo!()
}

impl Expr {
    pub fn eval(&self, ctx: &dyn Context) -> Result<Value, EvalError> {
        let _ = ctx;
        todo!()
    }

    /// Named contexts this expression reads, with the byte offset of each
    /// reference, in source order (for "unknown context" diagnostics).
    pub fn contexts(&self) -> Vec<(String, usize)> {
        todo!()
    }

    /// True when the expression calls `success()`, `failure()`, `always()` or
    /// `cancelled()` anywhere.
    pub fn has_status_function(&self) -> bool {
        todo!()
    }
}

/// Text with `${{ }}` parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    _todo: (),
}

/// Parse a template; error offsets are into `src`.
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    let _ = src;
    todo!()
}

impl Template {
    /// Render to a string with GitHub's coercions.
    pub fn render(&self, ctx: &dyn Context) -> Result<String, EvalError> {
        let _ = ctx;
        todo!()
    }

    /// Evaluate to a value: a template that is exactly one `${{ expr }}`
    /// (surrounding whitespace aside) yields that expression's value
    /// unconverted; any other template yields its rendered string.
    pub fn eval(&self, ctx: &dyn Context) -> Result<Value, EvalError> {
        let _ = ctx;
        todo!()
    }

    /// The expressions inside, with each one's byte offset into the source.
    pub fn exprs(&self) -> Vec<(&Expr, usize)> {
        todo!()
    }
}

/// An `if:` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    _todo: (),
}

/// Parse an `if:`, bare or wrapped in `${{ }}`. Without a status function it
/// behaves as `success() && (expr)`, as GitHub does.
pub fn parse_condition(src: &str) -> Result<Condition, ExprError> {
    let _ = src;
    todo!()
}

impl Condition {
    pub fn eval(&self, ctx: &dyn Context) -> Result<bool, EvalError> {
        let _ = ctx;
        todo!()
    }

    /// The expression as written (without the implicit `success()`), and the
    /// byte offset of its start within the source given to [`parse_condition`].
    pub fn expr(&self) -> (&Expr, usize) {
        todo!()
    }
}

/// GitHub's string form of a value (`null` → "", numbers without a trailing
/// `.0`, arrays → "Array", objects → "Object").
pub fn to_string(v: &Value) -> String {
    let _ = v;
    todo!()
}

/// GitHub's truthiness: false, 0, -0, NaN, "" and null are falsy.
pub fn truthy(v: &Value) -> bool {
    let _ = v;
    todo!()
}
