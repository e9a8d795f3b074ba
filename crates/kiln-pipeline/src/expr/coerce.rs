//! GitHub's coercions between value kinds, in one place.
//!
//! Every operator and function converts through these helpers so the rules
//! (JavaScript-like `Number()` parsing, .NET's `G15` number printing,
//! ordinal case-insensitive string comparison) cannot drift apart. The rules
//! are those of the GitHub Actions runner's expression SDK:
//! - to number: null → 0, bool → 1/0, string → [`parse_number`], array and
//!   object → NaN;
//! - to string: null → "", bool → "true"/"false", numbers → [`format_number`],
//!   array → "Array", object → "Object";
//! - loose equality: operands of different kinds are coerced (string ↔ number
//!   by parsing, bool and null to numbers), strings compare case-insensitively,
//!   NaN equals nothing, arrays and objects equal only the very same instance.

use std::cmp::Ordering;

use kiln_model::Value;

/// GitHub's truthiness: false, 0, -0, NaN, "" and null are falsy.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => *n != 0.0 && !n.is_nan(),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// GitHub's string form of a value.
pub(crate) fn to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => bool_str(*b).to_owned(),
        Value::Number(n) => format_number(*n),
        Value::String(s) => s.clone(),
        Value::Array(_) => "Array".to_owned(),
        Value::Object(_) => "Object".to_owned(),
    }
}

pub(crate) fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// A value as a number (JavaScript's `Number()` for primitives, NaN otherwise).
pub(crate) fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => *n,
        Value::String(s) => parse_number(s),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// Number formatting as the runner does it: .NET's `G15` (15 significant
