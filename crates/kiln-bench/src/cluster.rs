//! Real `kiln server` and `kiln agent` processes on loopback for the server
//! benchmarks, started the way `crates/kiln/tests/support/cluster.rs`
//! starts them: a temporary data directory, a free port, `KILN_LOG=warn`,
//! the handshake on the server's "listening on" line. Also the pieces the
//! benchmarks share: a git repository served over `file://`, marker files
//! written by steps, wall-clock timestamps, and RSS from `/proc`.

use crate::fixture;
use crate::http::Api;
use anyhow::{Context, Result, bail};
use kiln_proto::api::{AddRepo, AgentInfo, CreateToken, CreatedToken, RepoInfo, Role};
use kiln_proto::routes;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Microseconds since the Unix epoch, from the same clock (`CLOCK_REALTIME`)
/// as bash's `$EPOCHREALTIME` and the server's timestamps.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A jiff timestamp in microseconds since the epoch.
pub fn ts_us(t: jiff::Timestamp) -> i64 {
    t.as_microsecond()
}

/// Parses bash's `$EPOCHREALTIME` (`SECONDS.MICROS`, the decimal separator
/// of the locale) into microseconds since the epoch.
pub fn parse_epoch_realtime(s: &str) -> Option<i64> {
    let s = s.trim();
    let (secs, frac) = s.split_once(['.', ',']).unwrap_or((s, "0"));
    let frac = format!("{frac:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac.get(..6)?.parse::<i64>().ok()?)
}

/// Waits until `path` exists and has at least `lines` complete lines; its
/// lines. Polls every `poll`; an error after `timeout`.
pub fn wait_lines(
    path: &Path,
    lines: usize,
    poll: Duration,
    timeout: Duration,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let complete: Vec<String> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| l.trim_end().to_owned())
                .collect();
            if complete.len() >= lines {
                return Ok(complete);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for {} line(s) in {}",
                lines,
                path.display()
            );
        }
        std::thread::sleep(poll);
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rss {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far, KiB.
    pub hwm_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> Result<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Rss {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// A git repository with one workflow file, committed, served to the
/// server over `file://` (the server mirrors it on every trigger).
pub struct Repo {
    pub name: String,
    pub dir: PathBuf,
}

impl Repo {
    /// Creates `root/NAME` with `.kiln/workflows/bench.yml` = `workflow`.
    pub fn create(root: &Path, name: &str, workflow: &str) -> Result<Repo> {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join(".kiln/workflows"))?;
        std::fs::write(dir.join(".kiln/workflows/bench.yml"), workflow)?;
        fixture::git(&dir, &["init", "-q"])?;
        fixture::git(&dir, &["add", "-A"])?;
        fixture::git(&dir, &["commit", "-q", "-m", "kiln-bench"])?;
        Ok(Repo {
            name: name.to_owned(),
            dir,
        })
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// The commit the branch points at.
    pub fn head(&self) -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["rev-parse", "HEAD"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// A `kiln server` process, killed when dropped.
pub struct Server {
    pub data: PathBuf,
    pub port: u16,
    child: Child,
    /// The admin API.
    pub api: Api,
}

impl Server {
    /// Starts `kiln server` on a free port with `data` as its data
    /// directory and the extra environment `env`; returns once it listens.
    pub fn start(kiln: &Path, data: &Path, env: &[(&str, String)]) -> Result<Server> {
        let port = free_port()?;
        let mut cmd = Command::new(kiln);
        cmd.args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .env("KILN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its warnings (a lost agent's lease, say) go to DATA.log.
            .stderr(std::fs::File::create(data.with_extension("log"))?);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} server", kiln.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    bail!("kiln server exited before listening");
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(data.join("admin.token"))
            .context("reading the admin token")?
            .trim()
            .to_owned();
        Ok(Server {
            data: data.to_path_buf(),
            port,
            child,
            api: Api::new(format!("127.0.0.1:{port}"), token),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The bare mirror the server keeps of repository `name`.
    pub fn mirror(&self, name: &str) -> PathBuf {
        self.data.join("mirrors").join(format!("{name}.git"))
    }

    pub fn add_repo(&self, repo: &Repo) -> Result<()> {
        let _: RepoInfo = self.api.post(
            routes::REPOS,
            &AddRepo {
                name: repo.name.clone(),
                url: repo.url(),
                triggers: None,
                forge: None,
            },
        )?;
        Ok(())
    }

    /// Creates an agent token and writes it to `dir/agent.token`.
    pub fn agent_token_file(&self, dir: &Path) -> Result<PathBuf> {
        let t: CreatedToken = self.api.post(
            routes::TOKENS,
            &CreateToken {
                role: Role::Agent,
                name: Some("kiln-bench".into()),
            },
        )?;
        let path = dir.join("agent.token");
        std::fs::write(&path, t.token)?;
        Ok(path)
    }

    /// Waits until an agent named `name` is registered and online.
    pub fn wait_agent(&self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let agents: Vec<AgentInfo> = self.api.get(routes::AGENTS)?;
            if agents.iter().any(|a| a.name == name && a.online) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("agent {name} did not register within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kiln agent` process, killed (SIGKILL) when dropped.
pub struct Agent {
    pub name: String,
    child: Option<Child>,
}

impl Agent {
    pub fn start(
        kiln: &Path,
        server: &Server,
        token_file: &Path,
        name: &str,
        labels: &str,
        capacity: usize,
        work: &Path,
    ) -> Result<Agent> {
        let mut cmd = Command::new(kiln);
        cmd.args(["agent", "--server", &server.url(), "--token-file"])
            .arg(token_file)
            .args(["--name", name, "--capacity", &capacity.to_string()])
            .arg("--work-dir")
            .arg(work.join(name))
            .env("KILN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !labels.is_empty() {
            cmd.args(["--labels", labels]);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} agent", kiln.display()))?;
        Ok(Agent {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash; returns once the process is reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to the process group `pgid` (a step that outlived its agent:
/// kiln runs each step in a process group of its own).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The kiln binary's `--version`.
pub fn kiln_version(kiln: &Path) -> Result<String> {
    let out = Command::new(kiln)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} (build it, or pass --kiln PATH)", kiln.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A temporary directory for one benchmark: data directories, agent work
/// directories, repositories, markers.
pub fn scratch(prefix: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix(prefix).tempdir()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_epoch_realtime_in_any_locale() {
        assert_eq!(
            parse_epoch_realtime("1700000000.123456\n"),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(
            parse_epoch_realtime("1700000000,000001"),
            Some(1_700_000_000_000_001)
        );
        assert_eq!(
            parse_epoch_realtime("1700000000.5"),
            Some(1_700_000_000_500_000)
        );
        assert_eq!(parse_epoch_realtime("x"), None);
    }

    #[test]
    fn bash_and_this_process_share_a_clock() {
        let before = now_us();
        let out = Command::new("bash")
            .args(["-c", "printf '%s' \"$EPOCHREALTIME\""])
            .output()
            .unwrap();
        let after = now_us();
        let t = parse_epoch_realtime(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(before <= t && t <= after, "{before} {t} {after}");
    }

    #[test]
    fn reads_its_own_rss() {
        let r = Rss::of(std::process::id()).unwrap();
        assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib);
    }
}
