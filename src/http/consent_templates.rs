//! `/consent-templates`: the texts patients consent to, kept as versions.
//! Lists show each template's current version; any live version is
//! readable by id. Editing a version nobody has signed changes it in place
//! (200); editing one that has been signed creates the next version, which
//! becomes current (201, with the new version), so signed consents keep
//! the text that was signed. Only the current version is edited or deleted
//! (409 otherwise). Deleting a template soft-deletes its current version;
//! earlier versions stay readable by id (never listed), so consents given
//! on them keep their text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found};
use super::extract::{created, ok, page, Json, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Clinic, ConsentTemplates};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::consent_templates::{
    self as templates, ConsentTemplate, ConsentTemplateInput, NewConsentTemplate,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
}

const RESOURCE: &str = "consent_template";

fn not_current() -> ApiError {
    ApiError::conflict("this is an earlier version of the template; change its current version")
}

/// Current versions, by title; `?search=` matches the title.
#[utoipa::path(get, path = "/consent-templates", tag = "consents", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [ConsentTemplate]),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_templates(
    clinic: Clinic<ConsentTemplates>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = templates::list_current(&mut tx, query.search(), page_request).await?;
    let entry = Entry::new(Action::List, RESOURCE).details(json!({
        "limit": page_request.limit, "offset": page_request.offset, "search": query.search().is_some(),
    }));
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a template: its version 1.
#[utoipa::path(post, path = "/consent-templates", tag = "consents", security(("bearer" = [])),
    request_body = NewConsentTemplate, responses((status = 201, body = ConsentTemplate),
        (status = 422, description = "validation_failed")))]
async fn create_template(
    clinic: Clinic<ConsentTemplates>,
    Json(input): Json<ConsentTemplateInput>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = input.present_fields();
    let text = input.apply(None)?;
    let mut tx = clinic.begin_write().await?;
    let template = templates::insert(&mut tx, &text).await?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(template.id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(created(template))
}

/// Any live version, current or earlier.
#[utoipa::path(get, path = "/consent-templates/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ConsentTemplate),
        (status = 404, description = "not_found")))]
async fn get_template(
    clinic: Clinic<ConsentTemplates>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let template = templates::find(&mut tx, id).await.found()?;
    tx.commit().await?;
    clinic
        .record_read(Entry::new(Action::Read, RESOURCE).resource(id))
        .await?;
    Ok(ok(template))
}

/// Updates the current version's title or body: in place (200) while no
/// consent was signed on it, else as a new version (201).
#[utoipa::path(method(put, patch), path = "/consent-templates/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ConsentTemplateInput,
    responses((status = 200, body = ConsentTemplate, description = "edited in place"),
        (status = 201, body = ConsentTemplate, description = "the new version"),
        (status = 404, description = "not_found"), (status = 409, description = "conflict"),
        (status = 422, description = "validation_failed")))]
async fn update_template(
    clinic: Clinic<ConsentTemplates>,
    Path(id): Path<Uuid>,
    Json(input): Json<ConsentTemplateInput>,
) -> Result<Response, ApiError> {
    let mut tx = clinic.begin_write().await?;
    // Locked: a consent being signed on this version waits, or is seen.
    let current = templates::find_for_update(&mut tx, id).await.found()?;
    if !current.is_current {
        return Err(not_current());
    }
    let changed = input.present_fields();
    let text = input.apply(Some(&current.text()))?;
    let (template, is_new_version) = if text == current.text() {
        (current, false)
    } else if templates::has_signatures(&mut tx, id).await? {
        (
            templates::insert_next_version(&mut tx, &current, &text).await?,
            true,
        )
    } else {
        (templates::update_in_place(&mut tx, id, &text).await?, false)
    };
    let entry = Entry::new(Action::Update, RESOURCE)
        .resource(template.id)
        .fields(changed)
        .details(json!({ "editedVersion": id, "version": template.version }));
    tx.commit(entry).await?;
    Ok(if is_new_version {
        created(template).into_response()
    } else {
        ok(template).into_response()
    })
}

/// Soft-deletes the template's current version: it leaves the lists and
/// takes no new consents. Earlier versions stay readable by id.
#[utoipa::path(delete, path = "/consent-templates/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found"),
        (status = 409, description = "conflict")))]
async fn delete_template(
    clinic: Clinic<ConsentTemplates>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let current = templates::find_for_update(&mut tx, id).await.found()?;
    if !current.is_current {
        return Err(not_current());
    }
    templates::soft_delete(&mut tx, id).await?;
    tx.commit(Entry::new(Action::Delete, RESOURCE).resource(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
