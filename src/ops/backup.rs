//! `medicalpro backup`: one clinic's database in `pg_dump`'s custom format,
//! dumped as the admin role, written to a temporary file (mode 0600: it
//! holds patient data) that is renamed into place only once complete,
//! beside `FILE.mac`: an HMAC-SHA-256 of the file keyed from `MASTER_KEY`,
//! so that `restore` refuses a file edited by anyone without the key.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use super::pgtools::{PgTools, Target};
use super::{connect, for_each_bounded, ClinicRecord, Fleet};
use crate::crypto::{Keyring, MasterKey};
use crate::tenancy::ddl;
use crate::tenancy::naming::ClinicId;

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub clinic_id: Uuid,
    pub file: PathBuf,
    pub bytes: u64,
    /// HMAC-SHA-256 of the file (hex), as `FILE.mac` holds it.
    pub mac: String,
    pub seconds: f64,
}

/// One clinic's result in `backup --all`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    pub clinic_id: Uuid,
    pub backup: Option<Backup>,
    pub error: Option<String>,
}

/// What the authentication key of backups is derived for.
const MAC_PURPOSE: &str = "medicalpro backup authentication v1";

/// The authentication code file beside `file`.
pub fn mac_path(file: &Path) -> PathBuf {
    with_suffix(file, ".mac")
}

/// Backs up one clinic to `out`.
pub async fn backup_clinic(fleet: &Fleet, id: ClinicId, out: &Path) -> anyhow::Result<Backup> {
    let clinic = fleet.clinic(id).await?;
    dump(fleet, &clinic, out).await
}

/// Backs up every provisioned clinic into `dir` as
/// `<clinic id>-<UTC time>.dump`, `jobs` at once; a failure does not stop
/// the others.
pub async fn backup_all(
    fleet: &Fleet,
    dir: &Path,
    jobs: usize,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Vec<BackupResult>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let clinics = fleet.clinics(None).await?;
    let total = clinics.len();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let fleet = Arc::new(fleet.clone());
    let dir = dir.to_owned();
    let mut done = 0;
    progress(done, total);
    let results = for_each_bounded(
        clinics,
        jobs,
        |clinic| {
            let (fleet, out) = (
                fleet.clone(),
                dir.join(format!("{}-{stamp}.dump", clinic.id)),
            );
            async move {
                match dump(&fleet, &clinic, &out).await {
                    Ok(backup) => BackupResult {
                        clinic_id: clinic.id,
                        backup: Some(backup),
                        error: None,
                    },
                    Err(error) => BackupResult {
                        clinic_id: clinic.id,
                        backup: None,
                        error: Some(format!("{error:#}")),
                    },
                }
            }
        },
        |_| {
            done += 1;
            progress(done, total);
        },
    )
    .await;
    Ok(results)
}

