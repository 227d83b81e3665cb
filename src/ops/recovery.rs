//! The whole platform's backup and its recovery onto an empty server.
//!
//! `backup --all` writes, beside one backup per clinic, a backup of central
//! (clinics, staff accounts, sealed credentials, the erasure ledger, the
//! platform audit), made after the clinics' so that it is the newer, and
//! last a manifest naming every file: a directory with a manifest is a
//! whole platform backup. Every file is encrypted like a clinic backup and
//! of mode 0600.
//!
//! `restore --platform DIR` rebuilds from the newest manifest of `DIR`, on
//! the server of `DATABASE_URL` (the embedded cluster by default), whose
//! central database must be absent or empty:
//! 1. central is made and loaded the way a clinic is restored: the
//!    product's migrations up to the backup's version, then only the rows
//!    (`pg_restore --data-only` of a list of exactly those entries), then
//!    the migrations forward;
//! 2. every clinic is placed on this server (the `primary` server row is
//!    pointed at it), its roles are made with a new password, sealed anew
//!    (roles are in no backup), and its backup is restored as
//!    `restore --clinic` does (the erasure ledger re-applied, the audit
//!    trail's restore recorded).
//!
//! One clinic failing does not stop the others; its roles and placement
//! exist, so `restore --clinic ID --from FILE --force` finishes it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use super::backup::{
    backup_all, decrypted_copy, dump_database, BackupResult, Database, WhenExists,
};
use super::pgtools::{PgTools, Target};
use super::restore::{self, backup_version, load_rows, tables_in_load_order, RestoreOptions};
use super::{connect, Fleet};
use crate::central::audit;
use crate::central::notify::{self, Change};
use crate::config::Settings;
use crate::crypto::random_token;
use crate::migrations;
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

/// The manifest's format version.
const FORMAT: u32 = 1;

/// What a platform backup holds (`platform-<UTC time>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    /// The central backup's file name, in the same directory.
    pub central: String,
    /// Every clinic backed up, with its file name.
    pub clinics: Vec<ManifestClinic>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestClinic {
    pub clinic_id: Uuid,
    pub file: String,
}

/// A platform backup just made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformBackup {
    /// The manifest; `None` when the central backup failed (then the
    /// directory is no platform backup, only clinic backups).
    pub manifest: Option<PathBuf>,
    pub central_error: Option<String>,
    pub clinics: Vec<BackupResult>,
}

/// Backs up every clinic, then central, then writes the manifest.
pub async fn backup_platform(
    fleet: &Fleet,
    dir: &Path,
    jobs: usize,
    when_exists: WhenExists,
    progress: impl FnMut(usize, usize),
) -> anyhow::Result<PlatformBackup> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let clinics = backup_all(fleet, dir, jobs, when_exists, progress).await?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let central = format!("central-{stamp}.dump");
    let admin = &fleet.databases.admin_options;
    let database = Database {
        host: admin.get_host(),
        port: i32::from(admin.get_port()),
        name: &fleet.settings.prefix.central_database(),
    };
    if let Err(error) = dump_database(fleet, &database, &dir.join(&central), when_exists).await {
        return Ok(PlatformBackup {
            manifest: None,
            central_error: Some(format!("{error:#}")),
            clinics,
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: Utc::now(),
        central,
        clinics: clinics
            .iter()
            .filter_map(|result| {
                let backup = result.backup.as_ref()?;
                Some(ManifestClinic {
                    clinic_id: result.clinic_id,
                    file: backup.file.file_name()?.to_string_lossy().into_owned(),
                })
            })
            .collect(),
    };
    let path = dir.join(format!("platform-{stamp}.json"));
    let mut file = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    file.sync_all()?;
    Ok(PlatformBackup {
        manifest: Some(path),
        central_error: None,
        clinics,
    })
}

/// What a platform recovery did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformRestored {
    pub manifest: PathBuf,
    pub clinics: Vec<ClinicRecovered>,
    pub seconds: f64,
}

