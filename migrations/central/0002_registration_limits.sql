-- Registrations, shared by every server instance, for rate limiting (see
-- src/central/registrations.rs): the client address and the time only.
CREATE TABLE registration_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_addr   text NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registration_attempts_addr_idx ON registration_attempts (client_addr, attempted_at);
CREATE INDEX registration_attempts_at_idx ON registration_attempts (attempted_at);

-- Counting a server's live clinics when placing a new one.
CREATE INDEX companies_db_server_idx ON companies (db_server_id) WHERE deleted_at IS NULL;
