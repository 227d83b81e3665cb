//! Appointments: the model, the checks on what a request may set, the
//! status workflow and the queries. That two live appointments of one
//! practitioner never overlap is the database's own rule
//! (`appointments_no_overlap`), so it holds under concurrent bookings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, Postgres};
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use uuid::Uuid;

use super::table::{Lock, Table};
use super::Page;
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

pub const STATUSES: &[&str] = &[
    "scheduled",
    "confirmed",
    "completed",
    "cancelled",
    "no_show",
];

/// The exclusion constraint that keeps one practitioner's live
/// appointments apart (half-open ranges: back-to-back is fine; cancelled
/// and no-show appointments do not block).
pub const NO_OVERLAP: &str = "appointments_no_overlap";
pub const PATIENT_FK: &str = "appointments_patient_id_fkey";
pub const PRACTITIONER_FK: &str = "appointments_practitioner_id_fkey";

/// Completed, cancelled and no-show appointments are history: their status
/// and schedule no longer change (reason and notes still may).
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "cancelled" | "no_show")
}

/// Whether an appointment in status `from` may move to `to`. Staying in the
/// same status is no change and always allowed.
pub fn may_become(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            (
                "scheduled",
                "confirmed" | "cancelled" | "no_show" | "completed"
            ) | ("confirmed", "completed" | "cancelled" | "no_show")
        )
}

/// An appointment as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: AppointmentFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an appointment holds, checked.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentFields {
    pub patient_id: Uuid,
    pub practitioner_id: Uuid,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    /// `scheduled|confirmed|completed|cancelled|no_show`
    pub status: String,
    pub reason: Option<String>,
    pub notes: Option<String>,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentInput {
    /// Set when booking; it cannot change afterwards.
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub patient_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub practitioner_id: Patch<Uuid>,
    /// RFC 3339.
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    pub start_at: Patch<String>,
    /// RFC 3339, after `startAt`.
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    pub end_at: Patch<String>,
    /// Default `scheduled`.
    #[serde(default)]
    #[schema(schema_with = status_schema)]
    pub status: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<500>)]
    pub reason: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<10_000>)]
    pub notes: Patch<String>,
}

pub fn status_schema() -> Object {
    v::schema::one_of(STATUSES, false)
}

/// The body of a booking, for the OpenAPI document.
pub type NewAppointment = Create<AppointmentInput>;

impl Creatable for AppointmentInput {
    const CREATE_NAME: &'static str = "NewAppointment";
    const REQUIRED: &'static [&'static str] = &["patientId", "practitionerId", "startAt", "endAt"];
}

impl AppointmentInput {
    /// The names of the fields this request sets or clears (for the audit
    /// trail: names only, never values).
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("patientId", self.patient_id.is_present()),
            ("practitionerId", self.practitioner_id.is_present()),
            ("startAt", self.start_at.is_present()),
            ("endAt", self.end_at.is_present()),
            ("status", self.status.is_present()),
            ("reason", self.reason.is_present()),
            ("notes", self.notes.is_present()),
        ])
    }

    /// Applies this request onto `current` (`None` when booking) and checks
    /// the result's fields. The workflow rules are [`refusal`]'s.
    pub fn apply(
        self,
        current: Option<&AppointmentFields>,
    ) -> Result<AppointmentFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        if let (Some(current), Patch::Value(id)) = (current, &self.patient_id) {
            if *id != current.patient_id {
                e.add(
                    "patientId",
                    "cannot be changed: book a new appointment for the other patient",
                );
            }
        }
        let patient_id =
            self.patient_id
                .apply_required(current.map(|c| c.patient_id), Ok, "patientId", e);
        let practitioner_id = self.practitioner_id.apply_required(
            current.map(|c| c.practitioner_id),
            Ok,
            "practitionerId",
            e,
        );
        let start_at =
            self.start_at
                .apply_required(current.map(|c| c.start_at), v::timestamp, "startAt", e);
        let end_at =
            self.end_at
                .apply_required(current.map(|c| c.end_at), v::timestamp, "endAt", e);
        let status = self.status.apply_required(
            Some(current.map_or("scheduled", |c| &c.status).to_owned()),
            v::one_of(STATUSES),
            "status",
            e,
        );
        if let (Some(start), Some(end)) = (start_at, end_at) {
            if end <= start {
                e.add("endAt", "must be after startAt");
            }
        }
        let reason = self.reason.apply(
            current.and_then(|c| c.reason.clone()),
            v::text(500),
            "reason",
            e,
        );
        let notes = self.notes.apply(
            current.and_then(|c| c.notes.clone()),
            v::text(10_000),
            "notes",
            e,
        );
        match (patient_id, practitioner_id, start_at, end_at, status) {
            (
                Some(patient_id),
                Some(practitioner_id),
                Some(start_at),
                Some(end_at),
                Some(status),
            ) => errors.finish(AppointmentFields {
                patient_id,
                practitioner_id,
                start_at,
                end_at,
                status,
                reason,
                notes,
            }),
            _ => Err(errors),
        }
    }
}

