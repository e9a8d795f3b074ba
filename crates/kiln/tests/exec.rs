//! End-to-end tests of `kiln exec`: the real binary on temporary git
//! repositories.

mod support;

use support::Repo;

#[test]
fn dag_passes_outputs_along_needs() {
    let repo = Repo::new();
    repo.workflow(
        "ci.yml",
        r#"
on: push
jobs:
  build:
    runs-on: linux
    outputs:
      version: ${{ steps.v.outputs.version }}
      notes: ${{ steps.v.outputs.notes }}
    steps:
      - id: v
        run: |
          echo "version=1.2.3" >> "$KILN_OUTPUT"
          { echo "notes<<EOF"; echo "line one"; echo "line two"; echo "EOF"; } >> "$GITHUB_OUTPUT"
  test:
    needs: build
    runs-on: linux
    steps:
      - run: echo "got ${{ needs.build.outputs.version }} (${{ needs.build.result }})"
      - run: test "$(printf '%s' "$NOTES" | wc -l)" = 1
        env:
          NOTES: ${{ needs.build.outputs.notes }}
  deploy:
    needs: [build, test]
    runs-on: linux
    steps:
      - run: echo deploy ${{ needs.build.outputs.version }}
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    assert_eq!(run.job("build")["outputs"]["version"], "1.2.3");
    assert_eq!(run.job("build")["outputs"]["notes"], "line one\nline two");
    assert!(
        run.lines_of("test")
            .contains(&"got 1.2.3 (success)".to_string()),
        "{}",
        run.stdout
    );
    assert!(run.lines_of("deploy").contains(&"deploy 1.2.3".to_string()));
    // deploy started only after both of its needs finished.
    let end = |j: &str| run.job(j)["finished_at"].as_str().unwrap().to_owned();
    let start = |j: &str| run.job(j)["started_at"].as_str().unwrap().to_owned();
    assert!(start("deploy") >= end("test") && start("test") >= end("build"));
}

#[test]
fn matrix_with_include_and_exclude() {
    let repo = Repo::new();
    repo.workflow(
        "m.yml",
        r#"
on: push
jobs:
  test:
    runs-on: linux
    strategy:
      matrix:
        os: [linux, mac]
        v: [1, 2]
        exclude:
          - os: mac
            v: 1
        include:
          - os: linux
            v: 2
            extra: yes
          - os: bsd
            v: 9
    steps:
      - run: echo "os=${{ matrix.os }} v=${{ matrix.v }} extra=${{ matrix.extra }} index=${{ strategy.job-index }}/${{ strategy.job-total }}"
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    let mut names: Vec<String> = run
        .jobs()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "test (bsd, 9)",
            "test (linux, 1)",
            "test (linux, 2, yes)",
            "test (mac, 2)"
        ]
    );
    assert!(
        run.lines_of("test (linux, 2, yes)")
            .iter()
            .any(|l| l.starts_with("os=linux v=2 extra=yes index=1/4"))
    );
    assert!(
        run.lines_of("test (bsd, 9)")
            .iter()
            .any(|l| l.starts_with("os=bsd v=9 extra= index=3/4"))
    );
    assert_eq!(run.job("test (mac, 2)")["matrix"]["os"], "mac");
}

