"""Async code under test: clinic_db_async is clinic_db for psycopg's AsyncConnection."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio


async def count(conn, sql: str) -> int:
    cur = await conn.execute(sql)
    return (await cur.fetchone())[0]


async def test_async_insert_is_audited(clinic_db_async):
    cur = await clinic_db_async.execute(
        "INSERT INTO clinic.clinics (name, slug) VALUES ('Async Clinic', 'async') RETURNING id"
    )
    (clinic_id,) = await cur.fetchone()
    cur = await clinic_db_async.execute(
        "SELECT action FROM audit.audit_logs WHERE table_name = 'clinics' AND record_id = %s",
        (str(clinic_id),),
    )
    assert await cur.fetchall() == [("INSERT",)]


async def test_each_async_test_starts_from_the_template(clinic_db_async):
    # The clinic inserted by the test above was rolled back.
    assert await count(clinic_db_async, "SELECT count(*) FROM clinic.clinics") == 0


@pytest.mark.clinicdb(dev_seed=True)
async def test_the_dev_seed_marker_works_for_async_too(clinic_db_async):
    assert await count(clinic_db_async, "SELECT count(*) FROM clinic.patients") > 0
