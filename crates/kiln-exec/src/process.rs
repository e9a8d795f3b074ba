//! The process executor: every step is a process group on this machine.
