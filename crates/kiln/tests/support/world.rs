//! One end-to-end world for every test file that drives `kiln server` and
//! `kiln agent`: a server on loopback, a bare git remote, an agent token,
//! a scratch directory, and the client commands tests repeat (`repo add`,
//! `trigger`, waiting for a run). Built fluently, so a test says only what
//! differs:
//!
//! ```ignore
//! let w = World::builder()
//!     .lease(2.0)
//!     .workflow("ci.yml", TEXT)
//!     .push("ci")
//!     .repo(&[])
//!     .agent("a1", "", 2)
//!     .start();
//! ```
//!
//! Everything waits on state the system exposes (`kiln show`, `kiln runs`)
//! or on a handshake (`Fifo`); nothing here sleeps to let time pass.

#![allow(dead_code)]

use super::cluster::{Agent, Remote, Server};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long any wait in a world may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// One setup step, run against the started world.
type Step = Box<dyn FnOnce(&mut World)>;

/// What a world starts with; `start` makes it.
pub struct Builder {
    prefix: String,
    lease_seconds: f64,
    env: Vec<(String, String)>,
    trace_git: bool,
    /// Each step runs against the started world, in order.
    steps: Vec<Step>,
}

impl Builder {
    /// The temporary directory's name prefix (which test made it).
    pub fn prefix(mut self, prefix: &str) -> Builder {
        self.prefix = prefix.to_owned();
        self
    }

    /// The lease (and, at a quarter of it, the heartbeat) in seconds.
    pub fn lease(mut self, seconds: f64) -> Builder {
        self.lease_seconds = seconds;
        self
    }

    /// An environment variable of the server process.
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A file in the remote's work tree (committed by `push`).
    pub fn file(self, rel: &str, text: &str) -> Builder {
        let (rel, text) = (rel.to_owned(), text.to_owned());
        self.then(move |w| {
            w.remote.file(&rel, &text);
        })
    }

    /// `.kiln/workflows/NAME` in the remote's work tree.
    pub fn workflow(self, name: &str, yaml: &str) -> Builder {
        self.file(&format!(".kiln/workflows/{name}"), yaml)
    }

    /// Commit and push the work tree.
    pub fn push(self, msg: &str) -> Builder {
        let msg = msg.to_owned();
        self.then(move |w| {
            w.remote.push(&msg);
        })
    }

    /// `kiln repo add app URL EXTRA...`
    pub fn repo(self, extra: &[&str]) -> Builder {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.then(move |w| {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            w.add_repo(&extra);
        })
    }

    /// An agent the world owns (see `World::agent` for one the test holds).
    pub fn agent(self, name: &str, labels: &str, capacity: u32) -> Builder {
        let (name, labels) = (name.to_owned(), labels.to_owned());
        self.then(move |w| {
            w.keep_agent(&name, &labels, capacity);
        })
    }

    /// Have the server's git commands traced (`GIT_TRACE`) to a file, so
    /// that `World::wait_polls` can see the poller's `git ls-remote`s.
    pub fn trace_git(mut self) -> Builder {
        self.trace_git = true;
        self
    }

    fn then(mut self, step: impl FnOnce(&mut World) + 'static) -> Builder {
        self.steps.push(Box::new(step));
        self
    }

