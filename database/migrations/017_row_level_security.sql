-- 017_row_level_security.sql
-- Enables row-level security for clinic_app on the tables holding patient data:
--   clinic.patients, clinic.appointments, clinic.medical_records, clinic.prescriptions,
--   clinic.payments
-- A clinic_app session sees and writes only rows of the clinic named by the session setting
-- app.current_clinic_id (a clinic uuid), e.g. SELECT set_config('app.current_clinic_id', '<uuid>', true).
-- Unset or empty, it sees no rows and can write none (NULL-safe: the comparison is never true).
-- A value that is not a uuid is an error (22P02), not a silent match.
--
-- The table owner (the role running migrations, a superuser in tests) is not subject to these
-- policies: RLS is enabled but not forced. Any other role without a policy sees no rows.
-- clinics, users, doctors, staff, feature_flags, system_settings and the booking and webhook
-- tables have no row-level security (the application needs them before a clinic is chosen,
-- e.g. to log a user in).

CREATE FUNCTION clinic.current_clinic_id()
RETURNS uuid
LANGUAGE sql
STABLE
AS $$
    SELECT nullif(pg_catalog.current_setting('app.current_clinic_id', true), '')::uuid
$$;

COMMENT ON FUNCTION clinic.current_clinic_id() IS
    'The clinic of the current session: setting app.current_clinic_id as uuid, NULL when unset or empty.';

ALTER TABLE clinic.patients ENABLE ROW LEVEL SECURITY;
CREATE POLICY patients_clinic_isolation ON clinic.patients
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.appointments ENABLE ROW LEVEL SECURITY;
CREATE POLICY appointments_clinic_isolation ON clinic.appointments
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.medical_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY medical_records_clinic_isolation ON clinic.medical_records
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.prescriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY prescriptions_clinic_isolation ON clinic.prescriptions
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.payments ENABLE ROW LEVEL SECURITY;
CREATE POLICY payments_clinic_isolation ON clinic.payments
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());
