//! `medicalpro restore`: a backup made by `medicalpro backup`, decrypted and
//! authenticated into a private copy, restored into a fresh staging database,
//! then put in place of the clinic's database in two renames (the clinic is
//! unreachable only between them), or made into a new clinic with its own
//! roles and password.
//!
//! The file supplies rows, nothing else: the staging database is made by
//! `tenancy::ddl` and brought by the product's own migrations to the
//! backup's schema version (as the clinic's owner role), the rows of the
//! product's tables are loaded into it (`pg_restore --data-only` of exactly
//! those entries), then it is migrated forward and the login role's grants
//! applied, as for any clinic. No statement of the file other than its
//! rows ever runs. A backup newer than the binary, or of another clinic,
//! is refused. Before a live database is replaced, what it holds is
//! compared with the backup and it is itself backed up ([`safety`]).
//!
//! A restore records in central who ran it, the file's SHA-256 and the head
//! of the audit chain it put in place (`compliance::record_restore`):
//! `audit verify` continues the chain from there instead of reporting the
//! rows anchored since the backup as tampering.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::backup::{decrypted_copy, fingerprint};
use super::erasures;
use super::migrate::record_version;
use super::pgtools::{PgTools, Target};
use super::safety::{self, Replacement};
use super::{connect, copy, operator, ClinicRecord, Fleet};
use crate::central::companies::{self, NewCompany, Placement};
use crate::central::notify::{self, Change};
use crate::central::restores::ChainRestore;
use crate::central::{audit, servers};
use crate::compliance;
use crate::crypto::random_token;
use crate::migrations;
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

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
    /// Who runs the restore, for its record (default: the OS user).
    pub operator: Option<String>,
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
    /// Patients of the backup erased since it was made (per the erasure
    /// ledger), erased again before the clinic served.
    pub erasures_reapplied: usize,
    /// The restored audit chain, from which `audit verify` continues it.
    pub audit_chain: ChainRestore,
    pub seconds: f64,
    /// Restoring over the clinic: what its live database held, and its
    /// safety backup.
    pub replaced: Option<Replacement>,
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
    restore_announcing(fleet, options, &|_| {}).await
}

/// [`restore`], telling `announce` what replacing a live database discards
/// before anything is changed (see [`safety`]).
pub async fn restore_announcing(
    fleet: &Fleet,
    options: &RestoreOptions,
    announce: &(dyn Fn(&Replacement) + Sync),
) -> Result<Restored, RestoreError> {
    let started = Instant::now();
    let operator = operator::operator(options.operator.as_deref())?;
    let sha256 = fingerprint_of(&options.from).await?;
    // What is restored is a private copy of exactly the bytes authenticated.
    let copy = std::env::temp_dir().join(format!("medicalpro-restore-{}", Uuid::new_v4()));
    let (from, keyring, checked) = (options.from.clone(), fleet.settings.keyring(), copy.clone());
    tokio::task::spawn_blocking(move || decrypted_copy(&from, &keyring, &checked))
        .await
        .map_err(anyhow::Error::from)??;
    let file = AuthenticatedFile(copy);
    let (clinic_id, loaded, replaced) = match &options.as_new_clinic {
        None => {
            let id = options
                .clinic
                .ok_or_else(|| anyhow::anyhow!("which clinic to restore into: --clinic ID"))?;
            let (loaded, replaced) = into_existing(fleet, id, options, &file, announce).await?;
            (id, loaded, Some(replaced))
        }
        Some(identity) => {
            let (id, loaded) = into_new(fleet, identity, options, &file).await?;
            (id, loaded, None)
        }
    };
    drop(file);
    let schema_version = migrations::latest_version(&migrations::CLINIC);
    record_version(fleet, clinic_id.0, schema_version).await?;
    // Every instance drops its connections to the database replaced.
    notify::send(&fleet.databases.central, Change::Placement(clinic_id)).await?;
    audit::record(
        &fleet.databases.central,
        audit::PlatformEvent {
            action: "clinic.restored",
            actor_user_id: None,
            company_id: Some(clinic_id.0),
            client_addr: None,
            details: json!({
                "asNewClinic": options.as_new_clinic.is_some(),
                "backupSchemaVersion": loaded.version,
                "erasuresReapplied": loaded.erasures_reapplied,
                "sourceClinicId": options.clinic.map(|id| id.0),
            }),
        },
    )
    .await?;
    let audit_chain = compliance::record_restore(
        &fleet.databases,
        clinic_id,
        &operator,
        &options.from.display().to_string(),
        &sha256,
    )
    .await
    .map_err(anyhow::Error::from)?;
    tracing::info!(clinic.id = %clinic_id, duration_ms = started.elapsed().as_millis() as u64, "clinic restored");
    Ok(Restored {
        clinic_id: clinic_id.0,
        new_clinic: options.as_new_clinic.is_some(),
        backup_version: loaded.version,
        schema_version,
        erasures_reapplied: loaded.erasures_reapplied,
        audit_chain,
        seconds: started.elapsed().as_secs_f64(),
        replaced,
    })
}

