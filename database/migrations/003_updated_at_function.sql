-- 003_updated_at_function.sql
-- Creates clinic.set_updated_at(), the BEFORE UPDATE row trigger function that maintains the
-- updated_at column. Every table with an updated_at column gets a trigger named
-- set_updated_at_<table> in the migration that creates the table.
--
-- Behaviour:
--   * an UPDATE that changes the row sets updated_at to now() (transaction start time);
--   * an UPDATE that changes nothing leaves updated_at alone, so an idempotent seed re-run
--     (ON CONFLICT ... DO UPDATE to identical values) does not move timestamps;
--   * an UPDATE that assigns updated_at itself keeps the assigned value.

CREATE FUNCTION clinic.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION clinic.set_updated_at() IS
    'BEFORE UPDATE trigger: sets updated_at = now() when the row changes and the statement did not set updated_at itself.';
