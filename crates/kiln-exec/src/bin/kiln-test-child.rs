//! A child program for the process executor's tests (habit 8): it does one
//! scripted thing per mode so that tests control exactly what a step does,
//! and it announces the moments tests wait for ("ready", pids) on stdout so
//! that tests synchronise on lines, never on sleeps.
//!
//! Modes (`kiln-test-child MODE [ARG]`):
//! - `lines N`: prints `line 1` … `line N` on stdout;
//! - `exit K`: exits with code K;
//! - `stderr`: prints `out 1`, `out 2` on stdout and `err 1`, `err 2` on stderr;
//! - `no-newline`: prints `first\nlast` (no final newline);
//! - `crlf`: prints `a\r\nb\r\n`;
//! - `invalid-utf8`: prints `ok \xff end\n`;
//! - `long-line N`: prints N `x` bytes and a newline;
//! - `env`: prints its environment, `KEY=VALUE` per line, sorted;
//! - `pwd`: prints its working directory;
//! - `signal N`: raises signal N;
//! - `pid`: prints `pid P` and `pgid G` (its process group) and exits 0;
//! - `sleep`: prints `pid P`, `ready`, then sleeps (SIGTERM ends it);
//! - `ignore-term`: blocks SIGTERM, prints `pid P`, `ready`, then prints
//!   `got SIGTERM` for every SIGTERM and never ends by itself;
//! - `grandchild [ignore-term]`: starts a silent sleeper that inherits
//!   stdout (in `ignore-term` mode it blocks SIGTERM), prints
//!   `grandchild P`, `ready` and exits 0;
//! - `tree [ignore-term]`: like `grandchild`, but then prints `pid P`, `pgid G`,
//!   `ready` and sleeps (SIGTERM ends it, not its grandchild in
//!   `ignore-term` mode);
//! - `background`: starts a background process that inherits stdout, prints
//!   `background P` and exits 0; the background process blocks SIGUSR1,
//!   prints `bg ready`, waits for SIGUSR1, prints `bg after` and sleeps.
//! - `container-job IMAGE DIR LABEL`: starts a container job (the container
//!   executor, workspace and temp under DIR, labelled LABEL), runs a
//!   sleeping step in it, prints `ready` once the step runs, and waits to be
//!   killed: what an agent SIGKILLed mid-job leaves behind.
//! - `process-job DIR`: starts a process job (the process executor,
//!   workspace DIR), runs `kiln-test-child tree ignore-term` as its step,
//!   prints the step's lines (`grandchild P`, `pid P`, `ready`) and waits
//!   to be killed: an agent SIGKILLed mid-step.

use std::io::Write;
use std::process::{Command, ExitCode};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal, raise};

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Blocks `signal` in this (single-threaded) process: it stays pending
/// instead of being delivered, which ignores it without a signal handler.
fn block(signal: Signal) -> SigSet {
    let mut set = SigSet::empty();
    set.add(signal);
    set.thread_block().expect("block signal");
    set
}

fn spawn_self(args: &[&str]) -> u32 {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .args(args)
        .spawn()
        .expect("spawn self")
        .id()
}

