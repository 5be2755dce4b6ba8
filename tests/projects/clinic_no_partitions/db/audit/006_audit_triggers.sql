-- 006_audit_triggers.sql
-- audit.capture_change() on every table with personal or financial data.

CREATE FUNCTION audit.capture_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audit.row_history (table_name, operation, row_id, row_before)
        VALUES (TG_TABLE_NAME, TG_OP, OLD.id, to_jsonb(OLD));
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO audit.row_history (table_name, operation, row_id, row_before, row_after)
        VALUES (TG_TABLE_NAME, TG_OP, NEW.id, to_jsonb(OLD), to_jsonb(NEW));
    ELSE
        INSERT INTO audit.row_history (table_name, operation, row_id, row_after)
        VALUES (TG_TABLE_NAME, TG_OP, NEW.id, to_jsonb(NEW));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER capture_change AFTER INSERT OR UPDATE OR DELETE ON clinic.staff
    FOR EACH ROW EXECUTE FUNCTION audit.capture_change();
CREATE TRIGGER capture_change AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.capture_change();
CREATE TRIGGER capture_change AFTER INSERT OR UPDATE OR DELETE ON clinic.visits
    FOR EACH ROW EXECUTE FUNCTION audit.capture_change();
CREATE TRIGGER capture_change AFTER INSERT OR UPDATE OR DELETE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION audit.capture_change();
