"""Every clinicdb subcommand given bad input: one message naming the input and its fix,
no traceback, the documented exit code (0 ok, 1 a check or the work failed, 2 usage or
connection error)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.integration

#: Settings of the machine, not of the project: the tests keep them (CI's version matrix).
_MACHINE = ("CLINICDB_PG_BIN", "CLINICDB_PG_VERSION", "CLINICDB_CACHE_DIR")

DSN_HINT = "  hint: check --dsn (or CLINICDB_DSN) and that the server is up"
NOT_A_DSN_HINT = (
    "  hint: pass --dsn (or CLINICDB_DSN) as postgresql://USER:PASSWORD@HOST:PORT/DBNAME or as "
    "'host=HOST port=PORT dbname=DBNAME user=USER'"
)
TABLE_HINT = (
    "  hint: name tables PARTITION BY RANGE on a timestamp, schema-qualified "
    "(audit.audit_logs), or leave the option out to detect them"
)
NOT_MIGRATED_HINT = (
    "  hint: is the target migrated? clinicdb migrate --check --dsn ... lists what is pending"
)


def clinicdb(
    *args: str, cwd: Path = REPO, drop: tuple[str, ...] = (), **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("CLINICDB_") or k in _MACHINE) and k not in drop
    }
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest_clinicdb.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error(result: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """The error's lines (message, then detail and hint lines), after checking it is the only
    one, on stderr, with no traceback and exit ``code``."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.returncode == code, out
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("clinicdb")]
    assert len(starts) == 1, result.stderr
    return lines[starts[0] :]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Every subcommand that works on a target database, with what it is asked to do.
ON_A_TARGET = [
    ["migrate"],
    ["migrate", "--check"],
    ["migrate", "--resolve", "011_audit_log_table.sql", "rerun"],
    ["seed"],
    ["seed", "--dev"],
    ["status"],
    ["partitions"],
    ["partitions", "--ensure", "2031-01-01", "2031-03-01"],
    ["partitions", "--ensure-ahead", "2"],
    ["partitions", "--table", "nosuch.table"],
    ["check"],
]
IDS = [" ".join(c) for c in ON_A_TARGET]


@pytest.mark.parametrize("command", ON_A_TARGET, ids=IDS)
def test_an_unreachable_server_is_a_connection_error(command):
    port = free_port()
    result = clinicdb(*command, "--dsn", f"postgresql://app:s3cret@127.0.0.1:{port}/clinic")
    message, hint = one_error(result, 2)
    target = f"user=app password=*** dbname=clinic host=127.0.0.1 port={port}"
    assert message.startswith(f"clinicdb: cannot connect to {target}: "), message
    assert "Connection refused" in message
    assert hint == DSN_HINT
    assert "s3cret" not in result.stdout + result.stderr
    assert result.stdout == "", "nothing is said to be loaded or applied"


@pytest.mark.parametrize("command", ON_A_TARGET, ids=IDS)
def test_a_malformed_dsn_is_a_usage_error_that_says_how_to_write_one(command):
    result = clinicdb(*command, "--dsn", "postgresql://app:s3cret@[::1/clinic")
    message, hint = one_error(result, 2)
    assert message.startswith(
        "clinicdb: the target DSN postgresql://app:***@[::1/clinic is not a connection string: "
    ), message
    assert hint == NOT_A_DSN_HINT
    assert "s3cret" not in result.stdout + result.stderr


def test_a_dsn_that_is_no_dsn_at_all_and_no_dsn():
    message, _ = one_error(clinicdb("status", "--dsn", "notadsn"), 2)
    assert message == (
        'clinicdb: the target DSN notadsn is not a connection string: missing "=" after '
        '"notadsn" in connection info string'
    )
    assert one_error(clinicdb("migrate"), 2) == [
        "clinicdb: no target database",
        "  hint: pass --dsn DSN or set CLINICDB_DSN",
    ]