fn number(arg: Option<&String>) -> u64 {
    arg.and_then(|n| n.parse().ok())
        .expect("a numeric argument")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let arg = args.get(1);
    let mut out = std::io::stdout().lock();
    match mode {
        "lines" => {
            for i in 1..=number(arg) {
                writeln!(out, "line {i}").unwrap();
            }
        }
        "exit" => {
            let code = arg
                .and_then(|k| k.parse::<u8>().ok())
                .expect("an exit code");
            return ExitCode::from(code);
        }
        "stderr" => {
            writeln!(out, "out 1").unwrap();
            eprintln!("err 1");
            writeln!(out, "out 2").unwrap();
            eprintln!("err 2");
        }
        "no-newline" => {
            write!(out, "first\nlast").unwrap();
        }
        "crlf" => {
            write!(out, "a\r\nb\r\n").unwrap();
        }
        "invalid-utf8" => {
            out.write_all(b"ok \xff end\n").unwrap();
        }
        "long-line" => {
            let line = vec![b'x'; number(arg) as usize];
            out.write_all(&line).unwrap();
            out.write_all(b"\n").unwrap();
        }
        "env" => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            for (key, value) in vars {
                writeln!(out, "{key}={value}").unwrap();
            }
        }
        "pwd" => {
            let dir = std::env::current_dir().expect("current_dir");
            writeln!(out, "{}", dir.display()).unwrap();
        }
        "signal" => {
            let number = number(arg) as i32;
            let signal = Signal::try_from(number).expect("a signal number");
            out.flush().unwrap();
            raise(signal).expect("raise");
            // Only reached if the signal does not end the process.
            return ExitCode::from(99);
        }
        "pid" => {
            writeln!(out, "pid {}", std::process::id()).unwrap();
            writeln!(out, "pgid {}", nix::unistd::getpgrp()).unwrap();
        }
        "sleep" => {
            writeln!(out, "pid {}", std::process::id()).unwrap();
            writeln!(out, "ready").unwrap();
            drop(out);
            sleep_forever();
        }
        "ignore-term" => {
            let term = block(Signal::SIGTERM);
            writeln!(out, "pid {}", std::process::id()).unwrap();
            writeln!(out, "ready").unwrap();
            loop {
                term.wait().expect("sigwait");
                writeln!(out, "got SIGTERM").unwrap();
            }
        }
        "hold" => {
            if arg.map(String::as_str) == Some("ignore-term") {
                block(Signal::SIGTERM);
            }
            sleep_forever();
        }
        "grandchild" | "tree" => {
            let hold: Vec<&str> = match arg.map(String::as_str) {
                Some("ignore-term") => vec!["hold", "ignore-term"],
                _ => vec!["hold"],
            };
            let pid = spawn_self(&hold);
            writeln!(out, "grandchild {pid}").unwrap();
            if mode == "tree" {
                writeln!(out, "pid {}", std::process::id()).unwrap();
                writeln!(out, "pgid {}", nix::unistd::getpgrp()).unwrap();
                writeln!(out, "ready").unwrap();
                drop(out);
                sleep_forever();
            }
            writeln!(out, "ready").unwrap();
        }
        "background" => {
            let pid = spawn_self(&["bg-wait"]);
            writeln!(out, "background {pid}").unwrap();
        }
        "bg-wait" => {
            let usr1 = block(Signal::SIGUSR1);
            writeln!(out, "bg ready").unwrap();
            usr1.wait().expect("sigwait");
            writeln!(out, "bg after").unwrap();
            drop(out);
            sleep_forever();
        }
        "container-job" => {
            drop(out);
            container_job(&args[1..]);
        }
        "process-job" => {
            drop(out);
            process_job(&args[1..]);
        }
        other => {
            eprintln!("kiln-test-child: unknown mode {other:?}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn container_job(args: &[String]) -> ! {
    use kiln_exec::container::spec::{ContainerSpec, JobContainers};
    use kiln_exec::container::{ContainerExecutor, EngineSlot};
    use kiln_exec::port::{Cancel, Executor, JobSpec, LogLine, LogSink, StepSpec};
    use std::path::Path;
    use std::sync::Arc;

    struct Ready;
    impl LogSink for Ready {
        fn line(&self, line: LogLine) {
            if line.text == "ready" {
                println!("ready");
            }
        }
    }

    let [image, dir, label] = args else {
        panic!("container-job IMAGE DIR LABEL");
    };
    let dir = Path::new(dir);
    let (ws, temp) = (dir.join("ws"), dir.join("tmp"));
    std::fs::create_dir_all(&ws).expect("workspace");
    std::fs::create_dir_all(&temp).expect("temp");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let plan = JobContainers {
            container: Some(ContainerSpec {
                image: image.clone(),
                ..Default::default()
            }),
            services: Vec::new(),
            weight: 1,
        };
        let executor = ContainerExecutor::new(
            Arc::new(EngineSlot::new()),
            Arc::default(),
            Ok(plan),
            temp,
            Vec::new(),
        );
        let mut job = executor
            .start_job(&JobSpec {
                workspace: ws.clone(),
                label: label.clone(),
            })
            .await
            .expect("start_job");
        let step = StepSpec {
            argv: vec!["sh".into(), "-c".into(), "echo ready; sleep 300".into()],
            env: Vec::new(),
            cwd: ws,
            timeout: None,
            kill_grace: std::time::Duration::from_secs(1),
        };
        job.run_step(step, Arc::new(Ready), &Cancel::default())
            .await;
    });
    sleep_forever();
}

fn process_job(args: &[String]) -> ! {
    use kiln_exec::port::{Cancel, Executor, JobSpec, LogLine, LogSink, StepSpec};
    use kiln_exec::process::ProcessExecutor;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// The step's lines, on this process's stdout (line-buffered).
    struct Forward;
    impl LogSink for Forward {
        fn line(&self, line: LogLine) {
            println!("{}", line.text);
        }
    }

    let [dir] = args else {
        panic!("process-job DIR");
    };
    let workspace = PathBuf::from(dir);
    let exe = std::env::current_exe().expect("current_exe");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut job = ProcessExecutor::new()
            .start_job(&JobSpec {
                workspace: workspace.clone(),
                label: "process-job".to_owned(),
            })
            .await
            .expect("start_job");
        let step = StepSpec {
            argv: vec![
                exe.display().to_string(),
                "tree".into(),
                "ignore-term".into(),
            ],
            env: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
            cwd: workspace,
            timeout: None,
            kill_grace: Duration::from_secs(1),
        };
        // The step never ends by itself: this process is killed first.
        job.run_step(step, Arc::new(Forward), &Cancel::default())
            .await;
    });
    sleep_forever();
}