#[test]
fn continue_on_error_and_failure_cleanup() {
    let repo = Repo::new();
    repo.workflow(
        "c.yml",
        r#"
on: push
jobs:
  tolerant:
    runs-on: linux
    steps:
      - id: flaky
        run: exit 7
        continue-on-error: true
      - run: echo "after ${{ steps.flaky.outcome }}/${{ steps.flaky.conclusion }}"
  strict:
    runs-on: linux
    steps:
      - run: exit 3
      - run: echo never
      - if: failure()
        run: echo cleaning up
      - if: always()
        run: echo always
      - if: success()
        run: echo not on failure
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(1);
    assert_eq!(run.job_status("tolerant"), "success");
    let steps = run.steps("tolerant");
    assert_eq!(
        (steps[0].1.as_str(), steps[0].2.as_str()),
        ("success", "failure")
    );
    assert!(
        run.lines_of("tolerant")
            .contains(&"after failure/success".to_string())
    );
    assert_eq!(run.job("tolerant")["steps"][0]["exit_code"], 7);

    assert_eq!(run.job_status("strict"), "failure");
    let steps = run.steps("strict");
    let st: Vec<&str> = steps.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(st, ["failure", "skipped", "success", "success", "skipped"]);
    let lines = run.lines_of("strict");
    assert!(lines.contains(&"cleaning up".to_string()) && lines.contains(&"always".to_string()));
    assert!(!lines.iter().any(|l| l == "never" || l == "not on failure"));
}

#[test]
fn failed_need_skips_dependants_unless_always() {
    let repo = Repo::new();
    repo.workflow(
        "s.yml",
        r#"
on: push
jobs:
  a:
    runs-on: x
    steps: [{run: exit 1}]
  b:
    needs: a
    runs-on: x
    steps: [{run: echo b}]
  report:
    needs: [a, b]
    if: always()
    runs-on: x
    steps:
      - run: echo "a=${{ needs.a.result }} b=${{ needs.b.result }}"
  on-failure:
    needs: a
    if: failure()
    runs-on: x
    steps: [{run: echo failed}]
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(1);
    assert_eq!(run.job_status("b"), "skipped");
    assert_eq!(run.job_status("report"), "success");
    assert!(
        run.lines_of("report")
            .contains(&"a=failure b=skipped".to_string())
    );
    assert_eq!(run.job_status("on-failure"), "success");
}

#[test]
fn step_timeout_kills_the_step_and_fails_the_job() {
    let repo = Repo::new();
    repo.workflow(
        "t.yml",
        r#"
on: push
jobs:
  slow:
    runs-on: x
    steps:
      - name: hang
        timeout-minutes: 0.01
        run: |
          trap '' TERM
          sleep 30
      - if: always()
        run: echo after timeout
"#,
    );
    repo.commit();
    let run = repo.exec(&["--kill-grace", "0.2"]);
    run.code(1);
    let step = &run.job("slow")["steps"][0];
    assert_eq!(step["status"], "failure");
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after"),
        "{step}"
    );
    assert!(step["duration_ms"].as_u64().unwrap() < 20_000);
    assert!(run.lines_of("slow").contains(&"after timeout".to_string()));
}

#[test]
fn job_timeout_fails_the_job_with_a_reason() {
    let repo = Repo::new();
    repo.workflow(
        "t.yml",
        "on: push\njobs:\n  slow:\n    runs-on: x\n    timeout-minutes: 0.01\n    steps:\n      - run: sleep 30\n",
    );
    repo.commit();
    let run = repo.exec(&["--kill-grace", "0.2"]);
    run.code(1);
    assert_eq!(run.job_status("slow"), "failure");
    assert!(
        run.job("slow")["reason"]
            .as_str()
            .unwrap()
            .starts_with("timed out after")
    );
}

#[test]
fn jobs_get_fresh_workspaces_of_the_working_tree() {
    let repo = Repo::new();
    repo.file(".gitignore", "ignored.txt\n")
        .file("tracked.txt", "committed\n")
        .workflow(
            "w.yml",
            r#"
on: push
jobs:
  writer:
    runs-on: x
    steps:
      - run: echo scribble > scribble.txt && cat tracked.txt untracked.txt && test ! -e ignored.txt && test ! -e .git
  reader:
    runs-on: x
    steps:
      - run: test ! -e scribble.txt && echo clean
"#,
        );
    repo.commit();
    repo.file("tracked.txt", "uncommitted change\n")
        .file("untracked.txt", "new file\n")
        .file("ignored.txt", "x");
    let run = repo.exec(&[]);
    run.code(0);
    let lines = run.lines_of("writer");
    assert!(
        lines.contains(&"uncommitted change".to_string())
            && lines.contains(&"new file".to_string())
    );
    assert!(run.lines_of("reader").contains(&"clean".to_string()));
    assert!(
        !repo.path().join("scribble.txt").exists(),
        "fresh workspaces must not touch the tree"
    );

    // --in-place runs in the working tree itself.
    let run = repo.exec(&["--in-place", "--job", "writer"]);
    assert_eq!(run.job_status("writer"), "failure"); // .git exists in place
    assert!(repo.path().join("scribble.txt").exists());
}

#[test]
fn env_files_path_files_and_env_layering() {
    let repo = Repo::new();
    repo.file("bin/hello-tool", "#!/bin/sh\necho tool says hi\n");
    repo.workflow(
        "e.yml",
        r#"
on: push
env:
  LEVEL: workflow
  KEEP: wf
jobs:
  e:
    runs-on: x
    env:
      LEVEL: job
    steps:
      - run: |
          chmod +x bin/hello-tool
          echo "FROM_STEP=set earlier" >> "$KILN_ENV"
          echo "$PWD/bin" >> "$GITHUB_PATH"
      - run: |
          echo "level=$LEVEL keep=$KEEP from=$FROM_STEP ctx=${{ env.FROM_STEP }}"
          hello-tool
      - env:
          LEVEL: step
        run: echo "level=$LEVEL ci=$CI ws-set=${KILN_WORKSPACE:+yes} gh=${GITHUB_WORKSPACE:+yes}"
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    let lines = run.lines_of("e");
    assert!(
        lines.contains(&"level=job keep=wf from=set earlier ctx=set earlier".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"tool says hi".to_string()));
    assert!(lines.contains(&"level=step ci=true ws-set=yes gh=yes".to_string()));
}

#[test]
fn shells_and_working_directory() {
    let repo = Repo::new();
    repo.file("sub/marker", "m");
    repo.workflow(
        "s.yml",
        r#"
on: push
defaults:
  run:
    working-directory: sub
jobs:
  s:
    runs-on: x
    steps:
      - shell: python
        run: |
          import os
          print("py", os.path.basename(os.getcwd()))
      - shell: sh
        run: echo "sh $(cat marker)"
      - run: false; echo "bash -e stops before this"
      - if: always()
        working-directory: .
        run: test -d sub && echo root
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(1);
    let lines = run.lines_of("s");
    assert!(
        lines.contains(&"py sub".to_string()) && lines.contains(&"sh m".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l == "bash -e stops before this"));
    assert!(lines.contains(&"root".to_string()));
}

#[test]
fn dispatch_inputs_are_typed_and_flags_reach_expressions() {
    let repo = Repo::new();
    repo.workflow(
        "d.yml",
        r#"
on:
  workflow_dispatch:
    inputs:
      level:
        type: number
        default: 1
      target:
        type: choice
        options: [staging, prod]
        required: true
jobs:
  d:
    runs-on: x
    steps:
      - run: echo "level=${{ inputs.level }} plus=${{ inputs.level > 2 }} target=${{ inputs.target }}"
      - if: kiln.flags.extra
        run: echo extra tier
"#,
    );
    repo.commit();
    let run = repo.exec(&[
        "--event",
        "workflow_dispatch",
        "--input",
        "level=3",
        "--input",
        "target=prod",
        "--flag",
        "extra",
    ]);
    run.code(0);
    let lines = run.lines_of("d");
    assert!(
        lines.contains(&"level=3 plus=true target=prod".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"extra tier".to_string()));

    let bad = repo.exec(&[
        "--event",
        "workflow_dispatch",
        "--input",
        "level=high",
        "--input",
        "target=prod",
    ]);
    bad.code(2);
    assert!(
        bad.stderr
            .contains("input `level` is a number: `high` is not a number"),
        "{}",
        bad.stderr
    );
    let bad = repo.exec(&["--event", "workflow_dispatch", "--input", "target=dev"]);
    bad.code(2);
    assert!(
        bad.stderr.contains("must be one of `staging`, `prod`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn job_selection_runs_needs_too() {
    let repo = Repo::new();
    repo.workflow(
        "j.yml",
        "on: push\njobs:\n  a: {runs-on: x, steps: [{run: echo a}]}\n  b: {runs-on: x, needs: a, steps: [{run: echo b}]}\n  c: {runs-on: x, steps: [{run: echo c}]}\n",
    );
    repo.commit();
    let run = repo.exec(&["--job", "b"]);
    run.code(0);
    let mut names: Vec<&str> = run
        .jobs()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let bad = repo.exec(&["--workflow", "j", "--job", "bb"]);
    bad.code(2);
    assert!(
        bad.stderr.contains("has no job `bb`; did you mean `b`?"),
        "{}",
        bad.stderr
    );
}

#[test]
fn weights_keep_a_heavy_job_alone() {
    let repo = Repo::new();
    repo.workflow(
        "w.yml",
        r#"
on: push
jobs:
  light1: {runs-on: x, steps: [{run: "true"}]}
  heavy: {runs-on: x, weight: 2, steps: [{run: "true"}]}
  light2: {runs-on: x, steps: [{run: "true"}]}
  light3: {runs-on: x, steps: [{run: "true"}]}
"#,
    );
    repo.commit();
    let run = repo.exec(&["--parallel", "2"]);
    run.code(0);
    let span = |j: &str| {
        let job = run.job(j);
        (
            job["started_at"].as_str().unwrap().to_owned(),
            job["finished_at"].as_str().unwrap().to_owned(),
        )
    };
    let (hs, he) = span("heavy");
    for light in ["light1", "light2", "light3"] {
        let (s, e) = span(light);
        assert!(e <= hs || s >= he, "{light} overlapped the heavy job");
    }
}

#[test]
fn broken_yaml_is_reported_before_anything_else() {
    let repo = Repo::new();
    repo.workflow(
        "y.yml",
        "on: push\njobs:\n  a: {runs-on: x, steps: [{run: echo \"${{ github.sha }}\"}]}\n",
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(2);
    assert!(
        run.stderr.contains(".kiln/workflows/y.yml:"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("no workflow runs on"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_workflow_exits_2_with_diagnostics() {
    let repo = Repo::new();
    repo.workflow(
        "bad.yml",
        "on: push\njobs:\n  a:\n    runs_on: x\n    steps:\n      - run: echo hi\n",
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(2);
    assert!(
        run.stderr.contains(".kiln/workflows/bad.yml:4:5"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("runs-on"), "{}", run.stderr);
    assert!(run.results.is_none());
}

#[test]
fn hash_files_in_steps() {
    let repo = Repo::new();
    repo.file("a.lock", "1").file("b.lock", "2");
    repo.workflow(
        "h.yml",
        "on: push\njobs:\n  h:\n    runs-on: x\n    steps:\n      - run: echo \"key=${{ hashFiles('*.lock') }} none=[${{ hashFiles('*.nope') }}]\"\n",
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    let line = run
        .lines_of("h")
        .into_iter()
        .find(|l| l.starts_with("key="))
        .expect("line");
    let key = line
        .strip_prefix("key=")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(key.len(), 64);
    assert!(line.ends_with("none=[]"));
}

#[test]
fn results_document_has_phases_in_order() {
    let repo = Repo::new();
    repo.workflow("p.yml", "on: push\njobs:\n  p:\n    runs-on: x\n    steps:\n      - name: one\n        run: echo 1\n      - name: two\n        run: echo 2\n");
    let sha = repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    let doc = run.results.as_ref().unwrap();
    assert_eq!(doc["schema"], "kiln.results/v1");
    assert_eq!(doc["runs"][0]["commit"], sha.as_str());
    assert_eq!(doc["runs"][0]["status"], "success");
    let kinds: Vec<&str> = run.job("p")["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["queue-wait", "workspace", "step", "step", "cleanup"]
    );
    let names: Vec<&str> = run.job("p")["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(&names[2..4], ["one", "two"]);
}

#[test]
fn ctrl_c_cancels_running_jobs_and_runs_always_steps() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let repo = Repo::new();
    let marker = support::world::Fifo::new(&repo.path().join(".git/started"));
    let cleaned = repo.path().join(".git/cleaned");
    repo.workflow(
        "c.yml",
        &format!(
            r#"
on: push
jobs:
  long:
    runs-on: x
    steps:
      - run: echo started > {marker} && sleep 60
      - if: always()
        run: touch {cleaned}
  later:
    needs: long
    runs-on: x
    steps: [{{run: echo never}}]
"#,
            marker = marker.path.display(),
            cleaned = cleaned.display()
        ),
    );
    repo.commit();
    let json = repo.path().join(".git/r.json");
    let child = repo
        .command(&["exec", "--json", json.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Handshake: the step says on the FIFO that it has started.
    assert_eq!(marker.read("the step to start").trim(), "started");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("kill");
    let out = child.wait_with_output().expect("wait");
    let run = support::Run::from_output(out, Some(json));
    run.code(130);
    assert_eq!(run.job_status("long"), "cancelled");
    assert_eq!(run.job_status("later"), "cancelled");
    assert!(
        cleaned.exists(),
        "the always() step must run after a cancel"
    );
    let steps = run.steps("long");
    assert_eq!(steps[0].1, "cancelled");
    assert_eq!(steps[1].1, "success");
}

#[test]
fn unsupported_action_is_refused_before_running() {
    let repo = Repo::new();
    repo.workflow(
        "u.yml",
        "on: push\njobs:\n  u:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-node@v4\n",
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(2);
    assert!(run.stderr.contains("u.yml:7:15"), "{}", run.stderr);
    assert!(
        run.stderr.contains("actions/setup-node@v4"),
        "{}",
        run.stderr
    );
}

#[test]
fn background_processes_do_not_hang_the_run_and_are_stopped_at_job_end() {
    let repo = Repo::new();
    let pidfile = repo.path().join(".git/bg.pid");
    repo.workflow(
        "bg.yml",
        &format!(
            "on: push\njobs:\n  bg:\n    runs-on: x\n    steps:\n      - run: |\n          sleep 300 &\n          echo $! > {}\n          echo started\n      - run: echo next step\n",
            pidfile.display()
        ),
    );
    repo.commit();
    let run = repo.exec(&["--kill-grace", "1"]);
    run.code(0);
    assert!(run.lines_of("bg").contains(&"next step".to_string()));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The background process held stdout open; the run ended anyway, and
    // the job's end stopped it.
    // Gone, or a zombie waiting for init to reap it (it no longer runs).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next().map(str::to_owned))
        });
    assert!(
        matches!(state.as_deref(), None | Some("Z")),
        "background process {pid} survived the job (state {state:?})"
    );
}

#[test]
fn second_ctrl_c_kills_at_once() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::io::{BufRead, BufReader};

    let repo = Repo::new();
    repo.workflow(
        "c.yml",
        "on: push\njobs:\n  stubborn:\n    runs-on: x\n    steps:\n      - run: |\n          trap '' TERM\n          echo ready\n          sleep 120\n",
    );
    repo.commit();
    let mut child = repo
        .command(&["exec", "--kill-grace", "600"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = Pid::from_raw(child.id() as i32);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |needle: &str| {
        for line in lines.by_ref() {
            if line.expect("read").contains(needle) {
                return;
            }
        }
        panic!("kiln exited before printing {needle:?}");
    };
    wait_for("ready");
    kill(pid, Signal::SIGINT).unwrap();
    wait_for("cancelling running jobs");
    kill(pid, Signal::SIGINT).unwrap();
    wait_for("killing running jobs");
    // With a 600 s grace period only the second Ctrl-C can end the run.
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
}

#[test]
fn a_tolerated_matrix_failure_does_not_fail_the_run() {
    let repo = Repo::new();
    repo.workflow(
        "t.yml",
        r#"
on: push
jobs:
  test:
    runs-on: x
    continue-on-error: ${{ matrix.experimental }}
    strategy:
      fail-fast: false
      matrix:
        include:
          - {v: stable, experimental: false}
          - {v: nightly, experimental: true}
    steps:
      - run: test "${{ matrix.v }}" = stable
  after:
    needs: test
    runs-on: x
    steps:
      - run: echo "test=${{ needs.test.result }}"
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(0);
    assert_eq!(run.job_status("test (true, nightly)"), "failure");
    assert_eq!(run.job_status("test (false, stable)"), "success");
    assert!(
        run.lines_of("after").contains(&"test=success".to_string()),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.results.as_ref().unwrap()["runs"][0]["status"],
        "success"
    );
}

#[test]
fn jobs_from_several_workflows_can_be_selected() {
    let repo = Repo::new();
    repo.workflow(
        "a.yml",
        "on: push\njobs:\n  one: {runs-on: x, steps: [{run: echo one}]}\n",
    );
    repo.workflow("b.yml", "on: push\njobs:\n  two: {runs-on: x, steps: [{run: echo two}]}\n  three: {runs-on: x, steps: [{run: echo three}]}\n");
    repo.commit();
    let run = repo.exec(&["--job", "one", "--job", "two"]);
    run.code(0);
    let mut names: Vec<&str> = run
        .jobs()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
    let bad = repo.exec(&["--job", "tree"]);
    bad.code(2);
    assert!(
        bad.stderr
            .contains("no workflow has a job `tree`; did you mean `three`?"),
        "{}",
        bad.stderr
    );
}

#[test]
fn cleanup_steps_still_run_after_a_job_timeout() {
    let repo = Repo::new();
    repo.workflow(
        "t.yml",
        "on: push\njobs:\n  slow:\n    runs-on: x\n    timeout-minutes: 0.01\n    steps:\n      - run: sleep 30\n      - if: always()\n        run: echo cleaned up\n",
    );
    repo.commit();
    let run = repo.exec(&["--kill-grace", "0.2"]);
    run.code(1);
    assert!(
        run.lines_of("slow").contains(&"cleaned up".to_string()),
        "{}",
        run.stdout
    );
    assert_eq!(run.steps("slow")[1].1, "success");
}

#[test]
fn an_always_job_runs_after_ctrl_c() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::io::{BufRead, BufReader};

    let repo = Repo::new();
    repo.workflow(
        "c.yml",
        "on: push\njobs:\n  long:\n    runs-on: x\n    steps:\n      - run: echo ready && sleep 60\n  report:\n    needs: long\n    if: always()\n    runs-on: x\n    steps:\n      - run: echo \"reporting ${{ needs.long.result }}\"\n  plain:\n    needs: long\n    runs-on: x\n    steps: [{run: echo never}]\n",
    );
    repo.commit();
    let json = repo.path().join(".git/r.json");
    let mut child = repo
        .command(&["exec", "--json", json.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line.unwrap().ends_with("] ready") {
            break;
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        rest.iter().any(|l| l == "[report] reporting cancelled"),
        "{rest:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let status_of = |name: &str| {
        doc["runs"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("report"), "success");
    assert_eq!(status_of("plain"), "cancelled");
}

#[test]
fn a_failing_health_check_rolls_the_deploy_back() {
    let repo = Repo::new();
    repo.workflow(
        "d.yml",
        r#"
on: push
jobs:
  deploy:
    runs-on: x
    environment:
      name: production
      health-check:
        run: echo "checking $KILN_ENVIRONMENT"; exit 1
        retries: 1
        interval: 10ms
    steps:
      - run: echo deployed
    rollback:
      - run: echo "rollback to=[$KILN_ROLLBACK_TO] env=$KILN_ENVIRONMENT"
"#,
    );
    repo.commit();
    let run = repo.exec(&[]);
    run.code(1);
    let job = run.job("deploy");
    assert_eq!(job["status"], "failure");
    assert_eq!(job["deploy"], "rolled_back");
    assert_eq!(
        job["reason"],
        "health check failed; rolled back to (no earlier good commit)"
    );
    let names: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Run echo deployed",
            "Health check (1/2)",
            "Health check (2/2)",
            "Run echo \"rollback to=[$KILN_ROLLBACK_TO] env=$KILN_ENVIRONMENT\""
        ]
    );
    let kinds: Vec<&str> = job["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "queue-wait",
            "workspace",
            "step",
            "health-check",
            "health-check",
            "rollback",
            "cleanup"
        ]
    );
    let lines = run.lines_of("deploy");
    assert!(
        lines.contains(&"checking production".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"rollback to=[] env=production".to_string()),
        "{lines:?}"
    );
}

#[test]
fn a_github_hosted_runs_on_is_a_warning_and_the_job_still_runs_here() {
    let repo = Repo::new();
    repo.workflow(
        "ci.yml",
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ran-here\n",
    );
    let run = repo.exec(&[]);
    run.code(0);
    assert!(
        run.stderr
            .contains("warning: `ubuntu-latest` is a GitHub-hosted runner label"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(".kiln/workflows/ci.yml:4:14"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("ran-here"), "{}", run.stdout);
}