impl PlatformRestored {
    pub fn failed(&self) -> usize {
        self.clinics.iter().filter(|c| c.error.is_some()).count()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClinicRecovered {
    pub clinic_id: Uuid,
    pub error: Option<String>,
}

/// Rebuilds the platform from the newest manifest in `dir` (see the module
/// documentation).
pub async fn restore_platform(settings: &Settings, dir: &Path) -> anyhow::Result<PlatformRestored> {
    let started = Instant::now();
    let manifest_path = newest_manifest(dir)?;
    let manifest: Manifest = serde_json::from_slice(
        &fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not a platform backup manifest",
            manifest_path.display()
        )
    })?;
    if manifest.format != FORMAT {
        anyhow::bail!(
            "{} is of format {}, which this release does not know",
            manifest_path.display(),
            manifest.format
        );
    }
    rebuild_central(settings, &dir.join(file_name(&manifest.central)?)).await?;
    let fleet = Fleet::open(settings).await?;
    let result = recover_clinics(&fleet, dir, &manifest).await;
    fleet.close().await;
    let clinics = result?;
    Ok(PlatformRestored {
        manifest: manifest_path,
        clinics,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Places every clinic of central on this server and restores it.
async fn recover_clinics(
    fleet: &Fleet,
    dir: &Path,
    manifest: &Manifest,
) -> anyhow::Result<Vec<ClinicRecovered>> {
    let central = &fleet.databases.central;
    let admin = &fleet.databases.admin_options;
    let (host, port) = (admin.get_host().to_owned(), i32::from(admin.get_port()));
    let server: Uuid = sqlx::query_scalar(
        "UPDATE db_servers SET host = $1, port = $2, updated_at = now()
          WHERE name = 'primary' RETURNING id",
    )
    .bind(&host)
    .bind(port)
    .fetch_one(central)
    .await?;
    let mut recovered = Vec::new();
    for clinic in fleet.dedicated_clinics("platform recovery").await? {
        let file = manifest
            .clinics
            .iter()
            .find(|entry| entry.clinic_id == clinic.id)
            .map(|entry| file_name(&entry.file).map(|name| dir.join(name)));
        let outcome = match file {
            None => Err(anyhow::anyhow!("the manifest has no backup of it")),
            Some(file) => {
                async {
                    let id = ClinicId(clinic.id);
                    place(fleet, id, server, &host, port).await?;
                    let options = RestoreOptions {
                        clinic: Some(id),
                        from: file?,
                        force: true,
                        as_new_clinic: None,
                        operator: None,
                    };
                    restore::restore(fleet, &options).await?;
                    anyhow::Ok(())
                }
                .await
            }
        };
        if let Err(error) = &outcome {
            tracing::error!(clinic.id = %clinic.id, error = format!("{error:#}"), "clinic recovery failed");
        }
        recovered.push(ClinicRecovered {
            clinic_id: clinic.id,
            error: outcome.err().map(|error| format!("{error:#}")),
        });
    }
    let event = audit::PlatformEvent {
        action: "platform.restored",
        actor_user_id: None,
        company_id: None,
        client_addr: None,
        details: json!({
            "manifestCreatedAt": manifest.created_at,
            "clinics": recovered.len(),
            "failed": recovered.iter().filter(|c| c.error.is_some()).count(),
        }),
    };
    audit::record(central, event).await?;
    Ok(recovered)
}

/// Makes the clinic's roles on this server (roles are in no backup) with a
/// new password, and records its placement here with the password sealed
/// anew.
async fn place(
    fleet: &Fleet,
    id: ClinicId,
    server: Uuid,
    host: &str,
    port: i32,
) -> anyhow::Result<()> {
    let roles = TenantRoles::of(id, &fleet.settings.prefix);
    let password = random_token(32);
    let mut admin = fleet.admin_on_server(host, port).await?;
    let made = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&roles.login)
                .fetch_one(&mut admin)
                .await?;
        if exists {
            ddl::ensure_owner_role(&mut admin, &roles.owner).await?;
            ddl::set_password(&mut admin, &roles.login, &password).await
        } else {
            ddl::create_roles(&mut admin, &roles, &password).await
        }
    }
    .await;
    let _ = admin.close().await;
    made?;
    sqlx::query(
        "UPDATE companies
            SET db_server_id = $2, db_host = $3, db_port = $4, db_name = $5, db_user = $5,
                db_password_sealed = $6, db_password_next_sealed = NULL, updated_at = now()
          WHERE id = $1",
    )
    .bind(id.0)
    .bind(server)
    .bind(host)
    .bind(port)
    .bind(&roles.login)
    .bind(
        fleet
            .settings
            .keys
            .seal(password.as_bytes(), id.0.as_bytes()),
    )
    .execute(&fleet.databases.central)
    .await?;
    notify::send(&fleet.databases.central, Change::Placement(id)).await?;
    Ok(())
}

/// Makes the central database from its backup: refused unless central is
/// absent or holds no clinic and no account.
async fn rebuild_central(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let admin_options = PgConnectOptions::from_str(&settings.admin_url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .application_name("medicalpro-ops");
    let mut admin = connect(&admin_options).await?;
    let name = settings.prefix.central_database();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if exists {
        let mut central = connect(&admin_options.clone().database(&name)).await?;
        let empty = central_is_empty(&mut central).await;
        let _ = central.close().await;
        if !empty? {
            anyhow::bail!(
                "the central database {name} already holds clinics or accounts: `restore --platform` rebuilds a platform on an empty server (point DATABASE_URL at another server, or use another DB_PREFIX)"
            );
        }
        sqlx::raw_sql(&format!("DROP DATABASE {}", quote_ident(&name)))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping the empty central database {name} (is a server using it? stop it first)"))?;
    }
    let copy = std::env::temp_dir().join(format!("medicalpro-central-{}", Uuid::new_v4()));
    let (from, keyring, to) = (file.to_owned(), settings.keyring(), copy.clone());
    let decrypted = tokio::task::spawn_blocking(move || decrypted_copy(&from, &keyring, &to))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|done| done);
    let loaded = match decrypted {
        Ok(()) => load_central(settings, &mut admin, &name, &copy).await,
        Err(error) => Err(error),
    };
    let _ = fs::remove_file(&copy);
    if loaded.is_err() {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&name)))
            .execute(&mut admin)
            .await;
    }
    let _ = admin.close().await;
    loaded.with_context(|| format!("restoring central from {}", file.display()))
}

