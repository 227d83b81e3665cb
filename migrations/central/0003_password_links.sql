-- One-time password links (see src/central/password_links.rs): a setup link
-- for an account made without a password, or a reset link for one whose
-- password is forgotten. Only the SHA-256 of the token is kept; a link works
-- once, until it expires, and issuing a new one for an account voids the
-- account's earlier unused links.
CREATE TABLE password_links (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('setup', 'reset')),
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_links_user_idx ON password_links (user_id);
CREATE INDEX password_links_expires_idx ON password_links (expires_at);
