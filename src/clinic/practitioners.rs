//! Practitioners: the people appointments are booked with, optionally
//! linked to one staff account of the clinic (`userId`; one practitioner
//! per account, `practitioners_user_key`). That the account belongs to the
//! clinic is checked by the caller against the central database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, Postgres};
use utoipa::ToSchema;
use uuid::Uuid;

use super::table::{Lock, Table};
use super::{like_pattern, Page};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

pub const USER_TAKEN: &str = "practitioners_user_key";

/// A practitioner as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: PractitionerFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a practitioner holds, checked.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerFields {
    pub first_name: String,
    pub last_name: String,
    pub specialty: Option<String>,
    pub license_number: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The linked staff account, if any.
    pub user_id: Option<Uuid>,
    pub is_active: bool,
}

/// A blank practitioner, active, onto which a creation is applied.
impl Default for PractitionerFields {
    fn default() -> Self {
        PractitionerFields {
            first_name: String::new(),
            last_name: String::new(),
            specialty: None,
            license_number: None,
            email: None,
            phone: None,
            user_id: None,
            is_active: true,
        }
    }
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PractitionerInput {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    pub first_name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    pub last_name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<100>)]
    pub specialty: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<50>)]
    pub license_number: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::email_or_null)]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::phone_or_null)]
    pub phone: Patch<String>,
    /// A live staff account of this clinic, or `null` to unlink.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_active: Patch<bool>,
}

/// The body of a create, for the OpenAPI document.
pub type NewPractitioner = Create<PractitionerInput>;

impl Creatable for PractitionerInput {
    const CREATE_NAME: &'static str = "NewPractitioner";
    const REQUIRED: &'static [&'static str] = &["firstName", "lastName"];
}

impl PractitionerInput {
    /// The account this request links, to check before applying it.
    pub fn linked_user(&self) -> Option<Uuid> {
        match self.user_id {
            Patch::Value(id) => Some(id),
            _ => None,
        }
    }

    /// Applies this request onto `current` (a blank practitioner when
    /// creating) and checks the result.
    pub fn apply(self, current: PractitionerFields) -> Result<PractitionerFields, FieldErrors> {
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
        e.require(&first_name, "firstName");
        e.require(&last_name, "lastName");
        let specialty = self
            .specialty
            .apply(current.specialty, v::text(100), "specialty", e);
        let license_number =
            self.license_number
                .apply(current.license_number, v::text(50), "licenseNumber", e);
        let email = self.email.apply(current.email, v::email, "email", e);
        let phone = self.phone.apply(current.phone, v::phone, "phone", e);
        let user_id = self.user_id.apply(current.user_id, Ok, "userId", e);
        let is_active = match self.is_active {
            Patch::Absent => current.is_active,
            Patch::Value(active) => active,
            Patch::Null => {
                e.add("isActive", "must be true or false");
                current.is_active
            }
        };
        errors.finish(PractitionerFields {
            first_name: first_name.unwrap_or_default(),
            last_name: last_name.unwrap_or_default(),
            specialty,
            license_number,
            email,
            phone,
            user_id,
            is_active,
        })
    }
}

const TABLE: Table = Table {
    name: "practitioners",
    alias: "practitioners",
    joins: "",
    columns: "id, first_name, last_name, specialty, license_number, email, phone, user_id, \
        is_active, created_at, updated_at",
};

/// A live practitioner by id.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Practitioner>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live practitioner, locked for update within the caller's transaction.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Practitioner>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Live practitioners, by name, matching `search` in names or specialty.
pub async fn list(
    conn: &mut PgConnection,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<Practitioner>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter = "deleted_at IS NULL AND ($1::text IS NULL
        OR first_name ILIKE $1 OR last_name ILIKE $1 OR specialty ILIKE $1
        OR (first_name || ' ' || last_name) ILIKE $1 OR (last_name || ' ' || first_name) ILIKE $1)";
    let order = "ORDER BY lower(last_name), lower(first_name), id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, filter, order, page, |q| q.bind(pattern))
        .await
}

pub async fn insert(
    conn: &mut PgConnection,
    fields: &PractitionerFields,
) -> Result<Practitioner, sqlx::Error> {
    let statement = format!(
        "INSERT INTO practitioners (first_name, last_name, specialty, license_number, email,
            phone, user_id, is_active)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
        TABLE.columns
    );
    bind_fields(sqlx::query_as(&statement), fields)
        .fetch_one(conn)
        .await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &PractitionerFields,
) -> Result<Practitioner, sqlx::Error> {
    let statement = format!(
        "UPDATE practitioners SET first_name = $1, last_name = $2, specialty = $3,
            license_number = $4, email = $5, phone = $6, user_id = $7, is_active = $8,
            updated_at = now()
         WHERE id = $9 AND deleted_at IS NULL RETURNING {}",
        TABLE.columns
    );
    bind_fields(sqlx::query_as(&statement), fields)
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Binds `fields` as `$1` to `$8`, in the column order of [`insert`].
fn bind_fields<'q>(
    query: QueryAs<'q, Postgres, Practitioner, PgArguments>,
    fields: &'q PractitionerFields,
) -> QueryAs<'q, Postgres, Practitioner, PgArguments> {
    query
        .bind(&fields.first_name)
        .bind(&fields.last_name)
        .bind(&fields.specialty)
        .bind(&fields.license_number)
        .bind(&fields.email)
        .bind(&fields.phone)
        .bind(fields.user_id)
        .bind(fields.is_active)
}

/// Soft-deletes a live practitioner; `false` when there was none. Past
/// appointments keep pointing at the row.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    TABLE.soft_delete(conn, id).await
}

/// Unlinks a staff account being deleted from its practitioner, if any.
pub async fn unlink_user(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE practitioners SET user_id = NULL, updated_at = now()
          WHERE user_id = $1 AND deleted_at IS NULL",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> PractitionerInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_requires_names_and_checks_contact_fields() {
        let errors = input(r#"{"email": "nope", "phone": "call me", "isActive": null}"#)
            .apply(PractitionerFields::default())
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in ["firstName", "lastName", "email", "phone", "isActive"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn update_keeps_absent_fields_and_unlinks_on_null() {
        let user = Uuid::new_v4();
        let current = input(&format!(
            r#"{{"firstName": "Louis", "lastName": "Pasteur", "userId": "{user}", "isActive": true}}"#
        ))
        .apply(PractitionerFields::default())
        .unwrap();
        assert_eq!(current.user_id, Some(user));
        let updated = input(r#"{"specialty": "Microbiology", "userId": null}"#)
            .apply(current)
            .unwrap();
        assert_eq!(updated.first_name, "Louis");
        assert_eq!(updated.specialty.as_deref(), Some("Microbiology"));
        assert_eq!(updated.user_id, None);
    }
}
