-- 011_audit_log_table.sql
-- Creates audit.audit_logs, the append-only audit trail, partitioned BY RANGE (created_at)
-- into monthly partitions. This file creates only the partitioned parent; partitions are
-- created by audit.ensure_monthly_partitions() (012_audit_partition_maintenance.sql).
--
-- There is deliberately no DEFAULT partition: an audited write whose audit timestamp has no
-- monthly partition fails with SQLSTATE 23514 ("no partition of relation ... found for row")
-- instead of silently piling rows into a catch-all partition. Keeping partitions ahead of the
-- calendar is an operational duty (a scheduled job calling the maintenance function).
--
-- created_at is the time of the audited change (now(), the transaction start time), never a
-- timestamp copied from the audited row. actor_id comes from the session setting
-- app.current_user_id (NULL when unset or empty). db_user is the database login (session_user).
-- The id is a bigserial: identity columns on partitioned tables need PostgreSQL 17.

CREATE TABLE audit.audit_logs (
    id              bigserial,
    created_at      timestamptz NOT NULL DEFAULT now(),
    table_schema    text NOT NULL,
    table_name      text NOT NULL,
    record_id       text,
    action          text NOT NULL CONSTRAINT audit_logs_action_check
                        CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    old_values      jsonb,
    new_values      jsonb,
    changed_fields  text[],
    actor_id        text,
    db_user         text NOT NULL DEFAULT session_user,
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

COMMENT ON TABLE audit.audit_logs IS
    'Append-only audit trail, one row per audited INSERT/UPDATE/DELETE, monthly partitions audit_logs_pYYYY_MM (UTC months), no DEFAULT partition.';
COMMENT ON COLUMN audit.audit_logs.created_at IS 'now() of the audited transaction (partition key).';
COMMENT ON COLUMN audit.audit_logs.record_id IS 'Primary key of the audited row, as text.';
COMMENT ON COLUMN audit.audit_logs.changed_fields IS 'UPDATE only: the columns whose value changed.';
COMMENT ON COLUMN audit.audit_logs.actor_id IS 'current_setting(''app.current_user_id''), NULL when unset or empty.';

CREATE INDEX audit_logs_record_idx ON audit.audit_logs (table_schema, table_name, record_id);
CREATE INDEX audit_logs_actor_idx ON audit.audit_logs (actor_id) WHERE actor_id IS NOT NULL;
