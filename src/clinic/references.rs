//! Ids a request names in its body (`patientId`, `practitionerId`, ...).
//! Each must be a live row of this clinic's database, else the field is
//! refused (422). The check runs inside the request's transaction and takes
//! a share lock, so the row cannot be soft-deleted before the transaction
//! that refers to it commits.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::validation::FieldErrors;

/// The message for an id that names no live row of the clinic.
pub const UNKNOWN: &str = "does not name a record of this clinic";

/// Refuses `field` unless `id` is a live patient.
pub async fn check_patient(
    conn: &mut PgConnection,
    id: Uuid,
    field: &str,
    errors: &mut FieldErrors,
) -> Result<(), sqlx::Error> {
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT true FROM patients WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    if live.is_none() {
        errors.add(field, UNKNOWN);
    }
    Ok(())
}

/// Refuses `field` unless `id` is a live practitioner, and, when
/// `must_be_active`, one who still practises (`isActive`).
pub async fn check_practitioner(
    conn: &mut PgConnection,
    id: Uuid,
    field: &str,
    must_be_active: bool,
    errors: &mut FieldErrors,
) -> Result<(), sqlx::Error> {
    let active: Option<bool> = sqlx::query_scalar(
        "SELECT is_active FROM practitioners WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    match active {
        None => errors.add(field, UNKNOWN),
        Some(false) if must_be_active => {
            errors.add(field, "names a practitioner who is not active")
        }
        Some(_) => {}
    }
    Ok(())
}
