-- Re-applied by Flyway whenever this file changes.
CREATE OR REPLACE VIEW clinic.patient_directory AS
SELECT p.id, p.full_name, c.name AS clinic
FROM clinic.patients p
JOIN clinic.clinics c ON c.id = p.clinic_id;
