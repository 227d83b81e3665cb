//! Login, refresh and logout against the central database. Unknown emails
//! and wrong passwords take the same path (a decoy hash is verified) and get
//! the same answer. Attempts are counted centrally for throttling before the
//! password is checked (see `central::login_failures`).

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::jwt::{TokenKeys, ACCESS_TOKEN_SECONDS};
use super::password::{HashError, Hasher};
use crate::central::companies::ClinicState;
use crate::central::login_failures::{self, Admission, LoginLimits};
use crate::central::refresh_tokens::{self, Rotation};
use crate::central::users::{self, UserRecord};
use crate::central::{audit, Databases};
use crate::tenancy::naming::ClinicId;
use crate::tenancy::state::StateCache;

/// A fresh pair of tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: String,
    /// Absent for a browser in cookie mode (`X-MedicalPro-Client: web`),
    /// which gets it in an `HttpOnly` cookie instead.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[schema(required = false)]
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("too many failed attempts")]
    Throttled { retry_after: std::time::Duration },
    /// No password-hashing slot freed in time.
    #[error("server busy")]
    Busy,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid or revoked token")]
    InvalidToken,
    #[error("clinic inactive")]
    ClinicInactive,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Sessions<'a> {
    pub databases: &'a Databases,
    pub keys: &'a TokenKeys,
    pub states: &'a StateCache,
    /// A family older than this no longer refreshes (`REFRESH_FAMILY_MAX_DAYS`).
    pub refresh_family_max_days: i32,
    pub hasher: &'a Hasher,
    /// How many attempts are checked, in what window.
    pub login_limits: &'a LoginLimits,
}

impl Sessions<'_> {
    /// Issues an access token and a new refresh-token family for `user`.
    pub async fn open(&self, user: &UserRecord) -> Result<Tokens, sqlx::Error> {
        let refresh_token = refresh_tokens::issue(&self.databases.central, user.id).await?;
        Ok(self.tokens(user, refresh_token))
    }

    fn tokens(&self, user: &UserRecord, refresh_token: String) -> Tokens {
        Tokens {
            access_token: self
                .keys
                .issue(user.id, user.company_id, &user.email, user.role),
            refresh_token,
            expires_in: ACCESS_TOKEN_SECONDS,
        }
    }

    pub async fn login(
        &self,
        email: &str,
        password: String,
        client_addr: &str,
    ) -> Result<(UserRecord, Tokens), SessionError> {
        let central = &self.databases.central;
        let attempt =
            match login_failures::admit(central, email, client_addr, self.login_limits).await? {
                Admission::Counted(id) => id,
                Admission::Refused { retry_after } => {
                    self.record("login.throttled", None, None, client_addr)
                        .await;
                    return Err(SessionError::Throttled { retry_after });
                }
            };
        let user = users::find_by_email(central, email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let matches = match self.hasher.verify(password, stored).await {
            Ok(matches) => matches,
            Err(HashError::Busy) => {
                login_failures::withdraw(central, attempt).await?;
                return Err(SessionError::Busy);
            }
            Err(error @ HashError::Failed(_)) => {
                tracing::error!(%error, "password check failed");
                false
            }
        };
        let user = match user {
            Some(user) if matches && user.is_active => user,
            other => {
                let (actor, company) = other.map(|u| (u.id, u.company_id)).unzip();
                self.record("login.failed", actor, company.flatten(), client_addr)
                    .await;
                return Err(SessionError::InvalidCredentials);
            }
        };
        // The password was right: its attempts are forgiven even when the
        // clinic turns out to be inactive.
        login_failures::clear(central, email).await?;
        self.ensure_clinic_active(&user).await?;
        users::record_login(central, user.id).await?;
        self.record(
            "login.succeeded",
            Some(user.id),
            user.company_id,
            client_addr,
        )
        .await;
        let tokens = self.open(&user).await?;
        Ok((user, tokens))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, SessionError> {
        let central = &self.databases.central;
        match refresh_tokens::rotate(central, refresh_token, self.refresh_family_max_days).await? {
            Rotation::Rotated { user_id, token } => {
                let user = users::find(central, user_id)
                    .await?
                    .filter(|u| u.is_active)
                    .ok_or(SessionError::InvalidToken)?;
                self.ensure_clinic_active(&user).await?;
                Ok(self.tokens(&user, token))
            }
            Rotation::Reused => {
                self.record("refresh.reuse_detected", None, None, "").await;
                Err(SessionError::InvalidToken)
            }
            Rotation::Invalid => Err(SessionError::InvalidToken),
        }
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), sqlx::Error> {
        refresh_tokens::revoke(&self.databases.central, refresh_token).await
    }

    async fn ensure_clinic_active(&self, user: &UserRecord) -> Result<(), SessionError> {
        if let Some(company) = user.company_id {
            let state = self
                .states
                .state(&self.databases.central, ClinicId(company))
                .await?;
            if state != ClinicState::Active {
                return Err(SessionError::ClinicInactive);
            }
        }
        Ok(())
    }

    /// Platform audit; a failure to write it is logged, not fatal.
    async fn record(
        &self,
        action: &str,
        actor: Option<uuid::Uuid>,
        company: Option<uuid::Uuid>,
        client_addr: &str,
    ) {
        let event = audit::PlatformEvent {
            action,
            actor_user_id: actor,
            company_id: company,
            client_addr: Some(client_addr).filter(|a| !a.is_empty()),
            details: json!({}),
        };
        if let Err(error) = audit::record(&self.databases.central, event).await {
            tracing::warn!(%error, action, "platform audit write failed");
        }
    }
}
