//! The clinic domain: what lives in each clinic's own database. Every
//! function here takes a connection or transaction to one clinic database,
//! handed over by the routing layer; none can choose a clinic itself.

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

/// A page of a list: `limit` rows from `offset`, and how many match in all.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
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
