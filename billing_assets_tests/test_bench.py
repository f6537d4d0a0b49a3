"""``make bench`` end to end at a small size: it must keep running, and its two sides must agree."""

import os
import re
import subprocess
import sys

from billing_assets.bench import _fastest


def test_the_benchmark_runs_and_both_sides_meter_the_same_day(bucket):
    output = subprocess.run(
        [sys.executable, "-m", "billing_assets.bench", "--events", "20000", "--customers", "100",
         "--invoicing-customers", "50", "--rounds", "2"],
        check=True, capture_output=True, text=True, env=os.environ, timeout=300,
    ).stdout.splitlines()
    assert [line.split(":")[0] for line in output if line.startswith("round")] == ["round 1", "round 2"]
    ours = re.search(r"\((?P<accepted>[\d,]+) accepted, (?P<duplicates>[\d,]+) duplicates, (?P<rows>[\d,]+) metered rows\)",
                     next(line for line in output if line.startswith("ours")))
    duckdb = re.search(r"\((?P<rows>[\d,]+) customer × meter rows\)", next(line for line in output if line.startswith("duckdb")))

    def number(text: str) -> int:
        return int(text.replace(",", ""))

    # every landed event is accepted or a duplicate (the benchmark lands clean lines), and
    # DuckDB's GROUP BY finds as many customer × meter pairs as our metering
    assert number(ours["accepted"]) + number(ours["duplicates"]) == 20_000
    assert number(ours["duplicates"]) > 0
    assert number(ours["rows"]) == number(duckdb["rows"]) > 0
    assert re.fullmatch(r"ingest_meter_vs_duckdb_throughput_ratio=\d+\.\d\d peak_rss_ratio=\d+\.\d\d", output[-1])


def test_each_side_counts_its_fastest_round_and_its_highest_peak():
    rounds = [{"seconds": 3.0, "peak_rss_mib": 900.0, "round": 1}, {"seconds": 2.5, "peak_rss_mib": 850.0, "round": 2},
              {"seconds": 2.7, "peak_rss_mib": 990.0, "round": 3}]
    assert _fastest(rounds) == {"seconds": 2.5, "peak_rss_mib": 990.0, "round": 2}