    pub fn start(self) -> World {
        let tmp = tempfile::Builder::new()
            .prefix(&self.prefix)
            .tempdir()
            .expect("tempdir");
        let trace = tmp.path().join("git.trace");
        let mut env = self.env;
        if self.trace_git {
            env.push(("GIT_TRACE".into(), trace.display().to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::start_with(&tmp.path().join("data"), self.lease_seconds, &env);
        let token_file = server.agent_token_file(tmp.path());
        let mut w = World {
            work: tmp.path().join("agents"),
            tmp,
            server,
            remote: Remote::new(),
            token_file,
            agents: Vec::new(),
        };
        for step in self.steps {
            step(&mut w);
        }
        w
    }
}

/// A running server, its remote and what tests do with them.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub server: Server,
    pub remote: Remote,
    /// An agent token (role `agent`) in a file, as `kiln agent` reads it.
    pub token_file: PathBuf,
    /// Where agents keep their work directories (one per agent name).
    pub work: PathBuf,
    agents: Vec<Agent>,
}

impl World {
    pub fn builder() -> Builder {
        Builder {
            prefix: "kiln-e2e-".into(),
            lease_seconds: 10.0,
            env: Vec::new(),
            trace_git: false,
            steps: Vec::new(),
        }
    }

    /// A world with the defaults: a 10 s lease, no repository, no agent.
    pub fn start() -> World {
        World::builder().start()
    }

    /// A scratch path outside every job's workspace (workspaces are fresh
    /// per attempt, so state that must outlive an attempt lives here).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Start an agent that the caller holds (drop or `kill` it to stop it).
    pub fn agent(&self, name: &str, labels: &str, capacity: u32) -> Agent {
        Agent::start(
            &self.server,
            &self.token_file,
            name,
            labels,
            capacity,
            &self.work,
        )
    }

    /// Start an agent that lives as long as the world.
    pub fn keep_agent(&mut self, name: &str, labels: &str, capacity: u32) {
        let a = self.agent(name, labels, capacity);
        self.agents.push(a);
    }

    /// `kiln repo add app URL EXTRA...`
    pub fn add_repo(&self, extra: &[&str]) {
        let url = self.remote.url();
        let mut args = vec!["repo", "add", "app", url.as_str()];
        args.extend_from_slice(extra);
        self.server.kiln(&args).code(0);
    }

    /// `kiln trigger app ARGS...`; the first run's id.
    pub fn trigger(&self, args: &[&str]) -> String {
        let mut all = vec!["trigger", "app"];
        all.extend_from_slice(args);
        let v = self.server.json(&all);
        v["runs"][0]["id"].to_string()
    }

    /// `kiln show RUN`.
    pub fn show(&self, run: &str) -> Value {
        self.server.json(&["show", run])
    }

    /// `kiln show RUN --results`: the results document, with every
    /// attempt of every job and its start and finish.
    pub fn results(&self, run: &str) -> Value {
        let out = self.server.kiln(&["show", run, "--results"]);
        out.code(0);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }

    /// Wait until the run is neither queued nor running.
    pub fn finished(&self, run: &str) -> Value {
        self.server.wait_run(run, "the run to finish", |v| {
            !matches!(v["status"].as_str(), Some("queued") | Some("running"))
        })
    }

    /// Wait until the run has a job with key `key` for which `pred` holds.
    pub fn wait_job(
        &self,
        run: &str,
        key: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let v = self.server.wait_run(run, what, |v| {
            v["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().any(|j| j["job"] == key && pred(j)))
        });
        job_by_key(&v, key).clone()
    }

    /// `kiln runs --repo app`, newest first.
    pub fn runs(&self) -> Vec<Value> {
        self.server
            .json(&["runs", "--repo", "app"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Poll `kiln runs` until `pred` holds.
    pub fn wait_runs(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let runs = self.runs();
            if pred(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {runs:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many `git ls-remote`s the server has started (with `trace_git`).
    fn ls_remotes(&self) -> usize {
        std::fs::read_to_string(self.scratch("git.trace"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("built-in: git ls-remote"))
            .count()
    }

    /// Wait until the poller has polled the remote `n` more times from
    /// now (needs `trace_git`). The poller is one loop that lists a
    /// remote, acts on what changed, then lists again; so once `n + 1`
    /// listings have started, `n` whole polls happened after this call,
    /// and whatever they were going to start has been started.
    /// Nothing else may list the remote meanwhile (no `repo add`).
    pub fn wait_polls(&self, n: usize) {
        let want = self.ls_remotes() + n + 1;
        let deadline = Instant::now() + DEADLINE;
        while self.ls_remotes() < want {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} polls of the remote"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The webhook secret, in a file for `--webhook-secret-file`.
    pub fn secret_file(&self, secret: &str) -> PathBuf {
        let p = self.scratch("hook.secret");
        std::fs::write(&p, format!("{secret}\n")).unwrap();
        p
    }

    /// A FIFO in the scratch directory, for a step and the test to meet at.
    pub fn fifo(&self, name: &str) -> Fifo {
        Fifo::new(&self.scratch(name))
    }
}

/// The job of a `kiln show` document whose display name is `name`.
pub fn job<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name}: {run}"))
}

/// The job of a `kiln show` document whose key is `key`.
pub fn job_by_key<'a>(run: &'a Value, key: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == key)
        .unwrap_or_else(|| panic!("no job {key}: {run}"))
}

/// A named pipe: a handshake between a step and the test. Opening it
/// blocks until the other side opens it too, so `read` returns what the
/// step wrote once it wrote it, and `write` returns once the step read.
/// Both give up after `DEADLINE` instead of hanging the test.
pub struct Fifo {
    pub path: PathBuf,
}

impl Fifo {
    pub fn new(path: &Path) -> Fifo {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo");
        assert!(made.success(), "mkfifo {}", path.display());
        Fifo {
            path: path.to_path_buf(),
        }
    }

    /// Start reading in the background (before the step can write), and
    /// get what it wrote from the returned receiver.
    pub fn reader(&self) -> FifoRead {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = self.path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read_to_string(&path));
        });
        FifoRead { rx }
    }

    /// Read what a step writes (blocks until it wrote and closed).
    pub fn read(&self, what: &str) -> String {
        self.reader().wait(what)
    }

    /// Write `text` for a step that reads the FIFO.
    pub fn write(&self, text: &str, what: &str) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, text) = (self.path.clone(), text.to_owned());
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::write(&path, text));
        });
        rx.recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("write the fifo");
    }
}

/// A read of a FIFO under way.
pub struct FifoRead {
    rx: std::sync::mpsc::Receiver<std::io::Result<String>>,
}

impl FifoRead {
    pub fn wait(self, what: &str) -> String {
        self.rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("read the fifo")
    }
}
