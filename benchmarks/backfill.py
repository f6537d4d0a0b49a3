"""``make bench-backfill``: what orchestration costs on a 31-day backfill of the demo month.

Lands the demo month in a fresh embedded S3 server, then measures:
  compute   each day's work called directly, no Dagster: ingest and publish, the usage checks,
            meter and publish, the metering checks, the SLA report and its check (the
            reference files loaded once, as a run loads them);
  runs      each day as its own run: the sum of their steps' compute as Dagster records it;
  billing   ``billing run``'s path: one in-process single-run backfill of the 31 days;
  worker    the path of a backfill launched from the UI: the same run executed by a run
            worker, with the job's own executor.
and prints each single-run wall time with its overhead over both compute sums (goal: ≤ 25 %).
Every instance is a new one on disk configured by the project's ``dagster.yaml``, as ``billing run``
and the daemon get it; ``billing`` is measured once more on Dagster's default sqlite storage, to
show what the kept-engine event log (``lib/instance_storage.py``) saves.
"""

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

PROJECT_INSTANCE_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"
ROUNDS = 3


@contextmanager
def fresh_instance(project_config: bool = True) -> Iterator["DagsterInstance"]:  # noqa: F821
    """A new, empty instance on disk: the project's dagster.yaml, or Dagster's defaults."""
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    with tempfile.TemporaryDirectory() as home:
        if project_config:
            shutil.copy(PROJECT_INSTANCE_CONFIG, home)
        os.environ["DAGSTER_HOME"] = home
        try:
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous


def per_partition_compute(days: list[str]) -> float:
    import pyarrow as pa

    from billing_assets.lib.checks import validate_against
    from billing_assets.metering.aggregate import meter_day
    from billing_assets.metering.checks import ties_to_events
    from billing_assets.metering.schemas import MeteredUsage
    from billing_assets.monitoring.assets import sla_rows
    from billing_assets.monitoring.schemas import SlaReportRow
    from billing_assets.monitoring.sla import SLA_REPORT_SCHEMA, SlaPolicy, invoices_issued_at
    from billing_assets.reference.assets import read_reference
    from billing_assets.resources import billing_lake
    from billing_assets.usage.assets import ingest_day
    from billing_assets.usage.checks import conservation
    from billing_assets.usage.schemas import DuplicateEvent, QuarantinedEvent, UsageEvent

    lake, sla = billing_lake(), SlaPolicy()
    started = time.perf_counter()
    reference = read_reference(lake)
    aggregation = reference.meter_aggregation()
    issued = invoices_issued_at(lake, days[0][:7])
    with fresh_instance() as instance:
        for day in days:
            ingest_day(lake, day, reference)
            for name, model in (("usage_events", UsageEvent), ("quarantined_events", QuarantinedEvent),
                                ("duplicate_events", DuplicateEvent)):
                validate_against(model, lake.read_table(name, day))
            conservation(lake, day)
            lake.write_table("metered_usage", day, meter_day(date.fromisoformat(day), lake.read_table("usage_events", day),
                                                             aggregation))
            validate_against(MeteredUsage, lake.read_table("metered_usage", day))
            ties_to_events(lake, day)
            lake.write_table("sla_report", day, pa.Table.from_pylist(sla_rows(lake, instance, day, sla, issued),
                                                                      schema=SLA_REPORT_SCHEMA))
            validate_against(SlaReportRow, lake.read_table("sla_report", day))
    return time.perf_counter() - started


def billing_run_path(days: list[str], project_config: bool = True) -> float:
    from billing_assets.cli import QUIET_LOGS, range_tags
    from billing_assets.definitions import defs

    with fresh_instance(project_config) as instance:
        started = time.perf_counter()
        result = defs.resolve_job_def("daily_usage_job").execute_in_process(
            instance=instance, run_config=QUIET_LOGS, tags=range_tags(days))
        seconds = time.perf_counter() - started
    assert result.success
    return seconds


