"""``clinicdb status``: migrations, audit partition coverage and disabled triggers, one screen."""

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
from .migrate import common
from .partitions import audit_tables


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "status",
        help="applied/pending/edited migrations, audit partition coverage, disabled triggers",
    )
    add_options(p, ("migrations", "schemas", "audit_tables"))
    common(p)
    p.add_argument(
        "--months-ahead",
        type=int,
        default=3,
        help="partitions must cover this month and this many more (default 3); a gap within "
        "them is a problem (exit 1)",
    )
    return {"status": run}


def run(args: argparse.Namespace) -> int:
    from ..checks import check_partition_horizon, check_triggers_enabled
    from ..migrations import applied, edited, incomplete, pending
    from ..partitions import read_partitions, show_instant
    from ..project import Project
    from ..server import mask_dsn

    if args.months_ahead < 0:
        raise UsageError("--months-ahead: must be 0 or more", hint="e.g. --months-ahead 3")
    settings = settings_from(args)
    migrations = Project(settings).migrations
    dsn = target_dsn(args)
    with connect(dsn) as conn:
        ledger = applied(conn)
        todo = [m.name for m in pending(migrations, ledger)]
        changed = edited(migrations, ledger)
        known = {m.name for m in migrations}
        unknown = sorted(set(ledger) - known)
        halfway = incomplete(conn)
        tables = audit_tables(conn, None, settings)
        partitions = []
        until: dict[str, str] = {}
        for table in tables:
            partitions += check_partition_horizon(
                conn, months_ahead=args.months_ahead, table=table, production=True
            )
            pmap = read_partitions(conn, table, production=True)
            uppers = [p.upper for p in pmap.ranges if p.upper is not None]
            until[table] = show_instant(max(uppers))[:10] if uppers else "no partition"
        triggers = check_triggers_enabled(conn, settings.schemas)
    problems = [*partitions, *triggers]
    ok = not changed and not problems and not halfway
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "applied": len(ledger),
                    "pending": todo,
                    "edited": changed,
                    "unknown": unknown,
                    "incomplete": halfway,
                    "audit_tables": {t: {"until": u} for t, u in until.items()},
                    "problems": [f.to_dict() for f in problems],
                }
            )
        )
        return EXIT_OK if ok else EXIT_CHECK_FAILED
    folders = ", ".join(settings.display_path(f) for f in settings.migrations)
    print(f"target:      {mask_dsn(dsn)}")
    print(
        f"migrations:  {len(ledger)} applied, {len(todo)} pending"
        + (f" ({', '.join(todo)})" if todo else "")
    )
    print(f"edited:      {', '.join(changed) or 'none'}")
    for name, what in halfway.items():
        print(f"HALF DONE:   {name}: {what} (clinicdb migrate --resolve {name} rerun|applied)")
    if unknown:
        print(f"unknown:     {', '.join(unknown)} (applied here, not in {folders})")
    horizon = f"this month + {args.months_ahead}"
    if not tables:
        print("partitions:  no audit table partitioned by range on a timestamp (skipped)")
    else:
        state = "covered" if not partitions else "GAPS"
        ends = "; ".join(f"{t} until {u}" for t, u in until.items())
        print(f"partitions:  {state} ({horizon}; {ends})")
    print(f"triggers:    {'all enabled' if not triggers else f'{len(triggers)} disabled'}")
    for f in problems:
        print(f.bullet())
    return EXIT_OK if ok else EXIT_CHECK_FAILED
