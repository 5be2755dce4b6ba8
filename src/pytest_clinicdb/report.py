"""What the terminal says: the header before the run, the summary after it (no psycopg import).

Every process of a run (the controller, each xdist worker) leaves a small JSON
report in the run directory: how it reached the server, which templates it
built or reused, its clone and drop times, databases it kept.  The
controller reads them all at the end and says what happened — once, whatever
the number of workers.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ClinicDBError

if TYPE_CHECKING:
    from ._state import Context

Report = dict[str, Any]


# --------------------------------------------------------------------------- header


def header_lines(ctx: Context) -> list[str]:
    """The set-up as configured, without starting or connecting to anything."""
    s = ctx.settings
    try:
        backend = ctx.backend.describe()
    except ClinicDBError as exc:
        backend = f"backend {s.backend}, no usable PostgreSQL ({exc.message})"
    lines = [f"clinicdb: {backend}"]
    p = ctx.project
    folders = ", ".join(s.display_path(f) for f in s.migrations)
    notes: list[str] = []
    try:
        found = p.migrations
        tools = sorted(set(getattr(found, "layouts", {}).values()) - {"numbered"})
        layout = f" ({', '.join(tools)} layout)" if tools else ""
        migrations = f"{len(found)} migrations in {folders}{layout}"
        notes = [str(n) for n in getattr(found, "notes", [])]
        notes += [str(n) for m in found for n in m.notes]
    except ClinicDBError as exc:
        migrations = f"migrations unusable ({exc.message})"
    try:
        seed = p.system_seed
        seeds = f"system seed {s.display_path(seed)}" if seed else "no system seed"
    except ClinicDBError as exc:
        seeds = f"seeds unusable ({exc.message})"
    lines.append(f"clinicdb: {migrations}, {seeds}; cache {s.cache_dir}")
    lines.extend(f"clinicdb: note: {n}" for n in notes)
    if s.bootstrap:
        lines.append(
            "clinicdb: bootstrap (before the migrations, not in the ledger): "
            + ", ".join(s.display_path(f) for f in s.bootstrap)
        )
    hint = _template_hint(ctx)
    if hint:
        reuse = "reuse on" if s.reuse else "reuse off (--clinicdb-no-reuse)"
        lines.append(f"clinicdb: {hint}; {reuse}")
    return lines


def _template_hint(ctx: Context) -> str:
    """The base template's key and whether a kept cluster holds it (embedded only)."""
    from .server.embedded import EmbeddedBackend

    backend = ctx.backend
    if not isinstance(backend, EmbeddedBackend) or not ctx.settings.reuse:
        return ""
    try:
        spec = ctx.builder().spec(backend.found.major)
        key, name = spec.key, spec.name
        index = backend.cluster_root(None) / "templates" / name
    except (ClinicDBError, OSError):
        return ""
    if ctx.settings.rebuild:
        status = "will be rebuilt (--clinicdb-rebuild)"
    elif index.exists():
        status = "kept from an earlier run"
    else:
        status = "not built yet"
    return f"template {key}: {status}"


# --------------------------------------------------------------------------- summary


def template_reports(reports: Iterable[Report]) -> list[Report]:
    """The per-template entries of the processes' reports, each with its variant and worker."""
    found = []
    for rep in reports:
        for name, value in rep.items():
            if name.startswith("template_") and isinstance(value, dict):
                variant = name[len("template_") :]
                found.append({**value, "variant": variant, "worker": rep["worker"]})
    return found


def _notices(reports: Iterable[Report]) -> tuple[list[str], bool]:
    """The server's messages of the templates' builds, and whether a build of this run said
    any (a reused template repeats those of the run that built it)."""
    seen: dict[str, None] = {}
    now = False
    for rep in template_reports(reports):
        for n in rep.get("notices", []):
            where = f" [{n['source']}]" if n.get("source") else ""
            seen.setdefault(f"{n['severity']}: {n['message']}{where}", None)
            now = now or bool(rep.get("built"))
    return list(seen), now


def _template_status(entries: list[Report]) -> str:
    builders = [e for e in entries if e.get("built")]
    if builders:
        b = builders[0]
        again = "rebuilt (--clinicdb-rebuild)" if b.get("rebuilt") else "built"
        resumed = ""
        if b.get("resumed"):
            resumed = (
                f" (resumed after {b['resumed']} of {b.get('migrations')} migrations, "
                "from a checkpoint)"
            )
        return f"{again} in {float(b.get('seconds') or 0):.2f} s by {b['worker']}{resumed}"
    if any(e.get("rebuilt") for e in entries):
        return "rebuilt (--clinicdb-rebuild) by another process of this run"
    when = entries[0].get("built_at") or "an earlier run"
    return f"reused (built {when})"


def _server_how(reports: list[Report]) -> str:
    """How the server came up, said once: by whom it was started, else that it was running."""
    hows = [(r["worker"], r["server_start"]) for r in reports if r.get("server_start")]
    started = [(w, h) for w, h in hows if h.get("how") and not str(h["how"]).startswith("attached")]
    if started:
        worker, how = started[0]
        by = f" by {worker}" if len(hows) > 1 else ""
        return f"{how['how']}{by}"
    if hows and hows[0][1].get("how"):
        return str(hows[0][1]["how"]) + " (started by another run)"
    return ""


