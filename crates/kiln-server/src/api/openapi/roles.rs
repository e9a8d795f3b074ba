//! Who may call an operation. Each handler's annotation names the role in
//! the `x-kiln-role` extension (and `x-kiln-session` for agent calls after
//! `register`); this pass turns those into the sentence at the end of the
//! description and the operation's security requirement, so the wording
//! and the schemes live in one place.

use kiln_proto::agent::SESSION_HEADER;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

pub(crate) const ROLE: &str = "x-kiln-role";
pub(crate) const SESSION: &str = "x-kiln-session";

/// The roles an operation may name.
#[cfg(test)]
pub(crate) const ROLES: [&str; 5] = ["none", "viewer", "maintainer", "admin", "agent"];

/// Every operation of a path item, mutably.
pub(crate) fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn flag(op: &Operation, name: &str) -> Option<serde_json::Value> {
    op.extensions.as_ref().and_then(|e| e.get(name)).cloned()
}

pub(crate) fn apply(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A kiln token (`kiln token create`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "agent_session",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            SESSION_HEADER,
            "The session secret `register` handed to the agent",
        ))),
    );
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            let role = flag(op, ROLE);
            let role = role.as_ref().and_then(|v| v.as_str()).unwrap_or("");
            let session = flag(op, SESSION).and_then(|v| v.as_bool()) == Some(true);
            let (sentence, security) = match role {
                "none" => ("No token needed.".to_owned(), Vec::new()),
                "agent" if session => (
                    format!(
                        "Needs an `agent` token and the agent's session secret in \
                         `{SESSION_HEADER}`."
                    ),
                    vec![
                        SecurityRequirement::new("bearer", Vec::<String>::new())
                            .add("agent_session", Vec::<String>::new()),
                    ],
                ),
                "agent" => (
                    "Needs an `agent` token.".to_owned(),
                    vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
                ),
                "viewer" | "maintainer" | "admin" => (
                    format!(
                        "Needs a `{role}` token (or a stronger one: admin ⊃ maintainer ⊃ viewer)."
                    ),
                    vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
                ),
                // An unknown role is a test failure (tests.rs), not a guess.
                _ => continue,
            };
            op.description = Some(match op.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{sentence}"),
                Some(_) | None => sentence,
            });
            op.security = Some(security);
        }
    }
}
