//! `/categories`: list, create, read, update, soft delete (which removes
//! the category from every product). Names are unique, whatever their case
//! (409).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::clinic::catalogue::categories::{
    self, Category, CategoryFields, CategoryInput, NewCategory, NAME_TAKEN,
};
use crate::http::error::{ApiError, Found, ResultExt};
use crate::http::extract::{created, ok, page, Json, Path, Query};
use crate::http::list::ListQuery;
use crate::http::state::AppState;
use crate::http::tenant::{Categories, Clinic};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(get_category, update_category, delete_category))
}

fn name_taken() -> ApiError {
    ApiError::conflict("another category of this clinic has this name")
}

/// Live categories by name; `?search=` matches the name.
#[utoipa::path(get, path = "/categories", tag = "catalogue", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [Category]),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_categories(
    clinic: Clinic<Categories>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin().await?;
    let (rows, total) = categories::list(&mut tx, query.search(), page_request).await?;
    tx.commit().await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a catalogue category.
#[utoipa::path(post, path = "/categories", tag = "catalogue", security(("bearer" = [])),
    request_body = NewCategory, responses((status = 201, body = Category),
        (status = 409, description = "conflict: name taken"), (status = 422, description = "validation_failed")))]
async fn create_category(
    clinic: Clinic<Categories>,
    Json(input): Json<CategoryInput>,
) -> Result<impl IntoResponse, ApiError> {
    let fields = input.apply(CategoryFields::default())?;
    let mut tx = clinic.begin().await?;
    let category = categories::insert(&mut tx, &fields)
        .await
        .on_constraint(NAME_TAKEN, name_taken)?;
    tx.commit().await?;
    Ok(created(category))
}

/// One catalogue category.
#[utoipa::path(get, path = "/categories/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Category), (status = 404, description = "not_found")))]
async fn get_category(
    clinic: Clinic<Categories>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let category = categories::find(&mut tx, id).await.found()?;
    tx.commit().await?;
    Ok(ok(category))
}

/// Updates the given fields (PUT and PATCH alike); `null` clears the description.
#[utoipa::path(method(put, patch), path = "/categories/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CategoryInput,
    responses((status = 200, body = Category), (status = 404, description = "not_found"),
        (status = 409, description = "conflict: name taken"), (status = 422, description = "validation_failed")))]
async fn update_category(
    clinic: Clinic<Categories>,
    Path(id): Path<Uuid>,
    Json(input): Json<CategoryInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let current = categories::find_for_update(&mut tx, id).await.found()?;
    let fields = input.apply(current.fields)?;
    let category = categories::update(&mut tx, id, &fields)
        .await
        .on_constraint(NAME_TAKEN, name_taken)?;
    tx.commit().await?;
    Ok(ok(category))
}

/// Soft-deletes the category and removes it from every product.
#[utoipa::path(delete, path = "/categories/{id}", tag = "catalogue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_category(
    clinic: Clinic<Categories>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin().await?;
    if !categories::soft_delete(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