/// What was loaded from the backup.
struct Loaded {
    /// The backup's schema version (the staging database is at the newest).
    version: i64,
    /// Patients erased again (see [`erasures::reapply`]).
    erasures_reapplied: usize,
}

/// The backup file's SHA-256, its identity in the restore's record.
async fn fingerprint_of(file: &std::path::Path) -> Result<String, RestoreError> {
    let file = file.to_owned();
    Ok(tokio::task::spawn_blocking(move || fingerprint(&file))
        .await
        .map_err(anyhow::Error::from)??)
}

/// The decrypted, authenticated private copy of the backup, removed when
/// dropped.
struct AuthenticatedFile(PathBuf);

impl Drop for AuthenticatedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a staging database holds once the backup is in it.
struct Staged {
    database: String,
    loaded: Loaded,
    /// `clinic_settings` of the backup: (clinic id, name, country).
    settings: Option<(Uuid, String, String)>,
}

/// Restores over an existing clinic, its live database first backed up;
/// returns the backup's schema version and what was replaced.
async fn into_existing(
    fleet: &Fleet,
    id: ClinicId,
    options: &RestoreOptions,
    file: &AuthenticatedFile,
    announce: &(dyn Fn(&Replacement) + Sync),
) -> Result<(Loaded, Replacement), RestoreError> {
    let clinic = fleet.clinic(id).await?;
    if !options.force && has_patients(fleet, &clinic).await? {
        return Err(RestoreError::HasPatients(id));
    }
    let roles = TenantRoles::of(id, &fleet.settings.prefix);
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    // A clinic of an earlier release gets its owner role here.
    ddl::ensure_owner_role(&mut admin, &roles.owner).await?;
    let server = Server {
        host: &clinic.db_host,
        port: clinic.db_port,
    };
    let staged = stage(fleet, &mut admin, server, &roles, file).await?;
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
    let replaced =
        safety::before_replacing(fleet, &clinic, &staged.database, &options.from, announce).await;
    let replaced = match replaced {
        Ok(replaced) => replaced,
        Err(error) => {
            drop_database(&mut admin, &staged.database).await;
            return Err(error.into());
        }
    };
    if clinic.is_shared() {
        // The staged rows replace the schema's in one transaction.
        let copied = copy::into_schema(fleet, &clinic, &staged.database).await;
        drop_database(&mut admin, &staged.database).await;
        copied?;
        notify::send(&fleet.databases.central, Change::Placement(id)).await?;
    } else {
        swap(fleet, &mut admin, &clinic.db_name, &staged.database).await?;
    }
    let _ = admin.close().await;
    Ok((staged.loaded, replaced))
}

