//! Secrets and the few cryptographic operations MedicalPro needs: the master
//! key that seals clinic database passwords (XChaCha20-Poly1305, a fresh
//! random nonce each time, the clinic id as associated data so a sealed
//! password cannot be moved to another clinic), random tokens and hashes.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

const NONCE_LEN: usize = 24;

/// The key that encrypts clinic database passwords at rest.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Sealing or opening a secret failed (wrong key, or altered ciphertext).
#[derive(Debug, thiserror::Error)]
#[error("the sealed secret could not be opened with this master key")]
pub struct SealError;

impl MasterKey {
    pub fn parse(base64: &str) -> Result<Self, ConfigError> {
        Self::parse_setting(base64, "MASTER_KEY")
    }

    /// Parses a key given by the setting named `setting` (for its errors).
    pub fn parse_setting(base64: &str, setting: &'static str) -> Result<Self, ConfigError> {
        let bytes = STANDARD
            .decode(base64.trim())
            .map_err(|_| ConfigError::new(setting, "must be base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ConfigError::new(setting, "must decode to exactly 32 bytes"))?;
        Ok(Self(key))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Encrypts `plaintext`, bound to `context` (the clinic id). Output is
    /// nonce followed by ciphertext and tag.
    /// A 32-byte key for one `purpose`, derived from this one
    /// (HMAC-SHA-256 keyed by the master key), so that the master key itself
    /// serves one use only.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// The master keys a process knows: `current` seals, and opening tries
/// `current` then `previous`. During a key rotation servers run with the new
/// key as current and the old one as previous, so passwords sealed with
/// either open while `medicalpro keys rotate` re-seals them.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub current: MasterKey,
    pub previous: Option<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        Self { current, previous }
    }

    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        self.current.seal(plaintext, context)
    }

    pub fn same_keys(&self, other: &Keyring) -> bool {
        self.current == other.current && self.previous == other.previous
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        self.current
            .open(sealed, context)
            .or_else(|error| match &self.previous {
                Some(previous) => previous.open(sealed, context),
                None => Err(error),
            })
    }
}

/// The HMAC key of access tokens.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

impl JwtSecret {
    pub const MIN_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        if raw.len() < Self::MIN_LEN {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        Ok(Self(raw.as_bytes().to_vec()))
    }

    pub fn generate() -> String {
        random_token(48)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A shared secret a client presents as `Authorization: Bearer <token>`.
/// Only its SHA-256 is kept; [`BearerToken::matches`] compares digests in
/// constant time, so neither the content nor the length leaks by timing.
#[derive(Clone)]
pub struct BearerToken([u8; 32]);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    pub const MIN_LEN: usize = 16;

    pub fn parse(raw: &str, setting: &'static str) -> Result<Self, ConfigError> {
        if raw.len() < Self::MIN_LEN {
            return Err(ConfigError::new(
                setting,
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        Ok(Self(Sha256::digest(raw.as_bytes()).into()))
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let difference = self
            .0
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// `len` random bytes as URL-safe base64 without padding: safe in SQL string
/// literals, URLs and headers.
pub fn random_token(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Bytes as lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hexadecimal (either case) as bytes; `None` when it is not hexadecimal.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_token_matches_only_itself() {
        let token = super::BearerToken::parse("a metrics token, long enough", "T").unwrap();
        assert!(token.matches("a metrics token, long enough"));
        assert!(!token.matches("a metrics token, long enougH"));
        assert!(!token.matches(""));
        assert!(super::BearerToken::parse("too short", "T").is_err());
    }

    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0x00, 0x7f, 0xab, 0xff];
        assert_eq!(hex(&bytes), "007fabff");
        assert_eq!(unhex("007FabfF"), Some(bytes.to_vec()));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }

    #[test]
    fn sealed_secret_opens_only_with_its_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"s3cret", b"clinic-a");
        assert_eq!(key.open(&sealed, b"clinic-a").unwrap(), b"s3cret");
        assert!(key.open(&sealed, b"clinic-b").is_err());
        assert!(MasterKey::generate().open(&sealed, b"clinic-a").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&tampered, b"clinic-a").is_err());
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = MasterKey::generate();
        assert_ne!(key.seal(b"x", b"c"), key.seal(b"x", b"c"));
    }

    #[test]
    fn keyring_opens_with_either_key_and_seals_with_the_current_one() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let sealed_old = old.seal(b"pw", b"c");
        let keyring = Keyring::new(new.clone(), Some(old.clone()));
        assert_eq!(keyring.open(&sealed_old, b"c").unwrap(), b"pw");
        let sealed_new = keyring.seal(b"pw", b"c");
        assert_eq!(new.open(&sealed_new, b"c").unwrap(), b"pw");
        assert!(old.open(&sealed_new, b"c").is_err());
        assert!(Keyring::new(new, None).open(&sealed_old, b"c").is_err());
        assert!(keyring.open(&sealed_old, b"other").is_err());
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::parse(&MasterKey::generate().to_base64()).is_ok());
        assert!(MasterKey::parse("not base64!").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([0u8; 16])).is_err());
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        assert!(JwtSecret::parse("short").is_err());
        assert!(JwtSecret::parse(&JwtSecret::generate()).is_ok());
    }
}
