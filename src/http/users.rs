//! `/users`: a clinic admin manages the clinic's staff accounts (central
//! `users` of the caller's clinic; another clinic's account is 404).
//!
//! - Emails are unique platform-wide whatever their case (409 `email_taken`);
//!   email and password are set at creation and not changed here.
//! - The clinic's last active admin cannot be demoted, deactivated or
//!   deleted (409 `conflict`); the check locks the clinic's admin rows.
//! - Deactivating or deleting an account revokes its refresh tokens at once
//!   and its access tokens on the next request (see `auth::accounts`); a
//!   role change makes the account's current access tokens fail (401), and a
//!   refresh gives one with the new role.
//! - Changes are recorded in the platform audit log (ids, role and field
//!   names only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::UserView;
use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Clinic, Users};
use crate::auth::roles::Role;
use crate::central::audit::{self, PlatformEvent};
use crate::central::refresh_tokens;
use crate::central::users::{self, NewUser, StaffChange, UserRecord};
use crate::clinic::practitioners;
use crate::validation::{self as v, FieldErrors, Patch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

/// A new staff account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStaffRequest {
    #[schema(schema_with = v::schema::email, required = true)]
    email: Option<String>,
    #[schema(schema_with = v::schema::password, required = true)]
    password: Option<String>,
    #[schema(schema_with = v::schema::text::<100>, required = true)]
    first_name: Option<String>,
    #[schema(schema_with = v::schema::text::<100>, required = true)]
    last_name: Option<String>,
    #[schema(schema_with = role_schema, required = true)]
    role: Option<String>,
}

/// Changes to an account; absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaffPatch {
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    first_name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text::<100>)]
    last_name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = role_schema)]
    role: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    is_active: Patch<bool>,
}

impl StaffPatch {
    fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("firstName", self.first_name.is_present()),
            ("lastName", self.last_name.is_present()),
            ("role", self.role.is_present()),
            ("isActive", self.is_active.is_present()),
        ])
    }

    fn apply(self, current: &UserRecord) -> Result<StaffChange, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let first_name = self.first_name.apply(
            Some(current.first_name.clone()),
            v::text(100),
            "firstName",
            e,
        );
        let last_name =
            self.last_name
                .apply(Some(current.last_name.clone()), v::text(100), "lastName", e);
        let role = self.role.apply(Some(current.role), clinic_role, "role", e);
        let is_active = self
            .is_active
            .apply(Some(current.is_active), Ok, "isActive", e);
        for (field, missing) in [
            ("firstName", first_name.is_none()),
            ("lastName", last_name.is_none()),
            ("role", role.is_none()),
            ("isActive", is_active.is_none()),
        ] {
            if missing {
                e.add(field, "cannot be cleared");
            }
        }
        let (Some(first_name), Some(last_name), Some(role), Some(is_active)) =
            (first_name, last_name, role, is_active)
        else {
            return Err(errors);
        };
        errors.finish(StaffChange {
            first_name,
            last_name,
            role,
            is_active,
        })
    }
}

/// The roles a clinic admin may give: never `super_admin`.
const CLINIC_ROLES: &[&str] = &["admin", "doctor", "secretary", "readonly"];

fn clinic_role(raw: String) -> Result<Role, String> {
    match raw.as_str() {
        "admin" => Ok(Role::Admin),
        "doctor" => Ok(Role::Doctor),
        "secretary" => Ok(Role::Secretary),
        "readonly" => Ok(Role::Readonly),
        "super_admin" => Err("super_admin cannot be given to a clinic account".into()),
        _ => Err(format!("must be one of: {}", CLINIC_ROLES.join(", "))),
    }
}

fn role_schema() -> Object {
    v::schema::one_of(CLINIC_ROLES, false)
}

fn email_taken() -> ApiError {
    ApiError::Conflict {
        code: "email_taken",
        message: "an account with this email already exists".into(),
    }
}

fn last_admin() -> ApiError {
    ApiError::conflict("the clinic's last active admin cannot be removed, deactivated or demoted")
}

/// The clinic's accounts, active or not (deleted ones are gone), by name;
/// `?search=` matches names and email.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [UserView]), (status = 403, description = "forbidden"),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_users(
    clinic: Clinic<Users>,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let (rows, total) = users::list_in_clinic(
        &state.databases.central,
        clinic.id.0,
        query.search(),
        page_request,
    )
    .await?;
    let rows: Vec<UserView> = rows.into_iter().map(UserView::from).collect();
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a staff account of the caller's clinic (admin only).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
    request_body = NewStaffRequest, responses((status = 201, body = UserView),
        (status = 409, description = "email_taken"), (status = 422, description = "validation_failed"),
        (status = 503, description = "server_busy")))]
