//! Provisioning a clinic: its central row and first admin, a login role with
//! a random password, a database owned by that role (CONNECT revoked from
//! PUBLIC) holding the clinic schema, and the initial settings. The
//! placement is recorded last, with the password sealed by the master key.
//! Any failure removes everything made so far.
//!
//! The schema comes from the template database when it is current (a copy,
//! then its objects handed to the clinic role: see `tenancy::template`), else
//! from the clinic migrations run as the role itself and the audit trail
//! installed by the admin. A missing or stale template is rebuilt by the
//! provisioning that finds it so, unless another session is using it. At
//! most `PROVISION_CONCURRENCY` clinics are provisioned at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::central::companies::{self, NewCompany, Placement};
use crate::central::users::{self, NewUser, UserRecord};
use crate::central::{audit, servers, Databases};
use crate::clinic::audit as clinic_audit;
use crate::clinic::settings;
use crate::config::{DbPrefix, ProvisioningSettings};
use crate::crypto::{random_token, MasterKey};
use crate::migrations;
use crate::tenancy::naming::{quote_ident, ClinicId};
use crate::tenancy::template::{self, run, Template};

/// Connections a clinic role may hold at once, whatever its pools ask for
/// (`CLINIC_POOL_MAX` may not exceed it).
pub const ROLE_CONNECTION_LIMIT: u32 = 20;

/// After a failed template build, clinics are migrated for this long
/// before the build is tried again.
const TEMPLATE_RETRY: Duration = Duration::from_secs(60);

/// PBKDF2 iterations of the clinic roles' SCRAM secrets. Key stretching
/// protects guessable passwords; a clinic password is 32 random bytes, so
/// it adds nothing but cost to every connection (several milliseconds of
/// CPU at PostgreSQL's default 4096), which the pools pay whenever a clinic
/// connection is opened.
const SCRAM_ITERATIONS: u32 = 1;

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
    settings: ProvisioningSettings,
    /// One permit per provisioning in progress.
    slots: Arc<Semaphore>,
    /// When the last template build failed.
    template_failed: Arc<Mutex<Option<Instant>>>,
    fail_after: Option<FailAfter>,
}

/// What exists so far, to undo on failure.
#[derive(Default)]
struct Made {
    role: bool,
    database: bool,
}

impl Provisioner {
    pub fn new(
        databases: Databases,
        prefix: DbPrefix,
        master_key: MasterKey,
        settings: ProvisioningSettings,
    ) -> Self {
        Self {
            databases,
            prefix,
            master_key,
            slots: Arc::new(Semaphore::new(settings.concurrency as usize)),
            settings,
            template_failed: Arc::new(Mutex::new(None)),
            fail_after: None,
        }
    }

    /// The same provisioner, copying the template or not.
    pub fn from_template(mut self, from_template: bool) -> Self {
        self.settings.from_template = from_template;
        self
    }

    /// Builds the template database unless it is current (at startup, so
    /// that the first registrations are fast).
    pub async fn prepare_template(&self) -> Result<bool, sqlx::Error> {
        let mut admin = self.databases.admin_options.connect().await?;
        let ready = Template::new(&self.prefix)
            .rebuild(&mut admin, &self.databases.admin_options)
            .await;
        let _ = admin.close().await;
        ready
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
        // (The semaphore is never closed: acquiring only waits.)
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ProvisionError::Database(sqlx::Error::PoolClosed))?;
        let server = servers::pick_for_new_clinic(&self.databases.central).await?;
        let database = id.database_name(&self.prefix);
        let password = random_token(32);
        let mut admin = self.databases.admin_options.connect().await?;
        let created = self
            .create_database(&mut admin, &server, &database, &password, made)
            .await;
        let _ = admin.close().await;
        let copied = created?;
        self.fail_if(FailAfter::DatabaseCreated)?;

        if copied {
            // Copies are made on the admin's own server only.
            let options = self.databases.admin_options.clone().database(&database);
            let mut as_admin = options.connect().await?;
            let adopted = Template::new(&self.prefix)
                .adopt(&mut as_admin, &database)
                .await;
            let _ = as_admin.close().await;
            adopted?;
        }

        // As the clinic's own role: it owns what it creates.
        let mut conn = self.options_for(&server, id, &password).connect().await?;
        let filled = self.fill(&mut conn, id, clinic, copied, &database).await;
        let _ = conn.close().await;
        let version = filled?;
        self.fail_if(FailAfter::Migrated)?;

