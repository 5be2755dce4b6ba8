"""The ``clinicdb`` command: the plugin's library outside pytest.

Subcommands (one module each): ``migrate``, ``seed``, ``status``,
``partitions``, ``check`` (the battery), ``lock``, ``up`` and ``down``.  Their
project options are the plugin's own (the ``OPTIONS`` table: ``--migrations``
is ``--clinicdb-migrations`` without the prefix), resolved the same way:
command line > ``CLINICDB_*`` environment > the project's pytest ini file >
default.

Exit codes: 0 ok; 1 a check failed or the work failed (a migration error, a
finding); 2 usage (a bad option, a missing folder, an unknown table) or the
target cannot be reached.  Errors are one message with its fix, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BinariesNotFoundError, ClinicDBError, ConfigError, MigrationDiscoveryError

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2

#: Project options every subcommand that reads the project accepts (names of the OPTIONS table).
PROJECT_OPTIONS = (
    "migrations",
    "seeds",
    "system_seed",
    "dev_seed_file",
    "bootstrap",
    "schemas",
    "audit_tables",
    "partition_function",
    "tenant_role",
    "tenant_setting",
    "tenants",
    "tenant_shared",
)


class UsageError(ClinicDBError):
    """Bad input to the command itself: exit 2."""


def add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add the plugin's options ``names`` as ``--<name>`` (same help, same kinds)."""
    from ..config import OPTIONS

    specs = {s.name: s for s in OPTIONS}
    for name in names:
        spec = specs[name]
        flag = "--" + name.replace("_", "-")
        if spec.kind == "bool":
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=spec.help
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                action="append" if spec.kind == "paths" else "store",
                metavar=spec.metavar or name.upper(),
                help=f"{spec.help} (env {spec.env}, ini {spec.ini})",
            )


def settings_from(args: argparse.Namespace, **fixed: object) -> Settings:
    """Resolve the plugin's settings from the command line, environment and the ini file."""
    import os

    from ..config import OPTIONS, resolve
    from .inifile import find_ini

    cwd = Path.cwd()
    ini = find_ini(cwd)
    # --dsn of the command names its target, not the plugin's external server.
    names = {s.name for s in OPTIONS} - {"dsn"}
    given = {k: v for k, v in {**vars(args), **fixed}.items() if k in names}
    return resolve(
        lambda name: given.get(name),
        ini.get,
        env=os.environ,
        rootdir=ini.folder or cwd,
        inidir=ini.folder,
        cwd=cwd,
    )


def target_dsn(args: argparse.Namespace) -> str:
    import os

    dsn = args.dsn or os.environ.get("CLINICDB_DSN")
    if not dsn:
        raise UsageError("no target database", hint="pass --dsn DSN or set CLINICDB_DSN")
    return str(dsn)


def connect(dsn: str) -> Any:
    """An autocommit connection to the target, or a usage error that masks the password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from ..server import mask_dsn

    shown = mask_dsn(dsn)
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        # Said apart from "cannot connect": no server to check, the string itself is wrong.
        # libpq quotes the string it could not parse, password and all.
        why = _one_line(exc).replace(dsn, shown)
        raise UsageError(
            f"the target DSN {shown} is not a connection string: {why}",
            hint="pass --dsn (or CLINICDB_DSN) as postgresql://USER:PASSWORD@HOST:PORT/DBNAME "
            "or as 'host=HOST port=PORT dbname=DBNAME user=USER'",
        ) from None
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise UsageError(
            f"cannot connect to {shown}: {_one_line(exc).replace(dsn, shown)}",
            hint="check --dsn (or CLINICDB_DSN) and that the server is up",
        ) from None


def _one_line(exc: BaseException) -> str:
    # libpq's messages run over several lines with tabs; one error is one line here.
    return " ".join(str(exc).split())


def dev_seed_of(project: Project) -> Path:
    """The project's dev seed, or a usage error in the command's terms."""
    seed = project._dev_seed  # raises itself when a configured file is not there
    if seed is None:
        raise UsageError(
            f"no dev seed to load: {project.no_dev_seed()}",
            hint="name the file with --dev-seed-file FILE (ini clinicdb_dev_seed_file), or point "
            "--seeds DIR at the folder holding 002_*.sql",
        )
    return seed


def _parser() -> tuple[
    argparse.ArgumentParser,
    dict[str, Callable[[argparse.Namespace], int]],
    dict[str, argparse.ArgumentParser],
]:
    from . import check, lock, migrate, partitions, seed, status, updown

    parser = argparse.ArgumentParser(
        prog="clinicdb",
        description="Migrations, seeds and checks of a clinic-style PostgreSQL database "
        "(the pytest-clinicdb plugin's library on the command line).",
        epilog="Exit codes: 0 ok, 1 a check or the work failed, 2 usage or connection error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers = {}
    for module in (migrate, seed, status, partitions, check, lock, updown):
        handlers.update(module.register(sub))
    return parser, handlers, dict(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers, commands = _parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    flags = commands[args.command]._option_string_actions
    try:
        return handlers[args.command](args)
    except ClinicDBError as exc:
        usage = (UsageError, ConfigError, MigrationDiscoveryError, BinariesNotFoundError)
        code = EXIT_USAGE if isinstance(exc, usage) else EXIT_CHECK_FAILED
        _say_error(in_command_terms(str(exc), flags), as_json, code)
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do,
        # and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a path given that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        _say_error(f"{where}{exc.strerror or exc}", as_json, EXIT_USAGE)
        return EXIT_USAGE
    except Exception as exc:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            raise
        _say_error(f"the server refused: {_one_line(exc)}", as_json, EXIT_CHECK_FAILED)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        print("clinicdb: interrupted", file=sys.stderr)
        return 130


#: The plugin's advice on writing a path option, which only pytest's command line needs.
_PYTEST_ONLY = (
    "; write the option with '=': a path as a separate word also changes pytest's rootdir"
)


def in_command_terms(message: str, flags: Collection[str]) -> str:
    """A library message as the command's user reads it.

    The library names the plugin's options (``--clinicdb-seeds``); the command's
    own are the same without the prefix, so name those where the command has them.
    """

    def own(match: re.Match[str]) -> str:
        flag = "--" + match.group(1)
        return flag if flag in flags else match.group(0)

    return re.sub(r"--clinicdb-([a-z][a-z-]*[a-z])", own, message.replace(_PYTEST_ONLY, ""))


def _say_error(message: str, as_json: bool, code: int) -> None:
    import json

    if as_json:
        print(json.dumps({"ok": False, "error": message, "exit": code}))
    else:
        print(f"clinicdb: {message}", file=sys.stderr)
