//! `/products-services`: list, create, read, update, soft delete. Codes are
//! unique, whatever their case (409); `categoryIds` must name live
//! categories of this clinic (else 422) and replaces the current list.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::clinic::catalogue::categories;
use crate::clinic::catalogue::products::{
    self, NewProduct, ProductFields, ProductInput, ProductService, CODE_TAKEN,
};
use crate::http::error::{ApiError, Found, ResultExt};
use crate::http::extract::{created, ok, page, Json, Path, Query};
use crate::http::list::ListQuery;
use crate::http::state::AppState;
use crate::http::tenant::{Clinic, ProductsServices};
use crate::validation::FieldErrors;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product, delete_product))
}

fn code_taken() -> ApiError {
    ApiError::conflict("another product or service of this clinic has this code")
}

/// Live products and services by name; `?search=` matches name and code.
#[utoipa::path(get, path = "/products-services", tag = "catalogue", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [ProductService]),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_products(
    clinic: Clinic<ProductsServices>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin().await?;
    let (rows, total) = products::list(&mut tx, query.search(), page_request).await?;
    tx.commit().await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a catalogue act or product with its price and VAT rate.
#[utoipa::path(post, path = "/products-services", tag = "catalogue", security(("bearer" = [])),
    request_body = NewProduct, responses((status = 201, body = ProductService),
        (status = 409, description = "conflict: code taken"), (status = 422, description = "validation_failed")))]
async fn create_product(
    clinic: Clinic<ProductsServices>,
    Json(input): Json<ProductInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let (fields, category_ids) = checked(&mut tx, input, None).await?;
    let id = products::insert(&mut tx, &fields)
        .await
        .on_constraint(CODE_TAKEN, code_taken)?;
    let product = finish(&mut tx, id, category_ids).await?;
    tx.commit().await?;
    Ok(created(product))
}

/// One catalogue act or product.
#[utoipa::path(get, path = "/products-services/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ProductService), (status = 404, description = "not_found")))]
async fn get_product(
    clinic: Clinic<ProductsServices>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let product = products::find(&mut tx, id).await.found()?;
    tx.commit().await?;
    Ok(ok(product))
}

/// Updates the given fields (PUT and PATCH alike); `null` clears an optional one.
#[utoipa::path(method(put, patch), path = "/products-services/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProductInput,
    responses((status = 200, body = ProductService), (status = 404, description = "not_found"),
        (status = 409, description = "conflict: code taken"), (status = 422, description = "validation_failed")))]
async fn update_product(
    clinic: Clinic<ProductsServices>,
    Path(id): Path<Uuid>,
    Json(input): Json<ProductInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let current = products::find_for_update(&mut tx, id).await.found()?;
    let (fields, category_ids) = checked(&mut tx, input, Some(current.fields)).await?;
    products::update(&mut tx, id, &fields)
        .await
        .on_constraint(CODE_TAKEN, code_taken)?;
    let product = finish(&mut tx, id, category_ids).await?;
    tx.commit().await?;
    Ok(ok(product))
}

/// Soft-deletes a catalogue act or product: no longer offered, past lines kept.
#[utoipa::path(delete, path = "/products-services/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_product(
    clinic: Clinic<ProductsServices>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin().await?;
    if !products::soft_delete(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies `input` onto `current` and checks that its categories are live
/// (locking them until the transaction ends); every problem is reported
/// together.
async fn checked(
    conn: &mut PgConnection,
    input: ProductInput,
    current: Option<ProductFields>,
) -> Result<(ProductFields, Option<Vec<Uuid>>), ApiError> {
    let category_ids = input.category_ids();
    let unknown = match &category_ids {
        Some(ids) if !ids.is_empty() => categories::unknown(conn, ids).await?,
        _ => Vec::new(),
    };
    let mut errors = match input.apply(current) {
        Ok(fields) if unknown.is_empty() => return Ok((fields, category_ids)),
        Ok(_) => FieldErrors::default(),
        Err(errors) => errors,
    };
    if !unknown.is_empty() {
        let ids: Vec<String> = unknown.iter().map(Uuid::to_string).collect();
        errors.add(
            "categoryIds",
            format!("not categories of this clinic: {}", ids.join(", ")),
        );
    }
    Err(errors.into())
}

/// Writes the category list, when given, and reads the row back.
async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    category_ids: Option<Vec<Uuid>>,
) -> Result<ProductService, ApiError> {
    if let Some(ids) = category_ids {
        products::set_categories(conn, id, &ids).await?;
    }
    products::find(conn, id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("product vanished while saved")))
}
