"""``clinicdb up`` and ``clinicdb down``: a local server with the project's database, and its end.

``up`` starts (or reuses) the project's kept cluster — the one the plugin's
runs use — clones the template into ``clinicdb_up`` (``clinicdb_up_dev`` with
``--dev``), and leaves the server running after the command exits.  It prints
the DSN with the password masked, like every DSN the plugin prints; running it
again with ``--show-password`` (it reuses the database) prints the one to
connect with.  ``down`` stops every kept server of the cache that no running
test run uses.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import EXIT_OK, PROJECT_OPTIONS, add_options, dev_seed_of, settings_from

#: The user id under which ``clinicdb up`` keeps a server running.
UP_USER = "up"


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    up = sub.add_parser(
        "up",
        help="start a local server with the migrated, seeded database and print its DSN",
        description="Start (or reuse) the project's local server with the migrated, seeded "
        "database and print its DSN, password masked. Run it again with --show-password for "
        "the DSN to connect with: the database is reused.",
    )
    add_options(up, (*PROJECT_OPTIONS, "pg_version", "pg_bin", "cache_dir"))
    up.add_argument("--dev", action="store_true", help="also load the DEV/TEST ONLY dev seed")
    up.add_argument("--fresh", action="store_true", help="recreate the database from the template")
    up.add_argument(
        "--show-password",
        action="store_true",
        help="print the DSN with its password (text and --json), to connect with; without it "
        "the password is masked",
    )
    up.add_argument("--json", action="store_true", help="machine-readable output")
    down = sub.add_parser(
        "down", help="stop the kept servers of the pytest plugin that no running test run uses"
    )
    add_options(down, ("cache_dir",))
    down.add_argument(
        "--clean", action="store_true", help="also delete their data directories and templates"
    )
    down.add_argument("--json", action="store_true", help="machine-readable output")
    return {"up": run_up, "down": run_down}


def run_up(args: argparse.Namespace) -> int:
    from .._state import Context
    from ..databases import apply_carry, create_database, drop_database
    from ..marker import Marker, write_marker
    from ..project import Project
    from ..runs import RunRef, remove_run_dir
    from ..server.cluster import ClusterDir

    settings = settings_from(args, backend="embedded", dev_seed=True if args.dev else None)
    # What the template needs, said before a server starts for nothing.
    project = Project(settings)
    project.migrations  # noqa: B018
    if args.dev:
        dev_seed_of(project)
    ctx = Context(settings, RunRef.new(), "up", is_owner=True)
    run = ctx.run()
    try:
        server = ctx.backend.start(run)
        ctx.databases(server)  # collects what dead runs left
        template = ctx.builder().base(server)
        if args.dev:
            template = ctx.builder().dev(template)
        name = "clinicdb_up_dev" if args.dev else "clinicdb_up"
        import psycopg

        with psycopg.connect(server.dsn, autocommit=True) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists and args.fresh:
                drop_database(admin, name)
                exists = None
            if not exists:
                create_database(admin, name, template.name, server.major)
                if template.carry:
                    apply_carry(admin, name, template.carry)
            # Kind "up": garbage collection leaves it alone; it lives until `clinicdb up --fresh`.
            write_marker(admin, name, Marker("up", template=template.name))
        # Keep the server up after this command exits: the server itself is a user of it.
        cluster = ClusterDir(server.data_dir.parent) if server.data_dir else None
        pid = cluster.postmaster_pid() if cluster else None
        if cluster is not None and pid is not None:
            cluster.register(RunRef.of(UP_USER, pid))
            cluster.release(run.id, stop=False)
        state = cluster.state() if cluster else None
    finally:
        ctx.close()
        remove_run_dir(run.dir)
    password = (state or {}).get("password", "") if args.show_password else "***"
    shown = f"postgresql://postgres:{password}@127.0.0.1:{server.tcp_port}/{name}"
    if args.json:
        print(json.dumps({"ok": True, "dsn": shown, "database": name, "version": server.version}))
        return EXIT_OK
    if args.dev:
        print("*** DEV/TEST ONLY: this database holds the sample data of the dev seed ***")
    print(f"PostgreSQL {server.version}, database {name} ({'reused' if exists else 'created'})")
    print(shown)
    if not args.show_password:
        print("password masked: add --show-password for the DSN to connect with")
    stop = "clinicdb down" + (
        f" --cache-dir {shlex.quote(str(settings.cache_dir))}"
        if settings.given("cache_dir")
        else ""
    )
    print(f"stop it with: {stop}")
    return EXIT_OK


def run_down(args: argparse.Namespace) -> int:
    from ..server.cluster import stop_idle_clusters

    settings = settings_from(args)
    cache = settings.cache_dir
    # What keeps a server up without a live test run: `clinicdb up` and kept databases.
    result = stop_idle_clusters(
        Path(os.path.realpath(cache)), skip=None, delete=args.clean, forget=(UP_USER, "kept-*")
    )
    if args.json:
        print(json.dumps({"ok": True, **{k: [str(p) for p in v] for k, v in result.items()}}))
        return EXIT_OK
    for what, paths in result.items():
        for path in paths:
            print(f"{what}: {path}")
    if not any(result.values()):
        print(f"nothing to stop in {cache}")
    return EXIT_OK
