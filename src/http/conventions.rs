//! What the handlers' annotations leave out of the OpenAPI document but
//! every route shares, written once here: the success envelope, the
//! error responses and the refusal of NUL characters.

use std::collections::BTreeSet;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::server::Server;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::Modify;

/// Applies the shared conventions to the merged document.
pub fn describe(openapi: &mut OpenApi) {
    Document.modify(openapi);
    DistinctIds.modify(openapi);
    Exact.modify(openapi);
    Envelopes.modify(openapi);
    ErrorResponses.modify(openapi);
    NoNulStrings.modify(openapi);
}

/// Every operation of the document, with its path.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = (&String, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
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
        .flatten()
        .map(move |operation| (path, operation))
    })
}

/// What the document says of itself: its server (this one: the paths are
/// absolute), every tag an operation uses declared with what it groups,
/// public operations marked so (`security: []`, no credentials), and a
/// description on every success response.
struct Document;

/// The tags of the operations and what each groups.
const TAGS: &[(&str, &str)] = &[
    (
        "auth",
        "Registration, login, token refresh, logout and passwords",
    ),
    (
        "admin",
        "The platform's super admins: clinics, staff across clinics, platform audit",
    ),
    ("users", "The staff accounts of the caller's clinic"),
    ("clinic", "The caller's clinic and its preferences"),
    ("patients", "Patients of the clinic"),
    ("gdpr", "A patient's GDPR rights: export and erasure"),
    ("practitioners", "The clinic's practitioners"),
    ("catalogue", "Acts, products and their categories"),
    ("appointments", "The agenda: appointments and their items"),
    ("medical records", "Medical records (doctor and admin only)"),
    ("consents", "Consent templates and patients' consents"),
    ("documents", "Quotes, invoices and credit notes"),
    ("audit", "The clinic's audit trail"),
];

impl Modify for Document {
    fn modify(&self, openapi: &mut OpenApi) {
        openapi.servers = Some(vec![Server::builder()
            .url("/")
            .description(Some("this server"))
            .build()]);
        let mut used = BTreeSet::new();
        for (_, operation) in operations(openapi) {
            used.extend(operation.tags.iter().flatten().cloned());
            if operation.security.is_none() {
                operation.security = Some(Vec::new());
            }
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response {
                    if response.description.is_empty() {
                        response.description = match status.as_str() {
                            "201" => "created: `data` is the new resource",
                            "204" => "done: no content",
                            _ => "success: `data` is the answer",
                        }
                        .to_owned();
                    }
                }
            }
        }
        openapi.tags = Some(
            used.into_iter()
                .map(|name| {
                    let description = TAGS
                        .iter()
                        .find(|(tag, _)| *tag == name)
                        .map(|(_, description)| *description);
                    TagBuilder::new()
                        .name(name)
                        .description(description)
                        .build()
                })
                .collect(),
        );
    }
}

/// Where one input type serves both creation and change, what the server
/// refuses in one of them, said in the document: an update cannot move a
/// record to another patient (`patientId` is refused), and a new consent is
/// pending or signed, never revoked.
struct Exact;

/// Update bodies that may not name a patient.
const PATIENT_SET_ON_CREATION: &[&str] =
    &["AppointmentInput", "ConsentInput", "MedicalRecordInput"];

impl Modify for Exact {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in PATIENT_SET_ON_CREATION {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                object.properties.remove("patientId");
            }
        }
        if let Some(RefOr::T(Schema::Object(consent))) = components.schemas.get_mut("NewConsent") {
            if let Some(RefOr::T(Schema::Object(status))) = consent.properties.get_mut("status") {
                status.enum_values = Some(vec!["pending".into(), "signed".into()]);
            }
        }
    }
}

/// An update handler serves PUT and PATCH alike (`method(put, patch)`), so
/// both operations carry its name as operationId; the PUT one gets `_put`
/// appended, keeping every id unique.
struct DistinctIds;

impl Modify for DistinctIds {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let (Some(put), Some(patch)) = (&mut item.put, &item.patch) {
                if put.operation_id == patch.operation_id {
                    put.operation_id = put.operation_id.take().map(|id| format!("{id}_put"));
                }
            }
        }
    }
}

/// Handlers document the `data` they answer; `extract::{ok, created, page}`
/// send it as `{"success": true, "data": ..., "pagination"?}`. This rewrites
/// every 2xx JSON schema into that envelope (`pagination` for lists).
struct Envelopes;

impl Modify for Envelopes {
    fn modify(&self, openapi: &mut OpenApi) {
        for (_, operation) in operations(openapi) {
            for (status, response) in &mut operation.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                let content = response.content.get_mut("application/json");
                let Some(content) = content.filter(|_| status.starts_with('2')) else {
                    continue;
                };
                if let Some(data) = content.schema.take() {
                    content.schema = Some(envelope(data).into());
                }
            }
        }
    }
}

fn envelope(data: RefOr<Schema>) -> Schema {
    let is_list = matches!(data, RefOr::T(Schema::Array(_)));
    let envelope = ObjectBuilder::new()
        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
        .required("success")
        .property("data", data)
        .required("data");
    let envelope = if is_list {
        envelope.property("pagination", Ref::from_schema_name("Pagination"))
    } else {
        envelope
    };
    envelope.build().into()
}

