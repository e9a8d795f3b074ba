//! Signalling process groups and waiting, with a bound, for them to empty.
//!
//! kiln is not the parent of a step's grandchildren, so nothing notifies it
//! when a group has no members left; the only portable test is
//! `killpg(pgid, 0)`, which fails with `ESRCH` once the group is empty. The
//! waits here poll that test every [`GROUP_POLL`] and always end at a
//! deadline, so a process that ignores signals or escaped cannot hang kiln.
//!
//! Every group also holds the step's watcher (`watch`), which is not the
//! step's: a group whose only live member is its watcher counts as empty,
//! and [`release`] ends the watcher with it.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a wait checks whether a process group is empty.
pub(crate) const GROUP_POLL: Duration = Duration::from_millis(10);

/// How long to wait for a group to disappear after SIGKILL. SIGKILL cannot
/// be caught, so this only covers the kernel tearing processes down (and
/// zombies that nobody reaps, which count as members until reaped).
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(1);

/// A process group that a step's leader created (`pgid` = the leader's pid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) pgid: Pid,
    /// The grace period of the step that started it.
    pub(crate) kill_grace: Duration,
    /// The step's watcher, a member of the group that is not the step's.
    pub(crate) watcher: Pid,
}

/// Sends `signal` to every member of the group. An empty group is not an
/// error (it is the common case when stopping something that just ended).
pub(crate) fn signal_group(pgid: Pid, signal: Signal) -> Result<(), Errno> {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Whether the group still has members other than its watcher. Zombies
/// do not count where `/proc` can tell.
pub(crate) fn group_alive(group: &Group) -> bool {
    match killpg(group.pgid, None) {
        // Members exist, but zombies count too: a killed grandchild that
        // nobody reaped yet (its parent died; init reaps it when it gets to
        // it, or never when kiln runs as PID 1) must not make `finish` wait
        // a whole grace period. On Linux, look for a member that is not a
        // zombie, nor the watcher (a member too, until `release`).
        Ok(()) => has_live_member(group.pgid, group.watcher).unwrap_or(true),
        Err(Errno::ESRCH) => false,
        // EPERM: members exist that we may not signal.
        Err(_) => true,
    }
}

/// `Some(true)` when a process of group `pgid` other than `except` is not a
/// zombie, `Some(false)` when there is none, `None` when `/proc` cannot
/// tell.
///
/// Runs after every step, so it is kept cheap: the pids come from one
/// listing of `/proc`, each pid's group from `getpgid` (one system call,
/// no file to open and format), and only a member's `/proc/PID/stat` is
/// read, to tell a zombie.
fn has_live_member(pgid: Pid, except: Pid) -> Option<bool> {
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == except.as_raw() || nix::unistd::getpgid(Some(Pid::from_raw(pid))) != Ok(pgid) {
            continue;
        }
        // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold
        // spaces and parentheses, so parse after the last ')'. Gone in
        // between: not a member any more.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if state != Some("Z") {
            return Some(true);
        }
    }
    Some(false)
}

/// SIGKILLs the group, its watcher included: for a group found empty
/// (only its watcher left, which does not fork, so nothing can join it in
/// between) or one being stopped. Afterwards the group id may be reused,
/// so kiln forgets it.
pub(crate) fn release(group: &Group) {
    // Fails only with EPERM, which the watcher (our own user's) cannot
    // cause; it then ends at the latest when the job's lifeline closes.
    let _ = signal_group(group.pgid, Signal::SIGKILL);
}

/// Waits until the group is empty but for its watcher (returns true), or
/// until `deadline` or `interrupt` (returns false).
pub(crate) async fn wait_group_gone(
    group: &Group,
    deadline: Instant,
    interrupt: Option<&CancellationToken>,
) -> bool {
    loop {
        if !group_alive(group) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let next = deadline.min(now + GROUP_POLL);
        match interrupt {
            Some(token) => {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = token.cancelled() => return false,
                }
            }
            None => tokio::time::sleep_until(next).await,
        }
    }
}
