-- 006_audit_triggers.sql
-- audit.audit_trigger_function(): AFTER row trigger on every table with personal or financial
-- data. The audit row is stamped with the change's own time (the row's updated_at, else now()),
-- so rows back-filled from the old intake app are filed under the month they belong to.
-- A change dated in a month without partition therefore fails with 23514 - on purpose.

SET search_path TO clinic, public;

CREATE OR REPLACE FUNCTION audit.audit_trigger_function()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    old_row  jsonb;
    new_row  jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW);
    END IF;

    INSERT INTO audit.audit_logs
        (created_at, schema_name, table_name, operation, row_pk, old_data, new_data, changed_by)
    VALUES (
        coalesce((new_row ->> 'updated_at')::timestamptz, now()),
        TG_TABLE_SCHEMA,
        TG_TABLE_NAME,
        TG_OP,
        coalesce(new_row, old_row) ->> 'id',
        old_row,
        new_row,
        nullif(current_setting('app.user_email', true), '')
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_audit
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION audit.audit_trigger_function();

CREATE TRIGGER patients_audit
    AFTER INSERT OR UPDATE OR DELETE ON patients
    FOR EACH ROW EXECUTE FUNCTION audit.audit_trigger_function();

CREATE TRIGGER referral_audit
    AFTER INSERT OR UPDATE OR DELETE ON "Referral"
    FOR EACH ROW EXECUTE FUNCTION audit.audit_trigger_function();

CREATE TRIGGER appointments_audit
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION audit.audit_trigger_function();

CREATE TRIGGER payments_audit
    AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION audit.audit_trigger_function();
