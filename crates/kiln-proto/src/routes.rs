//! Every HTTP path of the server. Clients build URLs from these functions;
//! the server's router uses the same patterns.

use kiln_model::{InstanceId, RunId};

pub const HEALTHZ: &str = "/healthz";
pub const OPENAPI: &str = "/api/v1/openapi.json";

pub const REPOS: &str = "/api/v1/repos";
pub const REPO_TRIGGER: &str = "/api/v1/repos/{repo}/trigger";
pub const REPO_FORGE: &str = "/api/v1/repos/{repo}/forge";
pub const RUNS: &str = "/api/v1/runs";
pub const RUN: &str = "/api/v1/runs/{run}";
pub const RUN_RESULTS: &str = "/api/v1/runs/{run}/results";
pub const RUN_LOGS: &str = "/api/v1/runs/{run}/logs";
pub const RUN_LOGS_STREAM: &str = "/api/v1/runs/{run}/logs/stream";
pub const RUN_CANCEL: &str = "/api/v1/runs/{run}/cancel";
pub const RUN_RETRY: &str = "/api/v1/runs/{run}/retry";
pub const RUN_APPROVE: &str = "/api/v1/runs/{run}/approve";
pub const REPO_DEPLOY: &str = "/api/v1/repos/{repo}/deploy";
pub const REPO_ENVIRONMENTS: &str = "/api/v1/repos/{repo}/environments";
pub const AGENTS: &str = "/api/v1/agents";
pub const QUEUE: &str = "/api/v1/queue";
pub const TOKENS: &str = "/api/v1/tokens";

/// Webhook deliveries (signed by the forge; no token). `?repo=NAME`
/// names the repository whose secret verifies them.
pub const HOOK_GITHUB: &str = "/hooks/github";
pub const HOOK_GITEA: &str = "/hooks/gitea";
pub const HOOK_FORGEJO: &str = "/hooks/forgejo";
pub const HOOK_GITLAB: &str = "/hooks/gitlab";

pub const AGENT_REGISTER: &str = "/api/v1/agent/register";
pub const AGENT_CLAIM: &str = "/api/v1/agent/claim";
pub const AGENT_WORK: &str = "/api/v1/agent/work";
pub const AGENT_HEARTBEAT: &str = "/api/v1/agent/jobs/{job}/heartbeat";
pub const AGENT_LOGS: &str = "/api/v1/agent/jobs/{job}/logs";
pub const AGENT_COMPLETE: &str = "/api/v1/agent/jobs/{job}/complete";

pub fn repo_trigger(repo: &str) -> String {
    REPO_TRIGGER.replace("{repo}", repo)
}
pub fn repo_forge(repo: &str) -> String {
    REPO_FORGE.replace("{repo}", repo)
}
pub fn run(run: RunId) -> String {
    RUN.replace("{run}", &run.to_string())
}
pub fn run_results(run: RunId) -> String {
    RUN_RESULTS.replace("{run}", &run.to_string())
}
pub fn run_logs(run: RunId) -> String {
    RUN_LOGS.replace("{run}", &run.to_string())
}
pub fn run_logs_stream(run: RunId) -> String {
    RUN_LOGS_STREAM.replace("{run}", &run.to_string())
}
pub fn run_cancel(run: RunId) -> String {
    RUN_CANCEL.replace("{run}", &run.to_string())
}
pub fn run_retry(run: RunId) -> String {
    RUN_RETRY.replace("{run}", &run.to_string())
}
pub fn run_approve(run: RunId) -> String {
    RUN_APPROVE.replace("{run}", &run.to_string())
}
pub fn repo_deploy(repo: &str) -> String {
    REPO_DEPLOY.replace("{repo}", repo)
}
pub fn repo_environments(repo: &str) -> String {
    REPO_ENVIRONMENTS.replace("{repo}", repo)
}
pub fn agent_heartbeat(job: InstanceId) -> String {
    AGENT_HEARTBEAT.replace("{job}", &job.to_string())
}
pub fn agent_logs(job: InstanceId) -> String {
    AGENT_LOGS.replace("{job}", &job.to_string())
}
pub fn agent_complete(job: InstanceId) -> String {
    AGENT_COMPLETE.replace("{job}", &job.to_string())
}
