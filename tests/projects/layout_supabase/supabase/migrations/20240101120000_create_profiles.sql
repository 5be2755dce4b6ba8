create table public.profiles (
  id         uuid primary key references auth.users (id) on delete cascade,
  full_name  text not null,
  email      extensions.citext not null,
  created_at timestamptz not null default now()
);

alter table public.profiles enable row level security;

create policy "patients read their own profile" on public.profiles
  for select to authenticated
  using (id = auth.uid());

grant select on public.profiles to authenticated;
grant all on public.profiles to service_role;
