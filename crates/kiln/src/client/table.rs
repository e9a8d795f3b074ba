//! Text for people: aligned tables, coloured statuses (only when colour is
//! on), times as `3m ago`, durations. Pure: the current time comes in as an
//! argument.

use crate::exec::output::fmt_ms;
use jiff::Timestamp;
use kiln_model::JobStatus;

/// Colour or not; everything else prints the same either way.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// A status as a table cell, in the colours `kiln exec` uses.
    pub fn status(self, status: JobStatus) -> Cell {
        let code = match status {
            JobStatus::Success => "32",
            JobStatus::Failure => "31",
            JobStatus::Cancelled => "33",
            JobStatus::Running => "36",
            JobStatus::Queued | JobStatus::Skipped => "2",
        };
        Cell::styled(status.as_str(), self.paint(code, status.as_str()))
    }
}

/// One cell: the text whose width counts, and what is printed (the same
/// text, perhaps wrapped in colour codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    text: String,
    shown: Option<String>,
}

impl Cell {
    pub fn styled(text: &str, shown: String) -> Cell {
        Cell {
            text: text.to_owned(),
            shown: Some(shown),
        }
    }
    fn width(&self) -> usize {
        self.text.chars().count()
    }
    pub fn shown(&self) -> &str {
        self.shown.as_deref().unwrap_or(&self.text)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, shown: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Columns separated by two spaces, padded to the widest cell; the last
/// column is not padded, so no line ends in blanks.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Missing cells are blank; extra cells are dropped.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let blank = Cell::from("");
        let cell = |row: &[Cell], i: usize| -> Cell { row.get(i).unwrap_or(&blank).clone() };
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (head, _))| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).width())
                    .chain([head.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<Cell> = self.columns.iter().map(|(h, _)| Cell::from(*h)).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let c = cell(row, i);
                let pad = " ".repeat(widths[i].saturating_sub(c.width()));
                let last = i + 1 == self.columns.len();
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left if last => line.push_str(c.shown()),
                    Align::Left => {
                        line.push_str(c.shown());
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(c.shown());
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `3m ago`, `5s ago`, `2d ago`; the date itself after a month.
pub fn ago(now: Timestamp, then: Timestamp) -> String {
    let secs = (now.as_millisecond() - then.as_millisecond()) / 1000;
    match secs {
        i64::MIN..=0 => "just now".to_owned(),
        1..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        86_400..=2_591_999 => format!("{}d ago", secs / 86_400),
        _ => then.strftime("%Y-%m-%d").to_string(),
    }
}

/// How long something took, or has taken so far (`now` while it runs);
/// empty when it never started.
pub fn took(now: Timestamp, started: Option<Timestamp>, finished: Option<Timestamp>) -> String {
    match (started, finished) {
        (Some(s), Some(f)) => fmt_ms(millis_between(s, f)),
        (Some(s), None) => format!("{}…", fmt_ms(millis_between(s, now))),
        (None, Some(_) | None) => String::new(),
    }
}

fn millis_between(a: Timestamp, b: Timestamp) -> u64 {
    u64::try_from(b.as_millisecond() - a.as_millisecond()).unwrap_or(0)
}

/// The first 7 characters of a commit id.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn columns_align_by_visible_width_and_lines_do_not_end_in_blanks() {
        let style = Style { color: true };
        let mut t = Table::new(&[
            ("ID", Align::Right),
            ("NAME", Align::Left),
            ("STATUS", Align::Left),
            ("NOTE", Align::Left),
        ]);
        t.row(vec![
            "7".into(),
            "build ✓".into(),
            style.status(JobStatus::Success),
            "".into(),
        ]);
        t.row(vec![
            "12".into(),
            "x".into(),
            style.status(JobStatus::Failure),
            "exit 1".into(),
        ]);
        let plain = t.render().replace("\x1b[32m", "").replace("\x1b[31m", "");
        let plain = plain.replace("\x1b[0m", "");
        assert_eq!(
            plain,
            "ID  NAME     STATUS   NOTE\n\
             \x207  build ✓  success\n\
             12  x        failure  exit 1\n"
        );
        assert!(t.render().contains("\x1b[31mfailure\x1b[0m  exit 1\n"));
    }

    #[test]
    fn no_colour_means_no_escape_codes() {
        let mut t = Table::new(&[("STATUS", Align::Left), ("X", Align::Left)]);
        t.row(vec![
            Style { color: false }.status(JobStatus::Running),
            "y".into(),
        ]);
        assert_eq!(t.render(), "STATUS   X\nrunning  y\n");
    }

    #[test]
    fn short_rows_are_padded_with_blanks() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Right)]);
        t.row(vec!["long".into()]);
        assert_eq!(t.render(), "A     B\nlong\n");
    }

    #[test]
    fn relative_times() {
        let now = ts("2025-03-01T12:00:00Z");
        assert_eq!(ago(now, ts("2025-03-01T12:00:00Z")), "just now");
        assert_eq!(ago(now, ts("2025-03-01T12:00:30Z")), "just now");
        assert_eq!(ago(now, ts("2025-03-01T11:59:55Z")), "5s ago");
        assert_eq!(ago(now, ts("2025-03-01T11:57:00Z")), "3m ago");
        assert_eq!(ago(now, ts("2025-03-01T09:10:00Z")), "2h ago");
        assert_eq!(ago(now, ts("2025-02-26T12:00:00Z")), "3d ago");
        assert_eq!(ago(now, ts("2024-12-25T08:00:00Z")), "2024-12-25");
    }

    #[test]
    fn durations_finished_running_and_never_started() {
        let now = ts("2025-03-01T12:00:00Z");
        let s = Some(ts("2025-03-01T11:58:58Z"));
        assert_eq!(took(now, s, Some(ts("2025-03-01T11:59:00.500Z"))), "2.5s");
        assert_eq!(took(now, s, None), "1m02s…");
        assert_eq!(took(now, None, None), "");
    }

    #[test]
    fn short_commits() {
        assert_eq!(short_commit("4f2a9c1d8e"), "4f2a9c1");
        assert_eq!(short_commit("abc"), "abc");
    }
}
