"""``make bench`` end to end at a small size: it must keep running, and both sides must read the same day."""

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.job import _fastest

ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ runs from the repository root


def test_the_benchmark_times_billing_run_per_shape_against_duckdb(bucket):
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.job", "--events", "3000", "--customers", "50", "--rounds", "1",
         "--shapes", "clean,quarantined"],  # many_objects is clean's day in more objects: `make bench` runs it
        check=True, capture_output=True, text=True, env=os.environ, timeout=600, cwd=ROOT,
    ).stdout.splitlines()

    def shape_lines(shape: str) -> tuple[list[int], int]:
        start = output.index(next(line for line in output if line.startswith(f"{shape}: landed")))
        ours = next(line for line in output[start:] if line.strip().startswith("ours"))
        duck = next(line for line in output[start:] if line.strip().startswith("duckdb"))
        totals = [int(number) for number in ours.split("total")[1].split()[:4]]
        return totals, int(re.search(r"([\d,]+) events\)", duck).group(1).replace(",", ""))

    # clean: every line accepted or a duplicate (one line in a hundred repeats its predecessor),
    # and DuckDB's first-of-each count is our accepted count
    (lines, accepted, duplicates, quarantined), duck_events = shape_lines("clean")
    assert (lines, accepted, duplicates, quarantined) == (3000, 2970, 30, 0) and duck_events == accepted
    # quarantined: a third of the customers have no contract; nothing is lost
    (lines, accepted, duplicates, quarantined), _ = shape_lines("quarantined")
    assert lines == 3000 and accepted + duplicates + quarantined == lines and quarantined > 1000
    assert re.fullmatch(r"job_vs_duckdb_throughput_ratio=\d+\.\d{3} peak_rss_ratio=\d+\.\d\d peak_rss_mb=\d+", output[-1])


def test_each_side_counts_its_fastest_round_and_its_highest_peak():
    rounds = [{"seconds": 3.0, "peak_rss_mib": 900.0, "round": 1}, {"seconds": 2.5, "peak_rss_mib": 850.0, "round": 2},
              {"seconds": 2.7, "peak_rss_mib": 990.0, "round": 3}]
    assert _fastest(rounds) == {"seconds": 2.5, "peak_rss_mib": 990.0, "round": 2}
