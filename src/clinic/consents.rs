//! Patients' consents, each given on one template version. The workflow is
//! `pending -> signed -> revoked`; the server stamps `signedAt` and
//! `revokedAt` when the status changes. A consent keeps pointing at the
//! version it was signed on, and every read carries that version's text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::openapi::schema::Object;
use utoipa::ToSchema;
use uuid::Uuid;

use super::table::{Lock, Table};
use super::Page;
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Patch};

pub const STATUSES: &[&str] = &["pending", "signed", "revoked"];
pub const PATIENT_FK: &str = "consents_patient_id_fkey";
pub const TEMPLATE_FK: &str = "consents_template_id_fkey";

/// Why a consent in status `from` may not move to `to`, if it may not.
/// A pending consent was never given, so it cannot be revoked (delete it
/// instead); a revoked one is never signed again (ask for a new consent).
pub fn refusal(from: &str, to: &str) -> Option<&'static str> {
    match (from, to) {
        _ if from == to => None,
        ("pending", "signed") | ("signed", "revoked") => None,
        ("pending", "revoked") => {
            Some("only a signed consent can be revoked; delete a pending one")
        }
        ("revoked", "signed") => {
            Some("a revoked consent cannot be signed again; ask for a new consent")
        }
        (_, "pending") => Some("a consent that was signed cannot go back to pending"),
        _ => Some("this status change is not allowed"),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The template version the consent is given on.
    pub template_id: Uuid,
    /// That version's text, whatever became of the template since.
    #[sqlx(flatten)]
    pub template: ConsentText,
    /// `pending|signed|revoked`
    pub status: String,
    pub signed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The template version a consent points at.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ConsentText {
    pub family_id: Uuid,
    pub version: i32,
    pub title: String,
    pub body: String,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentInput {
    /// Set on creation; it cannot change afterwards.
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub patient_id: Patch<Uuid>,
    /// The current version of a template; can change while pending.
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub template_id: Patch<Uuid>,
    /// Default `pending`; a new consent is `pending` or `signed`.
    #[serde(default)]
    #[schema(schema_with = status_schema)]
    pub status: Patch<String>,
}

fn status_schema() -> Object {
    v::schema::one_of(STATUSES, false)
}

/// The body of a create, for the OpenAPI document.
pub type NewConsent = Create<ConsentInput>;

impl Creatable for ConsentInput {
    const CREATE_NAME: &'static str = "NewConsent";
    const REQUIRED: &'static [&'static str] = &["patientId", "templateId"];
}

/// What a consent holds that a request may set, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFields {
    pub patient_id: Uuid,
    pub template_id: Uuid,
    pub status: String,
}

impl ConsentInput {
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("patientId", self.patient_id.is_present()),
            ("templateId", self.template_id.is_present()),
            ("status", self.status.is_present()),
        ])
    }

    /// Applies this request onto `current` (`None` when creating: a new
    /// consent is pending, or signed when recorded as already given).
    pub fn apply(self, current: Option<&ConsentFields>) -> Result<ConsentFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        if let (Some(current), Patch::Value(id)) = (current, &self.patient_id) {
            if *id != current.patient_id {
                e.add(
                    "patientId",
                    "cannot be changed: ask the other patient for a new consent",
                );
            }
        }
        let patient_id =
            self.patient_id
                .apply_required(current.map(|c| c.patient_id), Ok, "patientId", e);
        let template_id =
            self.template_id
                .apply_required(current.map(|c| c.template_id), Ok, "templateId", e);
        let status = self.status.apply_required(
            Some(current.map_or("pending", |c| &c.status).to_owned()),
            v::one_of(STATUSES),
            "status",
            e,
        );
        if current.is_none() && status.as_deref() == Some("revoked") {
            e.add("status", "a new consent is pending or signed");
        }
        match (patient_id, template_id, status) {
            (Some(patient_id), Some(template_id), Some(status)) => errors.finish(ConsentFields {
                patient_id,
                template_id,
                status,
            }),
            _ => Err(errors),
        }
    }
}

impl Consent {
    pub fn fields(&self) -> ConsentFields {
        ConsentFields {
            patient_id: self.patient_id,
            template_id: self.template_id,
            status: self.status.clone(),
        }
    }
}

/// The consent columns with its template version's text (read even when
/// that version was deleted since: it is what the patient was shown).
const TABLE: Table = Table {
    name: "consents",
    alias: "c",
    joins: "JOIN consent_templates t ON t.id = c.template_id",
    columns: "c.id, c.patient_id, c.template_id, c.status, c.signed_at, c.revoked_at,
        c.created_at, c.updated_at, t.family_id, t.version, t.title, t.body",
};

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Consent>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

/// A live consent, its row locked for update (not its template's).
pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Consent>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Live consents, newest first, of one patient or of all.
pub async fn list(
    conn: &mut PgConnection,
    patient_id: Option<Uuid>,
    page: Page,
) -> Result<(Vec<Consent>, i64), sqlx::Error> {
    let condition = "c.deleted_at IS NULL AND ($1::uuid IS NULL OR c.patient_id = $1)";
    let order = "ORDER BY c.created_at DESC, c.id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, condition, order, page, |q| q.bind(patient_id))
        .await
}

/// Inserts a consent; a signed one is stamped now.
pub async fn insert(conn: &mut PgConnection, fields: &ConsentFields) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO consents (patient_id, template_id, status, signed_at)
         VALUES ($1, $2, $3, CASE WHEN $3 = 'signed' THEN now() END) RETURNING id",
    )
    .bind(fields.patient_id)
    .bind(fields.template_id)
    .bind(&fields.status)
    .fetch_one(conn)
    .await
}

/// Stores `fields`, stamping `signedAt` / `revokedAt` when the status
/// reaches them.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &ConsentFields,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consents SET template_id = $1, status = $2,
            signed_at = CASE WHEN $2 = 'signed' AND signed_at IS NULL THEN now() ELSE signed_at END,
            revoked_at = CASE WHEN $2 = 'revoked' AND revoked_at IS NULL THEN now() ELSE revoked_at END,
            updated_at = now()
          WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(fields.template_id)
    .bind(&fields.status)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Soft-deletes a live consent (the caller checks it is pending).
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    TABLE.soft_delete(conn, id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> ConsentInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_workflow_only_moves_forward() {
        assert_eq!(refusal("pending", "signed"), None);
        assert_eq!(refusal("signed", "revoked"), None);
        assert_eq!(refusal("signed", "signed"), None);
        for (from, to) in [
            ("pending", "revoked"),
            ("revoked", "signed"),
            ("signed", "pending"),
            ("revoked", "pending"),
        ] {
            assert!(refusal(from, to).is_some(), "{from} -> {to}");
        }
    }

    #[test]
    fn a_new_consent_is_pending_by_default_and_never_revoked() {
        let ids = r#""patientId": "00000000-0000-0000-0000-000000000001",
            "templateId": "00000000-0000-0000-0000-000000000002""#;
        let fields = input(&format!("{{{ids}}}")).apply(None).unwrap();
        assert_eq!(fields.status, "pending");
        let errors = input(&format!(r#"{{{ids}, "status": "revoked"}}"#))
            .apply(None)
            .unwrap_err()
            .into_details();
        assert_eq!(errors[0].field, "status");
        let errors = input("{}").apply(None).unwrap_err().into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["patientId", "templateId"]);
    }
}
