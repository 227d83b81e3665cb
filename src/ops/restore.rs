//! `medicalpro restore`: a backup made by `medicalpro backup`, checked
//! against its checksum, restored into a fresh staging database, then put
//! in place of the clinic's database in two renames (the clinic is
//! unreachable only between them), or made into a new clinic with its own
//! role and password.
//!
//! Ownership after a restore is what provisioning makes: every object
//! belongs to the clinic's role (objects are restored as that role), except
//! the audit trail (`audit_events`, `audit_events_pending` and their
//! functions and triggers), which
//! is handed back to the admin role; the trail's grants are then applied
//! again. A backup older than the binary is migrated forward; one newer
//! than the binary, or of another clinic, is refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::backup::verify_checksum;
use super::migrate::migrate_clinic;
use super::pgtools::{PgTools, Target};
use super::{connect, ClinicRecord, Fleet};
use crate::central::companies::{self, NewCompany, Placement};
use crate::central::{audit, servers};
use crate::crypto::random_token;
use crate::migrations;
use crate::tenancy::naming::{quote_ident, ClinicId};
use crate::tenancy::provisioning::ROLE_CONNECTION_LIMIT;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The clinic to restore into. With `as_new_clinic`, optional: the
    /// clinic the backup must be of.
    pub clinic: Option<ClinicId>,
    pub from: PathBuf,
    /// Overwrite a clinic database that holds patients.
    pub force: bool,
    /// Restore as a new clinic instead.
    pub as_new_clinic: Option<NewIdentity>,
}

/// The central identity of a clinic restored as new. Defaults: the backed-up
/// clinic's name with " (restored)", and its email with `+restored-<id>`
/// before the `@` (emails are unique).
#[derive(Debug, Clone, Default)]
pub struct NewIdentity {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub clinic_id: Uuid,
    pub new_clinic: bool,
    /// The schema version the backup was at.
    pub backup_version: i64,
    /// The version after migrating forward.
    pub schema_version: i64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("clinic {0} has patients: restoring would replace them (use --force to do so)")]
    HasPatients(ClinicId),
    #[error("this backup is of clinic {found}, not {expected} (use --as-new-clinic to restore it as a new clinic)")]
    OtherClinic { expected: ClinicId, found: String },
    #[error("this backup is at schema version {backup}, newer than this binary's {known}: use a newer medicalpro")]
    NewerSchema { backup: i64, known: i64 },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for RestoreError {
    fn from(error: sqlx::Error) -> Self {
        RestoreError::Failed(error.into())
    }
}

