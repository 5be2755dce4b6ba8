"""Lab orders and results, migrated as `goose up` migrates them: the Up parts only."""

from __future__ import annotations

import decimal

import psycopg
import pytest


def one(conn, query, *params):
    return conn.execute(query, params or None).fetchone()[0]


def new_result(conn, analyte="glucose", value="7.2", unit="mmol/L"):
    order = one(conn, "INSERT INTO lab.orders (patient_ref) VALUES ('P-0001') RETURNING id")
    return one(
        conn,
        "INSERT INTO lab.results (order_id, analyte, value, unit, updated_at)"
        " VALUES (%s, %s, %s, %s, '2024-01-01') RETURNING id",
        order,
        analyte,
        decimal.Decimal(value),
        unit,
    )


def test_no_down_part_ran(clinic_db):
    tables = clinic_db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lab' ORDER BY 1"
    )
    assert [r[0] for r in tables] == ["flagged_results", "orders", "reference_ranges", "results"]
    assert one(clinic_db, "SELECT count(*) FROM lab.reference_ranges") == 2
    trigger = clinic_db.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'lab.results'::regclass AND NOT tgisinternal"
    )
    assert trigger.fetchall() == [("results_touch",)]


def test_the_function_between_statement_begin_and_end_works(clinic_db):
    result = new_result(clinic_db)
    clinic_db.execute("UPDATE lab.results SET value = 7.3 WHERE id = %s", (result,))
    assert one(clinic_db, "SELECT updated_at > '2024-01-02' FROM lab.results") is True
    source = one(clinic_db, "SELECT prosrc FROM pg_proc WHERE proname = 'touch_updated_at'")
    assert "NEW.updated_at := clock_timestamp();" in source


def test_the_no_transaction_index_is_valid(clinic_db):
    row = clinic_db.execute(
        "SELECT indisvalid, indisready FROM pg_index"
        " WHERE indexrelid = to_regclass('lab.results_order')"
    ).fetchone()
    assert row == (True, True)


def test_version_10_ran_after_version_4(clinic_db):
    rows = clinic_db.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at")
    assert [r[0] for r in rows] == [
        "00001_create_lab_tables.sql",
        "00002_touch_updated_at.sql",
        "00003_reference_ranges.sql",
        "00004_index_results_concurrently.sql",
        "00010_flag_out_of_range.sql",
    ]


@pytest.mark.parametrize(
    ("analyte", "value", "flagged"),
    [("glucose", "7.2", True), ("glucose", "4.4", False), ("potassium", "3.1", True)],
)
def test_results_outside_the_reference_range_are_flagged(clinic_db, analyte, value, flagged):
    result = new_result(clinic_db, analyte, value)
    assert one(clinic_db, "SELECT out_of_range FROM lab.flagged_results WHERE id = %s", result) is (
        flagged
    )


def test_a_reference_range_is_committed(clinic_db_fresh, clinic_dsn):
    clinic_db_fresh.execute("INSERT INTO lab.reference_ranges VALUES ('sodium', 135, 145)")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT count(*) FROM lab.reference_ranges") == 3
