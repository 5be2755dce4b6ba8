-- 002_types.sql
-- Enumerated types and domains shared by the tables of later migrations.
-- Adding a value to an enum later: ALTER TYPE ... ADD VALUE in a migration of its own. The
-- runner applies each file in one transaction, and PostgreSQL refuses to use an enum value in
-- the transaction that added it, so the migration that first uses the value must be a later file.

CREATE TYPE clinic.user_role AS ENUM ('admin', 'doctor', 'patient', 'staff');
COMMENT ON TYPE clinic.user_role IS 'Role of a clinic.users account.';

CREATE TYPE clinic.appointment_status AS ENUM (
    'scheduled', 'confirmed', 'checked_in', 'completed', 'cancelled', 'no_show'
);

CREATE TYPE clinic.payment_status AS ENUM ('pending', 'succeeded', 'failed', 'refunded');

CREATE TYPE clinic.payment_method AS ENUM ('card', 'cash', 'insurance', 'bank_transfer');

CREATE TYPE booking.booking_status AS ENUM ('active', 'cancelled');

CREATE TYPE webhook.delivery_status AS ENUM ('pending', 'delivered', 'failed');
COMMENT ON TYPE webhook.delivery_status IS
    'pending: due at next_attempt_at; delivered: done; failed: gave up after max_attempts.';

-- Case-insensitive e-mail address with a minimal shape check (one @, no spaces, a dot in the domain).
CREATE DOMAIN clinic.email_address AS citext
    CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$');

-- ISO 4217 alphabetic currency code, upper case.
CREATE DOMAIN clinic.currency_code AS text
    CHECK (VALUE ~ '^[A-Z]{3}$');
