"""One exception hierarchy for pytest-clinicdb.

Every error says what was checked and how to fix it.  Structured attributes
(``file``, ``line``, ``sqlstate`` ...) let tests and the CLI read the details
without parsing the message.
"""

from __future__ import annotations

from pathlib import Path


class ClinicDBError(Exception):
    """Base class of every error raised by pytest-clinicdb."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(ClinicDBError):
    """An option, ini key or environment variable has a value we cannot use."""


class BinariesNotFoundError(ClinicDBError):
    """No PostgreSQL binaries match what was asked for."""


class ServerStartError(ClinicDBError):
    """The PostgreSQL server could not be initialised or started."""

    def __init__(self, message: str, *, log_tail: str = "", hint: str | None = None) -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n  server log (last lines):\n{_indent(log_tail, '    ')}"
        super().__init__(message, hint=hint)


class ServerDiedError(ServerStartError):
    """The server stopped answering in the middle of the session."""


class MigrationDiscoveryError(ClinicDBError):
    """The migrations directory or one of its files cannot be used."""


class MigrationEditedError(ClinicDBError):
    """An already-applied migration no longer matches its recorded checksum."""

    def __init__(self, edited: list[str], *, hint: str | None = None) -> None:
        self.edited = edited
        names = ", ".join(edited)
        super().__init__(
            f"already-applied migration(s) changed since they were applied: {names}",
            hint=hint
            or "never edit a historical migration; restore it and add a new migration instead",
        )


class ExtensionsMissingError(ClinicDBError):
    """The migrations need extensions the chosen PostgreSQL build does not ship."""

    def __init__(self, missing: list[str], message: str, *, hint: str | None = None) -> None:
        self.missing = missing
        super().__init__(message, hint=hint)


class SQLFileError(ClinicDBError):
    """A statement of a migration or seed file failed on the server.

    ``file``/``line``/``column`` point into the file (1-based); ``sqlstate`` and
    ``server_message`` come from PostgreSQL.
    """

    kind = "SQL file"

    def __init__(
        self,
        file: Path,
        line: int,
        column: int,
        sqlstate: str | None,
        server_message: str,
        *,
        detail: str | None = None,
        context: str | None = None,
        hint: str | None = None,
        statement: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.sqlstate = sqlstate
        self.server_message = server_message
        self.detail = detail
        self.context = context
        self.statement = statement
        text = f"{self.kind} {file.name}, line {line}, column {column}: {server_message}"
        text += f" (SQLSTATE {sqlstate or 'unknown'})"
        if detail:
            text += f"\n  detail: {detail}"
        if context:
            text += f"\n  context: {context}"
        text += f"\n  file: {file}"
        super().__init__(text, hint=hint)


class MigrationError(SQLFileError):
    """A migration failed; nothing of that file stays applied."""

    kind = "migration"


class SeedError(SQLFileError):
    """A seed failed; nothing of that seed stays applied."""

    kind = "seed"


class SQLSyntaxUnsupportedError(ClinicDBError):
    """A file uses something the runner cannot run inside a transaction."""

    def __init__(self, file: Path, line: int, message: str, *, hint: str | None = None) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file.name}, line {line}: {message}\n  file: {file}", hint=hint)


class TemplateBuildError(ClinicDBError):
    """Building the template database failed (nothing half-built is kept)."""


class DevSeedRefusedError(ClinicDBError):
    """The dev-only seed (002) was refused by the plugin's own guard."""


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# --------------------------------------------------------------------------- SQL files, layouts


class PsqlMetaCommandError(SQLSyntaxUnsupportedError):
    """A file uses psql meta-commands the runner cannot run; all of them are listed.

    ``commands`` holds ``(line, command, hint)`` for each one, in file order.
    """

    def __init__(self, file: Path, commands: list[tuple[int, str, str]]) -> None:
        self.commands = commands
        if len(commands) == 1:
            line, command, hint = commands[0]
            super().__init__(file, line, f"psql meta-command {command} is not supported", hint=hint)
            return
        listing = "\n".join(f"    line {ln}: {cmd} — {hint}" for ln, cmd, hint in commands)
        super().__init__(
            file,
            commands[0][0],
            f"{len(commands)} psql meta-commands are not supported:\n{listing}",
        )


class MigrationIncompleteError(ClinicDBError):
    """A migration that runs outside a transaction stopped half way; nothing else is applied.

    ``incomplete`` maps each such migration's ledger name to a description of
    how far it got.
    """

    def __init__(self, incomplete: dict[str, str], *, hint: str | None = None) -> None:
        self.incomplete = incomplete
        lines = "\n".join(f"  {name}: {what}" for name, what in incomplete.items())
        super().__init__(
            "the ledger records migration(s) that stopped half way; nothing more is applied "
            f"until they are resolved:\n{lines}",
            hint=hint,
        )


class MigrationPartlyAppliedError(MigrationError):
    """A migration that runs outside a transaction failed: its earlier statements stay applied.

    ``statements_done`` of ``statements_total`` statements are committed; the
    ledger row of the file says so (status ``failed``).
    """

    def __init__(
        self,
        file: Path,
        line: int,
        column: int,
        sqlstate: str | None,
        server_message: str,
        *,
        detail: str | None = None,
        context: str | None = None,
        hint: str | None = None,
        statement: str | None = None,
        statements_done: int = 0,
        statements_total: int = 0,
    ) -> None:
        self.statements_done = statements_done
        self.statements_total = statements_total
        super().__init__(
            file,
            line,
            column,
            sqlstate,
            server_message,
            detail=detail,
            context=context,
            hint=hint,
            statement=statement,
        )
