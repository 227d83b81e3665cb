//! Patients: the model, the checks on what a request may set, and the
//! queries. A partial update is applied onto the stored patient and the
//! result checked as a whole (the NIR rule depends on the country).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use uuid::Uuid;

pub use super::address::{Address, AddressInput};
use super::table::{Lock, Table};
use super::{address, fetch_list, like_pattern, list_statement, nir, Page};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Nested, Patch};

pub const GENDERS: &[&str] = &["male", "female", "other", "unknown"];
pub const STATUSES: &[&str] = &["active", "inactive", "deceased"];

/// A patient as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: PatientFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a patient holds, checked.
#[derive(Debug, Clone, Default, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PatientFields {
    pub first_name: String,
    pub last_name: String,
    pub birth_date: Option<NaiveDate>,
    /// `male|female|other|unknown`
    pub gender: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[sqlx(flatten)]
    pub address: Address,
    /// For French patients, the NIR (checked).
    pub national_id: Option<String>,
    pub notes: Option<String>,
    /// `active|inactive|deceased`
    pub status: String,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatientInput {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    pub first_name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    pub last_name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = gender_schema)]
    pub gender: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::email_or_null)]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::phone_or_null)]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<AddressInput>)]
    pub address: Patch<Nested<AddressInput>>,
    /// For a French patient, the NIR: 13 characters and a 2-digit key
    /// (spaces ignored), checked; for others, at most 40 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 40)]
    pub national_id: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<10_000>)]
    pub notes: Patch<String>,
    /// `null` sets the default, `active`.
    #[serde(default)]
    #[schema(schema_with = status_schema)]
    pub status: Patch<String>,
}

fn gender_schema() -> Object {
    v::schema::one_of(GENDERS, true)
}

fn status_schema() -> Object {
    v::schema::one_of(STATUSES, true)
}

/// The body of a create, for the OpenAPI document.
pub type NewPatient = Create<PatientInput>;

impl Creatable for PatientInput {
    const CREATE_NAME: &'static str = "NewPatient";
    const REQUIRED: &'static [&'static str] = &["firstName", "lastName"];
}

impl PatientInput {
    /// The names of the fields this request sets or clears (for the audit
    /// trail: names only, never values).
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("firstName", self.first_name.is_present()),
            ("lastName", self.last_name.is_present()),
            ("birthDate", self.birth_date.is_present()),
            ("gender", self.gender.is_present()),
            ("email", self.email.is_present()),
            ("phone", self.phone.is_present()),
            ("address", self.address.is_present()),
            ("nationalId", self.national_id.is_present()),
            ("notes", self.notes.is_present()),
            ("status", self.status.is_present()),
        ])
    }

    /// Applies this request onto `current` (a blank patient when creating)
    /// and checks the result. `clinic_country` decides when the national id
    /// is a French NIR: for patients whose address is in France, or who have
    /// no address country in a French clinic.
    pub fn apply(
        self,
        current: PatientFields,
        clinic_country: &str,
    ) -> Result<PatientFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let first_name = self.first_name.apply(
            Some(current.first_name).filter(|s| !s.is_empty()),
            v::text(100),
            "firstName",
            e,
        );
        let last_name = self.last_name.apply(
            Some(current.last_name).filter(|s| !s.is_empty()),
            v::text(100),
            "lastName",
            e,
        );
        if first_name.is_none() {
            e.add("firstName", "is required");
        }
        if last_name.is_none() {
            e.add("lastName", "is required");
        }
        let birth_date = self
            .birth_date
            .apply(current.birth_date, birth_date, "birthDate", e);
        let gender = self
            .gender
            .apply(current.gender, v::one_of(GENDERS), "gender", e);
        let email = self.email.apply(current.email, v::email, "email", e);
        let phone = self.phone.apply(current.phone, v::phone, "phone", e);
        let address = match self.address {
            Patch::Absent => current.address,
            Patch::Null => Address::default(),
            Patch::Value(Nested(input)) => address::check(input, e),
        };
        let notes = self.notes.apply(current.notes, v::text(10_000), "notes", e);
        let status = self
            .status
            .apply(
                Some(current.status).filter(|s| !s.is_empty()),
                v::one_of(STATUSES),
                "status",
                e,
            )
            .unwrap_or_else(|| "active".to_owned());
        let is_french = address.country.as_deref().unwrap_or(clinic_country) == "FR";
        let national_id = self.national_id.apply(
            current.national_id,
            |raw| national_id(raw, is_french),
            "nationalId",
            e,
        );
        errors.finish(PatientFields {
            first_name: first_name.unwrap_or_default(),
            last_name: last_name.unwrap_or_default(),
            birth_date,
            gender,
            email,
            phone,
            address,
            national_id,
            notes,
            status,
        })
    }
}

