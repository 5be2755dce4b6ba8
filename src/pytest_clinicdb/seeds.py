"""Seed loading and server notices (no pytest import).

``load_seed`` runs a seed file in one transaction, statement by statement, with
session settings (e.g. ``app.environment``) set locally for that transaction
only, and returns the NOTICE/WARNING messages the server sent while it ran:
psycopg drops them unless a handler is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from .errors import ClinicDBError, SeedError
from .sqlfile import execute_file, read_sql_file

SYSTEM_SEED_PATTERN = "001_*.sql"
DEV_SEED_PATTERN = "002_*.sql"


@dataclass(frozen=True)
class Notice:
    """A NOTICE/WARNING/INFO message the server sent."""

    severity: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f" [{self.source}]" if self.source else ""
        return f"{self.severity}: {self.message}{where}"

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "message": self.message, "source": self.source}


@contextmanager
def capture_notices(conn: psycopg.Connection[Any], source: str = "") -> Iterator[list[Notice]]:
    """Collect the server messages sent on ``conn`` inside the block."""
    notices: list[Notice] = []

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(
            Notice(
                diag.severity_nonlocalized or diag.severity or "NOTICE",
                diag.message_primary or "",
                source,
            )
        )

    conn.add_notice_handler(handler)
    try:
        yield notices
    finally:
        conn.remove_notice_handler(handler)


def find_seed(directory: Path, pattern: str, what: str) -> Path:
    """The one file of ``directory`` that matches ``pattern`` (e.g. ``001_*.sql``)."""
    if not directory.is_dir():
        raise ClinicDBError(
            f"seeds directory {directory} does not exist",
            hint="set --clinicdb-seeds DIR (ini clinicdb_seeds, env CLINICDB_SEEDS), "
            "or --clinicdb-seeds none to run without seeds",
        )
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise ClinicDBError(
            f"no {what} ({pattern}) in seeds directory {directory}",
            hint=f"add the {what} file or point --clinicdb-seeds at the right directory",
        )
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise ClinicDBError(f"several {what} files match {pattern} in {directory}: {names}")
    return matches[0]


_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def load_seed(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    settings: Mapping[str, str] | None = None,
) -> list[Notice]:
    """Run the seed file ``path`` in one transaction; return the server's notices.

    ``settings`` are custom settings (``app.environment`` ...) set with
    ``set_config(name, value, true)``: they last for this transaction only.
    A failing statement rolls the whole seed back and raises :class:`SeedError`
    naming the file, line and column.
    """
    seed = read_sql_file(path, what="seed")
    with capture_notices(conn, path.name) as notices, conn.transaction():
        for name, value in (settings or {}).items():
            if not _SETTING.match(name):
                raise ClinicDBError(f"invalid setting name {name!r} (expected prefix.name)")
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        execute_file(conn, seed, SeedError)
    return list(notices)
