//! `/clinic`: the caller's clinic as the platform knows it (central) with
//! its settings (its own database); `/clinic/settings` changes the
//! settings (admins; `PUT` means the same). Every role of the clinic
//! may read.

use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ok, Json};
use super::state::AppState;
use super::tenant::{Clinic, ClinicSettings};
use crate::central::companies::{self, Company};
use crate::clinic::settings::{self, Preferences, PreferencesInput};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_clinic))
        .routes(routes!(update_settings))
}

/// The caller's clinic and its preferences.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClinicView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `active|suspended`
    pub status: &'static str,
    /// `trial|active|past_due|cancelled`
    pub subscription_status: String,
    pub settings: Preferences,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClinicView {
    fn new(company: Company, settings: Preferences) -> Self {
        ClinicView {
            id: company.id,
            name: company.name,
            email: company.email,
            phone: company.phone,
            country: company.country,
            status: if company.is_active {
                "active"
            } else {
                "suspended"
            },
            subscription_status: company.subscription_status,
            settings,
            created_at: company.created_at,
            updated_at: company.updated_at,
        }
    }
}

/// The caller's clinic: its central record and its settings (timezone, currency, locale,
/// postal address, SIRET, VAT number).
#[utoipa::path(get, path = "/clinic", tag = "clinic", security(("bearer" = [])),
    responses((status = 200, body = ClinicView)))]
async fn get_clinic(
    clinic: Clinic<ClinicSettings>,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let preferences = settings::preferences(&mut tx).await?;
    tx.commit().await?;
    Ok(ok(view(&clinic, &state, preferences).await?))
}

/// Changes the given settings: `timezone` (IANA, checked by the
/// database), `currency` (ISO 4217), `locale` (`fr-FR`, `en`), and what
/// invoices print of the clinic: `address` (replaced as a whole), `siret`
/// (14 digits, Luhn-checked), `vatNumber` (`FR` numbers checked against
/// their SIREN); these three are cleared by `null`.
#[utoipa::path(method(put, patch), path = "/clinic/settings", tag = "clinic", security(("bearer" = [])),
    request_body = PreferencesInput, responses((status = 200, body = ClinicView),
        (status = 403, description = "forbidden"), (status = 422, description = "validation_failed")))]
async fn update_settings(
    clinic: Clinic<ClinicSettings>,
    State(state): State<AppState>,
    Json(input): Json<PreferencesInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let timezone = match input.timezone() {
        Some(name) => settings::canonical_timezone(&mut tx, name).await?,
        None => None,
    };
    let current = settings::preferences(&mut tx).await?;
    let wanted = input.apply(current.clone(), timezone)?;
    let preferences = if wanted == current {
        current
    } else {
        settings::update_preferences(&mut tx, &wanted).await?
    };
    tx.commit().await?;
    Ok(ok(view(&clinic, &state, preferences).await?))
}

async fn view(
    clinic: &Clinic<ClinicSettings>,
    state: &AppState,
    preferences: Preferences,
) -> Result<ClinicView, ApiError> {
    let company = companies::find(&state.databases.central, clinic.id)
        .await?
        .ok_or(ApiError::ClinicInactive)?;
    Ok(ClinicView::new(company, preferences))
}
