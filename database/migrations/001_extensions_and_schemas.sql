-- 001_extensions_and_schemas.sql
-- Installs the three extensions the clinic database uses and creates its four schemas:
--   citext      case-insensitive text (e-mail addresses, slugs)
--   btree_gist  lets GiST exclusion constraints compare uuid with "=" (no double booking)
--   pg_trgm     trigram index for patient name search
--   clinic      core domain: clinics, users, doctors, patients, appointments, records, payments
--   audit       append-only audit trail (audit.audit_logs) and its functions
--   booking     appointment slots and bookings
--   webhook     inbound webhook events and the outbound delivery queue
-- Only extensions shipped with every PostgreSQL build are used (no pgcrypto, no uuid-ossp:
-- gen_random_uuid() is core). The schema "clinicdb" belongs to the migration runner, not to us.

CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE SCHEMA clinic;
COMMENT ON SCHEMA clinic IS 'Core clinic domain: clinics, users, doctors, staff, patients, appointments, medical records, prescriptions, payments, configuration.';

CREATE SCHEMA audit;
COMMENT ON SCHEMA audit IS 'Append-only audit trail written by triggers (audit.log_change) into the monthly partitioned audit.audit_logs.';

CREATE SCHEMA booking;
COMMENT ON SCHEMA booking IS 'Bookable doctor slots and bookings; double booking is prevented by exclusion constraints.';

CREATE SCHEMA webhook;
COMMENT ON SCHEMA webhook IS 'Inbound webhook events (idempotent by provider + key) and the outbound delivery queue.';
