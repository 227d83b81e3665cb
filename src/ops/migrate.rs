//! `medicalpro migrate`: the central database first, then every clinic,
//! several at once. One clinic failing does not stop the others; running
//! again finishes what is left (applied migrations are skipped).
//!
//! A clinic is migrated as its owner role (the admin acting as it), which
//! owns what the migrations create; the audit trail script is applied
//! again and the login role's grants renewed, and central records the
//! clinic's schema version. A clinic of an earlier release, whose login
//! role owned its database, is first brought to the current layout
//! (`tenancy::ddl::adopt_earlier_layout`).
//! sqlx applies each migration in its own transaction, so a clinic whose
//! migration is under way keeps being served from its last committed
//! version, and a failed migration leaves nothing half done.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    applied_versions, applied_versions_in, connect, for_each_bounded, ClinicRecord, Fleet,
};
use crate::migrations;
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::ClinicId;

/// How long one migration statement waits for a lock held by live traffic
/// before that clinic's migration fails (and is retried by the next run).
pub const LOCK_TIMEOUT: &str = "30s";

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Only this clinic (central is migrated all the same).
    pub clinic: Option<ClinicId>,
    /// Clinics migrated at once.
    pub jobs: usize,
    /// List what would run, change nothing.
    pub dry_run: bool,
    /// The clinic migration set: [`migrations::CLINIC`], or a test's own.
    pub clinic_migrator: &'static Migrator,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            clinic: None,
            jobs: 4,
            dry_run: false,
            clinic_migrator: &migrations::CLINIC,
        }
    }
}

/// Where one database stood and stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `None` for the central database.
    pub clinic_id: Option<Uuid>,
    pub from_version: i64,
    pub to_version: i64,
    pub status: Status,
    /// Versions applied by this run (with `dry_run`: that would be applied).
    pub applied: Vec<i64>,
    pub error: Option<String>,
}

/// What a run did to one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its version changed.
    Migrated,
    /// Nothing to apply (or, in a dry run, nothing that would be).
    Unchanged,
    /// A dry run: migrations would be applied.
    Pending,
    /// Its migration failed (it may have moved part of the way).
    Failed,
}

impl Outcome {
    fn settle(&mut self, dry_run: bool) {
        self.status = if self.error.is_some() {
            Status::Failed
        } else if dry_run && !self.applied.is_empty() {
            Status::Pending
        } else if self.from_version != self.to_version || !self.applied.is_empty() {
            Status::Migrated
        } else {
            Status::Unchanged
        };
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    pub dry_run: bool,
    pub central: Outcome,
    pub latest_clinic_version: i64,
    pub clinics: Vec<Outcome>,
}

impl MigrateReport {
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        std::iter::once(&self.central)
            .chain(&self.clinics)
            .filter(|o| o.error.is_some())
    }

    /// How many clinics are at each schema version after the run.
    pub fn clinics_by_version(&self) -> BTreeMap<i64, usize> {
        let mut counts = BTreeMap::new();
        for outcome in &self.clinics {
            *counts.entry(outcome.to_version).or_default() += 1;
        }
        counts
    }
}

/// Progress of the clinic phase, for a terminal display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub failed: usize,
    pub total: usize,
}

