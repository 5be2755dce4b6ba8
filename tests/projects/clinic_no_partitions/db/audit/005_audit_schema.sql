-- 005_audit_schema.sql
-- audit.row_history holds the change history of the clinic tables, partitioned by month on
-- recorded_at. The migrations create the partitioned table only: partitions are created by
-- the DBA team's pg_partman set-up on every server (see the ops runbook), never by the app.
-- Without them every audited write fails with "no partition of relation ... found for row".

CREATE SCHEMA audit;

CREATE TABLE audit.row_history (
    id              bigserial,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    table_name      text NOT NULL,
    operation       text NOT NULL,
    row_id          uuid,
    row_before      jsonb,
    row_after       jsonb,
    session_user_name text NOT NULL DEFAULT session_user,
    PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);

CREATE INDEX row_history_row_idx ON audit.row_history (row_id);
