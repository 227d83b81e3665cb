-- The clinic audit trail. Applied by the admin connection (not the clinic
-- role), so the admin owns the table and its triggers: the clinic role may
-- only INSERT and SELECT, and cannot disable the triggers. Idempotent: run
-- at provisioning and by every `medicalpro migrate`.
--
-- Each row's hash is sha256(previous row's hash || payload), where payload
-- is the row's fields as text joined by U+001F (see `audit_event_payload`);
-- `medicalpro audit verify` recomputes the chain independently.

CREATE TABLE IF NOT EXISTS audit_events (
    -- Position in the chain: assigned under a lock, gapless.
    id             bigint PRIMARY KEY,
    occurred_at    timestamptz NOT NULL,
    actor_user_id  uuid,
    actor_role     text,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    uuid,
    patient_id     uuid,
    request_id     text,
    client_addr    text,
    -- Names of changed fields, never their values.
    changed_fields text[] NOT NULL DEFAULT '{}',
    details        jsonb NOT NULL DEFAULT '{}',
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_patient_idx ON audit_events (patient_id, id);
CREATE INDEX IF NOT EXISTS audit_events_actor_idx ON audit_events (actor_user_id, id);
CREATE INDEX IF NOT EXISTS audit_events_time_idx ON audit_events (occurred_at);

CREATE OR REPLACE FUNCTION audit_event_payload(e audit_events) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public AS $$
    SELECT concat_ws(chr(31),
        e.id::text,
        ((extract(epoch FROM e.occurred_at) * 1000000)::bigint)::text,
        COALESCE(e.actor_user_id::text, ''),
        COALESCE(e.actor_role, ''),
        e.action,
        e.resource_type,
        COALESCE(e.resource_id::text, ''),
        COALESCE(e.patient_id::text, ''),
        COALESCE(e.request_id, ''),
        COALESCE(e.client_addr, ''),
        array_to_string(e.changed_fields, ','),
        e.details::text)
$$;

CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    last_id   bigint;
    last_hash bytea;
BEGIN
    -- One writer at a time extends the chain; held until commit.
    PERFORM pg_advisory_xact_lock(7311, 1);
    SELECT id, hash INTO last_id, last_hash FROM audit_events ORDER BY id DESC LIMIT 1;
    NEW.id := COALESCE(last_id, 0) + 1;
    NEW.occurred_at := date_trunc('microseconds', clock_timestamp());
    NEW.prev_hash := COALESCE(last_hash, '\x'::bytea);
    NEW.hash := sha256(NEW.prev_hash || convert_to(audit_event_payload(NEW), 'UTF8'));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION audit_events_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_events_chain ON audit_events;
CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_chain();
DROP TRIGGER IF EXISTS audit_events_frozen ON audit_events;
CREATE TRIGGER audit_events_frozen BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_frozen();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_frozen();

REVOKE ALL ON audit_events FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_events_chain() FROM PUBLIC;
