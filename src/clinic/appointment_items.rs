//! What an appointment is for: catalogue products and services, each with
//! the unit price and VAT rate the catalogue had when it was added, so a
//! later price change leaves booked items as they were.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::validation::{self as v, FieldErrors};

pub const PRODUCT_FK: &str = "appointment_items_product_service_id_fkey";

/// The largest quantity one item may carry.
pub const MAX_QUANTITY: i64 = 10_000;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentItem {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub product_service_id: Uuid,
    pub description: String,
    pub quantity: i32,
    /// Captured from the catalogue when the item was added.
    pub unit_price_cents: i64,
    /// Basis points (2000 = 20 %), captured with the price.
    pub vat_rate: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An item to add; `description` defaults to the product's name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentItemInput {
    #[schema(value_type = Uuid)]
    pub product_service_id: Option<Uuid>,
    /// Default 1.
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: Option<i64>,
    #[schema(schema_with = v::schema::text_or_null::<500>)]
    pub description: Option<String>,
}

/// An item request, checked (the product is checked against the catalogue
/// separately).
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub product_service_id: Uuid,
    pub quantity: i32,
    pub description: Option<String>,
}

impl AppointmentItemInput {
    /// The names of the fields this request gives (for the audit trail).
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("productServiceId", self.product_service_id.is_some()),
            ("quantity", self.quantity.is_some()),
            ("description", self.description.is_some()),
        ])
    }

    pub fn check(self) -> Result<NewItem, FieldErrors> {
        let mut errors = FieldErrors::default();
        let product_service_id =
            v::required(self.product_service_id, Ok, "productServiceId", &mut errors);
        let quantity = match self.quantity.unwrap_or(1) {
            q @ 1..=MAX_QUANTITY => i32::try_from(q).unwrap_or(1),
            _ => {
                errors.add("quantity", format!("must be between 1 and {MAX_QUANTITY}"));
                1
            }
        };
        let description = v::optional(self.description, v::text(500), "description", &mut errors);
        match product_service_id {
            Some(product_service_id) => errors.finish(NewItem {
                product_service_id,
                quantity,
                description,
            }),
            None => Err(errors),
        }
    }
}

/// A catalogue row as an item captures it.
#[derive(Debug, sqlx::FromRow)]
pub struct CatalogueEntry {
    pub name: String,
    pub unit_price_cents: i64,
    pub vat_rate: i32,
    pub is_active: bool,
}

/// A live catalogue row, share-locked until the caller's transaction ends.
pub async fn catalogue_entry(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<CatalogueEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, unit_price_cents, vat_rate, is_active FROM products_services
          WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

const COLUMNS: &str = "id, appointment_id, product_service_id, description, quantity, \
    unit_price_cents, vat_rate, created_at, updated_at";

/// The live items of one appointment, in the order they were added.
pub async fn list(
    conn: &mut PgConnection,
    appointment_id: Uuid,
) -> Result<Vec<AppointmentItem>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM appointment_items
          WHERE appointment_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
    ))
    .bind(appointment_id)
    .fetch_all(conn)
    .await
}

/// Adds `item` priced from `entry`.
pub async fn insert(
    conn: &mut PgConnection,
    appointment_id: Uuid,
    item: NewItem,
    entry: CatalogueEntry,
) -> Result<AppointmentItem, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO appointment_items (appointment_id, product_service_id, description, quantity,
            unit_price_cents, vat_rate)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(appointment_id)
    .bind(item.product_service_id)
    .bind(item.description.unwrap_or(entry.name))
    .bind(item.quantity)
    .bind(entry.unit_price_cents)
    .bind(entry.vat_rate)
    .fetch_one(conn)
    .await
}

/// Soft-deletes one live item of `appointment_id`; `false` when there was none.
pub async fn soft_delete(
    conn: &mut PgConnection,
    appointment_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE appointment_items SET deleted_at = now(), updated_at = now()
          WHERE id = $1 AND appointment_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(appointment_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<NewItem, Vec<String>> {
        serde_json::from_str::<AppointmentItemInput>(json)
            .unwrap()
            .check()
            .map_err(|e| e.into_details().into_iter().map(|d| d.field).collect())
    }

    #[test]
    fn quantity_defaults_to_one_and_must_be_positive() {
        let id = "00000000-0000-0000-0000-000000000001";
        let item = check(&format!(r#"{{"productServiceId": "{id}"}}"#)).unwrap();
        assert_eq!((item.quantity, item.description), (1, None));
        for bad in ["0", "-2", "10001"] {
            assert_eq!(
                check(&format!(
                    r#"{{"productServiceId": "{id}", "quantity": {bad}}}"#
                )),
                Err(vec!["quantity".to_owned()])
            );
        }
        assert_eq!(check("{}"), Err(vec!["productServiceId".to_owned()]));
    }
}
