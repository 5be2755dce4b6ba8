"""Reading SQL files and running them as ``psql -1 -f`` would, with exact error positions.

Shared by the migration runner and the seed loader (no pytest import here).

What a file may hold
--------------------
* SQL statements, split as psql splits them (see :mod:`._sqlsplit`).
* ``COPY … FROM stdin;`` followed by its rows up to a line ``\\.`` — what
  ``pg_dump --data-only`` writes.  The rows go through psycopg's copy support.
* psql meta-commands:

  - ``\\i FILE`` / ``\\include FILE`` and ``\\ir FILE`` / ``\\include_relative FILE``:
    the included file's statements run at that point.  Both are resolved
    against the including file's folder (psql resolves ``\\i`` against its
    working directory; a build must not depend on where pytest was started);
    ``\\i`` also looks in the folders above it, nearest first, for paths
    written relative to a repository root.  Included files count in the
    file's content key and checksum.
  - ignored, with a note: ``\\restrict`` / ``\\unrestrict`` (written by
    pg_dump), ``\\set ON_ERROR_STOP on`` (the runner always stops at the first
    error) and psql's other display variables, ``\\set`` of a variable the file
    never uses, ``\\unset``, ``\\echo``, ``\\qecho``, ``\\warn``, ``\\timing``,
    ``\\pset``, ``\\x``, ``\\t``, ``\\a``, ``\\encoding UTF8``.
  - refused, all of them at once, each at its line with a hint of its own:
    everything else (``\\connect``, ``\\gexec``, ``\\gset``, ``\\copy``, ``\\if``,
    ``\\set`` of a variable used as ``:name``, shell commands …).

* In a pg_dump of a database this runner migrated, the runner's own ledger
  (schema ``clinicdb``) is skipped with a note: it already exists.
* ``BEGIN;`` … ``COMMIT;`` around a whole file is dropped with a note: the file
  runs in a transaction of its own anyway.

How a file runs
---------------
:func:`execute_file` runs a file inside the caller's transaction.  Every file
starts from the session's defaults — ``RESET ALL``, ``RESET SESSION
AUTHORIZATION``, ``RESET ROLE`` — as a new ``psql`` session would, then the
caller's ``settings`` are applied with ``set_config(name, value, true)``: a
``search_path`` or ``check_function_bodies`` set by one file never reaches the
next.  Statements that need nothing done one by one go to the server together
(one round trip per megabyte); when that fails without a position, the batch is
re-run statement by statement inside a savepoint to find the failing line.

:func:`execute_file_outside_transaction` runs a file in autocommit, statement by
statement (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, a procedure that commits):
what ran before an error stays.  A file needs that when it holds such a
statement, carries its tool's marker, or starts with ``-- clinicdb:no-transaction``
among its first comment lines.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from ._sqlsplit import MetaCommand, SplitResult, Statement, line_col, split_sql
from .errors import PsqlMetaCommandError, SQLFileError, SQLSyntaxUnsupportedError

#: The comment that makes a migration run outside a transaction (among its first lines).
NO_TRANSACTION_DIRECTIVE = "-- clinicdb:no-transaction"
#: Schema of the runner's ledger (see :mod:`.migrations`); skipped in pg_dump files.
LEDGER_SCHEMA = "clinicdb"

_BOM = "\ufeff"
_BATCH_CHARS = 1 << 20
_PLPGSQL_LINE = re.compile(r"PL/pgSQL function [^\n]*? line (\d+)")
_COPY_CONTEXT_LINE = re.compile(r"COPY [^,\n]+, line (\d+)")
_DIRECTIVE = re.compile(r"^--\s*clinicdb:\s*no-transaction\s*$", re.IGNORECASE)
_INCLUDE = {"\\i", "\\include", "\\ir", "\\include_relative"}

# Statements PostgreSQL refuses inside a transaction block (Flyway's PostgreSQL list,
# plus DROP INDEX CONCURRENTLY, REINDEX … CONCURRENTLY and DETACH … CONCURRENTLY).
_OUTSIDE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^VACUUM\b"), "VACUUM"),
    (re.compile(r"^(CREATE|DROP) (DATABASE|TABLESPACE|SUBSCRIPTION)\b"), "{0} {1}"),
    (re.compile(r"^ALTER SYSTEM\b"), "ALTER SYSTEM"),
    (re.compile(r"^CREATE (UNIQUE )?INDEX CONCURRENTLY\b"), "CREATE INDEX CONCURRENTLY"),
    (re.compile(r"^DROP INDEX CONCURRENTLY\b"), "DROP INDEX CONCURRENTLY"),
    (re.compile(r"^REINDEX\b.*\bCONCURRENTLY\b"), "REINDEX CONCURRENTLY"),
    (re.compile(r"^REINDEX( VERBOSE)? (SCHEMA|DATABASE|SYSTEM)\b"), "REINDEX {1}"),
    (re.compile(r"^DISCARD ALL\b"), "DISCARD ALL"),
    (
        re.compile(r"^ALTER TABLE\b.*\bDETACH PARTITION\b.*\bCONCURRENTLY\b"),
        "DETACH PARTITION … CONCURRENTLY",
    ),
]
_OUTSIDE_FIRST = {"VACUUM", "CREATE", "DROP", "ALTER", "REINDEX", "DISCARD"}
_TX_CONTROL_FIRST = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE"}


# --------------------------------------------------------------------------- notes and names


def display_name(path: Path) -> str:
    """``path.name`` safe to print: bytes that are not UTF-8 shown as ``\\xNN``."""
    return _printable(path.name)


def safe_path(path: Path) -> Path:
    """``path`` itself, or — for a name that is not UTF-8 — a printable stand-in for messages."""
    text = str(path)
    printable = _printable(text)
    return path if printable == text else Path(printable)


def _printable(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Note:
    """Something the runner did that the user may want to know (shown, never an error).

    ``str(note)`` is ``"<file>, line <n>: <message>"`` (``"<file>: <message>"``
    without a line).
    """

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = display_name(self.path)
        if self.line:
            where += f", line {self.line}"
        return f"{where}: {self.message}"


# --------------------------------------------------------------------------- files


def normalized_bytes(data: bytes) -> bytes:
    """``data`` without a UTF-8 BOM and with CRLF / CR line ends turned into LF.

    Checksums are taken of this, so re-saving a file with other line endings
    (git ``autocrlf``, a Windows editor) or a BOM does not make it "edited".
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


