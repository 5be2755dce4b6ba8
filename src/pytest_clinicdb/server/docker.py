"""The docker backend: a PostgreSQL container started with testcontainers (no pytest import).

One container per run, started by the first process that needs it under a file
lock (xdist workers attach to it through ``<run dir>/docker.json``) and removed
by the run's owner at the end.  testcontainers' reaper is turned off for it:
the reaper is tied to the process that started the container, which may be an
xdist worker that finishes before the others.  A killed run's container is
removed by the next run (see ``engine.reap_dead_runs``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
from filelock import FileLock

from ..errors import ConfigError, ServerStartError
from . import ServerInfo

STATE = "docker.json"
DEFAULT_MAJOR = 17


def image_for(image: str | None, pg_version: int | None) -> str:
    """``--clinicdb-image`` if given, else the official image of the requested major."""
    return image or f"postgres:{pg_version or DEFAULT_MAJOR}"


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


class DockerServer:
    backend = "docker"

    def __init__(self, run_dir: Path, image: str, settings: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.image = image
        self.settings = settings
        self.state = run_dir / STATE

    def ensure_running(self, timeout: float = 120.0) -> ServerInfo:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.run_dir / "docker.lock")):
            if self.state.exists():
                info = self._info(json.loads(self.state.read_text()))
                with contextlib.suppress(psycopg.Error):
                    psycopg.connect(info.dsn, connect_timeout=5).close()
                    return info
            return self._start(timeout)

    def _start(self, timeout: float) -> ServerInfo:
        _docker_client()
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        testcontainers_config.ryuk_disabled = True
        password = secrets.token_urlsafe(18)
        command = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        container = (
            DockerContainer(self.image)
            .with_env("POSTGRES_PASSWORD", password)
            .with_exposed_ports(5432)
            .with_command(f"postgres {command}")
        )
        try:
            container.start()
        except Exception as exc:
            message = f"the docker backend could not start {self.image}: {exc}"
            raise ServerStartError(message) from None
        state = {
            "id": container.get_wrapped_container().id,
            "host": container.get_container_host_ip(),
            "port": int(container.get_exposed_port(5432)),
            "password": password,
            "image": self.image,
        }
        self.state.write_text(json.dumps(state))
        info = self._info(state)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(info.dsn, connect_timeout=2) as conn:
                    version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                state["version"] = version.split()[0]
                self.state.write_text(json.dumps(state))
                return self._info(state)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(
                        f"the {self.image} container did not accept connections within "
                        f"{timeout:.0f} s"
                    ) from None
                time.sleep(0.2)

    def _info(self, state: dict[str, Any]) -> ServerInfo:
        version = str(state.get("version", "0"))
        return ServerInfo(
            backend=self.backend,
            host=str(state["host"]),
            port=int(state["port"]),
            user="postgres",
            password=str(state["password"]),
            version=version,
            major=int(version.split(".")[0]),
            binaries=f"PostgreSQL {version} in docker image {state.get('image', self.image)}",
        )

    def stop(self) -> None:
        """Remove the run's container, if any."""
        try:
            container_id = json.loads(self.state.read_text())["id"]
        except (OSError, ValueError, KeyError):
            return
        with contextlib.suppress(Exception):
            _docker_client().containers.get(container_id).remove(force=True)
        self.state.unlink(missing_ok=True)
