-- Central database: clinics, staff accounts, sessions, platform audit.
-- No patient data ever lives here.

CREATE TABLE db_servers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    host        text NOT NULL,
    port        integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    max_clinics integer NOT NULL DEFAULT 10000 CHECK (max_clinics >= 0),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE companies (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL,
    email               text NOT NULL,
    phone               text,
    country             char(2) NOT NULL,
    is_active           boolean NOT NULL DEFAULT true,
    subscription_status text NOT NULL DEFAULT 'trial'
        CHECK (subscription_status IN ('trial', 'active', 'past_due', 'cancelled')),
    subscription_expiry timestamptz,
    provisioning_status text NOT NULL DEFAULT 'pending'
        CHECK (provisioning_status IN ('pending', 'ready')),
    db_server_id        uuid REFERENCES db_servers (id),
    db_host             text,
    db_port             integer,
    db_name             text UNIQUE,
    db_user             text UNIQUE,
    -- nonce || XChaCha20-Poly1305 ciphertext of the role's password, sealed
    -- with MASTER_KEY and the clinic id as associated data.
    db_password_sealed  bytea,
    schema_version      bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT companies_ready_has_placement CHECK (
        provisioning_status <> 'ready'
        OR (db_name IS NOT NULL AND db_user IS NOT NULL AND db_password_sealed IS NOT NULL
            AND db_host IS NOT NULL AND db_port IS NOT NULL)
    )
);
CREATE UNIQUE INDEX companies_email_key ON companies (lower(email));

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    company_id    uuid REFERENCES companies (id) ON DELETE CASCADE,
    email         text NOT NULL,
    password_hash text NOT NULL,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    role          text NOT NULL
        CHECK (role IN ('super_admin', 'admin', 'doctor', 'secretary', 'readonly')),
    is_active     boolean NOT NULL DEFAULT true,
    last_login_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CONSTRAINT users_platform_role_has_no_clinic CHECK ((role = 'super_admin') = (company_id IS NULL))
);
-- Unique regardless of case among live accounts, platform-wide.
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_company_idx ON users (company_id);

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Every token of one login shares a family; reuse of a rotated token
    -- revokes the whole family.
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Failed logins, shared by every server instance, for throttling.
CREATE TABLE login_failures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL,
    client_addr  text NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_idx ON login_failures (email, failed_at);
CREATE INDEX login_failures_addr_idx ON login_failures (client_addr, failed_at);

-- Platform events only: never patient data or patient names.
CREATE TABLE audit_logs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    action        text NOT NULL,
    actor_user_id uuid,
    company_id    uuid,
    client_addr   text,
    details       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_logs_company_idx ON audit_logs (company_id, occurred_at);