@dataclass(frozen=True, eq=False)
class SQLFile:
    """A SQL file read from disk: its bytes and text; statements split on first use.

    ``runnable`` is ``text`` with the parts that never run (a dbmate or goose
    down section) blanked out, offsets kept; ``no_transaction`` says why the
    file's tool wants it run outside a transaction (a marker), if it does.
    """

    path: Path
    data: bytes
    text: str
    what: str = "SQL file"
    runnable_text: str | None = None
    no_transaction: Outside | None = None
    allow_empty: bool = False
    #: the text without the parts that never run (not blanked: removed), for the checksum
    kept_text: str | None = None

    @property
    def _own_bytes(self) -> bytes:
        """What identifies this file's effect: the whole file, or only the parts that run."""
        return self.data if self.kept_text is None else self.kept_text.encode("utf-8")

    @property
    def runnable(self) -> str:
        return self.text if self.runnable_text is None else self.runnable_text

    # -- content, without splitting ------------------------------------------------

    @cached_property
    def includes(self) -> tuple[SQLFile, ...]:
        """Files this one includes with ``\\i`` / ``\\ir`` (directly or further down)."""
        if "\\i" not in self.runnable:
            return ()
        found: list[SQLFile] = []
        _walk_includes(self, (self.path.resolve(),), found)
        return tuple(found)

    def content_bytes(self) -> bytes:
        """The bytes that decide what this file does: its own and its included files'."""
        if not self.includes:
            return self._own_bytes
        parts = [self._own_bytes]
        for inc in self.includes:
            parts += [b"\0include\0", os.fsencode(inc.path.name), b"\0", inc.data]
        return b"".join(parts)

    @property
    def legacy_checksum(self) -> str:
        """sha256 of the raw bytes: what ledgers and lock files held before checksums ignored
        line endings."""
        return hashlib.sha256(self.data).hexdigest()

    def raw_checksums(self) -> set[str]:
        """sha256 of this content as raw bytes with LF or CRLF line ends, with or without BOM."""
        lf = normalized_bytes(self.data)
        crlf = lf.replace(b"\n", b"\r\n")
        bom = b"\xef\xbb\xbf"
        return {hashlib.sha256(b).hexdigest() for b in (lf, crlf, bom + lf, bom + crlf)}

    @property
    def checksum(self) -> str:
        """sha256 of the text with line endings and BOM normalized, included files too.

        Equal to :attr:`legacy_checksum` for an LF file without BOM or includes.
        """
        # A down section that never runs is not part of it: fixing one is not an edit.
        h = hashlib.sha256(normalized_bytes(self._own_bytes))
        for inc in self.includes:
            h.update(b"\0include\0" + os.fsencode(inc.path.name) + b"\0")
            h.update(normalized_bytes(inc.data))
        return h.hexdigest()

    @cached_property
    def directive(self) -> int | None:
        """Line of ``-- clinicdb:no-transaction`` among the comments before the first statement."""
        # Only the head of the file matters; a big seed is not split into lines for it.
        for number, raw in enumerate(self.runnable[:16384].splitlines()[:200], start=1):
            line = raw.strip()
            if not line:
                continue
            if not line.startswith("--"):
                return None
            if _DIRECTIVE.match(line):
                return number
        return None

    # -- parsed ---------------------------------------------------------------------

    @cached_property
    def plan(self) -> Plan:
        """What runs, in order (splits the file, and its includes, on first use)."""
        started = time.perf_counter()
        plan = _Planner(self).plan()
        plan.seconds = time.perf_counter() - started
        return plan

    @property
    def statements(self) -> tuple[Statement, ...]:
        """The statements that run, in order (included files' ones carry their ``path``)."""
        return self.plan.statements

    @property
    def notes(self) -> list[Note]:
        """What splitting noticed: ignored meta-commands, skipped ledger statements …"""
        return self.plan.notes

    @property
    def transactional(self) -> bool:
        """False when the file must run outside a transaction (marker, directive or statement)."""
        return not self.plan.outside

    def outside_reason(self) -> Outside | None:
        """Why the file runs outside a transaction (``None`` when it does not)."""
        return self.plan.outside[0] if self.plan.outside else None


