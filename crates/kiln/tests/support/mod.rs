//! A fluent harness around the real `kiln` binary: a temporary git
//! repository, workflow files, a command, and helpers to read the results
//! document it wrote.

#![allow(dead_code)]

pub mod cluster;
pub mod fake_forge;
pub mod hooks;
pub mod world;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KILN: &str = env!("CARGO_BIN_EXE_kiln");

pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// An empty git repository with a committer configured.
    pub fn new() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-")
            .tempdir()
            .expect("tempdir");
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@kiln.invalid"]);
        repo.git(&["config", "user.name", "kiln test"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, contents: &str) -> &Repo {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, contents).expect("write");
        self
    }

    pub fn workflow(&self, name: &str, yaml: &str) -> &Repo {
        self.file(&format!(".kiln/workflows/{name}"), yaml)
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn commit(&self) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "test", "--allow-empty"]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KILN);
        c.current_dir(self.path())
            .args(args)
            .env("KILN_COLOR", "never")
            .env_remove("NO_COLOR");
        c
    }

    pub fn kiln(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run kiln");
        Run::from_output(out, None)
    }

    /// `kiln exec ARGS --json FILE`, with the results document parsed.
    pub fn exec(&self, args: &[&str]) -> Run {
        let json = self.path().join(".git/kiln-results.json");
        let _ = std::fs::remove_file(&json);
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        let json_s = json.display().to_string();
        all.extend_from_slice(&["--json", &json_s]);
        let out = self.command(&all).output().expect("run kiln");
        Run::from_output(out, Some(json))
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub results: Option<Value>,
}

impl Run {
    pub fn from_output(out: Output, json: Option<PathBuf>) -> Run {
        let results = json.filter(|p| p.exists()).map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p).expect("read json"))
                .expect("parse json")
        });
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            results,
        }
    }

    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn jobs(&self) -> Vec<&Value> {
        let r = self.results.as_ref().expect("no results document");
        r["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .flat_map(|run| run["jobs"].as_array().expect("jobs"))
            .collect()
    }

    /// The job result whose display name is `name`.
    pub fn job(&self, name: &str) -> &Value {
        self.jobs()
            .into_iter()
            .find(|j| j["name"] == name)
            .unwrap_or_else(|| panic!("no job named {name:?}; stdout:\n{}", self.stdout))
    }

    pub fn job_status(&self, name: &str) -> String {
        self.job(name)["status"]
            .as_str()
            .expect("status")
            .to_owned()
    }

    /// (name, status, outcome) of each step of a job.
    pub fn steps(&self, job: &str) -> Vec<(String, String, String)> {
        self.job(job)["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_owned(),
                    s["status"].as_str().unwrap_or("").to_owned(),
                    s["outcome"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Step output lines of a job, without the `[job]` prefix.
    pub fn lines_of(&self, job: &str) -> Vec<String> {
        let prefix = format!("[{job}] ");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }
}
