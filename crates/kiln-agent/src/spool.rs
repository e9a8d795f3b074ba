//! A job's log lines between the runner and the shipper.
//!
//! The runner's observer pushes lines from reader tasks and must never
//! block, while the shipper may be unable to send for as long as the
//! server is down. Lines are never dropped while the attempt is ours, and
//! memory stays bounded: lines are kept in memory up to a limit; beyond
//! it, new lines are appended to a spill file (JSON, one line each) and
//! read back in order once the ones in memory are sent. When the spill
//! file is drained it is removed and lines go to memory again. If the
//! spill file cannot be created or written (disk full), later lines stay
//! in memory past the limit: memory is spent before output is lost (lines
//! still in the file's write buffer when the disk fails are lost).
//!
//! Order invariant: every line in memory is older than every line in the
//! spill file, because nothing goes to memory while the file holds lines.

use kiln_proto::agent::WireLine;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Limits of one chunk and of memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub chunk_lines: usize,
    pub chunk_bytes: usize,
    pub memory_bytes: usize,
}

pub(crate) const LIMITS: Limits = Limits {
    chunk_lines: 1000,
    chunk_bytes: 256 * 1024,
    memory_bytes: 8 * 1024 * 1024,
};

/// What a line costs: its text and a guess at its JSON envelope.
fn cost(line: &WireLine) -> usize {
    line.text.len() + 64
}

pub(crate) struct Spool {
    state: Mutex<State>,
    /// Signalled on every push and on close (one stored permit at most).
    changed: Notify,
    limits: Limits,
    spill_path: PathBuf,
}

struct State {
    /// Lines older than any in the spill file.
    memory: VecDeque<WireLine>,
    /// Lines newer than the spill file, kept in memory because writing
    /// to it failed; they join `memory` once the file is drained.
    after: VecDeque<WireLine>,
    /// Bytes of `memory` and `after`.
    memory_bytes: usize,
    spill: Option<Spill>,
    /// Lines and bytes not yet taken, wherever they are.
    pending_lines: usize,
    pending_bytes: usize,
    closed: bool,
    /// Closed by [`Spool::finish`]: the last chunk is left for the
    /// completion to carry.
    handoff: bool,
    /// The attempt is no longer ours: drop everything from now on.
    discarding: bool,
}

struct Spill {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    unread: usize,
    /// A write failed: later lines go to `after`, not to the file.
    broken: bool,
}

