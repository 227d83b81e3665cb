//! The queries on `documents` and `document_items`. Every function runs in
//! the caller's transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::amounts::Amounts;
use super::input::{DocumentInput, Header, Line, Lines};
use super::lifecycle::{DocumentStatus, DocumentType};
use crate::clinic::{fetch_list, like_pattern, list_statement, Page};
use crate::validation::FieldErrors;

/// A document as the API returns it, with its lines.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: Uuid,
    pub document_type: DocumentType,
    pub patient_id: Uuid,
    /// `Q-2026-0001`, `INV-2026-0001`, `AV-2026-0001`; null while draft.
    pub number: Option<String>,
    pub status: DocumentStatus,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub currency: String,
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    /// The quote an invoice came from, or the invoice a credit note cancels.
    pub source_document_id: Option<Uuid>,
    /// For a cancelled invoice, the credit note that cancels it.
    pub credit_note_id: Option<Uuid>,
    /// When it left draft.
    pub issued_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub items: Vec<DocumentItem>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One line of a document, with its computed amounts.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DocumentItem {
    pub id: Uuid,
    #[serde(skip)]
    pub document_id: Uuid,
    pub product_service_id: Option<Uuid>,
    pub description: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    /// Basis points (2000 = 20 %).
    pub vat_rate: i32,
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
}

impl Document {
    pub fn header(&self) -> Header {
        Header {
            document_type: self.document_type,
            patient_id: self.patient_id,
            issue_date: self.issue_date,
            due_date: self.due_date,
            currency: self.currency.clone(),
        }
    }

    /// Its lines as stored, to copy onto another document.
    pub fn lines(&self) -> Lines {
        Lines {
            lines: self.items.iter().map(DocumentItem::line).collect(),
            totals: self.totals(),
        }
    }

    pub fn totals(&self) -> Amounts {
        Amounts {
            subtotal_cents: self.subtotal_cents,
            tax_cents: self.tax_cents,
            total_cents: self.total_cents,
        }
    }
}

impl DocumentItem {
    fn line(&self) -> Line {
        Line {
            product_service_id: self.product_service_id,
            description: self.description.clone(),
            quantity: self.quantity,
            unit_price_cents: self.unit_price_cents,
            vat_rate: self.vat_rate,
            amounts: Amounts {
                subtotal_cents: self.subtotal_cents,
                tax_cents: self.tax_cents,
                total_cents: self.total_cents,
            },
        }
    }
}

/// What documents need of the clinic's settings.
pub struct ClinicDefaults {
    pub currency: String,
    /// Today in the clinic's timezone: the default issue date.
    pub today: NaiveDate,
}

pub async fn clinic_defaults(conn: &mut PgConnection) -> Result<ClinicDefaults, sqlx::Error> {
    let (currency, today): (String, NaiveDate) = sqlx::query_as(
        "SELECT currency::text, (now() AT TIME ZONE timezone)::date FROM clinic_settings WHERE id = 1",
    )
    .fetch_one(conn)
    .await?;
    Ok(ClinicDefaults { currency, today })
}

/// Checks that the patient and catalogue rows `input` names are live rows
/// of this clinic; the problems found, by field.
pub async fn check_references(
    conn: &mut PgConnection,
    input: &DocumentInput,
) -> Result<FieldErrors, sqlx::Error> {
    let mut errors = FieldErrors::default();
    if let Some(patient) = input.patient_reference() {
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1 AND deleted_at IS NULL)",
        )
        .bind(patient)
        .fetch_one(&mut *conn)
        .await?;
        if !live {
            errors.add("patientId", "no such patient in this clinic");
        }
    }
    let references = input.catalogue_references();
    if !references.is_empty() {
        let ids: Vec<Uuid> = references.iter().map(|(_, id)| *id).collect();
        let live: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM products_services WHERE id = ANY($1) AND deleted_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(conn)
        .await?;
        for (i, id) in references {
            if !live.contains(&id) {
                errors.add(
                    &format!("items[{i}].productServiceId"),
                    "no such product or service in this clinic",
                );
            }
        }
    }
    Ok(errors)
}

const COLUMNS: &str = "d.id, d.document_type, d.patient_id, d.number, d.status, d.issue_date,
    d.due_date, d.currency::text AS currency, d.subtotal_cents, d.tax_cents, d.total_cents,
    d.source_document_id,
    (SELECT c.id FROM documents c WHERE c.source_document_id = d.id
        AND c.document_type = 'credit_note' AND c.deleted_at IS NULL) AS credit_note_id,
    d.issued_at, d.created_at, d.updated_at";

/// A live document with its lines.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Document>, sqlx::Error> {
    let document: Option<Document> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents d WHERE d.id = $1 AND d.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut document) = document else {
        return Ok(None);
    };
    document.items = items_of(conn, &[id]).await?;
    Ok(Some(document))
}

/// Locks a live document until the transaction ends; `false` when there is none.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM documents WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// List filters, each optional.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub document_type: Option<DocumentType>,
    pub status: Option<DocumentStatus>,
    pub patient_id: Option<Uuid>,
    /// Matches the number.
    pub search: Option<&'a str>,
}

