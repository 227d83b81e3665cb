//! A postal address, as patients and the clinic itself hold it: every line
//! optional, each bounded, the country an ISO code. A request replaces an
//! address as a whole.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{self as v, FieldErrors};

/// Stored in `address_*` columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[sqlx(rename = "address_line1")]
    pub line1: Option<String>,
    #[sqlx(rename = "address_line2")]
    pub line2: Option<String>,
    #[sqlx(rename = "address_city")]
    pub city: Option<String>,
    #[sqlx(rename = "address_postal_code")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[sqlx(rename = "address_country")]
    pub country: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressInput {
    #[schema(schema_with = v::schema::text_or_null::<200>)]
    pub line1: Option<String>,
    #[schema(schema_with = v::schema::text_or_null::<200>)]
    pub line2: Option<String>,
    #[schema(schema_with = v::schema::text_or_null::<100>)]
    pub city: Option<String>,
    #[schema(schema_with = v::schema::text_or_null::<20>)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(schema_with = v::schema::country_or_null)]
    pub country: Option<String>,
}

/// Checks an address; problems are reported as `address.<field>`.
pub fn check(input: AddressInput, errors: &mut FieldErrors) -> Address {
    Address {
        line1: v::optional(input.line1, v::text(200), "address.line1", errors),
        line2: v::optional(input.line2, v::text(200), "address.line2", errors),
        city: v::optional(input.city, v::text(100), "address.city", errors),
        postal_code: v::optional(input.postal_code, v::text(20), "address.postalCode", errors),
        country: v::optional(input.country, v::country, "address.country", errors),
    }
}
