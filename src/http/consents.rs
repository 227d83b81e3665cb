//! `/consents`: patients' consents on template versions. A consent is
//! created pending (or signed, when recording one already given) on the
//! current version of a template; `PATCH {"status": "signed"}` then
//! `{"status": "revoked"}` move it along, the server stamping `signedAt` and
//! `revokedAt`. While pending, it may be pointed at another current
//! version. Only pending consents are deleted: a signed one is evidence,
//! revoked rather than deleted (409).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::patient_data::{unknown, PatientQuery};
use super::state::AppState;
use super::tenant::{Clinic, Consents};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::consent_templates as templates;
use crate::clinic::consents::{self, Consent, ConsentInput, NewConsent};
use crate::clinic::references::{self, UNKNOWN};
use crate::validation::FieldErrors;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_consents, create_consent))
        .routes(routes!(get_consent, update_consent, delete_consent))
}

const RESOURCE: &str = "consent";

/// Live consents, newest first; `?patientId=` keeps one patient's.
#[utoipa::path(get, path = "/consents", tag = "consents", security(("bearer" = [])),
    params(PatientQuery), responses((status = 200, body = [Consent])))]
async fn list_consents(
    clinic: Clinic<Consents>,
    Query(query): Query<PatientQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = consents::list(&mut tx, query.patient_id, page_request).await?;
    let entry = query.audit_entry(RESOURCE, page_request);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Records a patient's consent to a template's text (the text signed is kept with it).
#[utoipa::path(post, path = "/consents", tag = "consents", security(("bearer" = [])),
    request_body = NewConsent, responses((status = 201, body = Consent),
        (status = 422, description = "validation_failed")))]
async fn create_consent(
    clinic: Clinic<Consents>,
    Json(input): Json<ConsentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = input.present_fields();
    let fields = input.apply(None)?;
    let mut tx = clinic.begin_write().await?;
    let mut errors = FieldErrors::default();
    references::check_patient(&mut tx, fields.patient_id, "patientId", &mut errors).await?;
    check_template(&mut tx, fields.template_id, &mut errors).await?;
    errors.finish(())?;
    let id = consents::insert(&mut tx, &fields)
        .await
        .on_constraint(consents::PATIENT_FK, unknown("patientId"))
        .on_constraint(consents::TEMPLATE_FK, unknown("templateId"))?;
    let consent = consents::find(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a new consent cannot be read back")))?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(id)
        .patient(fields.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(created(consent))
}

/// Refuses `templateId` unless it is the current live version of a
/// template, and share-locks it so it is neither edited nor replaced until
/// the consent is stored.
async fn check_template(
    tx: &mut PgConnection,
    id: Uuid,
    errors: &mut FieldErrors,
) -> Result<(), ApiError> {
    match templates::find_for_share(tx, id).await? {
        None => errors.add("templateId", UNKNOWN),
        Some(template) if !template.is_current => errors.add(
            "templateId",
            "names an earlier version of the template; use its current version",
        ),
        Some(_) => {}
    }
    Ok(())
}

/// One consent, with the text that was signed.
#[utoipa::path(get, path = "/consents/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Consent),
        (status = 404, description = "not_found")))]
async fn get_consent(
    clinic: Clinic<Consents>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let consent = consents::find(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Read, RESOURCE)
        .resource(id)
        .patient(consent.patient_id);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(ok(consent))
}

/// Moves the status along `pending -> signed -> revoked` (409 otherwise),
/// or points a pending consent at another current template version.
#[utoipa::path(method(put, patch), path = "/consents/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ConsentInput,
    responses((status = 200, body = Consent), (status = 404, description = "not_found"),
        (status = 409, description = "conflict"), (status = 422, description = "validation_failed")))]
async fn update_consent(
    clinic: Clinic<Consents>,
    Path(id): Path<Uuid>,
    Json(input): Json<ConsentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let current = consents::find_for_update(&mut tx, id).await.found()?;
    let changed = input.present_fields();
    let before = current.fields();
    let fields = input.apply(Some(&before))?;
    if let Some(reason) = consents::refusal(&before.status, &fields.status) {
        return Err(ApiError::conflict(reason));
    }
    let retargeted = fields.template_id != before.template_id;
    if retargeted && before.status != "pending" {
        return Err(ApiError::conflict(
            "a consent that was signed keeps the template version it was signed on",
        ));
    }
    if retargeted {
        let mut errors = FieldErrors::default();
        check_template(&mut tx, fields.template_id, &mut errors).await?;
        errors.finish(())?;
    } else if fields.status == "signed" && before.status == "pending" {
        // Signing: the version's text must not change under the signature.
        if templates::find_for_share(&mut tx, fields.template_id)
            .await?
            .is_none()
        {
            return Err(ApiError::conflict(
                "this consent's template was deleted; ask for consent on a current template",
            ));
        }
    }
    consents::update(&mut tx, id, &fields)
        .await
        .on_constraint(consents::TEMPLATE_FK, unknown("templateId"))?;
    let consent = consents::find(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Update, RESOURCE)
        .resource(id)
        .patient(consent.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(ok(consent))
}

/// Soft-deletes a pending consent; a signed or revoked one is kept (409).
#[utoipa::path(delete, path = "/consents/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found"),
        (status = 409, description = "conflict")))]
async fn delete_consent(
    clinic: Clinic<Consents>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let consent = consents::find_for_update(&mut tx, id).await.found()?;
    if consent.status != "pending" {
        return Err(ApiError::conflict(
            "a consent that was signed is kept as evidence: revoke it instead",
        ));
    }
    consents::soft_delete(&mut tx, id).await?;
    let entry = Entry::new(Action::Delete, RESOURCE)
        .resource(id)
        .patient(consent.patient_id);
    tx.commit(entry).await?;
    Ok(StatusCode::NO_CONTENT)
}
