-- 002_schemas.sql

CREATE SCHEMA clinic;
CREATE SCHEMA audit;

GRANT USAGE ON SCHEMA clinic TO app_user, reporting;
