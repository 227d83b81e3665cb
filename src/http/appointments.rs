//! `/appointments` and their items, in the caller's clinic database. Every
//! list, read and change is recorded in the clinic's audit trail within the
//! same transaction.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::patient_data::{self, unknown};
use super::state::AppState;
use super::tenant::{Appointments, Clinic};
use crate::clinic::appointment_items::{self as items, AppointmentItem, AppointmentItemInput};
use crate::clinic::appointments::{
    self, Appointment, AppointmentFields, AppointmentInput, Filter, NewAppointment,
};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::references;
use crate::validation::{self as v, FieldErrors};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_appointments, create_appointment))
        .routes(routes!(
            get_appointment,
            update_appointment,
            delete_appointment
        ))
        .routes(routes!(list_items, add_item))
        .routes(routes!(delete_item))
}

const RESOURCE: &str = "appointment";
const ITEM_RESOURCE: &str = "appointment_item";

fn overlap() -> ApiError {
    ApiError::conflict("the practitioner already has an appointment at that time")
}

/// `?from=&to=&practitionerId=&patientId=&status=&limit=&offset=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    /// RFC 3339: appointments ending after this instant.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: appointments starting before this instant; after `from`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    pub practitioner_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    #[param(schema_with = appointments::status_schema)]
    pub status: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0 to 100000, default 0.
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
}

impl AppointmentQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let instant = |name: &str, raw: &Option<String>| {
            raw.clone()
                .map(v::timestamp)
                .transpose()
                .map_err(|message| {
                    ApiError::BadRequest(format!("{name} {message} (encode + as %2B)"))
                })
        };
        let from = instant("from", &self.from)?;
        let to = instant("to", &self.to)?;
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(ApiError::BadRequest("to must be after from".into()));
            }
        }
        let status = self
            .status
            .clone()
            .map(v::one_of(appointments::STATUSES))
            .transpose()
            .map_err(|message| ApiError::BadRequest(format!("status {message}")))?;
        Ok(Filter {
            from,
            to,
            practitioner_id: self.practitioner_id,
            patient_id: self.patient_id,
            status,
        })
    }
}

/// Live appointments by start time. `from` and `to` select those that
/// overlap the window.
#[utoipa::path(get, path = "/appointments", tag = "appointments", security(("bearer" = [])),
    params(AppointmentQuery), responses((status = 200, body = [Appointment]),
        (status = 400, description = "bad_request")))]
async fn list_appointments(
    clinic: Clinic<Appointments>,
    Query(query): Query<AppointmentQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = patient_data::page(query.limit, query.offset)?;
    let filter = query.filter()?;
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = appointments::list(&mut tx, &filter, page_request).await?;
    let mut entry = Entry::new(Action::List, RESOURCE).details(json!({
        "limit": page_request.limit, "offset": page_request.offset,
        "from": filter.from, "to": filter.to, "practitionerId": filter.practitioner_id,
        "patientId": filter.patient_id, "status": filter.status,
    }));
    if let Some(patient) = filter.patient_id {
        entry = entry.patient(patient);
    }
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Books an appointment. 409 when the practitioner is already booked then.
#[utoipa::path(post, path = "/appointments", tag = "appointments", security(("bearer" = [])),
    request_body = NewAppointment, responses((status = 201, body = Appointment),
        (status = 422, description = "validation_failed"), (status = 409, description = "conflict")))]
async fn create_appointment(
    clinic: Clinic<Appointments>,
    Json(input): Json<AppointmentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = input.present_fields();
    let fields = input.apply(None)?;
    let mut tx = clinic.begin_write().await?;
    appointments::lock_schedule(&mut tx, fields.practitioner_id).await?;
    check_references(&mut tx, None, &fields).await?;
    let appointment = appointments::insert(&mut tx, &fields)
        .await
        .on_constraint(appointments::NO_OVERLAP, overlap)
        .on_constraint(appointments::PATIENT_FK, unknown("patientId"))
        .on_constraint(appointments::PRACTITIONER_FK, unknown("practitionerId"))?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(appointment.id)
        .patient(fields.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(created(appointment))
}

/// The patient and practitioner a booking names must be live rows of this
/// clinic; a practitioner newly given must also be active.
async fn check_references(
    tx: &mut sqlx::PgConnection,
    current: Option<&AppointmentFields>,
    next: &AppointmentFields,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    if current.is_none() {
        references::check_patient(tx, next.patient_id, "patientId", &mut errors).await?;
    }
    if current.map(|c| c.practitioner_id) != Some(next.practitioner_id) {
        references::check_practitioner(
            tx,
            next.practitioner_id,
            "practitionerId",
            true,
            &mut errors,
        )
        .await?;
    }
    Ok(errors.finish(())?)
}

/// One appointment with its items.
#[utoipa::path(get, path = "/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Appointment),
        (status = 404, description = "not_found")))]
async fn get_appointment(
    clinic: Clinic<Appointments>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let appointment = appointments::find(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Read, RESOURCE)
        .resource(id)
        .patient(appointment.fields.patient_id);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(ok(appointment))
}