pub async fn run(
    fleet: &Fleet,
    options: &MigrateOptions,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<MigrateReport> {
    let central = migrate_central(&fleet.databases.central, options.dry_run).await?;
    if central.error.is_some() {
        // Clinics wait for a central database that is up to date.
        return Ok(MigrateReport {
            dry_run: options.dry_run,
            central,
            latest_clinic_version: migrations::latest_version(options.clinic_migrator),
            clinics: Vec::new(),
        });
    }
    if !options.dry_run {
        crate::central::servers::register_primary(
            &fleet.databases.central,
            &fleet.databases.admin_options,
        )
        .await?;
    }
    let clinics = match options.clinic {
        Some(id) => vec![fleet.clinic(id).await?],
        None => fleet.clinics(None).await?,
    };
    let total = clinics.len();
    let mut tally = Progress {
        done: 0,
        failed: 0,
        total,
    };
    progress(tally);
    let fleet = Arc::new(fleet.clone());
    let (migrator, dry_run) = (options.clinic_migrator, options.dry_run);
    let outcomes = for_each_bounded(
        clinics,
        options.jobs,
        |clinic| migrate_clinic(fleet.clone(), clinic, migrator, dry_run),
        |outcome: &Outcome| {
            tally.done += 1;
            tally.failed += usize::from(outcome.error.is_some());
            progress(tally);
        },
    )
    .await;
    Ok(MigrateReport {
        dry_run: options.dry_run,
        central,
        latest_clinic_version: migrations::latest_version(migrator),
        clinics: outcomes,
    })
}

async fn migrate_central(central: &PgPool, dry_run: bool) -> anyhow::Result<Outcome> {
    let mut conn = central.acquire().await?;
    let before = applied_versions(&mut conn).await?;
    let pending = pending(&migrations::CENTRAL, &before);
    let mut outcome = Outcome {
        clinic_id: None,
        from_version: before.last().copied().unwrap_or(0),
        to_version: before.last().copied().unwrap_or(0),
        status: Status::Unchanged,
        applied: pending.clone(),
        error: None,
    };
    if dry_run || pending.is_empty() {
        outcome.settle(dry_run);
        return Ok(outcome);
    }
    drop(conn);
    if let Err(error) = migrations::CENTRAL.run(central).await {
        outcome.error = Some(format!("{error:#}"));
    }
    let after = applied_versions(&mut *central.acquire().await?).await?;
    outcome.to_version = after.last().copied().unwrap_or(0);
    outcome.applied = after.into_iter().filter(|v| !before.contains(v)).collect();
    outcome.settle(dry_run);
    Ok(outcome)
}

/// Migrates one clinic; every failure ends up in the outcome's `error`.
pub async fn migrate_clinic(
    fleet: Arc<Fleet>,
    clinic: ClinicRecord,
    migrator: &'static Migrator,
    dry_run: bool,
) -> Outcome {
    let mut outcome = Outcome {
        clinic_id: Some(clinic.id),
        from_version: clinic.schema_version,
        to_version: clinic.schema_version,
        status: Status::Unchanged,
        applied: Vec::new(),
        error: None,
    };
    if let Err(error) = migrate_into(&fleet, &clinic, migrator, dry_run, &mut outcome).await {
        tracing::warn!(clinic.id = %clinic.id, error = %format!("{error:#}"), "clinic migration failed");
        outcome.error = Some(format!("{error:#}"));
    }
    outcome.settle(dry_run);
    outcome
}

async fn migrate_into(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    migrator: &Migrator,
    dry_run: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let roles = TenantRoles::of(ClinicId(clinic.id), &fleet.settings.prefix);
    let in_database = fleet.admin_options_on(clinic, &clinic.db_name);
    if clinic.is_shared() {
        return migrate_schema(
            fleet,
            clinic,
            &roles,
            in_database,
            migrator,
            dry_run,
            outcome,
        )
        .await;
    }
    if !dry_run {
        let mut admin = fleet
            .admin_on_server(&clinic.db_host, clinic.db_port)
            .await?;
        let owned = async {
            ddl::ensure_owner_role(&mut admin, &roles.owner).await?;
            ddl::give_database_to_owner(&mut admin, &clinic.db_name, &roles).await
        }
        .await;
        let _ = admin.close().await;
        owned?;
    }
    let mut as_admin = connect(&ddl::admin_session(in_database.clone())).await?;
    let adopted = async {
        if !dry_run {
            ddl::adopt_earlier_layout(&mut as_admin, &roles).await?;
        }
        applied_versions(&mut as_admin).await
    }
    .await;
    let _ = as_admin.close().await;
    let before = adopted?;
    outcome.from_version = before.last().copied().unwrap_or(0);
    outcome.to_version = outcome.from_version;
    outcome.applied = pending(migrator, &before);
    if dry_run {
        return Ok(());
    }
    let options =
        ddl::owner_session(in_database, &roles.owner).options([("lock_timeout", LOCK_TIMEOUT)]);
    let mut as_owner = connect(&options).await?;
    let result = migrate_as_owner(fleet, clinic, &mut as_owner, migrator, &before, outcome).await;
    let _ = as_owner.close().await;
    result
}

/// As the clinic's owner: the pending migrations, then the audit trail and
/// the login role's grants (new tables get theirs), and central learns the
/// version reached.
async fn migrate_as_owner(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    as_owner: &mut PgConnection,
    migrator: &Migrator,
    before: &[i64],
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let migrated = migrations::run_on(migrator, &mut *as_owner).await;
    let after = applied_versions_in(&mut *as_owner, clinic.schema()).await?;
    outcome.to_version = after.last().copied().unwrap_or(0);
    outcome.applied = after
        .iter()
        .copied()
        .filter(|v| !before.contains(v))
        .collect();
    let recorded = record_version(fleet, clinic.id, outcome.to_version).await;
    migrated?;
    ddl::install_audit_trail(&mut *as_owner, clinic.schema()).await?;
    ddl::lock_down(as_owner, &clinic.db_user, clinic.schema()).await?;
    recorded?;
    Ok(())
}

/// A shared-tier clinic: its schema migrated in its pod, as its owner,
/// under a lock of its own (the pod's other schemas migrate meanwhile).
async fn migrate_schema(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    roles: &TenantRoles,
    in_pod: sqlx::postgres::PgConnectOptions,
    migrator: &Migrator,
    dry_run: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let schema = clinic.schema();
    let mut as_admin = connect(&ddl::admin_session(in_pod.clone())).await?;
    let before = applied_versions_in(&mut as_admin, schema).await;
    let _ = as_admin.close().await;
    let before = before?;
    outcome.from_version = before.last().copied().unwrap_or(0);
    outcome.to_version = outcome.from_version;
    outcome.applied = pending(migrator, &before);
    if dry_run {
        return Ok(());
    }
    let options = in_pod.options([
        ("role", roles.owner.as_str()),
        ("search_path", &format!("{schema},extensions")),
        ("lock_timeout", LOCK_TIMEOUT),
    ]);
    let mut as_owner = connect(&options).await?;
    let result = async {
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(schema)
            .execute(&mut as_owner)
            .await?;
        let in_schema = migrations::in_schema(migrator, schema);
        migrate_as_owner(fleet, clinic, &mut as_owner, &in_schema, &before, outcome).await
    }
    .await;
    let _ = as_owner.close().await;
    result
}

pub(super) async fn record_version(
    fleet: &Fleet,
    id: Uuid,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE companies SET schema_version = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(version)
        .execute(&fleet.databases.central)
        .await
        .map(drop)
}

fn pending(migrator: &Migrator, applied: &[i64]) -> Vec<i64> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect()
}