def _walk_includes(file: SQLFile, stack: tuple[Path, ...], found: list[SQLFile]) -> None:
    """Collect what ``file`` includes, depth first; problems are left to the planner."""
    if "\\i" not in file.runnable:
        return
    for meta in split_sql(file.runnable).meta_commands:
        if meta.name not in _INCLUDE or meta.in_statement:
            continue
        try:
            target = _resolve_include(file.path, meta)
            if target.resolve() in stack:
                continue
            inc = read_sql_file(target, what="included file")
        except (_IncludeError, SQLSyntaxUnsupportedError):
            continue
        found.append(inc)
        _walk_includes(inc, (*stack, target.resolve()), found)


def read_sql_file(path: Path, *, what: str = "SQL file") -> SQLFile:
    """Read and decode ``path`` (nothing is split until :attr:`SQLFile.statements` is used).

    Raises :class:`SQLSyntaxUnsupportedError` (file and line named) for a file
    that cannot be read (a dangling symbolic link names its target) or is not
    UTF-8.  What the file may not contain is refused when it is first split.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = "check that the file exists and is readable by the user running pytest"
        if path.is_symlink() and not path.exists():
            target = _printable(os.readlink(path))
            reason = f"it is a symbolic link to {target}, which does not exist"
            hint = "restore the file it points to, or point the link at the right file"
        raise SQLSyntaxUnsupportedError(
            safe_path(path), 0, f"cannot read {what}: {reason}", hint=hint
        ) from exc
    return sql_file_from_bytes(path, data, what=what)


def sql_file_from_bytes(path: Path, data: bytes, *, what: str = "SQL file") -> SQLFile:
    """An :class:`SQLFile` of ``data`` read from ``path`` (decoded, not split)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SQLSyntaxUnsupportedError(
            safe_path(path),
            line,
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8",
        ) from exc
    if text.startswith(_BOM):
        # The BOM is dropped; offsets (and so error positions) count from after it.
        text = text[1:]
    return SQLFile(path, data, text, what)


# --------------------------------------------------------------------------- the plan


@dataclass
class Source:
    """One file's text as split, and where it was included from (if it was)."""

    path: Path
    split: SplitResult
    included_from: tuple[Path, int] | None = None


@dataclass
class Unit:
    """A step of a plan: statements sent together in one round trip, or one COPY."""

    source: Source
    statements: list[Statement]

    @property
    def is_copy(self) -> bool:
        return self.statements[0].copy_data is not None

    @property
    def start(self) -> int:
        return self.statements[0].offset

    @property
    def end(self) -> int:
        return self.statements[-1].end

    def statement_at(self, offset: int) -> Statement:
        starts = [s.offset for s in self.statements]
        return self.statements[max(0, bisect.bisect_right(starts, offset) - 1)]


@dataclass(frozen=True)
class Outside:
    """Why a file runs outside a transaction: a statement, its tool's marker, or our directive."""

    path: Path
    line: int
    what: str
    kind: str  # "statement" | "marker" | "directive"

    def __str__(self) -> str:
        return f"{self.what} ({display_name(self.path)}, line {self.line})"


@dataclass
class Plan:
    """The parsed form of a file: units to run, notes, why it runs outside a transaction."""

    units: list[Unit] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: why the file runs outside a transaction (empty: it runs in one)
    outside: list[Outside] = field(default_factory=list)
    #: transaction control statements kept (only allowed outside a transaction)
    tx_control: list[tuple[Path, Statement]] = field(default_factory=list)
    seconds: float = 0.0

    @cached_property
    def statements(self) -> tuple[Statement, ...]:
        return tuple(
            s._replace(path=u.source.path) if u.source.included_from else s
            for u in self.units
            for s in u.statements
        )

    def steps(self) -> Iterator[tuple[Source, Statement]]:
        for unit in self.units:
            for stmt in unit.statements:
                yield unit.source, stmt


