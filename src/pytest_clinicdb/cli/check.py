"""``clinicdb check``: the seed author's battery — ``pytest --clinicdb-check`` in a subprocess.

One implementation: the command runs the same tests as the pytest option,
reads their JUnit XML report and prints one line per rule (or JSON).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROJECT_OPTIONS,
    add_options,
    connect,
    in_command_terms,
    settings_from,
)


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "check", help="run the seed author's battery (the same tests as pytest --clinicdb-check)"
    )
    add_options(p, PROJECT_OPTIONS)
    p.add_argument("--dsn", help="run on this server (external backend) instead of a local one")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return {"check": run}


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The project options as the plugin's --clinicdb-* flags (always NAME=VALUE)."""
    flags = []
    for name in PROJECT_OPTIONS:
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--clinicdb-" + name.replace("_", "-")
        values = value if isinstance(value, list) else [value]
        for v in values:
            if name in ("migrations", "seeds", "bootstrap", "system_seed", "dev_seed_file") and (
                str(v).lower() != "none"
            ):
                v = str(Path(v).resolve())
            flags.append(f"{flag}={v}")
    return flags


def _inputs_usable(args: argparse.Namespace) -> None:
    """Raise the command's usage error for what every check needs: the folders, the seeds
    named, the server given — said once here rather than by each check of the battery."""
    from ..project import Project

    project = Project(settings_from(args))
    project.migrations  # noqa: B018
    project.system_seed  # noqa: B018
    project._dev_seed  # noqa: B018  (a named file that is not there; none at all is a skip)
    if args.dsn:
        connect(args.dsn).close()


def _message(detail: ET.Element | None) -> str:
    """The rule's own message, without JUnit's wrapping of pytest's outcome."""
    text = detail.get("message", "") if detail is not None else ""
    # A set-up failure comes as: failed on setup with "Failed: <our message>".
    setup = 'failed on setup with "'
    if text.startswith(setup) and text.endswith('"'):
        text = text[len(setup) : -1]
    text = text.removeprefix("Failed: ").removeprefix("pytest-clinicdb: ")
    return in_command_terms(text, _FLAGS)


#: The command's own options: a message naming --clinicdb-seeds names --seeds here.
_FLAGS = frozenset({"--dsn", *("--" + n.replace("_", "-") for n in PROJECT_OPTIONS)})


def run(args: argparse.Namespace) -> int:
    _inputs_usable(args)
    cmd = [sys.executable, "-m", "pytest", "--clinicdb-check", "-q", "-p", "no:cacheprovider"]
    cmd += _forwarded(args)
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
                        "message": _message(detail),
                    }
                )
    ok = proc.returncode == 0
    if args.json:
        print(json.dumps({"ok": ok, "checks": results}))
    else:
        for r in results:
            print(f"{r['outcome'].upper():8} {r['check']}")
            if r["outcome"] in ("failed", "skipped") and r["message"]:
                print("         " + r["message"].replace("\n", "\n         "))
        from ..battery import __all__ as battery

        if results and len(results) < len(battery):
            # A set-up failure stops the run (one message, not one per check).
            print(f"the battery stopped: {len(results)} of {len(battery)} checks ran")
        if not results:
            print((proc.stdout[-3000:] + proc.stderr[-3000:]).rstrip(), file=sys.stderr)
    if ok:
        return EXIT_OK
    return EXIT_CHECK_FAILED if results else EXIT_USAGE
