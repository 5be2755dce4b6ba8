"""The docker backend: a PostgreSQL container per run (no pytest import).

The lifecycle — one container per run, started by the first process that
needs it under a file lock, attached to by the others through the state the
run recorded, removed by the run's owner at the end, reaped by the next run
if this one was killed — lives in :class:`DockerBackend`.  Talking to a
container engine lives behind :class:`ContainerRuntime`; the default one uses
testcontainers.  testcontainers' own reaper is turned off: it is tied to the
process that started the container, which may be an xdist worker that
finishes before the others.

A subclass with another ``runtime`` is a new backend (``register_backend``):
the plugin's tests drive this lifecycle with a runtime that starts a local
server instead of a container, since no Docker daemon runs there.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import ConfigError, ServerDiedError, ServerStartError
from ..runs import ServerRecord
from . import ServerInfo
from .embedded import SPEED_SETTINGS

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project
    from ..runs import Run, RunRef

DEFAULT_MAJOR = 17


def image_for(image: str | None, pg_version: int | None) -> str:
    """``--clinicdb-image`` if given, else the official image of the requested major."""
    return image or f"postgres:{pg_version or DEFAULT_MAJOR}"


@dataclass(frozen=True)
class Container:
    id: str
    host: str
    port: int


class ContainerRuntime(Protocol):
    """Starts and removes PostgreSQL containers (the official image's conventions)."""

    def run(self, image: str, *, password: str, settings: dict[str, str]) -> Container: ...

    def remove(self, container_id: str) -> None: ...


def _docker_client() -> Any:
    try:
        import docker  # type: ignore[import-not-found,import-untyped,unused-ignore]
        from testcontainers.core.container import DockerContainer  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the docker backend needs testcontainers, which is not installed",
            hint="pip install 'pytest-clinicdb[docker]', or use --clinicdb-backend embedded "
            "(local PostgreSQL binaries) or external (--clinicdb-dsn)",
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker raises several unrelated types here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServerStartError(
            f"the docker backend found no reachable Docker daemon ({first})",
            hint="start Docker (or set DOCKER_HOST), or use --clinicdb-backend embedded "
            "(local PostgreSQL binaries) or external (--clinicdb-dsn)",
        ) from None
    return client


class TestcontainersRuntime:
    """The default runtime: testcontainers' ``DockerContainer`` with its reaper off."""

    def run(self, image: str, *, password: str, settings: dict[str, str]) -> Container:
        _docker_client()
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        testcontainers_config.ryuk_disabled = True
        command = " ".join(f"-c {k}={v}" for k, v in settings.items())
        container = (
            DockerContainer(image)
            .with_env("POSTGRES_PASSWORD", password)
            .with_exposed_ports(5432)
            .with_command(f"postgres {command}")
        )
        try:
            container.start()
        except Exception as exc:
            raise ServerStartError(f"the docker backend could not start {image}: {exc}") from None
        return Container(
            container.get_wrapped_container().id,
            container.get_container_host_ip(),
            int(container.get_exposed_port(5432)),
        )

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            _docker_client().containers.get(container_id).remove(force=True)


class DockerBackend:
    name: ClassVar[str] = "docker"
    runtime: ClassVar[ContainerRuntime] = TestcontainersRuntime()
    start_timeout: ClassVar[float] = 120.0

    def __init__(self, settings: Settings, project: Project | None = None) -> None:
        self.image = image_for(settings.image, settings.pg_version)
        self.timings: dict[str, float] = {}
        self.how = "container"

    def describe(self) -> str:
        return f"backend {self.name}, image {self.image}"

    def start(self, run: Run) -> ServerInfo:
        from filelock import FileLock

        with FileLock(str(run.dir / f"{self.name}.lock")):
            for record in run.servers():
                if record.backend == self.name:
                    info = self._info(record.state)
                    if self.died(info) is None:
                        self.how = "attached to the run's container"
                        return info
                    raise ServerDiedError(
                        f"the run's {self.name} container {record.state['id'][:12]} stopped "
                        "answering",
                        hint="check the container engine; the next run starts a new container",
                    )
            return self._start(run)

    def _start(self, run: Run) -> ServerInfo:
        import psycopg

        t0 = time.perf_counter()
        password = secrets.token_urlsafe(18)
        container = self.runtime.run(self.image, password=password, settings=SPEED_SETTINGS)
        state: dict[str, Any] = {
            "id": container.id,
            "host": container.host,
            "port": container.port,
            "password": password,
            "image": self.image,
        }
        # Recorded before waiting for it: a run killed now still gets its container removed.
        run.record_server(ServerRecord(self.name, state, container.id))
        info = self._info(state)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with psycopg.connect(info.dsn, connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                state["version"] = str(row[0] if row else "0").split()[0]
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.runtime.remove(container.id)
                    raise ServerStartError(
                        f"the {self.image} container did not accept connections within "
                        f"{self.start_timeout:.0f} s"
                    ) from None
                time.sleep(0.1)
        run.record_server(ServerRecord(self.name, state, container.id))
        self.timings["start"] = time.perf_counter() - t0
        self.how = "new container"
        return self._info(state)

    def _info(self, state: dict[str, Any]) -> ServerInfo:
        version = str(state.get("version", "0"))
        return ServerInfo(
            backend=self.name,
            host=str(state["host"]),
            port=int(state["port"]),
            user="postgres",
            password=str(state["password"]),
            version=version,
            major=int(version.split(".")[0]),
            binaries=f"PostgreSQL {version} in {self.name} image {state.get('image', self.image)}",
            hermetic=True,
        )

    @classmethod
    def died(cls, info: ServerInfo) -> ServerDiedError | None:
        import psycopg

        try:
            psycopg.connect(info.dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return ServerDiedError(
                f"lost the {info.backend} container during the session: {str(exc).strip()}",
                hint="check the container engine; the next run starts a new container",
            )
        return None

    @classmethod
    def release(cls, state: dict[str, Any], run: RunRef, *, keep: bool) -> None:
        if not keep:
            cls.runtime.remove(str(state["id"]))

    @classmethod
    def reap(cls, state: dict[str, Any], run_id: str) -> None:
        cls.runtime.remove(str(state["id"]))
