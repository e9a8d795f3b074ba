//! `jobs.<id>`: one job.

use super::cx::Cx;
use super::graph::Edges;
use super::{queue, runtime, step, strategy};
use kiln_model::workflow::{Dyn, Job, RunDefaults, Strategy, Template};
use kiln_model::{JobId, Value};
use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

const KEYS: &[&str] = &[
    "name",
    "needs",
    "runs-on",
    "if",
    "env",
    "defaults",
    "timeout-minutes",
    "continue-on-error",
    "outputs",
    "strategy",
    "weight",
    "priority",
    "retry",
    "concurrency",
    "environment",
    "container",
    "services",
    "permissions",
    "steps",
    "rollback",
];

/// The job, and its `needs` entries with their places for the graph checks.
pub(crate) fn job(cx: &mut Cx<'_>, id: &MarkedScalarNode, body: &Node) -> Option<(Job, Edges)> {
    let id_at = cx.at_scalar(id);
    if !is_identifier(id.as_str()) {
        cx.error_help(
            id_at,
            format!("invalid job id `{}`", id.as_str()),
            "a job id starts with a letter or `_` and holds only letters, digits, `-` and `_`",
        );
    }
    let place = format!("job `{}`", id.as_str());
    let map = cx.mapping(body, &place)?;
    let mut job = Job {
        id: JobId::new(id.as_str()),
        loc: id_at.loc,
        name: None,
        needs: Vec::new(),
        runs_on: Vec::new(),
        if_: None,
        env: Vec::new(),
        defaults: RunDefaults::default(),
        timeout_minutes: None,
        continue_on_error: Dyn::Lit(false),
        outputs: Vec::new(),
        strategy: Strategy::default(),
        weight: 1,
        priority: None,
        retry: None,
        concurrency: None,
        environment: None,
        container: None,
        services: Vec::new(),
        steps: Vec::new(),
        rollback: Vec::new(),
    };
    let mut edges = Vec::new();
    let mut ids = step::Ids::new();
    let mut rollback = None;
    let (mut saw_runs_on, mut saw_steps, mut reusable) = (false, false, false);
    for (k, v) in map.iter() {
        match k.as_str() {
            "name" => job.name = cx.template(v, "`name`"),
            "needs" => {
                edges = cx.string_list(v, "`needs`");
                job.needs = edges.iter().map(|(n, _)| JobId::new(n.as_str())).collect();
            }
            "runs-on" => {
                saw_runs_on = true;
                job.runs_on = runs_on(cx, v);
            }
            "if" => job.if_ = cx.cond(v),
            "env" => job.env = cx.pairs(v, "`env`"),
            "defaults" => job.defaults = runtime::defaults(cx, v),
            "timeout-minutes" => job.timeout_minutes = cx.dyn_number(v, "`timeout-minutes`"),
            "continue-on-error" => {
                job.continue_on_error = cx
                    .dyn_bool(v, "`continue-on-error`")
                    .unwrap_or(Dyn::Lit(false))
            }
            "outputs" => job.outputs = cx.pairs(v, "`outputs`"),
            "strategy" => job.strategy = strategy::strategy(cx, v),
            "weight" => job.weight = weight(cx, v),
            "priority" => job.priority = queue::priority(cx, v),
            "retry" => job.retry = queue::retry(cx, v),
            "concurrency" => job.concurrency = runtime::concurrency(cx, v),
            "environment" => job.environment = runtime::environment(cx, v),
            "container" => job.container = runtime::container(cx, v),
            "services" => job.services = runtime::services(cx, v),
            // Accepted so GitHub workflows load; kiln hands out no tokens.
            "permissions" => {}
            "steps" => {
                saw_steps = true;
                job.steps = step::steps(cx, v, id.as_str(), "steps", &mut ids);
            }
            // Read after the loop, so that `steps:` ids come first.
            "rollback" => rollback = Some((k, v)),
            "uses" => {
                reusable = true;
                let at = cx.at_scalar(k);
                cx.error(
                    at,
                    "reusable workflows (a job with `uses`) are not supported by kiln",
                );
            }
            "with" | "secrets" => {}
            _ => match cx.unknown_key(k, &place, KEYS) {
                Some("runs-on") => saw_runs_on = true,
                Some("steps") => saw_steps = true,
                Some(_) | None => {}
            },
        }
    }
    if let Some((key, v)) = rollback {
        job.rollback = step::steps(cx, v, id.as_str(), "rollback", &mut ids);
        let health_checked = job
            .environment
            .as_ref()
            .is_some_and(|e| e.health_check.is_some());
        if !health_checked {
            let at = cx.at_scalar(key);
            cx.error_help(
                at,
                format!("job `{}` has `rollback` steps but no health check", id.as_str()),
                "rollback steps run only when `environment.health-check` never passes; add one, or remove `rollback`",
            );
        }
    }
    if !reusable && !saw_runs_on {
        cx.error_help(
            id_at,
            format!("job `{}` has no `runs-on`", id.as_str()),
            "name the agent labels it needs, e.g. `runs-on: ubuntu-latest`",
        );
    }
    if !reusable && !saw_steps {
        cx.error(id_at, format!("job `{}` has no `steps`", id.as_str()));
    }
    Some((job, edges))
}

