-- 012_audit_partition_maintenance.sql
-- Creates audit.ensure_monthly_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
-- and uses it to create the fixed partition window of audit.audit_logs:
--
--     2025-01-01 00:00 UTC (inclusive) to 2027-01-01 00:00 UTC (exclusive):
--     24 monthly partitions, audit_logs_p2025_01 .. audit_logs_p2026_12.
--
-- The window is fixed on purpose: a migration must produce the same database whenever it runs.
-- Months after 2026-12 are created by calling the function, never by editing this file:
--   * production: a scheduled job (e.g. monthly, keeping at least three months ahead) runs
--       SELECT audit.ensure_monthly_partitions(date_trunc('month', now()),
--                                              date_trunc('month', now()) + interval '4 months');
--   * tests: the pytest-clinicdb plugin makes the same call in test set-up (current month + 3).
--
-- The function creates every monthly partition overlapping [p_from, p_to) that does not exist
-- yet, named audit.audit_logs_pYYYY_MM, bounded from the first day of the month to the first day
-- of the next month at 00:00 UTC whatever the session TimeZone, and returns how many it created
-- (0 when all existed: it is idempotent). It raises if a table of that name exists but is not
-- attached as a partition. It runs with the caller's rights (creating a partition requires owning
-- audit.audit_logs), so EXECUTE is revoked from PUBLIC: call it as the schema owner.

CREATE FUNCTION audit.ensure_monthly_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_month     timestamp;  -- first day of a month, UTC wall-clock time
    v_name      text;
    v_attached  boolean;
    v_created   integer := 0;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR NOT isfinite(p_from) OR NOT isfinite(p_to) THEN
        RAISE EXCEPTION 'audit.ensure_monthly_partitions: p_from and p_to must be finite timestamps, got % and %',
            coalesce(p_from::text, 'NULL'), coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Two concurrent callers (a scheduled job and a deploy) must not both try to create the same
    -- partition. SHARE UPDATE EXCLUSIVE conflicts with itself but not with INSERTs.
    LOCK TABLE audit.audit_logs IN SHARE UPDATE EXCLUSIVE MODE;

    v_month := date_trunc('month', p_from AT TIME ZONE 'UTC');
    WHILE (v_month AT TIME ZONE 'UTC') < p_to LOOP
        v_name := 'audit_logs_p' || to_char(v_month, 'YYYY_MM');

        SELECT i.inhparent IS NOT NULL
          INTO v_attached
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_inherits i
                 ON i.inhrelid = c.oid AND i.inhparent = 'audit.audit_logs'::regclass
         WHERE n.nspname = 'audit' AND c.relname = v_name;

        IF NOT FOUND THEN
            -- Bounds are written as ISO text with an explicit +00 offset, so neither TimeZone
            -- nor DateStyle of the session can shift or misparse them.
            EXECUTE format(
                'CREATE TABLE audit.%I PARTITION OF audit.audit_logs FOR VALUES FROM (%L) TO (%L)',
                v_name,
                to_char(v_month, 'YYYY-MM-DD HH24:MI:SS') || '+00',
                to_char(v_month + interval '1 month', 'YYYY-MM-DD HH24:MI:SS') || '+00');
            v_created := v_created + 1;
        ELSIF NOT v_attached THEN
            RAISE EXCEPTION 'audit.% exists but is not a partition of audit.audit_logs', v_name
                USING ERRCODE = 'duplicate_table',
                      HINT = format('Attach it with ALTER TABLE audit.audit_logs ATTACH PARTITION audit.%I '
                                    'FOR VALUES FROM (%L) TO (%L), or rename it, then call the function again.',
                                    v_name,
                                    to_char(v_month, 'YYYY-MM-DD HH24:MI:SS') || '+00',
                                    to_char(v_month + interval '1 month', 'YYYY-MM-DD HH24:MI:SS') || '+00');
        END IF;

        v_month := v_month + interval '1 month';
    END LOOP;

    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION audit.ensure_monthly_partitions(timestamptz, timestamptz) IS
    'Creates the missing monthly partitions audit.audit_logs_pYYYY_MM (UTC months) overlapping [p_from, p_to); returns how many it created. Run it from a scheduled job to stay ahead of the calendar.';

REVOKE ALL ON FUNCTION audit.ensure_monthly_partitions(timestamptz, timestamptz) FROM PUBLIC;

-- The fixed window: 2025-01 .. 2026-12 (24 partitions).
SELECT audit.ensure_monthly_partitions('2025-01-01 00:00:00+00', '2027-01-01 00:00:00+00');
