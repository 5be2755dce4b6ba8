"""A template build that tells what it is doing, and stops a step that runs too long.

:class:`BuildWatch` runs beside the build in a thread.  The build names each
step as it starts it (``migration 012_x.sql (12/120)``, ``seed 001_x.sql``).
Once a step has run for :data:`TELL_AFTER` seconds, a line says so, and again
every :data:`TELL_EVERY` seconds; past the timeout, the watch asks the server
which sessions block the build's backend (``pg_blocking_pids``), cancels the
statement (``pg_cancel_backend``) and remembers why, so that the build's error
names the step, the file's line and the session holding the lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

#: A step running this long gets a line on the terminal.
TELL_AFTER = 2.0
TELL_EVERY = 10.0


class BuildWatch:
    def __init__(
        self,
        admin_dsn: str,
        backend_pid: Callable[[], int | None],
        *,
        timeout: float,
        tell: Callable[[str], None] | None,
        what: str,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.backend_pid = backend_pid
        self.timeout = timeout
        self.tell = tell
        self.what = what
        self.step = ""
        self.started = time.monotonic()
        self.told = 0.0
        #: set when the watch cancelled a step: (step, seconds, blocking sessions)
        self.timed_out: tuple[str, float, list[str]] | None = None
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="clinicdb-build-watch", daemon=True)
        self._thread.start()

    def begin(self, step: str) -> None:
        with self._lock:
            self.step = step
            self.started = time.monotonic()
            self.told = 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._look()
            except Exception as exc:  # the watch must outlive a bad look; say why once
                if self.tell is not None and self.error is None:
                    self.tell(f"clinicdb: {self.what}: the build watch failed: {exc!r}")
                self.error = exc

    def _look(self) -> None:
        with self._lock:
            step, started, told = self.step, self.started, self.told
        if not step or self.timed_out is not None:
            return
        running = time.monotonic() - started
        if self.timeout and running > self.timeout:
            self._cancel(step, running)
            return
        due = running >= TELL_AFTER if not told else running - told >= TELL_EVERY
        if self.tell is not None and due:
            with self._lock:
                if self.step == step:
                    self.told = running
            self.tell(f"clinicdb: {self.what}: {step} running for {running:.0f} s")

    def _cancel(self, step: str, running: float) -> None:
        import psycopg

        pid = self.backend_pid()
        blockers: list[str] = []
        if pid is None:
            return
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as admin:
                rows = admin.execute(
                    "SELECT a.pid, a.usename, a.application_name, a.datname, a.state, "
                    "extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int, "
                    "left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) "
                    "FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s)) "
                    "ORDER BY a.pid",
                    (pid,),
                ).fetchall()
                for bpid, user, app, db, state, seconds, query in rows:
                    blockers.append(
                        f"pid {bpid} (user {user}, database {db}, application "
                        f"{app or '(none)'}, {state} for {seconds} s): {query}"
                    )
                self.timed_out = (step, running, blockers)
                admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        except psycopg.Error:
            self.timed_out = (step, running, blockers)


#: The process's stderr as it was before pytest captured it (set when the plugin loads).
TERMINAL_FD: int | None = None


def keep_terminal() -> None:
    """Remember where stderr goes before pytest's capture redirects it (call it early)."""
    global TERMINAL_FD
    if TERMINAL_FD is None:
        try:
            TERMINAL_FD = os.dup(2)
        except OSError:
            TERMINAL_FD = None


def tell_stderr(line: str) -> None:
    """Progress for the terminal, past pytest's capture; from xdist workers too."""
    fd = TERMINAL_FD if TERMINAL_FD is not None else 2
    with contextlib.suppress(OSError):
        os.write(fd, f"\n{line}\n".encode(errors="replace"))
