//! Provisioning a clinic: its central row and first admin, a login role with
//! a random password, a database owned by that role (CONNECT revoked from
//! PUBLIC), the clinic migrations run as the role itself, and the initial
//! settings. The placement is recorded last, with the password sealed by the
//! master key. Any failure removes everything made so far.

use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::central::companies::{self, NewCompany, Placement};
use crate::central::users::{self, NewUser, UserRecord};
use crate::central::{audit, servers, Databases};
use crate::clinic::audit as clinic_audit;
use crate::clinic::settings;
use crate::config::DbPrefix;
use crate::crypto::{random_token, MasterKey};
use crate::migrations;
use crate::tenancy::naming::{quote_ident, ClinicId};

/// Connections a clinic role may hold at once, whatever its pools ask for.
const ROLE_CONNECTION_LIMIT: u32 = 20;

/// A clinic to create, with checked fields.
pub struct NewClinic {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub country: String,
}

/// The clinic's first `admin` account.
pub struct FirstAdmin {
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
}

pub struct Provisioned {
    pub clinic_id: ClinicId,
    pub admin: Option<UserRecord>,
    pub elapsed_ms: u128,
}

/// A step after which a test can make provisioning fail, to prove rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAfter {
    RoleCreated,
    DatabaseCreated,
    Migrated,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("a clinic or account with this email already exists")]
    EmailTaken,
    #[error("provisioning failed")]
    Database(#[from] sqlx::Error),
    #[error("clinic migrations failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("provisioning failed after {0:?} (injected)")]
    Injected(FailAfter),
}

#[derive(Clone)]
pub struct Provisioner {
    databases: Databases,
    prefix: DbPrefix,
    master_key: MasterKey,
    fail_after: Option<FailAfter>,
}

/// What exists so far, to undo on failure.
#[derive(Default)]
struct Made {
    role: bool,
    database: bool,
}

impl Provisioner {
    pub fn new(databases: Databases, prefix: DbPrefix, master_key: MasterKey) -> Self {
        Self {
            databases,
            prefix,
            master_key,
            fail_after: None,
        }
    }

    /// Fault injection for rollback tests: fail right after `step`.
    pub fn failing_after(mut self, step: FailAfter) -> Self {
        self.fail_after = Some(step);
        self
    }

    pub async fn provision(
        &self,
        clinic: NewClinic,
        admin: Option<FirstAdmin>,
    ) -> Result<Provisioned, ProvisionError> {
        let started = Instant::now();
        let id = ClinicId::generate();
        let admin = self.claim(id, &clinic, admin.as_ref()).await?;
        let mut made = Made::default();
        match self.build(id, &clinic, &mut made).await {
            Ok(()) => {
                let elapsed_ms = started.elapsed().as_millis();
                let event = audit::PlatformEvent {
                    action: "clinic.provisioned",
                    actor_user_id: admin.as_ref().map(|u| u.id),
                    company_id: Some(id.0),
                    client_addr: None,
                    details: serde_json::json!({ "durationMs": elapsed_ms as u64 }),
                };
                if let Err(error) = audit::record(&self.databases.central, event).await {
                    tracing::warn!(clinic.id = %id, %error, "platform audit write failed");
                }
                tracing::info!(clinic.id = %id, duration_ms = elapsed_ms as u64, "clinic provisioned");
                Ok(Provisioned {
                    clinic_id: id,
                    admin,
                    elapsed_ms,
                })
            }
            Err(error) => {
                tracing::error!(clinic.id = %id, %error, "provisioning failed, rolling back");
                self.undo(id, &made).await;
                Err(error)
            }
        }
    }

    /// Inserts the pending clinic and its admin in one transaction: of two
    /// registrations racing for one email, the unique index lets one win.
    async fn claim(
        &self,
        id: ClinicId,
        clinic: &NewClinic,
        admin: Option<&FirstAdmin>,
    ) -> Result<Option<UserRecord>, ProvisionError> {
        let mut tx = self.databases.central.begin().await?;
        let company = NewCompany {
            id,
            name: &clinic.name,
            email: &clinic.email,
            phone: clinic.phone.as_deref(),
            country: &clinic.country,
        };
        companies::insert_pending(&mut tx, &company)
            .await
            .map_err(email_conflict)?;
        let user = match admin {
            Some(admin) => Some(
                users::insert(
                    &mut tx,
                    &NewUser {
                        id: Uuid::new_v4(),
                        company_id: Some(id.0),
                        email: &admin.email,
                        password_hash: &admin.password_hash,
                        first_name: &admin.first_name,
                        last_name: &admin.last_name,
                        role: crate::auth::roles::Role::Admin,
                    },
                )
                .await
                .map_err(email_conflict)?,
            ),
            None => None,
        };
        tx.commit().await.map_err(email_conflict)?;
        Ok(user)
    }