/// Live documents, newest first.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter<'_>,
    page: Page,
) -> Result<(Vec<Document>, i64), sqlx::Error> {
    let condition = "d.deleted_at IS NULL
        AND ($1::text IS NULL OR d.document_type = $1)
        AND ($2::text IS NULL OR d.status = $2)
        AND ($3::uuid IS NULL OR d.patient_id = $3)
        AND ($4::text IS NULL OR d.number ILIKE $4)";
    let pattern = filter.search.map(like_pattern);
    let document_type = filter.document_type.map(DocumentType::as_str);
    let status = filter.status.map(DocumentStatus::as_str);
    let statement = list_statement(
        "documents d",
        condition,
        &format!("SELECT {COLUMNS} FROM documents d"),
        "ORDER BY d.created_at DESC, d.id DESC LIMIT $5 OFFSET $6",
    );
    let query = sqlx::query(&statement)
        .bind(document_type)
        .bind(status)
        .bind(filter.patient_id)
        .bind(&pattern)
        .bind(page.limit)
        .bind(page.offset);
    let (mut documents, total) = fetch_list::<Document>(&mut *conn, query).await?;
    let ids: Vec<Uuid> = documents.iter().map(|d| d.id).collect();
    let mut items = items_of(conn, &ids).await?;
    for document in &mut documents {
        let (mine, rest) = items
            .into_iter()
            .partition(|i| i.document_id == document.id);
        document.items = mine;
        items = rest;
    }
    Ok((documents, total))
}

async fn items_of(
    conn: &mut PgConnection,
    documents: &[Uuid],
) -> Result<Vec<DocumentItem>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, document_id, product_service_id, description, quantity, unit_price_cents,
                vat_rate, subtotal_cents, tax_cents, total_cents
           FROM document_items WHERE document_id = ANY($1) ORDER BY document_id, position",
    )
    .bind(documents)
    .fetch_all(conn)
    .await
}

/// A document to insert: a draft, or (for credit notes) an issued one.
pub struct NewDocument<'a> {
    pub header: &'a Header,
    pub lines: &'a Lines,
    pub status: DocumentStatus,
    pub number: Option<&'a str>,
    pub source_document_id: Option<Uuid>,
}

pub async fn insert(conn: &mut PgConnection, new: NewDocument<'_>) -> Result<Uuid, sqlx::Error> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO documents (document_type, patient_id, number, status, issue_date, due_date,
            currency, source_document_id, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END)
         RETURNING id",
    )
    .bind(new.header.document_type)
    .bind(new.header.patient_id)
    .bind(new.number)
    .bind(new.status)
    .bind(new.header.issue_date)
    .bind(new.header.due_date)
    .bind(&new.header.currency)
    .bind(new.source_document_id)
    .fetch_one(&mut *conn)
    .await?;
    replace_lines(conn, id, new.lines).await?;
    Ok(id)
}

/// Writes a draft's header fields.
pub async fn update_header(
    conn: &mut PgConnection,
    id: Uuid,
    header: &Header,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE documents SET patient_id = $2, issue_date = $3, due_date = $4, currency = $5,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(header.patient_id)
    .bind(header.issue_date)
    .bind(header.due_date)
    .bind(&header.currency)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces a document's lines and its totals.
pub async fn replace_lines(
    conn: &mut PgConnection,
    id: Uuid,
    lines: &Lines,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM document_items WHERE document_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let column = |f: fn(&Line) -> i64| lines.lines.iter().map(f).collect::<Vec<i64>>();
    let positions: Vec<i32> = (1..).take(lines.lines.len()).collect();
    sqlx::query(
        "INSERT INTO document_items (document_id, position, product_service_id, description,
            quantity, unit_price_cents, vat_rate, subtotal_cents, tax_cents, total_cents)
         SELECT $1, * FROM UNNEST($2::int[], $3::uuid[], $4::text[], $5::int[], $6::bigint[],
            $7::int[], $8::bigint[], $9::bigint[], $10::bigint[])",
    )
    .bind(id)
    .bind(&positions)
    .bind(
        lines
            .lines
            .iter()
            .map(|l| l.product_service_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .lines
            .iter()
            .map(|l| l.description.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(lines.lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .bind(column(|l| l.unit_price_cents))
    .bind(lines.lines.iter().map(|l| l.vat_rate).collect::<Vec<_>>())
    .bind(column(|l| l.amounts.subtotal_cents))
    .bind(column(|l| l.amounts.tax_cents))
    .bind(column(|l| l.amounts.total_cents))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE documents SET subtotal_cents = $2, tax_cents = $3, total_cents = $4,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(lines.totals.subtotal_cents)
    .bind(lines.totals.tax_cents)
    .bind(lines.totals.total_cents)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a draft as sent with its number and issue date.
pub async fn issue(
    conn: &mut PgConnection,
    id: Uuid,
    number: &str,
    issue_date: NaiveDate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE documents SET status = 'sent', number = $2, issue_date = $3, issued_at = now(),
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(number)
    .bind(issue_date)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: DocumentStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE documents SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE documents SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a live invoice was already made from `quote`.
pub async fn has_invoice_from(conn: &mut PgConnection, quote: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM documents WHERE source_document_id = $1
            AND document_type = 'invoice' AND deleted_at IS NULL)",
    )
    .bind(quote)
    .fetch_one(conn)
    .await
}
