"""``clinicdb lock``: write or refresh the migration checksum lock file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import EXIT_OK, UsageError, add_options, settings_from


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "lock", help="write or refresh the migration checksum lock file (migrations.lock)"
    )
    add_options(p, ("migrations",))
    p.add_argument(
        "--lock", type=Path, help="lock file (default: migrations.lock beside the first folder)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return {"lock": run}


def run(args: argparse.Namespace) -> int:
    from ..lockfile import check_migration_lock, write_lock

    folders = list(settings_from(args).migrations)
    before = check_migration_lock(folders, args.lock)
    try:
        path = write_lock(folders, args.lock)
    except OSError as exc:
        raise UsageError(
            f"cannot write the lock file {exc.filename or args.lock}: {exc.strerror}",
            hint="pass --lock FILE in a folder that exists and you may write to",
        ) from None
    changes = [f.problem for f in before if not f.problem.startswith("no lock file")]
    if args.json:
        print(json.dumps({"ok": True, "lock": str(path), "changes": changes}))
    else:
        for change in changes:
            print(f"recorded: {change}")
        print(f"wrote {path} ({len(json.loads(path.read_text())['migrations'])} migrations)")
    return EXIT_OK
