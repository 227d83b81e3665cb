-- One clinic's own database: settings and patients.

CREATE TABLE clinic_settings (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    clinic_id  uuid NOT NULL,
    name       text NOT NULL,
    country    char(2) NOT NULL,
    timezone   text NOT NULL,
    currency   char(3) NOT NULL,
    locale     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    birth_date      date,
    gender          text CHECK (gender IN ('male', 'female', 'other', 'unknown')),
    email           text,
    phone           text,
    address_line1   text,
    address_line2   text,
    address_city    text,
    address_postal_code text,
    address_country char(2),
    national_id     text,
    notes           text,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'deceased')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX patients_national_id_key ON patients (national_id)
    WHERE deleted_at IS NULL AND national_id IS NOT NULL;
CREATE INDEX patients_name_idx ON patients (lower(last_name), lower(first_name))
    WHERE deleted_at IS NULL;