/// digits, fixed notation for decimal exponents in -5 < e < 15, otherwise
/// `1.5E+15` style), negative zero printed as `0`, `NaN`, `Infinity`.
pub(crate) fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    // `{:.14e}` rounds to 15 significant digits: "-1.23450000000000e-7".
    let sci = format!("{:.14e}", n.abs());
    let (mantissa, exp) = match sci.split_once('e') {
        Some(parts) => parts,
        None => return sci,
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    if exp > -5 && exp < 15 {
        if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            out.extend(std::iter::repeat_n('0', zeros));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

/// String to number, following the runner (JavaScript's `Number()` rules):
/// surrounding whitespace ignored, empty → 0, decimal with optional sign,
/// fraction and exponent, `0x` hex and `0o` octal (32-bit), `Infinity`,
/// `-Infinity`; anything else is NaN.
pub(crate) fn parse_number(s: &str) -> f64 {
    let s = s.trim();
    if s.is_empty() {
        return 0.0;
    }
    if is_decimal(s) {
        return s.parse().unwrap_or(f64::NAN);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return parse_radix_i32(hex, 16);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return parse_radix_i32(oct, 8);
    }
    match s {
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => f64::NAN,
    }
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`
fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// A 32-bit two's-complement integer in `radix` (as .NET's `Int32` parsing
/// of `0x`/`0o` literals: `0xffffffff` is -1); NaN when invalid or too wide.
fn parse_radix_i32(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return f64::NAN;
    }
    match u32::from_str_radix(digits, radix) {
        #[allow(clippy::cast_possible_wrap)]
        Ok(v) => f64::from(v as i32),
        Err(_) => f64::NAN,
    }
}

/// The kind-tagged view of an operand that comparisons work on. Arrays and
/// objects carry an identity: the address of the context value they are, or
/// `None` for values built during evaluation (which equal nothing).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operand<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Array(Option<usize>),
    Object(Option<usize>),
}

impl Operand<'_> {
    fn to_number(self) -> f64 {
        match self {
            Operand::Null => 0.0,
            Operand::Bool(b) => f64::from(u8::from(b)),
            Operand::Num(n) => n,
            Operand::Str(s) => parse_number(s),
            Operand::Array(_) | Operand::Object(_) => f64::NAN,
        }
    }

    fn same_kind(self, other: Operand<'_>) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// Brings both operands to one kind where GitHub does: number vs string
/// parses the string; a bool or null on either side becomes a number first.
fn coerce<'a>(mut l: Operand<'a>, mut r: Operand<'a>) -> (Operand<'a>, Operand<'a>) {
    loop {
        if l.same_kind(r) {
            return (l, r);
        }
        match (l, r) {
            (Operand::Num(_), Operand::Str(s)) => return (l, Operand::Num(parse_number(s))),
            (Operand::Str(s), Operand::Num(_)) => return (Operand::Num(parse_number(s)), r),
            (Operand::Bool(_) | Operand::Null, _) => l = Operand::Num(l.to_number()),
            (_, Operand::Bool(_) | Operand::Null) => r = Operand::Num(r.to_number()),
            _ => return (l, r),
        }
    }
}

/// `==`.
pub(crate) fn loose_eq(l: Operand<'_>, r: Operand<'_>) -> bool {
    match coerce(l, r) {
        (Operand::Null, Operand::Null) => true,
        (Operand::Bool(a), Operand::Bool(b)) => a == b,
        (Operand::Num(a), Operand::Num(b)) => a == b,
        (Operand::Str(a), Operand::Str(b)) => cmp_ignore_case(a, b) == Ordering::Equal,
        (Operand::Array(Some(a)), Operand::Array(Some(b)))
        | (Operand::Object(Some(a)), Operand::Object(Some(b))) => a == b,
        _ => false,
    }
}

/// `<` and `>` (and, with [`loose_eq`], `<=` and `>=`): `Some(ordering)` when
/// the coerced operands are ordered, `None` when the comparison is false
/// whichever way it is asked (NaN, arrays, objects, mixed kinds).
pub(crate) fn loose_cmp(l: Operand<'_>, r: Operand<'_>) -> Option<Ordering> {
    match coerce(l, r) {
        (Operand::Num(a), Operand::Num(b)) => a.partial_cmp(&b),
        (Operand::Str(a), Operand::Str(b)) => Some(cmp_ignore_case(a, b)),
        (Operand::Bool(a), Operand::Bool(b)) => Some(a.cmp(&b)),
        _ => None,
    }
}

/// Upper-cases one char the way an ordinal case-insensitive comparison does:
/// simple one-to-one mappings only.
fn fold(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Ordinal comparison ignoring case (.NET's `OrdinalIgnoreCase`).
pub(crate) fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.chars().map(fold).cmp(b.chars().map(fold))
}

pub(crate) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    let mut s = s.chars().map(fold);
    prefix.chars().map(fold).all(|p| s.next() == Some(p))
}

pub(crate) fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    let mut s = s.chars().rev().map(fold);
    suffix.chars().rev().map(fold).all(|p| s.next() == Some(p))
}

pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let hay: Vec<char> = haystack.chars().map(fold).collect();
    let needle: Vec<char> = needle.chars().map(fold).collect();
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_dotnet_g15() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-2.0, "-2"),
            (0.5, "0.5"),
            (-0.5, "-0.5"),
            (123_456.789, "123456.789"),
            (0.845_512_408_225_57, "0.84551240822557"),
            (1234.56, "1234.56"),
            (120.0, "120"),
            (0.012, "0.012"),
            (123_456_789.0, "123456789"),
            (1e14, "100000000000000"),
            (1e15, "1E+15"),
            (1.5e300, "1.5E+300"),
            (0.0001, "0.0001"),
            (0.00001, "1E-05"),
            (-2.5e-7, "-2.5E-07"),
            (0.1 + 0.2, "0.3"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (9_007_199_254_740_993.0, "9.00719925474099E+15"),
        ];
        for (n, want) in cases {
            assert_eq!(format_number(*n), *want, "formatting {n:?}");
        }
    }

    #[test]
    fn strings_parse_like_javascript_number() {
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("  ", 0.0),
            (" 12 ", 12.0),
            ("-1.5e2", -150.0),
            ("+3", 3.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("0xff", 255.0),
            ("0xFF", 255.0),
            ("0xffffffff", -1.0),
            ("0o17", 15.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, want) in cases {
            assert_eq!(parse_number(s), *want, "parsing {s:?}");
        }
        for bad in [
            "abc",
            "1e",
            "e5",
            ".",
            "-",
            "0x",
            "0X10",
            "0x1ffffffff",
            "inf",
            "nan",
            "1_0",
        ] {
            assert!(parse_number(bad).is_nan(), "{bad:?} should be NaN");
        }
    }

    #[test]
    fn truthiness() {
        for falsy in [
            Value::Null,
            Value::Bool(false),
            Value::Number(0.0),
            Value::Number(-0.0),
            Value::Number(f64::NAN),
            Value::str(""),
        ] {
            assert!(!truthy(&falsy), "{falsy:?}");
        }
        for t in [
            Value::Bool(true),
            Value::Number(-1.0),
            Value::str("false"),
            Value::str("0"),
            Value::Array(vec![]),
            Value::object::<String>([]),
        ] {
            assert!(truthy(&t), "{t:?}");
        }
    }

    #[test]
    fn loose_equality_coerces() {
        use Operand as O;
        assert!(loose_eq(O::Null, O::Num(0.0)));
        assert!(loose_eq(O::Bool(true), O::Str("1")));
        assert!(loose_eq(O::Str("abc"), O::Str("ABC")));
        assert!(loose_eq(O::Str(" "), O::Num(0.0)));
        assert!(loose_eq(O::Null, O::Str("")));
        assert!(!loose_eq(O::Null, O::Str("abc")));
        assert!(!loose_eq(O::Num(f64::NAN), O::Num(f64::NAN)));
        assert!(!loose_eq(O::Array(None), O::Array(None)));
        assert!(loose_eq(O::Array(Some(1)), O::Array(Some(1))));
        assert!(!loose_eq(O::Array(Some(1)), O::Object(Some(1))));
        assert!(!loose_eq(O::Object(Some(1)), O::Str("Object")));
        assert_eq!(loose_cmp(O::Str("a"), O::Str("B")), Some(Ordering::Less));
        assert_eq!(
            loose_cmp(O::Bool(false), O::Bool(true)),
            Some(Ordering::Less)
        );
        assert_eq!(loose_cmp(O::Str("2"), O::Num(10.0)), Some(Ordering::Less));
        assert_eq!(loose_cmp(O::Array(None), O::Num(1.0)), None);
    }

    #[test]
    fn case_insensitive_helpers() {
        assert!(starts_with_ignore_case("Hello world", "HELLO"));
        assert!(!starts_with_ignore_case("He", "Hello"));
        assert!(ends_with_ignore_case("Hello world", "WORLD"));
        assert!(contains_ignore_case("Hello world", "O W"));
        assert!(contains_ignore_case("abc", ""));
        assert!(!contains_ignore_case("abc", "abcd"));
        assert!(contains_ignore_case("STRASSE ÄÖ", "äö"));
    }
}
