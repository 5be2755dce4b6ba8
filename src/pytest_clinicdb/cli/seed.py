"""``clinicdb seed [--dev]``: the system seed, or the DEV/TEST ONLY seed through the wrapper."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from . import EXIT_OK, UsageError, add_options, connect, dev_seed_of, settings_from, target_dsn
from .migrate import common

#: SQLSTATEs of a missing table, schema, function or type: the seed's target is not migrated.
_UNDEFINED = ("42P01", "3F000", "42883", "42704")


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    from ..seeds import TRIGGER_MODES

    p = sub.add_parser("seed", help="load the system seed (001), or the dev seed with --dev")
    add_options(p, ("seeds", "system_seed", "dev_seed_file", "schemas", "audit_tables"))
    common(p)
    p.add_argument(
        "--dev",
        action="store_true",
        help="DEV/TEST ONLY: load the dev seed through the dev-seed wrapper instead",
    )
    p.add_argument(
        "--environment",
        dest="target_environment",
        default="test",
        help="app.environment for the dev seed (only development or test are accepted)",
    )
    p.add_argument("--mode", default="audit", choices=TRIGGER_MODES, help="triggers to disable")
    p.add_argument(
        "--tables",
        help="comma-separated tables whose triggers are disabled "
        "(default: every table that carries an audit trigger)",
    )
    return {"seed": run}


def run(args: argparse.Namespace) -> int:
    from ..errors import SeedError

    try:
        return _run(args)
    except SeedError as exc:
        if exc.sqlstate in _UNDEFINED and exc.hint is None:
            exc.hint = (
                "is the target migrated? clinicdb migrate --check --dsn ... lists what is pending"
            )
        raise


def _run(args: argparse.Namespace) -> int:
    from ..project import Project
    from ..seeds import load_dev_seed, load_seed

    settings = settings_from(args)
    project = Project(settings)
    if args.dev:
        seed = dev_seed_of(project)
        tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
        if args.tables is not None and not tables:
            raise UsageError("--tables: empty table list", hint="e.g. clinic.patients,clinic.users")
        with connect(target_dsn(args)) as conn:
            if not args.json:  # once connected: a target that cannot be reached loads nothing
                env = args.target_environment
                print(f"*** DEV/TEST ONLY: loading {seed.name} (app.environment={env}) ***")
            report = load_dev_seed(
                conn,
                seed,
                environment=args.target_environment,
                mode=args.mode,
                schemas=settings.schemas,
                tables=tables,
                audit_tables=settings.audit_tables,
            )
        if args.json:
            print(json.dumps({"ok": True, **report.to_dict()}))
        else:
            for n in report.notices:
                print(n)
            print(report.summary())
        return EXIT_OK
    system = project.system_seed
    if system is None:
        raise UsageError(
            "no system seed to load",
            hint="name it with --system-seed FILE (ini clinicdb_system_seed), or put 001_*.sql "
            "in the seeds folder",
        )
    with connect(target_dsn(args)) as conn:
        notices = load_seed(conn, system)
    if args.json:
        print(
            json.dumps({"ok": True, "seed": system.name, "notices": [n.to_dict() for n in notices]})
        )
    else:
        for n in notices:
            print(n)
        print(f"loaded {system.name}")
    return EXIT_OK
