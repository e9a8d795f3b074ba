//! `strategy.matrix` expansion, exactly as GitHub Actions does it.
//!
//! A job with a matrix runs once per *combination*. GitHub's algorithm (its
//! `MatrixBuilder`), which workflows in the wild depend on:
//!
//! 1. the cartesian product of the axes, in axis order, the first axis
//!    varying slowest; a matrix without axes has no product at all;
//! 2. `exclude`: a combination is dropped when some exclude entry matches it,
//!    i.e. every leaf of the entry equals the combination's value at the same
//!    path (so a partial object matches an object value), with the
//!    expression language's loose `==` (strings ignore case);
//! 3. `include`: each entry splits into a *filter* (its keys that are axes)
//!    and *extras* (the rest). The extras of every entry whose filter matches
//!    a product combination are added to it, later entries overwriting what
//!    earlier ones added (axis values are never overwritten, since a filter
//!    only matches when they are equal). An entry that matched nothing is
//!    appended as a combination of its own, in include order.
//!
//! At most [`MAX_COMBINATIONS`] combinations are allowed, and a matrix that
//! yields none is an error. The loader expands literal matrices to report
//! such errors early; the core expands dynamic ones (`fromJSON(...)`) at run
//! time through [`split`] and [`expand`].

use kiln_model::Value;

/// GitHub's limit on the jobs one matrix may generate.
pub const MAX_COMBINATIONS: usize = 256;

/// One combination: the `matrix` context of one job instance, keys in order
/// (axes first, in axis order, then include extras in the order they came).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Combination(Vec<(String, Value)>);

impl Combination {
    pub fn new() -> Self {
        Combination(Vec::new())
    }

    /// The value of `key`, looked up as expressions do (exact, then ignoring case).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .or_else(|| self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .map(|(_, v)| v)
    }

    /// Set `key`, keeping its position when it is already there.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `matrix` context object.
    pub fn to_value(&self) -> Value {
        Value::object(self.0.iter().map(|(k, v)| (k.clone(), v.clone())))
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Combination {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut c = Combination::new();
        for (k, v) in iter {
            c.insert(k, v);
        }
        c
    }
}

/// Why a matrix cannot be expanded. Messages follow GitHub's where it has one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MatrixError {
    #[error("a matrix must be an object, found {found}")]
    NotAnObject { found: &'static str },
    #[error("matrix axis `{axis}` must be a list, found {found}")]
    AxisNotAList { axis: String, found: &'static str },
    #[error("matrix axis `{axis}` has no values")]
    EmptyAxis { axis: String },
    #[error("matrix `{key}` must be a list of objects, found {found}")]
    NotAList {
        key: &'static str,
        found: &'static str,
    },
    #[error("matrix {key} entry {index} must be an object, found {found}")]
    EntryNotAnObject {
        key: &'static str,
        index: usize,
        found: &'static str,
    },
    #[error("matrix {key} entry {index} is empty")]
    EmptyEntry { key: &'static str, index: usize },
    #[error("matrix exclude key `{key}` does not match any axis of the matrix")]
    UnknownExcludeKey { key: String },
    #[error("matrix defines no axes and no include entries")]
    NoAxes,
    #[error("matrix yields no combinations")]
    Empty,
    #[error("matrix yields more than {MAX_COMBINATIONS} combinations")]
    TooMany,
}

/// Key/value pairs of an include entry: its filter or its extras.
type Entry<'v> = Vec<(&'v String, &'v Value)>;

/// Axes in order, each with its values.
pub type Axes = Vec<(String, Vec<Value>)>;

/// Expand a matrix to its combinations, in GitHub's order.
pub fn expand(
    axes: &[(String, Vec<Value>)],
    include: &[Value],
    exclude: &[Value],
) -> Result<Vec<Combination>, MatrixError> {
    if axes.is_empty() && include.is_empty() {
        return Err(MatrixError::NoAxes);
    }
    for (axis, values) in axes {
        if values.is_empty() {
            return Err(MatrixError::EmptyAxis { axis: axis.clone() });
        }
    }
    let is_axis = |k: &str| axes.iter().any(|(a, _)| a == k);
    let excludes = entries("exclude", exclude)?;
    for entry in &excludes {
        if let Some(key) = entry.keys().find(|k| !is_axis(k)) {
            return Err(MatrixError::UnknownExcludeKey { key: key.clone() });
        }
    }
    // Each include entry as (filter, extras).
    let includes: Vec<(Entry<'_>, Entry<'_>)> = entries("include", include)?
        .into_iter()
        .map(|entry| entry.iter().partition(|(k, _)| is_axis(k)))
        .collect();
    let mut matched = vec![false; includes.len()];

    let mut out = Vec::new();
    for combo in Product::new(axes) {
        if excludes
            .iter()
            .any(|e| e.iter().all(|(k, v)| leaf_match(combo.get(k), v)))
        {
            continue;
        }
        let mut combo = combo;
        for (i, (filter, extras)) in includes.iter().enumerate() {
            if filter.iter().all(|(k, v)| leaf_match(combo.get(k), v)) {
                matched[i] = true;
                for (k, v) in extras {
                    combo.insert(k.as_str(), (*v).clone());
                }
            }
        }
        out.push(combo);
        if out.len() > MAX_COMBINATIONS {
            return Err(MatrixError::TooMany);
        }
    }
    for ((filter, extras), matched) in includes.iter().zip(matched) {
        if !matched {
            out.push(
                filter
                    .iter()
                    .chain(extras)
                    .map(|(k, v)| (k.as_str(), (*v).clone()))
                    .collect(),
            );
        }
    }
    match out.len() {
        0 => Err(MatrixError::Empty),
        n if n > MAX_COMBINATIONS => Err(MatrixError::TooMany),
        _ => Ok(out),
    }
}

/// Split a whole matrix given as one value (`${{ fromJSON(...) }}`) into
/// axes, include and exclude. Axis order is the object's key order.
pub fn split(v: &Value) -> Result<(Axes, Vec<Value>, Vec<Value>), MatrixError> {
    let Value::Object(map) = v else {
        return Err(MatrixError::NotAnObject { found: kind(v) });
    };
    let mut axes = Vec::new();
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for (k, v) in map {
        match (k.as_str(), v) {
            ("include", Value::Array(a)) => include = a.clone(),
            ("exclude", Value::Array(a)) => exclude = a.clone(),
            ("include", other) => {
                return Err(MatrixError::NotAList {
                    key: "include",
                    found: kind(other),
                });
            }
            ("exclude", other) => {
                return Err(MatrixError::NotAList {
                    key: "exclude",
                    found: kind(other),
                });
            }
            (_, Value::Array(a)) => axes.push((k.clone(), a.clone())),
            (_, other) => {
                return Err(MatrixError::AxisNotAList {
                    axis: k.clone(),
                    found: kind(other),
                });
            }
        }
    }
    Ok((axes, include, exclude))
}

/// GitHub's default display name of a matrix job: the job's name followed by
/// the combination's scalar values (nested ones included, in order), as in
/// `build (ubuntu, 1.70)`. Without scalar values the name stays as it is.
pub fn display_name(job_name: &str, combination: &Combination) -> String {
    let mut segments = Vec::new();
    for (_, v) in combination.iter() {
        collect_segments(v, &mut segments);
    }
    if segments.is_empty() {
        job_name.to_owned()
    } else {
        format!("{job_name} ({})", segments.join(", "))
    }
}

fn collect_segments(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(b.to_string()),
        Value::Number(n) => out.push(number_string(*n)),
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_segments(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_segments(i, out)),
    }
}

/// Numbers as GitHub prints them: integers without a fraction.
fn number_string(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The include/exclude entries as objects, with GitHub's checks.
fn entries<'v>(
    key: &'static str,
    list: &'v [Value],
) -> Result<Vec<&'v std::collections::BTreeMap<String, Value>>, MatrixError> {
    list.iter()
        .enumerate()
        .map(|(index, v)| match v {
            Value::Object(m) if m.is_empty() => Err(MatrixError::EmptyEntry { key, index }),
            Value::Object(m) => Ok(m),
            other => Err(MatrixError::EntryNotAnObject {
                key,
                index,
                found: kind(other),
            }),
        })
        .collect()
}

