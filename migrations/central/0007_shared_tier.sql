-- The shared tier: clinics whose tables live in a schema of their own
-- inside a shared database (a pod), reached through the pod's login role.
-- See src/tenancy/pods.rs.

CREATE TABLE pods (
    id                 uuid PRIMARY KEY,
    db_server_id       uuid NOT NULL REFERENCES db_servers (id),
    db_name            text NOT NULL UNIQUE,
    -- The pod's login role: owns nothing, a NOINHERIT member of each of its
    -- clinics' serving roles.
    db_user            text NOT NULL UNIQUE,
    -- Sealed like companies.db_password_sealed, with the pod id as
    -- associated data.
    db_password_sealed bytea NOT NULL,
    -- A password being rotated in (`keys rotate`), as for companies.
    db_password_next_sealed bytea,
    max_clinics        integer NOT NULL CHECK (max_clinics > 0),
    -- A pod still being built is not given clinics.
    is_ready           boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE companies
    ADD COLUMN tier text NOT NULL DEFAULT 'dedicated' CHECK (tier IN ('dedicated', 'shared')),
    ADD COLUMN pod_id uuid REFERENCES pods (id),
    -- The clinic's schema in its pod (NULL: `public` of its own database).
    ADD COLUMN db_schema text;

-- Many shared clinics name one database: a clinic's place is its database
-- and schema.
ALTER TABLE companies DROP CONSTRAINT companies_db_name_key;
CREATE UNIQUE INDEX companies_db_place_key ON companies (db_name, COALESCE(db_schema, ''));

ALTER TABLE companies DROP CONSTRAINT companies_ready_has_placement;
ALTER TABLE companies ADD CONSTRAINT companies_ready_has_placement CHECK (
    provisioning_status <> 'ready'
    OR (db_name IS NOT NULL AND db_user IS NOT NULL AND db_host IS NOT NULL AND db_port IS NOT NULL
        AND CASE tier
            WHEN 'dedicated' THEN db_password_sealed IS NOT NULL AND pod_id IS NULL
            ELSE pod_id IS NOT NULL AND db_schema IS NOT NULL AND db_password_sealed IS NULL
        END)
);
CREATE INDEX companies_pod_idx ON companies (pod_id) WHERE pod_id IS NOT NULL;

-- Clinic schemas laid out ahead in a pod, each with its roles, named after
-- the id of the clinic that will take it: a shared clinic is provisioned by
-- taking one (see src/tenancy/pods.rs). A spare counts toward its pod's
-- max_clinics.
CREATE TABLE pod_spares (
    id         uuid PRIMARY KEY,
    pod_id     uuid NOT NULL REFERENCES pods (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pod_spares_pod_idx ON pod_spares (pod_id, created_at);
