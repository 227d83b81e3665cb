//! Products and services the clinic sells: price in integer cents, VAT in
//! basis points (2000 = 20 %), optional duration for services, and the
//! categories each belongs to. Codes are unique among live rows whatever
//! their case (`products_services_code_key`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clinic::table::{Lock, Table};
use crate::clinic::{like_pattern, Page};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

pub const CODE_TAKEN: &str = "products_services_code_key";
pub const KINDS: &[&str] = &["product", "service"];
/// 100 % in basis points.
pub const MAX_VAT_RATE: i32 = 10_000;

/// A product or service as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ProductService {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: ProductFields,
    /// Its categories, by id.
    pub category_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a product or service holds, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ProductFields {
    pub name: String,
    pub code: Option<String>,
    /// `product|service`
    pub kind: String,
    pub unit_price_cents: i64,
    /// Basis points, 0 to 10000.
    pub vat_rate: i32,
    pub duration_minutes: Option<i32>,
    pub is_active: bool,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<200>)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<50>)]
    pub code: Patch<String>,
    /// Default `service`.
    #[serde(default)]
    #[schema(schema_with = kind_schema)]
    pub kind: Patch<String>,
    /// Integer cents.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0)]
    pub unit_price_cents: Patch<i64>,
    /// Basis points (2000 = 20 %), default 0.
    #[serde(default)]
    #[schema(value_type = i32, minimum = 0, maximum = 10_000)]
    pub vat_rate: Patch<i32>,
    /// Minutes.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 1)]
    pub duration_minutes: Patch<i32>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_active: Patch<bool>,
    /// Live categories of this clinic; replaces the current list.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub category_ids: Patch<Vec<Uuid>>,
}

fn kind_schema() -> Object {
    v::schema::one_of(KINDS, false)
}

/// The body of a create, for the OpenAPI document.
pub type NewProduct = Create<ProductInput>;

impl Creatable for ProductInput {
    const CREATE_NAME: &'static str = "NewProductService";
    const REQUIRED: &'static [&'static str] = &["name", "unitPriceCents"];
}

impl ProductInput {
    /// The category list this request sets, without repeats (`null` sets an
    /// empty list); `None` keeps the current one.
    pub fn category_ids(&self) -> Option<Vec<Uuid>> {
        match &self.category_ids {
            Patch::Absent => None,
            Patch::Null => Some(Vec::new()),
            Patch::Value(ids) => {
                let mut unique = ids.clone();
                unique.sort();
                unique.dedup();
                Some(unique)
            }
        }
    }

    /// Applies this request onto `current` (`None` when creating) and checks
    /// the result; the category list is handled apart.
    pub fn apply(self, current: Option<ProductFields>) -> Result<ProductFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let current = current.as_ref();
        let name = self
            .name
            .apply(current.map(|c| c.name.clone()), v::text(200), "name", e);
        let code = self
            .code
            .apply(current.and_then(|c| c.code.clone()), v::text(50), "code", e);
        let kind = self.kind.apply(
            Some(current.map_or("service", |c| &c.kind).to_owned()),
            v::one_of(KINDS),
            "kind",
            e,
        );
        let unit_price_cents = self.unit_price_cents.apply(
            current.map(|c| c.unit_price_cents),
            unit_price,
            "unitPriceCents",
            e,
        );
        let vat_rate = self.vat_rate.apply(
            Some(current.map_or(0, |c| c.vat_rate)),
            vat_rate,
            "vatRate",
            e,
        );
        let duration_minutes = self.duration_minutes.apply(
            current.and_then(|c| c.duration_minutes),
            duration,
            "durationMinutes",
            e,
        );
        let is_active = self.is_active.apply(
            Some(current.map_or(true, |c| c.is_active)),
            Ok,
            "isActive",
            e,
        );
        e.require(&name, "name");
        e.require(&unit_price_cents, "unitPriceCents");
        for (field, missing) in [
            ("kind", kind.is_none()),
            ("vatRate", vat_rate.is_none()),
            ("isActive", is_active.is_none()),
        ] {
            if missing {
                e.add(field, "must not be null");
            }
        }
        errors.finish(ProductFields {
            name: name.unwrap_or_default(),
            code,
            kind: kind.unwrap_or_default(),
            unit_price_cents: unit_price_cents.unwrap_or_default(),
            vat_rate: vat_rate.unwrap_or_default(),
            duration_minutes,
            is_active: is_active.unwrap_or_default(),
        })
    }
}

fn unit_price(cents: i64) -> Result<i64, String> {
    if cents >= 0 {
        Ok(cents)
    } else {
        Err("must be an integer number of cents, at least 0".into())
    }
}

fn vat_rate(basis_points: i32) -> Result<i32, String> {
    if (0..=MAX_VAT_RATE).contains(&basis_points) {
        Ok(basis_points)
    } else {
        Err("must be in basis points, 0 to 10000 (2000 = 20 %)".into())
    }
}

