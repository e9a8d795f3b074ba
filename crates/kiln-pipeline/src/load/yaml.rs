//! Text to a YAML node tree, turning parser failures into diagnostics.

use super::cx::Cx;
use super::node::At;
use kiln_model::workflow::Loc;
use marked_yaml::{LoadError, LoaderOptions, Marker, Node};

/// Parse `src`; `None` (with a diagnostic) when it is not a YAML mapping.
pub(crate) fn parse(cx: &mut Cx<'_>, src: &str) -> Option<Node> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    // marked-yaml asserts on parser states it believes unreachable; a file
    // that reaches one must be a diagnostic, not a crash of the server.
    let parsed = std::panic::catch_unwind(|| marked_yaml::parse_yaml_with_options(0, src, options));
    let err = match parsed {
        Ok(Ok(node)) => return Some(node),
        Ok(Err(e)) => e,
        Err(_) => {
            cx.error(cx.top(), "the file could not be parsed as yaml");
            return None;
        }
    };
    let at = |m: &Marker| At {
        loc: Loc {
            line: m.line() as u32,
            col: m.column() as u32,
        },
        len: 1,
    };
    match &err {
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => {
            cx.error_help(
                at(m),
                "a workflow must be a mapping",
                "start with keys such as `on:` and `jobs:`",
            );
        }
        LoadError::UnexpectedAnchor(m) => {
            cx.error(
                at(m),
                "yaml anchors and aliases are not supported in workflows",
            );
        }
        LoadError::UnexpectedTag(m) => cx.error(at(m), "yaml tags are not supported in workflows"),
        LoadError::MappingKeyMustBeScalar(m) => {
            cx.error(at(m), "mapping keys must be plain strings")
        }
        LoadError::ScanError(m, e) => cx.error(at(m), format!("invalid yaml: {}", e.info())),
        LoadError::DuplicateKey(dup) => {
            let first = dup.prev_key.span().start().map_or(0, |m| m.line());
            let key = &dup.key;
            let mut place = key.span().start().map_or(cx.top(), at);
            place.len = key.as_str().chars().count() as u32;
            cx.error_help(
                place,
                format!("duplicate key `{}`", key.as_str()),
                format!("first defined on line {first}"),
            );
        }
    }
    None
}
