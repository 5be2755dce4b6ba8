"""A 50,000-INSERT seed: our loader against ``psql -1 -f``, side by side on one server.

    python benchmarks/bench_big_seed.py [--rows 50000] [--rounds 5] [--pg-bin DIR]

Each round loads the same file into two fresh databases cloned from one schema:
once with ``psql -X -q -v ON_ERROR_STOP=1 -1 -f`` and once with pytest-clinicdb
(cold: read + split + run, what a template build costs for that seed); it also
times what a reused template costs for it (warm: read the bytes and hash them for
the content key — nothing is split).  Prints the medians and the ratio.

The server is a throw-away one (initdb in a temporary directory, fsync off, unix
socket only), stopped and deleted at the end.  Set ``TMPDIR`` to a tmpfs for
numbers closer to the plugin's own servers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from pytest_clinicdb.binaries import (
    PgBinaries,
    find_binaries,
    make_reachable,
    run_as_kwargs,
    server_account,
)
from pytest_clinicdb.errors import SeedError
from pytest_clinicdb.sqlfile import execute_file, read_sql_file

SCHEMA = """
CREATE SCHEMA clinic;
CREATE TABLE clinic.patients (
    id          bigint PRIMARY KEY,
    full_name   text NOT NULL,
    birth_date  date NOT NULL,
    phone       text,
    notes       text
);
"""


def write_seed(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("-- generated: one INSERT per patient\n")
        for i in range(1, rows + 1):
            out.write(
                "INSERT INTO clinic.patients (id, full_name, birth_date, phone, notes) VALUES "
                f"({i}, 'Patient {i:05d}', DATE '1950-01-01' + {i % 20000}, "
                f"'+351 9{i:08d}', E'seen at desk {i % 7}; allergies: none');\n"
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(binaries: PgBinaries, root: Path) -> Iterator[str]:
    """A server in ``root`` for the benchmark; yields the DSN of its ``postgres`` database."""
    account = server_account(None)
    run_as = run_as_kwargs(account)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    data.mkdir(mode=0o700)
    if account is not None:
        for path in (data, sock):
            os.chown(path, account.uid, account.gid)
    subprocess.run(
        [str(binaries.tool("initdb")), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        cwd="/",
        **run_as,
    )
    port = free_port()
    options = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        [
            str(binaries.tool("pg_ctl")),
            "start",
            "-w",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(sock / "log"),
        ],
        check=True,
        capture_output=True,
        cwd="/",
        **run_as,
    )
    try:
        yield f"host={sock} port={port} user=postgres dbname=postgres"
    finally:
        subprocess.run(
            [str(binaries.tool("pg_ctl")), "stop", "-m", "fast", "-D", str(data)],
            capture_output=True,
            cwd="/",
            **run_as,
        )


def dsn_for(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


def fresh(admin: psycopg.Connection[object], name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE bench_schema").format(sql.Identifier(name)))


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM clinic.patients").fetchone()
        return int(row[0]) if row else 0


def one_round(admin: psycopg.Connection[object], dsn: str, psql: Path, seed: Path, rows: int):
    fresh(admin, "bench_psql")
    started = time.perf_counter()
    subprocess.run(
        [
            str(psql),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-1",
            "-f",
            str(seed),
            "-d",
            dsn_for(dsn, "bench_psql"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    psql_s = time.perf_counter() - started
    assert count(dsn_for(dsn, "bench_psql")) == rows

    fresh(admin, "bench_ours")
    with psycopg.connect(dsn_for(dsn, "bench_ours"), autocommit=True) as conn:
        started = time.perf_counter()
        seed_file = read_sql_file(seed, what="seed")
        with conn.transaction():
            execute_file(conn, seed_file, SeedError, settings={})
        cold_s = time.perf_counter() - started
    assert count(dsn_for(dsn, "bench_ours")) == rows

    started = time.perf_counter()
    reused = read_sql_file(seed, what="seed")
    hashlib.sha256(reused.content_bytes()).hexdigest()
    warm_s = time.perf_counter() - started
    assert "plan" not in reused.__dict__  # nothing was split
    return psql_s, cold_s, seed_file.plan.seconds, warm_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-bin", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clinicdb-bench-seed-"))
    root.chmod(0o755)
    try:
        binaries = make_reachable(find_binaries(args.pg_bin), server_account(None), root)
        psql = binaries.tool("psql")
        seed = root / "big_seed.sql"
        write_seed(seed, args.rows)
        size = seed.stat().st_size
        results = []
        with (
            throwaway_server(binaries, root) as dsn,
            psycopg.connect(dsn, autocommit=True) as admin,
        ):
            admin.execute("CREATE DATABASE bench_schema")
            with psycopg.connect(dsn_for(dsn, "bench_schema"), autocommit=True) as conn:
                conn.execute(SCHEMA)
            for _ in range(args.rounds):
                results.append(one_round(admin, dsn, psql, seed, args.rows))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    psql_s, cold_s, split_s, warm_s = (
        statistics.median(col) for col in zip(*results, strict=False)
    )
    print(f"{binaries.describe()}")
    print(f"seed: {args.rows:,} single-row INSERTs ({size / 1e6:.1f} MB)")
    print(f"medians of {args.rounds} rounds, side by side on one server:")
    print(f"  psql -1 -f                        {psql_s:8.3f} s")
    print(f"  ours, cold (read + split + run)   {cold_s:8.3f} s   (split: {split_s:.3f} s)")
    print(f"  ours, warm (reused template)      {warm_s:8.3f} s   (read + hash, nothing split)")
    print(f"  ratio ours cold / psql            {cold_s / psql_s:8.2f}")


if __name__ == "__main__":
    main()