def test_json_errors_go_to_stdout_as_one_object():
    import json

    result = clinicdb("migrate", "--json", "--dsn", "notadsn")
    assert (result.returncode, result.stderr) == (2, "")
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["exit"] == 2
    assert data["error"].startswith("the target DSN notadsn is not a connection string")


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["migrate", "--check"], ["status"], ["lock"], ["check"], ["up"]],
    ids=lambda c: " ".join(c),
)
def test_a_missing_migrations_folder_names_it_and_the_option(command, tmp_path):
    cache = tmp_path / "cache"
    extra = ["--cache-dir", str(cache)] if command == ["up"] else []
    if command[0] in ("migrate", "status"):
        extra = ["--dsn", f"postgresql://app@127.0.0.1:{free_port()}/clinic"]
    result = clinicdb(*command, *extra, cwd=tmp_path)
    folder = tmp_path.resolve() / "database" / "migrations"
    assert one_error(result, 2) == [
        f"clinicdb: migrations directory {folder} does not exist",
        "  hint: set --migrations=DIR (ini clinicdb_migrations, env CLINICDB_MIGRATIONS)",
    ]
    assert not cache.exists(), "no server was started for nothing"


@pytest.mark.parametrize("command", [["seed"], ["check"]], ids=lambda c: " ".join(c))
def test_a_missing_seeds_folder_names_it_and_the_option(command, tmp_path):
    dsn = (
        ["--dsn", f"postgresql://app@127.0.0.1:{free_port()}/clinic"]
        if command[0] == "seed"
        else []
    )
    result = clinicdb(*command, "--seeds", str(tmp_path / "nope"), *dsn)
    assert one_error(result, 2) == [
        f"clinicdb: seeds folder {tmp_path / 'nope'} does not exist",
        "  hint: set --seeds=DIR (ini clinicdb_seeds, env CLINICDB_SEEDS), or --seeds=none to "
        "run without seeds",
    ]


@pytest.fixture
def schema_only(tmp_path: Path) -> Path:
    """A project with migrations and no seeds."""
    shutil.copytree(REPO / "database" / "migrations", tmp_path / "database" / "migrations")
    return tmp_path


DEV_SEED_HINT = (
    "  hint: name the file with --dev-seed-file FILE (ini clinicdb_dev_seed_file), or point "
    "--seeds DIR at the folder holding 002_*.sql"
)


def test_no_dev_seed_is_said_in_the_commands_terms(schema_only):
    dsn = f"postgresql://app@127.0.0.1:{free_port()}/clinic"
    seed = clinicdb("seed", "--dev", "--dsn", dsn, cwd=schema_only)
    assert one_error(seed, 2) == [
        "clinicdb: no dev seed to load: there is no 002_*.sql in the seeds folder database/seeds",
        DEV_SEED_HINT,
    ]
    off = clinicdb("seed", "--dev", "--seeds", "none", "--dsn", dsn, cwd=schema_only)
    assert one_error(off, 2)[0] == (
        "clinicdb: no dev seed to load: there is no dev seed file and seeds are switched off "
        "(--seeds = none)"
    )
    cache = schema_only / "cache"
    up = clinicdb("up", "--dev", "--cache-dir", str(cache), cwd=schema_only)
    assert one_error(up, 2)[0].startswith("clinicdb: no dev seed to load: ")
    assert not cache.exists(), "no server was started for nothing"
    system = clinicdb("seed", "--dsn", dsn, cwd=schema_only)
    assert one_error(system, 2) == [
        "clinicdb: no system seed to load",
        "  hint: name it with --system-seed FILE (ini clinicdb_system_seed), or put 001_*.sql "
        "in the seeds folder",
    ]


