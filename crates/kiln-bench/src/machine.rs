//! What the machine is, and how much CPU time this process and its waited-for
//! children have used, both from `/proc` (Linux). Anything unreadable is
//! reported as unknown rather than failing the benchmark.

use serde::Serialize;
use std::process::Command;
use std::time::Duration;

/// The machine a benchmark ran on, for the write-up.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs this process may use (`nproc`).
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    /// The load average when the benchmark started: other work on the
    /// machine, which the same-run baselines are there to absorb.
    pub load_average: Option<String>,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name") || l.starts_with("Model"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<f64>().ok())
            })
            .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
        let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib,
            kernel: read("/proc/sys/kernel/osrelease"),
            load_average: read("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), {} GiB, Linux {}, load average {}",
            self.cpus,
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.memory_gib.map_or("?".into(), |g| g.to_string()),
            self.kernel.as_deref().unwrap_or("?"),
            self.load_average.as_deref().unwrap_or("?"),
        )
    }
}

/// Reads CPU time (user + system) of this process plus its waited-for
/// children, from `/proc/self/stat`, in clock ticks.
pub struct CpuClock {
    tick: Duration,
}

impl CpuClock {
    pub fn new() -> CpuClock {
        // `sysconf(_SC_CLK_TCK)` without libc: ask getconf, else Linux's 100.
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100);
        CpuClock {
            tick: Duration::from_secs(1) / hz,
        }
    }

    /// CPU time used so far by this process and the children it has
    /// waited for; `None` without `/proc`.
    pub fn now(&self) -> Option<Duration> {
        let (own, children) = self.of("self")?;
        Some(own + children)
    }

    /// CPU time (user + system) used so far by process `pid` (`"self"` for
    /// this one), and separately by the children it has waited for.
    pub fn of(&self, pid: &str) -> Option<(Duration, Duration)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime..cstime are fields 14..17.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |range: std::ops::Range<usize>| -> Option<Duration> {
            let t: u64 = fields
                .get(range)?
                .iter()
                .map(|f| f.parse::<u64>().ok())
                .sum::<Option<u64>>()?;
            Some(self.tick * u32::try_from(t).ok()?)
        };
        Some((ticks(11..13)?, ticks(13..15)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_waited_children() {
        let clock = CpuClock::new();
        let before = clock.now().expect("/proc/self/stat");
        // Burn some CPU in a child; its time shows once it is waited for.
        let status = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(clock.now().unwrap() >= before);
    }
}
