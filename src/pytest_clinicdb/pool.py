"""Fresh clones made ahead and dropped behind, off the test's critical path (no pytest import).

``clinic_db_fresh`` needs a new clone of the template for every test.  Cloning
(~17 ms for the clinic schema) and dropping (~5 ms) cost the same wherever they
happen, so a :class:`ClonePool` does them in background threads while tests
run: two *cloners* keep clones ready and two *droppers* drop the databases tests
are done with.  (A template carries the relation cache file of its database,
written when its build ends, so the first connection to a clone is as quick as
any.)  A test then only waits if tests come faster than clones.  The server
does the same work either way: the pool moves it off the test's critical path,
it does not make it disappear.  The threads use their own connections; psycopg
waits on the socket without holding the GIL, so the test's Python code keeps
running.

A clone its test left unchanged can be *recycled* instead of dropped (see
:mod:`pytest_clinicdb.recycle`): the cloner records each clone's state when it
has made it, and a dropper hands a returned clone to ``recycle``, which either
gives back the clone under a new name (it goes to the ready queue) or drops it.
While returned clones come back this way, the cloners count the ones still
being judged as good as ready and make no new ones: a suite of read-only tests
then costs the server no ``CREATE DATABASE`` and no ``DROP DATABASE`` at all.
One clone that a test changed (and that is dropped) is enough for the cloners
to go back to counting only the ready queue.

Any error in the cloner switches the pool off: from then on clones are made
synchronously by the caller, whose errors are reported the usual way.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from .connect import close_session, connect

_STOP = ""
#: Clones made at the same time, each by its own thread and connection.  Two
#: halve the wait of short tests on a 2-core machine (FILE_COPY clones are
#: mostly file copying, which runs in parallel); more gave nothing there.
CLONERS = 2
#: Returned clones judged (recycled or dropped) at the same time.  A recycled
#: clone costs a rename, a connection and three queries, ~6 ms of waiting on the
#: server: a second thread keeps up with tests that take less.
DROPPERS = 2
#: Recycled clones may wait beside the cloners' ones, up to this many in all.
READY = CLONERS + 2
#: Recycled clones that wait with their session open (for the next ``clinic_db_fresh``): one
#: is enough for a steady stream of tests, and each holds a server connection slot.
SESSIONS_WAITING = 1


class ClonePool:
    """Clones of one template made ahead by ``CLONERS`` threads, dropped by ``DROPPERS`` more.

    ``make(admin)`` creates (and names, journals, marks) one clone on the given
    autocommit connection and returns its name; ``drop(admin, name)`` drops one.
    With ``inspect(admin, name)`` (run on each new clone before it is ready) and
    ``recycle(admin, name, inspected)`` (returns the clone's new name and state,
    or None when it dropped it), unchanged clones are used again.
    """

    def __init__(
        self,
        *,
        admin_dsn: str,
        dsn_for: Callable[[str], str],
        make: Callable[[psycopg.Connection[Any]], str],
        drop: Callable[[psycopg.Connection[Any], str], None],
        inspect: Callable[[psycopg.Connection[Any], str], object] | None = None,
        recycle: Callable[
            [psycopg.Connection[Any], str, object],
            tuple[str, object, psycopg.Connection[Any] | None] | None,
        ]
        | None = None,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.dsn_for = dsn_for
        self.make = make
        self.drop = drop
        self.inspect = inspect
        self.recycle = recycle
        #: (name, state, a connection to it for its test, left open by ``recycle``, or None)
        self.ready: queue.Queue[tuple[str, object, Any]] = queue.Queue(maxsize=READY)
        #: Those connections, for clones handed out, until their test takes or drops them.
        self._opened: dict[str, psycopg.Connection[Any]] = {}
        #: Whether the process's fresh tests want a connection (``clinic_db_fresh``): then a
        #: recycled clone waits in ``ready`` with the session that proved it (at most
        #: :data:`SESSIONS_WAITING` of them); else that session is closed.
        self.keep_sessions = False
        #: Clones in ``ready`` that came with a session.
        self._sessions_waiting = 0
        self._handed_out: dict[str, object] = {}
        #: Returned clones no dropper has judged yet, and whether the last one came back.
        self._judging = 0
        self._recycled_last = False
        self._lock = threading.Lock()
        self.to_drop: queue.Queue[str] = queue.Queue()
        self.error: BaseException | None = None
        self.drop_errors: list[str] = []
        self._stop = threading.Event()
        self._cloners = [
            threading.Thread(target=self._clone_loop, name=f"clinicdb-clone-{i}", daemon=True)
            for i in range(CLONERS)
        ]
        self._droppers = [
            threading.Thread(target=self._drop_loop, name=f"clinicdb-drop-{i}", daemon=True)
            for i in range(DROPPERS)
        ]
        for t in [*self._cloners, *self._droppers]:
            t.start()

    # ------------------------------------------------------------ for tests

    def take(self, timeout: float = 60.0) -> str | None:
        """A ready clone, or None if the pool is off (the caller then clones itself)."""
        deadline = time.monotonic() + timeout
        while self.error is None and time.monotonic() < deadline:
            try:
                name, state, conn = self.ready.get(timeout=0.05)
            except queue.Empty:
                if not any(t.is_alive() for t in self._cloners):
                    break
            else:
                if state is not None:
                    self._handed_out[name] = state
                if conn is not None:
                    with self._lock:
                        self._sessions_waiting -= 1
                    self._opened[name] = conn
                return name
        return None

    def connection(self, name: str) -> psycopg.Connection[Any] | None:
        """The open connection that came with the clone ``name`` just taken, if any (once)."""
        return self._opened.pop(name, None)

    def give_back(self, name: str) -> None:
        """The test is done with ``name``: recycle or drop it in the background."""
        _close(self._opened.pop(name, None))
        if self.recycle is not None and name in self._handed_out:
            with self._lock:
                self._judging += 1
        self.to_drop.put(name)

    def _short(self) -> bool:
        """Whether a made clone should go to the ready queue now."""
        coming = self._judging if self._recycled_last else 0
        return self.ready.qsize() + coming < CLONERS

    def close(self) -> list[str]:
        """Stop the cloners, drop every ready and returned clone; return drop errors."""
        self._stop.set()
        for t in self._cloners:
            t.join(timeout=120)
        for _ in self._droppers:
            self.to_drop.put(_STOP)
        for t in self._droppers:
            t.join(timeout=300)
        # What is ready now (made, or recycled before the stop) is dropped here.
        while True:
            try:
                name, _, conn = self.ready.get_nowait()
            except queue.Empty:
                break
            _close(conn)
            self.to_drop.put(name)
        for conn in self._opened.values():
            _close(conn)
        self._opened.clear()
        self.to_drop.put(_STOP)
        self._drop_loop()
        return self.drop_errors

    # ------------------------------------------------------------ threads

    def _clone_loop(self) -> None:
        try:
            with connect(self.admin_dsn, autocommit=True) as admin:
                while not self._stop.is_set():
                    name = self.make(admin)
                    state = self.inspect(admin, name) if self.inspect else None
                    while not self._stop.is_set():
                        # Room for a recycled clone first: make a new one only when short.
                        if not self._short():
                            time.sleep(0.01)
                            continue
                        try:
                            self.ready.put((name, state, None), timeout=0.05)
                            break
                        except queue.Full:
                            continue
                    else:
                        self.to_drop.put(name)
        except BaseException as exc:  # reported through take() returning None
            self.error = exc

    def _drop_loop(self) -> None:
        admin: psycopg.Connection[Any] | None = None
        while True:
            name = self.to_drop.get()
            if name == _STOP:
                break
            state = self._handed_out.pop(name, None)
            judged = self.recycle is not None and state is not None  # counted by give_back
            try:
                if admin is None or admin.closed:
                    admin = connect(self.admin_dsn, autocommit=True)
                if self.recycle is not None and state is not None and not self._stop.is_set():
                    again = self.recycle(admin, name, state)
                    self._recycled_last = again is not None
                    if again is not None:
                        name, state, conn = again
                        with self._lock:
                            keep = (
                                conn is not None
                                and self.keep_sessions
                                and self._sessions_waiting < SESSIONS_WAITING
                            )
                            self._sessions_waiting += keep
                        if conn is not None and not keep:
                            close_session(conn, admin)
                            conn = None
                        try:
                            self.ready.put_nowait((name, state, conn))
                        except queue.Full:
                            if conn is not None:
                                with self._lock:
                                    self._sessions_waiting -= 1
                                _close(conn)
                            self.drop(admin, name)
                    continue
                self.drop(admin, name)
            except (psycopg.Error, ValueError) as exc:
                self._recycled_last = False
                self.drop_errors.append(f"{name}: {exc}")
            finally:
                if judged:
                    with self._lock:
                        self._judging -= 1
        if admin is not None:
            with contextlib.suppress(psycopg.Error):
                admin.close()


def _close(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