/// The errors an operation can answer, with the `ErrorEnvelope` schema,
/// from what its route extracts: a body (400, 413, 415, 422), query or path
/// parameters (400; 404 for a path id), a bearer token (401, 403), a clinic
/// database (503), plus the login's and refresh's own. Responses a handler
/// documents keep their description and gain the schema.
struct ErrorResponses;

const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "bad_request: a malformed query parameter, path id or JSON body",
    ),
    ("401", "unauthorized (or invalid_credentials)"),
    ("403", "forbidden for this role, or clinic_inactive"),
    ("404", "not_found"),
    ("413", "payload_too_large: the body is over 1 MiB"),
    (
        "415",
        "unsupported_media_type: the body must be application/json",
    ),
    (
        "422",
        "validation_failed: `details` names each invalid field",
    ),
    (
        "429",
        "too_many_attempts: retry after `Retry-After` seconds",
    ),
    (
        "503",
        "clinic_unavailable: retry after `Retry-After` seconds",
    ),
];

impl ErrorResponses {
    fn statuses(path: &str, operation: &Operation) -> Vec<&'static str> {
        let located = |place: ParameterIn| {
            operation
                .parameters
                .iter()
                .flatten()
                .any(|parameter| parameter.parameter_in == place)
        };
        let (query, id, body) = (
            located(ParameterIn::Query),
            located(ParameterIn::Path),
            operation.request_body.is_some(),
        );
        let bearer = operation
            .security
            .iter()
            .flatten()
            .any(|requirement| *requirement == SecurityRequirement::new("bearer", [""; 0]));
        let clinic =
            bearer && !path.starts_with("/api/v1/auth/") && !path.starts_with("/api/v1/admin/");
        let mut statuses = Vec::new();
        let mut add = |status, applies| {
            if applies {
                statuses.push(status);
            }
        };
        add("400", query || id || body);
        add("401", bearer);
        add(
            "403",
            bearer || path == "/api/v1/auth/login" || path == "/api/v1/auth/refresh",
        );
        add("404", id);
        add("413", body);
        add("415", body);
        add("422", body);
        add("429", path == "/api/v1/auth/login");
        add("503", clinic);
        statuses
    }
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let schema = Content::new(Some(Ref::from_schema_name("ErrorEnvelope")));
        for (path, operation) in operations(openapi) {
            let statuses = Self::statuses(path, operation);
            let responses = &mut operation.responses.responses;
            for status in statuses {
                let description = ERRORS
                    .iter()
                    .find(|(code, _)| *code == status)
                    .map_or("error", |(_, description)| description);
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| ResponseBuilder::new().description(description).into());
            }
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response {
                    if status.starts_with(['4', '5']) && response.content.is_empty() {
                        response
                            .content
                            .insert("application/json".to_owned(), schema.clone());
                    }
                }
            }
        }
    }
}

/// The extractors refuse NUL characters in query strings and JSON strings
/// (`extract`); this says so on every request string the document leaves
/// otherwise unconstrained (a format, enum or pattern already excludes NUL).
struct NoNulStrings;

const NO_NUL: &str = r"^[^\u0000]*$";

impl Modify for NoNulStrings {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut referenced = Vec::new();
        for (_, operation) in operations(openapi) {
            let parameters = operation.parameters.iter_mut().flatten();
            let bodies = operation.request_body.iter_mut().flat_map(|body| {
                body.content
                    .values_mut()
                    .filter_map(|content| content.schema.as_mut())
            });
            for schema in parameters
                .filter_map(|parameter| parameter.schema.as_mut())
                .chain(bodies)
            {
                refuse_nul(schema, &mut referenced);
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let mut done = BTreeSet::new();
        while let Some(name) = referenced.pop() {
            if done.insert(name.clone()) {
                if let Some(schema) = components.schemas.get_mut(&name) {
                    refuse_nul(schema, &mut referenced);
                }
            }
        }
    }
}

/// Adds [`NO_NUL`] to the free strings of `schema`, noting the components
/// it refers to.
fn refuse_nul(schema: &mut RefOr<Schema>, referenced: &mut Vec<String>) {
    let schema = match schema {
        RefOr::Ref(reference) => {
            let name = reference
                .ref_location
                .rsplit('/')
                .next()
                .unwrap_or_default();
            referenced.push(name.to_owned());
            return;
        }
        RefOr::T(schema) => schema,
    };
    match schema {
        Schema::Object(object) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(kind) => *kind == Type::String,
                SchemaType::Array(kinds) => kinds.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if is_string
                && object.pattern.is_none()
                && object.format.is_none()
                && object.enum_values.is_none()
            {
                object.pattern = Some(NO_NUL.to_owned());
            }
            for property in object.properties.values_mut() {
                refuse_nul(property, referenced);
            }
            if let Some(AdditionalProperties::RefOr(extra)) =
                object.additional_properties.as_deref_mut()
            {
                refuse_nul(extra, referenced);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                refuse_nul(items, referenced);
            }
        }
        Schema::OneOf(one_of) => one_of
            .items
            .iter_mut()
            .for_each(|s| refuse_nul(s, referenced)),
        Schema::AllOf(all_of) => all_of
            .items
            .iter_mut()
            .for_each(|s| refuse_nul(s, referenced)),
        Schema::AnyOf(any_of) => any_of
            .items
            .iter_mut()
            .for_each(|s| refuse_nul(s, referenced)),
        _ => {}
    }
}