/// Why `next` may not replace `current` (a 409), if it may not: a status
/// change the workflow does not allow, or a final appointment rescheduled.
pub fn refusal(current: &AppointmentFields, next: &AppointmentFields) -> Option<String> {
    if !may_become(&current.status, &next.status) {
        return Some(format!(
            "a {} appointment cannot become {}",
            current.status, next.status
        ));
    }
    (is_final(&current.status) && reschedules(current, next))
        .then(|| format!("a {} appointment cannot be rescheduled", current.status))
}

/// Whether `next` moves the appointment in time or to another practitioner.
pub fn reschedules(current: &AppointmentFields, next: &AppointmentFields) -> bool {
    current.start_at != next.start_at
        || current.end_at != next.end_at
        || current.practitioner_id != next.practitioner_id
}

/// What a list selects; every filter is optional.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// With `to`, the window: appointments overlapping `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub practitioner_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub status: Option<String>,
}

const COLUMNS: &str = "id, patient_id, practitioner_id, start_at, end_at, status, reason, notes, \
    created_at, updated_at";

const TABLE: Table = Table {
    name: "appointments",
    alias: "appointments",
    joins: "",
    columns: COLUMNS,
};

/// Makes bookings of one practitioner take turns until the caller's
/// transaction ends. Without it, two overlapping bookings inserted at the
/// same instant can each wait on the other inside the exclusion check
/// (a deadlock); in turn, the second one meets a clean
/// [`NO_OVERLAP`] violation. Take it before any other lock on the
/// practitioner's row.
pub async fn lock_schedule(
    conn: &mut PgConnection,
    practitioner_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM practitioners WHERE id = $1 FOR NO KEY UPDATE")
        .bind(practitioner_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A live appointment by id.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Appointment>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live appointment, locked against any change until the caller's
/// transaction ends.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Appointment>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// A live appointment, locked against changes (not against other readers)
/// until the caller's transaction ends: for work on its items.
pub async fn find_for_share(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Appointment>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Share).await
}

/// Live appointments matching `filter`, by start time.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    page: Page,
) -> Result<(Vec<Appointment>, i64), sqlx::Error> {
    let condition = "deleted_at IS NULL
        AND ($1::timestamptz IS NULL OR end_at > $1)
        AND ($2::timestamptz IS NULL OR start_at < $2)
        AND ($3::uuid IS NULL OR practitioner_id = $3)
        AND ($4::uuid IS NULL OR patient_id = $4)
        AND ($5::text IS NULL OR status = $5)";
    let order = "ORDER BY start_at, id LIMIT $6 OFFSET $7";
    TABLE
        .list(conn, condition, order, page, |q| {
            q.bind(filter.from)
                .bind(filter.to)
                .bind(filter.practitioner_id)
                .bind(filter.patient_id)
                .bind(filter.status.clone())
        })
        .await
}

pub async fn insert(
    conn: &mut PgConnection,
    fields: &AppointmentFields,
) -> Result<Appointment, sqlx::Error> {
    let statement = format!(
        "INSERT INTO appointments (patient_id, practitioner_id, start_at, end_at, status, reason, notes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {COLUMNS}"
    );
    bind_fields(sqlx::query_as(&statement), fields)
        .fetch_one(conn)
        .await
}

