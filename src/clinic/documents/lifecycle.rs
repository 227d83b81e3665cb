//! Document types, statuses and the state changes allowed between them.
//!
//! - quote: draft → sent → accepted | rejected;
//! - invoice: draft → sent → paid; sent or paid → cancelled (a paid invoice
//!   is cancelled the same legal way, by a credit note; refunding the money
//!   is outside this system);
//! - credit note: made by the server already `sent`, never changes.
//!
//! Leaving `draft` (always to `sent`) issues the document: it gets its number.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DocumentType {
    Quote,
    Invoice,
    CreditNote,
}

impl DocumentType {
    pub const ALL: &'static [&'static str] = &["quote", "invoice", "credit_note"];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::Quote => "quote",
            DocumentType::Invoice => "invoice",
            DocumentType::CreditNote => "credit_note",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "quote" => Some(DocumentType::Quote),
            "invoice" => Some(DocumentType::Invoice),
            "credit_note" => Some(DocumentType::CreditNote),
            _ => None,
        }
    }

    /// The prefix of its numbers (`AV` for *avoir*, French for credit note).
    pub fn number_prefix(self) -> &'static str {
        match self {
            DocumentType::Quote => "Q",
            DocumentType::Invoice => "INV",
            DocumentType::CreditNote => "AV",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DocumentStatus {
    Draft,
    Sent,
    Accepted,
    Rejected,
    Paid,
    Cancelled,
}

impl DocumentStatus {
    pub const ALL: &'static [&'static str] =
        &["draft", "sent", "accepted", "rejected", "paid", "cancelled"];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Draft => "draft",
            DocumentStatus::Sent => "sent",
            DocumentStatus::Accepted => "accepted",
            DocumentStatus::Rejected => "rejected",
            DocumentStatus::Paid => "paid",
            DocumentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "draft" => Some(DocumentStatus::Draft),
            "sent" => Some(DocumentStatus::Sent),
            "accepted" => Some(DocumentStatus::Accepted),
            "rejected" => Some(DocumentStatus::Rejected),
            "paid" => Some(DocumentStatus::Paid),
            "cancelled" => Some(DocumentStatus::Cancelled),
            _ => None,
        }
    }
}

/// What a permitted state change does besides setting the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Leaving draft: number the document.
    Issue,
    /// Only the status changes.
    Plain,
    /// Cancelling an issued invoice: issue a credit note for it.
    CancelInvoice,
}

/// The change from `from` to `to` for a document of `kind`, if allowed.
pub fn transition(
    kind: DocumentType,
    from: DocumentStatus,
    to: DocumentStatus,
) -> Option<Transition> {
    use DocumentStatus::*;
    use DocumentType::*;
    match (kind, from, to) {
        (Quote | Invoice, Draft, Sent) => Some(Transition::Issue),
        (Quote, Sent, Accepted | Rejected) | (Invoice, Sent, Paid) => Some(Transition::Plain),
        (Invoice, Sent | Paid, Cancelled) => Some(Transition::CancelInvoice),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_changes_are_allowed() {
        use DocumentStatus::*;
        use DocumentType::*;
        let statuses = [Draft, Sent, Accepted, Rejected, Paid, Cancelled];
        let mut allowed = Vec::new();
        for kind in [Quote, Invoice, CreditNote] {
            for from in statuses {
                for to in statuses {
                    if let Some(t) = transition(kind, from, to) {
                        allowed.push((kind, from, to, t));
                    }
                }
            }
        }
        assert_eq!(
            allowed,
            vec![
                (Quote, Draft, Sent, Transition::Issue),
                (Quote, Sent, Accepted, Transition::Plain),
                (Quote, Sent, Rejected, Transition::Plain),
                (Invoice, Draft, Sent, Transition::Issue),
                (Invoice, Sent, Paid, Transition::Plain),
                (Invoice, Sent, Cancelled, Transition::CancelInvoice),
                (Invoice, Paid, Cancelled, Transition::CancelInvoice),
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for name in DocumentType::ALL {
            assert_eq!(DocumentType::parse(name).unwrap().as_str(), *name);
        }
        for name in DocumentStatus::ALL {
            assert_eq!(DocumentStatus::parse(name).unwrap().as_str(), *name);
        }
    }
}
