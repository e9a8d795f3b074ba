//! Steps do not outlive the process that runs them.
//!
//! A SIGKILLed agent cannot stop its steps: without help, their process
//! groups run on beside the retry of the job on another agent, and a
//! deploy happens twice at once. So every job holds a *lifeline*, a pipe
//! whose write end only the executor's process has (close-on-exec, so no
//! step inherits it), and every step's process group holds a *watcher*: a
//! tiny process, forked before the step's program is executed, that blocks
//! reading the pipe. When the write end closes, because the job finished
//! or because the kiln process died in any way (the kernel closes the fds
//! of a SIGKILLed process), the read returns end-of-file and the watcher
//! SIGKILLs its process group, itself included.
//!
//! The watcher:
//! - is forked through an intermediate process that exits at once, so it is
//!   not a child of the step's program (a program that waits for all of
//!   its children would otherwise wait for it forever);
//! - stays in the step's process group, so the group's id cannot be reused
//!   by an unrelated group while kiln may still signal it;
//! - keeps only the lifeline open (as fd 0): it never holds the step's
//!   stdout or stderr pipes, so it delays no reader;
//! - ignores the signals a step's stop sends (SIGTERM) and other
//!   asynchronous ones, so it guards the group through a grace period;
//!   only SIGKILL or end-of-file ends it;
//! - reports its pid to the executor, which does not count it as a member
//!   of the group (`group::group_alive`) and SIGKILLs it, with the group,
//!   once nothing else of the step is left.
//!
//! That watcher costs three forks of kiln's whole process per step (a
//! `pre_exec` hook makes std fork instead of `posix_spawn`, and every page
//! kiln then writes is copied). So where `/bin/sh` exists the watcher is a
//! shell instead ([`lead`]): spawned first (with `posix_spawn`, no fork of
//! kiln) as the leader of a new group, it ignores the stop signals, reads
//! the lifeline (its stdin) until end-of-file and then SIGKILLs its
//! group; the step is spawned next *into that group*, so it is guarded
//! from its first instruction and the group's id is pinned by the
//! watcher, as above. The forking watcher remains for a system without
//! `/bin/sh`.
//!
//! Between `fork` and `exec` only async-signal-safe calls are allowed (the
//! parent has other threads; a lock held by one of them at the fork stays
//! locked forever in the child): everything in [`start_watcher`] and below
//! is a plain system call, with no allocation.

use std::io::{PipeReader, PipeWriter, Read};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use tokio::process::Command;

/// One job's lifeline. Dropping it (at the end of `finish`, or with the
/// whole process) makes every watcher of the job kill its group.
#[derive(Debug)]
pub(crate) struct Lifeline {
    /// Read by the watchers; open here only so that each step can hand it
    /// on (close-on-exec: the step's program does not inherit it).
    read: PipeReader,
    /// Never written: its closing is the message.
    _write: PipeWriter,
}

impl Lifeline {
    pub(crate) fn new() -> std::io::Result<Lifeline> {
        // Both ends close-on-exec (std creates pipes with O_CLOEXEC).
        let (read, write) = std::io::pipe()?;
        Ok(Lifeline {
            read,
            _write: write,
        })
    }
}

/// The shell a leading watcher runs.
const SHELL: &str = "/bin/sh";

/// What it runs: ignore the signals a stop sends, wait for end-of-file on
/// stdin (the lifeline), then kill the whole group, itself included.
const WATCH: &str =
    "trap '' HUP INT QUIT TERM PIPE USR1 USR2; while read -r _; do :; done; kill -KILL 0";

/// Whether watchers can lead their groups here (`/bin/sh` exists).
pub(crate) fn can_lead() -> bool {
    static SHELL_OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHELL_OK.get_or_init(|| std::path::Path::new(SHELL).is_file())
}

/// Starts a watcher on `lifeline` as the leader of a new process group;
/// the step then joins that group (`process_group(watcher)`). Its `Child`
/// is dropped: tokio reaps it once it ends.
pub(crate) fn lead(lifeline: &Lifeline) -> std::io::Result<Pid> {
    let stdin = lifeline.read.try_clone()?;
    let child = Command::new(SHELL)
        .arg("-c")
        .arg(WATCH)
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(stdin)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_clear()
        .process_group(0)
        .kill_on_drop(false)
        .spawn()?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| std::io::Error::other("the watcher vanished"))?;
    Ok(Pid::from_raw(pid))
}

/// The report channel of one step's watcher: the intermediate process
/// writes the watcher's pid into it before the step's program starts.
pub(crate) struct Report {
    read: PipeReader,
    write: Option<PipeWriter>,
}

/// Makes `command` start a watcher on `lifeline` in the step's process
/// group, after `process_group(0)` has made the step its leader (std runs
/// `pre_exec` hooks after `setpgid`). After spawning, [`Report::watcher`]
/// tells the watcher's pid.
pub(crate) fn arm(command: &mut Command, lifeline: &Lifeline) -> std::io::Result<Report> {
    let (read, write) = std::io::pipe()?;
    let lifeline_fd = lifeline.read.as_raw_fd();
    let report_fd = write.as_raw_fd();
    // SAFETY: the hook only makes async-signal-safe calls (see the module
    // doc); the fds it names stay open until `spawn` returns, because the
    // lifeline lives as long as the job and the report until `watcher`.
    unsafe {
        command.pre_exec(move || start_watcher(lifeline_fd, report_fd));
    }
    Ok(Report {
        read,
        write: Some(write),
    })
}

