-- 002_dev_seed.sql - DEV/TEST ONLY. Two demo clinics with a few patients each (autumn 2025).
-- Never run in production. Rows of each clinic are written with app.current_clinic_id set to
-- that clinic, so the seed also loads where app.tenant_mode is strict. Audit triggers are
-- disabled by the loader; demo rows are not audited.

DO $$
BEGIN
    IF coalesce(nullif(current_setting('app.environment', true), ''), '<unset>') NOT IN ('development', 'test') THEN
        RAISE EXCEPTION '002_dev_seed.sql: DEV/TEST ONLY (app.environment = %)',
            coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');
    END IF;
END
$$;

INSERT INTO clinic.clinics (id, name, city) VALUES
    (1, 'CareNet Demo North', 'Leeds'),
    (2, 'CareNet Demo South', 'Brighton')
ON CONFLICT (id) DO NOTHING;

DO $$
DECLARE
    demo_clinic integer;
    p_id bigint;
    a_id bigint;
BEGIN
    FOREACH demo_clinic IN ARRAY ARRAY[1, 2] LOOP
        PERFORM set_config('app.current_clinic_id', demo_clinic::text, true);
        IF EXISTS (SELECT FROM clinic.patients WHERE clinic_id = demo_clinic) THEN
            CONTINUE;
        END IF;
        FOR i IN 1..3 LOOP
            INSERT INTO clinic.patients (clinic_id, name, birth_date, email, created_at)
            VALUES (demo_clinic, format('Demo Patient %s-%s', demo_clinic, i), date '1980-01-01' + i * 1000,
                    format('patient%s.%s@example.com', demo_clinic, i), timestamptz '2025-10-01 09:00+00')
            RETURNING id INTO p_id;
            INSERT INTO clinic.appointments (clinic_id, patient_id, specialty, at, created_at)
            VALUES (demo_clinic, p_id, CASE WHEN i = 3 THEN 'PED' ELSE 'GP' END,
                    timestamptz '2025-10-06 09:00+00' + i * interval '30 minutes', timestamptz '2025-10-01 09:00+00')
            RETURNING id INTO a_id;
            INSERT INTO clinic.invoices (clinic_id, appointment_id, amount_cents, paid, created_at)
            VALUES (demo_clinic, a_id, 6000, i <> 2, timestamptz '2025-10-06 12:00+00');
        END LOOP;
    END LOOP;
    PERFORM set_config('app.current_clinic_id', '', true);
END
$$;