pub async fn restore(fleet: &Fleet, options: &RestoreOptions) -> Result<Restored, RestoreError> {
    let started = Instant::now();
    let from = options.from.clone();
    tokio::task::spawn_blocking(move || verify_checksum(&from))
        .await
        .map_err(anyhow::Error::from)??;
    let (clinic_id, backup_version) = match &options.as_new_clinic {
        None => {
            let id = options
                .clinic
                .ok_or_else(|| anyhow::anyhow!("which clinic to restore into: --clinic ID"))?;
            (id, into_existing(fleet, id, options).await?)
        }
        Some(identity) => into_new(fleet, identity, options).await?,
    };
    let clinic = fleet.clinic(clinic_id).await?;
    let outcome = migrate_clinic(Arc::new(fleet.clone()), clinic, &migrations::CLINIC, false).await;
    if let Some(error) = outcome.error {
        return Err(anyhow::anyhow!(
            "the backup was restored, but migrating it forward failed ({error}): fix the cause and run `medicalpro migrate --clinic {clinic_id}`"
        )
        .into());
    }
    audit::record(
        &fleet.databases.central,
        audit::PlatformEvent {
            action: "clinic.restored",
            actor_user_id: None,
            company_id: Some(clinic_id.0),
            client_addr: None,
            details: json!({
                "asNewClinic": options.as_new_clinic.is_some(),
                "backupSchemaVersion": backup_version,
                "sourceClinicId": options.clinic.map(|id| id.0),
            }),
        },
    )
    .await?;
    tracing::info!(clinic.id = %clinic_id, duration_ms = started.elapsed().as_millis() as u64, "clinic restored");
    Ok(Restored {
        clinic_id: clinic_id.0,
        new_clinic: options.as_new_clinic.is_some(),
        backup_version,
        schema_version: outcome.to_version,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a staging database holds once the backup is in it.
struct Staged {
    database: String,
    version: i64,
    /// `clinic_settings` of the backup: (clinic id, name, country).
    settings: Option<(Uuid, String, String)>,
}

/// Restores over an existing clinic; returns the backup's schema version.
async fn into_existing(
    fleet: &Fleet,
    id: ClinicId,
    options: &RestoreOptions,
) -> Result<i64, RestoreError> {
    let clinic = fleet.clinic(id).await?;
    if !options.force && has_patients(fleet, &clinic).await? {
        return Err(RestoreError::HasPatients(id));
    }
    let server = maintenance(fleet, &clinic.db_host, clinic.db_port);
    let mut admin = connect(&server).await?;
    let staged = stage(
        fleet,
        &mut admin,
        &clinic.db_host,
        clinic.db_port,
        &clinic.db_user,
        options,
    )
    .await?;
    let checked = match &staged.settings {
        Some((found, _, _)) if *found == id.0 => Ok(()),
        Some((found, _, _)) => Err(RestoreError::OtherClinic {
            expected: id,
            found: found.to_string(),
        }),
        None if options.force => Ok(()),
        None => Err(RestoreError::OtherClinic {
            expected: id,
            found: "unknown (no clinic settings in it; --force restores it anyway)".into(),
        }),
    };
    if let Err(error) = checked {
        drop_database(&mut admin, &staged.database).await;
        return Err(error);
    }
    swap(fleet, &mut admin, &clinic.db_name, &staged.database).await?;
    let _ = admin.close().await;
    Ok(staged.version)
}

/// Restores as a new clinic; returns its id and the backup's schema version.
async fn into_new(
    fleet: &Fleet,
    identity: &NewIdentity,
    options: &RestoreOptions,
) -> Result<(ClinicId, i64), RestoreError> {
    let central = &fleet.databases.central;
    let server = servers::pick_for_new_clinic(central).await?;
    let id = ClinicId::generate();
    let name = id.database_name(&fleet.settings.prefix);
    let password = random_token(32);
    let mut admin = connect(&maintenance(fleet, &server.host, server.port)).await?;
    // The password is URL-safe base64: no quote can end the literal.
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE \
         NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {ROLE_CONNECTION_LIMIT};
         GRANT {role} TO CURRENT_USER;",
        role = quote_ident(&name)
    ))
    .execute(&mut admin)
    .await?;
    let result = async {
        let staged = stage(fleet, &mut admin, &server.host, server.port, &name, options).await?;
        let plan = Plan {
            id,
            server: &server,
            password: &password,
        };
        let made = finish_new(fleet, &mut admin, &plan, identity, options, &staged).await;
        if made.is_err() {
            drop_database(&mut admin, &staged.database).await;
        }
        made.map(|()| staged.version)
    }
    .await;
    match result {
        Ok(version) => {
            let _ = admin.close().await;
            Ok((id, version))
        }
        Err(error) => {
            tracing::error!(clinic.id = %id, %error, "restore as a new clinic failed, removing it");
            drop_database(&mut admin, &name).await;
            let _ = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name)))
                .execute(&mut admin)
                .await;
            let _ = companies::delete(central, id).await;
            Err(error)
        }
    }
}

/// The new clinic being made: its id, server and role password.
struct Plan<'a> {
    id: ClinicId,
    server: &'a servers::DbServer,
    password: &'a str,
}

