-- 0005 audit triggers
-- audit.log_row_change(pk_column) records every change of a table with personal or
-- financial data. The primary-key column is passed as the trigger's argument.

CREATE FUNCTION audit.log_row_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    pk_column text := TG_ARGV[0];
    before_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    after_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
BEGIN
    INSERT INTO audit.audit_logs (relation, action, pk, before_image, after_image, app_user)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            left(TG_OP, 1),
            jsonb_build_object(pk_column, coalesce(after_row, before_row) -> pk_column),
            before_row,
            after_row,
            current_setting('northgate.user', true));
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON clinic.therapists
    FOR EACH ROW EXECUTE FUNCTION audit.log_row_change('therapist_id');
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.log_row_change('patient_id');
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON clinic.treatment_sessions
    FOR EACH ROW EXECUTE FUNCTION audit.log_row_change('session_id');
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON clinic.invoices
    FOR EACH ROW EXECUTE FUNCTION audit.log_row_change('invoice_id');
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION audit.log_row_change('payment_id');
