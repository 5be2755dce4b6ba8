-- 004_audit.sql
-- audit.audit_logs, monthly partitions on created_at, made by audit.make_partitions(from, to).
-- The window below is the one that existed when this migration was written; the platform
-- team's scheduler keeps three months ahead since.

CREATE TABLE audit.audit_logs (
    id          bigserial,
    created_at  timestamptz NOT NULL DEFAULT now(),
    clinic_id   integer,
    table_name  text NOT NULL,
    action      text NOT NULL,
    row_data    jsonb NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE FUNCTION audit.make_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    m       date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    made    integer := 0;
BEGIN
    WHILE (m::timestamp AT TIME ZONE 'UTC') < to_ts LOOP
        IF to_regclass(format('audit.audit_logs_%s', to_char(m, 'YYYYMM'))) IS NULL THEN
            EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.audit_logs FOR VALUES FROM (%L) TO (%L)',
                           'audit_logs_' || to_char(m, 'YYYYMM'),
                           m || ' 00:00+00',
                           (m + interval '1 month')::date || ' 00:00+00');
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;

SELECT audit.make_partitions('2025-07-01 00:00+00', '2026-07-01 00:00+00');

CREATE FUNCTION audit.write_audit()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE
    r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
    INSERT INTO audit.audit_logs (clinic_id, table_name, action, row_data)
    VALUES ((r ->> 'clinic_id')::integer, TG_TABLE_NAME, TG_OP, r);
    RETURN NULL;
END
$$;

CREATE TRIGGER patients_audit AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.write_audit();
CREATE TRIGGER appointments_audit AFTER INSERT OR UPDATE OR DELETE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION audit.write_audit();
CREATE TRIGGER invoices_audit AFTER INSERT OR UPDATE OR DELETE ON clinic.invoices
    FOR EACH ROW EXECUTE FUNCTION audit.write_audit();
