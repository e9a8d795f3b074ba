//! `on:` — the events that start a workflow.

use super::cx::Cx;
use super::node::At;
use super::suggest;
use kiln_model::Value;
use kiln_model::workflow::{
    CommentTrigger, Dispatch, DispatchInput, InputKind, PullRequestTrigger, RefFilter, Schedule,
    Triggers,
};
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

/// Events kiln raises.
const KILN_EVENTS: &[&str] = &[
    "push",
    "pull_request",
    "schedule",
    "workflow_dispatch",
    "comment",
];

/// GitHub events kiln accepts but never raises (listed in `Triggers::other`).
const GITHUB_EVENTS: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "gollum",
    "issue_comment",
    "issues",
    "label",
    "merge_group",
    "milestone",
    "page_build",
    "project",
    "project_card",
    "project_column",
    "public",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_target",
    "registry_package",
    "release",
    "repository_dispatch",
    "status",
    "watch",
    "workflow_call",
    "workflow_run",
];

pub(crate) fn triggers(cx: &mut Cx<'_>, n: &Node) -> Triggers {
    let mut t = Triggers::default();
    match n {
        Node::Scalar(s) => event(cx, &mut t, s, None),
        Node::Sequence(items) => {
            for item in items.iter() {
                if let Some(s) = cx.scalar_node(item, "an event name") {
                    event(cx, &mut t, s, None);
                }
            }
        }
        Node::Mapping(m) => {
            for (k, v) in m.iter() {
                event(cx, &mut t, k, Some(v));
            }
        }
    }
    t
}

fn event(cx: &mut Cx<'_>, t: &mut Triggers, name: &MarkedScalarNode, config: Option<&Node>) {
    let what = format!("`on.{}`", name.as_str());
    if name.as_str() == "schedule" {
        match config {
            Some(v) => t.schedule = schedules(cx, v),
            None => cx.error(
                cx.at_scalar(name),
                "`schedule` needs a list of `cron` entries",
            ),
        }
        return;
    }
    // An event given by name only, or with an empty value, has no settings.
    let map = match config {
        None => None,
        Some(v) => match cx.opt_mapping(v, &what) {
            Some(m) => m,
            None => return,
        },
    };
    match name.as_str() {
        "push" => t.push = Some(ref_filter(cx, map, &what, true)),
        "pull_request" => {
            let mut types = Vec::new();
            if let Some(v) = map.and_then(|m| m.get_node("types")) {
                types = cx
                    .string_list(v, "`types`")
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
            }
            t.pull_request = Some(PullRequestTrigger {
                types,
                filter: ref_filter(cx, map, &what, false),
            });
        }
        "workflow_dispatch" => t.workflow_dispatch = Some(dispatch(cx, map)),
        "comment" => t.comment = comment(cx, name, map),
        other if GITHUB_EVENTS.contains(&other) => t.other.push(other.to_owned()),
        other => {
            let at = cx.at_scalar(name);
            let all = KILN_EVENTS.iter().chain(GITHUB_EVENTS).copied();
            let message = format!("unknown event `{other}`");
            match suggest::closest(other, all) {
                Some(s) => cx.error_help(at, message, format!("did you mean `{s}`?")),
                None => cx.error_help(
                    at,
                    message,
                    format!("kiln raises {}", suggest::list(KILN_EVENTS)),
                ),
            }
        }
    }
}

