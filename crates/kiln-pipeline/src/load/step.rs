//! `steps:` — what a job does, one `run:` script or one built-in action each.

use super::cx::Cx;
use super::job::is_identifier;
use super::node::At;
use kiln_model::StepId;
use kiln_model::workflow::{Builtin, Dyn, Shell, Step, StepAction};
use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

const KEYS: &[&str] = &[
    "name",
    "id",
    "run",
    "shell",
    "working-directory",
    "env",
    "if",
    "continue-on-error",
    "timeout-minutes",
    "uses",
    "with",
];

/// Actions kiln runs natively, by `owner/name` (any ref).
const BUILTINS: &[(&str, Builtin)] = &[("actions/checkout", Builtin::Checkout)];

const SHELLS: &[&str] = &["bash", "sh", "python", "pwsh", "powershell", "cmd"];

/// The job's step ids so far, with where each was first used: `steps:`
/// and `rollback:` share one scope, because both write `steps.<id>`.
pub(crate) type Ids = Vec<(String, At)>;

/// `steps:` (or `rollback:`, with `what` naming it) of job `job`.
pub(crate) fn steps(cx: &mut Cx<'_>, n: &Node, job: &str, what: &str, ids: &mut Ids) -> Vec<Step> {
    let Some(items) = cx.sequence(n, &format!("`{what}`")) else {
        return Vec::new();
    };
    if items.is_empty() {
        let at = cx.at(n);
        if what == "steps" {
            cx.error(at, format!("job `{job}` has no steps"));
        } else {
            cx.error_help(
                at,
                format!("`{what}` of job `{job}` is empty"),
                format!("list the steps to run, or remove `{what}`"),
            );
        }
    }
    let mut out = Vec::new();
    for item in items.iter() {
        if let Some(s) = step(cx, item, job, ids) {
            out.push(s);
        }
    }
    out
}

fn step(cx: &mut Cx<'_>, n: &Node, job: &str, ids: &mut Vec<(String, At)>) -> Option<Step> {
    let map = cx.mapping(n, "a step")?;
    let at = cx.at(n);
    let mut step = Step {
        loc: at.loc,
        id: None,
        name: None,
        if_: None,
        env: Vec::new(),
        continue_on_error: Dyn::Lit(false),
        timeout_minutes: None,
        action: StepAction::Unsupported {
            uses: String::new(),
        },
    };
    let mut run: Option<(&MarkedScalarNode, &Node)> = None;
    let mut uses: Option<(&MarkedScalarNode, &Node)> = None;
    let (mut shell_key, mut workdir_key, mut with_key) = (None, None, None);
    for (k, v) in map.iter() {
        match k.as_str() {
            "name" => step.name = cx.template(v, "`name`"),
            "id" => {
                if let Some(s) = cx.scalar_node(v, "`id`") {
                    step_id(cx, s, job, ids);
                    step.id = Some(StepId::new(s.as_str()));
                }
            }
            "run" => run = Some((k, v)),
            "uses" => uses = Some((k, v)),
            "shell" => shell_key = Some((k, v)),
            "working-directory" => workdir_key = Some((k, v)),
            "with" => with_key = Some((k, v)),
            "env" => step.env = cx.pairs(v, "`env`"),
            "if" => step.if_ = cx.cond(v),
            "continue-on-error" => {
                step.continue_on_error = cx
                    .dyn_bool(v, "`continue-on-error`")
                    .unwrap_or(Dyn::Lit(false))
            }
            "timeout-minutes" => step.timeout_minutes = cx.dyn_number(v, "`timeout-minutes`"),
            _ => {
                cx.unknown_key(k, "a step", KEYS);
            }
        }
    }
    step.action = match (run, uses) {
        (Some((_, script)), None) => {
            if let Some((k, _)) = with_key {
                let at = cx.at_scalar(k);
                cx.error(at, "`with` applies only to `uses` steps");
            }
            StepAction::Run {
                script: cx.template(script, "`run`")?,
                shell: shell_key.and_then(|(_, v)| shell(cx, v)),
                working_directory: workdir_key
                    .and_then(|(_, v)| cx.template(v, "`working-directory`")),
            }
        }
        (None, Some((_, action))) => {
            for (k, _) in [shell_key, workdir_key].into_iter().flatten() {
                let at = cx.at_scalar(k);
                cx.error(at, format!("`{}` applies only to `run` steps", k.as_str()));
            }
            let with = with_key
                .map(|(_, v)| cx.pairs(v, "`with`"))
                .unwrap_or_default();
            uses_action(cx, action, with)?
        }
        (Some((k, _)), Some(_)) => {
            let at = cx.at_scalar(k);
            cx.error_help(
                at,
                "a step has both `run` and `uses`",
                "split it into two steps",
            );
            return None;
        }
        (None, None) => {
            cx.error(at, "a step needs `run` or `uses`");
            return None;
        }
    };
    Some(step)
}