fn duration(minutes: i32) -> Result<i32, String> {
    if minutes > 0 {
        Ok(minutes)
    } else {
        Err("must be more than 0 minutes".into())
    }
}

const TABLE: Table = Table {
    name: "products_services",
    alias: "p",
    joins: "",
    columns: "p.id, p.name, p.code, p.kind, p.unit_price_cents, p.vat_rate,
        p.duration_minutes, p.is_active, p.created_at, p.updated_at,
        ARRAY(SELECT pc.category_id FROM product_categories pc
               WHERE pc.product_service_id = p.id ORDER BY pc.category_id) AS category_ids",
};

/// A live product or service by id.
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProductService>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live product or service, locked for update within the caller's
/// transaction.
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProductService>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Live products and services by name, matching `search` in name or code.
pub async fn list(
    conn: &mut PgConnection,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<ProductService>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter =
        "p.deleted_at IS NULL AND ($1::text IS NULL OR p.name ILIKE $1 OR p.code ILIKE $1)";
    let order = "ORDER BY lower(p.name), p.id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, filter, order, page, |q| q.bind(pattern))
        .await
}

/// Inserts a row and returns its id.
pub async fn insert(conn: &mut PgConnection, fields: &ProductFields) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO products_services (name, code, kind, unit_price_cents, vat_rate,
            duration_minutes, is_active)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&fields.name)
    .bind(&fields.code)
    .bind(&fields.kind)
    .bind(fields.unit_price_cents)
    .bind(fields.vat_rate)
    .bind(fields.duration_minutes)
    .bind(fields.is_active)
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &ProductFields,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products_services SET name = $2, code = $3, kind = $4, unit_price_cents = $5,
            vat_rate = $6, duration_minutes = $7, is_active = $8, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(&fields.name)
    .bind(&fields.code)
    .bind(&fields.kind)
    .bind(fields.unit_price_cents)
    .bind(fields.vat_rate)
    .bind(fields.duration_minutes)
    .bind(fields.is_active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the categories of one row (ids already checked as live).
pub async fn set_categories(
    conn: &mut PgConnection,
    id: Uuid,
    category_ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM product_categories WHERE product_service_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO product_categories (product_service_id, category_id)
         SELECT $1, unnest($2::uuid[])",
    )
    .bind(id)
    .bind(category_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes a live row; `false` when there was none. Documents and
/// appointments that used it keep their own copy of name and price.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    TABLE.soft_delete(conn, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> ProductInput {
        serde_json::from_str(json).unwrap()
    }

    fn fields_of(errors: FieldErrors) -> Vec<String> {
        errors.into_details().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn create_defaults_to_an_active_service_without_vat() {
        let fields = input(r#"{"name": "Consultation", "unitPriceCents": 2500}"#)
            .apply(None)
            .unwrap();
        assert_eq!(fields.kind, "service");
        assert_eq!(fields.vat_rate, 0);
        assert!(fields.is_active);
        assert_eq!(fields.code, None);
    }

    #[test]
    fn create_names_every_bad_field() {
        let errors = input(
            r#"{"kind": "gift", "unitPriceCents": -1, "vatRate": 10001, "durationMinutes": 0}"#,
        )
        .apply(None)
        .unwrap_err();
        let fields = fields_of(errors);
        for field in [
            "name",
            "kind",
            "unitPriceCents",
            "vatRate",
            "durationMinutes",
        ] {
            assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
        }
        let missing = fields_of(input(r#"{"name": "x"}"#).apply(None).unwrap_err());
        assert_eq!(missing, ["unitPriceCents"]);
    }

    #[test]
    fn update_keeps_absent_fields_and_refuses_null_for_defaults() {
        let current = input(r#"{"name": "Kit", "kind": "product", "unitPriceCents": 0, "vatRate": 2000, "code": "K1"}"#)
            .apply(None)
            .unwrap();
        let updated = input(r#"{"code": null, "unitPriceCents": 990}"#)
            .apply(Some(current.clone()))
            .unwrap();
        assert_eq!(updated.kind, "product");
        assert_eq!(updated.vat_rate, 2000);
        assert_eq!(updated.code, None);
        assert_eq!(updated.unit_price_cents, 990);
        let errors = input(r#"{"vatRate": null, "unitPriceCents": null}"#)
            .apply(Some(current))
            .unwrap_err();
        assert_eq!(fields_of(errors), ["unitPriceCents", "vatRate"]);
    }

    #[test]
    fn category_ids_are_deduplicated_and_null_empties_them() {
        let id = Uuid::new_v4();
        let given = input(&format!(r#"{{"categoryIds": ["{id}", "{id}"]}}"#));
        assert_eq!(given.category_ids(), Some(vec![id]));
        assert_eq!(
            input(r#"{"categoryIds": null}"#).category_ids(),
            Some(vec![])
        );
        assert_eq!(input("{}").category_ids(), None);
    }
}
