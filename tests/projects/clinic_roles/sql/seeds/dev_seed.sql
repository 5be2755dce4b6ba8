-- dev_seed.sql - DEV/TEST ONLY. Sample doctors, patients and visits (September 2024).
-- Refuses to run unless app.environment is development or test. Audit triggers are switched
-- off by the loader while it runs: sample rows have no audit trail.

DO $$
DECLARE
    target text := coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');
BEGIN
    IF target NOT IN ('development', 'test') THEN
        RAISE EXCEPTION 'dev_seed.sql must not run here (app.environment: %)', target;
    END IF;
END;
$$;

INSERT INTO clinic.users (username, full_name, is_doctor, created_at) VALUES
    ('dr.nguyen', 'Dr Linh Nguyen', true, '2024-09-02 08:00+00'),
    ('dr.okoro', 'Dr Chidi Okoro', true, '2024-09-02 08:00+00'),
    ('desk', 'Reception desk', false, '2024-09-02 08:00+00')
ON CONFLICT (username) DO NOTHING;

INSERT INTO clinic.patients (chart_no, full_name, dob, phone, created_at) VALUES
    ('ML-1001', 'Quinn Example', '1990-03-03', '555-0101', '2024-09-02 09:00+00'),
    ('ML-1002', 'Rowan Sample', '1948-12-12', NULL, '2024-09-02 09:05+00')
ON CONFLICT (chart_no) DO NOTHING;

INSERT INTO clinic.appointments (patient_id, doctor_id, start_time, end_time, state)
SELECT p.id, u.id, v.start_time, v.start_time + interval '15 minutes', v.state
  FROM (VALUES ('ML-1001', 'dr.nguyen', timestamptz '2024-09-03 09:00+00', 'done'),
               ('ML-1002', 'dr.okoro', timestamptz '2024-09-03 09:30+00', 'done'),
               ('ML-1002', 'dr.okoro', timestamptz '2024-09-17 09:30+00', 'booked')) AS v (chart_no, username, start_time, state)
  JOIN clinic.patients p ON p.chart_no = v.chart_no
  JOIN clinic.users u ON u.username = v.username
 WHERE NOT EXISTS (SELECT 1 FROM clinic.appointments a WHERE a.patient_id = p.id AND a.start_time = v.start_time);

INSERT INTO clinic.payments (appointment_id, amount, paid_at)
SELECT a.id, 80.00, a.end_time
  FROM clinic.appointments a
 WHERE a.state = 'done'
   AND NOT EXISTS (SELECT 1 FROM clinic.payments x WHERE x.appointment_id = a.id);
