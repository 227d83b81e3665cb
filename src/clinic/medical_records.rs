//! Medical records: consultations, diagnoses, prescriptions, allergies,
//! notes, vaccinations and lab results about one patient. Their content is
//! never written to logs or to the audit trail (which names changed fields
//! only).

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

pub const RECORD_TYPES: &[&str] = &[
    "consultation",
    "diagnosis",
    "prescription",
    "allergy",
    "note",
    "vaccination",
    "lab_result",
];

pub const PATIENT_FK: &str = "medical_records_patient_id_fkey";
pub const PRACTITIONER_FK: &str = "medical_records_practitioner_id_fkey";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MedicalRecord {
    pub id: Uuid,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub fields: MedicalRecordFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct MedicalRecordFields {
    pub patient_id: Uuid,
    pub practitioner_id: Option<Uuid>,
    /// `consultation|diagnosis|prescription|allergy|note|vaccination|lab_result`
    pub record_type: String,
    pub title: Option<String>,
    pub content: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// A create or update request; on update, absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MedicalRecordInput {
    /// Set on creation; it cannot change afterwards.
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub patient_id: Patch<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub practitioner_id: Patch<Uuid>,
    /// Default `note`.
    #[serde(default)]
    #[schema(schema_with = record_type_schema)]
    pub record_type: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<200>)]
    pub title: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = v::schema::text_or_null::<100_000>)]
    pub content: Patch<String>,
    /// RFC 3339, default now.
    #[serde(default)]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Patch<String>,
}

fn record_type_schema() -> Object {
    v::schema::one_of(RECORD_TYPES, false)
}

/// The body of a create, for the OpenAPI document.
pub type NewMedicalRecord = Create<MedicalRecordInput>;

impl Creatable for MedicalRecordInput {
    const CREATE_NAME: &'static str = "NewMedicalRecord";
    const REQUIRED: &'static [&'static str] = &["patientId"];
}

impl MedicalRecordInput {
    /// The names of the fields this request sets or clears.
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("patientId", self.patient_id.is_present()),
            ("practitionerId", self.practitioner_id.is_present()),
            ("recordType", self.record_type.is_present()),
            ("title", self.title.is_present()),
            ("content", self.content.is_present()),
            ("recordedAt", self.recorded_at.is_present()),
        ])
    }

    /// Applies this request onto `current` (`None` when creating, where
    /// `recordedAt` defaults to `now`). A record says something: it needs a
    /// title or a content.
    pub fn apply(
        self,
        current: Option<&MedicalRecordFields>,
        now: DateTime<Utc>,
    ) -> Result<MedicalRecordFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        if let (Some(current), Patch::Value(id)) = (current, &self.patient_id) {
            if *id != current.patient_id {
                e.add(
                    "patientId",
                    "cannot be changed: a record stays with its patient",
                );
            }
        }
        let patient_id =
            self.patient_id
                .apply_required(current.map(|c| c.patient_id), Ok, "patientId", e);
        let practitioner_id = self.practitioner_id.apply(
            current.and_then(|c| c.practitioner_id),
            Ok,
            "practitionerId",
            e,
        );
        let record_type = self.record_type.apply_required(
            Some(current.map_or("note", |c| &c.record_type).to_owned()),
            v::one_of(RECORD_TYPES),
            "recordType",
            e,
        );
        // A title or content that was given but refused has its own error.
        let gave_text =
            matches!(self.title, Patch::Value(_)) || matches!(self.content, Patch::Value(_));
        let title = self.title.apply(
            current.and_then(|c| c.title.clone()),
            v::text(200),
            "title",
            e,
        );
        let content = self.content.apply(
            current.and_then(|c| c.content.clone()),
            v::text(100_000),
            "content",
            e,
        );
        if title.is_none() && content.is_none() && !gave_text {
            e.add("content", "a record needs a title or a content");
        }
        let recorded_at = self.recorded_at.apply_required(
            Some(current.map_or(now, |c| c.recorded_at)),
            v::timestamp,
            "recordedAt",
            e,
        );
        match (patient_id, record_type, recorded_at) {
            (Some(patient_id), Some(record_type), Some(recorded_at)) => {
                errors.finish(MedicalRecordFields {
                    patient_id,
                    practitioner_id,
                    record_type,
                    title,
                    content,
                    recorded_at,
                })
            }
            _ => Err(errors),
        }
    }
}

