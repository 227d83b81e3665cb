-- A restore puts a backup's audit chain in place of a clinic's: the rows
-- anchored since the backup are gone or differ. Each restore records here
-- the head of the chain it put in place, so that `medicalpro audit verify`
-- continues the chain from it (see src/compliance.rs) instead of reporting
-- the restore as tampering.
CREATE TABLE audit_chain_restores (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    uuid NOT NULL,
    -- Its platform event (`audit.restored`): an `audit.anchored` event with
    -- a greater id was taken after this restore and supersedes it.
    audit_log_id  bigint NOT NULL UNIQUE REFERENCES audit_logs (id),
    restored_at   timestamptz NOT NULL DEFAULT now(),
    -- Who ran it: `--operator`, else the operating-system user.
    operator      text NOT NULL,
    -- The backup file as named on the command line, and the SHA-256 of its
    -- (encrypted) bytes.
    backup_file   text NOT NULL,
    backup_sha256 text NOT NULL,
    -- The last chained event of the restored trail; NULL when it was empty.
    head_id       bigint,
    head_hash     text,
    CONSTRAINT audit_chain_restores_head CHECK ((head_id IS NULL) = (head_hash IS NULL))
);
CREATE INDEX audit_chain_restores_company_idx ON audit_chain_restores (company_id, id);
