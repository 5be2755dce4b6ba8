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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ClinicDBError, ConfigError, MigrationDiscoveryError

if TYPE_CHECKING:
    from ..config import Settings

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

    from ..server import mask_dsn

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise UsageError(
            f"cannot connect to {mask_dsn(dsn)}: {str(exc).strip()}",
            hint="check --dsn (or CLINICDB_DSN) and that the server is up",
        ) from None


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
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
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return handlers[args.command](args)
    except ClinicDBError as exc:
        usage = (UsageError, ConfigError, MigrationDiscoveryError)
        code = EXIT_USAGE if isinstance(exc, usage) else EXIT_CHECK_FAILED
        _say_error(str(exc), as_json, code)
        return code
    except Exception as exc:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            raise
        _say_error(f"the server refused: {str(exc).strip()}", as_json, EXIT_CHECK_FAILED)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        print("clinicdb: interrupted", file=sys.stderr)
        return 130


def _say_error(message: str, as_json: bool, code: int) -> None:
    import json

    if as_json:
        print(json.dumps({"ok": False, "error": message, "exit": code}))
    else:
        print(f"clinicdb: {message}", file=sys.stderr)
