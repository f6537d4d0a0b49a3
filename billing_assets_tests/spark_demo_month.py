"""The demo month on both engines (CONTRACT.md §10): `billing run` over the month with
``--engine local``, then again over the same objects with ``--engine spark`` (an instance each),
every table partition, issued document and quarantine record compared after each
(``crash_points.digest``: rows, not bytes), and every check result per partition. One bucket:
a rejected line's detail names when its object landed, so the objects must be the same ones.

`python -m billing_assets_tests.spark_demo_month` (`make spark-demo-check`); the test suite
compares generated days instead (spark/test_pipes.py, spark/test_stages.py)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import dagster as dg

from billing_assets_tests.crash_points import digest


def run_month(engine: str, state: Path) -> tuple[int, dict, dict]:
    from billing_assets.cli import instance, run, seed_demo
    from billing_assets.demo.synthetic import DEMO_MONTH

    os.environ |= {"BILLING_BUCKET": "demo-engines", "BILLING_ENGINE": engine,
                   "DAGSTER_HOME": str(state / f"home-{engine}")}
    with instance():
        pass  # the home and its dagster.yaml
    if engine == "local":  # landed once: landing again would give the objects new LastModified
        seed_demo(include_late=False)
    summary = run(DEMO_MONTH, DEMO_MONTH.replace(day=31))
    with dg.DagsterInstance.get() as dagster_instance:
        checks = {}
        for record in dagster_instance.get_event_records(
                dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)):
            data = record.event_log_entry.dagster_event.asset_check_evaluation_data
            checks[(data.asset_key.to_user_string(), data.check_name, data.partition)] = data.passed
    return summary.status, digest("demo-engines"), checks


def main() -> int:
    from billing_assets.cli import _use_embedded_s3
    from billing_assets.demo.embedded_s3 import stop_server

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        own_server = _use_embedded_s3(state)
        try:
            (local_status, local, local_checks), (spark_status, spark, spark_checks) = (
                run_month(engine, state) for engine in ("local", "spark"))
        finally:
            if own_server:
                stop_server(state)
    differing = sorted(key for key in local.keys() | spark.keys() if local.get(key) != spark.get(key))
    print(f"local exit {local_status}, spark exit {spark_status}; {len(local)} objects compared, "
          f"{len(differing)} differ; {len(local_checks)} check results, "
          f"{sum(local_checks.get(key) != value for key, value in spark_checks.items())} differ")
    for key in differing[:20]:
        print(f"  differs: {key}")
    same = not differing and local_checks == spark_checks and local_status == spark_status == 0
    print("the spark engine published the local engine's demo month" if same else "ENGINES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
