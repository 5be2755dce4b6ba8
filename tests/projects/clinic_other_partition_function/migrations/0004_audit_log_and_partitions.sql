-- 0004 audit log
-- audit.audit_logs is range-partitioned by month on changed_at, no DEFAULT partition.
-- audit.add_audit_partitions(from_date, to_date) adds the monthly partitions audit_logs_YYYYMM
-- that overlap [from_date, to_date) and skips existing ones. Ops runs it every quarter:
--     SELECT audit.add_audit_partitions(current_date, current_date + 180);
-- This migration creates 2023 only, the year we went live; later months come from that job.

CREATE TABLE audit.audit_logs (
    log_id          bigserial,
    changed_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    relation        text NOT NULL,
    action          char(1) NOT NULL CHECK (action IN ('I', 'U', 'D')),
    pk              jsonb,
    before_image    jsonb,
    after_image     jsonb,
    app_user        text,
    PRIMARY KEY (log_id, changed_at)
) PARTITION BY RANGE (changed_at);

CREATE FUNCTION audit.add_audit_partitions(from_date date, to_date date)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    m date := date_trunc('month', from_date);
BEGIN
    WHILE m < to_date LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS audit.%I PARTITION OF audit.audit_logs '
            'FOR VALUES FROM (%L) TO (%L)',
            'audit_logs_' || to_char(m, 'YYYYMM'),
            m || ' 00:00:00+00',
            (m + interval '1 month')::date || ' 00:00:00+00');
        m := m + interval '1 month';
    END LOOP;
END;
$$;

SELECT audit.add_audit_partitions('2023-01-01', '2024-01-01');
