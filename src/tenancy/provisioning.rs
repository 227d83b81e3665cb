//! Provisioning a clinic: its central row and first admin, placed on the
//! active database server with the most room (none when every server holds
//! its `max_clinics`; the choice and the row are made under one lock, so
//! concurrent provisionings cannot overfill a server), its owner and
//! login roles and its database (see `tenancy::ddl` for who owns and may do
//! what), the clinic schema, and the initial settings. The placement is
//! recorded last, with the login role's password sealed by the master key.
//! Any failure removes everything made so far.
//!
//! The schema comes from the template database when it is current (a copy,
//! then its objects handed to the owner role: see `tenancy::template`), else
//! from the clinic migrations and the audit trail, applied as the owner. A
//! missing or stale template is rebuilt by the
//! provisioning that finds it so, unless another session is using it. At
//! most `PROVISION_CONCURRENCY` clinics are provisioned at once.
//!
//! A shared-tier clinic (`DEFAULT_TIER`, `clinic create --tier`) gets a
//! place in the fullest pod of its server with room (a new pod is made when
//! none has). It takes one of the pod's spare schemas when there is one
//! (laid out ahead, with its roles, and named after the id the clinic then
//! takes: see `tenancy::pods`), so that only its settings are written;
//! else its owner and serving roles are made and its schema laid out,
//! locked down and given its settings in one transaction of the admin's in
//! the pod. A failure leaves no schema, and the roles are dropped. After
//! each shared clinic, `serve` makes the pods' spares up again in the
//! background.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::central::companies::{self, NewCompany, Placement};
use crate::central::pods::Pod;
use crate::central::users::{self, NewUser, UserRecord};
use crate::central::{audit, pods, servers, Databases};
use crate::clinic::settings;
use crate::config::{DbPrefix, ProvisioningSettings, Tier};
use crate::crypto::random_token;
use crate::master_keys::MasterKeys;
use crate::migrations;
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::ClinicId;
use crate::tenancy::template::Template;

