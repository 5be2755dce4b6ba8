-- 001_system_seed.sql - specialties offered on the platform. Every environment; idempotent.

INSERT INTO clinic.specialties (code, name) VALUES
    ('GP', 'General practice'),
    ('PED', 'Paediatrics'),
    ('DERM', 'Dermatology'),
    ('PHYSIO', 'Physiotherapy')
ON CONFLICT (code) DO NOTHING;
