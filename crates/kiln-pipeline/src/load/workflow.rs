//! The top level of a workflow file.

use super::cx::Cx;
use super::{graph, job, queue, runtime, triggers};
use kiln_model::workflow::{RunDefaults, Triggers, Workflow};
use marked_yaml::Node;

const KEYS: &[&str] = &[
    "name",
    "run-name",
    "on",
    "env",
    "defaults",
    "concurrency",
    "priority",
    "permissions",
    "jobs",
];

pub(crate) fn workflow(cx: &mut Cx<'_>, root: &Node) -> Workflow {
    let mut wf = Workflow {
        file: cx.file.to_owned(),
        name: None,
        on: Triggers::default(),
        env: Vec::new(),
        defaults: RunDefaults::default(),
        concurrency: None,
        priority: None,
        jobs: Vec::new(),
    };
    let Some(map) = cx.mapping(root, "a workflow") else {
        return wf;
    };
    let mut saw_on = false;
    let mut jobs_node = None;
    for (k, v) in map.iter() {
        match k.as_str() {
            "name" => wf.name = cx.string(v, "`name`"),
            "run-name" => {
                cx.template(v, "`run-name`");
            }
            "on" => {
                saw_on = true;
                wf.on = triggers::triggers(cx, v);
            }
            "env" => wf.env = cx.pairs(v, "`env`"),
            "defaults" => wf.defaults = runtime::defaults(cx, v),
            "concurrency" => wf.concurrency = runtime::concurrency(cx, v),
            "priority" => wf.priority = queue::priority(cx, v),
            // Accepted so GitHub workflows load; kiln hands out no tokens.
            "permissions" => {}
            "jobs" => jobs_node = Some((k, v)),
            _ => match cx.unknown_key(k, "the workflow", KEYS) {
                Some("on") => saw_on = true,
                Some("jobs") if jobs_node.is_none() => jobs_node = Some((k, v)),
                Some(_) | None => {}
            },
        }
    }
    if !saw_on {
        cx.error_help(
            cx.top(),
            "the workflow has no `on` key",
            "add the events that start it, e.g. `on: push`",
        );
    }
    match jobs_node {
        None => cx.error(cx.top(), "the workflow has no `jobs` key"),
        Some((key, v)) => {
            if let Some(jobs) = cx.mapping(v, "`jobs`") {
                if jobs.is_empty() {
                    let at = cx.at_scalar(key);
                    cx.error(at, "the workflow has no jobs");
                }
                let mut needs = Vec::new();
                for (id, body) in jobs.iter() {
                    if let Some((j, edges)) = job::job(cx, id, body) {
                        needs.push(edges);
                        wf.jobs.push(j);
                    }
                }
                graph::check(cx, &wf.jobs, &needs);
            }
        }
    }
    wf
}
