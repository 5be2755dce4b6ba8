"""The patient portal, migrated as `supabase db reset` migrates it, with row-level security."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from pytest_clinicdb import acting_as

ANA = "6f1c1e6a-1111-4c8e-9d1a-000000000001"
BEN = "6f1c1e6a-2222-4c8e-9d1a-000000000002"


def one(conn, query, *params):
    return conn.execute(query, params or None).fetchone()[0]


def signed_in(conn, user_id):
    """Act as PostgREST does for a request signed by ``user_id``."""
    return acting_as(conn, "authenticated", settings={"request.jwt.claim.sub": user_id})


def new_user(conn, name="Carla Mendes"):
    user_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO auth.users (id, email) VALUES (%s, %s)", (user_id, f"{user_id}@x.test")
    )
    conn.execute(
        "INSERT INTO public.profiles (id, full_name, email) VALUES (%s, %s, %s)",
        (user_id, name, f"{user_id}@x.test"),
    )
    return user_id


def test_the_hand_written_date_migration_ran_after_the_table_it_alters(clinic_db):
    rows = clinic_db.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at")
    assert [r[0] for r in rows] == [
        "20240101120000_create_profiles.sql",
        "20240115093000_create_appointments.sql",
        "20240130_add_profile_phone.sql",
        "20240202140000_index_appointments.sql",
    ]
    assert (
        one(
            clinic_db,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = 'profiles' AND column_name = 'phone'",
        )
        == 1
    )


def test_the_platform_is_there_but_not_in_the_ledger(clinic_db):
    assert one(clinic_db, "SELECT to_regprocedure('auth.uid()')::text") == "auth.uid()"
    roles = clinic_db.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')"
        " ORDER BY 1"
    )
    assert [r[0] for r in roles] == ["anon", "authenticated", "service_role"]
    ledger = clinic_db.execute("SELECT name FROM clinicdb.migrations").fetchall()
    assert not any(
        name.endswith(("_roles.sql", "_auth.sql", "_extensions.sql")) for (name,) in ledger
    )


def test_the_portal_tables_have_row_level_security(clinic_db):
    rows = clinic_db.execute(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind = 'r' ORDER BY 1"
    )
    assert rows.fetchall() == [("appointments", True), ("profiles", True)]


def test_a_signed_in_patient_sees_only_their_own_profile(clinic_db):
    carla = new_user(clinic_db)
    new_user(clinic_db, "Duarte Lima")
    with signed_in(clinic_db, carla):
        assert clinic_db.execute("SELECT full_name FROM public.profiles").fetchall() == [
            ("Carla Mendes",)
        ]
    assert one(clinic_db, "SELECT count(*) FROM public.profiles") == 2  # the owner sees all


def test_an_anonymous_request_may_not_read_profiles(clinic_db):
    with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(clinic_db, "anon"):
        clinic_db.execute("SELECT * FROM public.profiles")


def test_a_sign_up_is_committed(clinic_db_fresh, clinic_dsn):
    carla = new_user(clinic_db_fresh)
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT full_name FROM public.profiles WHERE id = %s", carla) == (
            "Carla Mendes"
        )


def test_the_seeded_users_are_there(clinic_db_dev):
    rows = clinic_db_dev.execute("SELECT full_name, phone FROM public.profiles ORDER BY full_name")
    assert rows.fetchall() == [("Ana Silva", "+351 912 000 001"), ("Ben Okafor", None)]
    assert one(clinic_db_dev, "SELECT count(*) FROM public.appointments") == 2


def test_email_is_case_insensitive(clinic_db_dev):
    # Supabase puts the extensions schema on the search_path: citext's = is found there.
    clinic_db_dev.execute("SET LOCAL search_path = public, extensions")
    assert (
        one(clinic_db_dev, "SELECT id::text FROM profiles WHERE email = 'ana.silva@example.test'")
        == ANA
    )


def test_ana_sees_only_her_appointment(clinic_db_dev):
    with signed_in(clinic_db_dev, ANA):
        reasons = clinic_db_dev.execute("SELECT reason FROM public.appointments").fetchall()
        assert one(clinic_db_dev, "SELECT auth.uid()::text") == ANA
    assert reasons == [("annual check-up",)]


def test_ana_may_not_book_for_ben(clinic_db_dev):
    with signed_in(clinic_db_dev, ANA):
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security")
        with refused, clinic_db_dev.transaction():
            clinic_db_dev.execute(
                "INSERT INTO public.appointments (profile_id, starts_at)"
                " VALUES (%s, '2024-04-01 10:00+00')",
                (BEN,),
            )
        clinic_db_dev.execute(
            "INSERT INTO public.appointments (profile_id, starts_at) VALUES (%s, '2024-04-01 10:00+00')",
            (ANA,),
        )
        assert one(clinic_db_dev, "SELECT count(*) FROM public.appointments") == 2


@pytest.mark.clinicdb(
    dev_seed=True, role="authenticated", settings={"request.jwt.claims": json.dumps({"sub": BEN})}
)
def test_a_request_with_bens_claims_sees_only_ben(clinic_db):
    assert one(clinic_db, "SELECT current_user") == "authenticated"
    assert clinic_db.execute("SELECT full_name FROM public.profiles").fetchall() == [
        ("Ben Okafor",)
    ]
    assert clinic_db.execute("SELECT reason FROM public.appointments").fetchall() == [
        ("follow-up",)
    ]