/// Stores `fields` onto a live appointment; its patient, set on booking,
/// never changes (`$1` must be the one it has).
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &AppointmentFields,
) -> Result<Appointment, sqlx::Error> {
    let statement = format!(
        "UPDATE appointments SET practitioner_id = $2, start_at = $3, end_at = $4, status = $5,
            reason = $6, notes = $7, updated_at = now()
         WHERE id = $8 AND patient_id = $1 AND deleted_at IS NULL
         RETURNING {COLUMNS}"
    );
    bind_fields(sqlx::query_as(&statement), fields)
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Binds `fields` as `$1` to `$7`, in the column order of [`insert`].
fn bind_fields<'q>(
    query: QueryAs<'q, Postgres, Appointment, PgArguments>,
    fields: &'q AppointmentFields,
) -> QueryAs<'q, Postgres, Appointment, PgArguments> {
    query
        .bind(fields.patient_id)
        .bind(fields.practitioner_id)
        .bind(fields.start_at)
        .bind(fields.end_at)
        .bind(&fields.status)
        .bind(&fields.reason)
        .bind(&fields.notes)
}

/// Soft-deletes a live appointment and returns its patient; `None` when
/// there was none. A deleted appointment no longer blocks its time slot.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    TABLE.soft_delete_returning(conn, id, "patient_id").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> AppointmentInput {
        serde_json::from_str(json).unwrap()
    }

    const BOOKING: &str = r#"{"patientId": "00000000-0000-0000-0000-000000000001",
        "practitionerId": "00000000-0000-0000-0000-000000000002",
        "startAt": "2026-03-02T09:00:00+01:00", "endAt": "2026-03-02T08:30:00Z"}"#;

    #[test]
    fn booking_requires_the_schedule_and_defaults_to_scheduled() {
        let errors = input("{}").apply(None).unwrap_err().into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["patientId", "practitionerId", "startAt", "endAt"]);
        let booked = input(BOOKING).apply(None).unwrap();
        assert_eq!(booked.status, "scheduled");
        assert_eq!(booked.start_at.to_rfc3339(), "2026-03-02T08:00:00+00:00");
    }

    #[test]
    fn end_must_follow_start_and_times_are_rfc3339() {
        let booked = input(BOOKING).apply(None).unwrap();
        let errors = input(r#"{"endAt": "2026-03-02T08:00:00Z"}"#)
            .apply(Some(&booked))
            .unwrap_err()
            .into_details();
        assert_eq!(errors[0].field, "endAt");
        let errors = input(r#"{"startAt": "tomorrow at nine", "status": "done"}"#)
            .apply(Some(&booked))
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["startAt", "status"]);
    }

    #[test]
    fn the_patient_is_fixed_once_booked() {
        let booked = input(BOOKING).apply(None).unwrap();
        let same = input(r#"{"patientId": "00000000-0000-0000-0000-000000000001"}"#);
        assert!(same.apply(Some(&booked)).is_ok());
        let other = input(r#"{"patientId": "00000000-0000-0000-0000-000000000009"}"#);
        assert_eq!(
            other.apply(Some(&booked)).unwrap_err().into_details()[0].field,
            "patientId"
        );
    }

    #[test]
    fn workflow_moves_forward_only() {
        for (from, to) in [
            ("scheduled", "confirmed"),
            ("scheduled", "completed"),
            ("scheduled", "no_show"),
            ("confirmed", "cancelled"),
            ("completed", "completed"),
        ] {
            assert!(may_become(from, to), "{from} -> {to}");
        }
        for (from, to) in [
            ("confirmed", "scheduled"),
            ("completed", "cancelled"),
            ("cancelled", "scheduled"),
            ("no_show", "completed"),
        ] {
            assert!(!may_become(from, to), "{from} -> {to}");
        }
    }

    #[test]
    fn final_appointments_keep_their_schedule_but_take_notes() {
        let mut done = input(BOOKING).apply(None).unwrap();
        done.status = "completed".into();
        let noted = input(r#"{"notes": "went well"}"#)
            .apply(Some(&done))
            .unwrap();
        assert_eq!(refusal(&done, &noted), None);
        let moved = input(r#"{"endAt": "2026-03-02T09:00:00Z"}"#)
            .apply(Some(&done))
            .unwrap();
        assert!(refusal(&done, &moved).is_some());
    }
}
