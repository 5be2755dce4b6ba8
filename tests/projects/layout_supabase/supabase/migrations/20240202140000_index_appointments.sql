create index appointments_profile_starts on public.appointments (profile_id, starts_at);
