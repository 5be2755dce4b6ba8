"""The example suite uses the plugin's fixtures as an application team would.

Nothing to configure: the plugin finds `database/migrations` and `database/seeds`
from the project root (see the README's options to point it elsewhere).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest
from clinic_app import register_patient

from pytest_clinicdb.tenants import acting_as

Conn = psycopg.Connection[Any]

_serial = itertools.count(1)


@dataclass(frozen=True)
class ClinicSetup:
    """A clinic with a receptionist (the acting user of most tests) and one doctor."""

    id: UUID
    slug: str
    staff_user_id: UUID
    doctor_id: UUID


def _create_clinic(conn: Conn, slug: str | None = None) -> ClinicSetup:
    slug = slug or f"clinic-{next(_serial)}"

    def one(query: str, params: tuple[Any, ...]) -> Any:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    clinic_id = one(
        "INSERT INTO clinic.clinics (name, slug) VALUES (%s, %s) RETURNING id",
        (f"{slug.title()} Clinic", slug),
    )
    staff_user_id = one(
        "INSERT INTO clinic.users (clinic_id, email, role, full_name)"
        " VALUES (%s, %s, 'staff', %s) RETURNING id",
        (clinic_id, f"reception.{slug}@example.com", f"Reception {slug}"),
    )
    doctor_user_id = one(
        "INSERT INTO clinic.users (clinic_id, email, role, full_name)"
        " VALUES (%s, %s, 'doctor', %s) RETURNING id",
        (clinic_id, f"doctor.{slug}@example.com", f"Dr. {slug.title()}"),
    )
    doctor_id = one(
        "INSERT INTO clinic.doctors (clinic_id, user_id, specialty, license_number)"
        " VALUES (%s, %s, 'General practice', %s) RETURNING id",
        (clinic_id, doctor_user_id, f"LIC-{slug}"),
    )
    return ClinicSetup(clinic_id, slug, staff_user_id, doctor_id)


@pytest.fixture
def make_clinic() -> Callable[..., ClinicSetup]:
    """``make_clinic(conn, slug=None)``: a clinic, its receptionist and a doctor, on ``conn``."""
    return _create_clinic


@pytest.fixture
def clinic(clinic_db: Conn) -> ClinicSetup:
    """A clinic (with receptionist and doctor) inside this test's ``clinic_db`` transaction."""
    return _create_clinic(clinic_db)


def _create_patient(conn: Conn, clinic: ClinicSetup, full_name: str = "Ada Example") -> UUID:
    return register_patient(
        conn,
        clinic_id=clinic.id,
        mrn=f"MRN-{next(_serial):05d}",
        full_name=full_name,
        date_of_birth=dt.date(1990, 5, 1),
    )


@pytest.fixture
def make_patient() -> Callable[..., UUID]:
    """``make_patient(conn, clinic, full_name=...)``: a patient registered with a unique MRN."""
    return _create_patient


def _create_slot(
    conn: Conn, clinic_id: UUID, doctor_id: UUID, *, in_days: float = 7, minutes: int = 30
) -> UUID:
    """A slot of ``doctor_id`` starting ``in_days`` from the current hour (negative: past)."""
    row = conn.execute(
        "INSERT INTO booking.slots (clinic_id, doctor_id, starts_at, ends_at)"
        " SELECT %(clinic)s, %(doctor)s, t, t + make_interval(mins => %(minutes)s)"
        " FROM (SELECT date_trunc('hour', now()) + %(offset)s AS t) AS start"
        " RETURNING id",
        {
            "clinic": clinic_id,
            "doctor": doctor_id,
            "minutes": minutes,
            "offset": dt.timedelta(days=in_days),
        },
    ).fetchone()
    assert row is not None
    slot_id: UUID = row[0]
    return slot_id


@pytest.fixture
def make_slot() -> Callable[..., UUID]:
    """``make_slot(conn, clinic_id, doctor_id, in_days=7, minutes=30)``: a bookable slot."""
    return _create_slot


@pytest.fixture
def as_clinic_app() -> Callable[..., AbstractContextManager[Conn]]:
    """``with as_clinic_app(conn):`` runs the block as the application role ``clinic_app``.

    The plugin connects as the owner of the tables, which row-level security does
    not apply to; production connects as a member of ``clinic_app``.  Built on
    ``pytest_clinicdb.tenants.acting_as``: settings may be given too, e.g.
    ``as_clinic_app(conn, **{"app.current_clinic_id": clinic.id})``, and the
    role and settings are restored after the block.
    """

    def enter(conn: Conn, **settings: object) -> AbstractContextManager[Conn]:
        return acting_as(conn, "clinic_app", **settings)

    return enter


def audit_rows(conn: Conn, table: str, record_id: object) -> list[tuple[Any, ...]]:
    schema, name = table.split(".")
    return conn.execute(
        "SELECT action, actor_id, created_at FROM audit.audit_logs"
        " WHERE table_schema = %s AND table_name = %s AND record_id = %s ORDER BY id",
        (schema, name, str(record_id)),
    ).fetchall()


@pytest.fixture
def audit_trail() -> Callable[[Conn, str, object], list[tuple[Any, ...]]]:
    """``audit_trail(conn, "clinic.patients", id)``: ``(action, actor_id, created_at)`` rows."""
    return audit_rows


class DevSeed:
    """Ids of the DEV/TEST ONLY sample rows of ``database/seeds/002_dev_seed.sql``."""

    riverside: UUID = UUID("5eed0100-0000-4000-8000-000000000001")
    hilltop: UUID = UUID("5eed0100-0000-4000-8000-000000000002")
    reception_user: UUID = UUID("5eed0200-0000-4000-8000-000000000004")
    dr_demo: UUID = UUID("5eed0300-0000-4000-8000-000000000001")  # Riverside
    pat: UUID = UUID("5eed0400-0000-4000-8000-000000000001")  # Riverside
    terry: UUID = UUID("5eed0400-0000-4000-8000-000000000002")  # Riverside
    casey: UUID = UUID("5eed0400-0000-4000-8000-000000000003")  # Hilltop
    slot_booked: UUID = UUID("5eed0a00-0000-4000-8000-000000000001")  # booked by Terry
    slot_open: UUID = UUID("5eed0a00-0000-4000-8000-000000000002")  # never booked


@pytest.fixture
def dev_seed() -> DevSeed:
    """The ids of seed 002's sample rows (use with ``clinic_db_dev``)."""
    return DevSeed()


def _wait_until_blocked(dsn: str, *, blocked: Conn, by: Conn, timeout: float = 5.0) -> None:
    """Return once ``blocked``'s backend waits for a lock held by ``by``'s backend."""
    blocked_pid, holder_pid = blocked.info.backend_pid, by.info.backend_pid
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as monitor:
        while True:
            row = monitor.execute("SELECT pg_blocking_pids(%s)", (blocked_pid,)).fetchone()
            if row is not None and holder_pid in row[0]:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"backend {blocked_pid} was not blocked by {holder_pid} in {timeout}s")
            time.sleep(0.01)


@pytest.fixture
def wait_until_blocked(clinic_dsn: str) -> Callable[..., None]:
    """``wait_until_blocked(blocked=conn2, by=conn1)``: wait until conn2 waits on conn1's lock.

    Both connections must be to ``clinic_dsn``, this test's fresh database.
    """
    return functools.partial(_wait_until_blocked, clinic_dsn)
