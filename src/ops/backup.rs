//! `medicalpro backup`: one clinic's database in `pg_dump`'s custom format,
//! dumped as the admin role and encrypted as it streams out of `pg_dump`
//! (the plain dump never reaches the disk), written to a temporary file
//! (mode 0600) that is put in place only once complete. An existing file is
//! never replaced unless asked ([`WhenExists::Replace`]).
//!
//! The file: a 28-byte header (`MPBACKUP`, format version 1, a random
//! 19-byte STREAM nonce prefix), then the dump in chunks of 64 KiB, each
//! sealed with XChaCha20-Poly1305 in the STREAM construction (big-endian
//! chunk counter, last-chunk flag), the header as associated data, under a
//! key derived from `MASTER_KEY`. Any change, truncation, reordering or
//! addition is refused when it is opened; so is a file under another key.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

use super::pgtools::{PgTools, Target};
use super::{connect, copy, for_each_bounded, ClinicRecord, Fleet};
use crate::crypto::{Keyring, MasterKey};
use crate::tenancy::ddl;
use crate::tenancy::naming::ClinicId;

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub clinic_id: Uuid,
    pub file: PathBuf,
    /// The size of the (encrypted) file.
    pub bytes: u64,
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

/// What the encryption key of backups is derived for.
const KEY_PURPOSE: &str = "medicalpro backup encryption v1";
/// The first bytes of every backup file.
const MAGIC: &[u8; 8] = b"MPBACKUP";
/// The file format version, after the magic.
const VERSION: u8 = 1;
/// The STREAM nonce prefix: XChaCha20's 24 bytes less the 5 of the counter
/// and last-chunk flag.
const PREFIX_LEN: usize = 19;
const HEADER_LEN: usize = MAGIC.len() + 1 + PREFIX_LEN;
/// Plain bytes per sealed chunk; every chunk but the last is full.
const CHUNK: usize = 64 * 1024;
/// The Poly1305 tag closing each sealed chunk.
const TAG_LEN: usize = 16;

/// What a backup does when its file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenExists {
    /// Fail, leaving the file as it is (the default of the command line).
    Refuse,
    /// Replace it (`--force`), once the new backup is complete.
    Replace,
}

/// An existing backup file that was not replaced.
#[derive(Debug, thiserror::Error)]
#[error("{} already exists: it is not overwritten (use --force to replace it)", .0.display())]
pub struct FileExists(pub PathBuf);

/// Backs up one clinic to `out`.
pub async fn backup_clinic(
    fleet: &Fleet,
    id: ClinicId,
    out: &Path,
    when_exists: WhenExists,
) -> anyhow::Result<Backup> {
    let clinic = fleet.clinic(id).await?;
    dump(fleet, &clinic, out, when_exists).await
}

