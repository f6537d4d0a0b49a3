"""``make bench`` end to end at a small size: it must keep running, and both sides must read the same day."""

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.job import _fastest, seconds_an_event_beyond

ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ runs from the repository root


def test_the_benchmark_times_billing_run_per_shape_against_duckdb(bucket):
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.job", "--events", "3000", "--customers", "50", "--rounds", "1",
         "--shapes", "clean,quarantined", "--floor-events", "300"],  # many_objects is clean's day in more objects: `make bench` runs it
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
    # each shape also timed on a small day of its own, and what an event costs past it
    floors = [line for line in output if line.strip().startswith("floor :")]
    assert len(floors) == 2 and all("on a day of 300 events" in line for line in floors)
    assert len([line for line in output if line.strip().startswith("beyond the floor:")]) == 2
    assert re.fullmatch(r"job_vs_duckdb_throughput_ratio=\d+\.\d{3} peak_rss_ratio=\d+\.\d\d peak_rss_mb=\d+", output[-1])


def test_each_side_counts_its_fastest_round_and_its_highest_peak():
    rounds = [{"seconds": 3.0, "peak_rss_mib": 900.0, "round": 1}, {"seconds": 2.5, "peak_rss_mib": 850.0, "round": 2},
              {"seconds": 2.7, "peak_rss_mib": 990.0, "round": 3}]
    assert _fastest(rounds) == {"seconds": 2.5, "peak_rss_mib": 990.0, "round": 2}


def test_what_an_event_costs_beyond_the_small_day():
    # 10M events in 47 s against 100k in 17.8 s: 29.2 s for 9.9M more events, 2.9495 µs each
    assert abs(seconds_an_event_beyond(10_000_000, 47.0, 100_000, 17.8) - 29.2 / 9_900_000) < 1e-15
    assert round(seconds_an_event_beyond(10_000_000, 47.0, 100_000, 17.8) * 1e6, 4) == 2.9495
    # no more events than the small day, or a run no slower than it (noise): nothing to tell
    assert seconds_an_event_beyond(100_000, 47.0, 100_000, 17.8) is None
    assert seconds_an_event_beyond(10_000_000, 17.0, 100_000, 17.8) is None