impl Report {
    /// The watcher's pid, once `spawn` has returned successfully (the
    /// intermediate wrote it before the step's program was executed) or
    /// failed after the hook ran. `None` if no watcher was started.
    pub(crate) fn watcher(mut self) -> Option<Pid> {
        // Our copy of the write end closes first, so that a hook that never
        // wrote gives end-of-file instead of a read that waits.
        self.write = None;
        let mut pid = [0u8; 4];
        self.read.read_exact(&mut pid).ok()?;
        let pid = i32::from_ne_bytes(pid);
        (pid > 0).then(|| Pid::from_raw(pid))
    }
}

/// The `pre_exec` hook, in the step's process: forks the intermediate,
/// which forks the watcher, reports its pid and exits; reaps the
/// intermediate. An error fails the spawn: a step does not run unguarded.
fn start_watcher(lifeline: RawFd, report: RawFd) -> std::io::Result<()> {
    // SAFETY: we are in a freshly forked child that will exec; the
    // children below only make async-signal-safe calls.
    match unsafe { fork() }? {
        ForkResult::Child => intermediate(lifeline, report),
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Err(Errno::EINTR) => {}
                // The intermediate could not fork the watcher.
                Ok(_) => return Err(Errno::EAGAIN.into()),
                Err(err) => return Err(err.into()),
            }
        },
    }
}

/// Forks the watcher, writes its pid to `report` and exits: the watcher is
/// orphaned (adopted by init or the nearest subreaper), not a child of
/// the step's program.
fn intermediate(lifeline: RawFd, report: RawFd) -> ! {
    // SAFETY: as in `start_watcher`.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => watch(lifeline),
        Ok(ForkResult::Parent { child }) => {
            let pid = child.as_raw().to_ne_bytes();
            // SAFETY: `report` is open in this process and `pid` is 4 bytes
            // on the stack. A short or failed write shows as no watcher pid.
            let written = unsafe { libc::write(report, pid.as_ptr().cast(), pid.len()) };
            let code = if written == 4 { 0 } else { 1 };
            // SAFETY: `_exit` runs no destructors or atexit handlers, which
            // belong to the parent's copy of this memory.
            unsafe { libc::_exit(code) }
        }
        // SAFETY: as above.
        Err(_) => unsafe { libc::_exit(1) },
    }
}

/// The watcher: waits for end-of-file on the lifeline, then SIGKILLs its
/// process group (itself included).
fn watch(lifeline: RawFd) -> ! {
    let fd = keep_only(lifeline);
    quiet_signals();
    // SAFETY: `fd` is the lifeline, open until this process ends.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            // Nobody writes to the lifeline; data would be a mistake, not
            // a reason to stop guarding.
            Ok(n) if n > 0 => {}
            Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => break,
        }
    }
    // 0: this process's own group.
    let _ = nix::sys::signal::kill(Pid::from_raw(0), Signal::SIGKILL);
    // SAFETY: as in `intermediate`; only reached if the kill failed.
    unsafe { libc::_exit(0) }
}

/// Moves the lifeline to fd 0 and closes every other fd: the step's
/// stdout and stderr pipes, kiln's own files, other jobs' lifelines.
/// Returns where the lifeline is now.
fn keep_only(lifeline: RawFd) -> RawFd {
    // SAFETY: plain system calls on fd numbers.
    unsafe {
        if lifeline == 0 || libc::dup2(lifeline, 0) == 0 {
            close_from(1, libc::c_int::MAX);
            0
        } else {
            // Keep the lifeline where it is; close the rest around it.
            close_from(0, lifeline - 1);
            close_from(lifeline + 1, libc::c_int::MAX);
            lifeline
        }
    }
}

/// Closes fds `first..=last`: `close_range` (Linux 5.9), else one by one
/// up to the fd limit.
unsafe fn close_from(first: RawFd, last: RawFd) {
    if first > last {
        return;
    }
    // SAFETY: close_range takes plain numbers and closes what is open.
    let ranged = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if ranged == 0 {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as RawFd
    } else {
        1024
    };
    for fd in first..=last.min(max) {
        // SAFETY: closing a number that may or may not be open.
        unsafe {
            libc::close(fd);
        }
    }
}

/// Ignores the signals that stop a step or that a terminal sends, resets
/// the rest to their defaults (kiln's handlers, inherited through `fork`,
/// must not run here), and unblocks everything.
fn quiet_signals() {
    for signal in Signal::iterator() {
        let handler = match signal {
            Signal::SIGKILL | Signal::SIGSTOP => continue,
            Signal::SIGHUP
            | Signal::SIGINT
            | Signal::SIGQUIT
            | Signal::SIGTERM
            | Signal::SIGUSR1
            | Signal::SIGUSR2
            | Signal::SIGPIPE
            | Signal::SIGALRM
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
            | Signal::SIGVTALRM
            | Signal::SIGPROF
            | Signal::SIGXCPU
            | Signal::SIGXFSZ => SigHandler::SigIgn,
            _ => SigHandler::SigDfl,
        };
        let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
        // SAFETY: installs no Rust handler, only SIG_IGN or SIG_DFL.
        let _ = unsafe { nix::sys::signal::sigaction(signal, &action) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
