-- 001_system_seed.sql: the treatment catalogue. Runs in every environment, any number of times;
-- prices an operator changed are left alone.

INSERT INTO clinic.treatment_catalogue (code, description, minutes, price_cents) VALUES
    ('ASSESS', 'Initial assessment', 45, 7500),
    ('PT30', 'Physiotherapy, 30 minutes', 30, 4200),
    ('PT60', 'Physiotherapy, 60 minutes', 60, 7900),
    ('MLD', 'Manual lymph drainage', 45, 5600),
    ('TAPE', 'Kinesio taping', 15, 1800)
ON CONFLICT (code) DO NOTHING;
