-- 005_audit_log.sql
-- audit.audit_logs: one row per change of an audited clinic table, partitioned by month on
-- created_at. No DEFAULT partition on purpose: a write for a month nobody prepared fails loudly.
-- Ops runs audit.create_monthly_partitions(start, end) from cron on the first of every month;
-- this migration only creates the months of our first year in production (2025).

SET search_path TO clinic, public;

CREATE TABLE audit.audit_logs (
    id           bigserial,
    created_at   timestamptz NOT NULL,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    operation    text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    row_pk       text,
    old_data     jsonb,
    new_data     jsonb,
    changed_by   text,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX audit_logs_row_idx ON audit.audit_logs (table_name, row_pk);

-- Creates audit.audit_logs_yYYYYmMM for every month overlapping [start_date, end_date).
CREATE OR REPLACE FUNCTION audit.create_monthly_partitions(start_date date, end_date date)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    month_start  date := date_trunc('month', start_date)::date;
    created      integer := 0;
    part_name    text;
BEGIN
    WHILE month_start < end_date LOOP
        part_name := format('audit_logs_y%sm%s', to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
        IF to_regclass(format('audit.%I', part_name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE audit.%I PARTITION OF audit.audit_logs FOR VALUES FROM (%L) TO (%L)',
                part_name,
                month_start::text || ' 00:00:00+00',
                (month_start + interval '1 month')::date::text || ' 00:00:00+00');
            created := created + 1;
        END IF;
        month_start := (month_start + interval '1 month')::date;
    END LOOP;
    RETURN created;
END;
$$;

SELECT audit.create_monthly_partitions('2025-01-01', '2026-01-01');
