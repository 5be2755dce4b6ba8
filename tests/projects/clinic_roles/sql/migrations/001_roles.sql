-- 001_roles.sql
-- Database roles of the Meadow Lane Clinic services.
--   app_user   the booking and billing services (no login; the service accounts are members)
--   reporting  the BI tool's login: read-only, short statement timeout. Its password is set by
--              ops from the vault, never in a migration.
-- Both work with unqualified table names: their search_path is set on the role.

CREATE ROLE app_user;
CREATE ROLE reporting LOGIN;

ALTER ROLE app_user SET search_path TO clinic, public;
ALTER ROLE reporting SET search_path TO clinic, public;
ALTER ROLE reporting SET default_transaction_read_only TO on;
ALTER ROLE reporting SET statement_timeout TO '30s';
