//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`.
//!
//! It is generated, not written, so that it cannot drift from what the
//! server does: the schemas are derived from the wire types in kiln-proto
//! (their `openapi` feature), and the paths come from the `#[utoipa::path]`
//! annotation on each handler, collected by the same route table that
//! builds the router (`api::routes`). A handler that is routed is
//! documented; `tests.rs` probes the real router to check that nothing is
//! served beside the table.
//!
//! Each operation names the role its token needs in the `x-kiln-role`
//! extension (`none`, `viewer`, `maintainer`, `admin`, `agent`); `roles`
//! turns that into the sentence and the security requirement clients read.

mod errors;
mod roles;
#[cfg(test)]
mod tests;

pub(crate) use errors::{ApiErrors, BodyErrors, HookErrors, PublicErrors};

use axum::Json;
use kiln_proto::api::{ErrorBody, ErrorKind};
use kiln_proto::routes as r;
use std::sync::OnceLock;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiln",
        description = "kiln's REST API, its agent protocol (docs/protocol.md) and its webhook \
                       receivers. Generated from the server's route table and the wire types \
                       of the kiln-proto crate. Every error body is an `ErrorBody`: read its \
                       `kind`, since two kinds may share a status. The `workflow` of an agent's \
                       `Assignment` is kiln's pipeline IR and is described as an opaque object.",
    ),
    components(schemas(ErrorBody, ErrorKind)),
    tags(
        (name = "system", description = "Health and this document"),
        (name = "repos", description = "Repositories, their forges, deploys and environments"),
        (name = "runs", description = "Runs, their results and logs"),
        (name = "admin", description = "Agents, the queue and tokens"),
        (name = "agent", description = "The agent protocol (docs/protocol.md)"),
        (name = "hooks", description = "Webhook deliveries, signed by the forge"),
    )
)]
pub(crate) struct ApiDoc;

/// The document, built once from the route table.
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        // The body limit only shapes the router half, which is dropped.
        let mut doc = super::routes(super::MAX_BODY_BYTES).into_openapi();
        roles::apply(&mut doc);
        absent_not_null(&mut doc);
        doc
    })
}

/// utoipa writes an optional request body (`Option<Json<T>>`) as a
/// nullable schema, but the server takes no body or a `T`, never `null`:
/// keep the body optional (`required` unset) and drop the `null` branch.
fn absent_not_null(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, Required};
    for item in doc.paths.paths.values_mut() {
        for op in roles::operations_mut(item) {
            let Some(body) = op.request_body.as_mut() else {
                continue;
            };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                    continue;
                };
                let mut rest = one_of.items.iter().filter(|s| {
                    !matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
                });
                if let (Some(only), None) = (rest.next(), rest.next()) {
                    content.schema = Some(only.clone());
                }
            }
        }
    }
}

#[utoipa::path(
    get,
    path = r::OPENAPI,
    operation_id = "openapi",
    tag = "system",
    summary = "This document (OpenAPI 3.1)",
    extensions(("x-kiln-role" = json!("none"))),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json"),
        PublicErrors,
    )
)]
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(spec())
}