fn ref_filter(
    cx: &mut Cx<'_>,
    map: Option<&MarkedMappingNode>,
    what: &str,
    push: bool,
) -> RefFilter {
    let mut f = RefFilter::default();
    let Some(map) = map else { return f };
    let keys: &[&str] = if push {
        &[
            "branches",
            "branches-ignore",
            "tags",
            "tags-ignore",
            "paths",
            "paths-ignore",
        ]
    } else {
        &[
            "branches",
            "branches-ignore",
            "paths",
            "paths-ignore",
            "types",
        ]
    };
    for (k, v) in map.iter() {
        let key = k.as_str();
        let list = |cx: &mut Cx<'_>| {
            let items = cx.string_list(v, &format!("`{key}`"));
            // Filter patterns are checked here so that a bad one is a
            // diagnostic at its place, not a silent skip at trigger time.
            for (pattern, at) in &items {
                if let Err(e) = crate::filters::check_pattern(pattern) {
                    cx.error(*at, format!("invalid pattern `{pattern}` in `{key}`: {e}"));
                }
            }
            items.into_iter().map(|(s, _)| s).collect()
        };
        match key {
            "branches" => f.branches = list(cx),
            "branches-ignore" => f.branches_ignore = list(cx),
            "tags" if push => f.tags = list(cx),
            "tags-ignore" if push => f.tags_ignore = list(cx),
            "paths" => f.paths = list(cx),
            "paths-ignore" => f.paths_ignore = list(cx),
            "types" if !push => {}
            _ => {
                cx.unknown_key(k, what, keys);
            }
        }
    }
    for (a, b) in [
        ("branches", "branches-ignore"),
        ("tags", "tags-ignore"),
        ("paths", "paths-ignore"),
    ] {
        if let (Some(_), Some(k)) = (map.get_node(a), map.keys().find(|k| k.as_str() == b)) {
            let at = cx.at_scalar(k);
            cx.error_help(
                at,
                format!("`{a}` and `{b}` cannot both be used for one event"),
                format!("use `{a}` with `!` patterns to exclude"),
            );
        }
    }
    f
}

fn schedules(cx: &mut Cx<'_>, n: &Node) -> Vec<kiln_model::workflow::Schedule> {
    let Some(items) = cx.sequence(n, "`schedule`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Some(map) = cx.mapping(item, "a `schedule` entry") else {
            continue;
        };
        let mut cron = None;
        for (k, v) in map.iter() {
            match k.as_str() {
                "cron" => cron = cx.scalar_node(v, "`cron`"),
                _ => {
                    cx.unknown_key(k, "a `schedule` entry", &["cron"]);
                }
            }
        }
        let Some(cron) = cron else {
            let at = cx.at(item);
            cx.error(at, "a `schedule` entry needs a `cron` key");
            continue;
        };
        let at = cx.at_scalar(cron);
        let fields = cron.as_str().split_whitespace().count();
        if fields != 5 {
            cx.error_help(
                at,
                format!("a cron expression has 5 fields, found {fields}"),
                "minute hour day-of-month month day-of-week, e.g. `30 5 * * 1-5`",
            );
        }
        out.push(Schedule {
            cron: cron.as_str().to_owned(),
            loc: at.loc,
        });
    }
    out
}

fn dispatch(cx: &mut Cx<'_>, map: Option<&MarkedMappingNode>) -> Dispatch {
    let mut d = Dispatch::default();
    let Some(map) = map else { return d };
    for (k, v) in map.iter() {
        match k.as_str() {
            "inputs" => {
                let Some(Some(inputs)) = cx.opt_mapping(v, "`inputs`") else {
                    continue;
                };
                for (name, spec) in inputs.iter() {
                    if let Some(input) = dispatch_input(cx, name, spec) {
                        d.inputs.push(input);
                    }
                }
            }
            _ => {
                cx.unknown_key(k, "`on.workflow_dispatch`", &["inputs"]);
            }
        }
    }
    d
}

const INPUT_KEYS: &[&str] = &["description", "required", "default", "type", "options"];
const INPUT_TYPES: &[&str] = &["string", "boolean", "choice", "number", "environment"];

