//! `GET /audit`: the clinic's audit trail, for its admins.

use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{page, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Audit, Clinic};
use crate::clinic::audit::{self, Event, Filter};
use crate::tenancy::pools::writes_frozen;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub patient_id: Option<Uuid>,
    /// The acting staff account.
    pub user_id: Option<Uuid>,
    /// `read|list|create|update|delete|export|erase`
    pub action: Option<String>,
    /// Events at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
}

/// The clinic's audit trail, newest first (events still pending are sealed
/// first, so that the list is complete).
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery), responses((status = 200, body = [Event]), (status = 403, description = "forbidden")))]
async fn list_audit_events(
    clinic: Clinic<Audit>,
    Query(query): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = ListQuery {
        limit: query.limit,
        offset: query.offset,
        search: None,
    }
    .page()?;
    let filter = Filter {
        patient_id: query.patient_id,
        user_id: query.user_id,
        action: query.action,
        from: query.from,
        to: query.to,
    };
    let mut tx = clinic.begin().await?;
    seal_unless_closed(&mut tx).await?;
    let (events, total) = audit::list(&mut tx, &filter, page_request).await?;
    tx.commit().await?;
    Ok(page(events, page_request.with_total(total)))
}

/// Chains the pending events before they are listed, in a savepoint: a
/// chain closed meanwhile (a clinic being moved: its owner's `INSERT` on
/// the chain revoked between the sealer's check and its insert) refuses
/// the seal, and the trail is listed as it stands rather than the read
/// answering 503.
async fn seal_unless_closed(tx: &mut sqlx::PgConnection) -> Result<(), ApiError> {
    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
    match audit::seal(&mut savepoint).await {
        Ok(_) => savepoint.commit().await?,
        Err(error) if writes_frozen(&error) => savepoint.rollback().await?,
        Err(error) => return Err(error.into()),
    }
    Ok(())
}