const COLUMNS: &str = "id, patient_id, practitioner_id, record_type, title, content, recorded_at, \
    created_at, updated_at";

const TABLE: Table = Table {
    name: "medical_records",
    alias: "medical_records",
    joins: "",
    columns: COLUMNS,
};

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<MedicalRecord>, sqlx::Error> {
    TABLE.find(conn, id, Lock::None).await
}

pub async fn find_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<MedicalRecord>, sqlx::Error> {
    TABLE.find(conn, id, Lock::Update).await
}

/// Live records, newest first, of one patient or of all.
pub async fn list(
    conn: &mut PgConnection,
    patient_id: Option<Uuid>,
    page: Page,
) -> Result<(Vec<MedicalRecord>, i64), sqlx::Error> {
    let condition = "deleted_at IS NULL AND ($1::uuid IS NULL OR patient_id = $1)";
    let order = "ORDER BY recorded_at DESC, id LIMIT $2 OFFSET $3";
    TABLE
        .list(conn, condition, order, page, |q| q.bind(patient_id))
        .await
}

pub async fn insert(
    conn: &mut PgConnection,
    fields: &MedicalRecordFields,
) -> Result<MedicalRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO medical_records (patient_id, practitioner_id, record_type, title, content,
            recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(fields.patient_id)
    .bind(fields.practitioner_id)
    .bind(&fields.record_type)
    .bind(&fields.title)
    .bind(&fields.content)
    .bind(fields.recorded_at)
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &MedicalRecordFields,
) -> Result<MedicalRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE medical_records SET practitioner_id = $1, record_type = $2, title = $3,
            content = $4, recorded_at = $5, updated_at = now()
         WHERE id = $6 AND deleted_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(fields.practitioner_id)
    .bind(&fields.record_type)
    .bind(&fields.title)
    .bind(&fields.content)
    .bind(fields.recorded_at)
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Soft-deletes a live record and returns its patient; `None` when there
/// was none. The row stays in the database, as medical retention requires.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    TABLE.soft_delete_returning(conn, id, "patient_id").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> MedicalRecordInput {
        serde_json::from_str(json).unwrap()
    }

    const PATIENT: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn defaults_to_a_note_recorded_now() {
        let now = Utc::now();
        let record = input(&format!(r#"{{"patientId": "{PATIENT}", "content": "ok"}}"#))
            .apply(None, now)
            .unwrap();
        assert_eq!(record.record_type, "note");
        assert_eq!(record.recorded_at, now);
        assert_eq!(record.practitioner_id, None);
    }

    #[test]
    fn names_every_bad_field() {
        let errors = input(r#"{"recordType": "gossip", "recordedAt": "yesterday"}"#)
            .apply(None, Utc::now())
            .unwrap_err()
            .into_details();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["patientId", "recordType", "content", "recordedAt"]);
    }

    #[test]
    fn an_update_keeps_the_rest_and_the_patient() {
        let now = Utc::now();
        let record = input(&format!(
            r#"{{"patientId": "{PATIENT}", "title": "Flu", "content": "rest"}}"#
        ))
        .apply(None, now)
        .unwrap();
        let updated = input(r#"{"content": null, "recordType": "diagnosis"}"#)
            .apply(Some(&record), now)
            .unwrap();
        assert_eq!(updated.title.as_deref(), Some("Flu"));
        assert_eq!(updated.content, None);
        assert_eq!(updated.record_type, "diagnosis");
        let moved = input(r#"{"patientId": "00000000-0000-0000-0000-000000000002"}"#)
            .apply(Some(&record), now);
        assert_eq!(moved.unwrap_err().into_details()[0].field, "patientId");
    }
}
