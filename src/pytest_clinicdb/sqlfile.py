"""Reading SQL files and running them statement by statement with exact error positions.

Shared by the migration runner and the seed loader (no pytest import here).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ._sqlsplit import Statement, line_col, split_sql
from .errors import SQLFileError, SQLSyntaxUnsupportedError

# Statements that cannot run inside the transaction that wraps every file.
_NO_TRANSACTION = {
    ("BEGIN",): "opens its own transaction",
    ("START", "TRANSACTION"): "opens its own transaction",
    ("COMMIT",): "commits in the middle of the file",
    ("END",): "commits in the middle of the file",
    ("ROLLBACK",): "rolls back in the middle of the file",
    ("ABORT",): "rolls back in the middle of the file",
    ("VACUUM",): "cannot run inside a transaction block",
    ("CREATE", "DATABASE"): "cannot run inside a transaction block",
    ("DROP", "DATABASE"): "cannot run inside a transaction block",
    ("ALTER", "SYSTEM"): "cannot run inside a transaction block",
}

_PLPGSQL_LINE = re.compile(r"PL/pgSQL function [^\n]*? line (\d+)")


@dataclass(frozen=True)
class SQLFile:
    """A SQL file read from disk: its path, text and statements."""

    path: Path
    data: bytes
    text: str
    statements: tuple[Statement, ...]


def read_sql_file(path: Path, *, what: str = "SQL file") -> SQLFile:
    """Read, decode and split ``path``; refuse what the runner cannot run.

    Raises :class:`SQLSyntaxUnsupportedError` (file and line named) for an
    empty file, a file that is not UTF-8, psql meta-commands and statements that
    cannot run inside the file's transaction.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SQLSyntaxUnsupportedError(
            path,
            0,
            f"cannot read {what}: {exc.strerror or exc}",
            hint="check that the file exists and is readable by the user running pytest",
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SQLSyntaxUnsupportedError(
            path,
            line,
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    result = split_sql(text)
    if result.meta_commands:
        cmd = result.meta_commands[0]
        raise SQLSyntaxUnsupportedError(
            path,
            cmd.line,
            f"psql meta-command {cmd.text.split()[0]!r} is not SQL",
            hint="files are sent to the server statement by statement; inline the SQL instead",
        )
    if not result.statements:
        raise SQLSyntaxUnsupportedError(
            path,
            1,
            f"{what} is empty (no SQL statement in it)",
            hint="add the statements, or remove the file if it was created by mistake",
        )
    for stmt in result.statements:
        words = tuple(stmt.keywords(3))
        for prefix, why in _NO_TRANSACTION.items():
            if words[: len(prefix)] == prefix and not (
                prefix == ("BEGIN",) and len(words) > 1 and words[1] == "ATOMIC"
            ):
                raise SQLSyntaxUnsupportedError(
                    path,
                    stmt.line,
                    f"{' '.join(prefix)} {why}",
                    hint="every file runs in one transaction opened by pytest-clinicdb; "
                    "remove transaction control and statements that need their own transaction",
                )
        is_index = words[:2] == ("CREATE", "INDEX") or words[:3] == ("CREATE", "UNIQUE", "INDEX")
        if is_index and "CONCURRENTLY" in stmt.keywords(5):
            raise SQLSyntaxUnsupportedError(
                path,
                stmt.line,
                "CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
                hint="migrations run in one transaction each; use a plain CREATE INDEX "
                "(the test database is empty, so it is instant)",
            )
    return SQLFile(path, data, text, tuple(result.statements))


NoticeSink = Callable[[psycopg.errors.Diagnostic], None]


def execute_file(
    conn: psycopg.Connection[Any],
    sqlfile: SQLFile,
    error_cls: type[SQLFileError],
    *,
    on_statement: Callable[[Statement], None] | None = None,
) -> None:
    """Execute every statement of ``sqlfile`` on ``conn`` (the caller owns the transaction).

    A failing statement raises ``error_cls`` naming the file, line and column.
    """
    for stmt in sqlfile.statements:
        if on_statement is not None:
            on_statement(stmt)
        try:
            conn.execute(stmt.text.encode("utf-8"))
        except psycopg.Error as exc:
            raise _file_error(sqlfile, stmt, exc, error_cls) from exc


def _file_error(
    sqlfile: SQLFile, stmt: Statement, exc: psycopg.Error, error_cls: type[SQLFileError]
) -> SQLFileError:
    diag = exc.diag
    line, col = stmt.line, stmt.column
    pos = diag.statement_position
    context = diag.context
    if pos and pos.isdigit():
        line, col = line_col(sqlfile.text, stmt.offset + int(pos) - 1)
    elif context:
        # An error raised while running a DO block or a function created by this
        # statement: PL/pgSQL gives the line inside the body; map it into the file.
        m = _PLPGSQL_LINE.search(context)
        body = _body_start(stmt.text)
        if m and body is not None and "inline_code_block" in context:
            body_line = line_col(stmt.text, body)[0]
            line = stmt.line + body_line - 1 + int(m.group(1)) - 1
            col = 1
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    return error_cls(
        sqlfile.path,
        line,
        col,
        diag.sqlstate or getattr(exc, "sqlstate", None),
        message,
        detail=diag.message_detail,
        context=context,
        hint=diag.message_hint,
        statement=stmt.text,
    )


def _body_start(text: str) -> int | None:
    """Offset of the first character after the opening dollar quote of a DO body."""
    m = re.search(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text)
    return m.end() if m else None
