//! OpenAPI schemas for the model types the wire contract carries (behind
//! the `openapi` feature, so only the server compiles them). Ids and
//! statuses derive theirs beside their definitions; the two here are
//! written by hand because deriving says the wrong thing:
//!
//! - [`Value`] is untagged and has a hand-written `Deserialize`: on the
//!   wire it is any JSON value. Its schema lists the six JSON types rather
//!   than being the empty schema `{}`, which means the same but which
//!   utoipa's own types cannot read back;
//! - [`Workflow`] is the validated pipeline IR, a deep tree that only
//!   kiln's own agent reads (it runs it with the job runner): it is
//!   published as an opaque object rather than as forty schemas that would
//!   invite other clients to depend on the IR.

use crate::value::Value;
use crate::workflow::Workflow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

impl utoipa::PartialSchema for Value {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::Null,
                Type::Boolean,
                Type::Number,
                Type::String,
                Type::Array,
                Type::Object,
            ]))
            .description(Some(
                "Any JSON value (an expression value: null, boolean, number, string, array \
                 or object).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Value {}

impl utoipa::PartialSchema for Workflow {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "The validated workflow (kiln-model's pipeline IR, `Workflow` in \
                 crates/kiln-model/src/workflow.rs), as the server parsed it at the run's \
                 commit. Opaque in this document: only kiln's agent reads it, and its shape \
                 follows kiln's releases.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Workflow {}
