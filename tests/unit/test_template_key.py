from __future__ import annotations

import datetime as dt

from pytest_clinicdb.migrations import discover
from pytest_clinicdb.templates import TemplateSpec, add_months


def spec(tmp_path, **kw):
    base = dict(
        major=15,
        variant="base",
        migrations=discover(tmp_path / "m"),
        seeds=[tmp_path / "001_seed.sql"],
        partition_start=dt.date(2026, 11, 1),
    )
    base.update(kw)
    return TemplateSpec(**base)


def setup(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_seed.sql").write_text("SELECT 2;")


def test_key_is_stable_and_sensitive_to_every_input(tmp_path):
    setup(tmp_path)
    key = spec(tmp_path).key
    assert key == spec(tmp_path).key
    assert spec(tmp_path, major=16).key != key
    assert spec(tmp_path, partition_start=dt.date(2026, 12, 1)).key != key
    assert spec(tmp_path, variant="dev").key != key
    assert spec(tmp_path, options=(("audit_tables", "public.audit_log"),)).key != key
    assert spec(tmp_path, base="clinicdb_tpl_0123").key != key
    (tmp_path / "boot.sql").write_text("CREATE ROLE anon;")
    assert spec(tmp_path, bootstrap=[tmp_path / "boot.sql"]).key != key
    (tmp_path / "001_seed.sql").write_text("SELECT 3;")
    assert spec(tmp_path).key != key
    (tmp_path / "001_seed.sql").write_text("SELECT 2;")
    (tmp_path / "m" / "001_a.sql").write_text("SELECT 1; -- edited")
    assert spec(tmp_path).key != key


def test_templates_are_named_so_that_garbage_collection_considers_them(tmp_path):
    """Garbage collection only looks at names with the plugin's prefix: a template named
    otherwise would never be collected."""
    from pytest_clinicdb.marker import PREFIX

    setup(tmp_path)
    s = spec(tmp_path)
    assert s.name == f"clinicdb_tpl_{s.key}"
    assert s.name.startswith(PREFIX) and len(s.key) == 16


def test_add_months_crosses_years():
    assert add_months(dt.date(2026, 11, 1), 3) == dt.date(2027, 2, 1)
    assert add_months(dt.date(2026, 1, 1), -1) == dt.date(2025, 12, 1)