/// Names the staged database as the new clinic's and records it centrally.
async fn finish_new(
    fleet: &Fleet,
    admin: &mut PgConnection,
    plan: &Plan<'_>,
    identity: &NewIdentity,
    options: &RestoreOptions,
    staged: &Staged,
) -> Result<(), RestoreError> {
    let Plan {
        id,
        server,
        password,
    } = *plan;
    let Some((source, backup_name, country)) = staged.settings.clone() else {
        return Err(anyhow::anyhow!(
            "this backup holds no clinic settings: it is not a clinic database"
        )
        .into());
    };
    if let Some(expected) = options.clinic {
        if expected.0 != source {
            return Err(RestoreError::OtherClinic {
                expected,
                found: source.to_string(),
            });
        }
    }
    let source_company = companies::find(&fleet.databases.central, ClinicId(source)).await?;
    let name = match &identity.name {
        Some(name) => name.clone(),
        None => format!("{backup_name} (restored)"),
    };
    let email = match (&identity.email, &source_company) {
        (Some(email), _) => email.clone(),
        (None, Some(company)) => restored_email(&company.email, id),
        (None, None) => {
            return Err(anyhow::anyhow!(
                "the backed-up clinic is no longer known centrally: give the new clinic's --email"
            )
            .into())
        }
    };
    let mut staging = connect(&admin_on(
        fleet,
        &server.host,
        server.port,
        &staged.database,
    ))
    .await?;
    sqlx::query("UPDATE clinic_settings SET clinic_id = $1, name = $2, updated_at = now()")
        .bind(id.0)
        .bind(&name)
        .execute(&mut staging)
        .await?;
    let _ = staging.close().await;
    let mut tx = fleet.databases.central.begin().await?;
    companies::insert_pending(
        &mut tx,
        &NewCompany {
            id,
            name: &name,
            email: &email,
            phone: source_company.as_ref().and_then(|c| c.phone.as_deref()),
            country: &country,
        },
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("companies_email_key") => {
            anyhow::anyhow!("a clinic with the email {email} already exists: give another --email")
        }
        _ => e.into(),
    })?;
    tx.commit().await?;
    let database = id.database_name(&fleet.settings.prefix);
    sqlx::raw_sql(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(&staged.database),
        quote_ident(&database)
    ))
    .execute(&mut *admin)
    .await?;
    let placement = Placement {
        db_host: server.host.clone(),
        db_port: server.port,
        db_name: database.clone(),
        db_user: database,
        db_password_sealed: fleet
            .settings
            .keyring()
            .seal(password.as_bytes(), id.0.as_bytes()),
    };
    companies::mark_ready(
        &fleet.databases.central,
        id,
        server.id,
        &placement,
        staged.version,
    )
    .await?;
    Ok(())
}

/// `local+restored-<first 8 hex of id>@domain`.
fn restored_email(email: &str, id: ClinicId) -> String {
    let tag = &id.0.simple().to_string()[..8];
    match email.split_once('@') {
        Some((local, domain)) => format!("{local}+restored-{tag}@{domain}"),
        None => format!("{email}+restored-{tag}"),
    }
}

/// Restores the backup into a new staging database owned by `role`, gives
/// the audit trail back to the admin, and reads what the backup holds.
async fn stage(
    fleet: &Fleet,
    admin: &mut PgConnection,
    host: &str,
    port: i32,
    role: &str,
    options: &RestoreOptions,
) -> Result<Staged, RestoreError> {
    let tools = PgTools::for_server(admin).await?;
    let database = format!(
        "{}_restore_{}",
        fleet.settings.prefix.as_str(),
        Uuid::new_v4().simple()
    );
    sqlx::raw_sql(&format!(
        "CREATE DATABASE {db} OWNER {role} TEMPLATE template0",
        db = quote_ident(&database),
        role = quote_ident(role)
    ))
    .execute(&mut *admin)
    .await?;
    let staged = async {
        sqlx::raw_sql(&format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
            quote_ident(&database)
        ))
        .execute(&mut *admin)
        .await?;
        let target = Target::admin_on(
            &fleet.settings.admin_url,
            host,
            u16::try_from(port).unwrap_or(5432),
            &database,
        )?;
        let file = options.from.to_string_lossy().into_owned();
        let role_arg = format!("--role={role}");
        tools
            .run(
                &tools.pg_restore,
                &target,
                &[
                    "--no-owner",
                    "--no-privileges",
                    &role_arg,
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-password",
                    &file,
                ],
            )
            .await?;
        let mut conn = connect(&admin_on(fleet, host, port, &database)).await?;
        sqlx::raw_sql(AUDIT_TRAIL_TO_ADMIN)
            .execute(&mut conn)
            .await?;
        let version = super::applied_versions(&mut conn)
            .await?
            .last()
            .copied()
            .unwrap_or(0);
        let settings: Option<(Uuid, String, String)> =
            if has_table(&mut conn, "clinic_settings").await? {
                sqlx::query_as("SELECT clinic_id, name, country::text FROM clinic_settings LIMIT 1")
                    .fetch_optional(&mut conn)
                    .await?
            } else {
                None
            };
        let _ = conn.close().await;
        let known = migrations::latest_version(&migrations::CLINIC);
        if version > known {
            return Err(RestoreError::NewerSchema {
                backup: version,
                known,
            });
        }
        Ok(Staged {
            database: database.clone(),
            version,
            settings,
        })
    }
    .await;
    if staged.is_err() {
        drop_database(admin, &database).await;
    }
    staged
}

