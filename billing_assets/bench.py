"""``make bench``: the project's ingest+meter against a DuckDB query on the same S3 objects.

Lands N events (gzip JSONL, one day) in the embedded S3 server, then measures, each in a
fresh child process so peak RSS is its own:
  (a) ours: list + fetch every object through boto3, ingest (§2–§4) and meter the day;
  (b) DuckDB: fetch the same objects through boto3, then one query that reads them, dedupes
      on event_id and sums quantity per customer and meter.
The two alternate for a few rounds and each side's fastest round counts (its peak RSS is the
highest of its rounds): a shared VM's speed wanders by 20 % and more within a minute.
It also rates and invoices a month for 100,000 customers × 5 meters (a figure, not a test).
The last line is machine-readable: ingest_meter_vs_duckdb_throughput_ratio=X peak_rss_ratio=Y.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH_DAY = date(2026, 9, 15)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ours() -> dict:
    from billing_assets.lib.lake import BillingLake
    from billing_assets.metering.aggregate import meter_day
    from billing_assets.reference.loading import load_reference
    from billing_assets.resources import billing_lake
    from billing_assets.usage.assets import ingest_day

    lake: BillingLake = billing_lake()
    reference = load_reference(lake.get_bytes_or_none)
    started = time.perf_counter()
    result = ingest_day(lake, BENCH_DAY.isoformat(), reference)
    metered = meter_day(BENCH_DAY, result.events, reference.meter_aggregation())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "lines": result.lines_read, "accepted": result.events.num_rows,
            "duplicates": result.duplicates.num_rows, "rows": metered.num_rows, "peak_rss_mib": _peak_rss_mib()}


def measure_duckdb() -> dict:
    import duckdb

    from billing_assets.resources import billing_lake
    from billing_assets.usage.assets import raw_prefix

    lake = billing_lake()
    started = time.perf_counter()
    keys = [item.key for item in lake.list_objects(raw_prefix(BENCH_DAY.isoformat()))]
    with tempfile.TemporaryDirectory() as folder:
        for key, body in zip(keys, lake.get_many(keys)):
            Path(folder, key.rsplit("/", 1)[1]).write_bytes(body)
        rows = duckdb.sql(f"""
            SELECT customer_id, meter, sum(quantity) AS quantity, count(*) AS events FROM (
                SELECT event_id, any_value(customer_id) AS customer_id, any_value(meter) AS meter,
                       any_value(quantity) AS quantity
                FROM read_json('{folder}/*.jsonl.gz', format = 'newline_delimited',
                               columns = {{event_id: 'VARCHAR', timestamp: 'VARCHAR', meter: 'VARCHAR',
                                          customer_id: 'VARCHAR', quantity: 'DECIMAL(38, 9)'}})
                GROUP BY event_id)
            GROUP BY customer_id, meter""").fetchall()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(rows), "lines": None, "peak_rss_mib": _peak_rss_mib()}


def measure_invoicing(customers: int) -> dict:
    """Rate and invoice one month for ``customers`` customers × 5 meters (one metered day each)."""
    from datetime import datetime, timezone
    from decimal import Decimal

    import pyarrow as pa

    from billing_assets.demo.synthetic import bench_reference
    from billing_assets.invoicing.build import build_invoices
    from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
    from billing_assets.rating.rate import rate_month
    from billing_assets.reference.loading import load_reference

    started = time.perf_counter()
    reference = load_reference(bench_reference(customers).get)
    loaded = time.perf_counter()
    rules = reference.meter_aggregation()
    at = datetime(BENCH_DAY.year, BENCH_DAY.month, BENCH_DAY.day, tzinfo=timezone.utc)
    metered = pa.Table.from_pylist([
        {"day": BENCH_DAY, "customer_id": f"cust-{index:05d}", "meter": meter, "aggregation": rules[meter],
         "quantity": Decimal(index % 977) + Decimal("0.5"), "event_count": 3,
         "latest_timestamp": at if rules[meter] == "latest" else None,
         "latest_event_id": "e1" if rules[meter] == "latest" else None, "distinct_values": None}
        for index in range(customers) for meter in ("api_requests", "egress_gb", "storage_gb_hours", "build_minutes", "seats")
    ], schema=METERED_USAGE_SCHEMA)
    rating = time.perf_counter()
    month = BENCH_DAY.isoformat()[:7]
    rated = rate_month(month, metered, reference)
    invoices = build_invoices(month, rated, reference)
    done = time.perf_counter()
    return {"seconds": done - rating, "reference_seconds": loaded - started, "rated_lines": rated.num_rows,
            "invoices": len(invoices), "peak_rss_mib": _peak_rss_mib()}


def land(events: int, customers: int) -> None:
    from billing_assets.demo.embedded_s3 import land as land_objects
    from billing_assets.demo.synthetic import bench_objects, bench_reference

    land_objects(bench_reference(customers) | bench_objects(events, customers, BENCH_DAY))


def _child(which: str, *extra: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "billing_assets.bench", "--measure", which, *extra],
                            check=True, capture_output=True, text=True, env=os.environ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _fastest(measurements: list[dict]) -> dict:
    return min(measurements, key=lambda measured: measured["seconds"]) | {
        "peak_rss_mib": max(measured["peak_rss_mib"] for measured in measurements)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoicing-customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements of each side")
    parser.add_argument("--measure", choices=["ours", "duckdb", "invoicing"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measured = {"ours": measure_ours, "duckdb": measure_duckdb,
                    "invoicing": lambda: measure_invoicing(args.invoicing_customers)}[args.measure]()
        print(json.dumps(measured))
        return 0

    from billing_assets.cli import _use_embedded_s3

    with tempfile.TemporaryDirectory() as state:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            os.environ["BILLING_BUCKET"] = "billing-bench"
        _use_embedded_s3(Path(state))
        print(f"landing {args.events:,} events for ~{args.customers:,} customers at {os.environ['AWS_ENDPOINT_URL']} …")
        land(args.events, args.customers)
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append((_child("ours"), _child("duckdb")))
            print(f"round {number}: ours {rounds[-1][0]['seconds']:.2f} s, duckdb {rounds[-1][1]['seconds']:.2f} s", flush=True)
        ours, duck = (_fastest([measured[side] for measured in rounds]) for side in (0, 1))
        if not os.environ.get("BILLING_BENCH_KEEP_S3"):
            from billing_assets.demo.embedded_s3 import stop_server

            stop_server(Path(state))
    invoicing = _child("invoicing", "--invoicing-customers", str(args.invoicing_customers))
    print(f"invoicing: {args.invoicing_customers:,} customers × 5 meters rated and invoiced in "
          f"{invoicing['seconds']:.1f} s ({invoicing['rated_lines']:,} rated lines, {invoicing['invoices']:,} invoices; "
          f"reference data loaded in {invoicing['reference_seconds']:.1f} s; peak RSS {invoicing['peak_rss_mib']:.0f} MiB)")
    ours_rate, duck_rate = args.events / ours["seconds"], args.events / duck["seconds"]
    print(f"fastest of {args.rounds} rounds each; peak RSS the highest of them")
    print(f"ours   : {ours['seconds']:7.2f} s  {ours_rate:12,.0f} events/s  peak RSS {ours['peak_rss_mib']:7.0f} MiB"
          f"  ({ours['accepted']:,} accepted, {ours['duplicates']:,} duplicates, {ours['rows']:,} metered rows)")
    print(f"duckdb : {duck['seconds']:7.2f} s  {duck_rate:12,.0f} events/s  peak RSS {duck['peak_rss_mib']:7.0f} MiB"
          f"  ({duck['rows']:,} customer × meter rows)")
    print(f"ingest_meter_vs_duckdb_throughput_ratio={ours_rate / duck_rate:.2f} "
          f"peak_rss_ratio={ours['peak_rss_mib'] / duck['peak_rss_mib']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
