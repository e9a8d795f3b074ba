//! `toJSON` and `fromJSON`.
//!
//! `toJSON` writes exactly what the runner writes: two-space indentation,
//! `"key": value`, empty collections as `[]`/`{}`, numbers in their
//! expression string form (so `1E+15`, and `NaN`/`Infinity` unquoted), and
//! strings escaped as Newtonsoft.Json escapes them. Object keys come out in
//! the order [`Value`] keeps them (sorted), where GitHub keeps insertion order.
//!
//! `fromJSON` is strict JSON (serde_json); GitHub's parser also tolerates
//! comments, single quotes and trailing commas.

use kiln_model::Value;

use super::coerce;

pub(crate) fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

/// `toJSON` of a filtered array.
pub(crate) fn to_json_items<'a>(items: impl ExactSizeIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    write_array(&mut out, items, 0);
    out
}

pub(crate) fn from_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(Value::from)
        .map_err(|e| e.to_string())
}

fn indent(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level * 2));
}

fn write_array<'a>(
    out: &mut String,
    items: impl ExactSizeIterator<Item = &'a Value>,
    level: usize,
) {
    if items.len() == 0 {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        indent(out, level + 1);
        write_value(out, item, level + 1);
    }
    indent(out, level);
    out.push(']');
}

fn write_value(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(coerce::bool_str(*b)),
        Value::Number(n) => out.push_str(&coerce::format_number(*n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => write_array(out, items.iter(), level),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push('{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, value, level + 1);
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped as Newtonsoft.Json does by default.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_prints_like_github() {
        let v = Value::from(serde_json::json!({
            "nested-one": {"one": 1, "two": [true, false, null, [], {}]},
            "s": "a\"b\\c\nd\u{1}",
        }));
        assert_eq!(
            to_json(&v),
            "{\n  \"nested-one\": {\n    \"one\": 1,\n    \"two\": [\n      true,\n      false,\n      null,\n      [],\n      {}\n    ]\n  },\n  \"s\": \"a\\\"b\\\\c\\nd\\u0001\"\n}"
        );
        assert_eq!(to_json(&Value::Number(1e15)), "1E+15");
        assert_eq!(to_json(&Value::str("")), "\"\"");
    }

    #[test]
    fn parses_json() {
        assert_eq!(
            from_json(" [1, \"a\"] "),
            Ok(Value::Array(vec![Value::Number(1.0), Value::str("a")]))
        );
        assert!(from_json("").is_err());
        assert!(from_json("{").is_err());
    }
}