/// Backs up every provisioned clinic into `dir` as
/// `<clinic id>-<UTC time>.dump`, `jobs` at once; a failure (an existing
/// file, with [`WhenExists::Refuse`]) does not stop the others.
pub async fn backup_all(
    fleet: &Fleet,
    dir: &Path,
    jobs: usize,
    when_exists: WhenExists,
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
                match dump(&fleet, &clinic, &out, when_exists).await {
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

async fn dump(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    out: &Path,
    when_exists: WhenExists,
) -> anyhow::Result<Backup> {
    let started = Instant::now();
    if when_exists == WhenExists::Refuse && out.symlink_metadata().is_ok() {
        return Err(FileExists(out.to_owned()).into());
    }
    // A shared clinic's schema, copied into a database of its own layout.
    let copy = match clinic.is_shared() {
        true => Some(copy::into_database(fleet, clinic).await?),
        false => None,
    };
    let database = Database {
        host: &clinic.db_host,
        port: clinic.db_port,
        name: copy.as_deref().unwrap_or(&clinic.db_name),
    };
    let dumped = dump_database(fleet, &database, out, when_exists).await;
    if let Some(copy) = &copy {
        copy::drop_database(fleet, clinic, copy).await;
    }
    let bytes = dumped.with_context(|| format!("backing up clinic {}", clinic.id))?;
    tracing::info!(clinic.id = %clinic.id, bytes, duration_ms = started.elapsed().as_millis() as u64, "clinic backed up");
    Ok(Backup {
        clinic_id: clinic.id,
        file: out.to_owned(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A database to dump, and its server.
pub struct Database<'a> {
    pub host: &'a str,
    pub port: i32,
    pub name: &'a str,
}

/// Dumps `database` as the admin role, encrypted, into `out` (written as
/// `out.partial`, mode 0600, put in place once whole, an existing `out`
/// replaced only with [`WhenExists::Replace`]); returns its size.
pub async fn dump_database(
    fleet: &Fleet,
    database: &Database<'_>,
    out: &Path,
    when_exists: WhenExists,
) -> anyhow::Result<u64> {
    if when_exists == WhenExists::Refuse && out.symlink_metadata().is_ok() {
        return Err(FileExists(out.to_owned()).into());
    }
    let mut conn = connect(&ddl::admin_session(
        fleet
            .databases
            .admin_on_server(database.host, database.port)
            .database(database.name),
    ))
    .await
    .with_context(|| format!("connecting to the database {}", database.name))?;
    let tools = PgTools::for_server(&mut conn).await?;
    drop(conn);
    let target = Target::admin_on(
        &fleet.settings.admin_url,
        database.host,
        u16::try_from(database.port).unwrap_or(5432),
        database.name,
    )?;
    let partial = with_suffix(out, ".partial");
    let (key, path) = (fleet.settings.keys.current(), partial.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut file = create_private(&path)?;
        let bytes = tools.dump_into(&target, &["--format=custom", "--no-password"], |dump| {
            encrypt(dump, &mut file, &key)
        })?;
        file.sync_all()?;
        anyhow::Ok(bytes)
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|bytes| {
        let bytes = bytes?;
        put_in_place(&partial, out, when_exists)?;
        Ok(bytes)
    });
    result.inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })
}

/// Encrypts `plain` into `out` under `key`, chunk by chunk; returns the
/// number of bytes written.
fn encrypt(plain: &mut dyn Read, out: &mut impl Write, key: &MasterKey) -> anyhow::Result<u64> {
    let mut header = [0u8; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()] = VERSION;
    rand::rngs::OsRng.fill_bytes(&mut header[MAGIC.len() + 1..]);
    out.write_all(&header)?;
    let mut stream = EncryptorBE32::from_aead(cipher(key), prefix(&header).into());
    let mut buffer = vec![0u8; CHUNK];
    let mut written = HEADER_LEN as u64;
    let failed = |_| anyhow::anyhow!("encrypting the backup failed");
    loop {
        let read = read_full(plain, &mut buffer)?;
        let payload = Payload {
            msg: &buffer[..read],
            aad: &header,
        };
        if read < CHUNK {
            let sealed = stream.encrypt_last(payload).map_err(failed)?;
            out.write_all(&sealed)?;
            return Ok(written + sealed.len() as u64);
        }
        let sealed = stream.encrypt_next(payload).map_err(failed)?;
        out.write_all(&sealed)?;
        written += sealed.len() as u64;
    }
}

/// Decrypts the backup `file` into `copy` (mode 0600) in one pass, with
/// the current master key or else the previous one: what is restored
/// afterwards is the copy, exactly the bytes that were authenticated. On
/// refusal, the copy is removed.
pub fn decrypted_copy(file: &Path, keyring: &Keyring, copy: &Path) -> anyhow::Result<()> {
    let decrypted = (|| {
        let mut input =
            fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let mut out = create_private(copy)?;
        decrypt(file, &mut input, keyring, &mut out)?;
        out.sync_all()?;
        anyhow::Ok(())
    })();
    if decrypted.is_err() {
        let _ = fs::remove_file(copy);
    }
    decrypted
}

/// The SHA-256 of a backup file's bytes, in hexadecimal: its identity in
/// the record of a restore.
pub fn fingerprint(file: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut input = fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut input, &mut hasher)
        .with_context(|| format!("reading {}", file.display()))?;
    Ok(crate::crypto::hex(&hasher.finalize()))
}

/// Decrypts `input` (the backup `file`, named in errors) into `out`.
fn decrypt(
    file: &Path,
    input: &mut impl Read,
    keyring: &Keyring,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut header = [0u8; HEADER_LEN];
    let read = read_full(input, &mut header)?;
    if read < HEADER_LEN || header[..MAGIC.len()] != MAGIC[..] {
        anyhow::bail!(
            "{} is not an encrypted MedicalPro backup (made by an older release? \
             restore it with that release)",
            file.display()
        );
    }
    if header[MAGIC.len()] != VERSION {
        anyhow::bail!(
            "{} is a backup of format version {}, which this release does not know: \
             use a newer medicalpro",
            file.display(),
            header[MAGIC.len()]
        );
    }
    let refused = || {
        anyhow::anyhow!(
            "{} could not be decrypted: it was changed, truncated or damaged, \
             or made with another MASTER_KEY",
            file.display()
        )
    };
    let mut buffer = vec![0u8; CHUNK + TAG_LEN];
    let mut read = read_full(input, &mut buffer)?;
    // The first chunk tells which key the file is under.
    let mut stream = None;
    for key in std::iter::once(&keyring.current).chain(keyring.previous.as_ref()) {
        let mut candidate = DecryptorBE32::from_aead(cipher(key), prefix(&header).into());
        let payload = Payload {
            msg: &buffer[..read],
            aad: &header,
        };
        if read < buffer.len() {
            if let Ok(plain) = candidate.decrypt_last(payload) {
                out.write_all(&plain)?;
                return Ok(());
            }
        } else if let Ok(plain) = candidate.decrypt_next(payload) {
            out.write_all(&plain)?;
            stream = Some(candidate);
            break;
        }
    }
    let mut stream = stream.ok_or_else(refused)?;
    loop {
        read = read_full(input, &mut buffer)?;
        let payload = Payload {
            msg: &buffer[..read],
            aad: &header,
        };
        if read < buffer.len() {
            out.write_all(&stream.decrypt_last(payload).map_err(|_| refused())?)?;
            return Ok(());
        }
        out.write_all(&stream.decrypt_next(payload).map_err(|_| refused())?)?;
    }
}

/// The backup cipher under `key`.
fn cipher(key: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.derive(KEY_PURPOSE).into())
}

/// The STREAM nonce prefix of a header.
fn prefix(header: &[u8; HEADER_LEN]) -> &[u8] {
    &header[MAGIC.len() + 1..]
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full(input: &mut (impl Read + ?Sized), buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Moves the complete `partial` file to `out`: atomically replacing what
/// is there, or (with [`WhenExists::Refuse`]) only if nothing is, even a
/// file that appeared while the dump ran.
fn put_in_place(partial: &Path, out: &Path, when_exists: WhenExists) -> anyhow::Result<()> {
    let writing = || format!("writing {}", out.display());
    match when_exists {
        WhenExists::Replace => fs::rename(partial, out).with_context(writing),
        WhenExists::Refuse => match fs::hard_link(partial, out) {
            Ok(()) => fs::remove_file(partial).with_context(writing),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(FileExists(out.to_owned()).into())
            }
            Err(e) => Err(anyhow::Error::new(e).context(writing())),
        },
    }
}

/// An empty file only its owner can read and write (for `pg_dump`, or a
/// copy): mode 0600 whatever the umask, or a leftover file of that name.
fn create_private(path: &Path) -> anyhow::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("securing {}", path.display()))?;
    Ok(file)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(plain: &[u8], key: &MasterKey) -> Vec<u8> {
        let mut out = Vec::new();
        let written = encrypt(&mut &plain[..], &mut out, key).unwrap();
        assert_eq!(written, out.len() as u64);
        out
    }

    fn opened(file: &[u8], keyring: &Keyring) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        decrypt(Path::new("f"), &mut &file[..], keyring, &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_backup_opens_only_unchanged_and_under_its_keys() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let keyring = Keyring::new(new.clone(), None);
        // Three full chunks and a part, exactly two chunks, and nothing.
        let plain: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
        for plain in [&plain[..], &plain[..2 * CHUNK], &[]] {
            let file = sealed(plain, &new);
            assert_eq!(opened(&file, &keyring).unwrap(), plain);
        }
        let file = sealed(&plain, &new);
        assert_eq!(&file[..9], b"MPBACKUP\x01");
        assert_ne!(file, sealed(&plain, &new), "a fresh nonce each time");
        let chunk = CHUNK + TAG_LEN;
        let refused = |file: &[u8], keyring: &Keyring| {
            let error = opened(file, keyring).unwrap_err().to_string();
            assert!(error.contains("could not be decrypted"), "{error}");
        };
        let mut flipped = file.clone();
        flipped[HEADER_LEN + chunk + 7] ^= 1;
        refused(&flipped, &keyring);
        // Cut after a chunk, or inside one; a chunk dropped or swapped.
        refused(&file[..HEADER_LEN + 2 * chunk], &keyring);
        refused(&file[..file.len() - 1], &keyring);
        let mut dropped = file[..HEADER_LEN + chunk].to_vec();
        dropped.extend_from_slice(&file[HEADER_LEN + 2 * chunk..]);
        refused(&dropped, &keyring);
        let mut swapped = file[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&file[HEADER_LEN + chunk..HEADER_LEN + 2 * chunk]);
        swapped.extend_from_slice(&file[HEADER_LEN..HEADER_LEN + chunk]);
        swapped.extend_from_slice(&file[HEADER_LEN + 2 * chunk..]);
        refused(&swapped, &keyring);
        let mut extended = file.clone();
        extended.extend_from_slice(&[0; TAG_LEN]);
        refused(&extended, &keyring);
        // Under another key: refused until it is the previous one.
        let older = sealed(&plain[..100], &old);
        refused(&older, &keyring);
        let rotating = Keyring::new(new, Some(old));
        assert_eq!(opened(&older, &rotating).unwrap(), &plain[..100]);
        assert_eq!(opened(&file, &rotating).unwrap(), plain);
        // A plain dump, as an older release wrote it.
        let error = opened(b"PGDMP\x01\x0e\x00 a plain custom-format dump", &rotating)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not an encrypted MedicalPro backup"),
            "{error}"
        );
    }

    #[test]
    fn a_refused_copy_is_removed() {
        let dir = std::env::temp_dir().join(format!("medicalpro-crypt-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let (file, copy) = (dir.join("clinic.dump"), dir.join("copy"));
        let key = MasterKey::generate();
        fs::write(&file, sealed(b"PGDMP fake dump", &key)).unwrap();
        decrypted_copy(&file, &Keyring::new(key, None), &copy).unwrap();
        assert_eq!(fs::read(&copy).unwrap(), b"PGDMP fake dump");
        let other = Keyring::new(MasterKey::generate(), None);
        assert!(decrypted_copy(&file, &other, &copy).is_err());
        assert!(!copy.exists(), "a refused copy is removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
