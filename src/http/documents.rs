//! `/documents`: quotes, invoices and credit notes of the caller's clinic:
//! list, create, read, update (drafts; status changes of issued documents),
//! soft delete (drafts), and conversion of an accepted quote into an
//! invoice. Every call records its audit event in its own transaction.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found};
use super::extract::{created, ok, page, Json, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Clinic, Documents};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::documents::input::NewDocument;
use crate::clinic::documents::store::{self, Filter};
use crate::clinic::documents::workflow::{self, Changed, DocumentError};
use crate::clinic::documents::{Document, DocumentInput, DocumentStatus, DocumentType};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_documents, create_document))
        .routes(routes!(get_document, update_document, delete_document))
        .routes(routes!(convert_document))
}

/// The audit trail's name for this resource.
const RESOURCE: &str = "document";

impl From<DocumentError> for ApiError {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::NotFound => ApiError::NotFound,
            DocumentError::Conflict(message) => ApiError::conflict(message),
            DocumentError::Invalid(errors) => errors.into(),
            DocumentError::Database(error) => error.into(),
        }
    }
}

/// List parameters: the shared `limit`, `offset`, `search` (matches the
/// number) and the document filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0 to 100000, default 0.
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
    /// Part of a number, e.g. `INV-2026`; at most 100 characters.
    #[param(max_length = 100)]
    pub search: Option<String>,
    #[param(value_type = Option<DocumentType>)]
    pub document_type: Option<String>,
    #[param(value_type = Option<DocumentStatus>)]
    pub status: Option<String>,
    pub patient_id: Option<Uuid>,
}

/// Live documents, newest first, each with its lines.
#[utoipa::path(get, path = "/documents", tag = "documents", security(("bearer" = [])),
    params(DocumentQuery), responses((status = 200, body = [Document]),
        (status = 400, description = "bad_request"),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_documents(
    clinic: Clinic<Documents>,
    Query(query): Query<DocumentQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let list = ListQuery {
        limit: query.limit,
        offset: query.offset,
        search: query.search.clone(),
    };
    let page_request = list.page()?;
    let filter = Filter {
        document_type: parse_filter(
            query.document_type.as_deref(),
            DocumentType::parse,
            "documentType",
        )?,
        status: parse_filter(query.status.as_deref(), DocumentStatus::parse, "status")?,
        patient_id: query.patient_id,
        search: list.search(),
    };
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = store::list(&mut tx, &filter, page_request).await?;
    let mut entry = Entry::new(Action::List, RESOURCE).details(json!({
        "limit": page_request.limit, "offset": page_request.offset,
        "documentType": filter.document_type, "status": filter.status,
        "patientId": filter.patient_id, "search": filter.search.is_some(),
    }));
    if let Some(patient) = filter.patient_id {
        entry = entry.patient(patient);
    }
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

fn parse_filter<T>(
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|value| {
        parse(value).ok_or_else(|| ApiError::BadRequest(format!("bad query parameter: {name}")))
    })
    .transpose()
}

/// Creates a quote or invoice, computing its amounts; `status: sent`
/// issues it at once.
#[utoipa::path(post, path = "/documents", tag = "documents", security(("bearer" = [])),
    request_body = NewDocument, responses((status = 201, body = Document),
        (status = 422, description = "validation_failed")))]
async fn create_document(
    clinic: Clinic<Documents>,
    Json(input): Json<DocumentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let changed = workflow::create(&mut tx, input).await?;
    let document = &changed.document;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(document.id)
        .patient(document.patient_id)
        .fields(changed.fields);
    tx.commit(entry).await?;
    Ok(created(changed.document))
}

/// One quote, invoice or credit note, with its lines and totals.
#[utoipa::path(get, path = "/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Document), (status = 404, description = "not_found")))]
async fn get_document(
    clinic: Clinic<Documents>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let document = store::find(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Read, RESOURCE)
        .resource(id)
        .patient(document.patient_id);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(ok(document))
}

/// Updates a draft's given fields (`items` replaces the list; `status:
/// sent` issues it), or changes an issued document's status; cancelling an
/// invoice issues its credit note (`creditNoteId`). Editing an issued
/// document, or a change its status does not allow, is a 409.
#[utoipa::path(method(put, patch), path = "/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = DocumentInput,
    responses((status = 200, body = Document), (status = 404, description = "not_found"),
        (status = 409, description = "conflict"), (status = 422, description = "validation_failed")))]
async fn update_document(
    clinic: Clinic<Documents>,
    Path(id): Path<Uuid>,
    Json(input): Json<DocumentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let Changed {
        document,
        fields,
        credit_note,
    } = workflow::update(&mut tx, id, input).await?;
    let updated = Entry::new(Action::Update, RESOURCE)
        .resource(id)
        .patient(document.patient_id)
        .fields(fields);
    match &credit_note {
        // The invoice's change, then the credit note it made.
        Some(credit_note) => {
            tx.record(updated).await?;
            let created = Entry::new(Action::Create, RESOURCE)
                .resource(credit_note.id)
                .patient(credit_note.patient_id)
                .details(json!({ "sourceDocumentId": id }));
            tx.commit(created).await?;
        }
        None => tx.commit(updated).await?,
    }
    Ok(ok(document))
}

/// Soft-deletes a draft; an issued document is kept (409).
#[utoipa::path(delete, path = "/documents/{id}", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found"),
        (status = 409, description = "conflict")))]
async fn delete_document(
    clinic: Clinic<Documents>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let deleted = workflow::delete(&mut tx, id).await?;
    let entry = Entry::new(Action::Delete, RESOURCE)
        .resource(id)
        .patient(deleted.patient_id);
    tx.commit(entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a draft invoice from an accepted quote (same patient, items and
/// currency; `sourceDocumentId` = the quote). 409 for anything but an
/// accepted quote, or a quote already converted.
#[utoipa::path(post, path = "/documents/{id}/convert", tag = "documents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 201, body = Document),
        (status = 404, description = "not_found"), (status = 409, description = "conflict")))]
async fn convert_document(
    clinic: Clinic<Documents>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let invoice = workflow::convert(&mut tx, id).await?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(invoice.id)
        .patient(invoice.patient_id)
        .details(json!({ "sourceDocumentId": id }));
    tx.commit(entry).await?;
    Ok(created(invoice))
}
