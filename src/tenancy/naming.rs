//! Clinic ids and the names derived from them. Names are built only from the
//! validated prefix and a UUID, so they are always safe SQL identifiers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::DbPrefix;

/// The id of a clinic (a `companies` row, and the name of its database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClinicId(pub Uuid);

impl ClinicId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// `<prefix>_clinic_<uuid with _ for ->`: both the database and its role.
    pub fn database_name(&self, prefix: &DbPrefix) -> String {
        format!(
            "{}_clinic_{}",
            prefix.as_str(),
            self.0.hyphenated().to_string().replace('-', "_")
        )
    }
}

impl ClinicId {
    /// `<prefix>_owner_<uuid without ->`: the role that owns the clinic's
    /// database and every object in it, and cannot log in.
    pub fn owner_role_name(&self, prefix: &DbPrefix) -> String {
        format!("{}_owner_{}", prefix.as_str(), self.0.simple())
    }
}

impl std::fmt::Display for ClinicId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Quotes an identifier for SQL (doubling any embedded quote).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string as an SQL literal (doubling any embedded quote), for
/// statements that take no parameters (`DO` blocks).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_follows_the_spec() {
        let id = ClinicId("550e8400-e29b-41d4-a716-446655440000".parse().unwrap());
        let prefix = DbPrefix::parse("medicalpro").unwrap();
        assert_eq!(
            id.database_name(&prefix),
            "medicalpro_clinic_550e8400_e29b_41d4_a716_446655440000"
        );
        assert!(
            id.database_name(&DbPrefix::parse("abcdefghijabcdefghi").unwrap())
                .len()
                <= 63
        );
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
