-- 013_audit_triggers.sql
-- Creates the audit trigger function audit.log_change() and attaches it, as
-- AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW triggers named audit_<table>, to every clinic
-- table holding personal or financial data: clinics, users, doctors, staff, patients,
-- appointments, medical_records, prescriptions, payments.
-- (feature_flags and system_settings hold neither and are not audited.)
--
-- Design: audit.log_change() is SECURITY DEFINER with a fixed search_path. It runs as its owner
-- (the role that ran the migrations), so every write to an audited table is recorded whoever
-- makes it, while the application role clinic_app has no privilege at all on audit.audit_logs
-- (see 016_app_role_and_grants.sql): it cannot insert, change or delete audit rows.
--
-- Each audit row records: table schema and name, the row's key as text (record_id), the action,
-- old and new row images as jsonb, for UPDATE the changed column names, and the actor from
-- current_setting('app.current_user_id', true) (NULL when unset or empty).
-- An UPDATE that changes no column writes no audit row. TRUNCATE is not audited.
--
-- Trigger arguments: the first is the key column (default 'id'); any further arguments name
-- columns whose values are left out of old_values/new_values (they still appear in
-- changed_fields). audit_users redacts password_hash this way.
--
-- The audit row's created_at is now(): it must fall in an existing monthly partition or the
-- audited statement fails with SQLSTATE 23514.

CREATE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key_column  text := coalesce(TG_ARGV[0], 'id');
    v_old         jsonb;
    v_new         jsonb;
    v_changed     text[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_new := to_jsonb(NEW);
    END IF;

    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.key ORDER BY n.key)
          INTO v_changed
          FROM jsonb_each(v_new) AS n
         WHERE n.value IS DISTINCT FROM v_old -> n.key;
        IF v_changed IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;

    INSERT INTO audit.audit_logs
        (table_schema, table_name, record_id, action, old_values, new_values, changed_fields, actor_id)
    VALUES (
        TG_TABLE_SCHEMA,
        TG_TABLE_NAME,
        coalesce(v_new, v_old) ->> v_key_column,
        TG_OP,
        CASE WHEN TG_NARGS > 1 THEN v_old - TG_ARGV[1:TG_NARGS - 1] ELSE v_old END,
        CASE WHEN TG_NARGS > 1 THEN v_new - TG_ARGV[1:TG_NARGS - 1] ELSE v_new END,
        v_changed,
        nullif(current_setting('app.current_user_id', true), '')
    );

    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION audit.log_change() IS
    'AFTER row trigger writing one audit.audit_logs row per INSERT/UPDATE/DELETE. SECURITY DEFINER. Args: key column (default id), then columns to redact.';

REVOKE ALL ON FUNCTION audit.log_change() FROM PUBLIC;

CREATE TRIGGER audit_clinics
    AFTER INSERT OR UPDATE OR DELETE ON clinic.clinics
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_users
    AFTER INSERT OR UPDATE OR DELETE ON clinic.users
    FOR EACH ROW EXECUTE FUNCTION audit.log_change('id', 'password_hash');

CREATE TRIGGER audit_doctors
    AFTER INSERT OR UPDATE OR DELETE ON clinic.doctors
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_staff
    AFTER INSERT OR UPDATE OR DELETE ON clinic.staff
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_patients
    AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_appointments
    AFTER INSERT OR UPDATE OR DELETE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_medical_records
    AFTER INSERT OR UPDATE OR DELETE ON clinic.medical_records
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_prescriptions
    AFTER INSERT OR UPDATE OR DELETE ON clinic.prescriptions
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();

CREATE TRIGGER audit_payments
    AFTER INSERT OR UPDATE OR DELETE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION audit.log_change();
