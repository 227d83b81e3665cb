//! `clinic_settings`: the clinic's one row of preferences, initialised at
//! provisioning from its country.

use sqlx::PgConnection;

use crate::tenancy::naming::ClinicId;

/// Timezone, currency and locale for a country (the clinic can change them).
pub fn defaults_for(country: &str) -> (&'static str, &'static str, &'static str) {
    match country {
        "FR" => ("Europe/Paris", "EUR", "fr-FR"),
        "BE" => ("Europe/Brussels", "EUR", "fr-BE"),
        "LU" => ("Europe/Luxembourg", "EUR", "fr-LU"),
        "CH" => ("Europe/Zurich", "CHF", "fr-CH"),
        "MC" => ("Europe/Monaco", "EUR", "fr-MC"),
        "DE" => ("Europe/Berlin", "EUR", "de-DE"),
        "ES" => ("Europe/Madrid", "EUR", "es-ES"),
        "IT" => ("Europe/Rome", "EUR", "it-IT"),
        "GB" => ("Europe/London", "GBP", "en-GB"),
        "US" => ("America/New_York", "USD", "en-US"),
        "CA" => ("America/Toronto", "CAD", "en-CA"),
        _ => ("UTC", "EUR", "en"),
    }
}

pub async fn initialise(
    conn: &mut PgConnection,
    clinic_id: ClinicId,
    name: &str,
    country: &str,
) -> Result<(), sqlx::Error> {
    let (timezone, currency, locale) = defaults_for(country);
    sqlx::query(
        "INSERT INTO clinic_settings (clinic_id, name, country, timezone, currency, locale)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(clinic_id.0)
    .bind(name)
    .bind(country)
    .bind(timezone)
    .bind(currency)
    .bind(locale)
    .execute(conn)
    .await?;
    Ok(())
}

/// The clinic's country, which decides how patient identities are checked.
pub async fn country(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT country::text FROM clinic_settings WHERE id = 1")
        .fetch_one(conn)
        .await
}
