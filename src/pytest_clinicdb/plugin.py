"""pytest hooks of pytest-clinicdb (hooks only; the work lives in plain modules)."""

from __future__ import annotations

import atexit
import os
import secrets
from typing import Any

import pytest

from . import fixtures as _fixtures
from ._state import ENGINE_KEY, engine_of
from .config import OPTIONS, resolve
from .engine import Engine, notices_from_reports, template_reports
from .errors import ClinicDBError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clinicdb", "pytest-clinicdb (PostgreSQL test databases)")
    for spec in OPTIONS:
        extra = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
        group.addoption(
            spec.cli,
            dest="clinicdb_" + spec.name,
            default=None,
            metavar=spec.metavar or spec.name.upper(),
            help=f"{spec.help}.{extra} Env {spec.env}, ini {spec.ini}.",
        )
        parser.addini(spec.ini, f"{spec.help} (see {spec.cli}).", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clinicdb(**options): per-test options of pytest-clinicdb")
    try:
        settings = resolve(
            lambda name: config.getoption("clinicdb_" + name),
            lambda name: config.getini("clinicdb_" + name) or None,
            env=os.environ,
            rootdir=config.rootpath,
            inidir=config.inipath.parent if config.inipath else None,
            cwd=config.invocation_params.dir,
        )
    except ClinicDBError as exc:
        raise pytest.UsageError(f"pytest-clinicdb: {exc}") from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "clinicdb_run_id" in workerinput:
        engine = Engine(
            settings,
            run_id=str(workerinput["clinicdb_run_id"]),
            worker_id=str(workerinput["workerid"]),
            owner_pid=int(workerinput["clinicdb_owner_pid"]),
            is_owner=False,
        )
    else:
        engine = Engine(settings, secrets.token_hex(4), "main", os.getpid(), is_owner=True)
        atexit.register(engine.shutdown)
        if settings.pg_bin is not None or settings.pg_version is not None:
            try:
                engine.binaries()  # an explicit choice that cannot be met is a usage error
            except ClinicDBError as exc:
                raise pytest.UsageError(f"pytest-clinicdb: {exc}") from None
    config.stash[ENGINE_KEY] = engine
    config.pluginmanager.register(_fixtures, "clinicdb-fixtures")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker joins the controller's run (one server, one template)."""
    engine = engine_of(node.config)
    node.workerinput["clinicdb_run_id"] = engine.run_id
    node.workerinput["clinicdb_owner_pid"] = engine.owner_pid


def pytest_report_header(config: pytest.Config) -> list[str]:
    engine = engine_of(config)
    s = engine.settings
    lines = []
    try:
        binaries = engine.binaries().describe()
    except ClinicDBError as exc:
        binaries = f"no usable PostgreSQL ({exc.message})"
    try:
        account = engine.account()
    except ClinicDBError:
        account = None
    who = f", server runs as {account.name}" if account else ""
    lines.append(f"clinicdb: backend {s.backend}, {binaries}{who}")
    try:
        migrations = f"{len(engine.migrations())} migrations in {s.display_path(s.migrations)}"
    except ClinicDBError as exc:
        migrations = f"migrations unusable ({exc.message})"
    try:
        seed = engine.system_seed()
        seeds = f"system seed {s.display_path(seed)}" if seed else "no seeds"
    except ClinicDBError as exc:
        seeds = f"seeds unusable ({exc.message})"
    lines.append(f"clinicdb: {migrations}, {seeds}; cache {s.cache_dir}")
    lines.append(
        "clinicdb: test set-up covers audit partitions for the current month and the next three "
        "(test-only; production relies on scheduled maintenance)"
    )
    return lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    engine = config.stash.get(ENGINE_KEY, None)
    if engine is None or not engine.is_owner:
        return
    reports = engine.reports()
    if not reports:
        return
    servers = sorted({str(r.get("server")) for r in reports if r.get("server")})
    for server in servers:
        terminalreporter.write_line(f"clinicdb: server {server}")
    entries = template_reports(reports)
    for variant in sorted({str(e["variant"]) for e in entries}):
        of_variant = [e for e in entries if e["variant"] == variant]
        builders = [e for e in of_variant if e.get("built")]
        if builders:
            b = builders[0]
            status = f"built in {float(str(b['seconds'])):.2f} s by {b['worker']}"
        else:
            status = "reused"
        e = of_variant[0]
        terminalreporter.write_line(
            f"clinicdb: template {e['key']} ({variant}) {status}; "
            f"audit partitions: {e.get('partitions') or ''}"
        )
        if e.get("dev_seed"):
            terminalreporter.write_line(f"clinicdb: {e['dev_seed']}")
    notices = notices_from_reports(reports)
    if notices:
        terminalreporter.write_line(f"clinicdb: {len(notices)} server message(s) while building:")
        for n in notices:
            terminalreporter.write_line(f"  {n}")


def pytest_unconfigure(config: pytest.Config) -> None:
    engine = config.stash.get(ENGINE_KEY, None)
    if engine is None:
        return
    engine.close()
    if engine.is_owner:
        engine.shutdown()