class _Planner:
    """Turns an :class:`SQLFile` (and what it includes) into a :class:`Plan`, or refuses it."""

    def __init__(self, file: SQLFile) -> None:
        self.file = file
        self.plan_ = Plan()
        self.refused: list[tuple[Path, int, str, str]] = []  # path, line, command, hint
        self.problems: list[tuple[Path, int, str, str]] = []  # path, line, message, hint

    def plan(self) -> Plan:
        f = self.file
        items = self._source(f.path, f.runnable, None, (f.path.resolve(),))
        plan = self.plan_
        if self.refused:
            # All of them at once, those of included files too (named after the command).
            first = self.refused[0][0]
            commands = [
                (line, cmd if path == first else f"{cmd} (in {display_name(path)})", hint)
                for path, line, cmd, hint in self.refused
            ]
            raise PsqlMetaCommandError(safe_path(first), commands)
        if self.problems:
            path, line, message, hint = self.problems[0]
            raise SQLSyntaxUnsupportedError(safe_path(path), line, message, hint=hint)
        if f.no_transaction:
            plan.outside.append(f.no_transaction)
        if f.directive:
            plan.outside.append(Outside(f.path, f.directive, NO_TRANSACTION_DIRECTIVE, "directive"))
        for source, stmt in items:
            reason = _outside_reason(stmt)
            if reason:
                plan.outside.append(Outside(source.path, stmt.line, reason, "statement"))
        control = [(s, st) for s, st in items if _is_tx_control(st)]
        if control and not plan.outside:
            items, control = self._unwrap(items, control)
        plan.tx_control = [(s.path, st) for s, st in control]
        if control and not plan.outside:
            source, stmt = control[0]
            words = " ".join(stmt.keywords(2)) if stmt.first_word == "START" else stmt.first_word
            raise SQLSyntaxUnsupportedError(
                safe_path(source.path),
                stmt.line,
                f"{words} {_TX_WHY.get(stmt.first_word, 'controls the transaction')}",
                hint=f"every {f.what} runs in one transaction opened by pytest-clinicdb: remove "
                "the transaction control, or (for a migration) add "
                f"`{NO_TRANSACTION_DIRECTIVE}` among its first lines to run it statement by "
                "statement outside a transaction",
            )
        if not items and not f.allow_empty:
            raise SQLSyntaxUnsupportedError(
                safe_path(f.path),
                1,
                f"{f.what} is empty (no SQL statement in it)",
                hint="add the statements, or remove the file if it was created by mistake",
            )
        plan.units = _units(items)
        return plan

    def _unwrap(
        self,
        items: list[tuple[Source, Statement]],
        control: list[tuple[Source, Statement]],
    ) -> tuple[list[tuple[Source, Statement]], list[tuple[Source, Statement]]]:
        """Drop a ``BEGIN; … COMMIT;`` that wraps the whole file (the file is one transaction)."""
        if len(control) != 2 or len(items) < 2:
            return items, control
        (s0, first), (_, last) = items[0], items[-1]
        if first is not control[0][1] or last is not control[1][1]:
            return items, control
        opens = first.first_word == "BEGIN" or first.keywords(2) == ["START", "TRANSACTION"]
        if not opens or last.first_word not in ("COMMIT", "END"):
            return items, control
        self.plan_.notes.append(
            Note(
                s0.path,
                first.line,
                f"{' '.join(first.keywords(2)) if first.first_word == 'START' else 'BEGIN'} … "
                f"{last.first_word} (line {last.line}) around the whole file dropped: "
                f"the {self.file.what} runs in a transaction of its own",
            )
        )
        return items[1:-1], []

    def _source(
        self,
        path: Path,
        text: str,
        included_from: tuple[Path, int] | None,
        stack: tuple[Path, ...],
    ) -> list[tuple[Source, Statement]]:
        split = split_sql(text)
        source = Source(path, split, included_from)
        for line, message in split.problems:
            self.problems.append(
                (path, line, message, "put the rows on the lines after COPY … FROM stdin;")
            )
        variables = _set_variables(split, text)
        out: list[tuple[Source, Statement]] = []
        metas = iter(split.meta_commands)
        pending_meta = next(metas, None)
        for stmt in split.statements:
            while pending_meta is not None and pending_meta.offset < stmt.offset:
                out += self._meta(source, pending_meta, variables, stack)
                pending_meta = next(metas, None)
            if (
                stmt.first_word == "COPY"
                and stmt.copy_data is None
                and _TO_STDOUT.search(stmt.text)
            ):
                self.problems.append(
                    (
                        path,
                        stmt.line,
                        "COPY … TO STDOUT writes rows to psql, which is not there",
                        "remove it (a migration or seed has no one to print to)",
                    )
                )
            skip = _ledger_statement(stmt)
            if skip:
                self.plan_.notes.append(
                    Note(
                        path,
                        stmt.line,
                        f"skipped {skip}: the runner's own ledger (schema {LEDGER_SCHEMA}) "
                        "already exists",
                    )
                )
                continue
            out.append((source, stmt))
        while pending_meta is not None:
            out += self._meta(source, pending_meta, variables, stack)
            pending_meta = next(metas, None)
        return out

    def _meta(
        self,
        source: Source,
        meta: MetaCommand,
        variables: dict[str, int],
        stack: tuple[Path, ...],
    ) -> list[tuple[Source, Statement]]:
        name = meta.name
        if name in _INCLUDE:
            if meta.in_statement:
                self.refused.append(
                    (
                        source.path,
                        meta.line,
                        name,
                        "put it on a line of its own, between statements",
                    )
                )
                return []
            try:
                target = _resolve_include(source.path, meta)
            except _IncludeError as exc:
                self.problems.append((source.path, meta.line, exc.message, exc.hint))
                return []
            if target.resolve() in stack:
                self.problems.append(
                    (
                        source.path,
                        meta.line,
                        f"{name} {meta.args} includes a file that includes this one",
                        "break the cycle: a file may not include itself, directly or not",
                    )
                )
                return []
            try:
                inc = read_sql_file(target, what="included file")
            except SQLSyntaxUnsupportedError as exc:
                self.problems.append((source.path, meta.line, exc.message, exc.hint or ""))
                return []
            return self._source(
                inc.path, inc.runnable, (source.path, meta.line), (*stack, target.resolve())
            )
        verdict = _judge(meta, variables)
        if verdict.note is not None:
            self.plan_.notes.append(Note(source.path, meta.line, f"{name} ignored: {verdict.note}"))
        else:
            self.refused.append((source.path, meta.line, name, verdict.hint))
        return []


