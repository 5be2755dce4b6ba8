"""``clinicdb migrate [--check]``: apply pending migrations, or report pending and edited ones."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from . import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    UsageError,
    add_options,
    connect,
    settings_from,
    target_dsn,
)


def common(parser: argparse.ArgumentParser) -> None:
    """``--dsn`` and ``--json``, shared by the commands that work on a target database."""
    parser.add_argument("--dsn", help="connection string of the target database (env CLINICDB_DSN)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("migrate", help="apply pending migrations (each in its own transaction)")
    add_options(p, ("migrations",))
    common(p)
    p.add_argument("--check", action="store_true", help="only report pending and edited files")
    p.add_argument("-v", "--verbose", action="store_true", help="show each file as it runs")
    p.add_argument(
        "--resolve",
        nargs=2,
        metavar=("NAME", "rerun|applied"),
        help="after a migration that runs outside a transaction stopped half way and you looked "
        "at the database: run it again from the start (rerun) or record it as applied",
    )
    return {"migrate": run}


def run(args: argparse.Namespace) -> int:
    from ..migrations import (
        applied,
        apply_migrations,
        edited,
        incomplete,
        pending,
        resolve_incomplete,
    )
    from ..project import Project

    if args.resolve and args.check:
        raise UsageError(
            "--resolve and --check do not go together",
            hint="run clinicdb migrate --check to see what stopped half way, then --resolve it",
        )
    if args.resolve and args.resolve[1] not in ("rerun", "applied"):
        name, action = args.resolve
        raise UsageError(
            f"--resolve {name} {action}: say rerun or applied",
            hint=f"clinicdb migrate --resolve {name} rerun (or applied)",
        )
    migrations = Project(settings_from(args)).migrations
    with connect(target_dsn(args)) as conn:
        if args.resolve:
            name, action = args.resolve
            if name not in incomplete(conn):
                raise UsageError(
                    f"--resolve {name}: the ledger has no migration of that name that stopped "
                    "half way",
                    hint="clinicdb migrate --check lists them",
                )
            by_name = {m.name: m for m in migrations}
            resolve_incomplete(conn, name, action=action, migration=by_name.get(name))
            print(json.dumps({"ok": True}) if args.json else f"{name}: {action}")
            return EXIT_OK
        if args.check:
            ledger = applied(conn)
            todo = [m.name for m in pending(migrations, ledger)]
            changed = edited(migrations, ledger)
            halfway = incomplete(conn)
            bad = bool(changed or halfway)
            if args.json:
                print(
                    json.dumps(
                        {"ok": not bad, "pending": todo, "edited": changed, "incomplete": halfway}
                    )
                )
            else:
                print(f"pending: {', '.join(todo) or 'none'}")
                print(f"edited:  {', '.join(changed) or 'none'}")
                for name, what in halfway.items():
                    print(f"stopped half way: {name}: {what}")
            return EXIT_CHECK_FAILED if bad else EXIT_OK

        def progress(m: object) -> None:
            if args.verbose and not args.json:
                print(f"applying {getattr(m, 'name', m)} ...", flush=True)

        report = apply_migrations(conn, migrations, progress=progress)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "applied": report.applied,
                    "reapplied": report.reapplied,
                    "skipped": report.skipped,
                }
            )
        )
    else:
        again = f" ({len(report.reapplied)} of them again: {', '.join(report.reapplied)})"
        print(
            f"applied {len(report.applied)} migration(s)"
            + (again if report.reapplied else "")
            + f", {len(report.skipped)} already applied"
        )
    return EXIT_OK