        let placement = Placement {
            db_host: server.host.clone(),
            db_port: server.port,
            db_name: database.clone(),
            db_user: database,
            db_password_sealed: self.master_key.seal(password.as_bytes(), id.0.as_bytes()),
        };
        companies::mark_ready(&self.databases.central, id, server.id, &placement, version).await?;
        Ok(())
    }

    /// The role and its database, copied from the template when it is
    /// current (`true`), else empty.
    async fn create_database(
        &self,
        admin: &mut PgConnection,
        server: &servers::DbServer,
        database: &str,
        password: &str,
        made: &mut Made,
    ) -> Result<bool, ProvisionError> {
        let name = quote_ident(database);
        let secret = scram_secret(password);
        // The secret is base64 and `$:` only: no quote can end the literal.
        run(
            admin,
            &format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{secret}' NOSUPERUSER NOCREATEDB NOCREATEROLE \
             NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {ROLE_CONNECTION_LIMIT}"
            ),
        )
        .await?;
        made.role = true;
        self.fail_if(FailAfter::RoleCreated)?;
        // A non-superuser admin must be a member to give a database to the role.
        run(admin, &format!("GRANT {name} TO CURRENT_USER")).await?;
        let template = Template::new(&self.prefix);
        let copy = self.template_usable(admin, server, &template).await?;
        let source = if copy {
            quote_ident(template.name())
        } else {
            "template0".to_owned()
        };
        let created = run(
            admin,
            &format!("CREATE DATABASE {name} OWNER {name} TEMPLATE {source}"),
        )
        .await;
        if copy {
            template.unlock_shared(admin).await?;
        }
        created?;
        made.database = true;
        run(
            admin,
            &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC"),
        )
        .await?;
        Ok(copy)
    }

    /// Whether to copy the template: enabled, on the admin's server, and
    /// current (rebuilt first when it is not). When `true`, the template lock
    /// is held shared on `admin` and the caller releases it.
    async fn template_usable(
        &self,
        admin: &mut PgConnection,
        server: &servers::DbServer,
        template: &Template,
    ) -> Result<bool, sqlx::Error> {
        let options = &self.databases.admin_options;
        let same_server =
            server.host == options.get_host() && i32::from(options.get_port()) == server.port;
        if !self.settings.from_template || !same_server {
            return Ok(false);
        }
        if !template.is_current(admin).await? && !self.rebuild_template(admin, template).await {
            return Ok(false);
        }
        template.lock_for_copy(admin).await
    }

    /// Rebuilds a stale template, unless a build failed recently; `false`
    /// when it is still not usable (the clinic is then migrated).
    async fn rebuild_template(&self, admin: &mut PgConnection, template: &Template) -> bool {
        let failed_recently = self
            .template_failed
            .lock()
            .expect("template state lock")
            .is_some_and(|at| at.elapsed() < TEMPLATE_RETRY);
        if failed_recently {
            return false;
        }
        match template.rebuild(admin, &self.databases.admin_options).await {
            Ok(ready) => ready,
            Err(error) => {
                tracing::error!(template = %template.name(), %error, "building the clinic template failed; clinics are migrated meanwhile");
                *self.template_failed.lock().expect("template state lock") = Some(Instant::now());
                false
            }
        }
    }

    /// Brings a new database (as its role) to the newest schema, unless it
    /// is a copy of the current template, then writes the initial settings.
    /// Returns the schema version.
    async fn fill(
        &self,
        conn: &mut PgConnection,
        id: ClinicId,
        clinic: &NewClinic,
        copied: bool,
        database: &str,
    ) -> Result<i64, ProvisionError> {
        if !copied {
            template::migrate(&mut *conn).await?;
            install_audit_trail(&self.databases.admin_options, database).await?;
        }
        settings::initialise(&mut *conn, id, &clinic.name, &clinic.country).await?;
        Ok(migrations::applied_version(conn).await?)
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

/// A SCRAM-SHA-256 secret for `password`, as PostgreSQL stores it:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802;
/// the password is ASCII, which SASLprep leaves unchanged).
pub fn scram_secret(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    scram_secret_with(password, &salt, SCRAM_ITERATIONS)
}

fn scram_secret_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes()
    };
    // Hi(): PBKDF2-HMAC-SHA-256 with one output block.
    let mut block = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = block;
    for _ in 1..iterations {
        block = hmac(password.as_bytes(), &[&block]);
        salted
            .iter_mut()
            .zip(block.iter())
            .for_each(|(s, b)| *s ^= b);
    }
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user "user", password "pencil".
    #[test]
    fn scram_secret_matches_the_rfc_example() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let secret = scram_secret_with("pencil", &salt, 4096);
        let (_, keys) = secret.rsplit_once('$').unwrap();
        let (_, server_key) = keys.split_once(':').unwrap();
        // ServerSignature = HMAC(ServerKey, AuthMessage), given in the RFC.
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut mac = Hmac::<Sha256>::new_from_slice(&BASE64.decode(server_key).unwrap()).unwrap();
        mac.update(auth_message.as_bytes());
        assert_eq!(
            BASE64.encode(mac.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(secret.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    }

    #[test]
    fn scram_secrets_use_a_fresh_salt_and_few_iterations() {
        let a = scram_secret("same password");
        let b = scram_secret("same password");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("SCRAM-SHA-256${SCRAM_ITERATIONS}:")));
    }
}
