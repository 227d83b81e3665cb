//! `users`: staff accounts of every clinic, and the platform's super admins.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::notify::{self, Change};
use crate::auth::roles::Role;
use crate::clinic::{like_pattern, Page};

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

/// What the per-request account check needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Standing {
    pub role: Role,
    pub company_id: Option<Uuid>,
    pub is_active: bool,
}

/// The standing of a live account; `None` when deleted or unknown.
pub async fn standing(central: &PgPool, id: Uuid) -> Result<Option<Standing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT role, company_id, is_active FROM users WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(central)
    .await
}

impl UserRecord {
    pub fn is_active_admin(&self) -> bool {
        self.is_active && self.role == Role::Admin
    }
}

/// A clinic's live accounts, by name; `search` matches names and email.
pub async fn list_in_clinic(
    central: &PgPool,
    company_id: Uuid,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<UserRecord>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter = "company_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL
        OR first_name ILIKE $2 OR last_name ILIKE $2 OR email ILIKE $2
        OR (first_name || ' ' || last_name) ILIKE $2 OR (last_name || ' ' || first_name) ILIKE $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM users WHERE {filter}"))
        .bind(company_id)
        .bind(&pattern)
        .fetch_one(central)
        .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {filter}
         ORDER BY lower(last_name), lower(first_name), id LIMIT $3 OFFSET $4"
    ))
    .bind(company_id)
    .bind(&pattern)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(central)
    .await?;
    Ok((rows, total))
}

/// A live account of one clinic; another clinic's account is `None`.
pub async fn find_in_clinic(
    central: &PgPool,
    company_id: Uuid,
    id: Uuid,
) -> Result<Option<UserRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL"
    ))
    .bind(id)
    .bind(company_id)
    .fetch_optional(central)
    .await
}

/// Locks the clinic's active admins, in id order, and counts them. Every
/// change that could remove an admin calls this first, before locking the
/// account it changes: two such changes then queue on the same rows (never
/// deadlock), and the second counts the admins the first left.
pub async fn lock_active_admins(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<usize, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users
          WHERE company_id = $1 AND role = 'admin' AND is_active AND deleted_at IS NULL
          ORDER BY id FOR UPDATE",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await?;
    Ok(ids.len())
}

/// A live account of one clinic, locked until the transaction ends.
pub async fn find_in_clinic_for_update(
    conn: &mut PgConnection,
    company_id: Uuid,
    id: Uuid,
) -> Result<Option<UserRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users
          WHERE id = $1 AND company_id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .bind(company_id)
    .fetch_optional(conn)
    .await
}

/// What a clinic admin may change on an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffChange {
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub is_active: bool,
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    change: &StaffChange,
) -> Result<UserRecord, sqlx::Error> {
    let user = sqlx::query_as(&format!(
        "UPDATE users SET first_name = $2, last_name = $3, role = $4, is_active = $5,
                updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
    ))
    .bind(id)
    .bind(&change.first_name)
    .bind(&change.last_name)
    .bind(change.role)
    .bind(change.is_active)
    .fetch_one(&mut *conn)
    .await?;
    notify::send(conn, Change::Account(id)).await?;
    Ok(user)
}

/// Soft-deletes an account: it can no longer log in, and its email is free
/// for a new account.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET deleted_at = now(), is_active = false, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    notify::send(conn, Change::Account(id)).await
}

/// Deletes every account of a clinic (its refresh tokens go with them), so
/// that their emails are free; the number deleted.
pub async fn delete_all_of_clinic(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let deleted: Vec<Uuid> =
        sqlx::query_scalar("DELETE FROM users WHERE company_id = $1 RETURNING id")
            .bind(company_id)
            .fetch_all(&mut *conn)
            .await?;
    notify::send_accounts(conn, &deleted).await?;
    Ok(deleted.len() as u64)
}

/// Replaces an account's password hash.
pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    notify::send(conn, Change::Account(id)).await
}

/// The live account with this email, locked until the transaction ends.
pub async fn find_by_email_for_update(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<UserRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users
          WHERE lower(email) = lower($1) AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// Switches a live account on or off (nothing else changes).
pub async fn set_active(
    conn: &mut PgConnection,
    id: Uuid,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET is_active = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(active)
    .execute(&mut *conn)
    .await?;
    notify::send(conn, Change::Account(id)).await
}

/// Locks the active super admins, in id order, and counts them: like
/// [`lock_active_admins`], so that two deactivations never leave none.
pub async fn lock_active_super_admins(conn: &mut PgConnection) -> Result<usize, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users
          WHERE role = 'super_admin' AND is_active AND deleted_at IS NULL
          ORDER BY id FOR UPDATE",
    )
    .fetch_all(conn)
    .await?;
    Ok(ids.len())
}

/// A live account as an operator lists it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub clinic_id: Option<Uuid>,
    pub is_active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The live super admins (`clinic` `None`) or one clinic's live accounts,
/// oldest first.
pub async fn list_accounts(
    central: &PgPool,
    clinic: Option<Uuid>,
) -> Result<Vec<AccountSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, role, company_id AS clinic_id, is_active, last_login_at, created_at
           FROM users
          WHERE deleted_at IS NULL
            AND CASE WHEN $1::uuid IS NULL THEN role = 'super_admin' ELSE company_id = $1 END
          ORDER BY created_at, id",
    )
    .bind(clinic)
    .fetch_all(central)
    .await
}

/// Active, provisioned clinics with no active `admin` account: nobody can
/// manage their staff.
pub async fn clinics_without_admin(central: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.id FROM companies c
          WHERE c.is_active AND c.deleted_at IS NULL AND c.provisioning_status = 'ready'
            AND NOT EXISTS (SELECT 1 FROM users u
                             WHERE u.company_id = c.id AND u.role = 'admin'
                               AND u.is_active AND u.deleted_at IS NULL)
          ORDER BY c.created_at, c.id",
    )
    .fetch_all(central)
    .await
}