    async fn build(
        &self,
        id: ClinicId,
        clinic: &NewClinic,
        made: &mut Made,
    ) -> Result<(), ProvisionError> {
        let admin = &self.databases.admin;
        let server = servers::pick_for_new_clinic(&self.databases.central).await?;
        let name = quote_ident(&id.database_name(&self.prefix));
        let password = random_token(32);
        // The password is URL-safe base64: no quote can end the literal.
        sqlx::raw_sql(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE \
             NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {ROLE_CONNECTION_LIMIT}"
        ))
        .execute(admin)
        .await?;
        made.role = true;
        self.fail_if(FailAfter::RoleCreated)?;
        // A non-superuser admin must be a member to give a database to the role.
        sqlx::raw_sql(&format!("GRANT {name} TO CURRENT_USER"))
            .execute(admin)
            .await?;
        sqlx::raw_sql(&format!(
            "CREATE DATABASE {name} OWNER {name} TEMPLATE template0"
        ))
        .execute(admin)
        .await?;
        made.database = true;
        sqlx::raw_sql(&format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC"
        ))
        .execute(admin)
        .await?;
        self.fail_if(FailAfter::DatabaseCreated)?;

        let placement_options = self.options_for(&server, id, &password);
        // One connection, as the clinic's own role: it owns what it creates.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(placement_options)
            .await?;
        migrations::CLINIC.run(&pool).await?;
        install_audit_trail(
            &self.databases.admin_options,
            &id.database_name(&self.prefix),
        )
        .await?;
        let mut conn = pool.acquire().await?;
        settings::initialise(&mut conn, id, &clinic.name, &clinic.country).await?;
        let version = migrations::applied_version(&mut conn).await?;
        drop(conn);
        pool.close().await;
        self.fail_if(FailAfter::Migrated)?;

        let placement = Placement {
            db_host: server.host.clone(),
            db_port: server.port,
            db_name: id.database_name(&self.prefix),
            db_user: id.database_name(&self.prefix),
            db_password_sealed: self.master_key.seal(password.as_bytes(), id.0.as_bytes()),
        };
        companies::mark_ready(&self.databases.central, id, server.id, &placement, version).await?;
        Ok(())
    }

    fn options_for(
        &self,
        server: &servers::DbServer,
        id: ClinicId,
        password: &str,
    ) -> PgConnectOptions {
        self.databases
            .admin_options
            .clone()
            .host(&server.host)
            .port(u16::try_from(server.port).unwrap_or(5432))
            .username(&id.database_name(&self.prefix))
            .password(password)
            .database(&id.database_name(&self.prefix))
            .application_name("medicalpro-provisioning")
    }

    fn fail_if(&self, step: FailAfter) -> Result<(), ProvisionError> {
        if self.fail_after == Some(step) {
            return Err(ProvisionError::Injected(step));
        }
        Ok(())
    }

    /// Best-effort removal of everything `build` made, then the central rows.
    async fn undo(&self, id: ClinicId, made: &Made) {
        let admin = &self.databases.admin;
        let name = quote_ident(&id.database_name(&self.prefix));
        if made.database {
            if let Err(error) =
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(admin)
                    .await
            {
                tracing::error!(clinic.id = %id, %error, "rollback: dropping the database failed");
            }
        }
        if made.role {
            if let Err(error) = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {name}"))
                .execute(admin)
                .await
            {
                tracing::error!(clinic.id = %id, %error, "rollback: dropping the role failed");
            }
        }
        if let Err(error) = companies::delete(&self.databases.central, id).await {
            tracing::error!(clinic.id = %id, %error, "rollback: deleting the clinic row failed");
        }
    }
}

/// Creates the audit trail in a clinic database as the admin role, so that
/// the clinic role can append and read it but never alter it.
pub async fn install_audit_trail(
    admin: &PgConnectOptions,
    database: &str,
) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin.clone().database(database))
        .await?;
    // One simple-protocol query: its statements run as one transaction.
    let script = format!(
        "{}\n{}",
        clinic_audit::SCHEMA,
        clinic_audit::grants_for(database)
    );
    let result = sqlx::raw_sql(&script).execute(&pool).await;
    pool.close().await;
    result.map(drop)
}

/// Maps a unique violation on an email index to [`ProvisionError::EmailTaken`].
fn email_conflict(error: sqlx::Error) -> ProvisionError {
    match &error {
        sqlx::Error::Database(db)
            if matches!(
                db.constraint(),
                Some("companies_email_key" | "users_email_key")
            ) =>
        {
            ProvisionError::EmailTaken
        }
        _ => ProvisionError::Database(error),
    }
}
