"""Which migrations may reach beyond their database: a resumed build then makes its checkpoint
in line instead of beside itself (two sessions creating one role at once would collide)."""

from __future__ import annotations

from pytest_clinicdb.migrations import discover
from pytest_clinicdb.templates import touching_the_cluster

REACHING = {
    "001_role_in_do_block.sql": """
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reporting') THEN
            CREATE ROLE reporting NOLOGIN;
          END IF;
        END
        $$;
    """,
    "002_membership.sql": "GRANT reporting TO clinic_api;\n",
    "003_role_setting.sql": "ALTER ROLE clinic_api SET statement_timeout = '5s';\n",
    "004_lock.sql": "SELECT pg_advisory_xact_lock(4242);\n",
    "005_tablespace.sql": "CREATE TABLESPACE fast LOCATION '/srv/fast';\n",
    "006_unmember.sql": "REVOKE reporting FROM clinic_api;\n",
}

STAYING = {
    "101_users_table.sql": "CREATE TABLE users (id int, role text, user_name text);\n",
    "102_grants.sql": (
        "GRANT USAGE ON SCHEMA public TO reporting;\n"
        "GRANT SELECT ON users TO reporting;\n"
        "REVOKE ALL ON users FROM PUBLIC;\n"
    ),
    "103_policy.sql": (
        "ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n"
        "CREATE POLICY own ON users TO reporting USING (user_name = current_user);\n"
    ),
}


def test_statements_reaching_beyond_the_database_are_found_also_in_do_blocks(tmp_path):
    for name, text in {**REACHING, **STAYING}.items():
        (tmp_path / name).write_text(text)
    found = touching_the_cluster(discover(tmp_path))
    assert [f.split(" line ")[0] for f in found] == sorted(REACHING)
    assert found[0] == "001_role_in_do_block.sql line 2"
