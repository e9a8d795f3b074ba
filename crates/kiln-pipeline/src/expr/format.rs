//! The pattern language of `format()`: `{N}` placeholders, `{{` and `}}`
//! for literal braces.
//!
//! Separate from the function so the parser can check a literal pattern (the
//! usual case) when the workflow is loaded, and the evaluator a computed one
//! when it runs.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Arg(usize),
}

/// Splits `pattern` into text and placeholders for a call with `args`
/// arguments after the pattern. The error says what is wrong, in lower case.
pub(crate) fn parse(pattern: &str, args: usize) -> Result<Vec<Segment>, String> {
    let bytes = pattern.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut index = 0;
    while index < pattern.len() {
        let lbrace = pattern[index..].find('{').map(|i| i + index);
        let rbrace = pattern[index..].find('}').map(|i| i + index);
        match (lbrace, rbrace) {
            (Some(l), r) if r.is_none_or(|r| r > l) => {
                if at(l + 1) == Some(b'{') {
                    text.push_str(&pattern[index..=l]);
                    index = l + 2;
                    continue;
                }
                let digits = pattern[l + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
                let after = l + 1 + digits;
                let arg: Option<u8> = pattern[l + 1..after].parse().ok();
                let (Some(arg), Some(close)) = (arg, closing_brace(pattern, after)?) else {
                    return Err(format!(
                        "`{{` at byte {l} does not start a placeholder such as `{{0}}`; write `{{{{` for a literal `{{`"
                    ));
                };
                let arg = usize::from(arg);
                if arg >= args {
                    return Err(format!(
                        "it references {{{arg}}} but only {args} argument{} given after the format string",
                        if args == 1 { " was" } else { "s were" }
                    ));
                }
                text.push_str(&pattern[index..l]);
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Arg(arg));
                index = close + 1;
            }
            (_, Some(r)) => {
                if at(r + 1) == Some(b'}') {
                    text.push_str(&pattern[index..=r]);
                    index = r + 2;
                } else {
                    return Err(format!(
                        "unmatched `}}` at byte {r}; write `}}}}` for a literal `}}`"
                    ));
                }
            }
            (_, None) => {
                text.push_str(&pattern[index..]);
                break;
            }
        }
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    Ok(segments)
}

/// After the digits of a placeholder: the index of its `}`; `Ok(None)` when
/// the placeholder is malformed, an error for a format specifier (`{0:x}`),
/// which GitHub accepts syntactically but can never apply.
fn closing_brace(pattern: &str, after: usize) -> Result<Option<usize>, String> {
    match pattern.as_bytes().get(after) {
        Some(b'}') => Ok(Some(after)),
        Some(b':') => {
            let rest = &pattern[after + 1..];
            match rest.find('}') {
                Some(0) => Ok(Some(after + 1)),
                Some(n) => Err(format!(
                    "format specifiers such as `:{}` are not supported",
                    &rest[..n]
                )),
                None => Ok(None),
            }
        }
        Some(_) | None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(pattern: &str, args: &[&str]) -> Result<String, String> {
        Ok(parse(pattern, args.len())?
            .into_iter()
            .map(|s| match s {
                Segment::Text(t) => t,
                Segment::Arg(i) => args[i].to_owned(),
            })
            .collect())
    }

    #[test]
    fn placeholders_and_escapes() {
        assert_eq!(
            render("123{0}456{1}789", &["abc", "def"]).as_deref(),
            Ok("123abc456def789")
        );
        assert_eq!(render("{0}{0}", &["x"]).as_deref(), Ok("xx"));
        assert_eq!(render("{{0}}", &["abc"]).as_deref(), Ok("{0}"));
        assert_eq!(render("{{{{0}}}}", &["abc"]).as_deref(), Ok("{{0}}"));
        assert_eq!(render("}}{{", &[]).as_deref(), Ok("}{"));
        assert_eq!(render("{{{0}}}", &["a"]).as_deref(), Ok("{a}"));
        assert_eq!(render("{0:}", &["a"]).as_deref(), Ok("a"));
        assert_eq!(render("{007}", &["a"; 8]).as_deref(), Ok("a"));
        assert_eq!(render("", &[]).as_deref(), Ok(""));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for bad in [
            "{0", "{0}}", "{0}}}}", "0}", "{{0}", "{{{{0}", "}0{", "}{0}", "{0}{", "{}", "{a}",
            "{256}", "{-1}",
        ] {
            assert!(render(bad, &["x"]).is_err(), "{bad:?} should be rejected");
        }
        let err = render("{0}{1}", &["x"]).unwrap_err();
        assert!(
            err.contains("{1}") && err.contains("only 1 argument was"),
            "{err}"
        );
        assert!(render("{0:x}", &["x"]).unwrap_err().contains("`:x`"));
    }
}
