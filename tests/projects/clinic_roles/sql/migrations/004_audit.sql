-- 004_audit.sql
-- audit.audit_logs (monthly partitions on created_at), audit.ensure_partitions(from, to) to
-- create them (ops: a daily cron for now .. now + 3 months), and the audit trigger.
-- This migration creates the partitions of 2025.

CREATE TABLE audit.audit_logs (
    id          bigserial,
    created_at  timestamptz NOT NULL DEFAULT now(),
    table_name  text NOT NULL,
    action      text NOT NULL,
    record_id   bigint,
    old_row     jsonb,
    new_row     jsonb,
    db_role     text NOT NULL DEFAULT current_user,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE FUNCTION audit.ensure_partitions(p_from timestamptz, p_to timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    m timestamp := date_trunc('month', p_from AT TIME ZONE 'UTC');
BEGIN
    WHILE (m AT TIME ZONE 'UTC') < p_to LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS audit.%I PARTITION OF audit.audit_logs FOR VALUES FROM (%L) TO (%L)',
                       'audit_logs_' || to_char(m, 'YYYY_MM'),
                       to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
        m := m + interval '1 month';
    END LOOP;
END;
$$;

SELECT audit.ensure_partitions('2025-01-01 00:00:00+00', '2026-01-01 00:00:00+00');

-- SECURITY DEFINER: app_user writes audit rows through the trigger but has no right on the table.
CREATE FUNCTION audit.track()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
BEGIN
    INSERT INTO audit.audit_logs (table_name, action, record_id, old_row, new_row, db_role)
    VALUES (TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
            CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
            session_user || '/' || current_setting('role'));
    RETURN NULL;
END;
$$;

CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON clinic.users
    FOR EACH ROW EXECUTE FUNCTION audit.track();
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION audit.track();
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION audit.track();
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION audit.track();
