//! Legal numbering: per clinic (each clinic has its own database), document
//! type and calendar year of the issue date, `Q-2026-0001`, `INV-2026-0001`,
//! `AV-2026-0001`, in order with no gap and no repeat.
//!
//! The counter is a row of `document_counters`, incremented by the issuing
//! transaction itself: the row stays locked until that transaction ends, so
//! concurrent issues of one type and year queue behind it, and a transaction
//! that rolls back (for any reason, after taking its number) gives the
//! number back to the next one. A database SEQUENCE would leave gaps.

use sqlx::PgConnection;

use super::lifecycle::DocumentType;

/// Takes the next number of `kind` for `year` inside the caller's
/// transaction; the counter row stays locked until it commits or rolls back.
pub async fn take(
    conn: &mut PgConnection,
    kind: DocumentType,
    year: i32,
) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO document_counters (document_type, year) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(year)
    .execute(&mut *conn)
    .await?;
    let number: i32 = sqlx::query_scalar(
        "UPDATE document_counters SET last_number = last_number + 1
         WHERE document_type = $1 AND year = $2 RETURNING last_number",
    )
    .bind(kind.as_str())
    .bind(year)
    .fetch_one(conn)
    .await?;
    Ok(format(kind, year, number))
}

/// `PREFIX-YYYY-NNNN`: at least four digits, more when needed.
pub fn format(kind: DocumentType, year: i32, number: i32) -> String {
    format!("{}-{year}-{number:04}", kind.number_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_prefix_year_and_four_digits_or_more() {
        assert_eq!(format(DocumentType::Quote, 2026, 1), "Q-2026-0001");
        assert_eq!(format(DocumentType::Invoice, 2026, 42), "INV-2026-0042");
        assert_eq!(
            format(DocumentType::CreditNote, 2027, 12_345),
            "AV-2027-12345"
        );
    }
}
