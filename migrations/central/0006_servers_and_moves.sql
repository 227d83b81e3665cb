-- Moves of a clinic's database from one server to another
-- (`medicalpro clinic move`, see src/ops/moves.rs). One row per attempt;
-- `step` is the last step done, so that an interrupted move is rolled
-- back (before `switched`) or finished (from `switched` on) when run
-- again. At most one unfinished move per clinic.
CREATE TABLE clinic_moves (
    id                     uuid PRIMARY KEY,
    company_id             uuid NOT NULL REFERENCES companies (id),
    source_server_id       uuid REFERENCES db_servers (id),
    source_host            text NOT NULL,
    source_port            integer NOT NULL,
    target_server_id       uuid NOT NULL REFERENCES db_servers (id),
    step                   text NOT NULL CHECK (step IN (
        'started', 'prepared', 'subscribed', 'synced', 'frozen', 'verified',
        'switched', 'done', 'rolled_back')),
    -- The target login role's password, sealed like companies.db_password_sealed
    -- (the clinic id as associated data); copied there at the switch.
    target_password_sealed bytea NOT NULL,
    drop_source            boolean NOT NULL DEFAULT false,
    -- Where the source database was kept after the move (unless dropped).
    source_kept_as         text,
    -- Row counts and audit head compared before the switch; error of a
    -- failed attempt.
    details                jsonb NOT NULL DEFAULT '{}',
    started_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz
);
CREATE UNIQUE INDEX clinic_moves_one_open ON clinic_moves (company_id) WHERE finished_at IS NULL;
CREATE INDEX clinic_moves_company_idx ON clinic_moves (company_id, started_at);
