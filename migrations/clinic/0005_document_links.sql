-- Links between documents, enforced by the database: at most one live
-- invoice made from a quote, at most one credit note cancelling an invoice.
-- Both indexes also serve the lookups by source document.
CREATE UNIQUE INDEX documents_invoice_of_quote_key ON documents (source_document_id)
    WHERE document_type = 'invoice' AND deleted_at IS NULL;
CREATE UNIQUE INDEX documents_credit_note_of_invoice_key ON documents (source_document_id)
    WHERE document_type = 'credit_note' AND deleted_at IS NULL;
