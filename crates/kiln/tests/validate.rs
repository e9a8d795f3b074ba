//! `kiln validate` through the real binary.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{KILN, Repo};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/workflows")
}

#[test]
fn real_workflows_report_exactly_their_unsupported_actions() {
    let out = Command::new(KILN)
        .args(["validate", "--json"])
        .arg(fixtures())
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], false);
    assert_eq!(report["files"].as_array().unwrap().len(), 4);
    let all = report["diagnostics"].as_array().unwrap();
    // Warnings: GitHub-hosted runner labels, each with its file:line:col
    // and how kiln serves it.
    let (warnings, diags): (Vec<_>, Vec<_>) = all.iter().partition(|d| d["severity"] == "warning");
    assert!(
        !warnings.is_empty(),
        "the real workflows run on ubuntu-latest"
    );
    for w in &warnings {
        let msg = w["message"].as_str().unwrap();
        assert!(msg.ends_with("is a GitHub-hosted runner label"), "{w}");
        assert!(
            w["help"].as_str().unwrap().contains("[labels.aliases]"),
            "{w}"
        );
        assert!(w["loc"]["line"].as_u64().unwrap() > 0, "{w}");
    }
    assert!(!diags.is_empty());
    for d in &diags {
        let msg = d["message"].as_str().unwrap();
        assert!(
            msg.starts_with("action `") && msg.ends_with("` is not supported by kiln"),
            "unexpected diagnostic: {d}"
        );
        assert_eq!(d["severity"], "error");
    }
    // One per unsupported `uses:` line in the four files: count them from the
    // files themselves, so the test does not restate a hard-coded answer.
    let mut expected = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            expected += text
                .lines()
                .filter_map(|l| {
                    l.trim_start()
                        .trim_start_matches("- ")
                        .strip_prefix("uses:")
                })
                .filter(|u| !u.trim().starts_with("actions/checkout@"))
                .count();
        }
    }
    assert_eq!(diags.len(), expected);
}

#[test]
fn text_output_points_at_file_line_col_with_a_hint() {
    let repo = Repo::new();
    repo.workflow(
        "ci.yml",
        "on: push\njobs:\n  build:\n    runs-on: x\n    neds: test\n    steps:\n      - run: echo ${{ matrix.os ==  }}\n",
    );
    let run = repo.kiln(&["validate"]);
    run.code(2);
    assert!(
        run.stdout.contains(".kiln/workflows/ci.yml:5:5"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("did you mean `needs`?"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(".kiln/workflows/ci.yml:7:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("2 errors in 1 workflow file"),
        "{}",
        run.stderr
    );
}

#[test]
fn valid_files_exit_0() {
    let repo = Repo::new();
    repo.workflow(
        "ok.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo ok\n",
    );
    let run = repo.kiln(&["validate"]);
    run.code(0);
    assert!(run.stderr.contains("1 workflow file valid"));
}

#[test]
fn missing_path_is_a_usage_error() {
    let repo = Repo::new();
    let run = repo.kiln(&["validate", "nope.yml"]);
    run.code(2);
    assert!(
        run.stderr.contains("nope.yml: no such file or directory"),
        "{}",
        run.stderr
    );
}
