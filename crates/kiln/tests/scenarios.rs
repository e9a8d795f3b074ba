//! Scenarios as data: every folder under `tests/scenarios/` holds a
//! repository's `.kiln/workflows/` and an `expected.toml` that says what
//! to do (one trigger per `[[run]]`, each on a commit of its own) and what
//! must come of it: each run's status, each job's status (the set of job
//! names is exact, so a matrix's expansion is checked too), and ordering
//! constraints read from the server's own start and finish timestamps
//! (`kiln show RUN --results`), never from the test's clock.
//!
//! The runner drives the real server and agent through the shared harness
//! (`support::world`). Waits are on state the server exposes (a job
//! running, a run or job waiting); nothing sleeps. A folder must be listed
//! below (`scenario!`), and `every_folder_is_a_scenario` fails when one
//! is not, so a new folder cannot be silently skipped.

mod support;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::world::World;

/// `expected.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// The one agent's capacity (default 4: room for parallel jobs, so
    /// only the rules under test keep jobs apart).
    #[serde(default = "default_capacity")]
    capacity: u32,
    #[serde(default)]
    run: Vec<RunSpec>,
    /// `then` starts at or after `first` finishes.
    #[serde(default)]
    after: Vec<After>,
    /// No two of these jobs ran at the same time.
    #[serde(default)]
    serial: Vec<Serial>,
}

fn default_capacity() -> u32 {
    4
}

/// One trigger, and what must come of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunSpec {
    /// Files written into the work tree before this run's commit.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Right after the trigger, the run waits for this (`group`, …).
    waiting: Option<String>,
    /// Right after the trigger, these jobs (by key) wait for this
    /// (`environment`, `approval`, …).
    #[serde(default)]
    job_waiting: BTreeMap<String, String>,
    /// Before the next trigger, this job (by key) is running.
    running: Option<String>,
    /// The run's final status.
    status: String,
    /// Every job's final status, by display name; no other job exists.
    jobs: BTreeMap<String, String>,
}

/// A job is named `RUN:NAME`: the 1-based `[[run]]` and the job's
/// display name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct After {
    first: String,
    then: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Serial {
    jobs: Vec<String>,
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// Copy `from` into the remote's work tree, keeping relative paths.
fn copy_tree(w: &World, from: &Path, rel: &Path) {
    for entry in std::fs::read_dir(from.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let rel = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(w, from, &rel);
        } else if rel != Path::new("expected.toml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            w.remote.file(rel.to_str().unwrap(), &text);
        }
    }
}

/// One attempt's span by the server's clock: (started, finished).
type Span = (jiff::Timestamp, jiff::Timestamp);

fn run_scenario(name: &str) {
    let dir = scenarios_dir().join(name);
    let text = std::fs::read_to_string(dir.join("expected.toml")).unwrap();
    let expected: Expected =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{name}/expected.toml: {e}"));

    let mut w = World::builder()
        .prefix(&format!("kiln-scenario-{name}-"))
        .start();
    copy_tree(&w, &dir, Path::new(""));
    w.remote.push("workflows");
    // No polling: every run is the scenario's own trigger.
    w.add_repo(&["--poll-interval", "0"]);
    w.keep_agent("a1", "", expected.capacity);

    let mut runs = Vec::new();
    for (i, spec) in expected.run.iter().enumerate() {
        for (file, text) in &spec.files {
            w.remote.file(file, text);
        }
        let commit = w.remote.push(&format!("run {}", i + 1));
        let run = w.trigger(&["--commit", &commit]);
        if let Some(kind) = &spec.waiting {
            w.server
                .wait_run(&run, &format!("run {} to wait for {kind}", i + 1), |v| {
                    v["waiting"]["kind"] == kind.as_str()
                });
        }
        for (key, kind) in &spec.job_waiting {
            w.wait_job(&run, key, &format!("{key} to wait for {kind}"), |j| {
                j["waiting"]["kind"] == kind.as_str()
            });
        }
        if let Some(key) = &spec.running {
            w.wait_job(&run, key, &format!("{key} to run"), |j| {
                j["status"] == "running"
            });
        }
        runs.push(run);
    }

    let mut spans: BTreeMap<String, Option<Span>> = BTreeMap::new();
    for (i, (run, spec)) in runs.iter().zip(&expected.run).enumerate() {
        let done = w.finished(run);
        assert_eq!(
            done["status"],
            spec.status.as_str(),
            "run {}: {done}",
            i + 1
        );
        let names: Vec<&str> = done["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = spec.jobs.keys().map(String::as_str).collect();
        let mut got = names.clone();
        got.sort_unstable();
        assert_eq!(got, want, "run {}'s jobs: {done}", i + 1);
        for (job, status) in &spec.jobs {
            let j = support::world::job(&done, job);
            assert_eq!(
                j["status"],
                status.as_str(),
                "run {} job {job}: {done}",
                i + 1
            );
        }
        // The last attempt of each job, by the server's clock.
        let results = w.results(run);
        for j in results["jobs"].as_array().unwrap() {
            let at = |k: &str| j[k].as_str().map(|s| s.parse::<jiff::Timestamp>().unwrap());
            let span = at("started_at").zip(at("finished_at"));
            spans.insert(format!("{}:{}", i + 1, j["name"].as_str().unwrap()), span);
        }
    }
    let span = |job: &str| -> Span {
        spans
            .get(job)
            .unwrap_or_else(|| panic!("no job {job}: {spans:?}"))
            .unwrap_or_else(|| panic!("{job} never ran: {spans:?}"))
    };
    for a in &expected.after {
        let (_, first_end) = span(&a.first);
        let (then_start, _) = span(&a.then);
        assert!(
            then_start >= first_end,
            "{} started at {then_start}, before {} finished at {first_end}",
            a.then,
            a.first
        );
    }
    for s in &expected.serial {
        for (i, a) in s.jobs.iter().enumerate() {
            for b in &s.jobs[i + 1..] {
                let ((sa, ea), (sb, eb)) = (span(a), span(b));
                assert!(
                    ea <= sb || eb <= sa,
                    "{a} ({sa}..{ea}) overlapped {b} ({sb}..{eb})"
                );
            }
        }
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run_scenario(&stringify!($name).replace('_', "-"));
            }
        )*
    };
}

scenarios! {
    diamond_with_a_failing_branch,
    matrix_include_exclude_fail_fast,
    concurrency_group_runs_in_order,
    cancel_in_progress,
    deploys_of_one_environment_are_serial,
    continue_on_error,
}

#[test]
fn every_folder_is_a_scenario() {
    let mut folders: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().replace('-', "_"))
        .collect();
    folders.sort();
    let mut listed: Vec<String> = LISTED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(folders, listed, "list every folder in `scenarios!`");
}
