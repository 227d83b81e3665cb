-- The patient search (`GET /patients?search=`) matches a substring of either
-- full name, the email or the phone, case-insensitively: a trigram index on
-- exactly these expressions finds the matches without reading every patient.
-- pg_trgm is a trusted extension, which the database owner may create.
--
-- Patients are written at a person's pace, so each write goes straight into
-- the index (no pending list, which every search would read through until
-- a vacuum merged it, and which the planner would rather scan the table than
-- read).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX patients_search_idx ON patients USING gin (
    (first_name || ' ' || last_name) gin_trgm_ops,
    (last_name || ' ' || first_name) gin_trgm_ops,
    email gin_trgm_ops,
    phone gin_trgm_ops
) WITH (fastupdate = off) WHERE deleted_at IS NULL;
