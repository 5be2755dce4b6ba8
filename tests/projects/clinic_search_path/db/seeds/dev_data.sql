-- dev_data.sql - DEV/TEST ONLY. Never load this into production.
--
-- Demo staff, patients, visits and payments for local development and the test suite.
-- Everyone here is made up; every address is @example.com.
--
-- The demo practice "opened" in March 2024, so every row is dated spring 2024. Audit rows are
-- stamped with the row's updated_at and there are no audit partitions for 2024: load this file
-- with the audit triggers switched off (our dev tooling does that), or it stops with 23514.

SET search_path TO clinic, public;

DO $$
DECLARE
    env text := coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');
BEGIN
    IF env NOT IN ('development', 'test') THEN
        RAISE EXCEPTION 'dev_data.sql is for development and test databases only (app.environment is %)', env
            USING HINT = 'SET app.environment = ''development'' on a database you can throw away.';
    END IF;
END
$$;

-- Staff and the first patients.
DO $$
DECLARE
    opened_at constant timestamptz := '2024-03-04 08:00:00+00';
BEGIN
    INSERT INTO users (email, full_name, role, created_at, updated_at) VALUES
        ('maria.lopez@example.com', 'Dr. Maria Lopez', 'doctor', opened_at, opened_at),
        ('tom.becker@example.com', 'Dr. Tom Becker', 'doctor', opened_at, opened_at),
        ('sam.nurse@example.com', 'Sam Nurse', 'nurse', opened_at, opened_at),
        ('front.desk@example.com', 'Front Desk', 'reception', opened_at, opened_at)
    ON CONFLICT (email) DO UPDATE
        SET full_name = EXCLUDED.full_name,
            role = EXCLUDED.role;

    INSERT INTO patients (mrn, first_name, last_name, date_of_birth, email, phone,
                          primary_doctor_id, created_at, updated_at)
    SELECT v.mrn, v.first_name, v.last_name, v.date_of_birth, v.email, v.phone, u.id,
           opened_at, opened_at
      FROM (VALUES
            ('HS-0001', 'Alex', 'Sample', date '1984-02-11', 'alex.sample@example.com', '+49 40 555 0101', 'maria.lopez@example.com'),
            ('HS-0002', 'Robin', 'Demo', date '1961-07-30', NULL, '+49 40 555 0102', 'maria.lopez@example.com'),
            ('HS-0003', 'Kim', 'Placeholder', date '2012-10-05', NULL, NULL, 'tom.becker@example.com')
           ) AS v (mrn, first_name, last_name, date_of_birth, email, phone, doctor_email)
      JOIN users u ON u.email = v.doctor_email
    ON CONFLICT (mrn) DO NOTHING;

    INSERT INTO appointments (patient_id, doctor_id, appointment_type, starts_at, ends_at, status,
                              created_at, updated_at)
    SELECT p.id, p.primary_doctor_id, v.appointment_type, v.starts_at, v.starts_at + v.length, v.status,
           opened_at, opened_at
      FROM (VALUES
            ('HS-0001', 'first_visit', timestamptz '2024-03-11 08:30:00+00', interval '40 minutes', 'completed'),
            ('HS-0002', 'first_visit', timestamptz '2024-03-11 09:20:00+00', interval '40 minutes', 'completed'),
            ('HS-0003', 'vaccination', timestamptz '2024-03-12 14:00:00+00', interval '10 minutes', 'no_show'),
            ('HS-0001', 'follow_up', timestamptz '2024-04-08 08:30:00+00', interval '20 minutes', 'cancelled')
           ) AS v (mrn, appointment_type, starts_at, length, status)
      JOIN patients p ON p.mrn = v.mrn
     WHERE NOT EXISTS (SELECT 1 FROM appointments a
                        WHERE a.patient_id = p.id AND a.starts_at = v.starts_at);
END
$$;

-- A walk-in: the patient and her first visit in one statement.
WITH new_patient AS (
    INSERT INTO patients (mrn, first_name, last_name, date_of_birth, created_at, updated_at)
    VALUES ('HS-0004', 'Jo', 'Example', date '1999-12-24',
            timestamptz '2024-03-05 10:00:00+00', timestamptz '2024-03-05 10:00:00+00')
    ON CONFLICT (mrn) DO NOTHING
    RETURNING id
)
INSERT INTO appointments (patient_id, doctor_id, appointment_type, starts_at, ends_at, status,
                          created_at, updated_at)
SELECT np.id, u.id, 'first_visit',
       timestamptz '2024-03-05 10:15:00+00', timestamptz '2024-03-05 10:55:00+00', 'completed',
       timestamptz '2024-03-05 10:00:00+00', timestamptz '2024-03-05 10:00:00+00'
  FROM new_patient np
  JOIN users u ON u.email = 'tom.becker@example.com';

-- Robin was sent on to dermatology after the first visit.
INSERT INTO "Referral" ("patientId", "referredTo", reason, created_at, updated_at)
SELECT p.id, 'Dermatology, St. Example Hospital', 'Atypical naevus, left shoulder',
       timestamptz '2024-03-11 10:05:00+00', timestamptz '2024-03-11 10:05:00+00'
  FROM patients p
 WHERE p.mrn = 'HS-0002'
ON CONFLICT ("patientId", "referredTo") DO NOTHING;

-- Every completed visit was paid; Alex paid by card, the others in cash.
INSERT INTO payments (appointment_id, amount_cents, method, paid_at, created_at, updated_at)
SELECT a.id, 6500, CASE WHEN p.mrn = 'HS-0001' THEN 'card' ELSE 'cash' END,
       a.ends_at, a.ends_at, a.ends_at
  FROM appointments a
  JOIN patients p ON p.id = a.patient_id
 WHERE a.status = 'completed'
   AND NOT EXISTS (SELECT 1 FROM payments x WHERE x.appointment_id = a.id);

-- Jo's walk-in was refunded (the practice forgot she had a voucher).
UPDATE ONLY payments AS pay
   SET status = 'refunded'
  FROM appointments a
  JOIN patients p ON p.id = a.patient_id
 WHERE pay.appointment_id = a.id
   AND p.mrn = 'HS-0004'
   AND pay.status <> 'refunded';

-- Kim's no-show was entered twice by the old system; drop the duplicate if there is one.
DELETE FROM ONLY appointments AS dup
 USING appointments keep
 WHERE dup.patient_id = keep.patient_id
   AND dup.starts_at = keep.starts_at
   AND dup.id > keep.id;
