"""Turn the per-process reports of a run into terminal summary lines (no pytest import).

Every process of a run (the controller, each xdist worker) leaves a small JSON
report in the run directory: how it reached the server, which templates it
built or reused, its clone and drop times, databases it kept.  The controller
reads them all at the end; these functions say it in a few lines.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from .seeds import Notice

Report = dict[str, Any]


def template_reports(reports: Iterable[Report]) -> list[Report]:
    """The per-template entries of the processes' reports, each with its variant and worker."""
    found = []
    for rep in reports:
        for name, value in rep.items():
            if name.startswith("template_") and isinstance(value, dict):
                variant = name[len("template_") :]
                found.append({**value, "variant": variant, "worker": rep["worker"]})
    return found


def notices_from_reports(reports: Iterable[Report]) -> list[Notice]:
    seen: dict[tuple[str, str, str], Notice] = {}
    for rep in template_reports(reports):
        for n in rep.get("notices", []):
            notice = Notice(**n)
            seen.setdefault((notice.severity, notice.message, notice.source), notice)
    return list(seen.values())


def _template_status(entries: list[Report]) -> str:
    builders = [e for e in entries if e.get("built")]
    if builders:
        b = builders[0]
        again = "rebuilt (--clinicdb-rebuild)" if b.get("rebuilt") else "built"
        return f"{again} in {float(b.get('seconds') or 0):.2f} s by {b['worker']}"
    if any(e.get("rebuilt") for e in entries):
        return "rebuilt (--clinicdb-rebuild) by another process of this run"
    when = entries[0].get("built_at") or "an earlier run"
    return f"reused (built {when})"


def summary_lines(reports: list[Report], *, reuse: bool) -> list[str]:
    lines = []
    servers = sorted({str(r["server"]) for r in reports if r.get("server")})
    hows = sorted({str(r["server_start"]["how"]) for r in reports if r.get("server_start")})
    embedded = any(r.get("cluster") for r in reports)
    mode = "kept between runs" if reuse else "removed at the end of the run"
    for server in servers:
        how = f" ({'; '.join(h for h in hows if h)})" if any(hows) else ""
        kept = f"; data directory {mode}" if embedded else ""
        lines.append(f"clinicdb: server {server}{how}{kept}")
    entries = template_reports(reports)
    for variant in sorted({str(e["variant"]) for e in entries}):
        of_variant = [e for e in entries if e["variant"] == variant]
        e = of_variant[0]
        lines.append(
            f"clinicdb: template {e['key']} ({variant}) {_template_status(of_variant)}; "
            f"audit partitions: {e.get('partitions') or ''}"
        )
        if e.get("dev_seed"):
            lines.append(f"clinicdb: {e['dev_seed']}")
    collected = sorted({c for r in reports for c in r.get("collected", [])})
    if collected:
        lines.append(f"clinicdb: dropped {len(collected)} leftover database(s):")
        lines.extend(f"  {c}" for c in collected)
    notices = notices_from_reports(reports)
    if notices:
        lines.append(f"clinicdb: {len(notices)} server message(s) while building:")
        lines.extend(f"  {n}" for n in notices)
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timing_lines(reports: list[Report]) -> list[str]:
    """``--clinicdb-timings``: server start, each build step, clones and drops."""
    lines = ["clinicdb timings:"]
    for r in reports:
        start = r.get("server_start")
        if start:
            steps = ", ".join(f"{k} {_ms(v)}" for k, v in start.items() if k != "how")
            how = str(start.get("how", "")) + (f": {steps}" if steps else "")
            lines.append(f"  server ({r['worker']}): {how}")
    for e in template_reports(reports):
        if not e.get("built"):
            continue
        lines.append(
            f"  template {e['key']} ({e['variant']}) built by {e['worker']} "
            f"in {_ms(float(e.get('seconds') or 0))}:"
        )
        width = max((len(k) for k in e.get("timings", {})), default=0)
        for step, seconds in e.get("timings", {}).items():
            lines.append(f"    {step:<{width}}  {_ms(seconds):>10}")
    for what in ("clones", "drops"):
        values = [v for r in reports for v in r.get(what, [])]
        if values:
            per = ", ".join(f"{r['worker']} {len(r[what])}" for r in reports if r.get(what))
            lines.append(
                f"  {what}: {len(values)} ({per}), median {_ms(statistics.median(values))}, "
                f"max {_ms(max(values))}, total {_ms(sum(values))}"
            )
    if len(lines) == 1:
        lines.append("  (no database was set up in this run)")
    return lines


def leftover_lines(reports: list[Report]) -> list[str]:
    """Databases the run could not drop, and those ``--clinicdb-keep-failed`` kept."""
    lines = []
    drop_errors = [e for r in reports for e in r.get("drop_errors", [])]
    if drop_errors:
        lines.append(
            f"clinicdb: {len(drop_errors)} database(s) could not be dropped (the next run will):"
        )
        lines.extend(f"  {e}" for e in drop_errors)
    kept = [k for r in reports for k in r.get("kept", [])]
    if kept:
        lines.append(
            f"clinicdb: kept {len(kept)} database(s) of failed tests; the server stays up for "
            "them until the next run, which drops them (or run: clinicdb down):"
        )
        for k in kept:
            lines += [f"  {k['test']}", f'    psql "{k["dsn"]}"']
    return lines
