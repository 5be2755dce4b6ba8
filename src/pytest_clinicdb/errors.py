"""One exception hierarchy for pytest-clinicdb.

Every error says what was checked and how to fix it.  Structured attributes
(``file``, ``line``, ``sqlstate`` ...) let tests and the CLI read the details
without parsing the message::

    ClinicDBError
    ├── ConfigError                  an option, ini key or environment value
    │   └── InputNotFoundError       a configured folder or file does not exist
    ├── BinariesNotFoundError        no PostgreSQL build matches
    ├── ServerStartError             initdb / start / connect failed (log tail attached)
    │   ├── ServerDiedError          the server went away mid-session
    │   └── ConnectionBudgetError    the server has no connection left for this run
    ├── MigrationDiscoveryError      the migrations folder or a file name
    ├── MigrationEditedError         an applied migration changed
    ├── ExtensionsMissingError       the build lacks an extension the migrations create
    ├── SQLFileError                 a statement failed (file, line, column, SQLSTATE)
    │   ├── MigrationError
    │   ├── SeedError
    │   └── BootstrapError
    ├── SQLFileReadError             a file cannot be read
    ├── SQLSyntaxUnsupportedError    something the runner cannot run (file, line)
    ├── SeedNotFoundError            a seed file or folder is missing
    ├── DevSeedRefusedError          the plugin's own guard refused seed 002
    ├── TriggersLeftDisabledError    a trigger is disabled after seeding
    ├── PartitionError               a partitioned table cannot be read or covered
    ├── TemplateBuildError           building a template failed (cause chained)
    ├── BuildTimeoutError            a build step ran past --clinicdb-build-timeout
    └── CheckError                   a check was called with arguments it cannot use

Errors cross process boundaries (pytest-xdist sends them from workers to the
controller), so every one of them pickles and unpickles with its attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _rebuild(cls: type[ClinicDBError], state: dict[str, Any]) -> ClinicDBError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


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

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments than ``args``: rebuild from the
        # attributes instead, so the error pickles whatever its signature.
        return (_rebuild, (type(self), dict(self.__dict__)))


class ConfigError(ClinicDBError):
    """An option, ini key or environment variable has a value we cannot use."""


class InputNotFoundError(ConfigError):
    """A configured folder or file (migrations, seeds, bootstrap) does not exist."""


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


class ConnectionBudgetError(ServerStartError):
    """The server cannot take the connections this run needs."""


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


class BootstrapError(SQLFileError):
    """A bootstrap file failed; nothing of that file stays applied."""

    kind = "bootstrap file"


class SQLFileReadError(ClinicDBError):
    """A migration or seed file cannot be read from disk."""

    def __init__(self, file: Path, message: str, *, hint: str | None = None) -> None:
        self.file = file
        super().__init__(f"{file.name}: {message}\n  file: {file}", hint=hint)


class SQLSyntaxUnsupportedError(ClinicDBError):
    """A file uses something the runner cannot run inside a transaction."""

    def __init__(self, file: Path, line: int, message: str, *, hint: str | None = None) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file.name}, line {line}: {message}\n  file: {file}", hint=hint)


class SeedNotFoundError(ConfigError):
    """A configured seed file or seeds folder is missing, or a pattern is ambiguous."""


class DevSeedRefusedError(ClinicDBError):
    """The dev-only seed (002) was refused by the plugin's own guard."""


class TriggersLeftDisabledError(ClinicDBError):
    """Triggers are disabled after seeding (they stay disabled for every session)."""

    def __init__(self, triggers: list[str], *, hint: str | None = None) -> None:
        self.triggers = triggers
        super().__init__(
            "triggers are disabled after the dev seed committed: " + ", ".join(triggers),
            hint=hint
            or "enable them with ALTER TABLE … ENABLE TRIGGER …; something else disabled them",
        )


class PartitionError(ClinicDBError):
    """A partitioned table cannot be read, or its partitions cannot be created."""


class TemplateBuildError(ClinicDBError):
    """Building the template database failed (nothing half-built is kept).

    ``cause`` is the error that stopped the build (also chained as ``__cause__``);
    the message is the cause's, prefixed with the template that was being built.
    """

    def __init__(self, template: str, cause: BaseException) -> None:
        self.template = template
        self.cause = cause
        if isinstance(cause, ClinicDBError):
            message, hint = cause.message, cause.hint
        else:
            message, hint = (str(cause).strip() or type(cause).__name__), None
        super().__init__(message, hint=hint)


class BuildTimeoutError(ClinicDBError):
    """A build step ran longer than ``--clinicdb-build-timeout`` and was cancelled."""

    def __init__(
        self,
        step: str,
        seconds: float,
        *,
        where: str = "",
        blockers: list[str] | None = None,
    ) -> None:
        self.step = step
        self.seconds = seconds
        self.where = where
        self.blockers = blockers or []
        message = (
            f"{where or step} ran longer than {seconds:.0f} s (--clinicdb-build-timeout) and "
            "was cancelled; nothing of the build is kept"
        )
        if self.blockers:
            message += "\n  it was waiting for a lock held by:\n" + "\n".join(
                f"    {b}" for b in self.blockers
            )
            hint = "end or commit that session, then run again"
        else:
            hint = (
                "make the step faster, or raise --clinicdb-build-timeout (ini "
                "clinicdb_build_timeout; 0 for no limit)"
            )
        super().__init__(message, hint=hint)


class CheckError(ClinicDBError):
    """A check was called with arguments it cannot use."""


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
