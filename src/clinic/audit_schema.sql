-- The clinic audit trail. Applied as the clinic's owner role (which cannot
-- log in), so the owner holds the tables, functions and triggers: the login
-- role may only append pending events, read sealed ones and call the
-- sealer, and can neither disable the triggers nor create anything that
-- the functions could pick up. Idempotent: run at provisioning and by every
-- `medicalpro migrate`.
--
-- Hijack-proof by construction: every function pins
-- `search_path = pg_catalog, pg_temp` (temporary objects last) and names
-- every object of the trail with its schema, so no function, operator or
-- table of another role's making is ever resolved in their place.
--
-- Each row's hash is sha256(previous row's hash || payload), where payload
-- is the row's fields as text joined by U+001F (see `audit_event_payload`);
-- `medicalpro audit verify` recomputes the chain independently.

CREATE TABLE IF NOT EXISTS public.audit_events (
    -- Position in the chain: assigned by the sealer under a lock, gapless.
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
CREATE INDEX IF NOT EXISTS audit_events_patient_idx ON public.audit_events (patient_id, id);
CREATE INDEX IF NOT EXISTS audit_events_actor_idx ON public.audit_events (actor_user_id, id);
CREATE INDEX IF NOT EXISTS audit_events_time_idx ON public.audit_events (occurred_at);

CREATE OR REPLACE FUNCTION public.audit_event_payload(e public.audit_events) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.concat_ws(pg_catalog.chr(31),
        e.id::text,
        ((EXTRACT(epoch FROM e.occurred_at) * 1000000)::bigint)::text,
        COALESCE(e.actor_user_id::text, ''),
        COALESCE(e.actor_role, ''),
        e.action,
        e.resource_type,
        COALESCE(e.resource_id::text, ''),
        COALESCE(e.patient_id::text, ''),
        COALESCE(e.request_id, ''),
        COALESCE(e.client_addr, ''),
        pg_catalog.array_to_string(e.changed_fields, ','),
        e.details::text)
$$;

-- The trail is written in two steps, so that accesses never queue for the
-- chain. In the transaction of each access, `audit_events_append` adds the
-- event to `audit_events_pending` (the clinic role can neither read, change
-- nor delete pending rows) and, if no other transaction is extending the
-- chain at that moment, moves every pending row it can see into
-- `audit_events`, giving each its gapless id and its link: the event is
-- then chained in the same commit as the access. Otherwise it stays pending
-- and `audit_events_seal()`, which waits its turn, chains it shortly after
-- commit (the server runs it for each clinic whose events were left
-- pending; `medicalpro audit verify` runs it first).
CREATE TABLE IF NOT EXISTS public.audit_events_pending (
    -- Order of arrival only; the chain position is given at sealing.
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL,
    actor_user_id  uuid,
    actor_role     text,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    uuid,
    patient_id     uuid,
    request_id     text,
    client_addr    text,
    changed_fields text[] NOT NULL DEFAULT '{}',
    details        jsonb NOT NULL DEFAULT '{}'
);

-- Chains pending rows, oldest arrival first, at most `batch` of them;
-- returns how many. The caller holds the chain's lock (7311, 1).
CREATE OR REPLACE FUNCTION public.audit_events_chain_pending(batch integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_id   bigint;
    last_hash bytea;
    pending   public.audit_events_pending[];
    p         public.audit_events_pending;
    e         public.audit_events;
    sealed    public.audit_events[] := '{}';
BEGIN
    WITH moved AS (
        DELETE FROM public.audit_events_pending
         WHERE id IN (SELECT id FROM public.audit_events_pending ORDER BY id LIMIT batch)
        RETURNING *
    )
    SELECT pg_catalog.array_agg(ROW(moved.*)::public.audit_events_pending ORDER BY moved.id)
      INTO pending FROM moved;
    IF pending IS NULL THEN
        RETURN 0;
    END IF;
    SELECT id, hash INTO last_id, last_hash FROM public.audit_events ORDER BY id DESC LIMIT 1;
    last_id := COALESCE(last_id, 0);
    last_hash := COALESCE(last_hash, '\x'::bytea);
    FOREACH p IN ARRAY pending LOOP
        last_id := last_id + 1;
        e := ROW(last_id, p.occurred_at, p.actor_user_id, p.actor_role, p.action,
                 p.resource_type, p.resource_id, p.patient_id, p.request_id,
                 p.client_addr, p.changed_fields, p.details, last_hash, NULL);
        e.hash := pg_catalog.sha256(e.prev_hash
            OPERATOR(pg_catalog.||) pg_catalog.convert_to(public.audit_event_payload(e), 'UTF8'));
        last_hash := e.hash;
        sealed := sealed || e;
    END LOOP;
    INSERT INTO public.audit_events SELECT * FROM pg_catalog.unnest(sealed);
    RETURN pg_catalog.cardinality(sealed);
END
$$;

-- Records one access, stamped with the server's clock; returns whether it
-- is chained already (else it is pending).
CREATE OR REPLACE FUNCTION public.audit_events_append(
    actor_user_id uuid, actor_role text, action text, resource_type text,
    resource_id uuid, patient_id uuid, request_id text, client_addr text,
    changed_fields text[], details jsonb
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.audit_events_pending (occurred_at, actor_user_id, actor_role, action,
        resource_type, resource_id, patient_id, request_id, client_addr, changed_fields, details)
    VALUES (pg_catalog.date_trunc('microseconds', pg_catalog.clock_timestamp()), actor_user_id, actor_role, action,
        resource_type, resource_id, patient_id, request_id, client_addr,
        COALESCE(changed_fields, '{}'::text[]), COALESCE(details, '{}'::jsonb));
    -- Held until commit, when taken.
    IF NOT pg_catalog.pg_try_advisory_xact_lock(7311, 1) THEN
        RETURN false;
    END IF;
    -- A full batch may have left older rows behind.
    RETURN public.audit_events_chain_pending(10000) OPERATOR(pg_catalog.<) 10000;
END
$$;

-- Records the accesses of many requests at once, in order, each stamped
-- with the server's clock, all left pending for the sealer: one statement
-- and one commit for many reads (`events`: a JSON array of objects with
-- the arguments of `audit_events_append` as keys). Returns how many.
CREATE OR REPLACE FUNCTION public.audit_events_append_all(events jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    appended integer;
BEGIN
    INSERT INTO public.audit_events_pending (occurred_at, actor_user_id, actor_role, action,
        resource_type, resource_id, patient_id, request_id, client_addr, changed_fields, details)
    SELECT pg_catalog.date_trunc('microseconds', pg_catalog.clock_timestamp()), e.actor_user_id,
        e.actor_role, e.action, e.resource_type, e.resource_id, e.patient_id, e.request_id,
        e.client_addr, COALESCE(e.changed_fields, '{}'::text[]), COALESCE(e.details, '{}'::jsonb)
      FROM ROWS FROM (pg_catalog.jsonb_to_recordset(events) AS (actor_user_id uuid,
               actor_role text, action text, resource_type text, resource_id uuid,
               patient_id uuid, request_id text, client_addr text, changed_fields text[],
               details jsonb)) WITH ORDINALITY AS e
     ORDER BY e.ordinality;
    GET DIAGNOSTICS appended = ROW_COUNT;
    RETURN appended;
END
$$;

-- Chains every committed pending row, waiting for the chain's lock, at
-- most `batch` of them; returns how many.
CREATE OR REPLACE FUNCTION public.audit_events_seal(batch integer DEFAULT 10000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(7311, 1);
    RETURN public.audit_events_chain_pending(batch);
END
$$;

-- The chain extended one row at a time by a trigger: replaced by sealing.
DROP TRIGGER IF EXISTS audit_events_chain ON public.audit_events;
DROP FUNCTION IF EXISTS public.audit_events_chain();

-- Nobody but the sealer (running as the trail's owner) writes the chain. An
-- INSERT by anyone else, such as a server of the previous release during an
-- upgrade, is recorded as an event instead, as `audit_events_append` does:
-- its id, time and hashes are the database's, never the writer's.
CREATE OR REPLACE FUNCTION public.audit_events_divert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.=)
       (SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class WHERE oid = TG_RELID) THEN
        RETURN NEW;
    END IF;
    PERFORM public.audit_events_append(NEW.actor_user_id, NEW.actor_role, NEW.action,
        NEW.resource_type, NEW.resource_id, NEW.patient_id, NEW.request_id,
        NEW.client_addr, NEW.changed_fields, NEW.details);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.audit_events_frozen() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_events_divert ON public.audit_events;
CREATE TRIGGER audit_events_divert BEFORE INSERT ON public.audit_events
    FOR EACH ROW EXECUTE FUNCTION public.audit_events_divert();
DROP TRIGGER IF EXISTS audit_events_frozen ON public.audit_events;
CREATE TRIGGER audit_events_frozen BEFORE UPDATE OR DELETE ON public.audit_events
    FOR EACH ROW EXECUTE FUNCTION public.audit_events_frozen();
DROP TRIGGER IF EXISTS audit_events_no_truncate ON public.audit_events;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON public.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_events_frozen();
-- Pending rows leave only by sealing (a DELETE by the owner).
DROP TRIGGER IF EXISTS audit_events_pending_frozen ON public.audit_events_pending;
CREATE TRIGGER audit_events_pending_frozen BEFORE UPDATE ON public.audit_events_pending
    FOR EACH ROW EXECUTE FUNCTION public.audit_events_frozen();
DROP TRIGGER IF EXISTS audit_events_pending_no_truncate ON public.audit_events_pending;
CREATE TRIGGER audit_events_pending_no_truncate BEFORE TRUNCATE ON public.audit_events_pending
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_events_frozen();

REVOKE ALL ON public.audit_events, public.audit_events_pending FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_events_chain_pending(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_events_seal(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_events_append(uuid, text, text, text, uuid, uuid, text, text, text[], jsonb)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_event_payload(public.audit_events) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_events_divert() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.audit_events_frozen() FROM PUBLIC;
