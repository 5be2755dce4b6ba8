# ruff: noqa: RUF001, RUF002, RUF003  (the README writes schema sizes as ×5)
"""What a user waits for, pytest-clinicdb and pytest-postgresql side by side in one run.

Not part of the test suite.  Every figure is the wall time of whole pytest
processes, as a user waits for them, on generated throw-away projects:

- per test: the slope of the whole-run time over the number of tests (20 → 1,020
  tests for ``clinic_db``, 20 → 220 for ``clinic_db_fresh`` and pytest-postgresql)
  minus the same slope for tests that use no database (pytest's own cost per
  test), the median over ``--repeats`` pairs of runs.  The ``clinic_db`` tests
  do nothing (the fixture's own cost); the ``clinic_db_fresh`` and
  pytest-postgresql tests insert a row and commit (the clone is recycled once
  the row is deleted), a second ``clinic_db_fresh`` variant only reads (its
  clone is recycled as it is) and a third updates a row and commits (its clone
  is dropped and a new one made);
- warm first test: a one-test run of ``clinic_db`` with everything kept from the
  run before, minus a one-test run of bare pytest (``-p no:clinicdb``);
- plugin load: a one-test run with no database test, with and without the plugin;
- build, rebuild after editing the newest migration, clone: from
  ``--clinicdb-timings`` of those runs;
- schema ×1 is this repository's clinic schema (23 migrations, seed 001); ×5
  and ×20 add 4 and 19 synthetic clinic-like schemas of 17 tables each (foreign
  keys, indexes, triggers, identity columns, rows);
- the incremental rebuild: a 120-migration chain, its newest migration edited.

pytest-postgresql runs with its defaults (a new database from its template per
test) and tuned (fsync, synchronous_commit and full_page_writes off, basetemp on
tmpfs), on the same schema and PostgreSQL binaries.  Install it with
``pip install -e ".[dev,bench]"``, then run::

    python benchmarks/bench_clinic_db.py                 # about 15 minutes
    python benchmarks/bench_clinic_db.py --quick         # one repeat, ×1 and ×5 only

pytest-postgresql runs ``pg_ctl`` itself, which refuses root: run as root, its
variants run as the same unprivileged account pytest-clinicdb uses.  If that
account cannot run this interpreter (a venv under /root), the script makes a
venv it can run, from ``--pp-python`` or the system ``python3``, with the
pytest-postgresql version installed here (kept beside the cache for next time).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_clinicdb.binaries import find_binaries, run_as_kwargs, server_account
from pytest_clinicdb.config import default_cache_dir

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "database" / "migrations"
SEED = next((REPO / "database" / "seeds").glob("001_*.sql"))
SPEED = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
#: As on a developer's machine: compiled modules cached.
ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS")
}

INSERT = "INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c{i}')"
UPDATE = "UPDATE clinic.feature_flags SET enabled = NOT enabled"
TESTS = {
    # the fixtures' own cost: the tests themselves do nothing (or the same as their rival)
    "baseline": "def test_{i}():\n    pass\n",
    "clinic_db": "def test_{i}(clinic_db):\n    pass\n",
    "fresh": (
        "def test_{i}(clinic_db_fresh):\n"
        f'    clinic_db_fresh.execute("{INSERT}")\n'
        "    clinic_db_fresh.commit()\n"
    ),
    "fresh_update": (
        "def test_{i}(clinic_db_fresh):\n"
        f'    clinic_db_fresh.execute("{UPDATE}")\n'
        "    clinic_db_fresh.commit()\n"
    ),
    "fresh_read": (
        "def test_{i}(clinic_db_fresh):\n"
        '    clinic_db_fresh.execute("SELECT count(*) FROM clinic.clinics").fetchone()\n'
    ),
    "postgresql": (
        f'def test_{{i}}(postgresql):\n    postgresql.execute("{INSERT}")\n'
        "    postgresql.commit()\n"
    ),
}

# --------------------------------------------------------------------------- schemas

_TABLES = [
    # (table, parent or None, extra columns)
    ("clinics", None, "name text NOT NULL, slug text NOT NULL UNIQUE"),
    ("users", "clinics", "email text NOT NULL UNIQUE, role text NOT NULL DEFAULT 'staff'"),
    ("doctors", "users", "specialty text NOT NULL, license text"),
    ("staff", "users", "title text NOT NULL"),
    ("patients", "clinics", "full_name text NOT NULL, born date NOT NULL"),
    ("rooms", "clinics", "label text NOT NULL"),
    ("slots", "rooms", "starts_at timestamptz NOT NULL, minutes int NOT NULL CHECK (minutes > 0)"),
    ("appointments", "patients", "starts_at timestamptz NOT NULL, status text NOT NULL"),
    ("medical_records", "patients", "summary text NOT NULL, private boolean DEFAULT true"),
    ("prescriptions", "medical_records", "drug text NOT NULL, dose text NOT NULL"),
    ("invoices", "patients", "total numeric NOT NULL CHECK (total >= 0)"),
    ("payments", "invoices", "amount numeric NOT NULL, paid_at timestamptz"),
    ("feature_flags", None, "key text NOT NULL UNIQUE, enabled boolean NOT NULL"),
    ("settings", None, "key text NOT NULL UNIQUE, value jsonb NOT NULL"),
    ("webhooks", "clinics", "url text NOT NULL, secret text NOT NULL"),
    ("deliveries", "webhooks", "status int NOT NULL, body jsonb"),
    ("notes", "appointments", "body text NOT NULL"),
]


def synthetic_schema(k: int, rows: int = 20) -> str:
    """A clinic-like schema ``clinic_<k>``: 17 tables, as many identity sequences."""
    s = f"clinic_{k}"
    out = [f"CREATE SCHEMA {s};"]
    for table, parent, columns in _TABLES:
        ref = f", {parent}_id bigint NOT NULL REFERENCES {s}.{parent} (id)" if parent else ""
        out.append(
            f"CREATE TABLE {s}.{table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY{ref}, "
            f"{columns}, created_at timestamptz NOT NULL DEFAULT now(), "
            "updated_at timestamptz NOT NULL DEFAULT now());"
        )
        if parent:
            out.append(f"CREATE INDEX ON {s}.{table} ({parent}_id);")
        out.append(f"CREATE INDEX ON {s}.{table} (created_at);")
        values = ", ".join(_value(c) for c in _column_kinds(columns))
        pick = f"1 + g % {rows}, " if parent else ""
        names = ", ".join(_column_names(columns))
        out.append(
            f"INSERT INTO {s}.{table} ({f'{parent}_id, ' if parent else ''}{names}) "
            f"SELECT {pick}{values} FROM generate_series(1, {rows}) g;"
        )
        out.append(
            f"CREATE TRIGGER set_updated_at_{table} BEFORE UPDATE ON {s}.{table} "
            "FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();"
        )
        out.append(f"COMMENT ON TABLE {s}.{table} IS 'synthetic copy {k} of a clinic table';")
    return "\n".join(out) + "\n"


def _column_names(columns: str) -> list[str]:
    return [c.strip().split()[0] for c in columns.split(",") if "(" not in c.split()[0]]


def _column_kinds(columns: str) -> list[str]:
    return [c.strip().split()[1] for c in columns.split(",") if "(" not in c.split()[0]]


def _value(kind: str) -> str:
    return {
        "text": "'v' || g",
        "date": "date '1990-01-01' + g",
        "timestamptz": "timestamptz '2026-01-01' + g * interval '1 hour'",
        "int": "g",
        "numeric": "g * 10",
        "boolean": "g % 2 = 0",
        "jsonb": "jsonb_build_object('g', g)",
    }[kind]


def migrations_folder(dest: Path, copies: int = 1, chain: int = 0) -> Path:
    """Our migrations, plus ``copies - 1`` synthetic schemas, plus a chain of small ones."""
    dest.mkdir(parents=True)
    for path in sorted(MIGRATIONS.glob("*.sql")):
        shutil.copy(path, dest / path.name)
    for k in range(2, copies + 1):
        (dest / f"{100 + k:03d}_synthetic_clinic_{k}.sql").write_text(synthetic_schema(k))
    if chain:
        (dest / "200_chain.sql").write_text("CREATE SCHEMA chain;\n")
        for i in range(1, chain):
            parent = f", t{i - 1}_id bigint REFERENCES chain.t{i - 1} (id)" if i > 1 else ""
            (dest / f"{200 + i:03d}_chain_{i}.sql").write_text(
                f"CREATE TABLE chain.t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
                f"{parent}, v text NOT NULL);\n"
                f"INSERT INTO chain.t{i} (v) SELECT 'v' || g FROM generate_series(1, 50) g;\n"
                f"CREATE INDEX ON chain.t{i} (v);\n"
            )
    os.chmod(dest, 0o755)
    return dest


# --------------------------------------------------------------------------- running


class Bench:
    def __init__(self, work: Path, bindir: Path, pp_python: str, repeats: int) -> None:
        self.work = work
        self.bindir = bindir
        self.pp_python = pp_python
        self.repeats = repeats
        self.cache = work / "cache"
        self._n = 0

    def clinic_ini(self, migrations: Path) -> str:
        return (
            f"clinicdb_migrations = {migrations}\n"
            f"clinicdb_seeds = {SEED.parent}\n"
            f"clinicdb_pg_bin = {self.bindir}\n"
            f"clinicdb_cache_dir = {self.cache}\n"
        )

    def pp_ini(self, tuned: bool) -> str:
        loads = "".join(f"    {p}\n" for p in [*sorted(MIGRATIONS.glob("*.sql")), SEED])
        ini = f"postgresql_exec = {self.bindir / 'pg_ctl'}\npostgresql_load =\n{loads}"
        return ini + (f"postgresql_postgres_options = {SPEED}\n" if tuned else "")

    def project(self, kind: str, count: int, ini: str) -> Path:
        self._n += 1
        path = self.work / f"p{self._n}-{kind}-{count}"
        path.mkdir()
        (path / f"test_{kind}.py").write_text(
            "".join(TESTS[kind].format(i=i) for i in range(count))
        )
        (path / "pytest.ini").write_text("[pytest]\n" + ini)
        os.chmod(path, 0o777)
        return path

    def run(self, path: Path, *args: str, pp: bool = False) -> tuple[float, str]:
        """One pytest process: its wall time and output."""
        account = server_account(None) if pp else None
        python = self.pp_python if pp else sys.executable
        plugins = ("-p", "no:clinicdb") if pp else ("-p", "no:pytest_postgresql")
        started = time.perf_counter()
        proc = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, *args],
            cwd=path,
            env={**ENV, "HOME": str(path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            **run_as_kwargs(account),
        )
        wall = time.perf_counter() - started
        out = proc.stdout.decode()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} in {path} failed:\n{out[-3000:]}")
        return wall, out

    def slope(
        self,
        kind: str,
        sizes: tuple[int, int],
        ini: str,
        args: Sequence[str] = (),
        pp: bool = False,
    ) -> list[float]:
        """Seconds per test: (wall(big) - wall(small)) / (big - small), one per repeat."""
        small, big = (self.project(kind, n, ini) for n in sizes)
        self.run(small, *args, pp=pp)  # warms caches, builds the template
        slopes = []
        for _ in range(self.repeats):
            a, _ = self.run(small, *args, pp=pp)
            b, _ = self.run(big, *args, pp=pp)
            slopes.append((b - a) / (sizes[1] - sizes[0]))
        return slopes

    def paired(self, a: tuple[Path, Sequence[str]], b: tuple[Path, Sequence[str]]) -> list[float]:
        """wall(a) - wall(b), alternating, one per repeat (after one warm-up each)."""
        self.run(a[0], *a[1])
        self.run(b[0], *b[1])
        diffs = []
        for _ in range(max(self.repeats, 5)):
            diffs.append(self.run(a[0], *a[1])[0] - self.run(b[0], *b[1])[0])
        return diffs


def _timing(out: str, what: str) -> float | None:
    if what == "build":
        m = re.search(r"template \w+ \(base\) built by \S+ in ([\d.]+) ms", out)
    else:
        m = re.search(r"clones: \d+ \(.*?\), median ([\d.]+) ms", out)
    return float(m.group(1)) / 1000 if m else None


def say(what: str, value: object) -> None:
    """Progress on stderr, as each figure is measured."""
    print(f"  {what}: {value}", file=sys.stderr, flush=True)


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------- figures


def schema_figures(bench: Bench, copies: int, xdist: bool, base: float) -> dict[str, float]:
    """Build, rebuild after an edit, clone, and the per-test costs on schema ×copies."""
    folder = migrations_folder(bench.work / f"migrations-x{copies}-{int(xdist)}", copies)
    ini = bench.clinic_ini(folder)
    args = ("-n", "2") if xdist else ()
    fig: dict[str, float] = {}
    one = bench.project("clinic_db", 1, ini)
    _, out = bench.run(one, "--clinicdb-rebuild", "--clinicdb-timings", *args)
    fig["build"] = _timing(out, "build") or float("nan")
    newest = sorted(folder.glob("*.sql"))[-1]
    newest.write_text(newest.read_text() + "\n-- edited\n")
    _, out = bench.run(one, "--clinicdb-timings", *args)
    fig["rebuild"] = _timing(out, "build") or float("nan")
    fig["clinic_db"] = med(bench.slope("clinic_db", (20, 1020), ini, args)) - base
    fresh = bench.project("fresh", 20, ini)
    _, out = bench.run(fresh, "--clinicdb-timings", *args)
    fig["clone"] = _timing(out, "clone") or float("nan")
    fig["fresh"] = med(bench.slope("fresh", (20, 220), ini, args)) - base
    say(f"schema x{copies} {'-n 2' if xdist else '-n 1'}", fig)
    return fig


def incremental(bench: Bench) -> tuple[float, float]:
    """Full build and rebuild after editing the newest of 120 migrations (seconds)."""
    folder = migrations_folder(bench.work / "migrations-120", 1, chain=120 - 23)
    assert len(list(folder.glob("*.sql"))) == 120
    one = bench.project("clinic_db", 1, bench.clinic_ini(folder))
    full, edit = [], []
    newest = sorted(folder.glob("*.sql"))[-1]
    bench.run(one)
    for i in range(max(bench.repeats, 7)):  # each pair takes a second: a steadier median
        _, out = bench.run(one, "--clinicdb-rebuild", "--clinicdb-timings")
        full.append(_timing(out, "build") or float("nan"))
        newest.write_text(newest.read_text() + f"\n-- edit {i}\n")
        _, out = bench.run(one, "--clinicdb-timings")
        edit.append(_timing(out, "build") or float("nan"))
    say(
        "120 migrations, full build and after an edit (ms)",
        ([f * 1000 for f in full], [e * 1000 for e in edit]),
    )
    return med(full), med(edit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs per slope")
    parser.add_argument("--pg-bin", type=Path, help="PostgreSQL bin directory for both plugins")
    parser.add_argument("--pp-python", help="base interpreter for pytest-postgresql's venv")
    parser.add_argument("--quick", action="store_true", help="one repeat; schema ×1 and ×5")
    parser.add_argument("--skip-pp", action="store_true", help="leave pytest-postgresql out")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    pp_python = sys.executable if args.skip_pp else account_python(args.pp_python)
    bindir = find_binaries(args.pg_bin, "--pg-bin" if args.pg_bin else "default").bindir
    work = Path(tempfile.mkdtemp(prefix="clinicdb-bench-", dir=default_cache_dir().parent))
    os.chmod(work, 0o777)
    bench = Bench(work, bindir, pp_python, repeats)
    started = time.perf_counter()
    try:
        figures = measure(bench, args.quick, args.skip_pp)
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_clinicdb.cli",
                "down",
                "--clean",
                "--cache-dir",
                str(bench.cache),
            ],
            check=False,
            stdout=subprocess.DEVNULL,
            env=ENV,
        )
        shutil.rmtree(work, ignore_errors=True)
    report(figures, bindir, repeats, time.perf_counter() - started)


def measure(bench: Bench, quick: bool, skip_pp: bool) -> dict[str, object]:
    figures: dict[str, object] = {}
    x1 = migrations_folder(bench.work / "migrations-x1", 1)
    ini = bench.clinic_ini(x1)
    # Start-up: warm first database test and plugin load, over bare pytest.
    bare = bench.project("baseline", 1, ini)
    one = bench.project("clinic_db", 1, ini)
    figures["warm first test"] = med(bench.paired((one, ()), (bare, ("-p", "no:clinicdb"))))
    figures["plugin load"] = med(bench.paired((bare, ()), (bare, ("-p", "no:clinicdb"))))
    say("warm first test, plugin load", (figures["warm first test"], figures["plugin load"]))
    # Baselines: pytest's own cost per test, without and with xdist.
    no_plugin = ("-p", "no:clinicdb")
    base = {
        False: med(bench.slope("baseline", (20, 1020), "", no_plugin)),
        True: med(bench.slope("baseline", (20, 1020), "", (*no_plugin, "-n", "2"))),
    }
    figures["baseline"] = base
    say("baseline", base)
    # clinic_db_fresh that commits nothing (its clone can go back to the pool).
    figures["fresh read-only"] = med(bench.slope("fresh_read", (20, 220), ini)) - base[False]
    say("fresh read-only", figures["fresh read-only"])
    # clinic_db_fresh that updates a row: no deletion undoes that, the clone is dropped.
    figures["fresh updating"] = med(bench.slope("fresh_update", (20, 220), ini)) - base[False]
    say("fresh updating", figures["fresh updating"])
    if not skip_pp:
        for tuned in (False, True):
            label = "pytest-postgresql tuned" if tuned else "pytest-postgresql"
            extra = (f"--basetemp={bench.work / 'pp-basetemp'}",) if tuned else ()
            figures[label] = (
                med(bench.slope("postgresql", (20, 220), bench.pp_ini(tuned), extra, pp=True))
                - base[False]
            )
            say(label, figures[label])
    schemas = (1, 5) if quick else (1, 5, 20)
    figures["schemas"] = {
        (copies, xdist): schema_figures(bench, copies, xdist, base[xdist])
        for copies in schemas
        for xdist in (False, True)
    }
    figures["incremental"] = incremental(bench)
    return figures


def report(figures: dict[str, object], bindir: Path, repeats: int, took: float) -> None:
    ms = 1000.0
    base: dict[bool, float] = figures["baseline"]  # type: ignore[assignment]
    print(f"PostgreSQL from {bindir}; medians of {repeats} repeat(s); took {took / 60:.1f} min")
    print(
        f"pytest's own cost per test: {base[False] * ms:.2f} ms, with -n 2 {base[True] * ms:.2f} ms"
    )
    print(f"warm first clinic_db test over bare pytest: {figures['warm first test'] * ms:.0f} ms")
    print(f"plugin load (no database test) over bare pytest: {figures['plugin load'] * ms:.0f} ms")
    full, edit = figures["incremental"]  # type: ignore[misc]
    print(
        f"120 migrations: full build {full * ms:.0f} ms, after editing the newest "
        f"{edit * ms:.1f} ms ({edit / full:.1%} of a full build; the checkpoint for the next "
        "edit is made while the tests run)"
    )
    fr = figures["fresh read-only"]
    fu = figures["fresh updating"]
    print(f"clinic_db_fresh committing nothing (clone back to the pool): {fr * ms:.1f} ms per test")
    print(f"clinic_db_fresh updating a row (clone dropped, new made): {fu * ms:.1f} ms per test")
    print()
    print(
        "| schema | xdist | build | rebuild after an edit | clone | `clinic_db` per test "
        "| `clinic_db_fresh` per test |"
    )
    print("|---|---|---|---|---|---|---|")
    for (copies, xdist), f in figures["schemas"].items():  # type: ignore[union-attr]
        print(
            f"| ×{copies} | {'-n 2' if xdist else '-n 1'} | {f['build']:.2f} s "
            f"| {f['rebuild']:.2f} s | {f['clone'] * ms:.0f} ms | {f['clinic_db'] * ms:.2f} ms "
            f"| {f['fresh'] * ms:.1f} ms |"
        )
    x1 = figures["schemas"][(1, False)]  # type: ignore[index]
    for theirs in ("pytest-postgresql", "pytest-postgresql tuned"):
        if theirs in figures:
            t = figures[theirs]
            print(
                f"{theirs}: {t * ms:.1f} ms per test; / clinic_db {t / x1['clinic_db']:.0f}x, "
                f"/ clinic_db_fresh inserting {t / x1['fresh']:.1f}x, "
                f"/ committing nothing {t / fr:.1f}x, / updating {t / fu:.1f}x"
            )
    print("per test = slope of the whole-run time over the number of tests, minus the same slope")
    print("for tests without a database (schema ×1, no xdist, for the pytest-postgresql ratios)")


def account_python(base: str | None) -> str:
    """An interpreter with pytest-postgresql that the server account can run."""
    account = server_account(None)
    if account is None:
        return sys.executable
    probe = [sys.executable, "-c", "import pytest_postgresql, psycopg"]
    try:
        kwargs = run_as_kwargs(account)
        if subprocess.run(probe, check=False, capture_output=True, **kwargs).returncode == 0:
            return sys.executable
    except PermissionError:
        pass
    from importlib.metadata import version

    venv = default_cache_dir().parent / f"clinicdb-bench-venv-{version('pytest-postgresql')}"
    python = venv / "bin" / "python"
    if not python.exists():
        base = base or shutil.which("python3", path="/usr/local/bin:/usr/bin") or "python3"
        print(f"making {venv} for pytest-postgresql (runs as {account.name}) ...", flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"pytest-postgresql=={version('pytest-postgresql')}",
                f"pytest=={version('pytest')}",
                f"psycopg[binary]=={version('psycopg')}",
            ],
            check=True,
        )
    return str(python)


if __name__ == "__main__":
    main()