async fn dump(fleet: &Fleet, clinic: &ClinicRecord, out: &Path) -> anyhow::Result<Backup> {
    let started = Instant::now();
    let mut conn = connect(&ddl::admin_session(
        fleet.admin_options_on(clinic, &clinic.db_name),
    ))
    .await
    .with_context(|| format!("connecting to the database of clinic {}", clinic.id))?;
    let tools = PgTools::for_server(&mut conn).await?;
    drop(conn);
    let target = Target::admin_on(
        &fleet.settings.admin_url,
        &clinic.db_host,
        u16::try_from(clinic.db_port).unwrap_or(5432),
        &clinic.db_name,
    )?;
    let partial = with_suffix(out, ".partial");
    create_private(&partial)?;
    let result = async {
        let file = partial.to_string_lossy().into_owned();
        tools
            .run(
                &tools.pg_dump,
                &target,
                &["--format=custom", "--no-password", "--file", &file],
            )
            .await?;
        let (path, key) = (partial.clone(), fleet.settings.master_key.clone());
        let (mac, bytes) = tokio::task::spawn_blocking(move || mac_file(&path, &key)).await??;
        fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
        write_mac(out, &mac)?;
        anyhow::Ok((mac, bytes))
    }
    .await;
    let (mac, bytes) = result.inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })?;
    tracing::info!(clinic.id = %clinic.id, bytes, duration_ms = started.elapsed().as_millis() as u64, "clinic backed up");
    Ok(Backup {
        clinic_id: clinic.id,
        file: out.to_owned(),
        bytes,
        mac,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Copies `file` to `copy` (mode 0600) while computing its authentication
/// code under the current master key and the previous one, in the same
/// pass, and checks `FILE.mac` against them (in constant time): what is
/// restored afterwards is the copy, exactly the bytes that were checked. On
/// refusal, the copy is removed.
pub fn authenticated_copy(file: &Path, keyring: &Keyring, copy: &Path) -> anyhow::Result<()> {
    let macs = mac_path(file);
    let text = fs::read_to_string(&macs).with_context(|| {
        format!(
            "reading {} (a backup is only restored with its authentication code)",
            macs.display()
        )
    })?;
    let expected = crate::crypto::unhex(text.split_whitespace().next().unwrap_or_default());
    let checked = (|| {
        let mut out = create_private(copy)?;
        let mut codes: Vec<Hmac<Sha256>> = std::iter::once(&keyring.current)
            .chain(keyring.previous.as_ref())
            .map(backup_mac)
            .collect();
        digest_file(file, &mut codes, Some(&mut out))?;
        out.sync_all()?;
        let matches = expected.is_some_and(|expected| {
            codes
                .into_iter()
                .any(|code| code.verify_slice(&expected).is_ok())
        });
        if !matches {
            anyhow::bail!(
                "{} does not match its authentication code: it was changed or damaged, \
                 or made with another MASTER_KEY",
                file.display()
            );
        }
        Ok(())
    })();
    if checked.is_err() {
        let _ = fs::remove_file(copy);
    }
    checked
}

/// The authentication code of backups under `key`, not fed yet.
fn backup_mac(key: &MasterKey) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(&key.derive(MAC_PURPOSE))
        .expect("HMAC takes any key length")
}

/// Reads `path` in chunks into every code of `codes`, writing it to `copy`
/// on the way when given; returns its length.
fn digest_file(
    path: &Path,
    codes: &mut [Hmac<Sha256>],
    mut copy: Option<&mut fs::File>,
) -> anyhow::Result<u64> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(total);
        }
        for code in codes.iter_mut() {
            code.update(&buffer[..read]);
        }
        if let Some(out) = copy.as_mut() {
            out.write_all(&buffer[..read])?;
        }
        total += read as u64;
    }
}

/// The authentication code (lower-case hex) and length of a file.
fn mac_file(path: &Path, key: &MasterKey) -> anyhow::Result<(String, u64)> {
    let mut codes = [backup_mac(key)];
    let bytes = digest_file(path, &mut codes, None)?;
    let [code] = codes;
    Ok((crate::crypto::hex(&code.finalize().into_bytes()), bytes))
}

fn write_mac(file: &Path, mac: &str) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let macs = mac_path(file);
    let partial = with_suffix(&macs, ".partial");
    let mut out = create_private(&partial)?;
    writeln!(out, "{mac}  {name}")?;
    out.sync_all()?;
    fs::rename(&partial, &macs).with_context(|| format!("writing {}", macs.display()))?;
    Ok(())
}

/// An empty file only its owner can read (for `pg_dump`, or a copy).
fn create_private(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_backup_or_another_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("medicalpro-mac-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let (file, copy) = (dir.join("clinic.dump"), dir.join("copy"));
        fs::write(&file, b"PGDMP fake dump").unwrap();
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let keyring = Keyring::new(new.clone(), None);
        assert!(
            authenticated_copy(&file, &keyring, &copy).is_err(),
            "no code file"
        );
        let (code, bytes) = mac_file(&file, &old).unwrap();
        assert_eq!(bytes, 15);
        write_mac(&file, &code).unwrap();
        let line = fs::read_to_string(mac_path(&file)).unwrap();
        assert_eq!(line, format!("{code}  clinic.dump\n"));
        // Made with the old key: refused until it is the previous one.
        assert!(authenticated_copy(&file, &keyring, &copy).is_err());
        assert!(!copy.exists(), "a refused copy is removed");
        let rotating = Keyring::new(new, Some(old.clone()));
        authenticated_copy(&file, &rotating, &copy).unwrap();
        assert_eq!(fs::read(&copy).unwrap(), b"PGDMP fake dump");
        // One byte changed, with the code left as it was.
        fs::write(&file, b"PGDMP fake dumq").unwrap();
        let error = authenticated_copy(&file, &Keyring::new(old, None), &copy).unwrap_err();
        assert!(error.to_string().contains("authentication code"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