fn dispatch_input(cx: &mut Cx<'_>, name: &MarkedScalarNode, spec: &Node) -> Option<DispatchInput> {
    let place = format!("input `{}`", name.as_str());
    let map = cx.opt_mapping(spec, &place)?;
    let mut input = DispatchInput {
        name: name.as_str().to_owned(),
        description: None,
        required: false,
        default: None,
        kind: InputKind::String,
        loc: cx.at_scalar(name).loc,
    };
    let Some(map) = map else { return Some(input) };
    let mut options: Option<(Vec<String>, At)> = None;
    let mut default_at = None;
    for (k, v) in map.iter() {
        match k.as_str() {
            "description" => input.description = cx.string(v, "`description`"),
            "required" => {
                if let Some(s) = cx.scalar_node(v, "`required`") {
                    match cx.scalar(s).value() {
                        Value::Bool(b) => input.required = b,
                        _ => {
                            let at = cx.at_scalar(s);
                            cx.error(at, "expected a boolean for `required`, found a string");
                        }
                    }
                }
            }
            "default" => {
                if let Some(s) = cx.scalar_node(v, "`default`") {
                    input.default = Some(cx.scalar(s).value());
                    default_at = Some(cx.at_scalar(s));
                }
            }
            "type" => {
                if let Some(s) = cx.scalar_node(v, "`type`") {
                    input.kind = match s.as_str() {
                        "string" => InputKind::String,
                        "boolean" => InputKind::Boolean,
                        "number" => InputKind::Number,
                        "environment" => InputKind::Environment,
                        "choice" => InputKind::Choice(Vec::new()),
                        other => {
                            let at = cx.at_scalar(s);
                            cx.error_help(
                                at,
                                format!("unknown input type `{other}`"),
                                format!("expected one of {}", suggest::list(INPUT_TYPES)),
                            );
                            InputKind::String
                        }
                    };
                }
            }
            "options" => {
                let at = cx.at_scalar(k);
                if let Some(items) = cx.sequence(v, "`options`") {
                    let opts = items
                        .iter()
                        .filter_map(|i| cx.string(i, "an option"))
                        .collect();
                    options = Some((opts, at));
                }
            }
            _ => {
                cx.unknown_key(k, &place, INPUT_KEYS);
            }
        }
    }
    match (&mut input.kind, options) {
        (InputKind::Choice(opts), Some((given, _))) => *opts = given,
        (InputKind::Choice(_), None) => {
            let at = cx.at_scalar(name);
            cx.error(
                at,
                format!("choice input `{}` needs `options`", name.as_str()),
            );
        }
        (_, Some((_, at))) => cx.warn(at, "`options` is ignored unless `type` is `choice`", None),
        (_, None) => {}
    }
    if let (Some(default), Some(at)) = (&input.default, default_at) {
        let fits = match (&input.kind, default) {
            (InputKind::Boolean, Value::Bool(_)) | (InputKind::Number, Value::Number(_)) => true,
            (InputKind::Boolean | InputKind::Number, _) => false,
            (InputKind::Choice(opts), v) => opts
                .iter()
                .any(|o| Value::String(o.clone()) == *v || o == &scalar_text(v)),
            (InputKind::String | InputKind::Environment, _) => true,
        };
        if !fits {
            cx.warn(
                at,
                format!(
                    "the default of input `{}` does not fit its type",
                    name.as_str()
                ),
                None,
            );
        }
    }
    Some(input)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn comment(
    cx: &mut Cx<'_>,
    name: &MarkedScalarNode,
    map: Option<&MarkedMappingNode>,
) -> Option<CommentTrigger> {
    let mut command = None;
    let mut flags = Vec::new();
    if let Some(map) = map {
        for (k, v) in map.iter() {
            match k.as_str() {
                "command" => command = cx.string(v, "`command`"),
                "flags" => {
                    for (flag, at) in cx.string_list(v, "`flags`") {
                        let name = flag.strip_suffix('=').unwrap_or(&flag);
                        if name.is_empty()
                            || name.starts_with('-')
                            || !name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        {
                            cx.error_help(
                                at,
                                format!("`{flag}` is not a flag name"),
                                "write `extra` for `--extra`, `only=` for `--only VALUE`",
                            );
                        } else {
                            flags.push(flag);
                        }
                    }
                }
                _ => {
                    cx.unknown_key(k, "`on.comment`", &["command", "flags"]);
                }
            }
        }
    }
    if command.is_none() {
        let at = cx.at_scalar(name);
        cx.error_help(
            at,
            "`comment` needs a `command`",
            "e.g. `comment: {command: \"!testme\"}`",
        );
    }
    command.map(|command| CommentTrigger { command, flags })
}
