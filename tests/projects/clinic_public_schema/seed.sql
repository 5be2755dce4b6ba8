-- seed.sql - clinic configuration every deployment needs. Idempotent.

INSERT INTO clinic_config (key, value) VALUES
    ('opening_hours', '{"mon-fri": "08:00-18:00", "sat": "09:00-12:00"}'),
    ('payment_terms_business_days', '10'),
    ('reminder_sms_hours_before', '24')
ON CONFLICT (key) DO NOTHING;
