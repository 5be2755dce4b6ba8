"""The project's pytest configuration, read as pytest reads it, so the command shares it.

``clinicdb`` run in a project configured through ``pytest.ini`` (or
``pyproject.toml``, ``tox.ini``, ``setup.cfg``) uses the same
``clinicdb_*`` keys as the plugin: the first file found from the current
folder upwards that has a pytest section wins, like pytest's own rule.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class IniFile:
    path: Path | None
    values: dict[str, object] = field(default_factory=dict)

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path else None

    def get(self, name: str) -> object:
        """The value of ini key ``clinicdb_<name>``, or None; several lines come as a list."""
        raw = self.values.get("clinicdb_" + name)
        if isinstance(raw, str) and "\n" in raw.strip():
            return [line.strip() for line in raw.strip().splitlines() if line.strip()]
        return raw


def _read_ini(path: Path, section: str) -> dict[str, object] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def _read_pyproject(path: Path) -> dict[str, object] | None:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Python 3.10
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    options = data.get("tool", {}).get("pytest", {}).get("ini_options")
    if not isinstance(options, dict):
        return None
    return {k: ("\n".join(map(str, v)) if isinstance(v, list) else v) for k, v in options.items()}


def find_ini(start: Path) -> IniFile:
    """The pytest configuration that applies in ``start`` (pytest's order of files)."""
    for folder in [start, *start.parents]:
        candidates = (
            ("pytest.ini", lambda p: _read_ini(p, "pytest") or {}),
            (".pytest.ini", lambda p: _read_ini(p, "pytest") or {}),
            ("pyproject.toml", _read_pyproject),
            ("tox.ini", lambda p: _read_ini(p, "pytest")),
            ("setup.cfg", lambda p: _read_ini(p, "tool:pytest")),
        )
        for name, read in candidates:
            path = folder / name
            if path.is_file():
                values = read(path)
                if values is not None:
                    return IniFile(path, dict(values))
    return IniFile(None)
