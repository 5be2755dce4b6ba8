-- 002_dev_seed.sql: DEV/TEST ONLY sample practice. Never run in production.
-- Two therapists, three patients and a week of sessions in May 2023, with invoices and
-- payments. Load it with the audit triggers disabled; the sample rows have no audit history.

DO $$
BEGIN
    IF coalesce(nullif(current_setting('app.environment', true), ''), 'unset')
           NOT IN ('development', 'test') THEN
        RAISE EXCEPTION '002_dev_seed.sql: refusing to load sample data (app.environment = %)',
            coalesce(nullif(current_setting('app.environment', true), ''), 'unset');
    END IF;
END;
$$;

INSERT INTO clinic.therapists (display_name, email, registration_no, created_at)
VALUES ('Jordan Reyes', 'jordan.reyes@example.org', 'PT-TEST-001', '2023-05-01 07:00+00'),
       ('Casey Morgan', 'casey.morgan@example.org', 'PT-TEST-002', '2023-05-01 07:00+00')
ON CONFLICT (email) DO NOTHING;

INSERT INTO clinic.patients (given_name, family_name, birth_date, email, insurer, insurance_no, created_at)
VALUES ('Lee', 'Sample', '1979-03-14', 'lee.sample@example.org', 'Example Health', 'EH-000001', '2023-05-02 08:00+00'),
       ('Noor', 'Testcase', '1995-11-02', NULL, 'Example Health', 'EH-000002', '2023-05-02 08:10+00'),
       ('Ari', 'Fixture', '2008-06-21', NULL, 'Demo Mutual', 'DM-000001', '2023-05-02 08:20+00')
ON CONFLICT (insurer, insurance_no) DO NOTHING;

INSERT INTO clinic.treatment_sessions (therapist_id, patient_id, treatment_code, starts_at, ends_at, attended, created_at)
SELECT t.therapist_id, p.patient_id, s.code, s.starts_at, s.starts_at + c.minutes * interval '1 minute',
       s.attended, '2023-05-02 09:00+00'
  FROM (VALUES
        ('PT-TEST-001', 'EH-000001', 'ASSESS', timestamptz '2023-05-08 08:00+00', true),
        ('PT-TEST-001', 'EH-000001', 'PT30',   timestamptz '2023-05-10 08:00+00', true),
        ('PT-TEST-001', 'EH-000002', 'PT60',   timestamptz '2023-05-10 09:00+00', false),
        ('PT-TEST-002', 'DM-000001', 'MLD',    timestamptz '2023-05-11 13:00+00', true)
       ) AS s (registration_no, insurance_no, code, starts_at, attended)
  JOIN clinic.therapists t ON t.registration_no = s.registration_no
  JOIN clinic.patients p ON p.insurance_no = s.insurance_no
  JOIN clinic.treatment_catalogue c ON c.code = s.code
 WHERE NOT EXISTS (SELECT 1 FROM clinic.treatment_sessions x
                    WHERE x.therapist_id = t.therapist_id AND x.starts_at = s.starts_at);

INSERT INTO clinic.invoices (session_id, total_cents, issued_on, created_at)
SELECT s.session_id, c.price_cents, s.ends_at::date, s.ends_at
  FROM clinic.treatment_sessions s
  JOIN clinic.treatment_catalogue c ON c.code = s.treatment_code
 WHERE s.attended
ON CONFLICT (session_id) DO NOTHING;

INSERT INTO clinic.payments (invoice_id, amount_cents, paid_via, received_at)
SELECT i.invoice_id, i.total_cents, 'insurer', i.created_at + interval '14 days'
  FROM clinic.invoices i
 WHERE NOT EXISTS (SELECT 1 FROM clinic.payments x WHERE x.invoice_id = i.invoice_id)
   AND i.total_cents < 7000;
