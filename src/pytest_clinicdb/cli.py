"""The ``clinicdb`` command: the plugin's engine outside pytest.

Subcommands: ``migrate`` (apply pending migrations with the ledger, or
``--check`` for pending/edited files), ``seed`` (001, or 002 through the
dev-seed wrapper), ``status``, ``partitions``, ``check`` (the battery),
``lock`` (the migration lock file), ``up`` and ``down`` (a local server).
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
    st = sub.add_parser(
        "status",
        parents=[common],
        help="applied/pending/edited migrations, audit partition coverage, disabled triggers",
    )
    st.add_argument(
        "--months-ahead", type=int, default=3, help="partition horizon to check (default 3)"
    )
    pt = sub.add_parser(
        "partitions", parents=[common], help="show audit partitions and gaps; --ensure creates"
    )
    pt.add_argument(
        "--ensure",
        nargs=2,
        metavar=("FROM", "TO"),
        help="call the maintenance function for [FROM, TO) (e.g. 2027-01-01 2027-04-01)",
    )
    pt.add_argument(
        "--yes", action="store_true", help="allow --ensure on a production-labelled target"
    )
    pt.add_argument("--table", default="audit.audit_logs", help="partitioned table")
    ck = sub.add_parser(
        "check",
        help="run the seed author's battery (the same tests as pytest --clinicdb-check)",
    )
    ck.add_argument("--migrations", type=Path, help="migrations directory")
    ck.add_argument("--seeds", type=Path, help="seeds directory")
    ck.add_argument("--dsn", help="run on this server (external backend) instead of a local one")
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    up = sub.add_parser(
        "up", help="start a local server with the migrated, seeded database and print its DSN"
    )
    up.add_argument("--dev", action="store_true", help="also load the DEV/TEST ONLY seed 002")
    up.add_argument("--pg-version", type=int, help="PostgreSQL major version")
    up.add_argument("--pg-bin", type=Path, help="directory of the PostgreSQL programs")
    up.add_argument("--migrations", type=Path, help="migrations directory")
    up.add_argument("--seeds", type=Path, help="seeds directory")
    up.add_argument("--cache-dir", type=Path, help="the plugin's cache directory")
    up.add_argument("--fresh", action="store_true", help="recreate the database from the template")
    up.add_argument("--json", action="store_true", help="machine-readable output")
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
    if args.command == "up":
        return _up(args)
    if args.command == "check":
        return _check(args)
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
            if args.command == "status":
                return _status(conn, args)
            if args.command == "partitions":
                return _partitions(conn, args)
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


def _status(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    """One screen: migrations, partition coverage of now and the horizon, disabled triggers."""
    from .checks import check_partition_horizon, check_triggers_enabled

    migrations = discover(args.migrations)
    ledger = applied(conn)
    todo = [m.name for m in pending(migrations, ledger)]
    changed = edited(migrations, ledger)
    unknown = sorted(set(ledger) - {m.name for m in migrations})
    has_audit = conn.execute("SELECT to_regclass('audit.audit_logs') IS NOT NULL").fetchone()
    partitions = (
        check_partition_horizon(conn, months_ahead=args.months_ahead)
        if has_audit and has_audit[0]
        else []
    )
    triggers = check_triggers_enabled(conn, ("clinic", "booking", "webhook", "audit"))
    problems = [*partitions, *triggers]
    ok = not changed and not problems
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "applied": len(ledger),
                    "pending": todo,
                    "edited": changed,
                    "unknown": unknown,
                    "problems": [f.to_dict() for f in problems],
                }
            )
        )
        return EXIT_OK if ok else EXIT_CHECK_FAILED
    print(f"target:      {mask_dsn(args.dsn)}")
    print(
        f"migrations:  {len(ledger)} applied, {len(todo)} pending"
        + (f" ({', '.join(todo)})" if todo else "")
    )
    print(f"edited:      {', '.join(changed) or 'none'}")
    if unknown:
        print(f"unknown:     {', '.join(unknown)} (applied here, not in {args.migrations})")
    horizon = f"this month + {args.months_ahead}"
    if not (has_audit and has_audit[0]):
        print("partitions:  no audit.audit_logs")
    else:
        print(f"partitions:  {'covered' if not partitions else 'GAPS'} ({horizon})")
    print(f"triggers:    {'all enabled' if not triggers else f'{len(triggers)} disabled'}")
    for f in problems:
        print(f.bullet())
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def _partitions(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    from .checks import check_partition_horizon
    from .partitions import read_partitions

    if args.ensure:
        env = conn.execute("SELECT current_setting('app.environment', true)").fetchone()
        label = (env[0] if env else None) or ""
        if label and label not in ("development", "test") and not args.yes:
            print(
                f"clinicdb: refusing --ensure on a target labelled app.environment={label} "
                "without --yes (production runs this from its scheduled maintenance job)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        with conn.transaction():
            created = conn.execute(
                "SELECT audit.ensure_monthly_partitions(%s::timestamptz, %s::timestamptz)",
                tuple(args.ensure),
            ).fetchone()
        if not args.json:
            print(f"created {created[0] if created else 0} partition(s)")
    pmap = read_partitions(conn, args.table)
    gaps = check_partition_horizon(conn, table=args.table)
    rows = [p.describe() for p in pmap.ranges] + ([pmap.default.describe()] if pmap.default else [])
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not gaps,
                    "table": pmap.table,
                    "partitions": [
                        {
                            "name": p.name,
                            "from": p.lower.isoformat() if p.lower else None,
                            "to": p.upper.isoformat() if p.upper else None,
                        }
                        for p in pmap.ranges
                    ],
                    "default": pmap.default.name if pmap.default else None,
                    "problems": [f.to_dict() for f in gaps],
                }
            )
        )
    else:
        print(f"{pmap.table}: {len(pmap.ranges)} range partition(s)")
        for row in rows:
            print(f"  {row}")
        for f in gaps:
            print(f.bullet())
    return EXIT_OK if not gaps else EXIT_CHECK_FAILED


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


UP_RUN = "up"


def _up(args: argparse.Namespace) -> int:
    """Start (or reuse) the kept local server, clone the template into ``clinicdb_up[_dev]``."""
    from .config import resolve
    from .engine import Engine
    from .runs import RunRef
    from .server.embedded import postmaster_pid
    from .templates import drop_database, set_marker

    given = {
        "pg_version": args.pg_version,
        "pg_bin": args.pg_bin,
        "migrations": args.migrations,
        "seeds": args.seeds,
        "cache_dir": args.cache_dir,
        "dev_seed": True if args.dev else None,
        "backend": "embedded",
    }
    try:
        settings = resolve(given.get, lambda name: None, env=os.environ, rootdir=Path.cwd())
        engine = Engine(settings, UP_RUN, UP_RUN, os.getpid(), is_owner=False)
        server = engine.server()
        variant = "dev" if args.dev else "base"
        template = engine.template(variant)
        name = "clinicdb_up_dev" if args.dev else "clinicdb_up"
        admin = engine.admin()
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and args.fresh:
            drop_database(admin, name)
            exists = None
        if not exists:
            from .templates import clone

            clone(admin, template.name, name, server.major)
        # Kind "up": garbage collection leaves it alone; it lives until `clinicdb up --fresh`.
        set_marker(admin, name, "up", template=template.name)
        # Keep the server up after this command exits: register the server itself as a user.
        cluster = engine.cluster()
        pid = postmaster_pid(cluster.paths)
        assert pid is not None
        (cluster.paths.users / f"{UP_RUN}.json").write_text(
            json.dumps(RunRef.of(UP_RUN, pid).to_dict())
        )
        engine.close()
    except ClinicDBError as exc:
        print(f"clinicdb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    password = cluster.tcp_password()
    dsn = f"postgresql://postgres:{password}@127.0.0.1:{server.tcp_port}/{name}"
    if args.json:
        print(json.dumps({"ok": True, "dsn": dsn, "database": name, "version": server.version}))
        return EXIT_OK
    if args.dev:
        print("*** DEV/TEST ONLY: this database holds the sample data of seed 002 ***")
    print(f"PostgreSQL {server.version}, database {name} ({'reused' if exists else 'created'})")
    print(dsn)
    print("stop it with: clinicdb down")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    """``pytest --clinicdb-check`` in a subprocess: one implementation of the battery."""
    import subprocess
    import tempfile
    import xml.etree.ElementTree as ET

    cmd = [sys.executable, "-m", "pytest", "--clinicdb-check", "-q", "-p", "no:cacheprovider"]
    if args.migrations:
        cmd.append(f"--clinicdb-migrations={args.migrations.resolve()}")
    if args.seeds:
        cmd.append(f"--clinicdb-seeds={args.seeds.resolve()}")
    if args.dsn:
        cmd += ["--clinicdb-backend=external", f"--clinicdb-dsn={args.dsn}"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "battery.xml"
        proc = subprocess.run(
            [*cmd, f"--junitxml={report}"], capture_output=True, text=True, check=False
        )
        results = []
        if report.exists():
            for case in ET.parse(report).getroot().iter("testcase"):
                failure = case.find("failure")
                if failure is None:
                    failure = case.find("error")
                skipped = case.find("skipped")
                outcome = (
                    "failed"
                    if failure is not None
                    else "skipped"
                    if skipped is not None
                    else "passed"
                )
                detail = failure if failure is not None else skipped
                results.append(
                    {
                        "check": case.get("name", ""),
                        "outcome": outcome,
                        "message": (detail.get("message", "") if detail is not None else ""),
                    }
                )
    ok = proc.returncode == 0
    if args.json:
        print(json.dumps({"ok": ok, "checks": results}))
    else:
        for r in results:
            print(f"{r['outcome'].upper():8} {r['check']}")
            if r["outcome"] == "failed":
                print("         " + r["message"].replace("\n", "\n         "))
        if not results:
            print(proc.stdout[-3000:] + proc.stderr[-3000:])
    if ok:
        return EXIT_OK
    return EXIT_CHECK_FAILED if results else EXIT_USAGE


def _down(args: argparse.Namespace) -> int:
    from .config import default_cache_dir
    from .engine import stop_idle_clusters

    cache = args.cache_dir or Path(os.environ.get("CLINICDB_CACHE_DIR") or default_cache_dir())
    for users in cache.glob("cluster-*/users"):  # what `clinicdb up` keeps running
        (users / f"{UP_RUN}.json").unlink(missing_ok=True)
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
