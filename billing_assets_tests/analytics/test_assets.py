"""usage_anomalies through Dagster and the S3 server: a month of acme's egress, then a day
without it. The finding is a warning (the run succeeds, the blocking checks pass), and a late
file for that day, once metered, clears it."""

import io
from datetime import date, timedelta

import dagster as dg
import pyarrow.parquet as pq

from billing_assets.analytics.assets import usage_anomalies
from billing_assets.cli import QUIET_LOGS, execute_range
from billing_assets.definitions import defs
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(29)]  # the 29th is the day judged
STOPPED = DAYS[-1]


def _egress(day: date, count: int, prefix: str = "e") -> list[str]:
    return [event(event_id=f"{prefix}{day:%d}-{n}", timestamp=f"{day}T{n % 24:02d}:00:00Z", quantity="2")
            for n in range(count)]


def _file(day: date, lines: list[str], name: str = "a.jsonl") -> dict:
    return {f"raw/usage/dt={day}/{name}": "".join(line + "\n" for line in lines).encode()}


def _anomalies(s3, bucket, day: date) -> dict:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/usage_anomalies/dt={day}/part-00000.parquet")["Body"].read()
    return {(row["customer_id"], row["meter"]): row for row in pq.read_table(io.BytesIO(body)).to_pylist()}


def test_a_stopped_meter_warns_and_late_data_clears_it(put, s3, bucket):
    objects = reference_files()
    for day in DAYS[:-1]:
        objects |= _file(day, _egress(day, 30))
    # on the last day only globex sends anything: acme's 30 events a day stop
    objects |= _file(STOPPED, [event(event_id="g1", customer_id="globex", timestamp=f"{STOPPED}T01:00:00Z")])
    put(objects)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("daily_usage_job")
        result = execute_range(job, [day.isoformat() for day in DAYS], instance)
        assert result.success
        row = _anomalies(s3, bucket, STOPPED)[("acme", "egress_gb")]
        # 4 Thursdays of 60 GB; 28 days × 60 GB = 1,680 GB so far at 0.08; one more usual day: 4.80
        assert (row["kind"], row["observed"], row["baseline"], row["revenue_at_risk_minor"]) == (
            "stopped_reporting", 0, 60, 480)
        assert _anomalies(s3, bucket, DAYS[-2])[("acme", "egress_gb")]["kind"] == "normal"
        checks = {(evaluation.check_name, evaluation.partition): evaluation
                  for evaluation in result.get_asset_check_evaluations()}
        warned = checks[("no_unexplained_usage_anomalies", STOPPED.isoformat())]
        assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
        assert checks[("no_unexplained_usage_anomalies", DAYS[-2].isoformat())].passed
        # what the UI's partition view of the check reads: each day's evaluation is of that day's
        # latest materialization (else the view shows every day as never checked)
        key = dg.AssetCheckKey(dg.AssetKey("usage_anomalies"), "no_unexplained_usage_anomalies")
        infos = {info.partition_key: info for info in instance.event_log_storage.get_asset_check_partition_info([key])}
        assert all(infos[day.isoformat()].is_current for day in DAYS)
        assert [day for day, info in infos.items() if day and info.latest_execution_status.value == "FAILED"] == [
            STOPPED.isoformat()]  # (the row without a partition is the run's own result: the UI leaves it out)
        assert all(checks[(name, STOPPED.isoformat())].passed for name in (
            "usage_anomalies_matches_contract", "anomalies_cover_active_contracts"))

        # sessions of the 1st: 30 hourly events by customer id, hours 0–23 then 0–5 again; an hour
        # apart is past the 30-minute gap, so 24 sessions, the first six of two events each
        first = DAYS[0].isoformat()
        assert defs.resolve_job_def("analytics_job").execute_in_process(
            partition_key=first, instance=instance, run_config=QUIET_LOGS).success
        body = s3.get_object(Bucket=bucket, Key=f"warehouse/sessions/dt={first}/part-00000.parquet")["Body"].read()
        found = {row["session_id"]: row["events"] for row in pq.read_table(io.BytesIO(body)).to_pylist()}
        assert found == {f"gap:-:{n}": 2 if n <= 6 else 1 for n in range(1, 25)}

        put(_file(STOPPED, _egress(STOPPED, 30, prefix="late"), name="late.jsonl"))
        again = job.execute_in_process(partition_key=STOPPED.isoformat(), instance=instance, run_config=QUIET_LOGS)
        assert again.success
        assert _anomalies(s3, bucket, STOPPED)[("acme", "egress_gb")]["kind"] == "normal"


def test_late_data_reaches_every_day_whose_baseline_reads_it():
    mapping = usage_anomalies.get_partition_mapping(dg.AssetKey("metered_usage"))
    partitions = usage_anomalies.partitions_def
    downstream = mapping.get_downstream_partitions_for_partitions(
        partitions.subset_with_partition_keys(["2026-01-10"]), partitions, partitions)
    # the day itself and the 34 after it: four weeks of baseline and a week of level-shift history
    assert sorted(downstream.get_partition_keys()) == [
        (date(2026, 1, 10) + timedelta(days=n)).isoformat() for n in range(35)]