def partition_lines(partitions: Report) -> list[str]:
    """What the template's audit partitions are, and whether production would have them."""
    lines = []
    tables = partitions.get("tables", [])
    if not tables:
        note = partitions.get("function_note")
        return [f"clinicdb: audit partitions: {note}"] if note else []
    window = f"{partitions['start'][:7]}..{_month_before(partitions['end'])}"
    for t in tables:
        parts = []
        until = t.get("migrations_until")
        parts.append(
            f"the migrations cover until {until[:10]}"
            if until
            else "the migrations create no partition"
        )
        if t.get("function"):
            name = str(t["function"]).split("(", 1)[0]
            parts.append(f"{name}() called for {window} as production's job would")
        if t.get("test_only"):
            months = t["test_only"]
            parts.append(f"test-only partitions created for {months[0]}..{months[-1]}")
        if t.get("default"):
            parts.append(f"DEFAULT partition {t['default']} takes the rest")
        lines.append(f"clinicdb: audit partitions of {t['table']}: " + "; ".join(parts))
        if not t.get("migrations_cover_now") and not t.get("function") and not t.get("default"):
            why = partitions.get("function_note") or "no maintenance function"
            lines.append(
                f"clinicdb: WARNING: the migrations alone leave now uncovered in {t['table']} "
                f"({why}): audited writes fail with 23514 outside tests"
            )
    return lines


def _month_before(iso: str) -> str:
    year, month = int(iso[:4]), int(iso[5:7])
    total = year * 12 + month - 2
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


def dev_seed_line(entry: Report) -> str:
    from .seeds import DevSeedReport

    data = entry.get("dev_seed")
    if not data:
        return ""
    report = DevSeedReport.from_dict(data)
    if not entry.get("built"):
        # Nothing was loaded, disabled or re-enabled in this run: say what the data is.
        return (
            f"clinicdb: dev seed {report.seed} in the reused dev template (DEV/TEST ONLY, "
            f"loaded with app.environment={report.environment} by an earlier run)"
        )
    return f"clinicdb: {report.summary()}"


def summary_lines(reports: list[Report], *, reuse: bool) -> list[str]:
    lines = []
    servers = sorted({str(r["server"]) for r in reports if r.get("server")})
    embedded = any(r.get("cluster") for r in reports)
    mode = "kept between runs" if reuse else "removed at the end of the run"
    how = _server_how(reports)
    for server in servers:
        kept = f"; data directory {mode}" if embedded else ""
        lines.append(f"clinicdb: server {server}{f' ({how})' if how else ''}{kept}")
    entries = template_reports(reports)
    for variant in ("base", "dev"):
        of_variant = [e for e in entries if e["variant"] == variant]
        if not of_variant:
            continue
        e = next((x for x in of_variant if x.get("built")), of_variant[0])
        lines.append(f"clinicdb: template {e['key']} ({variant}) {_template_status(of_variant)}")
        if variant == "base":
            lines += partition_lines(e.get("partitions") or {})
            lines.extend(f"clinicdb: note: {n}" for n in e.get("notes", []))
        else:
            line = dev_seed_line(e)
            if line:
                lines.append(line)
    pruned = sorted({c for r in reports for c in r.get("pruned", [])})
    if pruned:
        lines.append(f"clinicdb: removed {len(pruned)} idle kept cluster(s):")
        lines.extend(f"  {c}" for c in pruned)
    collected = sorted({c for r in reports for c in r.get("collected", [])})
    if collected:
        lines.append(f"clinicdb: dropped {len(collected)} leftover database(s):")
        lines.extend(f"  {c}" for c in collected)
    notices, now = _notices(reports)
    if notices:
        when = "while building" if now else "when an earlier run built the reused template(s)"
        lines.append(f"clinicdb: {len(notices)} server message(s) {when}:")
        lines.extend(f"  {n}" for n in notices)
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timing_lines(reports: list[Report]) -> list[str]:
    """``--clinicdb-timings``: server start, each build step, clones and drops."""
    lines = ["clinicdb timings:"]
    starters = [
        r["worker"]
        for r in reports
        if r.get("server_start")
        and not str(r["server_start"].get("how", "")).startswith("attached")
    ]
    for r in reports:
        start = r.get("server_start")
        if start:
            steps = ", ".join(f"{k} {_ms(v)}" for k, v in start.items() if k != "how")
            how = str(start.get("how", ""))
            if how.startswith("attached") and starters:
                how = f"attached to the server {starters[0]} started"  # not another run's
            lines.append(f"  server ({r['worker']}): {how}" + (f": {steps}" if steps else ""))
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
    recycled = sum(int(r.get("recycled", 0)) for r in reports)
    undone = sum(int(r.get("undone", 0)) for r in reports)
    if recycled:
        lines.append(
            f"  recycled: {recycled} fresh clone(s), {recycled - undone} left unchanged by their"
            f" tests, {undone} once the rows their tests inserted were deleted"
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


def skip_lines(skips: list[tuple[str, str]]) -> list[str]:
    """The tests the plugin itself skipped, as (reason, test): one line per reason.

    pytest shows skip reasons only with ``-rs``; a check that did not run
    because of the project's set-up should not pass unnoticed.
    """
    by_reason: dict[str, list[str]] = {}
    for reason, test in skips:
        by_reason.setdefault(reason.removeprefix("Skipped: "), []).append(test)
    return [
        f"clinicdb: {len(tests)} test(s) skipped by pytest-clinicdb: {reason} (first: {tests[0]})"
        for reason, tests in by_reason.items()
    ]


def summary(ctx: Context) -> list[str]:
    """Everything the controller prints at the end of the run."""
    from .runs import reports_of

    reports = reports_of(ctx.run_dir)
    if not reports:
        return []
    lines = summary_lines(reports, reuse=ctx.settings.reuse)
    if ctx.settings.timings:
        lines += timing_lines(reports)
    return lines + leftover_lines(reports)