_TX_WHY = {
    "BEGIN": "opens its own transaction",
    "START": "opens its own transaction",
    "COMMIT": "commits in the middle of the file",
    "END": "commits in the middle of the file",
    "ROLLBACK": "rolls back in the middle of the file",
    "ABORT": "rolls back in the middle of the file",
    "PREPARE": "prepares the transaction for two-phase commit",
}
_TO_STDOUT = re.compile(r"\bTO\s+STDOUT\b", re.IGNORECASE)


def _is_tx_control(stmt: Statement) -> bool:
    first = stmt.first_word
    if first not in _TX_CONTROL_FIRST:
        return False
    words = stmt.keywords(3)
    if first == "ROLLBACK" and len(words) > 1 and words[1] in ("TO", "PREPARED"):
        return words[1] == "PREPARED"
    if first == "START":
        return words[:2] == ["START", "TRANSACTION"]
    if first == "PREPARE":
        return words[:2] == ["PREPARE", "TRANSACTION"]
    return True


def _outside_reason(stmt: Statement) -> str | None:
    """What in ``stmt`` cannot run inside a transaction block (``None``: nothing)."""
    if stmt.first_word not in _OUTSIDE_FIRST:
        return None
    head = " ".join(stmt.keywords(12))
    for pattern, label in _OUTSIDE:
        m = pattern.match(head)
        if m:
            return label.format(*m.groups())
    return None


_LEDGER_NAME = rf'(?:{LEDGER_SCHEMA}|"{LEDGER_SCHEMA}")'
_LEDGER_PATTERNS = [
    (
        re.compile(
            rf"^\s*CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?{_LEDGER_NAME}\s*;?\s*$", re.I | re.S
        ),
        "CREATE SCHEMA",
    ),
    (re.compile(rf"^\s*ALTER\s+SCHEMA\s+{_LEDGER_NAME}\s", re.I), "ALTER SCHEMA"),
    (re.compile(rf"^\s*COMMENT\s+ON\s+SCHEMA\s+{_LEDGER_NAME}\s", re.I), "COMMENT ON SCHEMA"),
    (
        re.compile(rf"^\s*(?:GRANT|REVOKE)\b.*\bON\s+SCHEMA\s+{_LEDGER_NAME}\s", re.I | re.S),
        "a grant",
    ),
    (
        re.compile(
            rf"^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_LEDGER_NAME}\.", re.I
        ),
        "CREATE TABLE",
    ),
    (
        re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_LEDGER_NAME}\.", re.I),
        "ALTER TABLE",
    ),
    (re.compile(rf"^\s*COPY\s+{_LEDGER_NAME}\.", re.I), "COPY"),
    (re.compile(rf"^\s*COMMENT\s+ON\s+(?:TABLE|COLUMN)\s+{_LEDGER_NAME}\.", re.I), "COMMENT ON"),
    (
        re.compile(rf"^\s*(?:GRANT|REVOKE)\b.*\bON\s+(?:TABLE\s+)?{_LEDGER_NAME}\.", re.I | re.S),
        "a grant",
    ),
]


def _ledger_statement(stmt: Statement) -> str | None:
    """What ``stmt`` does to the runner's ledger schema, if that is all it does."""
    if stmt.first_word not in ("CREATE", "ALTER", "COMMENT", "GRANT", "REVOKE", "COPY"):
        return None
    if LEDGER_SCHEMA not in stmt.text.lower():
        return None
    for pattern, what in _LEDGER_PATTERNS:
        if pattern.match(stmt.text):
            return what
    return None


def _units(items: list[tuple[Source, Statement]]) -> list[Unit]:
    """Group statements: COPY alone, the rest in batches of one source up to ~1 MB."""
    units: list[Unit] = []
    current: Unit | None = None
    size = 0
    for source, stmt in items:
        if stmt.copy_data is not None:
            units.append(Unit(source, [stmt]))
            current = None
            continue
        length = stmt.end - stmt.offset
        if current is None or current.source is not source or size + length > _BATCH_CHARS:
            current = Unit(source, [])
            units.append(current)
            size = 0
        current.statements.append(stmt)
        size += length
    return units


# --------------------------------------------------------------------------- meta-commands


@dataclass(frozen=True)
class _Verdict:
    note: str | None = None  # ignored, with this note
    hint: str = ""  # refused, with this hint


