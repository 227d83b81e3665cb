//! Consent templates, kept as versions. Each row is one version; a
//! template's versions share `family_id` and exactly one live version is
//! current. A version nobody has signed is edited in place; once a consent
//! has been signed on it, its text is evidence and never changes: editing
//! makes the next version instead, which becomes current.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::table::{Lock, Table};
use super::{like_pattern, Page};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ConsentTemplate {
    pub id: Uuid,
    /// Shared by every version of one template.
    pub family_id: Uuid,
    /// Set by the server: 1, then one more for each version.
    pub version: i32,
    /// Whether this is the version new consents are given for.
    pub is_current: bool,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentTemplateInput {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<200>)]
    pub title: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100_000>)]
    pub body: Patch<String>,
    /// The server numbers versions: sending one is refused with a clear
    /// message rather than an unknown-field error.
    #[serde(default)]
    #[schema(ignore)]
    pub version: Patch<serde_json::Value>,
}

/// The body of a create, for the OpenAPI document.
pub type NewConsentTemplate = Create<ConsentTemplateInput>;

impl Creatable for ConsentTemplateInput {
    const CREATE_NAME: &'static str = "NewConsentTemplate";
    const REQUIRED: &'static [&'static str] = &["title", "body"];
}

/// A template's text, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText {
    pub title: String,
    pub body: String,
}

impl ConsentTemplateInput {
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("title", self.title.is_present()),
            ("body", self.body.is_present()),
        ])
    }

    /// Applies this request onto `current` (`None` when creating).
    pub fn apply(self, current: Option<&TemplateText>) -> Result<TemplateText, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let title =
            self.title
                .apply_required(current.map(|c| c.title.clone()), v::text(200), "title", e);
        let body =
            self.body
                .apply_required(current.map(|c| c.body.clone()), v::text(100_000), "body", e);
        if self.version.is_present() {
            e.add("version", "is set by the server");
        }
        match (title, body) {
            (Some(title), Some(body)) => errors.finish(TemplateText { title, body }),
            _ => Err(errors),
        }
    }
}

impl ConsentTemplate {
    pub fn text(&self) -> TemplateText {
        TemplateText {
            title: self.title.clone(),
            body: self.body.clone(),
        }
    }
}

const COLUMNS: &str = "id, family_id, version, is_current, title, body, created_at, updated_at";

const TABLE: Table = Table {
    name: "consent_templates",
    alias: "consent_templates",
    joins: "",
    columns: COLUMNS,
};

/// A live version, current or not.
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ConsentTemplate>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live version, locked for a change of its text or its family.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ConsentTemplate>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// A live version, share-locked so that it is neither edited nor replaced
/// while a consent is given on it.
pub async fn find_for_share(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ConsentTemplate>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Share).await
}

/// Current live versions, by title; `search` matches the title.
pub async fn list_current(
    conn: &mut PgConnection,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<ConsentTemplate>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let condition = "is_current AND deleted_at IS NULL AND ($1::text IS NULL OR title ILIKE $1)";
    let order = "ORDER BY lower(title), id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, condition, order, page, |q| q.bind(pattern))
        .await
}

/// A new template: version 1 of a new family.
pub async fn insert(
    conn: &mut PgConnection,
    text: &TemplateText,
) -> Result<ConsentTemplate, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO consent_templates (family_id, title, body)
         VALUES (gen_random_uuid(), $1, $2) RETURNING {COLUMNS}"
    ))
    .bind(&text.title)
    .bind(&text.body)
    .fetch_one(conn)
    .await
}

/// Whether any consent was ever signed on this version (revoked ones
/// included: they were signed first).
pub async fn has_signatures(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM consents WHERE template_id = $1 AND signed_at IS NOT NULL)",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Rewrites an unsigned version's text.
pub async fn update_in_place(
    conn: &mut PgConnection,
    id: Uuid,
    text: &TemplateText,
) -> Result<ConsentTemplate, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE consent_templates SET title = $1, body = $2, updated_at = now()
          WHERE id = $3 RETURNING {COLUMNS}"
    ))
    .bind(&text.title)
    .bind(&text.body)
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Makes the version after `current` (locked by the caller) with `text`,
/// and moves `is_current` to it.
pub async fn insert_next_version(
    conn: &mut PgConnection,
    current: &ConsentTemplate,
    text: &TemplateText,
) -> Result<ConsentTemplate, sqlx::Error> {
    sqlx::query(
        "UPDATE consent_templates SET is_current = false, updated_at = now() WHERE id = $1",
    )
    .bind(current.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(&format!(
        "INSERT INTO consent_templates (family_id, version, is_current, title, body)
         VALUES ($1, $2, true, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(current.family_id)
    .bind(current.version + 1)
    .bind(&text.title)
    .bind(&text.body)
    .fetch_one(conn)
    .await
}

/// Soft-deletes one version (the caller checks it is the current one).
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    TABLE.soft_delete(conn, id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> ConsentTemplateInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn title_and_body_are_required_and_version_is_not_writable() {
        let errors = input(r#"{"version": 3}"#)
            .apply(None)
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "body", "version"]);
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let current = TemplateText {
            title: "Surgery".into(),
            body: "I agree.".into(),
        };
        let next = input(r#"{"body": "I fully agree."}"#)
            .apply(Some(&current))
            .unwrap();
        assert_eq!(next.title, "Surgery");
        assert_eq!(next.body, "I fully agree.");
        assert!(input(r#"{"title": null}"#).apply(Some(&current)).is_err());
    }
}
