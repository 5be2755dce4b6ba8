DROP TABLE IF EXISTS clinic.appointments;
DROP TYPE IF EXISTS clinic.appointment_status;
