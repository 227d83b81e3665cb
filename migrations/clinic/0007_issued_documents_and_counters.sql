-- Rules that law and money depend on, held by the database whoever
-- connects: the server's login role owns none of these tables, triggers or
-- functions, so it can neither drop nor disable them.
--
-- An issued invoice or credit note (any status but draft) is frozen for its
-- ten-year accounting retention (to the end of the tenth year after its
-- issue date, as `retention_holds` counts it): it cannot be deleted, its
-- lines cannot change, and an update may change only its status, along the
-- invoice's documented way (sent -> paid, sent or paid -> cancelled), and
-- `updated_at`. The transaction that issues a document may still write it
-- (a credit note is inserted issued, then given its lines and totals).
-- Once the retention has ended, an erasure may remove it.

CREATE FUNCTION public.document_is_frozen(doc public.documents) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT doc.document_type IN ('invoice', 'credit_note')
       AND doc.status <> 'draft'
       AND doc.issued_at IS DISTINCT FROM pg_catalog.now()
       AND pg_catalog.make_date(EXTRACT(year FROM COALESCE(doc.issue_date,
               doc.issued_at::date, doc.created_at::date))::int + 10, 12, 31)
           >= CURRENT_DATE
$$;

CREATE FUNCTION public.documents_issued_frozen() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    unchanged public.documents;
BEGIN
    IF NOT public.document_is_frozen(OLD) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'issued document % cannot be deleted', OLD.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    unchanged := NEW;
    unchanged.status := OLD.status;
    unchanged.updated_at := OLD.updated_at;
    IF unchanged IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'issued document % cannot be changed', OLD.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status <> OLD.status AND NOT (OLD.document_type = 'invoice' AND (
           (OLD.status = 'sent' AND NEW.status IN ('paid', 'cancelled'))
        OR (OLD.status = 'paid' AND NEW.status = 'cancelled'))) THEN
        RAISE EXCEPTION 'issued document % cannot go from % to %', OLD.number, OLD.status, NEW.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER documents_issued_frozen BEFORE UPDATE OR DELETE ON public.documents
    FOR EACH ROW EXECUTE FUNCTION public.documents_issued_frozen();

CREATE FUNCTION public.document_items_issued_frozen() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    doc public.documents;
BEGIN
    SELECT * INTO doc FROM public.documents
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.document_id ELSE OLD.document_id END;
    IF FOUND AND public.document_is_frozen(doc) THEN
        RAISE EXCEPTION 'the lines of issued document % cannot be changed', doc.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.document_id <> OLD.document_id THEN
        SELECT * INTO doc FROM public.documents WHERE id = NEW.document_id;
        IF FOUND AND public.document_is_frozen(doc) THEN
            RAISE EXCEPTION 'the lines of issued document % cannot be changed', doc.number
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER document_items_issued_frozen BEFORE INSERT OR UPDATE OR DELETE ON public.document_items
    FOR EACH ROW EXECUTE FUNCTION public.document_items_issued_frozen();

-- Document counters move only forward, one number at a time, as the
-- numbering path does (`INSERT ... last_number 0`, then `+ 1` per issue):
-- no counter is set back, skipped ahead, renamed or deleted. Only the
-- tables' owner (a restore loading a backup's rows) inserts a counter that
-- does not start at zero.
CREATE FUNCTION public.document_counters_forward() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner name := (SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class WHERE oid = TG_RELID);
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.last_number <> 0 AND current_user <> owner THEN
            RAISE EXCEPTION 'a document counter starts at zero'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'document counters are never deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.document_type <> OLD.document_type OR NEW.year <> OLD.year
       OR NEW.last_number <> OLD.last_number + 1 THEN
        RAISE EXCEPTION 'a document counter only moves forward by one'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER document_counters_forward BEFORE INSERT OR UPDATE OR DELETE ON public.document_counters
    FOR EACH ROW EXECUTE FUNCTION public.document_counters_forward();

REVOKE ALL ON FUNCTION public.documents_issued_frozen() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.document_items_issued_frozen() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.document_counters_forward() FROM PUBLIC;
