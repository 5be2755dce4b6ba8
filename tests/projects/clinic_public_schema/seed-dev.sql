-- seed-dev.sql - DEV/TEST ONLY fake clinic data (March 2025). Never run on production.
-- Load with the audit triggers disabled: the fake rows get no audit_log entries.

DO $$
DECLARE
    env text := coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');
BEGIN
    IF env NOT IN ('development', 'test') THEN
        RAISE EXCEPTION 'seed-dev.sql: fake data is only for development/test (app.environment: %)', env;
    END IF;
END;
$$;

INSERT INTO users (id, email, display_name, role, created_at, updated_at) VALUES
    (1, 'admin@riverbend.test', 'Admin', 'admin', '2025-03-03 08:00+00', '2025-03-03 08:00+00'),
    (2, 'dr.wells@riverbend.test', 'Dr. Jamie Wells', 'provider', '2025-03-03 08:00+00', '2025-03-03 08:00+00'),
    (3, 'dr.ito@riverbend.test', 'Dr. Mika Ito', 'provider', '2025-03-03 08:00+00', '2025-03-03 08:00+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO patients (id, first_name, last_name, dob, email, phone, created_at, updated_at) VALUES
    (1, 'Taylor', 'Fake', '1982-04-01', 'taylor@example.com', '555-0142', '2025-03-03 09:00+00', '2025-03-03 09:00+00'),
    (2, 'Morgan', 'Mock', '1957-08-19', NULL, '555-0143', '2025-03-03 09:00+00', '2025-03-03 09:00+00'),
    (3, 'Jesse', 'Stub', '2019-02-28', NULL, NULL, '2025-03-03 09:00+00', '2025-03-03 09:00+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO appointments (id, patient_id, provider_id, scheduled_at, duration_min, created_at, updated_at) VALUES
    (1, 1, 2, '2025-03-04 09:00+00', 15, '2025-03-03 09:30+00', '2025-03-03 09:30+00'),
    (2, 2, 2, '2025-03-04 09:15+00', 30, '2025-03-03 09:30+00', '2025-03-03 09:30+00'),
    (3, 3, 3, '2025-03-05 14:00+00', 15, '2025-03-03 09:30+00', '2025-03-03 09:30+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO payments (id, appointment_id, amount, due_on, paid_on, created_at, updated_at) VALUES
    (1, 1, 45.00, '2025-03-18', '2025-03-10', '2025-03-04 09:15+00', '2025-03-10 12:00+00'),
    (2, 2, 90.00, '2025-03-18', NULL, '2025-03-04 09:45+00', '2025-03-04 09:45+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO vital_signs (patient_id, measured_at, systolic, diastolic, pulse, weight_kg)
SELECT v.*
  FROM (VALUES (1, timestamptz '2025-03-04 08:55+00', 128::smallint, 84::smallint, 72::smallint, 81.4),
               (2, timestamptz '2025-03-04 09:10+00', 141::smallint, 90::smallint, 80::smallint, 67.0)
       ) AS v (patient_id, measured_at, systolic, diastolic, pulse, weight_kg)
 WHERE NOT EXISTS (SELECT 1 FROM vital_signs x WHERE x.patient_id = v.patient_id AND x.measured_at = v.measured_at);

-- keep the serials ahead of the fixed ids above
SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
SELECT setval(pg_get_serial_sequence('patients', 'id'), (SELECT max(id) FROM patients));
SELECT setval(pg_get_serial_sequence('appointments', 'id'), (SELECT max(id) FROM appointments));
SELECT setval(pg_get_serial_sequence('payments', 'id'), (SELECT max(id) FROM payments));
