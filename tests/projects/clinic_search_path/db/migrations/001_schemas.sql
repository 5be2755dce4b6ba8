-- 001_schemas.sql
-- Two schemas: clinic (the application) and audit (the change log, written by triggers only).
-- Everything else in this repository runs with `SET search_path TO clinic, public;` at the top
-- and names clinic tables without a schema.

CREATE SCHEMA IF NOT EXISTS clinic;
CREATE SCHEMA IF NOT EXISTS audit;

COMMENT ON SCHEMA clinic IS 'Harbour Street Clinic: people, visits, money.';
COMMENT ON SCHEMA audit IS 'Append-only change log of the clinic schema.';
