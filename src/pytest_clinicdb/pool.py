"""Fresh clones made ahead and dropped behind, off the test's critical path (no pytest import).

``clinic_db_fresh`` needs a new clone of the template for every test.  Cloning
(~25 ms), the first connection to a new database (~9 ms: the server builds its
relation cache file) and dropping (~13 ms) cost the same wherever they happen,
so a :class:`ClonePool` does them in background threads while tests run: two
*cloners* keep clones ready, each already connected to once, and a *dropper*
drops the databases tests are done with.  A test then only waits if tests come
faster than clones.  The server does the same work either way: the pool moves
it off the test's critical path, it does not make it disappear.  The threads
use their own connections; psycopg waits on the socket without holding the
GIL, so the test's Python code keeps running.

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

from .connect import connect

_STOP = ""
#: Clones made at the same time, each by its own thread and connection.  Two
#: halve the wait of short tests on a 2-core machine (FILE_COPY clones are
#: mostly file copying, which runs in parallel); more gave nothing there.
CLONERS = 2


class ClonePool:
    """Clones of one template made ahead by ``CLONERS`` threads and dropped by one more.

    ``make(admin)`` creates (and names, journals, marks) one clone on the given
    autocommit connection and returns its name; ``drop(admin, name)`` drops one.
    """

    def __init__(
        self,
        *,
        admin_dsn: str,
        dsn_for: Callable[[str], str],
        make: Callable[[psycopg.Connection[Any]], str],
        drop: Callable[[psycopg.Connection[Any], str], None],
    ) -> None:
        self.admin_dsn = admin_dsn
        self.dsn_for = dsn_for
        self.make = make
        self.drop = drop
        self.ready: queue.Queue[str] = queue.Queue(maxsize=CLONERS)
        self.to_drop: queue.Queue[str] = queue.Queue()
        self.error: BaseException | None = None
        self.drop_errors: list[str] = []
        self._stop = threading.Event()
        self._cloners = [
            threading.Thread(target=self._clone_loop, name=f"clinicdb-clone-{i}", daemon=True)
            for i in range(CLONERS)
        ]
        self._dropper = threading.Thread(target=self._drop_loop, name="clinicdb-drop", daemon=True)
        for t in self._cloners:
            t.start()
        self._dropper.start()

    # ------------------------------------------------------------ for tests

    def take(self, timeout: float = 60.0) -> str | None:
        """A ready clone, or None if the pool is off (the caller then clones itself)."""
        deadline = time.monotonic() + timeout
        while self.error is None and time.monotonic() < deadline:
            try:
                return self.ready.get(timeout=0.05)
            except queue.Empty:
                if not any(t.is_alive() for t in self._cloners):
                    break
        return None

    def give_back(self, name: str) -> None:
        """The test is done with ``name``: drop it in the background."""
        self.to_drop.put(name)

    def close(self) -> list[str]:
        """Stop the cloner, drop every ready and returned clone; return drop errors."""
        self._stop.set()
        for t in self._cloners:
            t.join(timeout=120)
        while True:
            try:
                self.to_drop.put(self.ready.get_nowait())
            except queue.Empty:
                break
        self.to_drop.put(_STOP)
        self._dropper.join(timeout=300)
        return self.drop_errors

    # ------------------------------------------------------------ threads

    def _clone_loop(self) -> None:
        try:
            with connect(self.admin_dsn, autocommit=True) as admin:
                while not self._stop.is_set():
                    name = self.make(admin)
                    # The first connection builds the relation cache file: do it here.
                    with connect(self.dsn_for(name)) as warm:
                        warm.execute("SELECT 1")
                    while not self._stop.is_set():
                        try:
                            self.ready.put(name, timeout=0.05)
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
            try:
                if admin is None or admin.closed:
                    admin = connect(self.admin_dsn, autocommit=True)
                self.drop(admin, name)
            except (psycopg.Error, ValueError) as exc:
                self.drop_errors.append(f"{name}: {exc}")
        if admin is not None:
            with contextlib.suppress(psycopg.Error):
                admin.close()
