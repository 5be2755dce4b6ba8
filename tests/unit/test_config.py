from __future__ import annotations

from pathlib import Path

import pytest

from pytest_clinicdb.config import resolve
from pytest_clinicdb.errors import ConfigError
from pytest_clinicdb.server import ServerInfo, mask_dsn


def settings(tmp_path, cli=None, ini=None, env=None):
    cli = cli or {}
    ini = ini or {}
    return resolve(
        cli.get, ini.get, env=env or {}, rootdir=tmp_path, inidir=tmp_path, cwd=tmp_path / "cwd"
    )


def test_defaults_are_relative_to_rootdir(tmp_path):
    s = settings(tmp_path)
    assert s.migrations == ((tmp_path / "database" / "migrations").resolve(),)
    assert s.seeds == (tmp_path / "database" / "seeds").resolve()
    assert s.backend == "embedded"
    assert s.source_of("migrations") == "default"


def test_cli_beats_env_beats_ini(tmp_path):
    s = settings(
        tmp_path,
        cli={"pg_version": "16"},
        env={"CLINICDB_PG_VERSION": "15", "CLINICDB_MIGRATIONS": "envmig"},
        ini={"pg_version": "14", "migrations": "inimig", "seeds": "iniseeds"},
    )
    assert s.pg_version == 16
    assert s.source_of("pg_version") == "--clinicdb-pg-version"
    assert s.migrations == ((tmp_path / "cwd" / "envmig").resolve(),)
    assert s.source_of("migrations") == "CLINICDB_MIGRATIONS"
    assert s.seeds == (tmp_path / "iniseeds").resolve()


def test_seeds_none_disables_seeds(tmp_path):
    assert settings(tmp_path, cli={"seeds": "none"}).seeds is None


def test_unknown_backend_names_the_valid_values(tmp_path):
    with pytest.raises(ConfigError, match=r"--clinicdb-backend: unknown value 'postgresx'") as info:
        settings(tmp_path, cli={"backend": "postgresx"})
    assert "valid values: embedded" in str(info.value)


def test_version_must_be_a_number(tmp_path):
    with pytest.raises(
        ConfigError, match=r"environment CLINICDB_PG_VERSION: 'latest' is not a whole number"
    ):
        settings(tmp_path, env={"CLINICDB_PG_VERSION": "latest"})


def test_version_must_be_plausible(tmp_path):
    with pytest.raises(ConfigError, match="1600 is not a PostgreSQL major version"):
        settings(tmp_path, cli={"pg_version": "1600"})


def test_passwords_are_masked():
    assert "s3cret" not in mask_dsn("host=h port=5 user=u password=s3cret dbname=d")
    assert "***" in mask_dsn("host=h password=s3cret")
    assert "s3cret" not in mask_dsn("postgresql://u:s3cret@h:5432/d")
    info = ServerInfo("embedded", "h", 5, "u", "15.1", 15, password="s3cret")
    assert "s3cret" in info.dsn
    assert "s3cret" not in repr(info) and "s3cret" not in str(info)


def test_paths_are_shown_relative_to_rootdir(tmp_path):
    s = settings(tmp_path)
    assert s.display_path(s.migrations[0]) == str(Path("database", "migrations"))


def test_several_migration_folders_from_each_source(tmp_path):
    import os

    cli = settings(tmp_path, cli={"migrations": ["a", "b"]})
    assert cli.migrations == (
        (tmp_path / "cwd" / "a").resolve(),
        (tmp_path / "cwd" / "b").resolve(),
    )
    ini = settings(tmp_path, ini={"migrations": ["db/one", "db/two"]})
    assert ini.migrations == (
        (tmp_path / "db" / "one").resolve(),
        (tmp_path / "db" / "two").resolve(),
    )
    env = settings(tmp_path, env={"CLINICDB_MIGRATIONS": os.pathsep.join(["x", "y", "x"])})
    assert env.migrations == (
        (tmp_path / "cwd" / "x").resolve(),
        (tmp_path / "cwd" / "y").resolve(),
    )


def test_seed_files_none_and_relative_globs(tmp_path):
    s = settings(tmp_path, ini={"system_seed": "seeds/*.sql", "dev_seed_file": "none"})
    assert s.system_seed == str(tmp_path / "seeds" / "*.sql")
    assert s.dev_seed_file == ""
    assert settings(tmp_path).system_seed is None


def test_a_registered_backend_is_a_valid_choice(tmp_path):
    from pytest_clinicdb.server import _REGISTERED, register_backend

    with pytest.raises(ConfigError, match="unknown value 'fake'"):
        settings(tmp_path, cli={"backend": "fake"})
    register_backend("fake", object)
    try:
        assert settings(tmp_path, cli={"backend": "fake"}).backend == "fake"
    finally:
        del _REGISTERED["fake"]


def test_on_off_options_default_and_override(tmp_path):
    s = settings(tmp_path)
    assert (s.reuse, s.rebuild, s.keep_failed, s.timings, s.keep_templates) == (
        True,
        False,
        False,
        False,
        5,
    )
    # The command line's False (--clinicdb-no-reuse) beats the environment's true.
    s = settings(tmp_path, cli={"reuse": False}, env={"CLINICDB_REUSE": "true"})
    assert s.reuse is False and s.source_of("reuse") == "--clinicdb-reuse"
    assert settings(tmp_path, ini={"keep_failed": "yes"}).keep_failed is True


def test_bad_boolean_and_template_cap_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="CLINICDB_REUSE: 'sometimes' is not a boolean"):
        settings(tmp_path, env={"CLINICDB_REUSE": "sometimes"})
    with pytest.raises(ConfigError, match="must be at least 1"):
        settings(tmp_path, cli={"keep_templates": "0"})