def per_partition_runs(days: list[str]) -> tuple[float, float]:
    """Each day as its own run: (sum of run wall times, sum of the steps' compute as Dagster records it)."""
    from billing_assets.cli import QUIET_LOGS
    from billing_assets.definitions import defs

    job, wall, steps = defs.resolve_job_def("daily_usage_job"), 0.0, 0.0
    with fresh_instance() as instance:
        for day in days:
            started = time.perf_counter()
            result = job.execute_in_process(instance=instance, run_config=QUIET_LOGS, partition_key=day)
            wall += time.perf_counter() - started
            steps += sum(entry.dagster_event.event_specific_data.duration_ms / 1000
                         for entry in instance.all_logs(result.run_id)
                         if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_SUCCESS")
    return wall, steps


def _daily_usage_job():
    from billing_assets.definitions import defs

    return defs.resolve_job_def("daily_usage_job")


def run_worker_path(days: list[str]) -> float:
    import dagster as dg

    from billing_assets.cli import range_tags

    with fresh_instance() as instance:
        started = time.perf_counter()
        with dg.execute_job(dg.reconstructable(_daily_usage_job), instance=instance, tags=range_tags(days)) as result:
            seconds = time.perf_counter() - started
            assert result.success, [e.message for e in result.all_events if e.is_failure]
    return seconds


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore")
    from billing_assets.cli import _use_embedded_s3
    from billing_assets.demo.embedded_s3 import land, stop_server
    from billing_assets.demo.synthetic import DEMO_MONTH, demo_month_objects, reference_objects

    days = [DEMO_MONTH.replace(day=n).isoformat() for n in range(1, 32)]
    with tempfile.TemporaryDirectory() as state:
        os.environ["BILLING_BUCKET"] = "billing-bench-backfill"
        _use_embedded_s3(Path(state))
        try:
            land(reference_objects() | demo_month_objects())
            per_partition_compute(days)  # warm the S3 server and the imports; not counted
            runs_wall, runs_steps = per_partition_runs(days)
            # rounds interleave the paths so a slow spell of the machine is shared out, not
            # charged to one path; each path is judged by its best round
            timings: dict[str, list[float]] = {"compute": [], "billing": [], "worker": [], "default": []}
            for round_number in range(ROUNDS):
                timings["compute"].append(per_partition_compute(days))
                timings["billing"].append(billing_run_path(days))
                timings["worker"].append(run_worker_path(days))
                if round_number < 2:
                    timings["default"].append(billing_run_path(days, project_config=False))
        finally:
            stop_server(Path(state))
    best = {path: min(seconds) for path, seconds in timings.items()}
    spread = {path: f"{min(seconds):.1f}–{max(seconds):.1f} s" for path, seconds in timings.items()}
    compute = best["compute"]
    print(f"31-day backfill of {days[0][:7]} (demo month); best of {ROUNDS} interleaved rounds (range)")
    print(f"compute, direct        : {compute:6.1f} s  ({spread['compute']}) each day's work called without Dagster, summed")
    print(f"per-partition runs     : {runs_wall:6.1f} s  31 one-day runs; their steps' compute {runs_steps:.1f} s")
    for name, path in (("single run (billing)", "billing"), ("single run (worker)", "worker"),
                       ("billing, default sqlite", "default")):
        seconds = best[path]
        over_steps, over_direct = (seconds - runs_steps) / runs_steps, (seconds - compute) / compute
        print(f"{name:<23}: {seconds:6.1f} s  ({spread[path]}) over per-partition step compute "
              f"{100 * over_steps:+5.1f} %, over direct compute {100 * over_direct:+5.1f} %")
    print(f"backfill_overhead_vs_partition_steps={(best['billing'] - runs_steps) / runs_steps:.3f} "
          f"backfill_overhead_vs_direct_compute={(best['billing'] - compute) / compute:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
