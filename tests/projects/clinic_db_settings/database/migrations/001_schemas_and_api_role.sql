-- 001_schemas_and_api_role.sql
-- CareNet hosts several clinics (tenants) in one database.
-- clinic_api is the login of the API servers. Roles are shared by every database of a server,
-- so it is created only if missing; its per-database settings are made in 005.

CREATE SCHEMA clinic;
CREATE SCHEMA audit;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clinic_api') THEN
        CREATE ROLE clinic_api LOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA clinic TO clinic_api;
