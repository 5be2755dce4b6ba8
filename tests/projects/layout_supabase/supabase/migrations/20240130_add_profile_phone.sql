-- Written by hand with a date only: the CLI orders files by name, so this one
-- runs after 20240115093000_create_appointments.sql, not before everything.
alter table public.profiles add column phone text;