impl Spool {
    pub(crate) fn new(limits: Limits, spill_path: PathBuf) -> Self {
        Spool {
            state: Mutex::new(State {
                memory: VecDeque::new(),
                after: VecDeque::new(),
                memory_bytes: 0,
                spill: None,
                pending_lines: 0,
                pending_bytes: 0,
                closed: false,
                handoff: false,
                discarding: false,
            }),
            changed: Notify::new(),
            limits,
            spill_path,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent enough data
        // (at worst a line counted twice); keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a line. Never blocks on the network; may write to the spill file.
    pub(crate) fn push(&self, line: WireLine) {
        let mut s = self.lock();
        if s.discarding || s.closed {
            return;
        }
        let c = cost(&line);
        s.pending_lines += 1;
        s.pending_bytes += c;
        if s.spill.is_none() && s.memory_bytes + c > self.limits.memory_bytes {
            s.spill = self.open_spill();
        }
        let st = &mut *s;
        match &mut st.spill {
            None => {
                st.memory_bytes += c;
                st.memory.push_back(line);
            }
            Some(spill) if !spill.broken => match write_line(&mut spill.writer, &line) {
                Ok(()) => spill.unread += 1,
                Err(_) => {
                    spill.broken = true;
                    st.memory_bytes += c;
                    st.after.push_back(line);
                }
            },
            Some(_) => {
                st.memory_bytes += c;
                st.after.push_back(line);
            }
        }
        drop(s);
        self.changed.notify_one();
    }

    fn open_spill(&self) -> Option<Spill> {
        let writer = File::create(&self.spill_path).ok()?;
        let reader = File::open(&self.spill_path).ok()?;
        Some(Spill {
            writer: BufWriter::new(writer),
            reader: BufReader::new(reader),
            unread: 0,
            broken: false,
        })
    }

    /// No more lines will come; the shipper drains what is left.
    #[cfg(test)]
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// No more lines will come, and the last chunk's worth is not for the
    /// shipper: it drains what does not fit in one chunk, then ends, and
    /// [`Spool::take`] hands the rest to the completion.
    pub(crate) fn finish(&self) {
        {
            let mut s = self.lock();
            s.closed = true;
            s.handoff = true;
        }
        self.changed.notify_one();
    }

    /// The attempt is no longer ours: drop what is pending and what comes.
    pub(crate) fn discard(&self) {
        let mut s = self.lock();
        s.discarding = true;
        s.memory.clear();
        s.after.clear();
        s.memory_bytes = 0;
        s.pending_lines = 0;
        s.pending_bytes = 0;
        if s.spill.take().is_some() {
            let _ = std::fs::remove_file(&self.spill_path);
        }
        drop(s);
        self.changed.notify_one();
    }

    /// Wait until a batch is due and take it: as soon as a full chunk is
    /// pending, after `interval` once any line is pending, or at once when
    /// closed. `None`: closed and empty (or discarding).
    pub(crate) async fn next_batch(&self, interval: std::time::Duration) -> Option<Vec<WireLine>> {
        loop {
            {
                let s = self.lock();
                if s.discarding {
                    return None;
                }
                if s.pending_lines > 0 || s.closed {
                    break;
                }
            }
            self.changed.notified().await;
        }
        let deadline = tokio::time::Instant::now() + interval;
        loop {
            {
                let s = self.lock();
                if s.closed
                    || s.discarding
                    || s.pending_lines >= self.limits.chunk_lines
                    || s.pending_bytes >= self.limits.chunk_bytes
                {
                    break;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.changed.notified() => {}
            }
        }
        {
            let s = self.lock();
            let last_chunk = s.spill.is_none()
                && s.pending_lines <= self.limits.chunk_lines
                && s.pending_bytes <= self.limits.chunk_bytes;
            if s.handoff && last_chunk {
                return None;
            }
        }
        let batch = self.take();
        if batch.is_empty() { None } else { Some(batch) }
    }

    /// Take up to one chunk's worth of the oldest lines.
    pub(crate) fn take(&self) -> Vec<WireLine> {
        let mut s = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        if s.discarding {
            return out;
        }
        let full = |out: &Vec<WireLine>, bytes: usize| {
            out.len() >= self.limits.chunk_lines || bytes >= self.limits.chunk_bytes
        };
        while !full(&out, bytes) {
            let Some(line) = s.memory.pop_front() else {
                break;
            };
            let c = cost(&line);
            s.memory_bytes -= c;
            bytes += c;
            out.push(line);
        }
        if s.memory.is_empty() {
            let mut drained = false;
            if let Some(spill) = &mut s.spill {
                let _ = spill.writer.flush();
                while !full(&out, bytes) && spill.unread > 0 {
                    let mut text = String::new();
                    match spill.reader.read_line(&mut text) {
                        Ok(n) if n > 0 => {}
                        // The file lost lines (disk error): count them gone.
                        Ok(_) | Err(_) => {
                            spill.unread = 0;
                            break;
                        }
                    }
                    spill.unread -= 1;
                    if let Ok(line) = serde_json::from_str::<WireLine>(&text) {
                        bytes += cost(&line);
                        out.push(line);
                    }
                }
                drained = spill.unread == 0;
            }
            if drained {
                s.spill = None;
                let _ = std::fs::remove_file(&self.spill_path);
                let after = std::mem::take(&mut s.after);
                s.memory = after;
                while !full(&out, bytes) {
                    let Some(line) = s.memory.pop_front() else {
                        break;
                    };
                    let c = cost(&line);
                    s.memory_bytes -= c;
                    bytes += c;
                    out.push(line);
                }
            }
        }
        s.pending_lines = s.pending_lines.saturating_sub(out.len());
        s.pending_bytes = s.pending_bytes.saturating_sub(bytes);
        if s.spill.is_none() && s.memory.is_empty() {
            // Resynchronise the counters (lines lost from a broken file).
            s.pending_lines = 0;
            s.pending_bytes = 0;
        }
        out
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if s.spill.take().is_some() {
            let _ = std::fs::remove_file(&self.spill_path);
        }
    }
}

fn write_line(w: &mut BufWriter<File>, line: &WireLine) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, line)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_proto::api::LogStream;

    fn line(i: usize) -> WireLine {
        WireLine {
            step: 1,
            stream: LogStream::Stdout,
            at: jiff::Timestamp::UNIX_EPOCH,
            text: format!("line {i} {}", "x".repeat(i % 7)),
        }
    }

    fn small(dir: &std::path::Path) -> Spool {
        Spool::new(
            Limits {
                chunk_lines: 7,
                chunk_bytes: 100_000,
                memory_bytes: 1000,
            },
            dir.join("spill"),
        )
    }

    #[test]
    fn spills_past_the_limit_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = small(dir.path());
        let mut got = Vec::new();
        // Interleave pushes and takes so that the spill file is entered,
        // drained, and entered again.
        for round in 0..3 {
            for i in 0..100 {
                spool.push(line(round * 1000 + i));
            }
            assert!(dir.path().join("spill").exists(), "round {round} spills");
            for _ in 0..5 {
                got.extend(spool.take());
            }
        }
        loop {
            let batch = spool.take();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 7);
            got.extend(batch);
        }
        let want: Vec<String> = (0..3)
            .flat_map(|r| (0..100).map(move |i| line(r * 1000 + i).text))
            .collect();
        let got: Vec<String> = got.into_iter().map(|l| l.text).collect();
        assert_eq!(got, want);
        assert!(!dir.path().join("spill").exists(), "drained file removed");
        let s = spool.lock();
        assert_eq!(
            (s.pending_lines, s.pending_bytes, s.memory_bytes),
            (0, 0, 0)
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let spool = small(dir.path());
        for i in 0..10_000 {
            spool.push(line(i));
        }
        assert!(spool.lock().memory_bytes <= 1000);
        assert_eq!(spool.lock().pending_lines, 10_000);
    }

