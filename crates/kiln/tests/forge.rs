//! End-to-end: a repository registered with a forge (the fake GitHub of
//! `support::fake_forge`) gets a commit status per run, pending then the
//! result with a link; a forge outage never fails a build, shows in the
//! run, and the statuses arrive once the forge is back; the token never
//! leaves the server.

mod support;

use serde_json::Value;
use support::cluster::{Agent, Remote, Server};
use support::fake_forge::FakeForge;

const TOKEN: &str = "ghp_e2eSECRETtoken0123456789";

#[test]
fn runs_report_statuses_and_survive_a_forge_outage() {
    let tmp = tempfile::Builder::new()
        .prefix("kiln-forge-")
        .tempdir()
        .unwrap();
    let server = Server::start_with(
        &tmp.path().join("data"),
        10.0,
        &[("KILN_LOG", "info,kiln_server=debug,kiln_engine=debug")],
    );
    let forge = FakeForge::start(TOKEN);
    let remote = Remote::new();
    remote.file(
        ".kiln/workflows/ci.yml",
        "name: ci\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo built\n",
    );
    let sha1 = remote.push("first");
    let token_file = tmp.path().join("forge.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();

    // Register with the forge; the answer and the listing never show the token.
    let added = server.kiln(&[
        "repo",
        "add",
        "app",
        &remote.url(),
        "--forge",
        "github",
        "--forge-url",
        &forge.url(),
        "--forge-repo",
        "octo/app",
        "--forge-token-file",
        token_file.to_str().unwrap(),
        "--json",
    ]);
    added.code(0);
    assert!(!added.stdout.contains(TOKEN));
    let list = server.kiln(&["repo", "list", "--json"]);
    list.code(0);
    assert!(!list.stdout.contains(TOKEN), "{}", list.stdout);
    let repos: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(repos[0]["forge"]["kind"], "github", "{repos}");
    assert_eq!(repos[0]["forge"]["repo"], "octo/app");
    assert_eq!(repos[0]["forge"]["api_url"], forge.url().as_str());
    assert_eq!(repos[0]["forge"]["token_set"], true);
    let table = server.kiln(&["repo", "list"]);
    assert!(table.stdout.contains("github octo/app"), "{}", table.stdout);

    let agent_token = server.agent_token_file(tmp.path());
    let _agent = Agent::start(
        &server,
        &agent_token,
        "a1",
        "",
        1,
        &tmp.path().join("agents"),
    );

    // 1. A healthy forge: pending, then success, with a link to the run.
    let run1 = server.json(&["trigger", "app"])["runs"][0]["id"].to_string();
    let done = server.wait_run(&run1, "run 1 to finish", |v| v["status"] == "success");
    forge.wait("run 1's success status", |f| {
        f.statuses_for(&sha1).iter().any(|s| s.state == "success")
    });
    let posted = forge.statuses_for(&sha1);
    assert_eq!(posted[0].state, "pending", "{posted:#?}");
    assert!(
        posted
            .iter()
            .all(|s| s.context == "kiln/ci" && s.repo == "octo/app")
    );
    let last = posted.last().unwrap();
    assert_eq!(last.state, "success");
    assert_eq!(last.description, "1 job passed");
    assert_eq!(
        last.target_url.as_deref(),
        Some(format!("{}/api/v1/runs/{run1}", server.url()).as_str())
    );
    let shown = server.wait_run(&run1, "run 1 reported", |v| v["forge"]["delivered"] == true);
    assert_eq!(shown["forge"]["last_error"], Value::Null, "{shown}");
    assert_eq!(done["status"], "success");

    // 2. The forge answers 500: the build still succeeds, the failure shows
    // in the run, and the statuses arrive after the forge is back.
    forge.fail_with(500);
    let sha2 = remote.push("second");
    let run2 = server.json(&["trigger", "app"])["runs"][0]["id"].to_string();
    server.wait_run(&run2, "run 2 to finish", |v| v["status"] == "success");
    let failing = server.wait_run(&run2, "the outage to show in run 2", |v| {
        v["forge"]["attempts"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(failing["forge"]["delivered"], false, "{failing}");
    let error = failing["forge"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("500"), "{failing}");
    let human = server.kiln(&["show", &run2]);
    assert!(
        human.stdout.contains("not reported yet"),
        "{}",
        human.stdout
    );
    assert!(forge.statuses_for(&sha2).is_empty());
    forge.heal();
    forge.wait("run 2's success status after the outage", |f| {
        f.statuses_for(&sha2).iter().any(|s| s.state == "success")
    });
    let healed = server.wait_run(&run2, "run 2 reported", |v| v["forge"]["delivered"] == true);
    assert_eq!(healed["forge"]["attempts"], 0, "{healed}");
    // The newest state wins: no pending after the success.
    assert_eq!(forge.statuses_for(&sha2).last().unwrap().state, "success");

    // The token went to the forge as a bearer token, and nowhere else.
    assert!(
        forge
            .requests()
            .iter()
            .filter(|r| r.answered != 500)
            .all(|r| r.authorization.as_deref() == Some(format!("Bearer {TOKEN}").as_str()))
    );
    let logs = server.output();
    assert!(logs.contains("reporting to the forge failed"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    let db = std::fs::read(tmp.path().join("data").join("kiln.db")).unwrap_or_default();
    assert!(
        !db.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the token is in the database in clear"
    );

    // Removing the forge: no more reports.
    server.kiln(&["repo", "forge", "app", "--remove"]).code(0);
    let repos = server.json(&["repo", "list"]);
    assert_eq!(repos[0]["forge"], Value::Null);
}

/// Reports still owed when the server dies are sent after it restarts.
#[test]
fn a_restart_resends_what_the_forge_did_not_get() {
    let tmp = tempfile::Builder::new()
        .prefix("kiln-forge-")
        .tempdir()
        .unwrap();
    let mut server = Server::start(&tmp.path().join("data"), 10.0);
    let forge = FakeForge::start(TOKEN);
    let remote = Remote::new();
    remote.file(
        ".kiln/workflows/ci.yml",
        "name: ci\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: \"false\"\n",
    );
    let sha = remote.push("first");
    let token_file = tmp.path().join("forge.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    server
        .kiln(&[
            "repo",
            "add",
            "app",
            &remote.url(),
            "--forge",
            "github",
            "--forge-url",
            &forge.url(),
            "--forge-repo",
            "octo/app",
            "--forge-token-file",
            token_file.to_str().unwrap(),
        ])
        .code(0);
    let agent_token = server.agent_token_file(tmp.path());
    let mut agent = Agent::start(
        &server,
        &agent_token,
        "a1",
        "",
        1,
        &tmp.path().join("agents"),
    );
    forge.fail_with(503);
    let run = server.json(&["trigger", "app"])["runs"][0]["id"].to_string();
    server.wait_run(&run, "the run to fail", |v| v["status"] == "failure");
    server.wait_run(&run, "a failed delivery", |v| {
        v["forge"]["attempts"].as_u64().unwrap_or(0) >= 1
    });
    agent.kill();
    server.kill();
    forge.heal();
    server.restart();
    forge.wait("the failure status after the restart", |f| {
        f.statuses_for(&sha).iter().any(|s| s.state == "failure")
    });
    let last = forge.statuses_for(&sha).last().cloned().unwrap();
    assert_eq!(last.state, "failure");
    assert_eq!(last.description, "1 of 1 job failed: build");
}
