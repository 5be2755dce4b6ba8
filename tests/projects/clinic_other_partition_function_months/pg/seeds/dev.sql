-- dev.sql - DEV/TEST ONLY demo surgery for Brightsmile Dental. NEVER run against production.
-- Made-up people, @example.net addresses, a handful of visits in February 2024.
-- Loaded by the test tooling with the audit triggers off: demo rows have no change history.

DO $$
DECLARE
    env text := coalesce(nullif(current_setting('app.environment', true), ''), '');
BEGIN
    IF env NOT IN ('development', 'test') THEN
        RAISE EXCEPTION 'dev.sql is demo data for development/test only; app.environment is "%"', env;
    END IF;
END;
$$;

INSERT INTO clinic.dentists (name, email, gdc_number, created_at) VALUES
    ('Dr Priya Shah', 'priya.shah@example.net', 'DEMO0001', '2024-02-01 09:00+00'),
    ('Dr Owen Hughes', 'owen.hughes@example.net', 'DEMO0002', '2024-02-01 09:00+00')
ON CONFLICT (gdc_number) DO NOTHING;

INSERT INTO clinic.patients (name, date_of_birth, email, mobile, nhs_number, registered_at) VALUES
    ('Ellis Sample', '1970-01-15', 'ellis@example.net', '07700 900001', '9990000001', '2024-02-01 09:30+00'),
    ('Frankie Demo', '1988-09-09', NULL, '07700 900002', '9990000002', '2024-02-01 09:40+00'),
    ('Georgie Test', '2016-04-04', NULL, NULL, '9990000003', '2024-02-01 09:50+00')
ON CONFLICT (nhs_number) DO NOTHING;

INSERT INTO clinic.appointments (dentist_id, patient_id, starts_at, minutes, status, created_at)
SELECT d.id, p.id, v.starts_at, v.minutes, v.status, '2024-02-01 10:00+00'
  FROM (VALUES
        ('DEMO0001', '9990000001', timestamptz '2024-02-05 09:00+00', 20, 'attended'),
        ('DEMO0001', '9990000002', timestamptz '2024-02-05 09:20+00', 40, 'attended'),
        ('DEMO0002', '9990000003', timestamptz '2024-02-06 15:30+00', 20, 'failed')
       ) AS v (gdc_number, nhs_number, starts_at, minutes, status)
  JOIN clinic.dentists d ON d.gdc_number = v.gdc_number
  JOIN clinic.patients p ON p.nhs_number = v.nhs_number
ON CONFLICT (dentist_id, starts_at) DO NOTHING;

INSERT INTO clinic.treatment_items (appointment_id, treatment_code, tooth)
SELECT a.id, v.code, v.tooth
  FROM (VALUES ('9990000001', 'EXAM', NULL), ('9990000001', 'SCALE', NULL),
               ('9990000002', 'EXAM', NULL), ('9990000002', 'FILL', 'UR6')) AS v (nhs_number, code, tooth)
  JOIN clinic.patients p ON p.nhs_number = v.nhs_number
  JOIN clinic.appointments a ON a.patient_id = p.id
 WHERE NOT EXISTS (SELECT 1 FROM clinic.treatment_items x
                    WHERE x.appointment_id = a.id AND x.treatment_code = v.code);

INSERT INTO clinic.payments (patient_id, appointment_id, amount_pence, method, taken_at)
SELECT a.patient_id, a.id, sum(t.fee_pence), 'card', a.starts_at + make_interval(mins => a.minutes)
  FROM clinic.appointments a
  JOIN clinic.treatment_items i ON i.appointment_id = a.id
  JOIN clinic.treatments t ON t.code = i.treatment_code
 WHERE a.status = 'attended'
   AND NOT EXISTS (SELECT 1 FROM clinic.payments x WHERE x.appointment_id = a.id)
 GROUP BY a.id, a.patient_id, a.starts_at, a.minutes;
