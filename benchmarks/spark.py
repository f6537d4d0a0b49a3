"""``make bench-spark``: one day through ``billing run`` on each engine — local, Spark in
``local[1]`` and in ``local[2]`` — as users run it (the whole process, every blocking check),
on the same objects in the embedded S3, alternating for a few rounds.

Peak RSS is the whole process tree's (the Dagster process, the Pipes subprocess, Spark's JVM
and its Python workers), sampled from /proc every 0.1 s: Spark's memory is spread over processes
that no single ``wait4`` high-water mark sees. Session start-up is what the Spark job reported
through Pipes (``spark/session_start_seconds`` on the usage_events materialisation).
The last line is machine-readable:
  spark_local2_vs_local_throughput_ratio=X spark_local2_vs_local1_speedup=Y session_start_s=Z
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.day import BenchDay
from benchmarks.job import bench_day, land

ENGINES = {"local": {"BILLING_ENGINE": "local"},
           "spark local[1]": {"BILLING_ENGINE": "spark", "BILLING_SPARK_MASTER": "local[1]"},
           "spark local[2]": {"BILLING_ENGINE": "spark", "BILLING_SPARK_MASTER": "local[2]"}}


def _tree_rss_mib(root: int) -> float:
    """The resident memory of ``root`` and every process below it, now."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    pending += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 2**20


def run_engine(day: BenchDay, bucket: str, home: Path, engine: str) -> dict:
    env = os.environ | {"BILLING_BUCKET": bucket, "DAGSTER_HOME": str(home)} | ENGINES[engine]
    billing = Path(sys.executable).with_name("billing")
    started = time.perf_counter()
    process = subprocess.Popen([str(billing), "run", "--from", day.day.isoformat(), "--to", day.day.isoformat()],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_mib(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"billing run ({engine}) exited {process.returncode}:\n{output[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": peak[0], "session_start": _session_start(home)}


def _session_start(home: Path) -> float | None:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)  # the instance's dagster.yaml names its home through it
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("usage_events"))
        value = event.asset_materialization.metadata.get("spark/session_start_seconds") if event else None
        return value.value if value is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shape", default="many_objects", help="clean, quarantined or many_objects")
    args = parser.parse_args(argv)

    from billing_assets.cli import _use_embedded_s3
    from billing_assets.demo.embedded_s3 import stop_server

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        own_server = _use_embedded_s3(state)
        day = BenchDay(bench_day(), args.events, args.customers, args.shape)
        try:
            size = land(day, "bench-spark")
            print(f"bench day {day.day}: {day.events:,} events ({args.shape}) in {len(day.object_lines())} objects "
                  f"({size / 2**20:,.0f} MiB gzip), {args.rounds} rounds, {os.cpu_count()} cores", flush=True)
            measured: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
            for number in range(1, args.rounds + 1):
                for engine in ENGINES:
                    result = run_engine(day, "bench-spark", state / f"home-{number}-{engine[-2]}", engine)
                    measured[engine].append(result)
                    print(f"  round {number} {engine:15}: {result['seconds']:7.2f} s, peak RSS "
                          f"{result['peak_rss_mib']:6.0f} MiB", flush=True)
        finally:
            if own_server:
                stop_server(state)
    best = {engine: min(results, key=lambda r: r["seconds"]) | {"peak_rss_mib": max(r["peak_rss_mib"] for r in results)}
            for engine, results in measured.items()}
    print("fastest round per engine; peak RSS the highest of its rounds (whole process tree)")
    for engine, result in best.items():
        start = f", Spark session start {result['session_start']:.1f} s" if result["session_start"] else ""
        print(f"  {engine:15}: {result['seconds']:7.2f} s {day.events / result['seconds']:10,.0f} events/s  "
              f"peak RSS {result['peak_rss_mib']:6.0f} MiB{start}")
    local, one, two = (best[engine]["seconds"] for engine in ENGINES)
    starts = [r["session_start"] for r in best.values() if r["session_start"]]
    print(f"spark_local2_vs_local_throughput_ratio={local / two:.3f} spark_local2_vs_local1_speedup={one / two:.2f} "
          f"session_start_s={min(starts):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
