//! File commands: what a step writes to `$KILN_OUTPUT`, `$KILN_ENV` and
//! `$KILN_PATH` (aliased as `$GITHUB_OUTPUT`, `$GITHUB_ENV`, `$GITHUB_PATH`).
//!
//! Output and env files hold `NAME=value` lines or heredocs:
//! ```text
//! NAME<<DELIM
//! line one
//! line two
//! DELIM
//! ```
//! The path file holds one directory per line.

/// A malformed file command, with the 1-based line it is on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: line {line}: {message}")]
pub struct FileCommandError {
    pub file: &'static str,
    pub line: usize,
    pub message: String,
}

/// Parse an output or env file into ordered pairs (later pairs win).
pub fn parse_pairs(
    file: &'static str,
    text: &str,
) -> Result<Vec<(String, String)>, FileCommandError> {
    let err = |line: usize, message: String| FileCommandError {
        file,
        line,
        message,
    };
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        // `NAME=value` when `=` comes first; a heredoc when `<<` does.
        let heredoc = match (eq, heredoc) {
            (Some(e), Some(h)) if h < e => Some(h),
            (None, Some(h)) => Some(h),
            (Some(_) | None, Some(_) | None) => None,
        };
        match (eq, heredoc) {
            (Some(e), None) => {
                let name = &line[..e];
                check_name(name).map_err(|m| err(i + 1, m))?;
                out.push((name.to_owned(), line[e + 1..].to_owned()));
            }
            (_, Some(h)) => {
                let name = &line[..h];
                check_name(name).map_err(|m| err(i + 1, m))?;
                let delim = &line[h + 2..];
                if delim.trim().is_empty() {
                    return Err(err(i + 1, format!("heredoc for `{name}` has no delimiter")));
                }
                let mut value = Vec::new();
                let mut closed = false;
                for (_, l) in lines.by_ref() {
                    if l == delim {
                        closed = true;
                        break;
                    }
                    value.push(l);
                }
                if !closed {
                    return Err(err(
                        i + 1,
                        format!("heredoc for `{name}` is not closed by a line `{delim}`"),
                    ));
                }
                out.push((name.to_owned(), value.join("\n")));
            }
            (None, None) => {
                return Err(err(
                    i + 1,
                    format!("expected `NAME=value` or `NAME<<DELIMITER`, found `{line}`"),
                ));
            }
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.chars().any(|c| c.is_whitespace()) {
        return Err(format!("name `{name}` contains whitespace"));
    }
    Ok(())
}

/// Parse a path file: non-empty lines, in order.
pub fn parse_paths(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_heredocs() {
        let text = "a=1\nb=x=y\n\nmulti<<EOF\nline 1\nline 2\nEOF\nempty=\nc<<X\nX\n";
        let got = parse_pairs("output", text).unwrap();
        let want: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "x=y"),
            ("multi", "line 1\nline 2"),
            ("empty", ""),
            ("c", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn value_may_contain_heredoc_marker_after_equals() {
        let got = parse_pairs("env", "a=x<<y\n").unwrap();
        assert_eq!(got, vec![("a".into(), "x<<y".into())]);
    }

    #[test]
    fn crlf_lines() {
        let got = parse_pairs("env", "a=1\r\nb=2\r\n").unwrap();
        assert_eq!(
            got,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_pairs("output", "a=1\nnonsense\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse_pairs("output", "x<<EOF\nnever closed\n").unwrap_err();
        assert!(e.message.contains("not closed"), "{e}");
        let e = parse_pairs("env", "=1\n").unwrap_err();
        assert!(e.message.contains("empty name"), "{e}");
    }

    #[test]
    fn paths() {
        assert_eq!(parse_paths("/a\n\n /b \n"), vec!["/a", "/b"]);
    }
}
