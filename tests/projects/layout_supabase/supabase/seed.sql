-- Two portal users with a profile and an appointment each (local development only).
insert into auth.users (id, email) values
  ('6f1c1e6a-1111-4c8e-9d1a-000000000001', 'ana.silva@example.test'),
  ('6f1c1e6a-2222-4c8e-9d1a-000000000002', 'ben.okafor@example.test');

insert into public.profiles (id, full_name, email, phone) values
  ('6f1c1e6a-1111-4c8e-9d1a-000000000001', 'Ana Silva', 'Ana.Silva@Example.test', '+351 912 000 001'),
  ('6f1c1e6a-2222-4c8e-9d1a-000000000002', 'Ben Okafor', 'ben.okafor@example.test', null);

insert into public.appointments (profile_id, starts_at, reason) values
  ('6f1c1e6a-1111-4c8e-9d1a-000000000001', '2024-03-04 09:30+00', 'annual check-up'),
  ('6f1c1e6a-2222-4c8e-9d1a-000000000002', '2024-03-05 14:00+00', 'follow-up');