/// Creates central and loads the backup's rows into it (see the module
/// documentation).
async fn load_central(
    settings: &Settings,
    admin: &mut PgConnection,
    name: &str,
    copy: &Path,
) -> anyhow::Result<()> {
    sqlx::raw_sql(&format!("CREATE DATABASE {}", quote_ident(name)))
        .execute(&mut *admin)
        .await?;
    let tools = PgTools::for_server(admin).await?;
    let path = copy.to_string_lossy().into_owned();
    let version = backup_version(&tools, &path).await?;
    let known = migrations::latest_version(&migrations::CENTRAL);
    if version > known {
        anyhow::bail!("this central backup is at schema version {version}, newer than this binary's {known}: use a newer medicalpro");
    }
    let options = PgConnectOptions::from_str(&settings.admin_url)?.database(name);
    let target = Target::admin_on(
        &settings.admin_url,
        options.get_host(),
        options.get_port(),
        name,
    )?;
    let mut central = options.connect().await?;
    migrations::run_on(
        &migrations::up_to(&migrations::CENTRAL, version),
        &mut central,
    )
    .await?;
    let order = tables_in_load_order(&mut central).await?;
    load_rows(&tools, &target, &path, None, central_rows, &order).await?;
    migrations::run_on(&migrations::CENTRAL, &mut central).await?;
    let _ = central.close().await;
    Ok(())
}

/// Whether central holds no clinic and no account (as `serve` leaves it
/// on first start).
async fn central_is_empty(central: &mut PgConnection) -> anyhow::Result<bool> {
    let has_tables: bool = sqlx::query_scalar(
        "SELECT to_regclass('public.companies') IS NOT NULL AND to_regclass('public.users') IS NOT NULL",
    )
    .fetch_one(&mut *central)
    .await?;
    if !has_tables {
        return Ok(true);
    }
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM companies) AND NOT EXISTS (SELECT 1 FROM users)",
    )
    .fetch_one(central)
    .await?)
}

/// A central archive's rows and sequence positions in `public` (the
/// migration ledger excepted: the product writes its own).
fn central_rows(entry: &[&str]) -> bool {
    matches!(entry,
        [_, _, "TABLE", "DATA", "public", table, _] if *table != "_sqlx_migrations")
        || matches!(entry, [_, _, "SEQUENCE", "SET", "public", _, _])
}

/// The newest `platform-*.json` of `dir`.
fn newest_manifest(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut manifests: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("platform-") && name.ends_with(".json"))
        })
        .collect();
    manifests.sort();
    manifests.pop().ok_or_else(|| {
        anyhow::anyhow!(
            "{} holds no platform backup (no platform-*.json: made by `medicalpro backup --all`)",
            dir.display()
        )
    })
}

/// A file name from a manifest: a bare name, never a path elsewhere.
fn file_name(name: &str) -> anyhow::Result<&str> {
    let bare = Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name);
    if bare && !name.starts_with('.') {
        Ok(name)
    } else {
        anyhow::bail!("the manifest names {name:?}, not a file of its directory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_files_of_its_own_directory_only() {
        assert!(file_name("central-20261129T000000Z.dump").is_ok());
        for bad in ["../central.dump", "/etc/passwd", "a/b.dump", "..", ".", ""] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_central_row_but_the_ledger_is_loaded() {
        let keep = |line: &str| central_rows(&line.split(' ').collect::<Vec<_>>());
        assert!(keep("0 16390 TABLE DATA public companies postgres"));
        assert!(keep(
            "0 0 SEQUENCE SET public platform_audit_id_seq postgres"
        ));
        assert!(!keep("0 16400 TABLE DATA public _sqlx_migrations postgres"));
        assert!(!keep("1255 16500 FUNCTION public planted() postgres"));
        assert!(!keep("0 16390 TABLE DATA other companies postgres"));
    }
}
