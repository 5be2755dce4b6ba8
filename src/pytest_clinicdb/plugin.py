"""pytest hooks of pytest-clinicdb (hooks only; the work lives in plain modules)."""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
from typing import Any

import pytest

from . import battery
from . import fixtures as _fixtures
from ._state import ENGINE_KEY, PHASE_REPORTS_KEY, engine_of
from .config import OPTIONS, resolve
from .engine import Engine
from .errors import ClinicDBError
from .report import leftover_lines, summary_lines, timing_lines
from .server import mask_dsn
from .server.docker import image_for


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clinicdb", "pytest-clinicdb (PostgreSQL test databases)")
    for spec in OPTIONS:
        extra = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
        where = f"Env {spec.env}, ini {spec.ini}"
        if spec.kind == "bool":
            # A flag and its negation: --clinicdb-reuse / --clinicdb-no-reuse.
            default = "on" if spec.default else "off"
            group.addoption(
                spec.cli,
                dest="clinicdb_" + spec.name,
                action="store_const",
                const=True,
                default=None,
                help=f"{spec.help} (default {default}; env {spec.env}, ini {spec.ini}; "
                f"{spec.negative_cli} turns it off).",
            )
            group.addoption(
                spec.negative_cli,
                dest="clinicdb_" + spec.name,
                action="store_const",
                const=False,
                help=argparse.SUPPRESS,
            )
        else:
            group.addoption(
                spec.cli,
                dest="clinicdb_" + spec.name,
                default=None,
                metavar=spec.metavar or spec.name.upper(),
                help=f"{spec.help}.{extra} {where}.",
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
        explicit = settings.pg_bin is not None or settings.pg_version is not None
        if settings.backend == "embedded" and explicit:
            try:
                engine.binaries()  # an explicit choice that cannot be met is a usage error
            except ClinicDBError as exc:
                raise pytest.UsageError(f"pytest-clinicdb: {exc}") from None
    config.stash[ENGINE_KEY] = engine
    config.pluginmanager.register(_fixtures, "clinicdb-fixtures")
    if settings.check:
        # --clinicdb-check: collect the battery module instead of the given paths.
        config.args[:] = [battery.__file__]


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
    if s.backend == "external":
        lines.append(f"clinicdb: backend external, server {mask_dsn(s.dsn or '')}")
    elif s.backend == "docker":
        lines.append(f"clinicdb: backend docker, image {image_for(s.image, s.pg_version)}")
    else:
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
    if s.backend == "embedded":
        reuse = "reuse on" if s.reuse else "reuse off (--clinicdb-no-reuse)"
        try:
            variants = ["dev"] if s.dev_seed else ["base"]
            hints = "; ".join(engine.template_hint(v) for v in variants)
        except (ClinicDBError, OSError) as exc:
            hints = f"template unknown ({exc})"
        lines.append(f"clinicdb: {hints}; {reuse}")
    lines.append(
        "clinicdb: test set-up covers audit partitions for the current month and the next three "
        "(test-only; production relies on scheduled maintenance)"
    )
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """Remember each phase's outcome on the item (``--clinicdb-keep-failed`` reads it)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    item.stash.setdefault(PHASE_REPORTS_KEY, {})[report.when] = report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    engine = session.config.stash.get(ENGINE_KEY, None)
    if engine is not None:
        engine.close_pools()
        engine.write_stats()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    engine = config.stash.get(ENGINE_KEY, None)
    if engine is None or not engine.is_owner:
        return
    reports = engine.reports()
    if not reports:
        return
    write = terminalreporter.write_line
    for line in summary_lines(reports, reuse=engine.settings.reuse):
        write(line)
    if engine.settings.timings:
        for line in timing_lines(reports):
            write(line)
    for line in leftover_lines(reports):
        write(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    engine = config.stash.get(ENGINE_KEY, None)
    if engine is None:
        return
    engine.close()
    if engine.is_owner:
        engine.shutdown()