async fn create_user(
    clinic: Clinic<Users>,
    State(state): State<AppState>,
    Json(body): Json<NewStaffRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let e = &mut errors;
    let email = v::required(body.email, v::email, "email", e);
    let password = v::required(body.password, v::password, "password", e);
    let first_name = v::required(body.first_name, v::text(100), "firstName", e);
    let last_name = v::required(body.last_name, v::text(100), "lastName", e);
    let role = v::required(body.role, clinic_role, "role", e);
    let (Some(email), Some(password), Some(first_name), Some(last_name), Some(role)) =
        (email, password, first_name, last_name, role)
    else {
        return Err(errors.into());
    };
    // Checked before the costly hash; the unique index still settles a race.
    if users::find_by_email(&state.databases.central, &email)
        .await?
        .is_some()
    {
        return Err(email_taken());
    }
    let password_hash = state.hasher.hash(password).await?;
    let mut tx = state.databases.central.begin().await?;
    let user = users::insert(
        &mut tx,
        &NewUser {
            id: Uuid::new_v4(),
            company_id: Some(clinic.id.0),
            email: &email,
            password_hash: &password_hash,
            first_name: &first_name,
            last_name: &last_name,
            role,
        },
    )
    .await
    .on_constraint("users_email_key", email_taken)?;
    record(&mut tx, &clinic, "staff.created", &user, &[]).await?;
    tx.commit().await?;
    Ok(created(UserView::from(user)))
}

/// One staff account of the caller's clinic.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = UserView), (status = 404, description = "not_found")))]
async fn get_user(
    clinic: Clinic<Users>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let user = users::find_in_clinic(&state.databases.central, clinic.id.0, id)
        .await
        .found()?;
    Ok(ok(UserView::from(user)))
}

/// Updates the given fields (firstName, lastName, role, isActive), by PUT or PATCH.
#[utoipa::path(method(put, patch), path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = StaffPatch,
    responses((status = 200, body = UserView), (status = 404, description = "not_found"),
        (status = 409, description = "conflict: last active admin"),
        (status = 422, description = "validation_failed")))]
async fn update_user(
    clinic: Clinic<Users>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(patch): Json<StaffPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = state.databases.central.begin().await?;
    let admins = users::lock_active_admins(&mut tx, clinic.id.0).await?;
    let current = users::find_in_clinic_for_update(&mut tx, clinic.id.0, id)
        .await
        .found()?;
    let fields = patch.present_fields();
    if fields.is_empty() {
        return Ok(ok(UserView::from(current)));
    }
    let change = patch.apply(&current)?;
    let stays_admin = change.is_active && change.role == Role::Admin;
    if current.is_active_admin() && !stays_admin && admins <= 1 {
        return Err(last_admin());
    }
    let user = users::update(&mut tx, id, &change).await?;
    if current.is_active && !user.is_active {
        refresh_tokens::revoke_all_for_user(&mut *tx, id).await?;
    }
    record(&mut tx, &clinic, "staff.updated", &user, &fields).await?;
    tx.commit().await?;
    state.accounts.forget(id);
    Ok(ok(UserView::from(user)))
}

/// Soft-deletes an account: it cannot log in, its sessions end, and any
/// practitioner linked to it is unlinked.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found"),
        (status = 409, description = "conflict: last active admin")))]
async fn delete_user(
    clinic: Clinic<Users>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    // The clinic side first, committed only once the account is gone.
    let mut clinic_tx = clinic.begin().await?;
    let mut tx = state.databases.central.begin().await?;
    let admins = users::lock_active_admins(&mut tx, clinic.id.0).await?;
    let current = users::find_in_clinic_for_update(&mut tx, clinic.id.0, id)
        .await
        .found()?;
    if current.is_active_admin() && admins <= 1 {
        return Err(last_admin());
    }
    practitioners::unlink_user(&mut clinic_tx, id).await?;
    users::soft_delete(&mut tx, id).await?;
    refresh_tokens::revoke_all_for_user(&mut *tx, id).await?;
    record(&mut tx, &clinic, "staff.deleted", &current, &[]).await?;
    tx.commit().await?;
    state.accounts.forget(id);
    clinic_tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A platform audit event about one account: ids, role and field names.
async fn record(
    conn: &mut PgConnection,
    clinic: &Clinic<Users>,
    action: &str,
    user: &UserRecord,
    fields: &[&str],
) -> Result<(), sqlx::Error> {
    audit::record(
        conn,
        PlatformEvent {
            action,
            actor_user_id: Some(clinic.caller.user_id),
            company_id: Some(clinic.id.0),
            client_addr: clinic.actor.client_addr.as_deref(),
            details: json!({"userId": user.id, "role": user.role, "fields": fields}),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(role: Role) -> UserRecord {
        UserRecord {
            id: Uuid::new_v4(),
            company_id: Some(Uuid::new_v4()),
            email: "a@b.fr".into(),
            password_hash: String::new(),
            first_name: "Ana".into(),
            last_name: "Lopez".into(),
            role,
            is_active: true,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn patch(json: &str) -> StaffPatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn super_admin_and_unknown_roles_are_refused() {
        assert!(clinic_role("super_admin".into()).is_err());
        assert!(clinic_role("Admin".into()).is_err());
        assert_eq!(clinic_role("readonly".into()), Ok(Role::Readonly));
    }

    #[test]
    fn a_patch_keeps_absent_fields_and_names_bad_ones() {
        let change = patch(r#"{"role": "doctor"}"#)
            .apply(&account(Role::Admin))
            .unwrap();
        assert_eq!(change.role, Role::Doctor);
        assert_eq!(change.first_name, "Ana");
        assert!(change.is_active);
        let errors = patch(r#"{"firstName": null, "isActive": null, "role": "super_admin"}"#)
            .apply(&account(Role::Admin))
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"firstName"));
        assert!(fields.contains(&"isActive"));
        assert!(fields.contains(&"role"));
    }
}