fn step_id(cx: &mut Cx<'_>, s: &MarkedScalarNode, job: &str, ids: &mut Vec<(String, At)>) {
    let at = cx.at_scalar(s);
    let id = s.as_str();
    if !is_identifier(id) {
        cx.error_help(
            at,
            format!("invalid step id `{id}`"),
            "a step id starts with a letter or `_` and holds only letters, digits, `-` and `_`",
        );
    }
    if let Some((_, first)) = ids.iter().find(|(other, _)| other == id) {
        cx.error_help(
            at,
            format!("duplicate step id `{id}` in job `{job}`"),
            format!("first used on line {}", first.loc.line),
        );
    } else {
        ids.push((id.to_owned(), at));
    }
}

fn uses_action(cx: &mut Cx<'_>, n: &Node, with: kiln_model::workflow::Pairs) -> Option<StepAction> {
    let s = cx.scalar_node(n, "`uses`")?;
    let uses = s.as_str();
    let name = uses.split_once('@').map_or(uses, |(name, _)| name);
    if let Some((_, builtin)) = BUILTINS.iter().find(|(b, _)| b.eq_ignore_ascii_case(name)) {
        if !uses.contains('@') {
            let at = cx.at_scalar(s);
            cx.error_help(
                at,
                format!("`{uses}` needs a version"),
                format!("write `{name}@v4`"),
            );
        }
        return Some(StepAction::Uses {
            builtin: *builtin,
            with,
        });
    }
    let at = cx.at_scalar(s);
    let builtins: Vec<&str> = BUILTINS.iter().map(|(b, _)| *b).collect();
    cx.error_help(
        at,
        format!("action `{uses}` is not supported by kiln"),
        format!(
            "kiln runs these actions natively: {}; use a `run` step for anything else",
            super::suggest::list(&builtins)
        ),
    );
    Some(StepAction::Unsupported {
        uses: uses.to_owned(),
    })
}

/// A `shell:` value: a known shell or a command line with `{0}`.
pub(crate) fn shell(cx: &mut Cx<'_>, n: &Node) -> Option<Shell> {
    let s = cx.scalar_node(n, "`shell`")?;
    Some(match s.as_str() {
        "bash" => Shell::Bash,
        "sh" => Shell::Sh,
        "python" => Shell::Python,
        "pwsh" => Shell::Pwsh,
        "powershell" => Shell::Powershell,
        "cmd" => Shell::Cmd,
        custom if custom.contains("{0}") => Shell::Custom(custom.to_owned()),
        other => {
            let at = cx.at_scalar(s);
            let help = match super::suggest::closest(other, SHELLS.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "use {} or a command line with `{{0}}` where the script path goes, e.g. `zsh -e {{0}}`",
                    super::suggest::list(SHELLS)
                ),
            };
            cx.error_help(at, format!("unknown shell `{other}`"), help);
            return None;
        }
    })
}
