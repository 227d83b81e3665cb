//! `clinic_settings`: the clinic's one row of preferences (timezone,
//! currency, locale) and of what its invoices say of it (postal address,
//! SIRET, VAT number), initialised at provisioning from its country and
//! changed by its admins.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::address::{self, Address, AddressInput};
use crate::tenancy::naming::ClinicId;
use crate::validation::{FieldErrors, Nested, Patch};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// An IANA time zone, such as `Europe/Paris`.
    pub timezone: String,
    /// ISO 4217, such as `EUR`.
    pub currency: String,
    /// A language tag, such as `fr-FR` or `en`.
    pub locale: String,
    /// The clinic's postal address, printed on its invoices.
    pub address: Address,
    /// The French establishment number (14 digits), printed on invoices.
    pub siret: Option<String>,
    /// The intra-community VAT number (`FR` and 11 characters for France).
    pub vat_number: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PreferencesRow {
    timezone: String,
    currency: String,
    locale: String,
    address_line1: Option<String>,
    address_line2: Option<String>,
    address_city: Option<String>,
    address_postal_code: Option<String>,
    address_country: Option<String>,
    siret: Option<String>,
    vat_number: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<PreferencesRow> for Preferences {
    fn from(row: PreferencesRow) -> Self {
        Preferences {
            timezone: row.timezone,
            currency: row.currency,
            locale: row.locale,
            address: Address {
                line1: row.address_line1,
                line2: row.address_line2,
                city: row.address_city,
                postal_code: row.address_postal_code,
                country: row.address_country,
            },
            siret: row.siret,
            vat_number: row.vat_number,
            updated_at: row.updated_at,
        }
    }
}

/// A change of preferences; absent fields are kept. `timezone`, `currency`
/// and `locale` cannot be cleared; `address` (replaced as a whole),
/// `siret` and `vatNumber` are cleared by `null`.
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
    #[serde(default)]
    #[schema(value_type = Option<AddressInput>)]
    pub address: Patch<Nested<AddressInput>>,
    /// 14 digits (spaces ignored) whose Luhn checksum holds.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^ *(?:[0-9] *){14}$")]
    pub siret: Patch<String>,
    /// Two letters of country, then 2 to 12 letters or digits (spaces
    /// ignored); a French one is `FR`, a 2-character key, the 9-digit SIREN.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^ *[A-Za-z] *[A-Za-z] *(?:[0-9A-Za-z] *){2,12}$")]
    pub vat_number: Patch<String>,
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
        let address = match self.address {
            Patch::Absent => current.address,
            Patch::Null => Address::default(),
            Patch::Value(Nested(input)) => address::check(input, e),
        };
        let siret = self.siret.apply(current.siret, siret, "siret", e);
        let vat_number = self
            .vat_number
            .apply(current.vat_number, vat_number, "vatNumber", e);
        errors.finish(Preferences {
            timezone: timezone.unwrap_or_default(),
            currency: currency.unwrap_or_default(),
            locale: locale.unwrap_or_default(),
            address,
            siret,
            vat_number,
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

/// A SIRET: 14 digits (spaces ignored) passing the Luhn check, as the
/// INSEE issues them (La Poste's establishments, SIREN 356000000, sum
/// their digits to a multiple of 5 instead).
fn siret(raw: String) -> Result<String, String> {
    let value: String = raw.chars().filter(|c| *c != ' ').collect();
    let invalid = || "must be a SIRET: 14 digits whose check digit matches".to_owned();
    if value.len() != 14 || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
    let luhn: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| match d * (1 + (i % 2) as u32) {
            doubled if doubled > 9 => doubled - 9,
            digit => digit,
        })
        .sum();
    let la_poste = value.starts_with("356000000") && digits.iter().sum::<u32>() % 5 == 0;
    if luhn % 10 == 0 || la_poste {
        Ok(value)
    } else {
        Err(invalid())
    }
}

/// An intra-community VAT number, upper-cased without spaces: a country's
/// two letters and 2 to 12 letters or digits; for France, `FR`, a key of
/// two characters and the 9-digit SIREN (a numeric key must match it).
fn vat_number(raw: String) -> Result<String, String> {
    let value: String = raw
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    let invalid = || "must be a VAT number such as FR40303265045".to_owned();
    let (country, rest) = value.split_at_checked(2).ok_or_else(invalid)?;
    if !country.chars().all(|c| c.is_ascii_uppercase())
        || !(2..=12).contains(&rest.len())
        || !rest.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid());
    }
    if country == "FR" {
        let (key, siren) = rest.split_at_checked(2).ok_or_else(invalid)?;
        let siren: u64 = match siren.len() {
            9 => siren.parse().map_err(|_| invalid())?,
            _ => return Err(invalid()),
        };
        if let Ok(key) = key.parse::<u64>() {
            if key != (12 + 3 * (siren % 97)) % 97 {
                return Err(invalid());
            }
        }
    }
    Ok(value)
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

const COLUMNS: &str = "timezone, currency::text AS currency, locale, address_line1, \
    address_line2, address_city, address_postal_code, address_country::text AS address_country, \
    siret, vat_number, updated_at";

pub async fn preferences(conn: &mut PgConnection) -> Result<Preferences, sqlx::Error> {
    let row: PreferencesRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clinic_settings WHERE id = 1"
    ))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
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
    let address = &preferences.address;
    let row: PreferencesRow = sqlx::query_as(&format!(
        "UPDATE clinic_settings SET timezone = $1, currency = $2, locale = $3,
                address_line1 = $4, address_line2 = $5, address_city = $6,
                address_postal_code = $7, address_country = $8, siret = $9, vat_number = $10,
                updated_at = now()
          WHERE id = 1 RETURNING {COLUMNS}"
    ))
    .bind(&preferences.timezone)
    .bind(&preferences.currency)
    .bind(&preferences.locale)
    .bind(&address.line1)
    .bind(&address.line2)
    .bind(&address.city)
    .bind(&address.postal_code)
    .bind(&address.country)
    .bind(&preferences.siret)
    .bind(&preferences.vat_number)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
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
            address: Address::default(),
            siret: None,
            vat_number: None,
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

    #[test]
    fn sirets_pass_the_luhn_check() {
        assert_eq!(siret("732 829 320 00074".into()).unwrap(), "73282932000074");
        assert_eq!(siret("35600000000001".into()).unwrap(), "35600000000001");
        for bad in ["73282932000075", "7328293200007", "7328293200007A", ""] {
            assert!(siret(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn french_vat_numbers_carry_their_siren_and_key() {
        assert_eq!(
            vat_number("fr 40 303265045".into()).unwrap(),
            "FR40303265045"
        );
        assert_eq!(vat_number("DE123456789".into()).unwrap(), "DE123456789");
        for bad in [
            "FR41303265045",
            "FR4030326504",
            "F",
            "FR",
            "12345678901",
            "DE1",
        ] {
            assert!(vat_number(bad.into()).is_err(), "{bad}");
        }
    }
}
