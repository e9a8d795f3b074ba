//! Deploy settings: `environment.health-check` (a command, its retries,
//! pause and per-attempt limit) and the rule that ties a job's `rollback:`
//! steps to it.
//!
//! Durations are written as a number of seconds (`2`, `0.5`) or a duration
//! string in jiff's friendly format or ISO 8601 (`500ms`, `2s`, `1m30s`,
//! `PT2S`); they are literal, never expressions, because the IR holds
//! milliseconds.

use super::cx::Cx;
use super::node::At;
use kiln_model::Value;
use kiln_model::workflow::HealthCheck;
use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

/// Attempts after the first when `retries` is absent (four runs in all).
pub(crate) const DEFAULT_RETRIES: u32 = 3;
/// Pause between attempts when `interval` is absent.
pub(crate) const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// Longest one attempt may take when `timeout` is absent.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 30_000;

const KEYS: &[&str] = &["run", "retries", "interval", "timeout"];

/// `health-check:` under `environment`; `key` is the `health-check` key,
/// where a missing `run` is reported.
pub(crate) fn health_check(
    cx: &mut Cx<'_>,
    key: &MarkedScalarNode,
    n: &Node,
) -> Option<HealthCheck> {
    let key_at = cx.at_scalar(key);
    let map = cx.opt_mapping(n, "`health-check`")?;
    let mut run = None;
    let mut saw_run = false;
    let mut hc = HealthCheck {
        loc: key_at.loc,
        run: kiln_model::workflow::Template::new("", key_at.loc),
        retries: DEFAULT_RETRIES,
        interval_ms: DEFAULT_INTERVAL_MS,
        timeout_ms: DEFAULT_TIMEOUT_MS,
    };
    for (k, v) in map.iter().flat_map(|m| m.iter()) {
        match k.as_str() {
            "run" => {
                saw_run = true;
                run = cx.template(v, "`run`");
                if run.as_ref().is_some_and(|t| t.src.trim().is_empty()) {
                    let at = cx.at(v);
                    cx.error(at, "`health-check.run` is empty");
                }
            }
            "retries" => {
                if let Some(r) = retries(cx, v) {
                    hc.retries = r;
                }
            }
            "interval" => {
                if let Some(ms) = duration(cx, v, "`interval`", true) {
                    hc.interval_ms = ms;
                }
            }
            "timeout" => {
                if let Some(ms) = duration(cx, v, "`timeout`", false) {
                    hc.timeout_ms = ms;
                }
            }
            _ => {
                if cx.unknown_key(k, "`health-check`", KEYS) == Some("run") {
                    saw_run = true;
                }
            }
        }
    }
    if !saw_run {
        cx.error_help(
            key_at,
            "`health-check` needs `run`",
            "the command that must pass after the deploy, e.g. `run: curl -fsS http://localhost:8080/health`",
        );
    }
    // Without a usable `run` the error is reported above; the health check
    // is kept so that `rollback:` is not also reported as unchecked.
    if let Some(run) = run {
        hc.run = run;
    }
    Some(hc)
}

fn found(cx: &Cx<'_>, n: &Node) -> String {
    match n {
        Node::Scalar(s) if !cx.scalar(s).is_null() => format!("`{}`", s.as_str()),
        Node::Scalar(_) => "nothing".to_owned(),
        Node::Mapping(_) => "a mapping".to_owned(),
        Node::Sequence(_) => "a list".to_owned(),
    }
}

fn retries(cx: &mut Cx<'_>, n: &Node) -> Option<u32> {
    let value = match n {
        Node::Scalar(s) => cx.scalar(s).value(),
        Node::Mapping(_) | Node::Sequence(_) => Value::Null,
    };
    match value {
        Value::Number(x) if x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) => {
            Some(x as u32)
        }
        _ => {
            let at = cx.at(n);
            let found = found(cx, n);
            cx.error_help(
                at,
                format!("`retries` must be a whole number, 0 or more, found {found}"),
                format!(
                    "`retries` counts the attempts after the first one; the default is {DEFAULT_RETRIES}"
                ),
            );
            None
        }
    }
}

/// A duration in milliseconds: a number of seconds or a duration string.
fn duration(cx: &mut Cx<'_>, n: &Node, what: &str, zero_ok: bool) -> Option<u64> {
    let at = cx.at(n);
    let help =
        "write a number of seconds (`2`, `0.5`) or a duration such as `500ms`, `2s` or `1m30s`";
    let value = match n {
        Node::Scalar(s) => cx.scalar(s).value(),
        Node::Mapping(_) | Node::Sequence(_) => Value::Null,
    };
    let ms = match value {
        Value::Number(x) if x.is_finite() && x >= 0.0 => {
            (x * 1000.0).round().min(u64::MAX as f64) as u64
        }
        Value::Number(x) if x < 0.0 => {
            negative(cx, at, what, n);
            return None;
        }
        Value::String(text) if text.contains("${{") => {
            cx.error_help(
                at,
                format!("{what} must be written out; kiln does not accept an expression here"),
                help,
            );
            return None;
        }
        Value::String(text) => match text.trim().parse::<jiff::SignedDuration>() {
            Ok(d) if d.is_negative() => {
                negative(cx, at, what, n);
                return None;
            }
            Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Err(_) => {
                cx.error_help(at, format!("{what} is not a duration: `{text}`"), help);
                return None;
            }
        },
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            let found = found(cx, n);
            cx.error_help(
                at,
                format!("expected a duration for {what}, found {found}"),
                help,
            );
            return None;
        }
    };
    if ms == 0 && !zero_ok {
        cx.error_help(at, format!("{what} must be longer than 0"), help);
        return None;
    }
    Some(ms)
}

fn negative(cx: &mut Cx<'_>, at: At, what: &str, n: &Node) {
    let found = found(cx, n);
    cx.error(at, format!("{what} cannot be negative, found {found}"));
}
