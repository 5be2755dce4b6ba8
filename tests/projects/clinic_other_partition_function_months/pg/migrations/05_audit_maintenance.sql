-- 05_audit_maintenance.sql
-- Two jobs for the audit partitions.
--
-- audit.create_partitions_ahead(months): the nightly job. Creates the partition of the current
-- month and of the next `months` months, if missing. Returns how many it created.
--     SELECT audit.create_partitions_ahead(3);
--
-- audit.archive_partitions(from_month, to_month): the yearly archive. DETACHES every partition
-- lying entirely inside [from_month, to_month) so it can be dumped to cold storage and dropped.
-- Never call it on months that are still being written.

CREATE FUNCTION audit.create_partitions_ahead(months integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    first_month timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    m timestamptz;
    n integer := 0;
BEGIN
    FOR i IN 0..months LOOP
        m := first_month + make_interval(months => i);
        IF to_regclass('audit.change_log_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM')) IS NULL THEN
            EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.change_log FOR VALUES FROM (%L) TO (%L)',
                           'change_log_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'),
                           to_char(m AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00',
                           to_char((m + interval '1 month') AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' 00:00:00+00');
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

CREATE FUNCTION audit.archive_partitions(from_month date, to_month date)
RETURNS SETOF text
LANGUAGE plpgsql
AS $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.oid::regclass AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)')) AS bounds
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit.change_log'::regclass
    LOOP
        IF part.bounds IS NOT NULL
           AND part.bounds[1]::timestamptz >= from_month
           AND part.bounds[2]::timestamptz <= to_month THEN
            EXECUTE format('ALTER TABLE audit.change_log DETACH PARTITION %s', part.name);
            RETURN NEXT part.name::text;
        END IF;
    END LOOP;
END;
$$;
