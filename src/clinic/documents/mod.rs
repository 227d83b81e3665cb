//! Quotes, invoices and credit notes (one `documents` table with a type
//! discriminator, and their `document_items`): input checks and pricing
//! ([`input`], [`amounts`]), the allowed state changes ([`lifecycle`]), legal
//! numbering ([`numbering`]), the queries ([`store`]) and the operations
//! that tie them together in one transaction ([`workflow`]).

pub mod amounts;
pub mod input;
pub mod lifecycle;
pub mod numbering;
pub mod store;
pub mod workflow;

pub use input::DocumentInput;
pub use lifecycle::{DocumentStatus, DocumentType};
pub use store::Document;
