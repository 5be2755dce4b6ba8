-- 002_dev_seed.sql — DEV/TEST ONLY. NEVER RUN IN PRODUCTION.
--
-- Synthetic sample data for local development and tests: two clinics, a platform admin, two
-- doctors, a receptionist, three patients (one with a portal account), appointments, a medical
-- record, a prescription, payments, bookable slots and one booking. All names are invented and
-- all e-mail addresses are @example.com; no account has a password.
--
-- Run order: migrations, then 001_system_seed.sql, then this file, through the dev-only wrapper
-- (`clinicdb seed --dev` or the clinic_db_dev fixture), which disables the audit triggers for the
-- load and re-enables them in the same transaction: seeded rows have no audit trail by design.
-- This file never touches triggers itself.
--
-- Guard: the first statement refuses to run unless the session setting app.environment is
-- 'development' or 'test' (unset or empty counts as '<unset>' and is refused).
--
-- Determinism: every created_at/updated_at is the single fixed v_seed_ts
-- (2025-01-15 09:00:00+00) and every other timestamp is v_seed_ts plus a fixed interval, so
-- seeded events look historical (a WARNING says so). Every row has a fixed uuid and is inserted
-- with ON CONFLICT (id) DO NOTHING: a second run succeeds and changes nothing.

DO $$
DECLARE
    v_env text := coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');
BEGIN
    IF v_env NOT IN ('development', 'test') THEN
        RAISE EXCEPTION '002_dev_seed.sql is DEV/TEST ONLY: app.environment is ''%'', it must be ''development'' or ''test''', v_env
            USING HINT = 'Never load this file in production. For a development or test database, set the '
                         'session first (SET app.environment = ''development''; or '
                         'PGOPTIONS=''-c app.environment=development'') and load it with `clinicdb seed --dev`.';
    END IF;
END;
$$;

DO $$
DECLARE
    v_seed_ts constant timestamptz := timestamptz '2025-01-15 09:00:00+00';

    -- clinics
    c_riverside  constant uuid := '5eed0100-0000-4000-8000-000000000001';
    c_hilltop    constant uuid := '5eed0100-0000-4000-8000-000000000002';
    -- users
    u_admin      constant uuid := '5eed0200-0000-4000-8000-000000000001';
    u_dr_demo    constant uuid := '5eed0200-0000-4000-8000-000000000002';
    u_dr_sample  constant uuid := '5eed0200-0000-4000-8000-000000000003';
    u_reception  constant uuid := '5eed0200-0000-4000-8000-000000000004';
    u_pat        constant uuid := '5eed0200-0000-4000-8000-000000000005';
    -- doctors, staff, patients
    d_demo       constant uuid := '5eed0300-0000-4000-8000-000000000001';
    d_sample     constant uuid := '5eed0300-0000-4000-8000-000000000002';
    s_reception  constant uuid := '5eed0500-0000-4000-8000-000000000001';
    p_pat        constant uuid := '5eed0400-0000-4000-8000-000000000001';
    p_terry      constant uuid := '5eed0400-0000-4000-8000-000000000002';
    p_casey      constant uuid := '5eed0400-0000-4000-8000-000000000003';
    -- appointments and what hangs off them
    a_checkup    constant uuid := '5eed0600-0000-4000-8000-000000000001';
    a_booked     constant uuid := '5eed0600-0000-4000-8000-000000000002';
    a_cancelled  constant uuid := '5eed0600-0000-4000-8000-000000000003';
    r_checkup    constant uuid := '5eed0700-0000-4000-8000-000000000001';
    rx_vitamin   constant uuid := '5eed0800-0000-4000-8000-000000000001';
    pay_checkup  constant uuid := '5eed0900-0000-4000-8000-000000000001';
    pay_booked   constant uuid := '5eed0900-0000-4000-8000-000000000002';
    -- booking
    sl_1000      constant uuid := '5eed0a00-0000-4000-8000-000000000001';
    sl_1030      constant uuid := '5eed0a00-0000-4000-8000-000000000002';
    sl_1100      constant uuid := '5eed0a00-0000-4000-8000-000000000003';
    b_booked     constant uuid := '5eed0b00-0000-4000-8000-000000000001';
