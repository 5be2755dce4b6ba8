-- system.sql - reference data every environment needs (production included).
-- Safe to run again and again: existing rows are left exactly as they are.

SET search_path TO clinic, public;

INSERT INTO appointment_types (code, label, duration_minutes) VALUES
    ('first_visit', 'First visit', 40),
    ('follow_up', 'Follow-up', 20),
    ('vaccination', 'Vaccination', 10),
    ('telehealth', 'Video consultation', 15)
ON CONFLICT (code) DO NOTHING;

INSERT INTO clinic_settings (key, value) VALUES
    ('booking.horizon_days', '90'),
    ('booking.slot_minutes', '10'),
    ('billing.currency', 'EUR')
ON CONFLICT (key) DO NOTHING;
