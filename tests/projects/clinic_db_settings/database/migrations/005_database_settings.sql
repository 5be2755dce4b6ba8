-- 005_database_settings.sql
-- Settings and permissions that belong to the database itself (whatever its name is on each
-- server, hence current_database()):
--   * every session runs with app.tenant_mode = 'strict' (tenant isolation, see 002);
--   * clinic_api sessions in this database get the clinic search_path and a 5 s timeout;
--   * only clinic_api (and superusers) may connect or create temporary tables; PUBLIC may not.

DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET app.tenant_mode TO %L', current_database(), 'strict');
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET search_path TO clinic, public', 'clinic_api', current_database());
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout TO %L', 'clinic_api', current_database(), '5s');
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), 'clinic_api');
END
$$;
