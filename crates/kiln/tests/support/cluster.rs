//! Real server and agent processes on loopback, and a bare git remote, for
//! end-to-end tests of `kiln server`, `kiln agent` and the client commands.

#![allow(dead_code)]

use super::KILN;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare repository served over file://, with a working clone to commit from.
pub struct Remote {
    pub dir: tempfile::TempDir,
}

impl Remote {
    pub fn new() -> Remote {
        let dir = tempfile::Builder::new()
            .prefix("kiln-remote-")
            .tempdir()
            .unwrap();
        let r = Remote { dir };
        git(
            r.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(r.dir.path(), &["init", "-q", "-b", "main", "work"]);
        git(&r.work(), &["config", "user.email", "t@kiln.invalid"]);
        git(&r.work(), &["config", "user.name", "t"]);
        git(&r.work(), &["remote", "add", "origin", r.url().as_str()]);
        r
    }
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("remote.git").display())
    }
    pub fn file(&self, rel: &str, text: &str) -> &Remote {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    /// Commit everything and push; returns the commit id.
    pub fn push(&self, msg: &str) -> String {
        git(&self.work(), &["add", "-A"]);
        git(&self.work(), &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work(), &["push", "-q", "origin", "main"]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A `kiln server` process.
pub struct Server {
    pub data: PathBuf,
    pub port: u16,
    child: Option<Child>,
    pub lease_seconds: f64,
    /// Extra environment for the server process (`start_with`).
    env: Vec<(String, String)>,
    /// Everything the server printed (stdout and stderr), for tests that
    /// read its logs.
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(data: &Path, lease_seconds: f64) -> Server {
        Server::start_with(data, lease_seconds, &[])
    }

    /// With extra environment variables (they win over the defaults here).
    pub fn start_with(data: &Path, lease_seconds: f64, env: &[(&str, &str)]) -> Server {
        let mut s = Server {
            data: data.to_path_buf(),
            port: free_port(),
            child: None,
            lease_seconds,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            output: Default::default(),
        };
        s.spawn();
        s
    }

    /// What the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn spawn(&mut self) {
        let mut child = Command::new(KILN)
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data",
            ])
            .arg(&self.data)
            .env("KILN_LEASE_SECONDS", self.lease_seconds.to_string())
            .env(
                "KILN_HEARTBEAT_SECONDS",
                (self.lease_seconds / 4.0).to_string(),
            )
            .env("KILN_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kiln server");
        let stderr = child.stderr.take().unwrap();
        let sink = self.output.clone();
        let stderr_done = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        // Handshake: the server prints its address once it listens.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => {
                    // The server is gone: its stderr ends, and all of it
                    // is collected once the reader thread is done.
                    let _ = child.wait();
                    let _ = stderr_done.join();
                    panic!(
                        "kiln server exited before listening:\n{}",
                        self.output.lock().unwrap()
                    )
                }
            }
        }
        let sink = self.output.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A client command against this server with the admin token.
    pub fn kiln(&self, args: &[&str]) -> super::Run {
        self.kiln_as(&self.admin_token(), args)
    }

    pub fn kiln_as(&self, token: &str, args: &[&str]) -> super::Run {
        let out = Command::new(KILN)
            .args(args)
            .env("KILN_SERVER", self.url())
            .env("KILN_TOKEN", token)
            .env("KILN_COLOR", "never")
            .output()
            .expect("run kiln");
        super::Run::from_output(out, None)
    }

    /// `kiln ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.kiln(&all);
        run.code(0);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// Write an agent token to a file and return its path.
    pub fn agent_token_file(&self, dir: &Path) -> PathBuf {
        let run = self.kiln(&["token", "create", "--role", "agent"]);
        run.code(0);
        let path = dir.join("agent.token");
        std::fs::write(&path, run.stdout.trim()).unwrap();
        path
    }

    /// Poll `kiln show RUN --json` until `pred` holds (or fail after 60 s).
    /// Wait until the server's output has `n` lines containing `text`
    /// (it prints its decisions at warn level, such as a refused webhook).
    pub fn wait_output(&self, text: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.output();
            if out.lines().filter(|l| l.contains(text)).count() >= n {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} × {text:?} from the server:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_run(
        &self,
        run: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(&["show", run]);
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `kiln agent` process.
pub struct Agent {
    child: Child,
}

impl Agent {
    pub fn start(
        server: &Server,
        token_file: &Path,
        name: &str,
        labels: &str,
        capacity: u32,
        work: &Path,
    ) -> Agent {
        let child = Command::new(KILN)
            .args(["agent", "--server", &server.url(), "--token-file"])
            .arg(token_file)
            .args([
                "--name",
                name,
                "--capacity",
                &capacity.to_string(),
                "--work-dir",
            ])
            .arg(work.join(name))
            .args(if labels.is_empty() {
                vec![]
            } else {
                vec!["--labels", labels]
            })
            .env("KILN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kiln agent");
        Agent { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
