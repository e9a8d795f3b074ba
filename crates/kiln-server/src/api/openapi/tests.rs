//! The document against the router that serves it and the wire types it
//! describes. The route check probes the real router over HTTP: every
//! (method, path) it answers is in the document and the reverse, so a
//! route added without documentation fails here; and a token of each role
//! is tried on each operation, so the role the document names is the one
//! the handler enforces.

use super::errors::kinds_for;
use super::roles::{ROLE, ROLES, operations_mut};
use crate::api::{AppState, router};
use crate::engine::{Engine, EngineConfig};
use crate::git::Mirrors;
use axum::http::StatusCode;
use kiln_store::SqliteStore;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn doc() -> Value {
    serde_json::to_value(super::spec()).expect("the document serializes")
}

/// Every path of `kiln_proto::routes`, read from its source (the consts).
fn route_consts() -> Vec<&'static str> {
    let source = include_str!("../../../../kiln-proto/src/routes.rs");
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .collect()
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn document_parses_as_openapi_3_1() {
    let text = serde_json::to_string(super::spec()).expect("serializes");
    let parsed: utoipa::openapi::OpenApi = serde_json::from_str(&text).expect("parses back");
    let v = serde_json::to_value(&parsed).expect("serializes");
    assert_eq!(v["openapi"], "3.1.0");
    assert_eq!(v["info"]["title"], "kiln");
    assert!(v["info"]["version"].is_string());
    assert_eq!(
        v["paths"],
        doc()["paths"],
        "the paths survive a round trip through utoipa's types"
    );
    let schemes = &v["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["agent_session"]["name"], "kiln-agent-session");
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let text = doc.to_string();
    let components = &doc["components"];
    let mut refs = 0;
    for (prefix, section) in [
        ("#/components/schemas/", "schemas"),
        ("#/components/responses/", "responses"),
    ] {
        for r in text.split(prefix).skip(1) {
            let name = r.split('"').next().expect("a name");
            assert!(
                components[section].get(name).is_some(),
                "dangling $ref {prefix}{name}"
            );
            refs += 1;
        }
    }
    assert!(
        refs > 30,
        "the document refers to its schemas ({refs} refs)"
    );
}

#[test]
fn every_operation_says_what_it_needs_and_answers() {
    let mut doc = super::spec().clone();
    let mut count = 0;
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations_mut(item) {
            count += 1;
            let name = format!("{path} {:?}", op.summary);
            assert!(
                op.summary.as_deref().is_some_and(|s| !s.is_empty()),
                "{path}: no summary"
            );
            let role = op
                .extensions
                .as_ref()
                .and_then(|e| e.get(ROLE))
                .and_then(Value::as_str)
                .unwrap_or("(none given)");
            assert!(ROLES.contains(&role), "{name}: role {role}");
            let description = op.description.clone().unwrap_or_default();
            assert!(
                description.contains("token"),
                "{name}: the description says which token: {description}"
            );
            let security = op.security.as_ref().expect("a security requirement");
            assert_eq!(security.is_empty(), role == "none", "{name}: security");
            let codes: Vec<&String> = op.responses.responses.keys().collect();
            assert!(
                codes.iter().any(|c| c.starts_with('2')),
                "{name}: no success response"
            );
            assert!(codes.contains(&&"500".to_owned()), "{name}: no 500");
            if role != "none" {
                for c in ["400", "401", "403", "404", "409"] {
                    assert!(codes.contains(&&c.to_owned()), "{name}: no {c}");
                }
            }
            if op.request_body.is_some() && !path.starts_with("/hooks/") {
                assert!(codes.contains(&&"413".to_owned()), "{name}: no 413");
                assert!(codes.contains(&&"422".to_owned()), "{name}: no 422");
            }
        }
    }
    assert_eq!(count, 30, "operations in the document");
    let ids: BTreeSet<_> = doc
        .paths
        .paths
        .values_mut()
        .flat_map(operations_mut)
        .filter_map(|op| op.operation_id.clone())
        .collect();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

#[test]
fn webhooks_are_raw_signed_bodies() {
    let doc = doc();
    for (path, sig) in [
        ("/hooks/github", "X-Hub-Signature-256"),
        ("/hooks/gitea", "X-Gitea-Signature"),
        ("/hooks/forgejo", "X-Forgejo-Signature"),
        ("/hooks/gitlab", "X-Gitlab-Token"),
    ] {
        let op = &doc["paths"][path]["post"];
        assert_eq!(op["security"], serde_json::json!([]), "{path}");
        let params = op["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == sig && p["in"] == "header" && p["required"] == true),
            "{path}: {sig} header"
        );
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "repo" && p["in"] == "query" && p["required"] == false),
            "{path}: ?repo="
        );
        for code in ["200", "202"] {
            assert_eq!(
                op["responses"][code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/HookAccepted",
                "{path} {code}"
            );
        }
        for code in ["400", "401", "404", "413"] {
            assert!(op["responses"][code].is_object(), "{path}: {code}");
        }
        assert!(op["requestBody"]["content"]["application/json"].is_object());
    }
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "schema {name} missing");
    s
}