UNREACHABLE = "postgresql://app@127.0.0.1:1/clinic"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["partitions", "--ensure", "2031-01-01", "2031-02-01", "--ensure-ahead", "3"],
            [
                "clinicdb partitions: error: argument --ensure-ahead: not allowed with argument "
                "--ensure"
            ],
        ),
        (
            ["migrate", "--check", "--resolve", "011_audit_log_table.sql", "rerun"],
            [
                "clinicdb: --resolve and --check do not go together",
                "  hint: run clinicdb migrate --check to see what stopped half way, then "
                "--resolve it",
            ],
        ),
        (
            # Said before connecting: the server has nothing to do with it.
            ["migrate", "--resolve", "011_audit_log_table.sql", "redo", "--dsn", UNREACHABLE],
            [
                "clinicdb: --resolve 011_audit_log_table.sql redo: say rerun or applied",
                "  hint: clinicdb migrate --resolve 011_audit_log_table.sql rerun (or applied)",
            ],
        ),
        (
            ["partitions", "--ensure", "2031-03-01", "2031-01-01", "--dsn", UNREACHABLE],
            [
                "clinicdb: --ensure 2031-03-01 2031-01-01: FROM must come before TO",
                "  hint: e.g. --ensure 2027-01-01 2027-04-01 (January to March)",
            ],
        ),
        (
            ["partitions", "--ensure", "soon", "2031-01-01", "--dsn", UNREACHABLE],
            ["clinicdb: --ensure FROM: 'soon' is not a date", "  hint: e.g. 2027-01-01"],
        ),
        (
            ["partitions", "--ensure-ahead", "-1", "--dsn", UNREACHABLE],
            ["clinicdb: --ensure-ahead: must be 0 or more", "  hint: e.g. --ensure-ahead 3"],
        ),
        (
            ["partitions", "--months-ahead", "-1", "--dsn", UNREACHABLE],
            ["clinicdb: --months-ahead: must be 0 or more", "  hint: e.g. --months-ahead 3"],
        ),
        (
            ["status", "--months-ahead", "-1", "--dsn", UNREACHABLE],
            ["clinicdb: --months-ahead: must be 0 or more", "  hint: e.g. --months-ahead 3"],
        ),
        (
            ["seed", "--dev", "--tables", ",", "--dsn", UNREACHABLE],
            ["clinicdb: --tables: empty table list", "  hint: e.g. clinic.patients,clinic.users"],
        ),
        (
            ["seed", "--dev", "--mode", "none-at-all", "--dsn", UNREACHABLE],
            ["clinicdb seed: error: argument --mode: invalid choice: 'none-at-all' *"],
        ),
    ],
    ids=[
        "ensure-and-ensure-ahead",
        "check-and-resolve",
        "resolve-neither-rerun-nor-applied",
        "ensure-backwards",
        "ensure-not-a-date",
        "ensure-ahead-negative",
        "partitions-months-ahead-negative",
        "status-months-ahead-negative",
        "empty-table-list",
        "unknown-trigger-mode",
    ],
)
def test_bad_and_conflicting_flags_are_usage_errors(command, expected):
    import fnmatch

    lines = one_error(clinicdb(*command), 2)
    assert len(lines) == len(expected), lines
    assert all(fnmatch.fnmatchcase(a, b) for a, b in zip(lines, expected, strict=True)), lines


def test_a_lock_file_that_cannot_be_written(tmp_path):
    where = tmp_path / "nope" / "migrations.lock"
    assert one_error(clinicdb("lock", "--lock", str(where)), 2) == [
        f"clinicdb: cannot write the lock file {where}: No such file or directory",
        "  hint: pass --lock FILE in a folder that exists and you may write to",
    ]


def test_a_postgresql_version_that_is_not_installed(tmp_path):
    cache = tmp_path / "cache"
    result = clinicdb(
        "up", "--pg-version", "99", "--cache-dir", str(cache), drop=("CLINICDB_PG_BIN",)
    )
    message, hint = one_error(result, 2)
    assert message.startswith("clinicdb: PostgreSQL 99 is not installed; found: ")
    assert hint.startswith("  hint: install it, point --pg-bin at its bin directory")