/// Hands the audit trail's tables and functions (and so its triggers and
/// indexes), and the schema holding them, to the admin role, as
/// `install_audit_trail` first made them.
const AUDIT_TRAIL_TO_ADMIN: &str = r"
DO $$
DECLARE f regprocedure;
BEGIN
    EXECUTE format('ALTER SCHEMA public OWNER TO %I', current_user);
    -- The clinic role (the database's owner) keeps creating its own tables.
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA public TO %I',
        (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()));
    IF to_regclass('public.audit_events') IS NOT NULL THEN
        EXECUTE format('ALTER TABLE public.audit_events OWNER TO %I', current_user);
    END IF;
    IF to_regclass('public.audit_events_pending') IS NOT NULL THEN
        EXECUTE format('ALTER TABLE public.audit_events_pending OWNER TO %I', current_user);
    END IF;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proname LIKE 'audit\_event%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', f, current_user);
    END LOOP;
END
$$;";

/// Puts `staging` in the place of `target`: no new connections to the
/// target, its sessions ended, renamed aside, staging renamed in, the old
/// one dropped. A missing target (dropped by accident) is simply replaced.
async fn swap(
    fleet: &Fleet,
    admin: &mut PgConnection,
    target: &str,
    staging: &str,
) -> Result<(), RestoreError> {
    let aside = format!(
        "{}_replaced_{}",
        fleet.settings.prefix.as_str(),
        Uuid::new_v4().simple()
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(target)
            .fetch_one(&mut *admin)
            .await?;
    if exists {
        sqlx::raw_sql(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            quote_ident(target)
        ))
        .execute(&mut *admin)
        .await?;
        let mut attempts = 0;
        loop {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(target)
            .execute(&mut *admin)
            .await?;
            let renamed = sqlx::raw_sql(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(target),
                quote_ident(&aside)
            ))
            .execute(&mut *admin)
            .await;
            match renamed {
                Ok(_) => break,
                // 55006: sessions still closing.
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55006") && attempts < 50 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    let _ = sqlx::raw_sql(&format!(
                        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                        quote_ident(target)
                    ))
                    .execute(&mut *admin)
                    .await;
                    drop_database(admin, staging).await;
                    return Err(error.into());
                }
            }
        }
    }
    let moved = sqlx::raw_sql(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(staging),
        quote_ident(target)
    ))
    .execute(&mut *admin)
    .await;
    if let Err(error) = moved {
        if exists {
            let _ = sqlx::raw_sql(&format!(
                "ALTER DATABASE {aside} RENAME TO {target}; ALTER DATABASE {target} ALLOW_CONNECTIONS true",
                aside = quote_ident(&aside),
                target = quote_ident(target)
            ))
            .execute(&mut *admin)
            .await;
        }
        drop_database(admin, staging).await;
        return Err(error.into());
    }
    if exists {
        drop_database(admin, &aside).await;
    }
    Ok(())
}

/// Whether the clinic's database holds any patient row (a missing database
/// or table holds none).
async fn has_patients(fleet: &Fleet, clinic: &ClinicRecord) -> Result<bool, RestoreError> {
    let mut conn = match connect(&fleet.admin_options_on(clinic, &clinic.db_name)).await {
        Ok(conn) => conn,
        Err(error) => {
            let missing = error
                .downcast_ref::<sqlx::Error>()
                .and_then(|e| e.as_database_error())
                .and_then(|e| e.code())
                .is_some_and(|code| code == "3D000");
            return if missing {
                Ok(false)
            } else {
                Err(error.into())
            };
        }
    };
    let has = if has_table(&mut conn, "patients").await? {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM patients)")
            .fetch_one(&mut conn)
            .await?
    } else {
        false
    };
    let _ = conn.close().await;
    Ok(has)
}

async fn has_table(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("public.{table}"))
        .fetch_one(conn)
        .await
}

/// The admin role on the maintenance database of a server.
fn maintenance(fleet: &Fleet, host: &str, port: i32) -> PgConnectOptions {
    fleet
        .databases
        .admin_options
        .clone()
        .host(host)
        .port(u16::try_from(port).unwrap_or(5432))
}

fn admin_on(fleet: &Fleet, host: &str, port: i32, database: &str) -> PgConnectOptions {
    maintenance(fleet, host, port).database(database)
}

async fn drop_database(admin: &mut PgConnection, database: &str) {
    if let Err(error) = sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(database)
    ))
    .execute(admin)
    .await
    {
        tracing::error!(database, %error, "dropping a restore's leftover database failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_clinic_gets_a_tagged_email() {
        let id = ClinicId("0a1b2c3d-0000-4000-8000-000000000000".parse().unwrap());
        assert_eq!(
            restored_email("contact@clinic.fr", id),
            "contact+restored-0a1b2c3d@clinic.fr"
        );
    }
}
