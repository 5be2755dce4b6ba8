-- 002_demo.sql - DEV/TEST ONLY: the Lakeside demo practice. Do not run in production.
-- Invented people only. Loaded with the audit triggers off, so the demo rows have no history
-- (and need no audit partition).

DO $$
BEGIN
    IF coalesce(nullif(current_setting('app.environment', true), ''), '<unset>') NOT IN ('development', 'test') THEN
        RAISE EXCEPTION USING
            MESSAGE = '002_demo.sql refused: app.environment must be development or test',
            DETAIL = format('app.environment is %s', coalesce(nullif(current_setting('app.environment', true), ''), '<unset>'));
    END IF;
END;
$$;

DO $$
DECLARE
    dr_ahmed    constant uuid := 'd0000000-0000-4000-8000-000000000001';
    nurse_kay   constant uuid := 'd0000000-0000-4000-8000-000000000002';
    p_river     constant uuid := 'd0000000-0000-4000-8000-000000000101';
    p_sky       constant uuid := 'd0000000-0000-4000-8000-000000000102';
    v_1         constant uuid := 'd0000000-0000-4000-8000-000000000201';
    v_2         constant uuid := 'd0000000-0000-4000-8000-000000000202';
    v_3         constant uuid := 'd0000000-0000-4000-8000-000000000203';
    demo_day    constant timestamptz := '2025-06-02 08:00:00+00';
BEGIN
    INSERT INTO clinic.staff (id, full_name, email, role, created_at) VALUES
        (dr_ahmed, 'Dr Samira Ahmed', 'samira.ahmed@lakeside.example', 'gp', demo_day),
        (nurse_kay, 'Kay Okafor', 'kay.okafor@lakeside.example', 'nurse', demo_day)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.patients (id, full_name, born_on, sex, email, registered_gp, created_at) VALUES
        (p_river, 'River Example', '1975-05-05', 'unknown', 'river@example.com', dr_ahmed, demo_day),
        (p_sky, 'Sky Specimen', '2001-01-31', 'female', NULL, dr_ahmed, demo_day)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.visits (id, patient_id, clinician_id, reason_code, scheduled_for, status, summary, created_at) VALUES
        (v_1, p_river, dr_ahmed, 'REVIEW', demo_day + interval '1 day 1 hour', 'seen', 'Repeat prescription reviewed.', demo_day),
        (v_2, p_sky, nurse_kay, 'TRAVEL', demo_day + interval '2 days', 'seen', 'Hepatitis A, first dose.', demo_day),
        (v_3, p_sky, dr_ahmed, 'ROUTINE', demo_day + interval '9 days', 'did_not_attend', NULL, demo_day)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.payments (id, visit_id, patient_id, amount, description, paid_at) VALUES
        ('d0000000-0000-4000-8000-000000000301', v_2, p_sky, 55.00, 'Hepatitis A vaccine', demo_day + interval '2 days 20 minutes')
    ON CONFLICT (id) DO NOTHING;
END;
$$;
