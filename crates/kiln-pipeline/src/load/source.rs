//! The workflow text, and where a character of a scalar's *value* sits in it.
//!
//! marked-yaml gives each scalar the line and column where it starts, but an
//! expression error is an offset into the scalar's value, which differs from
//! the source text as soon as the scalar is quoted (escapes, `''`), folded,
//! or a block (`run: |`, whose lines lose their indentation). [`Source::locate`]
//! walks the source from the scalar's start, decoding as YAML does, and lines
//! up the value's non-blank characters with it; whitespace is where YAML
//! rewrites text (indentation, folding), so it is skipped on both sides.

use kiln_model::workflow::Loc;

/// How a scalar is written, which decides how its source text decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` or `>`: the start marker is the first content character.
    Block,
}

pub(crate) struct Source<'s> {
    lines: Vec<&'s str>,
}

/// One decoded character of a scalar and where its source text starts and ends.
struct Unit {
    ch: char,
    at: Loc,
    end: Loc,
}

impl<'s> Source<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        Source {
            lines: text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .collect(),
        }
    }

    /// The character at a position, if any.
    pub(crate) fn char_at(&self, at: Loc) -> Option<char> {
        let line = self.lines.get((at.line as usize).checked_sub(1)?)?;
        line.chars().nth((at.col as usize).checked_sub(1)?)
    }

    /// Where byte `offset` of `value` (a scalar starting at `start`) is in the file.
    pub(crate) fn locate(&self, start: Loc, style: Style, value: &str, offset: usize) -> Loc {
        self.walk(start, style, value, Some(offset))
            .unwrap_or(start)
    }

    /// How many characters the scalar covers on its first line (quotes included).
    pub(crate) fn extent(&self, start: Loc, style: Style, value: &str) -> u32 {
        let first_line_rest = self
            .lines
            .get((start.line as usize).saturating_sub(1))
            .map(|l| (l.chars().count() as u32 + 1).saturating_sub(start.col))
            .unwrap_or(1);
        let quote = u32::from(matches!(style, Style::SingleQuoted | Style::DoubleQuoted));
        match self.walk(start, style, value, None) {
            Some(end) if end.line == start.line => (end.col - start.col + quote).max(1),
            Some(_) | None => first_line_rest.max(1),
        }
    }

    /// Align `value` with the decoded source; the location of byte `stop` of
    /// the value, or of the end of the value when `stop` is `None`. `None` when
    /// the source does not decode to the value (then callers fall back to the start).
    fn walk(&self, start: Loc, style: Style, value: &str, stop: Option<usize>) -> Option<Loc> {
        let mut units = Units::new(self, start, style);
        let mut after = units.pos;
        for (i, vc) in value.char_indices() {
            let at_stop = stop.is_some_and(|s| i >= s);
            if vc.is_whitespace() {
                if at_stop {
                    return Some(after);
                }
                continue;
            }
            let unit = loop {
                let u = units.next()?;
                if !u.ch.is_whitespace() {
                    break u;
                }
            };
            if unit.ch != vc {
                return None;
            }
            if at_stop {
                return Some(unit.at);
            }
            after = unit.end;
        }
        Some(after)
    }
}

/// The decoded characters of a scalar, from its start marker on.
struct Units<'a, 's> {
    src: &'a Source<'s>,
    style: Style,
    pos: Loc,
    finished: bool,
}

impl<'a, 's> Units<'a, 's> {
    fn new(src: &'a Source<'s>, start: Loc, style: Style) -> Self {
        let mut units = Units {
            src,
            style,
            pos: start,
            finished: false,
        };
        if matches!(style, Style::SingleQuoted | Style::DoubleQuoted) {
            units.raw(); // the opening quote
        }
        units
    }

    /// The next source character (`'\n'` at line ends) and advance.
    fn raw(&mut self) -> Option<char> {
        let line = self
            .src
            .lines
            .get((self.pos.line as usize).checked_sub(1)?)?;
        match line.chars().nth((self.pos.col as usize).checked_sub(1)?) {
            Some(c) => {
                self.pos.col += 1;
                Some(c)
            }
            None if (self.pos.line as usize) < self.src.lines.len() => {
                self.pos = Loc {
                    line: self.pos.line + 1,
                    col: 1,
                };
                Some('\n')
            }
            None => None,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src.char_at(self.pos)
    }

    fn next(&mut self) -> Option<Unit> {
        if self.finished {
            return None;
        }
        let at = self.pos;
        let c = self.raw()?;
        let ch = match (self.style, c) {
            (Style::SingleQuoted, '\'') if self.peek() == Some('\'') => {
                self.raw();
                '\''
            }
            (Style::SingleQuoted | Style::DoubleQuoted, '\'' | '"')
                if (c == '"') == (self.style == Style::DoubleQuoted) =>
            {
                self.finished = true;
                return None;
            }
            (Style::DoubleQuoted, '\\') => self.escape()?,
            (_, c) => c,
        };
        Some(Unit {
            ch,
            at,
            end: self.pos,
        })
    }

    /// A double-quoted escape after its backslash; an escaped line break
    /// decodes to whitespace (and so lines up with nothing).
    fn escape(&mut self) -> Option<char> {
        let c = self.raw()?;
        let hex = |units: &mut Self, n: usize| {
            let digits: String = (0..n).filter_map(|_| units.raw()).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
        };
        Some(match c {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            '\n' => ' ',
            other => other,
        })
    }
}
