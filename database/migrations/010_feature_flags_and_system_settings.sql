-- 010_feature_flags_and_system_settings.sql
-- Creates clinic.feature_flags and clinic.system_settings (system configuration, no personal
-- data; filled by database/seeds/001_system_seed.sql), keyed by a unique dotted key, with their
-- set_updated_at_<table> triggers. These tables are not audited (no personal or financial data),
-- so loading the system seed never depends on audit partitions.

CREATE TABLE clinic.feature_flags (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key          text NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    enabled      boolean NOT NULL DEFAULT false,
    description  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER set_updated_at_feature_flags
    BEFORE UPDATE ON clinic.feature_flags
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE TABLE clinic.system_settings (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key          text NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    value        jsonb NOT NULL,
    description  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER set_updated_at_system_settings
    BEFORE UPDATE ON clinic.system_settings
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
