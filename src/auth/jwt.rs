//! Access tokens: JWT, HS256 only, 15 minutes, the SPEC's claims plus `iss`
//! ([`ISSUER`]) and `aud` ([`AUDIENCE`]), both required on verify: a token
//! signed with the same key for another purpose is not an access token.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::roles::Role;
use crate::crypto::JwtSecret;

pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
/// The `iss` claim of every access token.
pub const ISSUER: &str = "medicalpro";
/// The `aud` claim of every access token: this server's API.
pub const AUDIENCE: &str = "medicalpro-api";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub user_id: Uuid,
    /// `None` only for platform super admins.
    pub clinic_id: Option<Uuid>,
    pub email: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies access tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidToken;

impl TokenKeys {
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    pub fn issue(&self, user_id: Uuid, clinic_id: Option<Uuid>, email: &str, role: Role) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            user_id,
            clinic_id,
            email: email.to_owned(),
            role,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + ACCESS_TOKEN_SECONDS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// Checks signature, algorithm, expiry and claim consistency.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| InvalidToken)?
            .claims;
        let consistent = claims.sub == claims.user_id.to_string()
            && (claims.role == Role::SuperAdmin) == claims.clinic_id.is_none();
        if consistent {
            Ok(claims)
        } else {
            Err(InvalidToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&JwtSecret::parse(&JwtSecret::generate()).unwrap())
    }

    #[test]
    fn issued_token_verifies_with_same_key_only() {
        let keys = keys();
        let token = keys.issue(Uuid::new_v4(), Some(Uuid::new_v4()), "a@b.fr", Role::Doctor);
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.role, Role::Doctor);
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_SECONDS);
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            (ISSUER, AUDIENCE)
        );
        assert!(self::keys().verify(&token).is_err());
    }

    #[test]
    fn unsigned_token_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys = keys();
        let token = keys.issue(Uuid::new_v4(), Some(Uuid::new_v4()), "a@b.fr", Role::Admin);
        let payload = token.split('.').nth(1).unwrap();
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{payload}.")).is_err());
    }
}