/// Restores as a new clinic; returns its id and the backup's schema version.
async fn into_new(
    fleet: &Fleet,
    identity: &NewIdentity,
    options: &RestoreOptions,
    file: &AuthenticatedFile,
) -> Result<(ClinicId, Loaded), RestoreError> {
    let central = &fleet.databases.central;
    let server = servers::pick_for_new_clinic(central).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no database server has room for a new clinic (every active one holds its db_servers.max_clinics)"
        )
    })?;
    let id = ClinicId::generate();
    let roles = TenantRoles::of(id, &fleet.settings.prefix);
    let password = random_token(32);
    let mut admin = fleet.admin_on_server(&server.host, server.port).await?;
    ddl::create_roles(&mut admin, &roles, &password).await?;
    let result = async {
        let on = Server {
            host: &server.host,
            port: server.port,
        };
        let staged = stage(fleet, &mut admin, on, &roles, file).await?;
        let plan = Plan {
            id,
            server: &server,
            password: &password,
        };
        let made = finish_new(fleet, &mut admin, &plan, identity, options, &staged).await;
        if made.is_err() {
            drop_database(&mut admin, &staged.database).await;
        }
        made.map(|()| staged.loaded)
    }
    .await;
    match result {
        Ok(loaded) => {
            let _ = admin.close().await;
            Ok((id, loaded))
        }
        Err(error) => {
            tracing::error!(clinic.id = %id, %error, "restore as a new clinic failed, removing it");
            drop_database(&mut admin, &roles.login).await;
            let _ = ddl::drop_roles(&mut admin, &roles).await;
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
    // As the owner, in a database holding only the product's own code.
    let mut staging = connect(&ddl::owner_session(
        fleet
            .databases
            .admin_on_server(&server.host, server.port)
            .database(&staged.database),
        &TenantRoles::of(id, &fleet.settings.prefix).owner,
    ))
    .await?;
    sqlx::query("UPDATE public.clinic_settings SET clinic_id = $1, name = $2, updated_at = now()")
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
            server_id: server.id,
            name: &name,
            email: &email,
            phone: source_company.as_ref().and_then(|c| c.phone.as_deref()),
            country: &country,
            pod_id: None,
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
    let sealed = fleet
        .settings
        .keys
        .seal(password.as_bytes(), id.0.as_bytes());
    let placement = Placement::dedicated(&server.host, server.port, &database, &database, sealed);
    companies::mark_ready(
        &fleet.databases.central,
        id,
        server.id,
        &placement,
        migrations::latest_version(&migrations::CLINIC),
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

/// Where a staging database is made.
#[derive(Clone, Copy)]
struct Server<'a> {
    host: &'a str,
    port: i32,
}

/// Makes a staging database for `roles`, lays it out at the backup's
/// schema version, loads the backup's rows, migrates it forward and locks
/// it down; reads what the backup holds.
async fn stage(
    fleet: &Fleet,
    admin: &mut PgConnection,
    server: Server<'_>,
    roles: &TenantRoles,
    file: &AuthenticatedFile,
) -> Result<Staged, RestoreError> {
    let tools = PgTools::for_server(admin).await?;
    let database = format!(
        "{}_restore_{}",
        fleet.settings.prefix.as_str(),
        Uuid::new_v4().simple()
    );
    ddl::create_database(admin, &database, roles, "template0").await?;
    let staged = async {
        let target = Target::admin_on(
            &fleet.settings.admin_url,
            server.host,
            u16::try_from(server.port).unwrap_or(5432),
            &database,
        )?;
        let path = file.0.to_string_lossy().into_owned();
        let version = backup_version(&tools, &path).await?;
        let known = migrations::latest_version(&migrations::CLINIC);
        if version > known {
            return Err(RestoreError::NewerSchema {
                backup: version,
                known,
            });
        }
        let in_database = fleet
            .databases
            .admin_on_server(server.host, server.port)
            .database(&database);
        let mut as_owner = connect(&ddl::owner_session(in_database, &roles.owner)).await?;
        let loaded = async {
            migrations::run_on(
                &migrations::up_to(&migrations::CLINIC, version),
                &mut as_owner,
            )
            .await
            .map_err(anyhow::Error::from)?;
            ddl::install_audit_trail(&mut as_owner, "public").await?;
            let order = tables_in_load_order(&mut as_owner).await?;
            load_rows(
                &tools,
                &target,
                &path,
                Some(&roles.owner),
                clinic_rows,
                &order,
            )
            .await?;
            migrations::run_on(&migrations::CLINIC, &mut as_owner)
                .await
                .map_err(anyhow::Error::from)?;
            ddl::install_audit_trail(&mut as_owner, "public").await?;
            ddl::lock_down(&mut as_owner, &roles.login, "public").await?;
            let settings: Option<(Uuid, String, String)> = sqlx::query_as(
                "SELECT clinic_id, name, country::text FROM public.clinic_settings LIMIT 1",
            )
            .fetch_optional(&mut as_owner)
            .await?;
            // The ledger of the clinic the backup is of.
            let erased = match &settings {
                Some((clinic, _, _)) => {
                    erasures::reapply(fleet, ClinicId(*clinic), &mut as_owner).await?
                }
                None => 0,
            };
            Ok::<_, RestoreError>((settings, erased))
        }
        .await;
        let _ = as_owner.close().await;
        let (settings, erasures_reapplied) = loaded?;
        Ok(Staged {
            database: database.clone(),
            loaded: Loaded {
                version,
                erasures_reapplied,
            },
            settings,
        })
    }
    .await;
    if staged.is_err() {
        drop_database(admin, &database).await;
    }
    staged
}

/// The newest migration the backup's ledger records (its rows, read from
/// the file without running anything).
pub(super) async fn backup_version(tools: &PgTools, file: &str) -> anyhow::Result<i64> {
    let ledger = tools
        .read_archive(&[
            "--data-only",
            "--schema=public",
            "--table=_sqlx_migrations",
            "--file=-",
            file,
        ])
        .await?;
    ledger_versions(&String::from_utf8_lossy(&ledger))
        .max()
        .ok_or_else(|| {
            anyhow::anyhow!("this backup holds no migration ledger: it is not a clinic database")
        })
}

/// The successful versions in the text of a `COPY ... _sqlx_migrations`:
/// the first column of each row whose fourth (`success`) is `t`.
fn ledger_versions(copy: &str) -> impl Iterator<Item = i64> + '_ {
    copy.lines()
        .skip_while(|line| !line.starts_with("COPY "))
        .skip(1)
        .take_while(|line| *line != "\\.")
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.get(3) == Some(&"t") {
                fields[0].parse().ok()
            } else {
                None
            }
        })
}

