"""The ``clinicdb`` command: the plugin's engine outside pytest.

Subcommands so far: ``migrate`` (apply pending migrations with the ledger, or
``--check`` for pending/edited files), ``seed`` (load the system seed 001, or
002 through the dev-seed wrapper) and ``down`` (stop the plugin's kept servers).
Exit codes: 0 ok, 1 a check failed, 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from .errors import ClinicDBError
from .migrations import applied, apply_migrations, discover, edited, pending
from .seeds import (
    DEV_SEED_PATTERN,
    SYSTEM_SEED_PATTERN,
    TRIGGER_MODES,
    find_seed,
    load_dev_seed,
    load_seed,
)
from .server import mask_dsn

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=os.environ.get("CLINICDB_DSN"),
        help="connection string of the target database (env CLINICDB_DSN)",
    )
    common.add_argument(
        "--migrations",
        type=Path,
        default=Path(os.environ.get("CLINICDB_MIGRATIONS", "database/migrations")),
        help="migrations directory (default database/migrations)",
    )
    common.add_argument(
        "--seeds",
        type=Path,
        default=Path(os.environ.get("CLINICDB_SEEDS", "database/seeds")),
        help="seeds directory (default database/seeds)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("-v", "--verbose", action="store_true", help="show each file as it runs")
    parser = argparse.ArgumentParser(
        prog="clinicdb", description="Migrations and seeds of the clinic database."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("migrate", parents=[common], help="apply pending migrations")
    m.add_argument("--check", action="store_true", help="only report pending and edited files")
    s = sub.add_parser(
        "seed", parents=[common], help="load the system seed (001), or 002 with --dev"
    )
    s.add_argument(
        "--dev",
        action="store_true",
        help="DEV/TEST ONLY: load 002 through the dev-seed wrapper instead of 001",
    )
    s.add_argument(
        "--environment",
        default="test",
        help="app.environment for the dev seed (only development or test are accepted)",
    )
    s.add_argument("--mode", default="audit", choices=TRIGGER_MODES, help="triggers to disable")
    s.add_argument(
        "--tables",
        help="comma-separated tables whose triggers are disabled "
        "(default: the tables 002 writes to)",
    )
    lk = sub.add_parser(
        "lock", help="write or refresh the migration checksum lock file (migrations.lock)"
    )
    lk.add_argument(
        "--migrations",
        type=Path,
        default=Path(os.environ.get("CLINICDB_MIGRATIONS", "database/migrations")),
        help="migrations directory (default database/migrations)",
    )
    lk.add_argument("--lock", type=Path, help="lock file (default: migrations.lock beside it)")
    lk.add_argument("--json", action="store_true", help="machine-readable output")
    d = sub.add_parser(
        "down", help="stop the kept servers of the pytest plugin that no running test run uses"
    )
    d.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="the plugin's cache directory (env CLINICDB_CACHE_DIR; default as the plugin's)",
    )
    d.add_argument(
        "--clean", action="store_true", help="also delete their data directories and templates"
    )
    d.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "down":
        return _down(args)
    if args.command == "lock":
        return _lock(args)
    if not args.dsn:
        print("clinicdb: no target database: pass --dsn or set CLINICDB_DSN", file=sys.stderr)
        return EXIT_USAGE
    try:
        conn = psycopg.connect(args.dsn, autocommit=True)
    except psycopg.Error as exc:
        print(f"clinicdb: cannot connect to {mask_dsn(args.dsn)}: {exc}".rstrip(), file=sys.stderr)
        return EXIT_USAGE
    try:
        with conn:
            if args.command == "migrate":
                return _migrate(conn, args)
            return _seed(conn, args)
    except ClinicDBError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            print(f"clinicdb: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED


def _migrate(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    migrations = discover(args.migrations)
    if args.check:
        ledger = applied(conn)
        todo = [m.name for m in pending(migrations, ledger)]
        changed = edited(migrations, ledger)
        if args.json:
            print(json.dumps({"ok": not changed, "pending": todo, "edited": changed}))
        else:
            print(f"pending: {', '.join(todo) or 'none'}")
            print(f"edited:  {', '.join(changed) or 'none'}")
        return EXIT_CHECK_FAILED if changed else EXIT_OK

    def progress(m: object) -> None:
        if args.verbose and not args.json:
            print(f"applying {getattr(m, 'name', m)} ...", flush=True)

    report = apply_migrations(conn, migrations, progress=progress)
    if args.json:
        print(json.dumps({"ok": True, "applied": report.applied, "skipped": report.skipped}))
    else:
        print(f"applied {len(report.applied)} migration(s), {len(report.skipped)} already applied")
    return EXIT_OK


def _seed(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    if args.dev:
        return _dev_seed(conn, args)
    seed = find_seed(args.seeds, SYSTEM_SEED_PATTERN, "system seed")
    notices = load_seed(conn, seed)
    if args.json:
        print(
            json.dumps({"ok": True, "seed": seed.name, "notices": [n.to_dict() for n in notices]})
        )
    else:
        for n in notices:
            print(n)
        print(f"loaded {seed.name}")
    return EXIT_OK


def _dev_seed(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    seed = find_seed(args.seeds, DEV_SEED_PATTERN, "dev seed")
    if not args.json:
        print(f"*** DEV/TEST ONLY: loading {seed.name} (app.environment={args.environment}) ***")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    report = load_dev_seed(conn, seed, environment=args.environment, mode=args.mode, tables=tables)
    if args.json:
        print(json.dumps({"ok": True, **report.to_dict()}))
    else:
        for n in report.notices:
            print(n)
        print(report.summary())
    return EXIT_OK


def _lock(args: argparse.Namespace) -> int:
    from .checks import check_migration_lock, write_lock

    try:
        before = check_migration_lock(args.migrations, args.lock)
        path = write_lock(args.migrations, args.lock)
    except ClinicDBError as exc:
        print(f"clinicdb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    changes = [f.problem for f in before if not f.problem.startswith("no lock file")]
    if args.json:
        print(json.dumps({"ok": True, "lock": str(path), "changes": changes}))
    else:
        for change in changes:
            print(f"recorded: {change}")
        print(f"wrote {path} ({len(json.loads(path.read_text())['migrations'])} migrations)")
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    from .config import default_cache_dir
    from .engine import stop_idle_clusters

    cache = args.cache_dir or Path(os.environ.get("CLINICDB_CACHE_DIR") or default_cache_dir())
    result = stop_idle_clusters(cache.resolve(), skip=None, delete=args.clean)
    if args.json:
        print(json.dumps({"ok": True, **{k: [str(p) for p in v] for k, v in result.items()}}))
        return EXIT_OK
    for what, paths in result.items():
        for path in paths:
            print(f"{what}: {path}")
    if not any(result.values()):
        print(f"nothing to stop in {cache}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
