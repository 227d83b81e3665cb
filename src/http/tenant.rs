//! Routing a request to its clinic. [`Clinic`] is the only way a handler
//! reaches clinic data: it verifies the bearer token, refuses platform
//! accounts, checks the role against the SPEC's table for the route's
//! resource, checks the clinic is active, and hands over that clinic's pool.
//! No handler can name a clinic of its own choosing.
//!
//! It also makes the audit trail hold by construction: a handler of an
//! audited resource (patients, appointments, consents and their templates,
//! documents, medical records) changes data only in an
//! [`AuditedTransaction`], whose one way to commit writes the event in the
//! same transaction, and reads in a transaction PostgreSQL keeps read-only;
//! it has no plain transaction to commit.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;

use sqlx::PgConnection;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::client_addr;
use super::state::AppState;
use crate::auth::jwt::Claims;
pub use crate::auth::roles::markers::*;
pub use crate::auth::roles::{AuditedResource, ClinicResource, UnauditedResource};
use crate::auth::roles::{Operation, Role};
use crate::central::companies::ClinicState;
use crate::clinic::audit::{self, Actor, Entry};
use crate::tenancy::audit_sealer::AuditSealer;
use crate::tenancy::naming::ClinicId;
use crate::tenancy::pools::{ClinicPool, ClinicTransaction, Statement};
use crate::tenancy::read_trail::{NotRecorded, ReadTrail};

/// The caller, from a verified access token whose account is still live,
/// active, and of the role and clinic the token names
/// ([`crate::auth::accounts`]).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    pub email: String,
    pub clinic_id: Option<ClinicId>,
}

impl From<Claims> for Caller {
    fn from(claims: Claims) -> Self {
        Caller {
            user_id: claims.user_id,
            role: claims.role,
            email: claims.email,
            clinic_id: claims.clinic_id.map(ClinicId),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let claims = state
            .keys
            .verify(token.trim())
            .map_err(|_| ApiError::Unauthorized)?;
        if !state
            .accounts
            .admits(&state.databases.central, &claims)
            .await?
        {
            return Err(ApiError::Unauthorized);
        }
        Ok(claims.into())
    }
}

/// A request authorised for resource `R` of the caller's clinic.
pub struct Clinic<R> {
    pub caller: Caller,
    pub id: ClinicId,
    /// The caller as the audit trail names them.
    pub actor: Actor,
    pool: ClinicPool,
    sealer: Arc<AuditSealer>,
    read_trail: Arc<ReadTrail>,
    /// Whether this request left an event pending (to be sealed once it ends).
    left_pending: AtomicBool,
    _resource: PhantomData<R>,
}

impl<R: ClinicResource> FromRequestParts<AppState> for Clinic<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let operation = if parts.method == Method::GET || parts.method == Method::HEAD {
            Operation::Read
        } else {
            Operation::Write
        };
        if !caller.role.may(R::RESOURCE, operation) {
            return Err(ApiError::Forbidden);
        }
        let id = caller.clinic_id.ok_or(ApiError::Forbidden)?;
        match state.states.state(&state.databases.central, id).await? {
            ClinicState::Active => {}
            ClinicState::Inactive | ClinicState::Missing => return Err(ApiError::ClinicInactive),
        }
        let pool = state.pools.pool(id).await?;
        let actor = Actor {
            user_id: caller.user_id,
            role: caller.role,
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            client_addr: client_addr(parts, &state.trusted_proxies),
        };
        Ok(Clinic {
            caller,
            id,
            actor,
            pool,
            sealer: state.sealer.clone(),
            read_trail: state.read_trail.clone(),
            left_pending: AtomicBool::new(false),
            _resource: PhantomData,
        })
    }
}

impl<R: UnauditedResource> Clinic<R> {
    /// A transaction on the clinic's database (`&mut tx` is a
    /// `&mut PgConnection`); 503 when no connection can be had in time.
    pub async fn begin(&self) -> Result<ClinicTransaction, ApiError> {
        Ok(self.pool.begin().await?)
    }
}

impl<R: AuditedResource> Clinic<R> {
    /// A change of the clinic's data: it commits only with its event (see
    /// [`AuditedTransaction`]).
    pub async fn begin_write(&self) -> Result<AuditedTransaction<'_, R>, ApiError> {
        Ok(AuditedTransaction {
            tx: self.pool.begin().await?,
            clinic: self,
        })
    }
}

impl<R> Clinic<R> {
    /// A transaction PostgreSQL keeps from writing (a read of several
    /// statements; its event goes through [`Clinic::record_read`]).
    pub async fn begin_read(&self) -> Result<ClinicTransaction, ApiError> {
        Ok(self.pool.begin_read_only().await?)
    }

    /// Records an event inside `conn`'s transaction. An event left pending
    /// is sealed into the chain after the request.
    async fn audit(&self, conn: &mut PgConnection, entry: audit::Entry) -> Result<(), ApiError> {
        if !audit::record(conn, &self.actor, &entry).await? {
            self.left_pending.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A transaction changing an audited resource. The only way to commit it
/// is [`AuditedTransaction::commit`], which writes the change's event in
/// the same transaction: a change is never committed without its event.
/// Dropped, it rolls back.
pub struct AuditedTransaction<'a, R> {
    tx: ClinicTransaction,
    clinic: &'a Clinic<R>,
}

impl<R> AuditedTransaction<'_, R> {
    /// Records one more event in this transaction (a change that is two
    /// events, such as a quote converted into an invoice).
    pub async fn record(&mut self, entry: Entry) -> Result<(), ApiError> {
        self.clinic.audit(&mut self.tx, entry).await
    }

    /// Records `entry`, then commits the change and its events together.
    pub async fn commit(mut self, entry: Entry) -> Result<(), ApiError> {
        self.clinic.audit(&mut self.tx, entry).await?;
        Ok(self.tx.commit().await?)
    }
}

impl<R> std::ops::Deref for AuditedTransaction<'_, R> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl<R> std::ops::DerefMut for AuditedTransaction<'_, R> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl<R> Clinic<R> {
    /// Runs `read`, one statement, as its own transaction (one round trip
    /// where a transaction takes four; it may run again on another
    /// connection), then records `entry` if a row was found.
    pub async fn read_alone<T>(
        &self,
        entry: Entry,
        read: impl for<'c> Fn(&'c mut PgConnection) -> Statement<'c, Option<T>>,
    ) -> Result<Option<T>, ApiError> {
        let row = self.pool.run_alone(read).await??;
        if row.is_some() {
            self.record_read(entry).await?;
        }
        Ok(row)
    }

    /// Records a read or a list in the trail, after the read and before the
    /// answer: written with the clinic's concurrent reads in one commit
    /// ([`ReadTrail`]); returns once that commit succeeded. A change records
    /// its event in its own transaction instead ([`Clinic::audit`]).
    pub async fn record_read(&self, entry: Entry) -> Result<(), ApiError> {
        self.read_trail
            .record(&self.pool, &self.sealer, self.actor.clone(), entry)
            .await
            .map_err(|error| match error {
                NotRecorded::Unavailable => ApiError::ClinicUnavailable,
                NotRecorded::Refused => ApiError::Internal(error.into()),
            })
    }
}

/// The handler is done, its transaction committed or rolled back: the
/// events it left pending can be sealed.
impl<R> Drop for Clinic<R> {
    fn drop(&mut self) {
        if *self.left_pending.get_mut() {
            self.sealer.mark(self.id);
        }
    }
}
