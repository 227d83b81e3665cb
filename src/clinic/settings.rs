//! `clinic_settings`: the clinic's one row of preferences (timezone,
//! currency, locale), initialised at provisioning from its country and
//! changed by its admins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use crate::tenancy::naming::ClinicId;
use crate::validation::{FieldErrors, Patch};

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

/// The preferences a clinic can change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// An IANA time zone, such as `Europe/Paris`.
    pub timezone: String,
    /// ISO 4217, such as `EUR`.
    pub currency: String,
    /// A language tag, such as `fr-FR` or `en`.
    pub locale: String,
    pub updated_at: DateTime<Utc>,
}

/// A change of preferences; absent fields are kept, none can be cleared.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferencesInput {
    /// An IANA time zone, such as `Europe/Paris`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub timezone: Patch<String>,
    /// ISO 4217, such as `EUR`.
    #[serde(default)]
    #[schema(schema_with = crate::validation::schema::currency)]
    pub currency: Patch<String>,
    /// A language tag, such as `fr-FR` or `en`.
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^\s*[A-Za-z]{2,3}([-_][A-Za-z]{4})?([-_]([A-Za-z]{2}|[0-9]{3}))?\s*$")]
    pub locale: Patch<String>,
}

impl PreferencesInput {
    /// The time zone this request names, to look up before applying it.
    pub fn timezone(&self) -> Option<&str> {
        match &self.timezone {
            Patch::Value(name) => Some(name.trim()),
            _ => None,
        }
    }

    /// Applies this request onto `current`. `timezone` is the canonical
    /// name the database knows for the requested zone (`None`: unknown).
    pub fn apply(
        self,
        current: Preferences,
        timezone: Option<String>,
    ) -> Result<Preferences, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let timezone = self.timezone.apply(
            Some(current.timezone),
            |_| timezone.ok_or_else(|| "must be an IANA time zone such as Europe/Paris".into()),
            "timezone",
            e,
        );
        let currency = self
            .currency
            .apply(Some(current.currency), currency, "currency", e);
        let locale = self.locale.apply(Some(current.locale), locale, "locale", e);
        for (field, missing) in [
            ("timezone", timezone.is_none()),
            ("currency", currency.is_none()),
            ("locale", locale.is_none()),
        ] {
            if missing {
                e.add(field, "cannot be cleared");
            }
        }
        errors.finish(Preferences {
            timezone: timezone.unwrap_or_default(),
            currency: currency.unwrap_or_default(),
            locale: locale.unwrap_or_default(),
            updated_at: current.updated_at,
        })
    }
}

/// An ISO 4217 code: three letters, upper-cased.
fn currency(raw: String) -> Result<String, String> {
    let value = raw.trim().to_ascii_uppercase();
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value)
    } else {
        Err("must be an ISO 4217 currency code such as EUR".into())
    }
}

/// A language tag `language[-Script][-REGION]` (`en`, `fr-FR`,
/// `zh-Hant-TW`, `es-419`), returned in its usual letter case.
fn locale(raw: String) -> Result<String, String> {
    let invalid = || "must be a language tag such as fr-FR or en".to_owned();
    let mut parts = raw.trim().split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid());
    }
    let mut tag = language.to_ascii_lowercase();
    let mut rest: Vec<&str> = parts.collect();
    if rest
        .first()
        .is_some_and(|script| script.len() == 4 && script.chars().all(|c| c.is_ascii_alphabetic()))
    {
        let script = rest.remove(0);
        tag.push('-');
        tag.push_str(&script[..1].to_ascii_uppercase());
        tag.push_str(&script[1..].to_ascii_lowercase());
    }
    match rest.as_slice() {
        [] => {}
        [region] if region.len() == 2 && region.chars().all(|c| c.is_ascii_alphabetic()) => {
            tag.push('-');
            tag.push_str(&region.to_ascii_uppercase());
        }
        [region] if region.len() == 3 && region.chars().all(|c| c.is_ascii_digit()) => {
            tag.push('-');
            tag.push_str(region);
        }
        _ => return Err(invalid()),
    }
    Ok(tag)
}

pub async fn preferences(conn: &mut PgConnection) -> Result<Preferences, sqlx::Error> {
    sqlx::query_as("SELECT timezone, currency::text AS currency, locale, updated_at FROM clinic_settings WHERE id = 1")
        .fetch_one(conn)
        .await
}

/// The database's own name for a time zone, looked up whatever the letter
/// case; `None` when PostgreSQL does not know it.
pub async fn canonical_timezone(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT name FROM pg_timezone_names WHERE lower(name) = lower($1)
          ORDER BY name = $1 DESC, name LIMIT 1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn update_preferences(
    conn: &mut PgConnection,
    preferences: &Preferences,
) -> Result<Preferences, sqlx::Error> {
    sqlx::query_as(
        "UPDATE clinic_settings SET timezone = $1, currency = $2, locale = $3, updated_at = now()
          WHERE id = 1 RETURNING timezone, currency::text AS currency, locale, updated_at",
    )
    .bind(&preferences.timezone)
    .bind(&preferences.currency)
    .bind(&preferences.locale)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(currency(" eur ".into()).unwrap(), "EUR");
        for bad in ["EU", "EURO", "E1R", "€€€"] {
            assert!(currency(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn locales_are_language_tags_in_usual_case() {
        for (given, expected) in [
            ("en", "en"),
            ("fr-FR", "fr-FR"),
            ("fr_fr", "fr-FR"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
        ] {
            assert_eq!(locale(given.into()).unwrap(), expected);
        }
        for bad in ["", "f", "french", "fr-FRA", "fr-F", "fr-FR-x", "1r"] {
            assert!(locale(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_can_be_cleared_and_an_unknown_zone_is_named() {
        let current = Preferences {
            timezone: "Europe/Paris".into(),
            currency: "EUR".into(),
            locale: "fr-FR".into(),
            updated_at: Utc::now(),
        };
        let input: PreferencesInput =
            serde_json::from_str(r#"{"timezone": "Mars/Olympus", "locale": null}"#).unwrap();
        let fields: Vec<String> = input
            .apply(current, None)
            .unwrap_err()
            .into_details()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["timezone", "locale"]);
    }
}
