-- 005_grants.sql
-- app_user reads and writes the clinic tables; reporting only reads them.
-- Nobody but the owner touches audit.audit_logs.

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA clinic TO app_user;
GRANT SELECT ON ALL TABLES IN SCHEMA clinic TO reporting;

REVOKE ALL ON audit.audit_logs FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.ensure_partitions(timestamptz, timestamptz) FROM PUBLIC;