/// Updates the given fields: reschedules (checked against the practitioner's
/// other appointments), moves the status along its workflow
/// (`scheduled -> confirmed -> completed`, or to `cancelled` / `no_show`),
/// edits reason and notes. Completed, cancelled and no-show appointments
/// keep their status and schedule (409).
#[utoipa::path(method(put, patch), path = "/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AppointmentInput,
    responses((status = 200, body = Appointment), (status = 404, description = "not_found"),
        (status = 409, description = "conflict"), (status = 422, description = "validation_failed")))]
async fn update_appointment(
    clinic: Clinic<Appointments>,
    Path(id): Path<Uuid>,
    Json(input): Json<AppointmentInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let current = appointments::find_for_update(&mut tx, id).await.found()?;
    let changed = input.present_fields();
    let fields = input.apply(Some(&current.fields))?;
    if let Some(reason) = appointments::refusal(&current.fields, &fields) {
        return Err(ApiError::conflict(reason));
    }
    if appointments::reschedules(&current.fields, &fields) {
        appointments::lock_schedule(&mut tx, fields.practitioner_id).await?;
    }
    check_references(&mut tx, Some(&current.fields), &fields).await?;
    let appointment = appointments::update(&mut tx, id, &fields)
        .await
        .on_constraint(appointments::NO_OVERLAP, overlap)
        .on_constraint(appointments::PRACTITIONER_FK, unknown("practitionerId"))?;
    let entry = Entry::new(Action::Update, RESOURCE)
        .resource(id)
        .patient(fields.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(ok(appointment))
}

/// Soft-deletes an appointment; its time slot is free again.
#[utoipa::path(delete, path = "/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_appointment(
    clinic: Clinic<Appointments>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let patient = appointments::soft_delete(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Delete, RESOURCE)
        .resource(id)
        .patient(patient);
    tx.commit(entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The appointment's live items, in the order they were added.
#[utoipa::path(get, path = "/appointments/{id}/items", tag = "appointments",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = [AppointmentItem]), (status = 404, description = "not_found")))]
async fn list_items(
    clinic: Clinic<Appointments>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let appointment = appointments::find(&mut tx, id).await.found()?;
    let rows = items::list(&mut tx, id).await?;
    let entry = Entry::new(Action::List, ITEM_RESOURCE)
        .patient(appointment.fields.patient_id)
        .details(json!({ "appointmentId": id }));
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(ok(rows))
}

/// Adds a catalogue product or service to the appointment, at the price and
/// VAT rate the catalogue has now. Cancelled and no-show appointments take
/// no items (409).
#[utoipa::path(post, path = "/appointments/{id}/items", tag = "appointments",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = AppointmentItemInput,
    responses((status = 201, body = AppointmentItem), (status = 404, description = "not_found"),
        (status = 409, description = "conflict"), (status = 422, description = "validation_failed")))]
async fn add_item(
    clinic: Clinic<Appointments>,
    Path(id): Path<Uuid>,
    Json(input): Json<AppointmentItemInput>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = input.present_fields();
    let item = input.check()?;
    let mut tx = clinic.begin_write().await?;
    let appointment = items_appointment(&mut tx, id).await?;
    let entry = items::catalogue_entry(&mut tx, item.product_service_id)
        .await?
        .ok_or_else(unknown("productServiceId"))?;
    if !entry.is_active {
        return Err(FieldErrors::single(
            "productServiceId",
            "names a product or service that is not active",
        )
        .into());
    }
    let added = items::insert(&mut tx, id, item, entry)
        .await
        .on_constraint(items::PRODUCT_FK, unknown("productServiceId"))?;
    let audit = Entry::new(Action::Create, ITEM_RESOURCE)
        .resource(added.id)
        .patient(appointment.fields.patient_id)
        .fields(changed)
        .details(json!({ "appointmentId": id }));
    tx.commit(audit).await?;
    Ok(created(added))
}

/// Soft-deletes one item of the appointment.
#[utoipa::path(delete, path = "/appointments/{id}/items/{itemId}", tag = "appointments",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("itemId" = Uuid, Path)),
    responses((status = 204), (status = 404, description = "not_found"),
        (status = 409, description = "conflict")))]
async fn delete_item(
    clinic: Clinic<Appointments>,
    Path((id, item_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let appointment = items_appointment(&mut tx, id).await?;
    if !items::soft_delete(&mut tx, id, item_id).await? {
        return Err(ApiError::NotFound);
    }
    let entry = Entry::new(Action::Delete, ITEM_RESOURCE)
        .resource(item_id)
        .patient(appointment.fields.patient_id)
        .details(json!({ "appointmentId": id }));
    tx.commit(entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The live appointment whose items change, locked against a concurrent
/// status change; 409 when it was cancelled or missed.
async fn items_appointment(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Appointment, ApiError> {
    let appointment = appointments::find_for_share(tx, id).await.found()?;
    match appointment.fields.status.as_str() {
        "cancelled" | "no_show" => Err(ApiError::conflict(format!(
            "a {} appointment's items cannot change",
            appointment.fields.status
        ))),
        _ => Ok(appointment),
    }
}