fn birth_date(raw: String) -> Result<NaiveDate, String> {
    let date = v::date(raw)?;
    let earliest = NaiveDate::from_ymd_opt(1890, 1, 1).expect("valid date");
    if date > Utc::now().date_naive() {
        Err("must not be in the future".into())
    } else if date < earliest {
        Err("must be after 1890-01-01".into())
    } else {
        Ok(date)
    }
}

fn national_id(raw: String, is_french: bool) -> Result<String, String> {
    if is_french {
        nir::check(&raw)
    } else {
        v::text(40)(raw)
    }
}

const COLUMNS: &str =
    "id, first_name, last_name, birth_date, gender, email, phone, address_line1, \
    address_line2, address_city, address_postal_code, address_country::text AS address_country, \
    national_id, notes, status, created_at, updated_at";

const TABLE: Table = Table {
    name: "patients",
    alias: "patients",
    joins: "",
    columns: COLUMNS,
};

/// A live patient by id.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Patient>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live patient, locked for update within the caller's transaction.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Patient>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Whether a patient matches `$1`, a `LIKE` pattern of [`like_pattern`], in
/// its names, email or phone: the expressions of `patients_search_idx`. Each
/// name alone is part of both full names, so it needs no test of its own.
const MATCHES: &str = "((first_name || ' ' || last_name) ILIKE $1
    OR (last_name || ' ' || first_name) ILIKE $1 OR email ILIKE $1 OR phone ILIKE $1)";

/// Live patients, by name, matching `search` in names, email or phone.
///
/// A search of three characters or more (one trigram at least) is answered
/// from its matches, found first through the search index: the name index,
/// walked in the page's order, would read every name sorted before the
/// matching ones, which sit together, and the planner cannot foresee it. A
/// shorter search uses no index and matches many patients, so the walk is
/// the quicker way to its first page.
pub async fn list(
    conn: &mut PgConnection,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<Patient>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let order = "ORDER BY lower(last_name), lower(first_name), id LIMIT $2 OFFSET $3";
    let statement = if search.is_some_and(|s| s.chars().count() >= 3) {
        format!(
            "WITH found AS MATERIALIZED (
                SELECT {COLUMNS} FROM patients WHERE deleted_at IS NULL AND {MATCHES}) {}",
            list_statement("found", "TRUE", "SELECT * FROM found", order)
        )
    } else {
        list_statement(
            "patients",
            &format!("deleted_at IS NULL AND ($1::text IS NULL OR {MATCHES})"),
            &format!("SELECT {COLUMNS} FROM patients"),
            order,
        )
    };
    let query = sqlx::query(&statement)
        .bind(&pattern)
        .bind(page.limit)
        .bind(page.offset);
    fetch_list(conn, query).await
}

/// The predicate of `patients_national_id_key`: `ON CONFLICT` names it to
/// infer that partial unique index as its arbiter.
const NATIONAL_ID_INDEX: &str =
    "(national_id) WHERE deleted_at IS NULL AND national_id IS NOT NULL";