    #[test]
    fn discard_drops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let spool = small(dir.path());
        for i in 0..100 {
            spool.push(line(i));
        }
        spool.discard();
        spool.push(line(1));
        assert!(spool.take().is_empty());
        assert!(!dir.path().join("spill").exists());
    }

    #[tokio::test]
    async fn batches_come_when_full_or_closed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = small(dir.path());
        for i in 0..7 {
            spool.push(line(i));
        }
        // A full chunk is due at once, whatever the interval.
        let b = spool.next_batch(std::time::Duration::from_secs(3600)).await;
        assert_eq!(b.map(|b| b.len()), Some(7));
        spool.push(line(8));
        spool.close();
        let b = spool.next_batch(std::time::Duration::from_secs(3600)).await;
        assert_eq!(b.map(|b| b.len()), Some(1));
        assert!(
            spool
                .next_batch(std::time::Duration::from_secs(3600))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn finish_leaves_the_last_chunk_for_the_completion() {
        let dir = tempfile::tempdir().unwrap();
        let spool = small(dir.path());
        // More than a chunk (7 lines): the shipper gets the older full
        // chunk, the rest stays for the completion to carry.
        for i in 0..10 {
            spool.push(line(i));
        }
        spool.finish();
        let forever = std::time::Duration::from_secs(3600);
        let shipped = spool.next_batch(forever).await.expect("a full chunk");
        assert_eq!(shipped.len(), 7);
        assert!(
            spool.next_batch(forever).await.is_none(),
            "the rest is the last chunk"
        );
        let rest: Vec<String> = spool.take().into_iter().map(|l| l.text).collect();
        assert_eq!(rest, [line(7).text, line(8).text, line(9).text]);
        spool.push(line(11));
        assert!(spool.take().is_empty(), "nothing is accepted after finish");
    }
}
