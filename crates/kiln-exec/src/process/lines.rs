//! Turning a byte stream into [`LogLine`]s.
//!
//! The splitter is pure (bytes in, line texts out) so that its edge cases
//! (`\r\n`, a last line without newline, invalid UTF-8, very long lines) are
//! unit-tested without processes; the reader task around it does the I/O.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::port::{LogLine, LogSink, Stream};

/// The longest line, in bytes, handed to the sink; longer lines are split
/// into pieces of at most this size (at a UTF-8 character boundary when the
/// bytes are valid UTF-8 there).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Size of one read from a pipe.
const READ_CHUNK: usize = 8 * 1024;

/// Splits bytes into lines: `\n` ends a line, a `\r` before it is dropped,
/// invalid UTF-8 is replaced (lossy), lines over `max` bytes are split.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// `pending[..scanned]` holds no `\n`.
    scanned: usize,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        assert!(max >= 4, "a line must hold at least one UTF-8 character");
        Self {
            pending: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Adds bytes and emits every line they complete.
    pub(crate) fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(String)) {
        self.pending.extend_from_slice(bytes);
        loop {
            if let Some(offset) = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let end = self.scanned + offset;
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop(); // the '\n'
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                self.emit_split(&line, &mut emit);
                continue;
            }
            self.scanned = self.pending.len();
            // One byte of slack: a '\r' right after `max` bytes may be the
            // first half of a "\r\n" that the next read completes.
            if self.pending.len() > self.max + 1 {
                let cut = split_point(&self.pending, self.max);
                let piece: Vec<u8> = self.pending.drain(..cut).collect();
                self.scanned = self.pending.len();
                emit(String::from_utf8_lossy(&piece).into_owned());
                continue;
            }
            return;
        }
    }

    /// Ends the stream: a last line without a newline is emitted too.
    pub(crate) fn finish(mut self, mut emit: impl FnMut(String)) {
        let mut line = std::mem::take(&mut self.pending);
        if line.is_empty() {
            return;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.emit_split(&line, &mut emit);
    }

    fn emit_split(&self, mut line: &[u8], emit: &mut impl FnMut(String)) {
        loop {
            let cut = split_point(line, self.max);
            emit(String::from_utf8_lossy(&line[..cut]).into_owned());
            line = &line[cut..];
            if line.is_empty() {
                return;
            }
        }
    }
}

/// Where to cut `bytes` so that the first piece has at most `max` bytes and,
/// when possible, does not end inside a UTF-8 character.
fn split_point(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    // A UTF-8 character has at most three continuation bytes.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && !is_continuation(bytes[i]))
        .unwrap_or(max)
}

/// Delivers the lines of several streams to one sink in the order they were
/// read: taking the timestamp and calling the sink under one lock means the
/// sink sees lines in timestamp order, stdout and stderr interleaved as read.
#[derive(Clone)]
pub(crate) struct Emitter {
    sink: Arc<dyn LogSink>,
    order: Arc<Mutex<()>>,
}

impl Emitter {
    pub(crate) fn new(sink: Arc<dyn LogSink>) -> Self {
        Self {
            sink,
            order: Arc::new(Mutex::new(())),
        }
    }

    pub(crate) fn emit(&self, stream: Stream, text: String) {
        // A sink that panicked poisons nothing we rely on: the lock only orders.
        let _ordered = self
            .order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sink.line(LogLine {
            stream,
            at: SystemTime::now(),
            text,
        });
    }
}

/// Reads `reader` to its end (or to its first read error), forwarding each
/// line as it arrives.
pub(crate) async fn forward_lines<R>(mut reader: R, stream: Stream, emitter: Emitter)
where
    R: AsyncRead + Unpin,
{
    let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], |text| emitter.emit(stream, text)),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            // A broken pipe read ends the stream like EOF: the step's result
            // comes from its exit status, not from its output.
            Err(_) => break,
        }
    }
    splitter.finish(|text| emitter.emit(stream, text));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::new(max);
        for chunk in chunks {
            splitter.push(chunk, |line| out.push(line));
        }
        splitter.finish(|line| out.push(line));
        out
    }

    #[test]
    fn splits_on_newlines_and_keeps_empty_lines() {
        assert_eq!(split(&[b"a\n\nb\n"], 16), ["a", "", "b"]);
    }

    #[test]
    fn crlf_is_one_terminator_even_across_reads() {
        assert_eq!(split(&[b"a\r\nb\r", b"\nc\r\n"], 16), ["a", "b", "c"]);
    }

    #[test]
    fn a_lone_carriage_return_stays_in_the_line() {
        assert_eq!(split(&[b"50%\r100%\n"], 16), ["50%\r100%"]);
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        assert_eq!(split(&[b"a\nla", b"st"], 16), ["a", "last"]);
        assert_eq!(split(&[b"a\n"], 16), ["a"]);
        assert_eq!(split(&[], 16), Vec::<String>::new());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(split(&[b"ok \xff end\n"], 16), ["ok \u{FFFD} end"]);
    }

    #[test]
    fn long_lines_are_split_at_max_bytes() {
        assert_eq!(split(&[b"abcdefghij\n"], 4), ["abcd", "efgh", "ij"]);
        // Across reads, without a newline at the end.
        assert_eq!(split(&[b"abcde", b"fghij"], 4), ["abcd", "efgh", "ij"]);
        // Exactly max bytes, even with "\r\n" split over two reads.
        assert_eq!(split(&[b"abcd\r", b"\nx\n"], 4), ["abcd", "x"]);
    }

    #[test]
    fn long_lines_are_split_at_character_boundaries() {
        // "é" is two bytes; cutting "aaaé" at 4 would cut it in half.
        assert_eq!(split(&["aaaéb\n".as_bytes()], 4), ["aaa", "éb"]);
        assert_eq!(split(&["aaaébbbbbb".as_bytes()], 4), ["aaa", "ébb", "bbbb"]);
    }
}
