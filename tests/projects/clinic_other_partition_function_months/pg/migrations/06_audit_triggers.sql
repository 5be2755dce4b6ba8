-- 06_audit_triggers.sql
-- audit.track_change() logs inserts, updates and deletes of patient and money tables.
-- For updates only the changed columns are kept (diff = {column: [old, new]}).

CREATE FUNCTION audit.track_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    changes jsonb;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(n.key, jsonb_build_array(o.value, n.value))
          INTO changes
          FROM jsonb_each(to_jsonb(NEW)) n
          JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
         WHERE n.value IS DISTINCT FROM o.value;
    ELSIF TG_OP = 'INSERT' THEN
        changes := to_jsonb(NEW);
    ELSE
        changes := to_jsonb(OLD);
    END IF;

    INSERT INTO audit.change_log (table_name, op, row_id, diff)
    VALUES (TG_TABLE_NAME, lower(TG_OP), CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, changes);
    RETURN NULL;
END;
$$;

CREATE TRIGGER patients_track AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.track_change();
CREATE TRIGGER appointments_track AFTER INSERT OR UPDATE OR DELETE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION audit.track_change();
CREATE TRIGGER treatment_items_track AFTER INSERT OR UPDATE OR DELETE ON clinic.treatment_items
    FOR EACH ROW EXECUTE FUNCTION audit.track_change();
CREATE TRIGGER payments_track AFTER INSERT OR UPDATE OR DELETE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION audit.track_change();
