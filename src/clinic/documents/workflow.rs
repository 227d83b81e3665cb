//! The document operations that change state: create, update (editing a
//! draft, or a status change with what it implies: numbering, a credit
//! note), delete a draft, convert an accepted quote. The caller owns the
//! transaction, so a failure at any step, even after a number was taken,
//! undoes everything (and gives the number back).

use chrono::Datelike;
use uuid::Uuid;

use sqlx::PgConnection;

use super::amounts::Amounts;
use super::input::{Checked, DocumentInput, Header, Line, Lines};
use super::lifecycle::{transition, DocumentStatus, DocumentType, Transition};
use super::numbering;
use super::store::{self, ClinicDefaults, Document, NewDocument};
use crate::validation::FieldErrors;

/// Partial unique index: one live invoice per quote (migration 0005).
pub const ONE_INVOICE_PER_QUOTE: &str = "documents_invoice_of_quote_key";

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not found")]
    NotFound,
    /// An invalid state change or an edit of an issued document.
    #[error("{0}")]
    Conflict(String),
    #[error("some fields are invalid")]
    Invalid(FieldErrors),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

impl From<FieldErrors> for DocumentError {
    fn from(errors: FieldErrors) -> Self {
        DocumentError::Invalid(errors)
    }
}

/// What a change did, for the response and the audit trail.
pub struct Changed {
    pub document: Document,
    /// Names of the fields written (never values).
    pub fields: Vec<&'static str>,
    /// The credit note issued by cancelling an invoice.
    pub credit_note: Option<Document>,
}

/// Creates a document (a draft, or issued at once when `status` is `sent`).
pub async fn create(
    conn: &mut PgConnection,
    input: DocumentInput,
) -> Result<Changed, DocumentError> {
    let defaults = store::clinic_defaults(conn).await?;
    let errors = store::check_references(conn, &input).await?;
    let mut fields = input.present_fields();
    let Checked {
        header,
        lines,
        status,
    } = input.apply(None, &defaults.currency, errors)?;
    let id = store::insert(
        conn,
        NewDocument {
            header: &header,
            lines: &lines.unwrap_or_default(),
            status: DocumentStatus::Draft,
            number: None,
            source_document_id: None,
        },
    )
    .await?;
    if status == Some(DocumentStatus::Sent) {
        issue(conn, id, &defaults, &mut fields).await?;
    }
    finish(conn, id, fields, None).await
}

/// Applies an update: a draft takes any field (and `status: sent` issues
/// it once the other fields are applied); an issued document only takes a
/// status change allowed by [`transition`].
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    input: DocumentInput,
) -> Result<Changed, DocumentError> {
    let current = lock(conn, id).await?;
    let mut fields = input.present_fields();
    let target = input.status();
    if current.status != DocumentStatus::Draft {
        let Some(to) = target?.filter(|_| fields == ["status"]) else {
            return Err(DocumentError::Conflict(
                "an issued document cannot be edited: only its status can change".into(),
            ));
        };
        let transition = allowed(&current, to)?;
        store::set_status(conn, id, to).await?;
        // (Issuing only leaves draft, which the branch below handles.)
        let credit_note = match transition {
            Transition::CancelInvoice => Some(issue_credit_note(conn, &current).await?),
            Transition::Plain | Transition::Issue => None,
        };
        return finish(conn, id, fields, credit_note).await;
    }
    // A bad status value is reported by `apply` with the other fields.
    let issuing = match target {
        Ok(Some(to)) if to != DocumentStatus::Draft => allowed(&current, to)? == Transition::Issue,
        _ => false,
    };
    let defaults = store::clinic_defaults(conn).await?;
    let errors = store::check_references(conn, &input).await?;
    let checked = input.apply(Some(&current.header()), &defaults.currency, errors)?;
    store::update_header(conn, id, &checked.header).await?;
    if let Some(lines) = &checked.lines {
        store::replace_lines(conn, id, lines).await?;
    }
    if issuing {
        issue(conn, id, &defaults, &mut fields).await?;
    }
    finish(conn, id, fields, None).await
}

/// Soft-deletes a draft; issued documents are kept (409). Returns the
/// deleted document.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<Document, DocumentError> {
    let current = lock(conn, id).await?;
    if current.status != DocumentStatus::Draft {
        return Err(DocumentError::Conflict(
            "an issued document cannot be deleted".into(),
        ));
    }
    store::soft_delete(conn, id).await?;
    Ok(current)
}

