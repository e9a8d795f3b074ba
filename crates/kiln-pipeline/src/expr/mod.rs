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
//!
//! The semantics are GitHub's, taken from the runner's expression SDK where
//! the documentation is silent; the submodules say which rule lives where:
//! [`lexer`] and [`parser`] (syntax, precedence, limits), [`eval`]
//! (operators, property access, object filters), [`coerce`] (conversions and
//! comparisons), [`functions`], [`format`], [`json`], [`template`].
//!
//! Offsets: an [`ExprError`] offset is always into the exact string given to
//! the parse function. Offsets from [`Expr::contexts`] are relative to the
//! start of that expression's text; add the offset that
//! [`Template::exprs`] or [`Condition::expr`] gives for the expression to
//! get an offset into the template or condition source.
//!
//! Deliberate differences from GitHub, all forced by [`Value`] or by kiln
//! having no runtime objects: object keys iterate in sorted order (GitHub
//! keeps insertion order), which shows in `toJSON` and `.*`; `fromJSON` is
//! strict JSON; the `case()` function (new in 2025) is not supported.

use std::fmt;

use kiln_model::Value;

mod ast;
mod coerce;
mod context;
mod eval;
mod format;
mod functions;
mod json;
mod lexer;
mod parser;
mod template;
#[cfg(test)]
mod tests;

pub use context::StaticContext;

/// A parsed expression. Two expressions are equal when they have the same
/// tree at the same offsets; `Display` prints canonical source that parses
/// back to the same tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    root: ast::Node,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
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
    /// Neither success nor failure: a needed job was skipped (or cancelled
    /// by fail-fast). `success()`, `failure()` and `cancelled()` are all false.
    NotSuccess,
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
    parser::parse_node(src).map(|root| Expr { root })
}

impl Expr {
    pub fn eval(&self, ctx: &dyn Context) -> Result<Value, EvalError> {
        eval::eval(&self.root, ctx).map(eval::Val::into_value)
    }

    /// Named contexts this expression reads, with the byte offset of each
    /// reference, in source order (for "unknown context" diagnostics).
    /// Offsets are relative to the start of the expression text (see the
    /// module documentation).
    pub fn contexts(&self) -> Vec<(String, usize)> {
        fn walk(node: &ast::Node, out: &mut Vec<(String, usize)>) {
            if let ast::Node::Context { name, offset } = node {
                out.push((name.clone(), *offset));
            }
            for child in node.children() {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out.sort_by_key(|(_, offset)| *offset);
        out
    }

    /// True when the expression calls `success()`, `failure()`, `always()` or
    /// `cancelled()` anywhere.
    pub fn has_status_function(&self) -> bool {
        template::has_status_function(&self.root)
    }
}

/// Text with `${{ }}` parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<template::Part>,
}

/// Parse a template; error offsets are into `src`.
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    template::parse_template(src)
}

impl Template {
    /// Render to a string with GitHub's coercions.
    pub fn render(&self, ctx: &dyn Context) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                template::Part::Text(text) => out.push_str(text),
                template::Part::Expr { expr, .. } => {
                    out.push_str(&eval::eval(&expr.root, ctx)?.to_str());
                }
            }
        }
        Ok(out)
    }

    /// Evaluate to a value: a template that is exactly one `${{ expr }}`
    /// (surrounding whitespace aside) yields that expression's value
    /// unconverted; any other template yields its rendered string.
    pub fn eval(&self, ctx: &dyn Context) -> Result<Value, EvalError> {
        match self.single() {
            Some((expr, _)) => expr.eval(ctx),
            None => self.render(ctx).map(Value::String),
        }
    }

    /// The expressions inside, with each one's byte offset into the source
    /// (of the first non-blank character after `${{`).
    pub fn exprs(&self) -> Vec<(&Expr, usize)> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                template::Part::Text(_) => None,
                template::Part::Expr { expr, offset } => Some((expr, *offset)),
            })
            .collect()
    }
}

/// An `if:` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    expr: Expr,
    offset: usize,
    implicit_success: bool,
}

/// Parse an `if:`, bare or wrapped in `${{ }}`. Without a status function it
/// behaves as `success() && (expr)`, as GitHub does.
///
/// Text around a `${{ }}` (`${{ a }} == b`) makes the condition a string, as
/// on GitHub: it holds when the rendered text is non-empty (and, without a
/// status function, the status is success). A blank condition is `success()`.
pub fn parse_condition(src: &str) -> Result<Condition, ExprError> {
    template::parse_condition(src)
}

impl Condition {
    pub fn eval(&self, ctx: &dyn Context) -> Result<bool, EvalError> {
        if self.implicit_success && ctx.status() != StatusCheck::Success {
            return Ok(false);
        }
        Ok(eval::eval(&self.expr.root, ctx)?.truthy())
    }

    /// The expression as written (without the implicit `success()`), and the
    /// byte offset of its start within the source given to [`parse_condition`].
    ///
    /// For a condition with text around `${{ }}` this is the equivalent
    /// `format('text {0}', expr)` call at offset 0 (as GitHub rewrites it),
    /// whose context offsets are then offsets into the whole source.
    pub fn expr(&self) -> (&Expr, usize) {
        (&self.expr, self.offset)
    }
}

/// GitHub's string form of a value (`null` → "", numbers without a trailing
/// `.0`, arrays → "Array", objects → "Object").
pub fn to_string(v: &Value) -> String {
    coerce::to_string(v)
}

/// GitHub's truthiness: false, 0, -0, NaN, "" and null are falsy.
pub fn truthy(v: &Value) -> bool {
    coerce::truthy(v)
}
