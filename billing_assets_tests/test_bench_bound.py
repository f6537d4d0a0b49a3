"""``make bench-bound`` at a small size: both reads must see the whole day, and the Dagster
no-op must run as many steps as ``billing run``'s jobs."""

import gzip
import json
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

from benchmarks.bound import duckdb_one_liner, exact_read, job_steps, write_day
from benchmarks.day import BenchDay

ROOT = Path(__file__).resolve().parents[1]


def test_the_exact_read_and_duckdb_each_read_every_event_of_the_day(tmp_path):
    day = BenchDay(date(2026, 3, 4), 2_000, 40, "clean")
    paths = write_day(day, tmp_path)
    lines = [json.loads(line, parse_float=Decimal) for path in paths
             for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    # the day's own lines, counted by Python's reader: every 100th repeats the one before it
    assert len(lines) == 2_000
    firsts = {line["event_id"]: Decimal(line["quantity"]) for line in lines}
    assert len(firsts) == 1_980
    assert exact_read(paths) == (2_000, sum((Decimal(line["quantity"]) for line in lines), Decimal(0)))
    assert duckdb_one_liner(tmp_path) == (1_980, sum(firsts.values(), Decimal(0)))


def test_billing_runs_jobs_are_counted_step_by_step():
    steps = job_steps()
    # reference_job is one asset; the daily and monthly jobs are many assets and their checks
    assert len(steps) == 3 and steps[0] == 1 and min(steps[1:]) > 10


def test_the_bound_prints_what_the_target_leaves(tmp_path):
    output = subprocess.run([sys.executable, "-m", "benchmarks.bound", "--events", "3000", "--customers", "50",
                             "--rounds", "1"], check=True, capture_output=True, text=True, timeout=600,
                            cwd=ROOT).stdout.splitlines()
    assert "3,000 lines" in output[-3] and "2,970 events" in output[-3]
    assert re.fullmatch(r"exact_read_vs_duckdb=\d+\.\d\d duckdb_s=\d+\.\d\d exact_read_s=\d+\.\d\d "
                        r"dagster_noop_s=\d+\.\d\d left_s=-?\d+\.\d\d", output[-1])
