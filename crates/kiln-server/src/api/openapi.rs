//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Paths come
//! from `kiln_proto::routes`; a test checks that every route is described.

use axum::Json;
use kiln_proto::routes as r;
use serde_json::{Value, json};

fn op(summary: &str, role: &str, body: Option<&str>, response: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "description": format!("Needs a `{role}` token."),
        "responses": {
            "200": { "description": "OK", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{response}") } } } },
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
            "409": { "$ref": "#/components/responses/Error" }
        }
    });
    if role == "none" {
        o["security"] = json!([]);
        o["description"] = json!("No token needed.");
    }
    if let Some(b) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{b}") } } } });
    }
    o
}

fn id_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, mut o: Value, params: &[&str]| {
        if !params.is_empty() {
            o["parameters"] = Value::Array(params.iter().map(|p| id_param(p)).collect());
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = o;
    };
    add(
        r::HEALTHZ,
        "get",
        op("Health check", "none", None, "Health"),
        &[],
    );
    add(
        r::OPENAPI,
        "get",
        op("This document", "none", None, "Object"),
        &[],
    );
    add(
        r::REPOS,
        "get",
        op("List repositories", "viewer", None, "RepoList"),
        &[],
    );
    add(
        r::REPOS,
        "post",
        op(
            "Add a repository (any git URL)",
            "admin",
            Some("AddRepo"),
            "RepoInfo",
        ),
        &[],
    );
    add(
        r::REPO_TRIGGER,
        "post",
        op(
            "Trigger runs at a commit",
            "maintainer",
            Some("TriggerRequest"),
            "TriggerResponse",
        ),
        &["repo"],
    );
    add(
        r::REPO_FORGE,
        "put",
        op(
            "Set the repository's forge (commit statuses, pull request comments); the token is stored encrypted and never returned",
            "admin",
            Some("ForgeSettings"),
            "RepoInfo",
        ),
        &["repo"],
    );
    add(
        r::REPO_FORGE,
        "delete",
        op("Remove the repository's forge", "admin", None, "RepoInfo"),
        &["repo"],
    );
    add(
        r::RUNS,
        "get",
        op(
            "List runs, newest first (?repo=NAME&limit=N)",
            "viewer",
            None,
            "RunList",
        ),
        &[],
    );
    add(
        r::RUN,
        "get",
        op("A run with its jobs", "viewer", None, "RunDetail"),
        &["run"],
    );
    add(
        r::RUN_RESULTS,
        "get",
        op("The run's results document", "viewer", None, "RunResult"),
        &["run"],
    );
    add(
        r::RUN_LOGS,
        "get",
        op(
            "Stored log lines (?job=ID&after=CURSOR)",
            "viewer",
            None,
            "LogsPage",
        ),
        &["run"],
    );
    add(
        r::RUN_LOGS_STREAM,
        "get",
        op(
            "Live log lines as Server-Sent Events; an `end` event carries the run status",
            "viewer",
            None,
            "LogEntry",
        ),
        &["run"],
    );
    add(
        r::RUN_CANCEL,
        "post",
        op("Cancel a run", "maintainer", None, "RunSummary"),
        &["run"],
    );
    add(
        r::RUN_RETRY,
        "post",
        op(
            "Run the same workflow at the same commit again",
            "maintainer",
            Some("RetryRequest"),
            "RunSummary",
        ),
        &["run"],
    );
    add(
        r::RUN_APPROVE,
        "post",
        op(
            "Approve or reject a deploy job waiting for approval (or release a run held for a fork)",
            "maintainer",
            Some("ApproveRequest"),
            "RunDetail",
        ),
        &["run"],
    );
    add(
        r::REPO_DEPLOY,
        "post",
        op(
            "Deploy a commit to an environment",
            "maintainer",
            Some("DeployRequest"),
            "TriggerResponse",
        ),
        &["repo"],
    );
    add(
        r::REPO_ENVIRONMENTS,
        "get",
        op(
            "Environments: current commit, who deployed it, history",
            "viewer",
            None,
            "EnvironmentList",
        ),
        &["repo"],
    );
    add(
        r::AGENTS,
        "get",
        op("Registered agents", "viewer", None, "AgentList"),
        &[],
    );
    add(
        r::QUEUE,
        "get",
        op("Jobs waiting for an agent", "viewer", None, "QueueList"),
        &[],
    );
    add(
        r::TOKENS,
        "post",
        op(
            "Create a token (shown once)",
            "admin",
            Some("CreateToken"),
            "CreatedToken",
        ),
        &[],
    );
    add(
        r::AGENT_REGISTER,
        "post",
        op(
            "Agent: register",
            "agent",
            Some("RegisterRequest"),
            "RegisterResponse",
        ),
        &[],
    );
    add(
        r::AGENT_CLAIM,
        "post",
        op(
            "Agent: long-poll for a job (204 when none)",
            "agent",
            Some("ClaimRequest"),
            "Assignment",
        ),
        &[],
    );
    add(
        r::AGENT_HEARTBEAT,
        "post",
        op(
            "Agent: extend the lease; says whether to cancel",
            "agent",
            Some("Heartbeat"),
            "HeartbeatReply",
        ),
        &["job"],
    );
    add(
        r::AGENT_LOGS,
        "post",
        op(
            "Agent: upload a numbered log chunk (idempotent)",
            "agent",
            Some("LogChunk"),
            "Object",
        ),
        &["job"],
    );
    add(
        r::AGENT_COMPLETE,
        "post",
        op(
            "Agent: report the attempt's result",
            "agent",
            Some("Completion"),
            "Object",
        ),
        &["job"],
    );
    for (path, forge, header) in [
        (r::HOOK_GITHUB, "GitHub", "X-Hub-Signature-256"),
        (r::HOOK_GITEA, "Gitea", "X-Gitea-Signature"),
        (
            r::HOOK_FORGEJO,
            "Forgejo",
            "X-Forgejo-Signature (or X-Gitea-Signature)",
        ),
        (r::HOOK_GITLAB, "GitLab", "X-Gitlab-Token"),
    ] {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry["post"] = json!({
            "summary": format!("{forge} webhook delivery"),
            "description": format!("No token: the body is verified with `{header}` against the repository's webhook secret before it is read. Answers at once; runs are created after. A delivery id seen before is answered as a duplicate and starts nothing. Bodies over `triggers.hook_body_limit_bytes` get 413."),
            "security": [],
            "parameters": [{ "name": "repo", "in": "query", "required": false, "schema": { "type": "string" }, "description": "The kiln repository whose secret verifies the delivery; without it every repository with a secret is tried." }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Object" } } } },
            "responses": {
                "200": { "description": "Accepted; nothing to do (ping, an ignored event, a duplicate delivery)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HookAccepted" } } } },
                "202": { "description": "Accepted; the event is being handled", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HookAccepted" } } } },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
                "413": { "description": "Body too large" }
            }
        });
    }

    let obj = |props: &[&str]| json!({ "type": "object", "properties": props.iter().map(|p| (p.to_string(), json!({}))).collect::<serde_json::Map<_, _>>() });
    let list = |item: &str| json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "kiln", "version": env!("CARGO_PKG_VERSION"), "description": "kiln's REST API and agent protocol. Types are defined in the kiln-proto crate; see docs/protocol.md." },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": { "description": "An error a person can act on", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } } },
            "schemas": {
                "Object": { "type": "object" },
                "Health": obj(&["status"]),
                "ErrorBody": obj(&["error", "kind"]),
                "AddRepo": obj(&["name", "url", "forge"]),
                "RepoInfo": obj(&["name", "url", "created_at", "forge"]),
                "ForgeSettings": obj(&["kind", "api_url", "repo", "token"]),
                "ForgeInfo": obj(&["kind", "api_url", "repo", "token_set"]),
                "ForgeReportInfo": obj(&["delivered", "attempts", "last_error", "next_attempt_at", "comment_id"]),
                "RepoList": list("RepoInfo"),
                "TriggerRequest": obj(&["git_ref", "commit", "workflow", "event", "inputs", "flags"]),
                "TriggerResponse": obj(&["runs"]),
                "RunSummary": obj(&["id", "repo", "workflow_name", "workflow_file", "commit", "git_ref", "event", "status", "waiting", "waiting_reason", "created_at", "started_at", "finished_at"]),
                "RunList": list("RunSummary"),
                "RunDetail": obj(&["id", "repo", "status", "error", "jobs", "forge"]),
                "RunResult": obj(&["workflow_file", "workflow_name", "event", "commit", "status", "jobs"]),
                "LogEntry": obj(&["job", "attempt", "step", "stream", "at", "text"]),
                "LogsPage": obj(&["entries", "cursor"]),
                "RetryRequest": obj(&["failed_only"]),
                "AgentInfo": obj(&["id", "name", "labels", "capacity", "used", "online", "last_seen", "lost_at", "running"]),
                "AgentList": list("AgentInfo"),
                "QueuedJob": obj(&["id", "run", "repo", "name", "runs_on", "weight", "priority", "queued_at", "waiting_reason"]),
                "QueueList": list("QueuedJob"),
                "CreateToken": obj(&["role", "name"]),
                "CreatedToken": obj(&["token", "role", "name"]),
                "RegisterRequest": obj(&["name", "labels", "capacity", "version"]),
                "RegisterResponse": obj(&["agent_id", "session", "heartbeat_ms", "lease_ms"]),
                "ClaimRequest": obj(&["agent_id", "free_capacity", "wait_ms"]),
                "Assignment": obj(&["job", "attempt", "run", "repo_name", "repo_url", "commit", "workflow", "job_index", "name", "contexts", "lease_ms", "heartbeat_ms"]),
                "Heartbeat": obj(&["attempt"]),
                "HeartbeatReply": obj(&["cancel"]),
                "LogChunk": obj(&["attempt", "seq", "lines"]),
                "Completion": obj(&["attempt", "result"]),
                "HookAccepted": obj(&["repo", "event", "delivery", "duplicate", "queued"])
            }
        }
    });
    let schemas = &mut doc["components"]["schemas"];
    schemas["ApproveRequest"] = obj(&["job", "reject"]);
    schemas["DeployRequest"] = obj(&["environment", "commit", "force"]);
    schemas["EnvironmentInfo"] = obj(&[
        "name",
        "commit",
        "healthy",
        "run",
        "deployed_by",
        "deployed_at",
        "history",
    ]);
    schemas["EnvironmentList"] = list("EnvironmentInfo");
    doc
}

pub async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_and_refs_resolve() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().unwrap();
        let source = include_str!("../../../kiln-proto/src/routes.rs");
        for line in source.lines() {
            if let Some(rest) = line.trim().strip_prefix("pub const ") {
                let path = rest.split('"').nth(1).unwrap();
                assert!(
                    paths.contains_key(path),
                    "route {path} missing from the OpenAPI document"
                );
            }
        }
        let text = spec.to_string();
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        for r in text.split("#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
