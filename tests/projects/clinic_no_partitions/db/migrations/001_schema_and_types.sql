-- 001_schema_and_types.sql
-- Lakeside Family Practice, core schema.

CREATE SCHEMA clinic;

CREATE TYPE clinic.staff_role AS ENUM ('gp', 'nurse', 'receptionist', 'practice_manager');
CREATE TYPE clinic.visit_status AS ENUM ('scheduled', 'arrived', 'seen', 'did_not_attend', 'cancelled');
