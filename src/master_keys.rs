//! Where a process's master keys come from. Settings give them
//! (`MASTER_KEY`, `MASTER_KEY_PREVIOUS`), or the embedded mode keeps them in
//! `DATA_DIR/master_key` and `DATA_DIR/master_key.previous`, which
//! `medicalpro keys rotate` replaces while servers run. A process reading
//! them from files re-reads the files before giving up on a sealed value
//! and before sealing a new one, so a rotation never leaves a running
//! server with keys that cannot open what the others sealed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context;

use crate::crypto::{Keyring, MasterKey, SealError};

/// The master keys of a process: fixed, or read from [`KeyFiles`].
pub struct MasterKeys {
    keyring: RwLock<Keyring>,
    files: Option<KeyFiles>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl MasterKeys {
    /// Keys given by the settings, never re-read.
    pub fn fixed(keyring: Keyring) -> Self {
        Self {
            keyring: RwLock::new(keyring),
            files: None,
        }
    }

    /// Keys read from `files` now, and again when they fail.
    pub fn from_files(files: KeyFiles) -> anyhow::Result<Self> {
        Ok(Self {
            keyring: RwLock::new(files.read()?),
            files: Some(files),
        })
    }

    /// The key files, in embedded mode.
    pub fn files(&self) -> Option<&KeyFiles> {
        self.files.as_ref()
    }

    /// The keys held right now.
    pub fn keyring(&self) -> Keyring {
        self.keyring.read().expect("master keys lock").clone()
    }

    /// The key new secrets are sealed (and backups encrypted) with, re-read
    /// from the files first.
    pub fn current(&self) -> MasterKey {
        self.reload();
        self.keyring().current
    }

    /// Seals with the current key (see [`MasterKeys::current`]).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        self.current().seal(plaintext, context)
    }

    /// Opens with the keys held; failing that, with the key files re-read.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        match self.keyring().open(sealed, context) {
            Err(SealError) if self.reload() => self.keyring().open(sealed, context),
            opened => opened,
        }
    }

    /// Re-reads the key files; `true` when the keys changed.
    fn reload(&self) -> bool {
        let Some(files) = &self.files else {
            return false;
        };
        match files.read() {
            Ok(read) => {
                let mut held = self.keyring.write().expect("master keys lock");
                let changed = !read.same_keys(&held);
                *held = read;
                changed
            }
            Err(error) => {
                tracing::error!(%error, "the master key files cannot be read");
                false
            }
        }
    }
}

/// The embedded mode's key files in `DATA_DIR`: `master_key` (current),
/// `master_key.previous` (the key the last rotation replaced) and
/// `master_key.retired-<unix seconds>` (older ones, kept for the backups
/// made under them). Each is written aside and renamed into place (mode
/// 0600), so a reader sees a whole key or the one before.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join("master_key")
    }

    pub fn previous_path(&self) -> PathBuf {
        self.dir.join("master_key.previous")
    }

    /// The current key (required) and the previous one (if any).
    pub fn read(&self) -> anyhow::Result<Keyring> {
        let read = |path: &Path| -> anyhow::Result<MasterKey> {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            MasterKey::parse_setting(&text, "the master key file")
                .with_context(|| format!("reading {}", path.display()))
        };
        let previous_path = self.previous_path();
        let previous = previous_path.exists().then(|| read(&previous_path));
        Ok(Keyring::new(
            read(&self.current_path())?,
            previous.transpose()?,
        ))
    }

    /// Makes `new` the current key, the current one the previous, and the
    /// previous one retired. Files are replaced in that order from the
    /// oldest, so at every moment the current and previous files open
    /// everything sealed under the keys they replace.
    pub fn install(&self, new: &MasterKey) -> anyhow::Result<()> {
        let held = self.read()?;
        if let Some(previous) = &held.previous {
            let retired = self.dir.join(format!(
                "master_key.retired-{}",
                chrono::Utc::now().timestamp()
            ));
            write_key(&retired, previous)?;
        }
        write_key(&self.previous_path(), &held.current)?;
        write_key(&self.current_path(), new)
    }
}

/// Writes `key` beside `path`, then renames it into place (mode 0600).
fn write_key(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".writing");
    let aside = PathBuf::from(aside);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("writing {}", aside.display()))?;
    file.write_all(key.to_base64().as_bytes())?;
    file.sync_all()?;
    fs::rename(&aside, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("medicalpro-keys-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_server_on_old_files_opens_and_seals_with_the_installed_key() {
        let dir = temp_dir();
        let files = KeyFiles::in_dir(&dir);
        let first = MasterKey::generate();
        write_key(&files.current_path(), &first).unwrap();
        let server = MasterKeys::from_files(files.clone()).unwrap();
        let before = server.seal(b"secret", b"clinic");

        let second = MasterKey::generate();
        files.install(&second).unwrap();
        let after = second.seal(b"other", b"clinic");
        assert_eq!(server.open(&after, b"clinic").unwrap(), b"other");
        assert_eq!(server.open(&before, b"clinic").unwrap(), b"secret");
        let sealed_now = server.seal(b"new", b"clinic");
        assert_eq!(second.open(&sealed_now, b"clinic").unwrap(), b"new");

        // A third key retires the first: once the server has read the files
        // again, the first is no longer among its keys, but it is kept on
        // disk, not lost.
        let third = MasterKey::generate();
        files.install(&third).unwrap();
        assert_eq!(server.current(), third);
        assert!(server.open(&before, b"clinic").is_err());
        let retired: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("master_key.retired-")
            })
            .collect();
        assert_eq!(retired.len(), 1);
        let kept = fs::read_to_string(retired[0].path()).unwrap();
        assert_eq!(kept, first.to_base64());
        fs::remove_dir_all(dir).unwrap();
    }
}