/// GitHub's rule for job and step ids.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Labels of GitHub's hosted runners: no self-hosted agent has them
/// unless the server maps them (`[labels.aliases]`).
fn hosted_runner_label(label: &str) -> bool {
    let l = label.to_ascii_lowercase();
    ["ubuntu-", "windows-", "macos-"]
        .iter()
        .any(|p| l.starts_with(p))
}

/// Warn where `runs-on` first names a GitHub-hosted runner (once per
/// label and file), and say how kiln serves it.
fn warn_hosted(cx: &mut Cx<'_>, n: &Node) {
    let Node::Scalar(s) = n else { return };
    let label = s.as_str();
    if !hosted_runner_label(label) {
        return;
    }
    let message = format!("`{label}` is a GitHub-hosted runner label");
    if cx.diags.iter().any(|d| d.message == message) {
        return;
    }
    let at = cx.at_scalar(s);
    let serve = if label.to_ascii_lowercase().starts_with("ubuntu-") {
        "a kiln server runs it on agents labelled [linux, x64] (or [linux, arm64] for `-arm`) \
         through its default `[labels.aliases]`"
            .to_owned()
    } else {
        format!(
            "map it to your agents' labels on the server with `[labels.aliases]` \
             (`\"{label}\" = [\"macos\"]`), or name their labels here"
        )
    };
    cx.warn(
        at,
        message,
        Some(format!(
            "kiln agents carry self-hosted labels (`self-hosted`, the OS such as `linux`, the \
             arch such as `x64`); {serve}; `kiln exec` runs every job on this machine"
        )),
    );
}

fn runs_on(cx: &mut Cx<'_>, n: &Node) -> Vec<Template> {
    match n {
        Node::Scalar(_) => {
            warn_hosted(cx, n);
            cx.template(n, "`runs-on`").into_iter().collect()
        }
        Node::Sequence(items) => {
            for i in items.iter() {
                warn_hosted(cx, i);
            }
            items
                .iter()
                .filter_map(|i| cx.template(i, "a `runs-on` label"))
                .collect()
        }
        Node::Mapping(m) => {
            let mut labels = Vec::new();
            let mut saw_labels = false;
            for (k, v) in m.iter() {
                match k.as_str() {
                    "labels" => {
                        saw_labels = true;
                        labels = match v {
                            Node::Sequence(items) => items
                                .iter()
                                .filter_map(|i| cx.template(i, "a label"))
                                .collect(),
                            Node::Scalar(_) | Node::Mapping(_) => {
                                cx.template(v, "`labels`").into_iter().collect()
                            }
                        };
                    }
                    "group" => {
                        let at = cx.at_scalar(k);
                        cx.warn(
                            at,
                            "kiln has no runner groups; `group` is ignored",
                            Some("agents are chosen by `labels` alone".into()),
                        );
                    }
                    _ => {
                        cx.unknown_key(k, "`runs-on`", &["labels", "group"]);
                    }
                }
            }
            if !saw_labels {
                let at = cx.at(n);
                cx.error(at, "`runs-on` needs `labels` for kiln to choose an agent");
            }
            labels
        }
    }
}

fn weight(cx: &mut Cx<'_>, n: &Node) -> u32 {
    let at = cx.at(n);
    let value = match n {
        Node::Scalar(s) => cx.scalar(s).value(),
        Node::Mapping(_) | Node::Sequence(_) => Value::Null,
    };
    match value {
        Value::Number(x) if x >= 1.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) => x as u32,
        _ => {
            let found = match n {
                Node::Scalar(s) => format!("`{}`", s.as_str()),
                Node::Mapping(_) => "a mapping".to_owned(),
                Node::Sequence(_) => "a list".to_owned(),
            };
            cx.error_help(
                at,
                format!("`weight` must be a positive whole number, found {found}"),
                "`weight` is the capacity units the job takes on an agent; the default is 1",
            );
            1
        }
    }
}
