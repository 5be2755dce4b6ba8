"""pytest hooks of pytest-clinicdb (hooks only; the work lives in plain modules).

Loading this module imports neither psycopg nor the engine: a suite without a
database test pays for option parsing and nothing else.
"""

from __future__ import annotations

import argparse
import atexit
import os
from typing import Any

import pytest

from ._state import CONTEXT_KEY, PHASE_REPORTS_KEY, Context, context_of
from .config import OPTIONS, resolve
from .errors import ClinicDBError

# Build progress must reach the terminal past pytest's output capture, which starts after
# plugins load: keep a handle on stderr as it is now.
from .watch import keep_terminal

keep_terminal()

# The assertion helpers and the battery use plain asserts; let pytest rewrite them.
pytest.register_assert_rewrite("pytest_clinicdb.asserts", "pytest_clinicdb.battery")

MARKER = (
    "clinicdb(dev_seed=False, role=None, settings=None): per-test options of pytest-clinicdb — "
    "dev_seed=True gives clinic_db, clinic_db_async, clinic_dsn and clinic_db_fresh the DEV/TEST "
    "ONLY data of the dev seed; role='clinic_app' with settings={'app.current_clinic_id': id} "
    "runs the whole clinic_db/clinic_db_dev/clinic_db_async test as that role with those "
    "transaction-local settings (as the application does: row-level security applies)"
)

#: Where a skip raised by the plugin itself says it comes from (not a line of its source).
OWN_SKIP = "pytest-clinicdb"
_SOURCE = os.path.dirname(os.path.abspath(__file__)) + os.sep


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
                action="append" if spec.kind == "paths" else "store",
                metavar=spec.metavar or spec.name.upper(),
                help=f"{spec.help}.{extra} {where}.",
            )
        if spec.kind == "paths":  # one folder per line
            parser.addini(spec.ini, f"{spec.help} (see {spec.cli}).", type="linelist", default=None)
        else:
            parser.addini(spec.ini, f"{spec.help} (see {spec.cli}).", type="string", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
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
    from .runs import RunRef

    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "clinicdb_run" in workerinput:
        owner = RunRef.from_dict(workerinput["clinicdb_run"])
        assert owner is not None
        ctx = Context(settings, owner, str(workerinput["workerid"]), is_owner=False)
    else:
        ctx = Context(settings, RunRef.new(), "main", is_owner=True)
        atexit.register(ctx.shutdown)
        _end_on_sigterm(config)
        if settings.backend == "embedded" and (settings.pg_bin or settings.pg_version):
            from .server.embedded import EmbeddedBackend

            try:
                # An explicit choice of binaries that cannot be met is a usage error.
                assert isinstance(ctx.backend, EmbeddedBackend)
                ctx.backend.found  # noqa: B018
            except ClinicDBError as exc:
                raise pytest.UsageError(f"pytest-clinicdb: {exc}") from None
    config.stash[CONTEXT_KEY] = ctx
    from .connect import set_wait

    set_wait(settings.connection_wait)
    from . import fixtures

    config.pluginmanager.register(fixtures, "clinicdb-fixtures")
    if settings.check:
        # --clinicdb-check: collect the battery module instead of the given paths.
        import importlib.util

        spec = importlib.util.find_spec("pytest_clinicdb.battery")
        assert spec is not None and spec.origin is not None
        config.args[:] = [spec.origin]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _end_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (CI cancellation, ``timeout``, IDEs) ends the run as Ctrl-C does: teardown,
    summary, servers released — unless someone else already handles SIGTERM."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    config.add_cleanup(restore)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker joins the controller's run (one server, one template)."""
    node.workerinput["clinicdb_run"] = context_of(node.config).run_ref.to_dict()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .report import header_lines

    return header_lines(context_of(config))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """Remember each phase's outcome on the item (``--clinicdb-keep-failed`` reads it)."""
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASE_REPORTS_KEY, {})[report.when] = report
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        path = os.path.abspath(str(longrepr[0]))
        if path.startswith(_SOURCE):
            # The plugin's line that skipped means nothing to its user: name the plugin (no
            # line number: pytest's summary then prints "pytest-clinicdb: <reason>").
            own: Any = (OWN_SKIP, None, longrepr[2])
            report.longrepr = own
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    ctx = session.config.stash.get(CONTEXT_KEY, None)
    if ctx is not None:
        ctx.session = session


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ctx = session.config.stash.get(CONTEXT_KEY, None)
    if ctx is not None:
        # Interrupted (Ctrl-C, SIGTERM): what is still being made beside the tests is cancelled.
        ctx.close(cancel=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    ctx = config.stash.get(CONTEXT_KEY, None)
    if ctx is None or not ctx.is_owner:
        return
    from .report import skip_lines, summary

    lines = summary(ctx)
    if not terminalreporter.hasopt("s"):  # with -rs pytest lists them itself
        skips = [
            (str(rep.longrepr[2]), rep.nodeid.lstrip(":") or rep.head_line or "")
            for rep in terminalreporter.stats.get("skipped", [])
            if isinstance(rep.longrepr, tuple) and rep.longrepr[0] == OWN_SKIP
        ]
        lines += skip_lines(skips)
    for line in lines:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    ctx = config.stash.get(CONTEXT_KEY, None)
    if ctx is None:
        return
    ctx.close()
    if ctx.is_owner:
        ctx.shutdown()
