-- 020_tenant_row_level_security.sql
-- Gives every remaining table clinic_app can read row-level security keyed on the clinic, like
-- the patient data tables of 017:
--   clinic.users, clinic.doctors, clinic.staff, booking.slots   their own clinic_id column
--   booking.bookings                                             no clinic column: through its slot
--                                                                (reads), and its slot, patient and
--                                                                appointment (writes)
-- and adds clinic.account_for_login(email), the one way a session that has not chosen a clinic
-- yet may look an account up.
--
-- Why: 017 left these tables without row-level security so that the application could log a
-- user in before choosing a clinic. Measured with seed 002, a clinic_app session acting for one
-- clinic saw every account (e-mail, name, phone, password hash) of every clinic, every doctor,
-- staff profile, slot and booking. Now a session sees and writes only the rows of the clinic in
-- app.current_clinic_id (clinic.current_clinic_id(), 017); unset or empty, it sees none.
-- Platform administrators (users.clinic_id IS NULL) are invisible to clinic_app.
--
-- Shared by design, and therefore without row-level security (read-only for clinic_app, 019):
-- clinic.clinics, clinic.feature_flags, clinic.system_settings. The webhook tables are not the
-- application's at all (018). The table owner is not subject to these policies (enabled, not
-- forced): migrations, seeds and the owner's tests see every row.
--
-- Logging in: clinic.account_for_login(p_email) returns the one account with that e-mail
-- (case-insensitive): id, clinic, role, password hash and whether it is active; nothing for an
-- unknown address. It is SECURITY DEFINER (it reads past row-level security), with a fixed
-- search_path, and only clinic_app may execute it. It returns one account per call and never
-- lists accounts.

ALTER TABLE clinic.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_clinic_isolation ON clinic.users
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.doctors ENABLE ROW LEVEL SECURITY;
CREATE POLICY doctors_clinic_isolation ON clinic.doctors
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE clinic.staff ENABLE ROW LEVEL SECURITY;
CREATE POLICY staff_clinic_isolation ON clinic.staff
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

ALTER TABLE booking.slots ENABLE ROW LEVEL SECURITY;
CREATE POLICY slots_clinic_isolation ON booking.slots
    FOR ALL TO clinic_app
    USING (clinic_id = clinic.current_clinic_id())
    WITH CHECK (clinic_id = clinic.current_clinic_id());

-- A booking belongs to the clinic of its slot. A new or changed booking must also name a patient
-- and an appointment of that clinic (the foreign keys alone would accept another clinic's).
-- The subqueries run under the slots', patients' and appointments' own policies.
ALTER TABLE booking.bookings ENABLE ROW LEVEL SECURITY;
CREATE POLICY bookings_clinic_isolation ON booking.bookings
    FOR ALL TO clinic_app
    USING (EXISTS (SELECT 1 FROM booking.slots s
                   WHERE s.id = bookings.slot_id AND s.clinic_id = clinic.current_clinic_id()))
    WITH CHECK (
        EXISTS (SELECT 1 FROM booking.slots s
                WHERE s.id = bookings.slot_id AND s.clinic_id = clinic.current_clinic_id())
        AND EXISTS (SELECT 1 FROM clinic.patients p
                    WHERE p.id = bookings.patient_id AND p.clinic_id = clinic.current_clinic_id())
        AND EXISTS (SELECT 1 FROM clinic.appointments a
                    WHERE a.id = bookings.appointment_id AND a.clinic_id = clinic.current_clinic_id()));

CREATE FUNCTION clinic.account_for_login(p_email text)
RETURNS TABLE (user_id uuid, clinic_id uuid, role clinic.user_role, password_hash text, is_active boolean)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- citext's operator lives in schema public, which is deliberately not on the search_path of
    -- a SECURITY DEFINER function: name it, or "=" would compare as case-sensitive text.
    SELECT u.id, u.clinic_id, u.role, u.password_hash, u.is_active
      FROM clinic.users u
     WHERE u.email OPERATOR(public.=) p_email::public.citext
$$;

COMMENT ON FUNCTION clinic.account_for_login(text) IS
    'The account with this e-mail (case-insensitive), read past row-level security, for logging in before a clinic is chosen. SECURITY DEFINER; EXECUTE for clinic_app only.';

REVOKE ALL ON FUNCTION clinic.account_for_login(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clinic.account_for_login(text) TO clinic_app;
