//! The clinic domain: what lives in each clinic's own database. Every
//! function here takes a connection or transaction to one clinic database,
//! handed over by the routing layer; none can choose a clinic itself.

pub mod address;
pub mod appointment_items;
pub mod appointments;
pub mod audit;
pub mod catalogue;
pub mod consent_templates;
pub mod consents;
pub mod documents;
pub mod gdpr;
pub mod medical_records;
pub mod nir;
pub mod patients;
pub mod practitioners;
pub mod references;
pub mod settings;
pub mod table;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{FromRow, PgConnection, Postgres, Row};

/// A page of a list: `limit` rows from `offset`, and how many match in all.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// One statement answering a page of a list and how many rows match in all,
/// `filter` written once: `select` (up to its `FROM`) with `filter` and
/// `tail` (`ORDER BY`, `LIMIT`, `OFFSET`) is the page; the rows of
/// `count_from` with `filter` are counted. The page is left-joined to the
/// single count row, so an offset past the end still answers the total, as
/// one row with no page (`past_end`: every listed row has a non-null id, so
/// only the missing page is all null). A join `ON TRUE` can only run as a
/// nested loop around that one row, so the page keeps its order.
pub fn list_statement(count_from: &str, filter: &str, select: &str, tail: &str) -> String {
    format!(
        "SELECT listed.*, matching.total AS list_total, listed IS NULL AS past_end
           FROM (SELECT COUNT(*) AS total FROM {count_from} WHERE {filter}) matching
           LEFT JOIN ({select} WHERE {filter} {tail}) listed ON TRUE"
    )
}

/// Runs a bound [`list_statement`]: the page's rows and the total.
pub async fn fetch_list<T>(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<(Vec<T>, i64), sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow>,
{
    let rows = query.fetch_all(conn).await?;
    let total = rows
        .first()
        .ok_or(sqlx::Error::RowNotFound)?
        .try_get("list_total")?;
    let mut page = Vec::with_capacity(rows.len());
    for row in &rows {
        if !row.try_get::<bool, _>("past_end")? {
            page.push(T::from_row(row)?);
        }
    }
    Ok((page, total))
}

/// Escapes `%`, `_` and `\` so user text matches literally in `LIKE`.
pub fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::like_pattern("a%_\\b"), "%a\\%\\_\\\\b%");
    }
}
