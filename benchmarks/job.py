"""``make bench``: the job as users run it, against a DuckDB one-liner on the same S3 objects.

For each shape of day (clean; about a third of the lines quarantined, some of every reason;
200 small objects beside 8 large ones) it lands the day in the embedded S3 server (a bucket of
its own) and then alternates, for a few rounds, two child processes:
  (a) ours: ``billing run --from D --to D`` (D: yesterday) on a fresh DAGSTER_HOME — the reference job, the
      daily job with every blocking check, the monthly job, the summary: the whole process;
  (b) DuckDB: fetch the same objects through boto3, then one query that reads them, keeps the
      first of each (source, event_id) and sums quantity per customer and meter. DuckDB cannot
      skip an unreadable object, so it reads the others (the day says which it is).
Each side counts its fastest round (a shared VM's speed wanders by 20 % and more within a
minute) and its highest peak RSS (from ``wait4``: the child's own high-water mark). Linux hands a
child the high-water mark of the process it was forked from, and this one holds a generated day
of millions of lines: both sides are therefore started by a small spawner process begun before
anything is generated, so that neither inherits the generator's memory.
The last line is machine-readable:
  job_vs_duckdb_throughput_ratio=X peak_rss_ratio=Y peak_rss_mb=Z
X is the worst shape's events/s ratio, Y the worst shape's RSS ratio, Z our largest peak RSS.
Above it, per shape, the same two sides on a small day of that shape (``--floor-events``, in
a bucket of its own): what a run costs whatever the day's size (start-up, the reference job,
every step and check, the month's invoices for every customer), and what each further event
costs beyond it — which says how much of the gap a faster ingest alone could close.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from benchmarks.day import SHAPES, BenchDay

DUCKDB_QUERY = """
    SELECT customer_id, meter, sum(quantity) AS quantity, count(*) AS events FROM (
        SELECT DISTINCT ON (source, event_id) source, event_id, customer_id, meter, quantity
        FROM read_json('{folder}/*.jsonl.gz', format = 'newline_delimited', ignore_errors = true,
                       columns = {{event_id: 'VARCHAR', source: 'VARCHAR', timestamp: 'VARCHAR', meter: 'VARCHAR',
                                  customer_id: 'VARCHAR', quantity: 'DECIMAL(38, 9)'}}))
    GROUP BY customer_id, meter"""


def bench_day() -> date:
    """Yesterday: the day users run every day (its month still open, so invoices are drafts; the
    month-close run that issues documents is once a month, not what a day of traffic costs)."""
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def measure_duckdb(bucket: str, prefix: str, skip: list[str]) -> dict:
    """The peer: what a DuckDB user would type, fed by the same S3 objects but for ``skip``
    (the day's unreadable ones, which stop DuckDB's reader)."""
    import boto3
    import duckdb

    client = boto3.client("s3")
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", []) if item["Key"] not in skip]
    with tempfile.TemporaryDirectory() as folder:
        def fetch(key: str) -> None:
            Path(folder, key.rsplit("/", 1)[1]).write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, keys))
        rows = duckdb.sql(DUCKDB_QUERY.format(folder=folder)).fetchall()
    return {"rows": len(rows), "events": sum(row[3] for row in rows)}


_SPAWNER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    request = json.loads(line)
    with open(request["output"], "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(request["command"], stdout=out, stderr=subprocess.STDOUT, env=request["env"],
                                 stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mib": usage.ru_maxrss / 1024,
                      "code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class _Spawner:
    """Starts the measured children from a process that holds nothing (see the module's notes)."""

    process: subprocess.Popen | None = None

    @classmethod
    def start(cls) -> None:
        cls.process = subprocess.Popen([sys.executable, "-c", _SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)

    @classmethod
    def run(cls, command: list[str], env: dict, output: str) -> dict:
        if cls.process is None:
            cls.start()
        cls.process.stdin.write(json.dumps({"command": command, "env": env, "output": output}) + "\n")
        cls.process.stdin.flush()
        return json.loads(cls.process.stdout.readline())


def _timed(command: list[str], env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of one child process, which must succeed."""
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "output")
        measured = _Spawner.run(command, dict(env), output)
        text = Path(output).read_bytes().decode(errors="replace")
    if measured["code"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {measured['code']}:\n{text[-3000:]}")
    return measured["seconds"], measured["peak_rss_mib"], text


def run_ours(day: BenchDay, bucket: str, home: Path) -> dict:
    """``billing run`` over the bench day, as a user types it, on a fresh instance."""
    env = os.environ | {"BILLING_BUCKET": bucket, "DAGSTER_HOME": str(home)}
    billing = Path(sys.executable).with_name("billing")
    day = day.day.isoformat()
    seconds, rss, text = _timed([str(billing), "run", "--from", day, "--to", day], env)
    return {"seconds": seconds, "peak_rss_mib": rss, "summary": _total_line(text)}


def run_duckdb(day: BenchDay, bucket: str) -> dict:
    env = os.environ | {"BILLING_BUCKET": bucket}
    request = json.dumps({"bucket": bucket, "prefix": day.prefix, "skip": day.unreadable_keys()})
    seconds, rss, text = _timed([sys.executable, "-m", "benchmarks.job", "--measure-duckdb", request], env)
    return {"seconds": seconds, "peak_rss_mib": rss} | json.loads(text.strip().splitlines()[-1])


def _total_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("total")), "")


def land(day: BenchDay, bucket: str) -> int:
    """Put the day's reference files and objects into ``bucket``; returns the bytes landed."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    landed = 0
    for key, body in [*day.reference().items(), *day.objects()]:
        client.put_object(Bucket=bucket, Key=key, Body=body)
        landed += len(body)
    return landed


def _fastest(measurements: list[dict]) -> dict:
    return min(measurements, key=lambda measured: measured["seconds"]) | {
        "peak_rss_mib": max(measured["peak_rss_mib"] for measured in measurements)}


def _measured(day: BenchDay, bucket: str, rounds: int, state: Path, label: str) -> tuple[dict, dict]:
    """Each side's fastest round on ``day`` (already landed in ``bucket``), the rounds alternating."""
    measured = []
    for number in range(1, rounds + 1):
        ours = run_ours(day, bucket, state / f"home-{bucket}-{number}")
        duck = run_duckdb(day, bucket)
        measured.append((ours, duck))
        print(f"  {label} {number}: ours {ours['seconds']:.2f} s ({ours['peak_rss_mib']:.0f} MiB), "
              f"duckdb {duck['seconds']:.2f} s ({duck['peak_rss_mib']:.0f} MiB)", flush=True)
    return tuple(_fastest([pair[side] for pair in measured]) for side in (0, 1))


def seconds_an_event_beyond(events: int, seconds: float, floor_events: int, floor_seconds: float) -> float | None:
    """What each event past the small day's cost: the difference of two whole runs over the
    difference of their sizes. None when it cannot be told (no more events, or a run no slower)."""
    if events <= floor_events or seconds <= floor_seconds:
        return None
    return (seconds - floor_seconds) / (events - floor_events)


def bench_shape(day: BenchDay, rounds: int, state: Path, floor_events: int = 0) -> dict:
    bucket = f"bench-{day.shape.replace('_', '-')}"
    started = time.perf_counter()
    size = land(day, bucket)
    print(f"{day.shape}: landed {day.events:,} events in {len(day.object_lines())} objects "
          f"({size / 2**20:,.0f} MiB gzip) in {time.perf_counter() - started:.1f} s", flush=True)
    ours, duck = _measured(day, bucket, rounds, state, "round")
    floor = None
    if 0 < floor_events < day.events:
        small = BenchDay(day.day, floor_events, day.customers, day.shape)
        land(small, f"{bucket}-floor")
        floor = _measured(small, f"{bucket}-floor", rounds, state, "floor")
    result = {"shape": day.shape, "ours": ours, "duckdb": duck,
              "ratio": duck["seconds"] / ours["seconds"], "rss_ratio": ours["peak_rss_mib"] / duck["peak_rss_mib"]}
    print(f"  ours  : {ours['seconds']:7.2f} s {day.events / ours['seconds']:12,.0f} events/s  peak RSS "
          f"{ours['peak_rss_mib']:6.0f} MiB   {ours['summary']}")
    print(f"  duckdb: {duck['seconds']:7.2f} s {day.events / duck['seconds']:12,.0f} events/s  peak RSS "
          f"{duck['peak_rss_mib']:6.0f} MiB   ({duck['rows']:,} customer × meter rows, {duck['events']:,} events)")
    if floor is not None:
        print(f"  floor : ours {floor[0]['seconds']:.2f} s, duckdb {floor[1]['seconds']:.2f} s on a day of "
              f"{floor_events:,} events of this shape: what a run costs whatever the day's size")
        beyond = [seconds_an_event_beyond(day.events, side["seconds"], floor_events, small_side["seconds"])
                  for side, small_side in zip((ours, duck), floor)]
        shown = [f"{value * 1e6:.2f} µs" if value is not None else "n/a" for value in beyond]
        ratio = f"{beyond[1] / beyond[0]:.3f}" if None not in beyond else "n/a"
        print(f"  beyond the floor: ours {shown[0]} an event, duckdb {shown[1]}: ratio {ratio}")
    print(f"  {day.shape}: throughput ratio {result['ratio']:.3f}, peak RSS ratio {result['rss_ratio']:.2f}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating measurements of each side, per shape")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--floor-events", type=int, default=100_000,
                        help="events of the small day each shape is also timed on (0: none)")
    parser.add_argument("--measure-duckdb", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_duckdb:
        print(json.dumps(measure_duckdb(**json.loads(args.measure_duckdb))))
        return 0
    _Spawner.start()  # before anything is generated: the children inherit its high-water mark

    from billing_assets.cli import _use_embedded_s3
    from billing_assets.demo.embedded_s3 import stop_server

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        own_server = _use_embedded_s3(state)
        day = bench_day()
        print(f"bench day {day}: {args.events:,} events, ~{args.customers:,} customers, {args.rounds} rounds "
              f"per shape, S3 at {os.environ['AWS_ENDPOINT_URL']}", flush=True)
        try:
            results = [bench_shape(BenchDay(day, args.events, args.customers, shape), args.rounds, state,
                                   args.floor_events)
                       for shape in args.shapes.split(",")]
        finally:
            if own_server:
                stop_server(state)
    print(f"fastest of {args.rounds} rounds per side and shape; peak RSS the highest of them")
    worst = min(results, key=lambda result: result["ratio"])
    print(f"job_vs_duckdb_throughput_ratio={worst['ratio']:.3f} "
          f"peak_rss_ratio={max(result['rss_ratio'] for result in results):.2f} "
          f"peak_rss_mb={max(result['ours']['peak_rss_mib'] for result in results):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