/// Loads the entries of the archive `wanted` keeps (rows, sequence
/// positions), as `role` (else the connecting role), in one transaction:
/// `pg_restore` is handed a list of exactly those entries, so that none of
/// the file's definitions runs. Tables are loaded in `order` (see
/// [`tables_in_load_order`]): the archive's order may put a row before the
/// one it references.
pub(super) async fn load_rows(
    tools: &PgTools,
    target: &Target,
    file: &str,
    role: Option<&str>,
    wanted: fn(&[&str]) -> bool,
    order: &[String],
) -> anyhow::Result<()> {
    let contents = tools.read_archive(&["--list", "--file=-", file]).await?;
    let list = in_order(entries(&String::from_utf8_lossy(&contents), wanted), order);
    let list_file =
        std::env::temp_dir().join(format!("medicalpro-restore-{}.list", Uuid::new_v4()));
    std::fs::write(&list_file, list)?;
    let list_arg = format!("--use-list={}", list_file.to_string_lossy());
    let role_arg = role.map(|role| format!("--role={role}"));
    let mut args = vec!["--data-only"];
    args.extend(role_arg.as_deref());
    args.extend([
        list_arg.as_str(),
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        file,
    ]);
    let loaded = tools.run(&tools.pg_restore, target, &args).await;
    let _ = std::fs::remove_file(&list_file);
    loaded.map(drop)
}

/// The lines of an archive's table of contents (`pg_restore --list`)
/// whose entry (its words after `; `) `wanted` keeps.
fn entries(contents: &str, wanted: fn(&[&str]) -> bool) -> String {
    contents
        .lines()
        .filter(|line| !line.starts_with(';'))
        .filter(|line| {
            line.split_once("; ")
                .is_some_and(|(_, entry)| wanted(&entry.split(' ').collect::<Vec<_>>()))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The tables of `public`, each after every table its foreign keys
/// reference (a table referencing itself aside).
pub(super) async fn tables_in_load_order(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    tables_in_load_order_in(conn, "public").await
}

/// [`tables_in_load_order`] of the schema `schema`.
pub(super) async fn tables_in_load_order_in(
    conn: &mut PgConnection,
    schema: &str,
) -> anyhow::Result<Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT child.relname::text, parent.relname::text
           FROM pg_catalog.pg_constraint c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace
           JOIN pg_catalog.pg_class child ON child.oid = c.conrelid
           JOIN pg_catalog.pg_class parent ON parent.oid = c.confrelid
          WHERE c.contype = 'f' AND n.nspname = $1 AND c.conrelid <> c.confrelid",
    )
    .bind(schema)
    .fetch_all(conn)
    .await?;
    let mut placed: Vec<String> = Vec::with_capacity(tables.len());
    let mut left = tables;
    while !left.is_empty() {
        let ready = |table: &String| {
            references
                .iter()
                .filter(|(child, _)| child == table)
                .all(|(_, parent)| placed.contains(parent) || !left.contains(parent))
        };
        let Some(next) = left.iter().position(ready) else {
            anyhow::bail!("the tables' foreign keys form a cycle: {left:?}");
        };
        placed.push(left.remove(next));
    }
    Ok(placed)
}

/// `list`'s lines with the rows of each table in `order` first, in that
/// order; every other line after them, as it came.
fn in_order(list: String, order: &[String]) -> String {
    let position = |line: &&str| {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            [_, _, _, "TABLE", "DATA", "public", table, _] => {
                order.iter().position(|known| known == table)
            }
            _ => None,
        }
        .unwrap_or(order.len())
    };
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort_by_key(position);
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// A clinic archive's rows of the product's tables in `public` (the
/// migration ledger excepted: the product writes its own), and the
/// position of the pending trail's identity.
fn clinic_rows(entry: &[&str]) -> bool {
    match entry {
        [_, _, "TABLE", "DATA", "public", table, _] => ddl::TABLE_GRANTS
            .iter()
            .any(|(known, _)| known == table && *known != "_sqlx_migrations"),
        [_, _, "SEQUENCE", "SET", "public", "audit_events_pending_id_seq", _] => true,
        _ => false,
    }
}

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
    let mut conn = match connect(&ddl::admin_session(
        fleet.admin_options_on(clinic, &clinic.db_name),
    ))
    .await
    {
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
    let has = if has_table(&mut conn, clinic.schema(), "patients").await? {
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {}.patients)",
            quote_ident(clinic.schema())
        ))
        .fetch_one(&mut conn)
        .await?
    } else {
        false
    };
    let _ = conn.close().await;
    Ok(has)
}

