//! `users`: staff accounts of every clinic, and the platform's super admins.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::roles::Role;

/// A staff account as stored (the hash never leaves the auth module).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "id, company_id, email, password_hash, first_name, last_name, role, is_active, created_at, updated_at";

pub struct NewUser<'a> {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
}

/// Inserts an account; a live account with the same email (any case)
/// violates `users_email_key`.
pub async fn insert(
    conn: &mut PgConnection,
    user: &NewUser<'_>,
) -> Result<UserRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO users (id, company_id, email, password_hash, first_name, last_name, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {USER_COLUMNS}"
    ))
    .bind(user.id)
    .bind(user.company_id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .bind(user.role)
    .fetch_one(conn)
    .await
}

/// The live account with this email, whatever its letter case.
pub async fn find_by_email(
    central: &PgPool,
    email: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL"
    ))
    .bind(email)
    .fetch_optional(central)
    .await
}

pub async fn find(central: &PgPool, id: Uuid) -> Result<Option<UserRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(central)
    .await
}

pub async fn record_login(central: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(id)
        .execute(central)
        .await?;
    Ok(())
}