#: psql variables that only change what psql prints or how it behaves as a client.
_PSQL_VARIABLES = {
    "AUTOCOMMIT", "COMP_KEYWORD_CASE", "ECHO", "ECHO_HIDDEN", "FETCH_COUNT",
    "HIDE_TABLEAM", "HIDE_TOAST_COMPRESSION", "HISTCONTROL", "HISTFILE", "HISTSIZE",
    "IGNOREEOF", "ON_ERROR_ROLLBACK", "ON_ERROR_STOP", "PROMPT1", "PROMPT2", "PROMPT3",
    "QUIET", "SHOW_ALL_RESULTS", "SHOW_CONTEXT", "SINGLELINE", "SINGLESTEP", "VERBOSITY",
}  # fmt: skip
_DISPLAY_ONLY = {
    "\\echo": "psql prints its text; nothing runs",
    "\\qecho": "psql prints its text; nothing runs",
    "\\warn": "psql prints its text; nothing runs",
    "\\timing": "a psql display setting",
    "\\pset": "a psql display setting",
    "\\x": "a psql display setting",
    "\\t": "a psql display setting",
    "\\a": "a psql display setting",
    "\\restrict": "pg_dump's restrict key, for psql only",
    "\\unrestrict": "pg_dump's restrict key, for psql only",
    "\\unset": "psql variables are not used here",
}
_HINTS = {
    "\\connect": "the build runs every file on the database it builds; remove it (SQL for "
    "another database belongs to that database's own set-up)",
    "\\gexec": "psql runs each value the query returns as a statement; write those statements "
    "out, or run them from a DO block with EXECUTE",
    "\\gset": "psql stores the result in psql variables, which do not exist here; use a DO "
    "block (SELECT … INTO a variable) or a CTE",
    "\\g": "end the statement with ; instead",
    "\\copy": "\\copy reads a file on psql's side; put the rows inline with COPY … FROM stdin "
    "(as pg_dump --data-only writes them) or as INSERT statements",
    "\\if": "psql conditionals are not evaluated here; use a DO block with IF … THEN",
    "\\q": "psql stops reading the file here; remove it (and the lines after it that must not run)",
    "\\!": "shell commands do not run here; remove it",
    "\\encoding": "files are read as UTF-8; save the file as UTF-8 and remove it",
}
_ALIASES = {
    "\\c": "\\connect", "\\gx": "\\g", "\\gdesc": "\\g", "\\crosstabview": "\\g",
    "\\watch": "\\g", "\\elif": "\\if", "\\else": "\\if", "\\endif": "\\if",
    "\\quit": "\\q", "\\setenv": "\\!", "\\getenv": "\\!", "\\cd": "\\!",
    "\\shell": "\\!", "\\o": "\\!", "\\out": "\\!", "\\w": "\\!", "\\write": "\\!",
}  # fmt: skip
_GENERIC_HINT = (
    "psql meta-commands are not SQL, and pytest-clinicdb sends the SQL itself; remove it or "
    "replace it with SQL"
)


def _judge(meta: MetaCommand, variables: dict[str, int]) -> _Verdict:
    name = meta.name
    if name == "\\set":
        var = meta.args.split()[0] if meta.args else ""
        if var == "ON_ERROR_STOP":
            return _Verdict(note="the runner always stops at the first error")
        if var in _PSQL_VARIABLES:
            return _Verdict(note="a psql client setting")
        used = variables.get(var)
        if used is None:
            return _Verdict(note=f"psql variable {var or '(none)'} is never used")
        return _Verdict(
            hint=f"psql variables are not expanded here (:{var} on line {used}); write the "
            "value into the SQL, or use a custom setting: set_config('app.x', …) and "
            "current_setting('app.x')"
        )
    if name == "\\encoding" and meta.args.upper().replace("-", "") in ("UTF8", "UNICODE"):
        return _Verdict(note="files are read as UTF-8")
    if name in _DISPLAY_ONLY:
        return _Verdict(note=_DISPLAY_ONLY[name])
    return _Verdict(hint=_HINTS.get(_ALIASES.get(name, name), _GENERIC_HINT))


def _set_variables(split: SplitResult, text: str) -> dict[str, int]:
    """Variables set with ``\\set`` that the text uses as ``:name`` → line of the first use."""
    names = {
        m.args.split()[0]
        for m in split.meta_commands
        if m.name == "\\set" and m.args and m.args.split()[0] not in _PSQL_VARIABLES
    }
    used: dict[str, int] = {}
    for var in names:
        ref = re.compile(
            rf"(?<![:\w]):(?:'{re.escape(var)}'|\"{re.escape(var)}\"|{re.escape(var)}\b|\{{\?{re.escape(var)}\}})"
        )
        for m in ref.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            if not any(mc.line == line and mc.name == "\\set" for mc in split.meta_commands):
                used[var] = line
                break
    return used


