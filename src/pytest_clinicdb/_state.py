"""Where the plugin keeps its per-process state (``config.stash``)."""

from __future__ import annotations

import pytest

from .engine import Engine

ENGINE_KEY = pytest.StashKey[Engine]()
#: Each test's reports by phase (setup, call, teardown).
PHASE_REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


def engine_of(config: pytest.Config) -> Engine:
    try:
        return config.stash[ENGINE_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-clinicdb is not configured in this process (was the plugin disabled "
            "with -p no:clinicdb?)"
        ) from None
