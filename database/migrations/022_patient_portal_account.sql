-- 022_patient_portal_account.sql
-- A patient's portal account (clinic.patients.user_id) must be a patient account of the
-- patient's own clinic.
--
-- Why: 006 made user_id a plain foreign key to clinic.users(id), so the database accepted a
-- staff or doctor account as a patient's portal account, or an account of another clinic —
-- giving that account the patient's portal view, across clinics. Only the application checked
-- it. Now a composite foreign key enforces it, for every writer, without a trigger and without a
-- race: patients (clinic_id, user_id, portal_account_role) references users
-- (clinic_id, id, role), where portal_account_role is a stored generated column that is always
-- 'patient'. A patient without an account (user_id NULL) is not checked (MATCH SIMPLE). The same
-- key also stops the other side: an account linked to a patient cannot change its role or
-- clinic while the link exists (23503 on the users update).
--
-- Violations raise 23503 foreign_key_violation on constraint patients_portal_account_fk.
-- Adding the constraint checks the existing rows: if this migration fails on it, a patient is
-- linked to a wrong account — unlink it (UPDATE clinic.patients SET user_id = NULL ...) or fix
-- the account, then run the migration again. The UNIQUE (clinic_id, id, role) on users exists only
-- as the key's target (id alone is already unique). patients_user_id_fkey (006) stays.

ALTER TABLE clinic.users
    ADD CONSTRAINT users_clinic_id_id_role_key UNIQUE (clinic_id, id, role);

ALTER TABLE clinic.patients
    ADD COLUMN portal_account_role clinic.user_role
        GENERATED ALWAYS AS ('patient'::clinic.user_role) STORED;

COMMENT ON COLUMN clinic.patients.portal_account_role IS
    'Always ''patient'': the role part of patients_portal_account_fk (a portal account must be a patient account of the same clinic).';

ALTER TABLE clinic.patients
    ADD CONSTRAINT patients_portal_account_fk
        FOREIGN KEY (clinic_id, user_id, portal_account_role)
        REFERENCES clinic.users (clinic_id, id, role);
