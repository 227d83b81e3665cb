-- The clinic's daily work: practitioners, catalogue, appointments, medical
-- records, consents, quotes and invoices, and the audit trail.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE practitioners (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    specialty      text,
    license_number text,
    email          text,
    phone          text,
    -- The staff account (central users.id) of this clinic, if any.
    user_id        uuid,
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE UNIQUE INDEX practitioners_user_key ON practitioners (user_id)
    WHERE deleted_at IS NULL AND user_id IS NOT NULL;

CREATE TABLE products_services (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text NOT NULL,
    code             text,
    kind             text NOT NULL DEFAULT 'service' CHECK (kind IN ('product', 'service')),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    -- Basis points: 2000 = 20 %.
    vat_rate         integer NOT NULL DEFAULT 0 CHECK (vat_rate BETWEEN 0 AND 10000),
    duration_minutes integer CHECK (duration_minutes > 0),
    is_active        boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE UNIQUE INDEX products_services_code_key ON products_services (lower(code))
    WHERE deleted_at IS NULL AND code IS NOT NULL;

CREATE TABLE categories (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX categories_name_key ON categories (lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE product_categories (
    product_service_id uuid NOT NULL REFERENCES products_services (id) ON DELETE CASCADE,
    category_id        uuid NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    PRIMARY KEY (product_service_id, category_id)
);
CREATE INDEX product_categories_category_idx ON product_categories (category_id);

CREATE TABLE appointments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    practitioner_id uuid NOT NULL REFERENCES practitioners (id),
    start_at        timestamptz NOT NULL,
    end_at          timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show')),
    reason          text,
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT appointments_end_after_start CHECK (end_at > start_at),
    -- Two live appointments of one practitioner never overlap; back-to-back
    -- is fine (half-open ranges); cancelled and no-show ones do not block.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        practitioner_id WITH =,
        tstzrange(start_at, end_at, '[)') WITH &&
    ) WHERE (deleted_at IS NULL AND status NOT IN ('cancelled', 'no_show'))
);
CREATE INDEX appointments_patient_idx ON appointments (patient_id);
CREATE INDEX appointments_start_idx ON appointments (start_at);

CREATE TABLE appointment_items (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    appointment_id     uuid NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    product_service_id uuid NOT NULL REFERENCES products_services (id),
    description        text NOT NULL,
    quantity           integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    -- Captured from the catalogue when booked.
    unit_price_cents   bigint NOT NULL CHECK (unit_price_cents >= 0),
    vat_rate           integer NOT NULL CHECK (vat_rate BETWEEN 0 AND 10000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appointment_items_appointment_idx ON appointment_items (appointment_id);

CREATE TABLE medical_records (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    practitioner_id uuid REFERENCES practitioners (id),
    record_type     text NOT NULL DEFAULT 'note' CHECK (record_type IN
        ('consultation', 'diagnosis', 'prescription', 'allergy', 'note', 'vaccination', 'lab_result')),
    title           text,
    content         text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE INDEX medical_records_patient_idx ON medical_records (patient_id);

-- Each row is one version of a template; a template's versions share
-- family_id. A version with signed consents is never edited: editing makes
-- the next version.
CREATE TABLE consent_templates (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id  uuid NOT NULL,
    version    integer NOT NULL DEFAULT 1 CHECK (version > 0),
    is_current boolean NOT NULL DEFAULT true,
    title      text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    UNIQUE (family_id, version)
);
CREATE UNIQUE INDEX consent_templates_current_key ON consent_templates (family_id)
    WHERE is_current AND deleted_at IS NULL;

CREATE TABLE consents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id  uuid NOT NULL REFERENCES patients (id),
    template_id uuid NOT NULL REFERENCES consent_templates (id),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'signed', 'revoked')),
    signed_at   timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CONSTRAINT consents_signed_has_time CHECK (status = 'pending' OR signed_at IS NOT NULL),
    CONSTRAINT consents_revoked_has_time CHECK (status <> 'revoked' OR revoked_at IS NOT NULL)
);
CREATE INDEX consents_patient_idx ON consents (patient_id);

-- Quotes, invoices and credit notes. Amounts in integer cents, VAT in
-- basis points. A number is given when the document leaves draft.
CREATE TABLE documents (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_type      text NOT NULL CHECK (document_type IN ('quote', 'invoice', 'credit_note')),
    patient_id         uuid NOT NULL REFERENCES patients (id),
    number             text,
    status             text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'sent', 'accepted', 'rejected', 'paid', 'cancelled')),
    issue_date         date,
    due_date           date,
    currency           char(3) NOT NULL,
    subtotal_cents     bigint NOT NULL DEFAULT 0,
    tax_cents          bigint NOT NULL DEFAULT 0,
    total_cents        bigint NOT NULL DEFAULT 0,
    -- The quote an invoice came from, or the invoice a credit note cancels.
    source_document_id uuid REFERENCES documents (id),
    issued_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CONSTRAINT documents_numbered_unless_draft CHECK ((status = 'draft') = (number IS NULL))
);
CREATE UNIQUE INDEX documents_number_key ON documents (document_type, number) WHERE number IS NOT NULL;
CREATE INDEX documents_patient_idx ON documents (patient_id);

CREATE TABLE document_items (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id        uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position           integer NOT NULL,
    product_service_id uuid REFERENCES products_services (id),
    description        text NOT NULL,
    quantity           integer NOT NULL CHECK (quantity > 0),
    unit_price_cents   bigint NOT NULL,
    vat_rate           integer NOT NULL CHECK (vat_rate BETWEEN 0 AND 10000),
    subtotal_cents     bigint NOT NULL,
    tax_cents          bigint NOT NULL,
    total_cents        bigint NOT NULL,
    UNIQUE (document_id, position)
);

-- Gapless numbering: one row per (type, year), locked by the transaction
-- that issues a document, so a rolled-back issue gives its number back.
CREATE TABLE document_counters (
    document_type text NOT NULL,
    year          integer NOT NULL,
    last_number   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (document_type, year)
);