BEGIN
    INSERT INTO clinic.clinics (id, name, slug, timezone, email, phone, address, created_at, updated_at) VALUES
        (c_riverside, 'Riverside Family Clinic (dev)', 'riverside-dev', 'Europe/Berlin',
         'riverside@example.com', '+49 30 0000 0001', '1 River Road, Devtown', v_seed_ts, v_seed_ts),
        (c_hilltop, 'Hilltop Health Centre (dev)', 'hilltop-dev', 'Europe/London',
         'hilltop@example.com', '+44 20 0000 0002', '2 Hill Street, Testville', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.users (id, clinic_id, email, role, full_name, created_at, updated_at) VALUES
        (u_admin,     NULL,        'admin@example.com',            'admin',   'Avery Admin',     v_seed_ts, v_seed_ts),
        (u_dr_demo,   c_riverside, 'dr.dana.demo@example.com',     'doctor',  'Dr. Dana Demo',   v_seed_ts, v_seed_ts),
        (u_dr_sample, c_hilltop,   'dr.sam.sample@example.com',    'doctor',  'Dr. Sam Sample',  v_seed_ts, v_seed_ts),
        (u_reception, c_riverside, 'riley.reception@example.com',  'staff',   'Riley Reception', v_seed_ts, v_seed_ts),
        (u_pat,       c_riverside, 'pat.example@example.com',      'patient', 'Pat Example',     v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.doctors (id, clinic_id, user_id, specialty, license_number, created_at, updated_at) VALUES
        (d_demo,   c_riverside, u_dr_demo,   'General practice', 'DEV-LIC-0001', v_seed_ts, v_seed_ts),
        (d_sample, c_hilltop,   u_dr_sample, 'Paediatrics',      'DEV-LIC-0002', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.staff (id, clinic_id, user_id, job_title, created_at, updated_at) VALUES
        (s_reception, c_riverside, u_reception, 'Receptionist', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.patients (id, clinic_id, user_id, medical_record_number, full_name, date_of_birth,
                                 email, phone, created_at, updated_at) VALUES
        (p_pat,   c_riverside, u_pat, 'DEV-0001', 'Pat Example',  date '1985-04-12',
         'pat.example@example.com', '+49 30 0000 1001', v_seed_ts, v_seed_ts),
        (p_terry, c_riverside, NULL,  'DEV-0002', 'Terry Test',   date '1992-09-30',
         NULL, '+49 30 0000 1002', v_seed_ts, v_seed_ts),
        (p_casey, c_hilltop,   NULL,  'DEV-0003', 'Casey Sample', date '2015-06-01',
         NULL, '+44 20 0000 1003', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.appointments (id, clinic_id, doctor_id, patient_id, starts_at, ends_at, status, reason,
                                     created_at, updated_at) VALUES
        (a_checkup,   c_riverside, d_demo,   p_pat,
         v_seed_ts + interval '30 minutes', v_seed_ts + interval '60 minutes',
         'completed', 'Annual check-up', v_seed_ts, v_seed_ts),
        (a_booked,    c_riverside, d_demo,   p_terry,
         v_seed_ts + interval '1 day 1 hour', v_seed_ts + interval '1 day 1 hour 30 minutes',
         'scheduled', 'Follow-up', v_seed_ts, v_seed_ts),
        (a_cancelled, c_hilltop,   d_sample, p_casey,
         v_seed_ts + interval '2 hours', v_seed_ts + interval '2 hours 30 minutes',
         'cancelled', 'Vaccination', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.medical_records (id, clinic_id, patient_id, doctor_id, appointment_id, diagnosis, notes,
                                        recorded_at, created_at, updated_at) VALUES
        (r_checkup, c_riverside, p_pat, d_demo, a_checkup, 'No findings (synthetic record)',
         'Routine check-up. Blood pressure 120/80. Low vitamin D.', v_seed_ts + interval '55 minutes',
         v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.prescriptions (id, clinic_id, medical_record_id, patient_id, doctor_id, medication, dosage,
                                      frequency, duration_days, instructions, prescribed_at, created_at, updated_at) VALUES
        (rx_vitamin, c_riverside, r_checkup, p_pat, d_demo, 'Cholecalciferol (vitamin D3)', '1000 IU',
         'once daily', 90, 'Take with a meal.', v_seed_ts + interval '55 minutes', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO clinic.payments (id, clinic_id, patient_id, appointment_id, amount, currency, status, method,
                                 provider, provider_reference, paid_at, created_at, updated_at) VALUES
        (pay_checkup, c_riverside, p_pat,   a_checkup, 60.00, 'EUR', 'succeeded', 'card',
         'devpay', 'dev_pay_0001', v_seed_ts + interval '1 hour', v_seed_ts, v_seed_ts),
        (pay_booked,  c_riverside, p_terry, a_booked,  25.00, 'EUR', 'pending',   'cash',
         NULL, NULL, NULL, v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO booking.slots (id, clinic_id, doctor_id, starts_at, ends_at, created_at, updated_at) VALUES
        (sl_1000, c_riverside, d_demo,
         v_seed_ts + interval '1 day 1 hour', v_seed_ts + interval '1 day 1 hour 30 minutes', v_seed_ts, v_seed_ts),
        (sl_1030, c_riverside, d_demo,
         v_seed_ts + interval '1 day 1 hour 30 minutes', v_seed_ts + interval '1 day 2 hours', v_seed_ts, v_seed_ts),
        (sl_1100, c_riverside, d_demo,
         v_seed_ts + interval '1 day 2 hours', v_seed_ts + interval '1 day 2 hours 30 minutes', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO booking.bookings (id, slot_id, doctor_id, starts_at, ends_at, patient_id, appointment_id, status,
                                  created_at, updated_at) VALUES
        (b_booked, sl_1000, d_demo,
         v_seed_ts + interval '1 day 1 hour', v_seed_ts + interval '1 day 1 hour 30 minutes',
         p_terry, a_booked, 'active', v_seed_ts, v_seed_ts)
    ON CONFLICT (id) DO NOTHING;

    RAISE WARNING '002_dev_seed: every seeded created_at/updated_at is v_seed_ts = %, and seeded events (appointments, records, payments, slots) are dated around it: seeded events appear historical',
        to_char(v_seed_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';
END;
$$;
