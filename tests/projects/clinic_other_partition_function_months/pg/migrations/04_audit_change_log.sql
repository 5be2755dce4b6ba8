-- 04_audit_change_log.sql
-- audit.change_log, one partition per month. The launch window (January to June 2024) is
-- created here; everything after that is created by audit.create_partitions_ahead(), which the
-- nightly job calls (see 05).

CREATE TABLE audit.change_log (
    id          bigserial,
    created_at  timestamptz NOT NULL DEFAULT now(),
    table_name  text NOT NULL,
    op          text NOT NULL,
    row_id      integer,
    diff        jsonb,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE audit.change_log_2024_01 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00');
CREATE TABLE audit.change_log_2024_02 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-02-01 00:00:00+00') TO ('2024-03-01 00:00:00+00');
CREATE TABLE audit.change_log_2024_03 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-03-01 00:00:00+00') TO ('2024-04-01 00:00:00+00');
CREATE TABLE audit.change_log_2024_04 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-04-01 00:00:00+00') TO ('2024-05-01 00:00:00+00');
CREATE TABLE audit.change_log_2024_05 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-05-01 00:00:00+00') TO ('2024-06-01 00:00:00+00');
CREATE TABLE audit.change_log_2024_06 PARTITION OF audit.change_log
    FOR VALUES FROM ('2024-06-01 00:00:00+00') TO ('2024-07-01 00:00:00+00');
