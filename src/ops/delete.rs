//! Deleting a clinic that never held patient data (`medicalpro clinic
//! delete`): a registration by mistake, a test, an abandoned trial. Its
//! database is closed and its sessions ended before it is checked, so no
//! patient can be written between the check and the drop; then its database
//! and roles are dropped, its staff accounts deleted (their emails are free
//! again) and its central row kept as a tombstone without personal data
//! (see `central::companies::tombstone`), with a platform audit event. A
//! clinic holding any patient data is refused and left as it was.

use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{connect, ClinicRecord, Fleet};
use crate::central::{audit, companies, users};
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

/// The tables of a clinic database that hold patient data: a row in any of
/// them refuses the deletion.
pub const PATIENT_DATA_TABLES: &[&str] = &[
    "patients",
    "medical_records",
    "appointments",
    "appointment_items",
    "consents",
    "documents",
    "document_items",
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub id: Uuid,
    pub database: String,
    /// Staff accounts deleted with it.
    pub staff_accounts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("clinic {id} holds patient data (rows in {}): it is not deleted", tables.join(", "))]
    HoldsPatientData { id: ClinicId, tables: Vec<String> },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DeleteError {
    fn from(error: sqlx::Error) -> Self {
        DeleteError::Failed(error.into())
    }
}

/// Deletes a provisioned clinic whose database holds no patient data (a
/// missing database holds none, so a deletion interrupted after the drop
/// can be run again).
pub async fn delete_clinic(fleet: &Fleet, id: ClinicId) -> Result<Deleted, DeleteError> {
    let clinic = fleet.clinic(id).await?;
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let dropped = if clinic.is_shared() {
        drop_schema_if_empty(fleet, &mut admin, &clinic).await
    } else {
        drop_if_empty(fleet, &mut admin, &clinic).await
    };
    let _ = admin.close().await;
    dropped?;
    let staff_accounts = tombstone(fleet, &clinic, "clinic.deleted").await?;
    Ok(Deleted {
        id: id.0,
        database: clinic.db_name,
        staff_accounts,
    })
}

/// Drops the clinic's database and roles once it is shut and found to hold
/// no patient data; otherwise reopens it and refuses.
async fn drop_if_empty(
    fleet: &Fleet,
    admin: &mut PgConnection,
    clinic: &ClinicRecord,
) -> Result<(), DeleteError> {
    match shut_and_check(fleet, admin, clinic).await {
        Ok(tables) if tables.is_empty() => {}
        refused => {
            ddl::reopen_database(admin, &clinic.db_name).await?;
            return Err(DeleteError::HoldsPatientData {
                id: ClinicId(clinic.id),
                tables: refused?,
            });
        }
    }
    ddl::drop_database(admin, &clinic.db_name).await?;
    ddl::drop_roles(
        admin,
        &TenantRoles::of(ClinicId(clinic.id), &fleet.settings.prefix),
    )
    .await?;
    Ok(())
}

/// A shared clinic: in one transaction in its pod, its patient-data tables
/// locked (no request writes meanwhile) and found empty, its schema
/// dropped; then its roles. A missing schema holds nothing.
async fn drop_schema_if_empty(
    fleet: &Fleet,
    admin: &mut PgConnection,
    clinic: &ClinicRecord,
) -> Result<(), DeleteError> {
    let schema = quote_ident(clinic.schema());
    let mut in_pod = connect(&ddl::admin_session(
        fleet.admin_options_on(clinic, &clinic.db_name),
    ))
    .await?;
    let checked = async {
        let mut tx = in_pod.begin().await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        )
        .bind(clinic.schema())
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            let tables: Vec<String> = PATIENT_DATA_TABLES
                .iter()
                .map(|t| format!("{schema}.{t}"))
                .collect();
            ddl::run(
                &mut tx,
                &format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", ")),
            )
            .await?;
            let holding = holding_rows(&mut tx, &schema).await?;
            if !holding.is_empty() {
                return Err(DeleteError::HoldsPatientData {
                    id: ClinicId(clinic.id),
                    tables: holding,
                });
            }
            ddl::drop_schema(&mut tx, clinic.schema()).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    let _ = in_pod.close().await;
    checked?;
    ddl::drop_roles(
        admin,
        &TenantRoles::of(ClinicId(clinic.id), &fleet.settings.prefix),
    )
    .await?;
    Ok(())
}

/// The patient-data tables of `schema` (quoted) holding rows.
async fn holding_rows(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>, sqlx::Error> {
    // Table names are this module's constants.
    let sql = PATIENT_DATA_TABLES
        .iter()
        .map(|t| format!("SELECT '{t}'::text WHERE EXISTS (SELECT 1 FROM {schema}.{t})"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sqlx::query_scalar(&sql).fetch_all(conn).await
}

/// Shuts the clinic's database (see [`ddl::shut_database`]) but for one
/// session of the admin's, and lists the patient-data tables holding rows
/// through it. A missing database lists none.
async fn shut_and_check(
    fleet: &Fleet,
    admin: &mut PgConnection,
    clinic: &ClinicRecord,
) -> Result<Vec<String>, DeleteError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&clinic.db_name)
            .fetch_one(&mut *admin)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut inside = connect(&ddl::admin_session(
        fleet.admin_options_on(clinic, &clinic.db_name),
    ))
    .await?;
    let checked = check_alone(admin, &mut inside, &clinic.db_name).await;
    let _ = inside.close().await;
    checked
}

/// Shuts `database` but for `inside`, then lists through `inside` the
/// patient-data tables holding rows.
async fn check_alone(
    admin: &mut PgConnection,
    inside: &mut PgConnection,
    database: &str,
) -> Result<Vec<String>, DeleteError> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *inside)
        .await?;
    if !ddl::shut_database(admin, database, pid).await? {
        return Err(DeleteError::Failed(anyhow::anyhow!(
            "a session on the clinic's database did not end within 5 s: try again"
        )));
    }
    Ok(holding_rows(inside, "public").await?)
}

/// Deletes the staff accounts, makes the central row a tombstone and
/// records `action` (`clinic.deleted`, `clinic.destroyed`), in one
/// transaction; the accounts deleted.
pub(super) async fn tombstone(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    action: &'static str,
) -> Result<u64, sqlx::Error> {
    let mut tx = fleet.databases.central.begin().await?;
    let staff = users::delete_all_of_clinic(&mut tx, clinic.id).await?;
    companies::tombstone(&mut tx, ClinicId(clinic.id)).await?;
    let event = audit::PlatformEvent {
        action,
        actor_user_id: None,
        company_id: Some(clinic.id),
        client_addr: None,
        details: json!({
            "via": "command line",
            "database": clinic.db_name,
            "staffAccounts": staff,
        }),
    };
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(staff)
}
