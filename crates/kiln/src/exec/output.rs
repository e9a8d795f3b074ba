//! What `kiln exec` prints: live step output prefixed by job, step starts
//! and ends, and the summary table. Colour only when asked for (the caller
//! decides from `--color` and whether stdout is a terminal).

use kiln_exec::port::{LogLine, Stream};
use kiln_exec::runner::JobObserver;
use kiln_model::{JobStatus, StepStatus};
use kiln_proto::results::{DeployOutcome, JobResult, StepResult};
use std::io::Write;
use std::sync::{Arc, Mutex};

const PALETTE: [u8; 6] = [36, 35, 33, 32, 34, 91];

/// Shared printer; one line is written at a time so jobs never interleave
/// inside a line.
pub struct Printer {
    pub color: bool,
    pub quiet: bool,
    out: Mutex<std::io::Stdout>,
}

impl Printer {
    pub fn new(color: bool, quiet: bool) -> Arc<Self> {
        Arc::new(Printer {
            color,
            quiet,
            out: Mutex::new(std::io::stdout()),
        })
    }

    pub fn line(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
    }

    fn paint(&self, code: u8, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn status(&self, status: JobStatus) -> String {
        let code = match status {
            JobStatus::Success => 32,
            JobStatus::Failure => 31,
            JobStatus::Cancelled => 33,
            JobStatus::Skipped | JobStatus::Queued | JobStatus::Running => 2,
        };
        self.paint(code, status.as_str())
    }

    /// A printer for one job, prefixing its lines.
    pub fn job(self: &Arc<Self>, index: usize, name: &str) -> JobPrinter {
        let prefix = self.paint(PALETTE[index % PALETTE.len()], &format!("[{name}]"));
        JobPrinter {
            printer: self.clone(),
            prefix,
        }
    }
}

pub struct JobPrinter {
    printer: Arc<Printer>,
    prefix: String,
}

impl JobPrinter {
    pub fn say(&self, text: &str) {
        self.printer.line(&format!("{} {text}", self.prefix));
    }
}

impl JobObserver for JobPrinter {
    fn step_started(&self, _number: u32, name: &str) {
        if !self.printer.quiet {
            self.say(&format!("▶ {name}"));
        }
    }

    fn line(&self, _number: u32, line: LogLine) {
        if self.printer.quiet {
            return;
        }
        let text = match line.stream {
            Stream::Stdout => line.text,
            Stream::Stderr => self.printer.dim(&line.text),
        };
        self.printer.line(&format!("{} {}", self.prefix, text));
    }

    fn step_finished(&self, r: &StepResult) {
        let dur = fmt_ms(r.duration_ms);
        let text = match (r.status, r.outcome) {
            (StepStatus::Success, StepStatus::Failure) => format!(
                "{} {} ({dur}, {}; continue-on-error)",
                self.printer.paint(33, "✗"),
                r.name,
                r.reason.as_deref().unwrap_or("failed")
            ),
            (StepStatus::Success, _) => {
                format!("{} {} ({dur})", self.printer.paint(32, "✓"), r.name)
            }
            (StepStatus::Failure, _) => format!(
                "{} {} ({dur}): {}",
                self.printer.paint(31, "✗"),
                r.name,
                r.reason.as_deref().unwrap_or("failed")
            ),
            (StepStatus::Cancelled, _) => {
                format!("{} {} (cancelled)", self.printer.paint(33, "■"), r.name)
            }
            (StepStatus::Skipped, _) => {
                if self.printer.quiet {
                    return;
                }
                self.printer.dim(&format!("- {} (skipped)", r.name))
            }
        };
        self.say(&text);
    }

    fn note(&self, text: &str) {
        self.say(&self.printer.paint(33, text));
    }
}

pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The table printed at the end of a run.
pub fn summary(printer: &Printer, jobs: &[&JobResult]) -> String {
    let name_w = jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut s = format!(
        "\n{:<name_w$}  {:<9}  {:>8}  SLOWEST STEPS\n",
        "JOB", "STATUS", "DURATION"
    );
    for j in jobs {
        let mut steps: Vec<&StepResult> =
            j.steps.iter().filter(|s| s.started_at.is_some()).collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.duration_ms));
        let slowest: Vec<String> = steps
            .iter()
            .take(2)
            .map(|s| format!("{} ({})", shorten(&s.name, 40), fmt_ms(s.duration_ms)))
            .collect();
        let status = printer.status(j.status);
        // Pad by the visible width, not the escape codes.
        let pad = 9usize.saturating_sub(j.status.as_str().len());
        let name_pad = name_w.saturating_sub(j.name.chars().count());
        let detail = match (&j.reason, slowest.is_empty()) {
            (Some(r), true) => r.clone(),
            (Some(r), false) if j.status != JobStatus::Success => {
                format!("{}; {r}", slowest.join(", "))
            }
            (Some(_) | None, _) => slowest.join(", "),
        };
        let detail = match j.deploy {
            None => detail,
            Some(d) => {
                let d = match d {
                    DeployOutcome::Healthy => "healthy",
                    DeployOutcome::RolledBack => "rolled back",
                    DeployOutcome::RollbackFailed => "rollback failed",
                    DeployOutcome::Unhealthy => "unhealthy",
                };
                format!("[deploy: {d}] {detail}")
            }
        };
        s.push_str(&format!(
            "{}{}  {status}{}  {:>8}  {detail}\n",
            j.name,
            " ".repeat(name_pad),
            " ".repeat(pad),
            fmt_ms(j.duration_ms),
        ));
    }
    s
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
