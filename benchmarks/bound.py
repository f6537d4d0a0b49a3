"""What issue 13's target leaves room for: two costs no ``billing run`` can go below, against
the DuckDB one-liner ``make bench`` compares it with, on the same day in the same run.

- **The exact read**: every object inflated and read by the bare Arrow JSON reader that the
  ingest's exact parse is built on (quantity straight into decimal(38, 9), five columns, no
  checks, nothing written), two objects at once on this machine's two cores. DuckDB's own
  reader is not exact (SCALE_NOTES.md §2; a ``JSON`` column too renders numbers through a
  double), so this is the fastest exact read of the day we have.
- **Dagster doing nothing**: a fresh process on a fresh ``DAGSTER_HOME`` running jobs of no-op
  assets and blocking checks, as many steps as the three jobs ``billing run`` executes.

A throughput ratio of 0.5 means the whole run in at most twice the one-liner's time; the last
line says how much of that budget the two costs leave (``left_s``, negative: none). These are
parts of a run, not a result: the result is ``make bench``.

    make bench-bound BENCH_ARGS="--events 10000000"
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from benchmarks.day import BenchDay
from benchmarks.job import DUCKDB_QUERY, bench_day

BILLING_RUN_JOBS = ("reference_job", "daily_usage_job", "monthly_billing_job")


def job_steps() -> list[int]:
    """How many steps (assets and check groups) each job of ``billing run`` executes."""
    with warnings.catch_warnings():  # the definitions' beta and preview notices say nothing here
        warnings.simplefilter("ignore")
        from billing_assets.definitions import defs
    return [len(list(defs.resolve_job_def(name).nodes_in_topological_order)) for name in BILLING_RUN_JOBS]


def write_day(day: BenchDay, folder: Path) -> list[Path]:
    paths = []
    for key, body in day.objects():
        paths.append(folder / key.rsplit("/", 1)[1])
        paths[-1].write_bytes(body)
    return paths


def duckdb_one_liner(folder: Path) -> tuple[int, Decimal]:
    """The peer of ``make bench``: (events kept, their total quantity)."""
    import duckdb

    rows = duckdb.sql(DUCKDB_QUERY.format(folder=folder)).fetchall()
    return sum(row[3] for row in rows), sum((row[2] for row in rows), Decimal(0))


def exact_read(paths: list[Path]) -> tuple[int, Decimal]:
    """Every line of every object read exactly, by the very reader call of the ingest's exact
    path: (lines, total quantity), duplicates included."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from billing_assets.usage.ingest.parse import EXACT_QUANTITY_SCHEMA, _read_json_once

    def read(path: Path) -> pa.Table:
        text = zlib.decompress(path.read_bytes(), zlib.MAX_WBITS | 16)
        return _read_json_once(pa.py_buffer(text), EXACT_QUANTITY_SCHEMA)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        tables = list(pool.map(read, paths))
    total = sum((pc.sum(table.column("quantity")).as_py() or Decimal(0) for table in tables), Decimal(0))
    return sum(table.num_rows for table in tables), total


_NOOP = r"""
import sys
import dagster as dg

def job_of(name, steps):
    assets, checks, previous = [], [], None
    for number in range((steps + 1) // 2):
        key = f"{name}_{number}"

        @dg.asset(name=key, deps=[previous] if previous else [])
        def noop() -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata={"rows": 0})

        assets.append(noop)
        previous = key
        if len(assets) + len(checks) < steps:
            @dg.asset_check(asset=key, name=f"{key}_holds", blocking=True)
            def holds() -> dg.AssetCheckResult:
                return dg.AssetCheckResult(passed=True)

            checks.append(holds)
    return assets, checks

built = [(f"job{index}", *job_of(f"job{index}", int(steps))) for index, steps in enumerate(sys.argv[1].split(","))]
defs = dg.Definitions(assets=[a for _, assets, _ in built for a in assets],
                      asset_checks=[c for _, _, checks in built for c in checks],
                      jobs=[dg.define_asset_job(name, selection=[a.key for a in assets]) for name, assets, _ in built])
instance = dg.DagsterInstance.get()
for name, _, _ in built:
    assert defs.resolve_job_def(name).execute_in_process(instance=instance).success
"""


def dagster_noop(steps: list[int], home: Path) -> float:
    """Seconds of a whole process running no-op jobs of ``steps`` steps on a fresh instance."""
    env = os.environ | {"DAGSTER_HOME": str(home)}
    home.mkdir()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _NOOP, ",".join(map(str, steps))], check=True, env=env,
                   capture_output=True, timeout=600)
    return time.perf_counter() - started


def _timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements; the fastest of each counts")
    args = parser.parse_args()
    steps = job_steps()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        day_folder = folder / "day"
        day_folder.mkdir()
        paths = write_day(BenchDay(bench_day(), args.events, args.customers, "clean"), day_folder)
        print(f"a clean day of {args.events:,} events in {len(paths)} objects; billing run's jobs: "
              f"{', '.join(f'{name} {count} steps' for name, count in zip(BILLING_RUN_JOBS, steps))}", flush=True)
        duck, read, noop = [], [], []
        for number in range(1, args.rounds + 1):
            seconds, (kept, duck_total) = _timed(lambda: duckdb_one_liner(day_folder))
            duck.append(seconds)
            seconds, (lines, read_total) = _timed(lambda: exact_read(paths))
            read.append(seconds)
            noop.append(dagster_noop(steps, folder / f"home-{number}"))
            print(f"  round {number}: duckdb one-liner {duck[-1]:.2f} s ({kept:,} events, quantity {duck_total}), "
                  f"exact read {read[-1]:.2f} s ({lines:,} lines, quantity {read_total}), "
                  f"dagster no-op {noop[-1]:.2f} s", flush=True)
    best = {"duckdb": min(duck), "read": min(read), "noop": min(noop)}
    budget = 2 * best["duckdb"]
    print(f"fastest of {args.rounds} rounds each; a throughput ratio of 0.5 allows {budget:.2f} s for the whole run")
    print(f"exact_read_vs_duckdb={best['duckdb'] / best['read']:.2f} duckdb_s={best['duckdb']:.2f} "
          f"exact_read_s={best['read']:.2f} dagster_noop_s={best['noop']:.2f} "
          f"left_s={budget - best['read'] - best['noop']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
