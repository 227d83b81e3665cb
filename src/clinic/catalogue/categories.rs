//! Categories of the catalogue. Names are unique among live categories
//! whatever their case (`categories_name_key`). Deleting a category
//! removes it from every product.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clinic::table::{Lock, Table};
use crate::clinic::{like_pattern, Page};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

pub const NAME_TAKEN: &str = "categories_name_key";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: CategoryFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct CategoryFields {
    pub name: String,
    pub description: Option<String>,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoryInput {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<1000>)]
    pub description: Patch<String>,
}

/// The body of a create, for the OpenAPI document.
pub type NewCategory = Create<CategoryInput>;

impl Creatable for CategoryInput {
    const CREATE_NAME: &'static str = "NewCategory";
    const REQUIRED: &'static [&'static str] = &["name"];
}

impl CategoryInput {
    /// Applies this request onto `current` (a blank category when creating).
    pub fn apply(self, current: CategoryFields) -> Result<CategoryFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = self.name.apply(
            Some(current.name).filter(|s| !s.is_empty()),
            v::text(100),
            "name",
            &mut errors,
        );
        errors.require(&name, "name");
        let description = self.description.apply(
            current.description,
            v::text(1000),
            "description",
            &mut errors,
        );
        errors.finish(CategoryFields {
            name: name.unwrap_or_default(),
            description,
        })
    }
}

const TABLE: Table = Table {
    name: "categories",
    alias: "categories",
    joins: "",
    columns: "id, name, description, created_at, updated_at",
};

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Category>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Category>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Live categories by name, matching `search` in the name.
pub async fn list(
    conn: &mut PgConnection,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<Category>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter = "deleted_at IS NULL AND ($1::text IS NULL OR name ILIKE $1)";
    let order = "ORDER BY lower(name), id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, filter, order, page, |q| q.bind(pattern))
        .await
}

pub async fn insert(
    conn: &mut PgConnection,
    fields: &CategoryFields,
) -> Result<Category, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO categories (name, description) VALUES ($1, $2) RETURNING {}",
        TABLE.columns
    ))
    .bind(&fields.name)
    .bind(&fields.description)
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &CategoryFields,
) -> Result<Category, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE categories SET name = $2, description = $3, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL RETURNING {}",
        TABLE.columns
    ))
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.description)
    .fetch_one(conn)
    .await
}

/// Soft-deletes a live category and removes it from every product; `false`
/// when there was none.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    if !TABLE.soft_delete(&mut *conn, id).await? {
        return Ok(false);
    }
    sqlx::query("DELETE FROM product_categories WHERE category_id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Of `ids`, those that are not live categories. The live ones are locked
/// (shared) until the transaction ends, so none is deleted before the
/// caller's links to it are written.
pub async fn unknown(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    let live: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM categories WHERE id = ANY($1) AND deleted_at IS NULL FOR SHARE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(ids
        .iter()
        .filter(|id| !live.contains(id))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_required_and_description_can_be_cleared() {
        let empty: CategoryInput = serde_json::from_str("{}").unwrap();
        let errors = empty.apply(CategoryFields::default()).unwrap_err();
        assert_eq!(errors.into_details()[0].field, "name");
        let current = CategoryFields {
            name: "Soins".into(),
            description: Some("x".into()),
        };
        let cleared: CategoryInput = serde_json::from_str(r#"{"description": null}"#).unwrap();
        let fields = cleared.apply(current).unwrap();
        assert_eq!(fields.name, "Soins");
        assert_eq!(fields.description, None);
    }
}
