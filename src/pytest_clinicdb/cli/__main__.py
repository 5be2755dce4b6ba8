"""``python -m pytest_clinicdb.cli``: the ``clinicdb`` command."""

from __future__ import annotations

from . import main

raise SystemExit(main())
