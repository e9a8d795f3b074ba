//! A Server-Sent Events parser (the `text/event-stream` format of the HTML
//! standard), small enough to read in one sitting. It takes bytes as they
//! arrive, in chunks cut anywhere (inside a line, inside a UTF-8 character,
//! between the CR and LF of a line end), and yields whole events.
//!
//! What it implements: lines end with LF, CRLF or CR; a blank line
//! dispatches the event; `:` starts a comment; `field: value` with one
//! optional space after the colon; `data` lines join with `\n`; `event`
//! names the event (default `message`); `id` is kept; `retry` and unknown
//! fields are ignored; a leading byte-order mark is dropped; an event not
//! closed by a blank line when the stream ends is discarded.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen on the stream, if any.
    pub id: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental parser state; feed it with [`SseParser::feed`].
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the line being read (decoded once the line is complete, so
    /// a character split across chunks survives).
    line: Vec<u8>,
    /// The previous byte was a CR: an LF right after it (perhaps at the
    /// start of the next chunk) belongs to the same line end.
    after_cr: bool,
    /// The first bytes of the stream, held while they may be a BOM.
    bom: Option<Vec<u8>>,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            bom: Some(Vec::new()),
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
        }
    }

    /// Consume `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        for &b in chunk {
            match self.bom.as_mut() {
                None => self.feed_byte(b, out),
                Some(held) => {
                    held.push(b);
                    if BOM.starts_with(held) {
                        if held.len() == BOM.len() {
                            self.bom = None;
                        }
                        continue;
                    }
                    let held = self.bom.take().unwrap_or_default();
                    for b in held {
                        self.feed_byte(b, out);
                    }
                }
            }
        }
    }

    fn feed_byte(&mut self, b: u8, out: &mut Vec<SseEvent>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match b {
            b'\n' if after_cr => {}
            b'\n' => self.end_line(out),
            b'\r' => {
                self.after_cr = true;
                self.end_line(out);
            }
            other => self.line.push(other),
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        if raw.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(&raw);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: None,
        }
    }

    /// The same events whichever two or three places the stream is cut at.
    fn assert_any_split(stream: &[u8], expected: &[SseEvent]) {
        assert_eq!(parse_chunks(&[stream]), expected, "whole");
        for i in 0..=stream.len() {
            let (a, b) = stream.split_at(i);
            assert_eq!(parse_chunks(&[a, b]), expected, "split at {i}");
            for j in i..=stream.len() {
                let (b1, b2) = stream[i..].split_at(j - i);
                assert_eq!(parse_chunks(&[a, b1, b2]), expected, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), expected, "byte by byte");
    }

    #[test]
    fn data_events_and_the_end_event() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\nevent: end\ndata: success\n\n";
        assert_any_split(
            stream,
            &[
                ev("message", "{\"a\":1}"),
                ev("message", "{\"a\":2}"),
                ev("end", "success"),
            ],
        );
    }

    #[test]
    fn multi_line_data_joins_with_newlines() {
        assert_any_split(
            b"data: one\ndata:two\ndata:  three\ndata\n\n",
            &[ev("message", "one\ntwo\n three\n")],
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_any_split(
            b": keep-alive\n\n:\nretry: 100\nfoo: bar\ndata: x\n: inside\n\n",
            &[ev("message", "x")],
        );
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        assert_any_split(
            b"event: end\r\ndata: failure\r\n\r\ndata: a\rdata: b\r\r",
            &[ev("end", "failure"), ev("message", "a\nb")],
        );
    }

    #[test]
    fn utf8_split_inside_a_character_survives() {
        assert_any_split("data: héllo ✓\n\n".as_bytes(), &[ev("message", "héllo ✓")]);
    }

    #[test]
    fn a_leading_bom_is_dropped() {
        assert_any_split(b"\xEF\xBB\xBFdata: x\n\n", &[ev("message", "x")]);
        // Only at the very start of the stream.
        assert_eq!(
            parse_chunks(&[b"data: x\n\n", b"\xEF\xBB\xBFdata: y\n\n"]),
            vec![ev("message", "x")]
        );
    }

    #[test]
    fn event_name_without_data_is_not_dispatched_and_does_not_leak() {
        assert_any_split(b"event: end\n\ndata: x\n\n", &[ev("message", "x")]);
    }

    #[test]
    fn an_unfinished_event_is_discarded() {
        assert_eq!(
            parse_chunks(&[b"data: x\n\ndata: half"]),
            vec![ev("message", "x")]
        );
        assert_eq!(parse_chunks(&[b"data: x\n"]), vec![]);
    }

    #[test]
    fn ids_are_remembered() {
        let out = parse_chunks(&[b"id: 7\ndata: a\n\ndata: b\n\n"]);
        assert_eq!(out[0].id.as_deref(), Some("7"));
        assert_eq!(out[1].id.as_deref(), Some("7"));
    }
}
