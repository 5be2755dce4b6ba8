-- 001_reference.sql - visit reasons. Safe in every environment; re-running changes nothing.

INSERT INTO clinic.visit_reasons (code, label) VALUES
    ('ROUTINE', 'Routine appointment'),
    ('URGENT', 'Same-day urgent'),
    ('REVIEW', 'Medication review'),
    ('TRAVEL', 'Travel vaccination'),
    ('REPORT', 'Medical report')
ON CONFLICT (code) DO NOTHING;