fn required(s: &Value) -> BTreeSet<String> {
    s["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `$ref` of a property, directly or as the non-null branch of a
/// nullable one (`oneOf: [null, $ref]`).
fn ref_of(p: &Value) -> Option<&str> {
    p["$ref"].as_str().or_else(|| {
        p["oneOf"]
            .as_array()?
            .iter()
            .find_map(|b| b["$ref"].as_str())
    })
}

#[test]
fn error_body_kind_is_a_string_enum_of_the_wire_spelling() {
    let doc = doc();
    let body = schema(&doc, "ErrorBody");
    assert_eq!(body["type"], "object");
    assert_eq!(body["properties"]["error"]["type"], "string");
    assert_eq!(
        ref_of(&body["properties"]["kind"]),
        Some("#/components/schemas/ErrorKind")
    );
    // `kind` has a serde default: old servers omit it.
    assert_eq!(required(body), BTreeSet::from(["error".to_owned()]));
    let kind = schema(&doc, "ErrorKind");
    assert_eq!(kind["type"], "string");
    let values: BTreeSet<&str> = kind["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for k in [
        "invalid",
        "stale",
        "not-lease-holder",
        "not-found",
        "too-large",
    ] {
        assert!(values.contains(k), "ErrorKind lacks {k}: {values:?}");
    }
    // Every kind the status table sends is one the schema allows.
    for status in [400, 401, 403, 404, 409, 500] {
        let status = StatusCode::from_u16(status).expect("a status");
        let kinds = kinds_for(status);
        assert!(!kinds.is_empty(), "{status}: no kind");
        for k in kinds {
            assert!(values.contains(k.as_str()), "{status}: {k}");
        }
    }
    assert_eq!(
        kinds_for(StatusCode::CONFLICT),
        ["stale", "conflict"],
        "409 carries two kinds"
    );
}

#[test]
fn schemas_follow_serde() {
    let doc = doc();
    // `skip_serializing_if` + `default`: optional, and a nullable ref.
    let job = schema(&doc, "JobSummary");
    let props = &job["properties"];
    assert_eq!(
        ref_of(&props["waiting_reason"]),
        Some("#/components/schemas/WaitingReason")
    );
    let req = required(job);
    assert!(!req.contains("waiting_reason") && !req.contains("priority"));
    assert!(req.contains("id") && req.contains("status") && req.contains("runs_on"));
    assert_eq!(props["runs_on"]["type"], "array");
    // Ids are integers, statuses kebab-case strings, times RFC 3339.
    assert_eq!(
        ref_of(&props["id"]),
        Some("#/components/schemas/InstanceId")
    );
    let id = schema(&doc, "InstanceId");
    assert_eq!(id["type"], "integer");
    assert_eq!(id["format"], "int64");
    let status = schema(&doc, "JobStatus");
    assert_eq!(status["type"], "string");
    assert!(
        status["enum"]
            .as_array()
            .expect("enum")
            .contains(&"cancelled".into())
    );
    assert!(
        props["started_at"].to_string().contains("date-time"),
        "{}",
        props["started_at"]
    );
    let kind = schema(&doc, "WaitingKind");
    assert!(
        kind["enum"]
            .as_array()
            .expect("enum")
            .contains(&"no-matching-agent".into())
    );
    // `flatten`: RunDetail is a RunSummary and more.
    let detail = schema(&doc, "RunDetail").to_string();
    assert!(
        detail.contains("#/components/schemas/RunSummary") && detail.contains("\"jobs\""),
        "{detail}"
    );
    // An optional body is absent, not null.
    let retry = &doc["paths"]["/api/v1/runs/{run}/retry"]["post"]["requestBody"];
    assert!(retry.get("required").is_none_or(|r| r == false), "{retry}");
    assert_eq!(
        retry["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RetryRequest"
    );
    // `transparent`: the session secret is a string.
    assert_eq!(schema(&doc, "SessionSecret")["type"], "string");
    // `Value` is any JSON; the workflow an opaque, described object.
    let any = schema(&doc, "Value")["type"]
        .as_array()
        .expect("types")
        .len();
    assert_eq!(any, 6, "null, boolean, number, string, array, object");
    assert_eq!(
        ref_of(&schema(&doc, "JobContexts")["properties"]["github"]),
        Some("#/components/schemas/Value")
    );
    let workflow = schema(&doc, "Workflow");
    assert_eq!(workflow["type"], "object");
    assert!(
        workflow["description"]
            .as_str()
            .is_some_and(|d| d.contains("Opaque"))
    );
    // Roles and streams as the wire spells them.
    let role = schema(&doc, "Role");
    assert!(
        role["enum"]
            .as_array()
            .expect("enum")
            .contains(&"maintainer".into())
    );
    let stream = schema(&doc, "LogStream");
    assert!(
        stream["enum"]
            .as_array()
            .expect("enum")
            .contains(&"stdout".into())
    );
}

/// Whether the router routes `method path` to a handler: not 405 (the
/// path is routed, the method is not) and not the fallback's 404.
async fn served(client: &reqwest::Client, base: &str, method: &str, path: &str) -> bool {
    let url = format!(
        "{base}{}",
        path.replace("{repo}", "app")
            .replace("{run}", "1")
            .replace("{job}", "1")
    );
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let resp = client
        .request(method, &url)
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    status != 405 && !(status == 404 && body.contains("no such endpoint"))
}

/// The real router over HTTP, on an in-memory store: its base URL and
/// the store (to add tokens).
async fn serve() -> (String, Arc<SqliteStore>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let engine = Engine::new(
        store.clone(),
        Mirrors::new(tmp.path().join("mirrors")),
        EngineConfig {
            label_aliases: Vec::new(),
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(2),
            max_attempts: 3,
            max_claim_wait: Duration::from_secs(1),
            workflows_dir: ".kiln/workflows".into(),
            time_zone: jiff::tz::TimeZone::UTC,
            hook_body_limit: 1 << 20,
        },
    );
    let app = router(AppState {
        engine,
        roles: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, store, tmp)
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_routes() {
    let (base, _store, _tmp) = serve().await;
    let client = reqwest::Client::new();

    let doc = doc();
    let documented = documented(&doc);
    let consts = route_consts();
    // The probe covers every documented path: each is a routes.rs const.
    for (_, path) in &documented {
        assert!(
            consts.contains(&path.as_str()),
            "{path} is documented but not in kiln_proto::routes"
        );
    }
    let mut routed = BTreeSet::new();
    for path in &consts {
        for method in METHODS {
            if served(&client, &base, method, path).await {
                routed.insert((method.to_owned(), (*path).to_owned()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in the OpenAPI document but not served: {unserved:?}"
    );
    assert_eq!(routed.len(), 30);
    // The probe can tell: an unknown path gets the fallback.
    assert!(!served(&client, &base, "get", "/api/v1/nothing-here").await);

    // The document the router serves is this one.
    let served_doc: Value = client
        .get(format!("{base}{}", kiln_proto::routes::OPENAPI))
        .send()
        .await
        .expect("GET openapi.json")
        .json()
        .await
        .expect("JSON");
    assert_eq!(served_doc, doc);
}

/// A body each request schema accepts, so that the handler (which checks
/// the role) runs instead of the JSON extractor refusing the body.
fn minimal_body(schema: &str) -> Option<Value> {
    let job_result = serde_json::json!({
        "job": "j", "name": "j", "matrix": null, "status": "success", "reason": null,
        "attempt": 1, "agent": null, "queued_at": null, "started_at": null,
        "finished_at": null, "duration_ms": 0, "phases": [], "outputs": {}, "steps": []
    });
    Some(match schema {
        "AddRepo" => serde_json::json!({ "name": "x", "url": "" }),
        "TriggerRequest" | "ApproveRequest" | "RetryRequest" => serde_json::json!({}),
        "ForgeSettings" => serde_json::json!({ "kind": "github", "token": "" }),
        "DeployRequest" => serde_json::json!({ "environment": "e", "commit": "c" }),
        "CreateToken" => serde_json::json!({ "role": "viewer" }),
        "RegisterRequest" => {
            serde_json::json!({ "name": "a", "labels": [], "capacity": 1, "version": "v" })
        }
        "ClaimRequest" => serde_json::json!({ "agent_id": 1, "free_capacity": 1, "wait_ms": 0 }),
        "WorkRequest" => {
            serde_json::json!({ "agent_id": 1, "reports": [], "free_capacity": 1, "wait_ms": 0 })
        }
        "Heartbeat" => serde_json::json!({ "attempt": 1 }),
        "LogChunk" => serde_json::json!({ "attempt": 1, "seq": 0, "lines": [] }),
        "Completion" => serde_json::json!({ "attempt": 1, "result": job_result }),
        _ => return None,
    })
}

/// The role an operation documents is the role its handler enforces: a
/// token of every role either passes the check or gets 403 `forbidden`,
/// as `Role::allows` says.
#[tokio::test]
async fn each_operation_enforces_the_role_it_documents() {
    use kiln_proto::api::Role;
    use kiln_store::AuthStore;
    let (base, store, _tmp) = serve().await;
    let roles = [Role::Admin, Role::Maintainer, Role::Viewer, Role::Agent];
    for role in roles {
        let secret = format!("secret-{}", role.as_str());
        store
            .add_token(
                &crate::auth::hash(&secret),
                role,
                None,
                jiff::Timestamp::now(),
            )
            .await
            .expect("token");
    }
    let client = reqwest::Client::new();
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let needed = op[ROLE].as_str().expect("a role");
            if needed == "none" {
                continue;
            }
            let needed: Role = needed.parse().expect("a role");
            let body =
                match op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() {
                    Some(r) => {
                        let name = r.rsplit('/').next().unwrap_or_default();
                        Some(minimal_body(name).unwrap_or_else(|| panic!("no body for {name}")))
                    }
                    None => None,
                };
            let url = format!(
                "{base}{}",
                path.replace("{repo}", "app")
                    .replace("{run}", "1")
                    .replace("{job}", "1")
            );
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            for role in roles {
                let mut req = client
                    .request(method.clone(), &url)
                    .bearer_auth(format!("secret-{}", role.as_str()));
                if let Some(b) = &body {
                    req = req.json(b);
                }
                let resp = req.send().await.expect("answer");
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let kind = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(str::to_owned));
                let forbidden = status == 403 && kind.as_deref() == Some("forbidden");
                assert_eq!(
                    forbidden,
                    !role.allows(needed),
                    "{method} {path} documents `{}` but a `{}` token got {status} {text}",
                    needed.as_str(),
                    role.as_str()
                );
                assert!(
                    ![415, 422].contains(&status),
                    "{method} {path}: the body did not reach the handler: {status} {text}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 24, "requests made");
}