class _IncludeError(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _resolve_include(including: Path, meta: MetaCommand) -> Path:
    arg = meta.args
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        arg = arg[1:-1]
    if not arg:
        raise _IncludeError(f"{meta.name} without a file name", "name the file to include")
    target = Path(arg)
    if target.is_absolute():
        places = [target]
    else:
        base = including.parent
        places = [base / target]
        if meta.name in ("\\i", "\\include"):
            places += [parent / target for parent in base.parents]
    for place in places:
        if place.is_file():
            return place
    where = ", ".join(str(p.parent) for p in places[:3]) + (" …" if len(places) > 3 else "")
    raise _IncludeError(
        f"{meta.name} {arg}: no such file (looked in {where})",
        f"{meta.name} paths are resolved from the including file's folder"
        + (" and the folders above it" if meta.name in ("\\i", "\\include") else ""),
    )


# --------------------------------------------------------------------------- running


NoticeSink = Callable[[psycopg.errors.Diagnostic], None]
_RESET = b"RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE"


def reset_session(
    conn: psycopg.Connection[Any], settings: Mapping[str, str] | None = None, *, local: bool = True
) -> None:
    """Bring the session back to its defaults, then apply ``settings``.

    ``local`` settings last until the end of the current transaction
    (``set_config(name, value, true)``); otherwise for the session.
    """
    conn.execute(_RESET)
    if settings:
        conn.execute(
            "SELECT set_config(n, v, %s) FROM unnest(%s::text[], %s::text[]) AS s(n, v)",
            (local, list(settings), list(settings.values())),
        )


def execute_file(
    conn: psycopg.Connection[Any],
    sqlfile: SQLFile,
    error_cls: type[SQLFileError],
    *,
    settings: Mapping[str, str] | None = None,
    reset: bool | None = None,
    on_statement: Callable[[Statement], None] | None = None,
) -> None:
    """Run ``sqlfile`` on ``conn`` inside the caller's transaction.

    First the session goes back to its defaults (``RESET ALL`` …) and
    ``settings`` are set for the transaction.  ``reset`` defaults to "when
    ``settings`` is given": a caller that still sets its settings itself before
    calling (and passes none) keeps them — pass ``settings={}`` to get a clean
    session without settings.

    A failing statement raises ``error_cls`` naming the file, line and column;
    what the file did is rolled back to where it started (a savepoint), the
    caller's transaction stays usable.  After the file, the session is reset
    again (with ``settings``): what the file SET does not outlive it.  A file
    that must run outside a transaction is refused with
    :class:`SQLSyntaxUnsupportedError`.
    """
    plan = sqlfile.plan
    if plan.outside:
        _refuse_outside(sqlfile, plan)
    clean = reset if reset is not None else settings is not None
    with conn.transaction():
        if clean:
            reset_session(conn, settings)
        for unit in plan.units:
            if unit.is_copy:
                _run_statement(conn, unit.source, unit.statements[0], error_cls)
            elif on_statement is not None:
                for stmt in unit.statements:
                    on_statement(stmt)
                    _run_statement(conn, unit.source, stmt, error_cls)
            else:
                _run_batch(conn, unit, error_cls)
        if clean:
            # What the file SET stays in the session after the transaction commits: the
            # caller's next statements get the defaults (and its settings) back.
            reset_session(conn, settings)


def execute_file_outside_transaction(
    conn: psycopg.Connection[Any],
    sqlfile: SQLFile,
    error_cls: type[SQLFileError],
    *,
    settings: Mapping[str, str] | None = None,
    done: Callable[[int], None] | None = None,
) -> int:
    """Run ``sqlfile`` statement by statement in autocommit, as Flyway does on PostgreSQL.

    ``conn`` must be in autocommit mode and outside a transaction.  The session
    is reset and ``settings`` are set for the session first.  What ran before an
    error stays applied; an explicit transaction the file left open is rolled
    back.  ``done(n)`` is called whenever the first ``n`` statements are
    committed.  Returns the number of statements run.
    """
    if not conn.autocommit or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise ValueError("execute_file_outside_transaction needs an idle autocommit connection")
    plan = sqlfile.plan
    reset_session(conn, settings, local=False)
    count = 0
    try:
        for source, stmt in plan.steps():
            _run_statement(conn, source, stmt, error_cls)
            count += 1
            if done is not None and conn.info.transaction_status == pq.TransactionStatus.IDLE:
                done(count)
    finally:
        if _in_transaction(conn):
            # The file opened a transaction (BEGIN) and did not end it: psql would roll it back.
            conn.execute("ROLLBACK")
    return count


def _in_transaction(conn: psycopg.Connection[Any]) -> bool:
    return conn.info.transaction_status in (
        pq.TransactionStatus.INTRANS,
        pq.TransactionStatus.INERROR,
    )


def _refuse_outside(sqlfile: SQLFile, plan: Plan) -> None:
    reason = plan.outside[0]
    if reason.kind == "statement":
        message = f"{reason.what} cannot run inside a transaction block"
        hint = (
            f"a {sqlfile.what} runs in one transaction; use the transactional form (e.g. plain "
            "CREATE INDEX: the test database is small, so it is instant)"
        )
    else:
        message = f"{reason.what} asks to run outside a transaction"
        hint = f"a {sqlfile.what} always runs in one transaction; remove it"
    raise SQLSyntaxUnsupportedError(safe_path(reason.path), reason.line, message, hint=hint)


#: How long a statement may run while the runner looks for the one a cancelled batch was on.
LOCATE_TIMEOUT = "1s"


def _run_batch(conn: psycopg.Connection[Any], unit: Unit, error_cls: type[SQLFileError]) -> None:
    if len(unit.statements) == 1:
        _run_statement(conn, unit.source, unit.statements[0], error_cls)
        return
    text = unit.source.split.text_between(unit.start, unit.end)
    try:
        with conn.transaction():
            conn.execute(text.encode("utf-8"))
        return
    except psycopg.errors.QueryCanceled as exc:
        # Cancelled from outside (the build's timeout) or by statement_timeout: running the
        # batch again would wait as long again.  Find the slow statement instead: again one by
        # one, each allowed a moment, all rolled back; the one that takes longer is named.
        with (
            contextlib.suppress(psycopg.errors.QueryCanceled),
            conn.transaction(force_rollback=True),
        ):
            conn.execute(f"SET LOCAL statement_timeout = '{LOCATE_TIMEOUT}'")
            for stmt in unit.statements:
                _run_statement(conn, unit.source, stmt, error_cls)
        raise _file_error(unit.source, unit.statements[0], exc, error_cls) from exc
    except psycopg.Error as exc:
        pos = exc.diag.statement_position
        if pos and pos.isdigit():
            offset = unit.start + int(pos) - 1
            stmt = unit.statement_at(offset)
            raise _file_error(unit.source, stmt, exc, error_cls, offset=offset) from exc
    # No position (a constraint, a RAISE in a DO block …): find the statement.
    with conn.transaction():
        for stmt in unit.statements:
            _run_statement(conn, unit.source, stmt, error_cls)


def _run_statement(
    conn: psycopg.Connection[Any], source: Source, stmt: Statement, error_cls: type[SQLFileError]
) -> None:
    try:
        if stmt.copy_data is not None:
            with conn.cursor() as cur, cur.copy(stmt.text.encode("utf-8")) as copy:
                if stmt.copy_data:
                    copy.write(stmt.copy_data.encode("utf-8"))
        else:
            conn.execute(stmt.text.encode("utf-8"))
    except psycopg.Error as exc:
        raise _file_error(source, stmt, exc, error_cls) from exc


def _file_error(
    source: Source,
    stmt: Statement,
    exc: psycopg.Error,
    error_cls: type[SQLFileError],
    *,
    offset: int | None = None,
) -> SQLFileError:
    diag = exc.diag
    text = source.split.text
    line, col = stmt.line, stmt.column
    pos = diag.statement_position
    context = diag.context
    if offset is None and pos and pos.isdigit():
        offset = stmt.offset + int(pos) - 1
    if offset is not None:
        line, col = line_col(text, offset)
    elif context:
        copy_line = _COPY_CONTEXT_LINE.search(context)
        plpgsql = _PLPGSQL_LINE.search(context)
        if stmt.copy_data is not None and copy_line:
            line, col = stmt.copy_line + int(copy_line.group(1)) - 1, 1
        elif plpgsql and "inline_code_block" in context:
            # An error raised while running a DO block: PL/pgSQL gives the line
            # inside the body; map it into the file.
            body = _body_start(stmt.text)
            if body is not None:
                body_line = line_col(stmt.text, body)[0]
                line = stmt.line + body_line - 1 + int(plpgsql.group(1)) - 1
                col = 1
    sqlstate = diag.sqlstate or getattr(exc, "sqlstate", None)
    message = diag.message_primary or str(exc).strip().splitlines()[0]
    if source.included_from:
        parent, at = source.included_from
        where = f"included from {display_name(parent)}, line {at}"
        context = f"{context}\n  {where}" if context else where
    hint = _hint(sqlstate, diag.message_hint)
    return error_cls(
        safe_path(source.path),
        line,
        col,
        sqlstate,
        message,
        detail=diag.message_detail,
        context=context,
        hint=hint,
        statement=stmt.text,
    )


_STATE_HINTS = {
    "2D000": "a file runs inside one transaction, where a procedure cannot COMMIT or ROLLBACK; "
    f"for a migration, add `{NO_TRANSACTION_DIRECTIVE}` among its first lines to run it "
    "statement by statement outside a transaction",
    "25001": "this statement cannot run inside the file's transaction; for a migration, add "
    f"`{NO_TRANSACTION_DIRECTIVE}` among its first lines to run it outside a transaction",
    "55P04": "a value added with ALTER TYPE … ADD VALUE cannot be used in the transaction that "
    "added it: use it in a later migration, or run this one outside a transaction with "
    f"`{NO_TRANSACTION_DIRECTIVE}`",
}


def _hint(sqlstate: str | None, server_hint: str | None) -> str | None:
    ours = _STATE_HINTS.get(sqlstate or "")
    if server_hint and ours:
        return f"{server_hint} — {ours}"
    return server_hint or ours


def _body_start(text: str) -> int | None:
    """Offset of the first character after the opening dollar quote of a DO body."""
    m = re.search(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text)
    return m.end() if m else None
