//! kiln's queue keys: `priority:` (workflow or job) and `retry:` (job).
//!
//! Both are read when the file loads and never hold expressions: the
//! queue acts on them before any context exists, and a mistake should show
//! in `kiln validate`, not when a job fails at three in the morning.

use super::cx::Cx;
use super::suggest;
use kiln_model::workflow::{PRIORITY_MAX, PRIORITY_MIN};
use kiln_model::{RetryOn, RetryPolicy, Value};
use marked_yaml::Node;

/// The classes `retry.on` accepts, as written.
const CLASSES: &[&str] = &["agent-lost", "checkout", "timeout", "exit-code", "other"];

/// `retry.max` when `retry:` is a mapping without one.
const DEFAULT_MAX: u32 = 2;

/// A whole number scalar, or `None` (the caller reports).
fn whole(cx: &Cx<'_>, n: &Node) -> Option<f64> {
    match n {
        Node::Scalar(s) => match cx.scalar(s).value() {
            Value::Number(x) if x.is_finite() && x.fract() == 0.0 => Some(x),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => None,
            Value::Array(_) | Value::Object(_) => None,
        },
        Node::Mapping(_) | Node::Sequence(_) => None,
    }
}

/// How a node reads in a message: its text, or its kind.
fn found(n: &Node) -> String {
    match n {
        Node::Scalar(s) => format!("`{}`", s.as_str()),
        Node::Mapping(_) => "a mapping".to_owned(),
        Node::Sequence(_) => "a list".to_owned(),
    }
}

/// `priority: N`, a whole number in `PRIORITY_MIN..=PRIORITY_MAX`.
pub(crate) fn priority(cx: &mut Cx<'_>, n: &Node) -> Option<i32> {
    match whole(cx, n) {
        Some(x) if (f64::from(PRIORITY_MIN)..=f64::from(PRIORITY_MAX)).contains(&x) => {
            Some(x as i32)
        }
        Some(_) | None => {
            let at = cx.at(n);
            cx.error_help(
                at,
                format!(
                    "`priority` must be a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}, found {}",
                    found(n)
                ),
                "jobs with a higher priority are claimed first; the default is 0 (or the repository's)",
            );
            None
        }
    }
}

/// `retry: N` (that many retries of the default classes) or
/// `retry: {max: N, on: [class, {exit-code: [codes]}]}`.
pub(crate) fn retry(cx: &mut Cx<'_>, n: &Node) -> Option<RetryPolicy> {
    let map = match n {
        Node::Scalar(_) => {
            let max = retry_max(cx, n)?;
            return Some(RetryPolicy::infrastructure(max));
        }
        Node::Sequence(_) => {
            let at = cx.at(n);
            cx.error_help(
                at,
                "expected a number or a mapping for `retry`, found a list",
                "write `retry: {max: 2, on: [exit-code]}`",
            );
            return None;
        }
        Node::Mapping(m) => m,
    };
    let mut policy = RetryPolicy::infrastructure(DEFAULT_MAX);
    let mut ok = true;
    for (k, v) in map.iter() {
        match k.as_str() {
            "max" => match retry_max(cx, v) {
                Some(max) => policy.max = max,
                None => ok = false,
            },
            "on" => match retry_on(cx, v) {
                Some(on) => policy.on = on,
                None => ok = false,
            },
            _ => {
                cx.unknown_key(k, "`retry`", &["max", "on"]);
                ok = false;
            }
        }
    }
    ok.then_some(policy)
}

fn retry_max(cx: &mut Cx<'_>, n: &Node) -> Option<u32> {
    match whole(cx, n) {
        Some(x) if (0.0..=f64::from(RetryPolicy::MAX_RETRIES)).contains(&x) => Some(x as u32),
        Some(_) | None => {
            let at = cx.at(n);
            cx.error_help(
                at,
                format!(
                    "`retry.max` must be a whole number from 0 to {}, found {}",
                    RetryPolicy::MAX_RETRIES,
                    found(n)
                ),
                "it counts retries after the first attempt: `max: 2` runs the job at most 3 times",
            );
            None
        }
    }
}

/// `retry.on`: one class or a list of them; `exit-code` may be a mapping
/// `{exit-code: [1, 137]}` naming the codes.
fn retry_on(cx: &mut Cx<'_>, n: &Node) -> Option<Vec<RetryOn>> {
    let items: Vec<&Node> = match n {
        Node::Scalar(_) | Node::Mapping(_) => vec![n],
        Node::Sequence(items) => items.iter().collect(),
    };
    let mut on = Vec::new();
    let mut ok = true;
    for item in items {
        match class(cx, item) {
            Some(c) if on.contains(&c) => {
                let at = cx.at(item);
                cx.warn(at, "this class is already listed in `retry.on`", None);
            }
            Some(c) => on.push(c),
            None => ok = false,
        }
    }
    ok.then_some(on)
}

fn class(cx: &mut Cx<'_>, n: &Node) -> Option<RetryOn> {
    match n {
        Node::Scalar(s) => {
            let name = s.as_str();
            let class = match name {
                "agent-lost" => Some(RetryOn::AgentLost),
                "checkout" => Some(RetryOn::Checkout),
                "timeout" => Some(RetryOn::Timeout),
                "exit-code" => Some(RetryOn::ExitCode(Vec::new())),
                "other" => Some(RetryOn::Other),
                _ => None,
            };
            if class.is_none() {
                let at = cx.at_scalar(s);
                let help = match suggest::closest(name, CLASSES.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("expected one of {}", suggest::list(CLASSES)),
                };
                cx.error_help(
                    at,
                    format!("unknown failure class `{name}` in `retry.on`"),
                    help,
                );
            }
            class
        }
        Node::Mapping(m) => {
            let mut class = None;
            for (k, v) in m.iter() {
                if k.as_str() == "exit-code" {
                    class = exit_codes(cx, v).map(RetryOn::ExitCode);
                } else {
                    let at = cx.at_scalar(k);
                    cx.error_help(
                        at,
                        format!("unknown key `{}` in a `retry.on` entry", k.as_str()),
                        "only `exit-code` takes settings: `{exit-code: [1, 137]}`",
                    );
                    return None;
                }
            }
            class
        }
        Node::Sequence(_) => {
            let at = cx.at(n);
            cx.error(at, "expected a failure class in `retry.on`, found a list");
            None
        }
    }
}

/// The codes of `{exit-code: …}`: one code or a list, each 1..=255.
fn exit_codes(cx: &mut Cx<'_>, n: &Node) -> Option<Vec<i32>> {
    let items: Vec<&Node> = match n {
        Node::Scalar(_) | Node::Mapping(_) => vec![n],
        Node::Sequence(items) => items.iter().collect(),
    };
    let mut codes = Vec::new();
    let mut ok = true;
    for item in items {
        match whole(cx, item) {
            Some(x) if (1.0..=255.0).contains(&x) => codes.push(x as i32),
            Some(_) | None => {
                let at = cx.at(item);
                cx.error_help(
                    at,
                    format!("an exit code must be a whole number from 1 to 255, found {}", found(item)),
                    "list the codes to retry, e.g. `{exit-code: [1, 137]}`; `exit-code` alone retries any",
                );
                ok = false;
            }
        }
    }
    if ok && codes.is_empty() {
        let at = cx.at(n);
        cx.error(
            at,
            "`exit-code` needs at least one code; write `exit-code` alone to retry any",
        );
        ok = false;
    }
    ok.then_some(codes)
}