async fn has_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(format!("{}.{table}", quote_ident(schema)))
        .fetch_one(conn)
        .await
}

async fn drop_database(admin: &mut PgConnection, database: &str) {
    if let Err(error) = ddl::drop_database(admin, database).await {
        tracing::error!(database, %error, "dropping a restore's leftover database failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of contents as `pg_restore --list` prints it, with the
    /// definitions and privileges a file may carry: only the rows of the
    /// product's tables (not the ledger, not a table of another's making)
    /// and the pending trail's sequence position are kept.
    #[test]
    fn only_the_rows_of_the_products_tables_are_restored() {
        let contents = "\
;
; Archive created at 2026-11-29 18:00:00 UTC
;
215; 1259 16390 TABLE public patients medicalpro_owner_x
230; 1255 16500 FUNCTION public planted() medicalpro_clinic_x
231; 2620 16501 TRIGGER public patients planted medicalpro_clinic_x
3390; 0 16390 TABLE DATA public patients medicalpro_owner_x
3391; 0 16400 TABLE DATA public _sqlx_migrations medicalpro_owner_x
3392; 0 16410 TABLE DATA public whoami medicalpro_clinic_x
3393; 0 16420 TABLE DATA public audit_events medicalpro_owner_x
3394; 0 16430 TABLE DATA evil patients medicalpro_clinic_x
3401; 0 0 SEQUENCE SET public audit_events_pending_id_seq medicalpro_owner_x
3402; 0 0 SEQUENCE SET public planted_seq medicalpro_clinic_x
3500; 0 0 ACL public TABLE patients medicalpro_owner_x
";
        assert_eq!(
            entries(contents, clinic_rows),
            "3390; 0 16390 TABLE DATA public patients medicalpro_owner_x\n\
             3393; 0 16420 TABLE DATA public audit_events medicalpro_owner_x\n\
             3401; 0 0 SEQUENCE SET public audit_events_pending_id_seq medicalpro_owner_x\n"
        );
    }

    #[test]
    fn the_ledger_gives_its_successful_versions() {
        let copy = "SET statement_timeout = 0;\n\
            COPY public._sqlx_migrations (version, description, installed_on, success, checksum, execution_time) FROM stdin;\n\
            1\tclinic base\t2026-01-01 00:00:00+00\tt\t\\\\x00\t1\n\
            2\tclinic domain\t2026-01-01 00:00:00+00\tt\t\\\\x00\t1\n\
            4\tfailed one\t2026-01-01 00:00:00+00\tf\t\\\\x00\t1\n\
            \\.\n\
            SELECT 1;\n";
        assert_eq!(ledger_versions(copy).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_restored_clinic_gets_a_tagged_email() {
        let id = ClinicId("0a1b2c3d-0000-4000-8000-000000000000".parse().unwrap());
        assert_eq!(
            restored_email("contact@clinic.fr", id),
            "contact+restored-0a1b2c3d@clinic.fr"
        );
    }
}
