"""``clinicdb partitions``: list a partitioned table's partitions and gaps; create missing months.

``--ensure-ahead N`` is production's scheduled job: idempotent, it covers this
month and the next N (with the project's maintenance function when there is
one, else plain DDL) and exits 0 when covered, 1 when a gap remains, 2 when
it could not run — for cron or a Kubernetes CronJob and the monitor behind it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ..config import Settings


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "partitions",
        help="show audit partitions and gaps; --ensure / --ensure-ahead create missing months",
    )
    add_options(p, ("audit_tables", "partition_function"))
    common(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--ensure",
        nargs=2,
        metavar=("FROM", "TO"),
        help="create the partitions of [FROM, TO) (e.g. 2027-01-01 2027-04-01)",
    )
    what.add_argument(
        "--ensure-ahead",
        type=int,
        metavar="N",
        help="production's scheduled job: cover this month and the next N (idempotent)",
    )
    p.add_argument(
        "--yes", action="store_true", help="allow --ensure on a production-labelled target"
    )
    p.add_argument(
        "--table", help="the partitioned table (default: the audit tables, detected or configured)"
    )
    p.add_argument(
        "--months-ahead",
        type=int,
        default=3,
        help="gaps within this month and this many more are problems (default 3)",
    )
    return {"partitions": run}


def _instant(text: str, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a date", hint="e.g. 2027-01-01") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def audit_tables(conn: Any, table: str | None, settings: Settings) -> list[str]:
    """``--table``, else the configured or detected audit tables; a wrong name is a usage error."""
    from ..errors import PartitionError
    from ..partitions import resolve_audit_tables

    configured: Sequence[str] | None = [table] if table is not None else settings.audit_tables
    option = "--table" if table is not None else settings.source_of("audit_tables")
    try:
        return resolve_audit_tables(conn, configured, option=option)
    except PartitionError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def run(args: argparse.Namespace) -> int:
    from ..checks import check_partition_horizon
    from ..partitions import ensure_range, month_start, next_month, read_partitions

    settings = settings_from(args)
    if args.ensure_ahead is not None and args.ensure_ahead < 0:
        raise UsageError("--ensure-ahead: must be 0 or more", hint="e.g. --ensure-ahead 3")
    if args.months_ahead < 0:
        raise UsageError("--months-ahead: must be 0 or more", hint="e.g. --months-ahead 3")
    if args.ensure:
        lo = _instant(args.ensure[0], "--ensure FROM")
        hi = _instant(args.ensure[1], "--ensure TO")
        if lo >= hi:
            raise UsageError(
                f"--ensure {args.ensure[0]} {args.ensure[1]}: FROM must come before TO",
                hint="e.g. --ensure 2027-01-01 2027-04-01 (January to March)",
            )
    with connect(target_dsn(args)) as conn:
        tables = audit_tables(conn, args.table, settings)
        if not tables:
            raise UsageError(
                "no audit table partitioned by range on a timestamp in this database",
                hint="name the table with --table SCHEMA.TABLE (is the target migrated? "
                "clinicdb migrate --check)",
            )
        created: dict[str, tuple[str, int]] = {}
        if args.ensure or args.ensure_ahead is not None:
            if args.ensure:
                env = conn.execute("SELECT current_setting('app.environment', true)").fetchone()
                label = (env[0] if env else None) or ""
                if label and label not in ("development", "test") and not args.yes:
                    raise UsageError(
                        f"refusing --ensure on a target labelled app.environment={label} without "
                        "--yes (production runs --ensure-ahead from its scheduled job)"
                    )
            else:
                lo = month_start(dt.datetime.now(dt.timezone.utc))
                hi = lo
                for _ in range(args.ensure_ahead + 1):
                    hi = next_month(hi)
            for table in tables:
                created[table] = ensure_range(conn, table, lo, hi, settings.partition_function)
        months = args.ensure_ahead if args.ensure_ahead is not None else args.months_ahead
        maps = {t: read_partitions(conn, t) for t in tables}
        gaps = [
            f for t in tables for f in check_partition_horizon(conn, months_ahead=months, table=t)
        ]
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not gaps,
                    "tables": [
                        {
                            "table": pmap.table,
                            "created": created.get(t, ("", 0))[1],
                            "partitions": [
                                {
                                    "name": p.name,
                                    "from": p.lower.isoformat() if p.lower else None,
                                    "to": p.upper.isoformat() if p.upper else None,
                                }
                                for p in pmap.ranges
                            ],
                            "default": pmap.default.name if pmap.default else None,
                        }
                        for t, pmap in maps.items()
                    ],
                    "problems": [f.to_dict() for f in gaps],
                }
            )
        )
    else:
        for t, pmap in maps.items():
            if t in created:
                how, count = created[t]
                print(f"created {count} partition(s) of {pmap.table} {how}")
            print(f"{pmap.table}: {len(pmap.ranges)} range partition(s)")
            for row in [p.describe() for p in pmap.ranges]:
                print(f"  {row}")
            if pmap.default:
                print(f"  {pmap.default.describe()}")
        for f in gaps:
            print(f.bullet())
    return EXIT_OK if not gaps else EXIT_CHECK_FAILED
