-- 016_app_role_and_grants.sql
-- Creates the application role clinic_app (NOLOGIN: login roles are granted membership in it)
-- and grants it what the application needs, and nothing on the audit trail.
--
-- Roles are cluster-wide and one cluster holds many databases built from these migrations
-- (test templates, clones, other branches), so the role is created only if it does not exist;
-- a concurrent build creating it at the same moment is tolerated. Creating it needs CREATEROLE
-- (or create the role beforehand). Grants are per database and are made here every time.
--
-- clinic_app gets:
--   USAGE on schemas clinic, booking, webhook, audit
--   SELECT, INSERT, UPDATE, DELETE on every table of clinic, booking, webhook
--   USAGE on their sequences (none today; kept for future serial/identity columns)
--   EXECUTE on booking.book_slot(uuid, uuid, text) (revoked from PUBLIC)
-- and no privilege on audit.audit_logs: audit rows are written only by the SECURITY DEFINER
-- trigger function audit.log_change(), so the application can neither forge nor alter nor
-- delete them (append-only). UPDATE, DELETE, TRUNCATE (indeed ALL) are revoked from PUBLIC and
-- clinic_app. Reading the audit trail is for the owner or a dedicated auditor role.
--
-- Tables added by later migrations are not covered by these grants: each such migration grants
-- clinic_app what it needs (no ALTER DEFAULT PRIVILEGES, so nothing is exposed by accident).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'clinic_app') THEN
        BEGIN
            CREATE ROLE clinic_app NOLOGIN;
        EXCEPTION
            -- another database build in the same cluster created it between our check and now
            WHEN duplicate_object OR unique_violation THEN
                NULL;
        END;
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA clinic, booking, webhook, audit TO clinic_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA clinic, booking, webhook TO clinic_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA clinic, booking, webhook TO clinic_app;

REVOKE ALL ON FUNCTION booking.book_slot(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION booking.book_slot(uuid, uuid, text) TO clinic_app;

REVOKE ALL ON TABLE audit.audit_logs FROM PUBLIC;
REVOKE ALL ON TABLE audit.audit_logs FROM clinic_app;
REVOKE ALL ON SEQUENCE audit.audit_logs_id_seq FROM PUBLIC;