/// Inserts a patient; `None` when another live patient has its national id.
///
/// A duplicate is detected without raising the unique violation, whose
/// message PostgreSQL would write to its log with the key's value (a NIR).
pub async fn insert(
    conn: &mut PgConnection,
    fields: &PatientFields,
) -> Result<Option<Patient>, sqlx::Error> {
    bind_fields(
        sqlx::query_as(&format!(
            "INSERT INTO patients (first_name, last_name, birth_date, gender, email, phone,
                address_line1, address_line2, address_city, address_postal_code, address_country,
                national_id, notes, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT {NATIONAL_ID_INDEX} DO NOTHING
             RETURNING {COLUMNS}"
        )),
        fields,
    )
    .fetch_optional(conn)
    .await
}

/// Updates a live patient the caller has locked ([`find_for_update`]);
/// `None` when another live patient has the national id it would take.
///
/// The check is part of the statement, so a duplicate raises no unique
/// violation (see [`insert`]). Only a concurrent write of the same national
/// id, committed after this statement's snapshot, still meets the index.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &PatientFields,
) -> Result<Option<Patient>, sqlx::Error> {
    bind_fields(
        sqlx::query_as(&format!(
            "UPDATE patients SET first_name = $1, last_name = $2, birth_date = $3, gender = $4,
                email = $5, phone = $6, address_line1 = $7, address_line2 = $8, address_city = $9,
                address_postal_code = $10, address_country = $11, national_id = $12, notes = $13,
                status = $14, updated_at = now()
             WHERE id = $15 AND deleted_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM patients other
                                WHERE other.national_id = $12 AND other.deleted_at IS NULL
                                  AND other.id <> $15)
             RETURNING {COLUMNS}"
        )),
        fields,
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

fn bind_fields<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, Patient, sqlx::postgres::PgArguments>,
    fields: &'q PatientFields,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Patient, sqlx::postgres::PgArguments> {
    query
        .bind(&fields.first_name)
        .bind(&fields.last_name)
        .bind(fields.birth_date)
        .bind(&fields.gender)
        .bind(&fields.email)
        .bind(&fields.phone)
        .bind(&fields.address.line1)
        .bind(&fields.address.line2)
        .bind(&fields.address.city)
        .bind(&fields.address.postal_code)
        .bind(&fields.address.country)
        .bind(&fields.national_id)
        .bind(&fields.notes)
        .bind(&fields.status)
}

/// Soft-deletes a live patient; `false` when there was none.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    TABLE.soft_delete(conn, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> PatientInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_requires_names_and_reports_each_field() {
        let errors = input(r#"{"email": "nope", "gender": "x"}"#)
            .apply(PatientFields::default(), "FR")
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"firstName"));
        assert!(fields.contains(&"lastName"));
        assert!(fields.contains(&"email"));
        assert!(fields.contains(&"gender"));
    }

    #[test]
    fn update_keeps_absent_fields_and_clears_nulls() {
        let current = input(r#"{"firstName": "Ana", "lastName": "Lopez", "phone": "0102030405"}"#)
            .apply(PatientFields::default(), "FR")
            .unwrap();
        let updated = input(r#"{"lastName": "Martin", "phone": null}"#)
            .apply(current, "FR")
            .unwrap();
        assert_eq!(updated.first_name, "Ana");
        assert_eq!(updated.last_name, "Martin");
        assert_eq!(updated.phone, None);
    }

    #[test]
    fn national_id_is_a_nir_only_for_french_patients() {
        let base = r#""firstName": "A", "lastName": "B", "nationalId": "12345""#;
        assert!(input(&format!("{{{base}}}"))
            .apply(PatientFields::default(), "FR")
            .is_err());
        assert!(input(&format!("{{{base}}}"))
            .apply(PatientFields::default(), "BE")
            .is_ok());
        let abroad = format!(r#"{{{base}, "address": {{"country": "be"}}}}"#);
        assert!(input(&abroad).apply(PatientFields::default(), "FR").is_ok());
    }

    #[test]
    fn names_cannot_be_cleared() {
        let current = input(r#"{"firstName": "Ana", "lastName": "Lopez"}"#)
            .apply(PatientFields::default(), "FR")
            .unwrap();
        assert!(input(r#"{"firstName": null}"#)
            .apply(current, "FR")
            .is_err());
    }
}