/// After a failed template build, clinics are migrated for this long
/// before the build is tried again.
const TEMPLATE_RETRY: Duration = Duration::from_secs(60);

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
    #[error("no database server has room for a new clinic (every active one holds its db_servers.max_clinics)")]
    NoCapacity,
    #[error("provisioning failed")]
    Database(#[from] sqlx::Error),
    #[error("clinic migrations failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("provisioning failed after {0:?} (injected)")]
    Injected(FailAfter),
    #[error("provisioning was interrupted")]
    Interrupted(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct Provisioner {
    databases: Databases,
    prefix: DbPrefix,
    keys: Arc<MasterKeys>,
    settings: ProvisioningSettings,
    /// One permit per provisioning in progress.
    slots: Arc<Semaphore>,
    /// When the last template build failed.
    template_failed: Arc<Mutex<Option<Instant>>>,
    fail_after: Option<FailAfter>,
    /// Held while a pod is made, so that provisionings racing for a full
    /// server's last pod make one new pod, not several.
    pod_building: Arc<tokio::sync::Mutex<()>>,
    /// Held while spare schemas are made.
    spares_building: Arc<tokio::sync::Mutex<()>>,
    /// Signalled when a spare schema was taken (see [`Provisioner::keep_spares`]).
    spare_taken: Arc<tokio::sync::Notify>,
    /// Set once spares are no longer to be made (shutdown).
    spares_stopped: Arc<std::sync::atomic::AtomicBool>,
    /// The admin's connections into each pod (by database name).
    pod_admins: Arc<Mutex<std::collections::HashMap<String, sqlx::PgPool>>>,
}

/// A shared clinic's pod, and whether it takes a spare schema there.
struct PodPlace {
    pod: Pod,
    spare: bool,
}

/// What exists so far, to undo on failure.
#[derive(Default)]
struct Made {
    roles: bool,
    database: bool,
    /// Shared tier: the pod (on the clinic's server) whose schema exists.
    schema_in: Option<String>,
}

impl Provisioner {
    pub fn new(
        databases: Databases,
        prefix: DbPrefix,
        keys: Arc<MasterKeys>,
        settings: ProvisioningSettings,
    ) -> Self {
        Self {
            databases,
            prefix,
            keys,
            slots: Arc::new(Semaphore::new(settings.concurrency as usize)),
            settings,
            template_failed: Arc::new(Mutex::new(None)),
            fail_after: None,
            pod_building: Arc::new(tokio::sync::Mutex::new(())),
            spares_building: Arc::new(tokio::sync::Mutex::new(())),
            spare_taken: Arc::new(tokio::sync::Notify::new()),
            spares_stopped: Arc::default(),
            pod_admins: Arc::new(Mutex::new(std::collections::HashMap::new())),
        }
    }

    /// The same provisioner, making clinics of `tier`.
    pub fn with_tier(mut self, tier: Tier) -> Self {
        self.settings.default_tier = tier;
        self
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

    /// Provisions a clinic on its own task: a caller that goes away (a
    /// client disconnecting, the request timeout) does not cut it short, so
    /// it always finishes or rolls back.
    pub async fn provision(
        &self,
        clinic: NewClinic,
        admin: Option<FirstAdmin>,
    ) -> Result<Provisioned, ProvisionError> {
        let provisioner = self.clone();
        tokio::spawn(async move { provisioner.provision_to_the_end(clinic, admin).await }).await?
    }

    async fn provision_to_the_end(
        &self,
        clinic: NewClinic,
        admin: Option<FirstAdmin>,
    ) -> Result<Provisioned, ProvisionError> {
        let started = Instant::now();
        let (id, admin, server, pod) = self.claim(&clinic, admin.as_ref()).await?;
        let mut made = Made::default();
        let built = match &pod {
            None => self.build(id, &clinic, &server, &mut made).await,
            Some(place) => {
                let built = self
                    .build_shared(id, &clinic, &server, place, &mut made)
                    .await;
                self.spare_taken.notify_one();
                built
            }
        };
        match built {
            Ok(()) => {
                let elapsed_ms = started.elapsed().as_millis();
                let event = audit::PlatformEvent {
                    action: "clinic.provisioned",
                    actor_user_id: admin.as_ref().map(|u| u.id),
                    company_id: Some(id.0),
                    client_addr: None,
                    details: serde_json::json!({
                        "durationMs": elapsed_ms as u64,
                        "tier": self.settings.default_tier.as_str(),
                    }),
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
                self.undo(id, &server, &made).await;
                Err(error)
            }
        }
    }

    /// Chooses the clinic's server and inserts the pending clinic there and
    /// its admin, in one transaction under the placement lock: of two
    /// registrations racing for one email, the unique index lets one win,
    /// and of two racing for a server's last place, the second sees the
    /// first's row.
    /// A shared-tier clinic takes the id of the spare schema it is given.
    async fn claim(
        &self,
        clinic: &NewClinic,
        admin: Option<&FirstAdmin>,
    ) -> Result<
        (
            ClinicId,
            Option<UserRecord>,
            servers::DbServer,
            Option<PodPlace>,
        ),
        ProvisionError,
    > {
        loop {
            let mut id = ClinicId::generate();
            let mut tx = self.databases.central.begin().await?;
            servers::lock_placements(&mut tx).await?;
            let server = servers::pick_for_new_clinic(&mut *tx)
                .await?
                .ok_or(ProvisionError::NoCapacity)?;
            let pod = match self.settings.default_tier {
                Tier::Dedicated => None,
                Tier::Shared => match pods::with_room(&mut tx, server.id).await? {
                    Some(pod) => {
                        let spare = pods::take_spare(&mut tx, pod.id).await?;
                        if let Some(spare) = spare {
                            id = ClinicId(spare);
                        }
                        Some(PodPlace {
                            pod,
                            spare: spare.is_some(),
                        })
                    }
                    None => {
                        tx.rollback().await?;
                        self.add_pod(&server).await?;
                        continue;
                    }
                },
            };
            let company = NewCompany {
                id,
                server_id: server.id,
                name: &clinic.name,
                email: &clinic.email,
                phone: clinic.phone.as_deref(),
                country: &clinic.country,
                pod_id: pod.as_ref().map(|place| place.pod.id),
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
            return Ok((id, user, server, pod));
        }
    }

    /// Makes a pod on `server`, unless one with room appeared meanwhile.
    async fn add_pod(&self, server: &servers::DbServer) -> Result<(), ProvisionError> {
        let _building = self.pod_building.lock().await;
        let mut central = self.databases.central.acquire().await?;
        if pods::with_room(&mut central, server.id).await?.is_some() {
            return Ok(());
        }
        drop(central);
        let on_server = self.admin_on_server(server);
        crate::tenancy::pods::create(
            &self.databases.central,
            &on_server,
            server.id,
            &self.prefix,
            &self.keys,
            self.settings.pod_max_clinics,
        )
        .await?;
        Ok(())
    }

    /// A shared-tier clinic: its spare schema given its settings; or its
    /// roles, then its schema, laid out and given its settings in one
    /// transaction in the pod.
    async fn build_shared(
        &self,
        id: ClinicId,
        clinic: &NewClinic,
        server: &servers::DbServer,
        place: &PodPlace,
        made: &mut Made,
    ) -> Result<(), ProvisionError> {
        let _slot = self.slot().await?;
        let pod = &place.pod;
        let roles = TenantRoles::of(id, &self.prefix);
        let schema = id.database_name(&self.prefix);
        let in_pod = self.pod_admin(server, &pod.db_name);
        if place.spare {
            made.roles = true;
            made.schema_in = Some(pod.db_name.clone());
        } else {
            let mut admin = self.admin_on_server(server).connect().await?;
            let created = ddl::create_shared_roles(&mut admin, &roles, &pod.db_user).await;
            let _ = admin.close().await;
            created?;
            made.roles = true;
        }
        self.fail_if(FailAfter::RoleCreated)?;
        let mut tx = in_pod.begin().await?;
        if place.spare {
            crate::tenancy::pods::enter_as_owner(&mut tx, &roles, &schema).await?;
        } else {
            crate::tenancy::pods::lay_out_clinic(&mut tx, &roles, &schema).await?;
        }
        let version = fill(&mut tx, id, clinic).await?;
        tx.commit().await?;
        made.schema_in = Some(pod.db_name.clone());
        self.fail_if(FailAfter::DatabaseCreated)?;
        self.fail_if(FailAfter::Migrated)?;

        let placement = Placement::shared(&server.host, server.port, pod, &schema, &roles.login);
        companies::mark_ready(&self.databases.central, id, server.id, &placement, version).await?;
        Ok(())
    }

    /// A place among the `PROVISION_CONCURRENCY` provisionings at once.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ProvisionError> {
        // (The semaphore is never closed: acquiring only waits.)
        self.slots
            .acquire()
            .await
            .map_err(|_| ProvisionError::Database(sqlx::Error::PoolClosed))
    }

    /// The admin's connections into a pod (a pool of two, kept).
    fn pod_admin(&self, server: &servers::DbServer, pod: &str) -> sqlx::PgPool {
        let mut pools = self.pod_admins.lock().expect("pod admin pools lock");
        pools
            .entry(pod.to_owned())
            .or_insert_with(|| {
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(60))
                    .connect_lazy_with(ddl::admin_session(
                        self.admin_on_server(server).database(pod),
                    ))
            })
            .clone()
    }

    /// Makes up every pod's spare schemas to `POD_SPARE_SCHEMAS`, one at a
    /// time; returns how many were made. A failure is logged and ends the
    /// round (the next provisioning tries again).
    pub async fn replenish_spares(&self) -> Result<usize, sqlx::Error> {
        let wanted = self.settings.pod_spare_schemas;
        if wanted == 0 {
            return Ok(0);
        }
        let _building = self.spares_building.lock().await;
        let mut made = 0;
        for short in pods::short_of_spares(&self.databases.central, wanted).await? {
            let on_server = self.databases.admin_on_server(&short.host, short.port);
            let server = servers::DbServer {
                id: Uuid::nil(),
                host: short.host.clone(),
                port: short.port,
            };
            let in_pod = self.pod_admin(&server, &short.pod.db_name);
            for _ in 0..short.missing {
                if self.spares_stopped.load(Ordering::Relaxed) {
                    return Ok(made);
                }
                crate::tenancy::pods::make_spare(
                    &self.databases.central,
                    &on_server,
                    &in_pod,
                    &short.pod,
                    &self.prefix,
                )
                .await?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// `serve`'s task: [`replenish_spares`](Self::replenish_spares) at
    /// start and after each shared clinic provisioned. (Other commands
    /// leave the spares to the servers.)
    pub async fn keep_spares(self) {
        while !self.spares_stopped.load(Ordering::Relaxed) {
            if let Err(error) = self.replenish_spares().await {
                tracing::warn!(%error, "making spare clinic schemas failed; provisioning lays schemas out meanwhile");
            }
            self.spare_taken.notified().await;
        }
    }

    /// Ends [`keep_spares`](Self::keep_spares), waiting for the spare
    /// being made, if any (shutdown: no role or schema is left half made).
    pub async fn stop_spares(&self) {
        self.spares_stopped.store(true, Ordering::Relaxed);
        self.spare_taken.notify_one();
        drop(self.spares_building.lock().await);
    }

    async fn build(
        &self,
        id: ClinicId,
        clinic: &NewClinic,
        server: &servers::DbServer,
        made: &mut Made,
    ) -> Result<(), ProvisionError> {
        let _slot = self.slot().await?;
        let roles = TenantRoles::of(id, &self.prefix);
        let database = id.database_name(&self.prefix);
        let password = random_token(32);
        let on_server = self.admin_on_server(server);
        let mut admin = on_server.connect().await?;
        let created = self
            .create_database(&mut admin, server, &roles, &database, &password, made)
            .await;
        let _ = admin.close().await;
        let copied = created?;
        self.fail_if(FailAfter::DatabaseCreated)?;

        if copied {
            let mut in_copy = ddl::admin_session(on_server.clone().database(&database))
                .connect()
                .await?;
            let adopted = ddl::adopt_template_copy(
                &mut in_copy,
                Template::new(&self.prefix).name(),
                &roles.owner,
            )
            .await;
            let _ = in_copy.close().await;
            adopted?;
        }
        let mut as_owner = ddl::owner_session(on_server.database(&database), &roles.owner)
            .connect()
            .await?;
        let laid_out = lay_out(&mut as_owner, &roles, copied).await;
        let _ = as_owner.close().await;
        laid_out?;

        // As the clinic's login role, as the server will be.
        let mut conn = self.options_for(server, id, &password).connect().await?;
        let filled = fill(&mut conn, id, clinic).await;
        let _ = conn.close().await;
        let version = filled?;
        self.fail_if(FailAfter::Migrated)?;

        let sealed = self.keys.seal(password.as_bytes(), id.0.as_bytes());
        let placement =
            Placement::dedicated(&server.host, server.port, &database, &roles.login, sealed);
        companies::mark_ready(&self.databases.central, id, server.id, &placement, version).await?;
        Ok(())
    }

    /// The admin role on `server`'s maintenance database.
    fn admin_on_server(&self, server: &servers::DbServer) -> PgConnectOptions {
        self.databases.admin_on_server(&server.host, server.port)
    }

    /// The roles and their database, copied from the template when it is
    /// current (`true`), else empty.
    async fn create_database(
        &self,
        admin: &mut PgConnection,
        server: &servers::DbServer,
        roles: &TenantRoles,
        database: &str,
        password: &str,
        made: &mut Made,
    ) -> Result<bool, ProvisionError> {
        ddl::create_roles(admin, roles, password).await?;
        made.roles = true;
        self.fail_if(FailAfter::RoleCreated)?;
        let template = Template::new(&self.prefix);
        let copy = self.template_usable(admin, server, &template).await?;
        let source = if copy { template.name() } else { "template0" };
        let created = ddl::create_database(admin, database, roles, source).await;
        if copy {
            template.unlock_shared(admin).await?;
        }
        created?;
        made.database = true;
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

    fn options_for(
        &self,
        server: &servers::DbServer,
        id: ClinicId,
        password: &str,
    ) -> PgConnectOptions {
        self.admin_on_server(server)
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
    async fn undo(&self, id: ClinicId, server: &servers::DbServer, made: &Made) {
        let roles = TenantRoles::of(id, &self.prefix);
        let removed = async {
            let on_server = self.admin_on_server(server);
            if let Some(pod) = &made.schema_in {
                let mut in_pod = ddl::admin_session(on_server.clone().database(pod))
                    .connect()
                    .await?;
                let dropped = ddl::drop_schema(&mut in_pod, &id.database_name(&self.prefix)).await;
                let _ = in_pod.close().await;
                dropped?;
            }
            let mut admin = on_server.connect().await?;
            if made.database {
                ddl::drop_database(&mut admin, &id.database_name(&self.prefix)).await?;
            }
            if made.roles {
                ddl::drop_roles(&mut admin, &roles).await?;
            }
            let _ = admin.close().await;
            Ok::<(), sqlx::Error>(())
        }
        .await;
        if let Err(error) = removed {
            tracing::error!(clinic.id = %id, %error, "rollback: dropping the database, schema or roles failed");
        }
        if let Err(error) = companies::delete(&self.databases.central, id).await {
            tracing::error!(clinic.id = %id, %error, "rollback: deleting the clinic row failed");
        }
    }
}

/// As the owner: migrates a database that is not a template copy and
/// installs its audit trail, then grants the login role its part.
async fn lay_out(
    as_owner: &mut PgConnection,
    roles: &TenantRoles,
    copied: bool,
) -> Result<(), ProvisionError> {
    if !copied {
        migrations::run_on(&migrations::CLINIC, &mut *as_owner).await?;
        ddl::install_audit_trail(&mut *as_owner, "public").await?;
    }
    ddl::lock_down(as_owner, &roles.login, "public").await?;
    Ok(())
}

/// As the login role: writes the initial settings; returns the schema
/// version.
async fn fill(
    conn: &mut PgConnection,
    id: ClinicId,
    clinic: &NewClinic,
) -> Result<i64, ProvisionError> {
    settings::initialise(&mut *conn, id, &clinic.name, &clinic.country).await?;
    Ok(migrations::applied_version(conn).await?)
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