/// Whether a filter value matches the combination's value: every scalar leaf
/// of `filter` equals the value at the same path of `actual`.
fn leaf_match(actual: Option<&Value>, filter: &Value) -> bool {
    match filter {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, f)| leaf_match(actual.and_then(|a| a.get_ci(k)), f)),
        Value::Array(items) => items.iter().enumerate().all(|(i, f)| {
            let item = match actual {
                Some(Value::Array(a)) => a.get(i),
                _ => None,
            };
            leaf_match(item, f)
        }),
        scalar => loose_eq(actual.unwrap_or(&Value::Null), scalar),
    }
}

/// The expression language's `==`: same-typed scalars compare directly
/// (strings ignoring case), mixed scalars compare as numbers, and arrays or
/// objects equal no scalar.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (x, y) => to_number(x) == to_number(y),
    }
}

fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => *n,
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else if let Some(hex) = t.strip_prefix("0x") {
                i64::from_str_radix(hex, 16)
                    .map(|n| n as f64)
                    .unwrap_or(f64::NAN)
            } else {
                t.parse().unwrap_or(f64::NAN)
            }
        }
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The cartesian product of the axes, first axis slowest; empty without axes.
struct Product<'a> {
    axes: &'a [(String, Vec<Value>)],
    next: Vec<usize>,
    done: bool,
}

impl<'a> Product<'a> {
    fn new(axes: &'a [(String, Vec<Value>)]) -> Self {
        let done = axes.is_empty() || axes.iter().any(|(_, v)| v.is_empty());
        Product {
            axes,
            next: vec![0; axes.len()],
            done,
        }
    }
}

impl Iterator for Product<'_> {
    type Item = Combination;

    fn next(&mut self) -> Option<Combination> {
        if self.done {
            return None;
        }
        let combo = self
            .axes
            .iter()
            .zip(&self.next)
            .filter_map(|((k, values), &i)| values.get(i).map(|v| (k.as_str(), v.clone())))
            .collect();
        // Advance like an odometer, the last axis fastest.
        let mut pos = self.axes.len();
        loop {
            if pos == 0 {
                self.done = true;
                break;
            }
            pos -= 1;
            self.next[pos] += 1;
            if self.next[pos] < self.axes[pos].1.len() {
                break;
            }
            self.next[pos] = 0;
        }
        Some(combo)
    }
}