/// Makes a draft invoice from an accepted quote: same patient, lines and
/// currency, `sourceDocumentId` = the quote. Once per quote (while that
/// invoice is not deleted).
pub async fn convert(conn: &mut PgConnection, id: Uuid) -> Result<Document, DocumentError> {
    let quote = lock(conn, id).await?;
    if quote.document_type != DocumentType::Quote {
        return Err(DocumentError::Conflict(
            "only a quote can be converted".into(),
        ));
    }
    if quote.status != DocumentStatus::Accepted {
        return Err(DocumentError::Conflict(
            "only an accepted quote can be converted".into(),
        ));
    }
    if store::has_invoice_from(conn, id).await? {
        return Err(DocumentError::Conflict(
            "this quote has already been converted into an invoice".into(),
        ));
    }
    let header = Header {
        document_type: DocumentType::Invoice,
        issue_date: None,
        due_date: None,
        ..quote.header()
    };
    let inserted = store::insert(
        conn,
        NewDocument {
            header: &header,
            lines: &quote.lines(),
            status: DocumentStatus::Draft,
            number: None,
            source_document_id: Some(id),
        },
    )
    .await;
    let invoice = match inserted {
        Err(sqlx::Error::Database(db)) if db.constraint() == Some(ONE_INVOICE_PER_QUOTE) => {
            return Err(DocumentError::Conflict(
                "this quote has already been converted into an invoice".into(),
            ))
        }
        other => other?,
    };
    find(conn, invoice).await
}

async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Document, DocumentError> {
    if !store::lock(conn, id).await? {
        return Err(DocumentError::NotFound);
    }
    find(conn, id).await
}

async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Document, DocumentError> {
    store::find(conn, id).await?.ok_or(DocumentError::NotFound)
}

fn allowed(current: &Document, to: DocumentStatus) -> Result<Transition, DocumentError> {
    transition(current.document_type, current.status, to).ok_or_else(|| {
        DocumentError::Conflict(format!(
            "this {} cannot go from {} to {}",
            current.document_type.as_str().replace('_', " "),
            current.status.as_str(),
            to.as_str()
        ))
    })
}

/// Numbers a (locked, up to date) draft and marks it sent. The issue date
/// defaults to today in the clinic's timezone; its year picks the counter.
async fn issue(
    conn: &mut PgConnection,
    id: Uuid,
    defaults: &ClinicDefaults,
    fields: &mut Vec<&'static str>,
) -> Result<(), DocumentError> {
    let draft = find(conn, id).await?;
    let mut errors = FieldErrors::default();
    if draft.items.is_empty() {
        errors.add("items", "a document needs at least one item to be issued");
    }
    let issue_date = draft.issue_date.unwrap_or(defaults.today);
    if draft.due_date.is_some_and(|due| due < issue_date) {
        errors.add("dueDate", "must not be before issueDate");
    }
    errors.finish(())?;
    let number = numbering::take(conn, draft.document_type, issue_date.year()).await?;
    store::issue(conn, id, &number, issue_date).await?;
    for field in ["number", "issueDate", "issuedAt"] {
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(())
}

/// Issues the credit note cancelling `invoice`: dated today, already sent,
/// numbered `AV-YYYY-NNNN`, with the invoice's lines and totals negated
/// (same quantities, negative unit prices and amounts).
async fn issue_credit_note(
    conn: &mut PgConnection,
    invoice: &Document,
) -> Result<Document, DocumentError> {
    let defaults = store::clinic_defaults(conn).await?;
    let header = Header {
        document_type: DocumentType::CreditNote,
        issue_date: Some(defaults.today),
        due_date: None,
        ..invoice.header()
    };
    let lines = Lines {
        lines: invoice.lines().lines.into_iter().map(negated).collect(),
        totals: invoice.totals().negated(),
    };
    let number = numbering::take(conn, DocumentType::CreditNote, defaults.today.year()).await?;
    let id = store::insert(
        conn,
        NewDocument {
            header: &header,
            lines: &lines,
            status: DocumentStatus::Sent,
            number: Some(&number),
            source_document_id: Some(invoice.id),
        },
    )
    .await?;
    find(conn, id).await
}

fn negated(line: Line) -> Line {
    Line {
        unit_price_cents: line.unit_price_cents.saturating_neg(),
        amounts: Amounts::negated(line.amounts),
        ..line
    }
}

/// Reads the document back as it now stands.
async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    fields: Vec<&'static str>,
    credit_note: Option<Document>,
) -> Result<Changed, DocumentError> {
    Ok(Changed {
        document: find(conn, id).await?,
        fields,
        credit_note,
    })
}
