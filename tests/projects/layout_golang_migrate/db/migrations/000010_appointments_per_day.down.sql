DROP VIEW IF EXISTS clinic.appointments_per_day;
