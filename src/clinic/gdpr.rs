//! The patient's rights under the GDPR: access and portability (export of
//! everything held about one patient) and erasure, limited by the records
//! French law obliges the clinic to keep:
//!
//! - medical records: 20 years after the patient's last visit (Code de la
//!   santé publique, art. R1112-7); for a patient under 8 at the last visit,
//!   at least until their 28th birthday. The last visit is the latest of the
//!   completed appointments' ends and the records' dates.
//! - issued invoices and credit notes: 10 years after the end of the year of
//!   issue (Code de commerce, art. L123-22, accounting documents).
//!
//! Quotes, consents, appointments and draft documents carry no such
//! obligation. While a retained item exists, erasure is refused, naming each
//! item and the day its retention ends; otherwise everything attached to the
//! patient is deleted and the patient row keeps only its id.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// Something the law obliges the clinic to keep, blocking an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionHold {
    /// `medical_record`, `invoice` or `credit_note`.
    pub kind: String,
    pub id: Uuid,
    pub retained_until: NaiveDate,
    pub rule: String,
}

const MEDICAL_RULE: &str =
    "Code de la santé publique R1112-7: 20 years after the last visit (until age 28 for a child under 8)";
const ACCOUNTING_RULE: &str =
    "Code de commerce L123-22: 10 years after the end of the year of issue";

/// Whether a patient (live or soft-deleted, not yet erased) exists; locks it.
pub async fn lock_patient(conn: &mut PgConnection, patient_id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM patients WHERE id = $1 AND erased_at IS NULL FOR UPDATE",
    )
    .bind(patient_id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Everything held about one patient, rows as stored (column names), so
/// that nothing is left out. The caller has locked the patient.
pub async fn export(conn: &mut PgConnection, patient_id: Uuid) -> Result<Value, sqlx::Error> {
    let held: Value = sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'patient', (SELECT to_jsonb(p) FROM patients p WHERE p.id = $1),
            'appointments', (SELECT COALESCE(jsonb_agg(to_jsonb(a) || jsonb_build_object('items',
                    (SELECT COALESCE(jsonb_agg(to_jsonb(i) ORDER BY i.created_at), '[]'::jsonb)
                       FROM appointment_items i WHERE i.appointment_id = a.id)) ORDER BY a.start_at), '[]'::jsonb)
                FROM appointments a WHERE a.patient_id = $1),
            'medicalRecords', (SELECT COALESCE(jsonb_agg(to_jsonb(m) ORDER BY m.recorded_at), '[]'::jsonb)
                FROM medical_records m WHERE m.patient_id = $1),
            'consents', (SELECT COALESCE(jsonb_agg(to_jsonb(c) || jsonb_build_object('template', to_jsonb(t))
                    ORDER BY c.created_at), '[]'::jsonb)
                FROM consents c JOIN consent_templates t ON t.id = c.template_id WHERE c.patient_id = $1),
            'documents', (SELECT COALESCE(jsonb_agg(to_jsonb(d) || jsonb_build_object('items',
                    (SELECT COALESCE(jsonb_agg(to_jsonb(i) ORDER BY i.position), '[]'::jsonb)
                       FROM document_items i WHERE i.document_id = d.id)) ORDER BY d.created_at), '[]'::jsonb)
                FROM documents d WHERE d.patient_id = $1)
        )",
    )
    .bind(patient_id)
    .fetch_one(&mut *conn)
    .await?;
    // Events still pending are sealed first, so that the export has them all.
    super::audit::seal(&mut *conn).await?;
    let audit = super::audit::about_patient(conn, patient_id).await?;
    let mut held = held;
    held["auditEvents"] = serde_json::to_value(audit).unwrap_or(Value::Null);
    held["exportedAt"] = json!(chrono::Utc::now());
    Ok(held)
}

/// What still has to be kept on `today`. The caller has locked the patient.
pub async fn retention_holds(
    conn: &mut PgConnection,
    patient_id: Uuid,
    today: NaiveDate,
) -> Result<Vec<RetentionHold>, sqlx::Error> {
    let medical: Vec<(Uuid, NaiveDate)> = sqlx::query_as(
        "WITH last_visit AS (
            SELECT GREATEST(
                (SELECT MAX(end_at) FROM appointments WHERE patient_id = $1 AND status = 'completed'),
                (SELECT MAX(recorded_at) FROM medical_records WHERE patient_id = $1))::date AS day),
         until AS (
            SELECT GREATEST(
                (l.day + interval '20 years')::date,
                CASE WHEN p.birth_date IS NOT NULL AND l.day < p.birth_date + interval '8 years'
                     THEN (p.birth_date + interval '28 years')::date END) AS day
              FROM last_visit l, patients p WHERE p.id = $1)
         SELECT m.id, u.day FROM medical_records m, until u
          WHERE m.patient_id = $1 AND u.day > $2 ORDER BY m.recorded_at",
    )
    .bind(patient_id)
    .bind(today)
    .fetch_all(&mut *conn)
    .await?;
    let accounting: Vec<(Uuid, String, NaiveDate)> = sqlx::query_as(
        "SELECT id, document_type,
                make_date(extract(year FROM COALESCE(issue_date, issued_at::date, created_at::date))::int + 10, 12, 31)
           FROM documents
          WHERE patient_id = $1 AND document_type IN ('invoice', 'credit_note') AND status <> 'draft'
            AND make_date(extract(year FROM COALESCE(issue_date, issued_at::date, created_at::date))::int + 10, 12, 31) > $2
          ORDER BY created_at",
    )
    .bind(patient_id)
    .bind(today)
    .fetch_all(conn)
    .await?;
    let medical = medical.into_iter().map(|(id, until)| RetentionHold {
        kind: "medical_record".into(),
        id,
        retained_until: until,
        rule: MEDICAL_RULE.into(),
    });
    let accounting = accounting
        .into_iter()
        .map(|(id, kind, until)| RetentionHold {
            kind,
            id,
            retained_until: until,
            rule: ACCOUNTING_RULE.into(),
        });
    Ok(medical.chain(accounting).collect())
}

/// How much an erasure removed (counts only, for the audit trail).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub appointments: u64,
    pub consents: u64,
    pub medical_records: u64,
    pub documents: u64,
}

/// Deletes everything attached to the patient and blanks every identifying
/// field of the patient row. The caller has locked the patient and checked
/// [`retention_holds`] is empty, in the same transaction.
pub async fn erase(conn: &mut PgConnection, patient_id: Uuid) -> Result<Erased, sqlx::Error> {
    let run = |sql: &'static str| sqlx::query(sql).bind(patient_id);
    let appointments = run("DELETE FROM appointments WHERE patient_id = $1")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let consents = run("DELETE FROM consents WHERE patient_id = $1")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let medical_records = run("DELETE FROM medical_records WHERE patient_id = $1")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    run("UPDATE documents SET source_document_id = NULL WHERE patient_id = $1 AND source_document_id IS NOT NULL")
        .execute(&mut *conn)
        .await?;
    let documents = run("DELETE FROM documents WHERE patient_id = $1")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    run(
        "UPDATE patients SET first_name = '[erased]', last_name = '[erased]', birth_date = NULL,
            gender = NULL, email = NULL, phone = NULL, address_line1 = NULL, address_line2 = NULL,
            address_city = NULL, address_postal_code = NULL, address_country = NULL,
            national_id = NULL, notes = NULL, status = 'inactive',
            deleted_at = COALESCE(deleted_at, now()), erased_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .execute(conn)
    .await?;
    Ok(Erased {
        appointments,
        consents,
        medical_records,
        documents,
    })
}