def test_down_with_nothing_to_stop_is_fine(tmp_path):
    result = clinicdb("down", "--cache-dir", str(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"nothing to stop in {tmp_path}\n",
        "",
    )


# --------------------------------------------------------------------- against a server


def test_unknown_or_unpartitioned_tables_are_usage_errors(empty_db):
    dsn = empty_db.full_dsn
    assert clinicdb("migrate", "--dsn", dsn).returncode == 0
    for table, why in [
        ("nosuch.table", "no such table"),
        ("clinic.patients", "not partitioned"),
        ("bad name", "not a table name"),
    ]:
        for ensure in ([], ["--ensure", "2031-01-01", "2031-02-01"]):
            result = clinicdb("partitions", "--table", table, *ensure, "--dsn", dsn)
            assert one_error(result, 2) == [
                f"clinicdb: --table: audit tables not found or not partitioned: {table} ({why})",
                TABLE_HINT,
            ]
    status = clinicdb("status", "--audit-tables", "nosuch.t", "--dsn", dsn)
    assert one_error(status, 2) == [
        "clinicdb: --audit-tables: audit tables not found or not partitioned: nosuch.t "
        "(no such table)",
        TABLE_HINT,
    ]
    assert empty_db.execute(
        "SELECT count(*) FROM pg_class WHERE relname = 'audit_logs_p2031_01'"
    ).fetchone() == (0,), "nothing was created"


def test_a_database_without_the_audit_schema(empty_db):
    """The target exists but was never migrated: no audit.audit_logs, no ledger."""
    dsn = empty_db.full_dsn
    no_audit = [
        "clinicdb: no audit table partitioned by range on a timestamp in this database",
        "  hint: name the table with --table SCHEMA.TABLE (is the target migrated? "
        "clinicdb migrate --check)",
    ]
    assert one_error(clinicdb("partitions", "--dsn", dsn), 2) == no_audit
    assert one_error(clinicdb("partitions", "--ensure-ahead", "2", "--dsn", dsn), 2) == no_audit
    ensure = clinicdb(
        "partitions", "--ensure", "2031-01-01", "2031-02-01", "--table", "audit.audit_logs",
        "--dsn", dsn,
    )  # fmt: skip
    assert one_error(ensure, 2)[0] == (
        "clinicdb: --table: audit tables not found or not partitioned: audit.audit_logs "
        "(no such table)"
    )
    resolve = clinicdb("migrate", "--resolve", "011_audit_log_table.sql", "rerun", "--dsn", dsn)
    assert one_error(resolve, 2)[0] == (
        "clinicdb: --resolve 011_audit_log_table.sql: the ledger has no migration of that name "
        "that stopped half way"
    )
    for command in (["seed"], ["seed", "--dev"]):
        seed = clinicdb(*command, "--dsn", dsn)
        lines = one_error(seed, 1)  # the work failed
        assert "does not exist (SQLSTATE 42P01)" in lines[0]
        assert lines[-1] == NOT_MIGRATED_HINT
    status = clinicdb("status", "--dsn", dsn)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stdout + status.stderr
    assert (
        "partitions:  no audit table partitioned by range on a timestamp (skipped)"
        in status.stdout.splitlines()
    )


def test_check_with_an_audit_table_that_is_not_there(cache_dir):
    result = clinicdb("check", "--audit-tables", "nosuch.t", CLINICDB_CACHE_DIR=str(cache_dir))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    lines = result.stdout.splitlines()
    assert (
        "         --audit-tables: audit tables not found or not partitioned: nosuch.t "
        "(no such table)"
    ) in lines, "the message once, in the command's terms"
    assert len([line for line in lines if "nosuch.t" in line]) == 1
    assert re.fullmatch(r"the battery stopped: \d of 8 checks ran", lines[-1]), lines[-1]


def test_a_reader_that_goes_away_ends_the_command_quietly(empty_db):
    """`clinicdb partitions | head`: no traceback, no error, when the pipe closes early."""
    dsn = empty_db.full_dsn
    assert clinicdb("migrate", "--dsn", dsn).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICDB_") or k in _MACHINE}
    for _ in range(3):  # the reader is gone before the command writes
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_clinicdb.cli", "partitions", "--dsn", dsn],
            cwd=REPO,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
        os.close(write)
        assert proc.stderr == "" and proc.returncode == 0, proc.stderr
