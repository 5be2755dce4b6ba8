"""``clinicdb seed [--dev]``: the system seed, or the DEV/TEST ONLY seed through the wrapper."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from . import EXIT_OK, UsageError, add_options, connect, settings_from, target_dsn
from .migrate import common


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
    from ..project import Project
    from ..seeds import load_dev_seed, load_seed

    settings = settings_from(args)
    project = Project(settings)
    if args.dev:
        seed = project.dev_seed()
        tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
        if args.tables is not None and not tables:
            raise UsageError("--tables: empty table list", hint="e.g. clinic.patients,clinic.users")
        if not args.json:
            env = args.target_environment
            print(f"*** DEV/TEST ONLY: loading {seed.name} (app.environment={env}) ***")
        with connect(target_dsn(args)) as conn:
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
