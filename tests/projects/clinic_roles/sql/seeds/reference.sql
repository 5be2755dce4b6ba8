-- reference.sql - accounts every installation has. Idempotent.

INSERT INTO clinic.users (username, full_name, is_doctor) VALUES
    ('system', 'System (automated jobs)', false)
ON CONFLICT (username) DO NOTHING;
