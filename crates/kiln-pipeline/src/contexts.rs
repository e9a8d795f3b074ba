//! The `github` context of a run, built the same way by `kiln exec` and by
//! the server, so that a workflow sees the same names in both.

use kiln_model::Value;
use std::collections::BTreeMap;

/// What a run knows about where it comes from.
#[derive(Clone, Copy, Debug)]
pub struct RunFacts<'a> {
    pub repository: &'a str,
    pub sha: &'a str,
    /// A full ref (`refs/heads/main`, `refs/tags/v1`), if any.
    pub git_ref: Option<&'a str>,
    pub event: &'a str,
    pub workflow: &'a str,
    pub actor: &'a str,
    pub run_id: &'a str,
    /// The typed `inputs` of a `workflow_dispatch` run.
    pub inputs: &'a Value,
}

/// The `github` context (without `job` and `workspace`, which depend on
/// the job and the machine it runs on).
pub fn github(f: RunFacts<'_>) -> Value {
    let git_ref = f.git_ref.unwrap_or("");
    let (ref_name, ref_type) = if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        (b, "branch")
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        (t, "tag")
    } else {
        (git_ref, "")
    };
    let mut event = BTreeMap::new();
    if f.event == "workflow_dispatch" {
        event.insert("inputs".to_owned(), f.inputs.clone());
    }
    Value::object([
        ("event_name", Value::str(f.event)),
        ("sha", Value::str(f.sha)),
        ("ref", Value::str(git_ref)),
        ("ref_name", Value::str(ref_name)),
        ("ref_type", Value::str(ref_type)),
        ("head_ref", Value::str("")),
        ("base_ref", Value::str("")),
        ("repository", Value::str(f.repository)),
        ("repository_owner", Value::str("")),
        ("workflow", Value::str(f.workflow)),
        ("run_id", Value::str(f.run_id)),
        ("run_number", Value::str(f.run_id)),
        ("run_attempt", Value::str("1")),
        ("actor", Value::str(f.actor)),
        ("server_url", Value::str("")),
        ("token", Value::str("")),
        ("action", Value::str("")),
        ("event", Value::Object(event)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_become_names_and_types() {
        let inputs = Value::object([("level", Value::Number(3.0))]);
        let f = RunFacts {
            repository: "app",
            sha: "abc",
            git_ref: Some("refs/tags/v1.2"),
            event: "workflow_dispatch",
            workflow: "CI",
            actor: "me",
            run_id: "7",
            inputs: &inputs,
        };
        let g = github(f);
        assert_eq!(g.get_ci("ref_name"), Some(&Value::str("v1.2")));
        assert_eq!(g.get_ci("ref_type"), Some(&Value::str("tag")));
        assert_eq!(
            g.get_ci("event").and_then(|e| e.get_ci("inputs")),
            Some(&inputs)
        );
        let g = github(RunFacts {
            git_ref: Some("refs/heads/main"),
            event: "push",
            ..f
        });
        assert_eq!(g.get_ci("ref_type"), Some(&Value::str("branch")));
        assert_eq!(g.get_ci("event"), Some(&Value::Object(BTreeMap::new())));
    }
}
