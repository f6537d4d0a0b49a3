"""``billing run --engine spark`` as Dagster runs it: the assets launch the Spark job through
Pipes (``PipesSubprocessClient``, pyspark in local mode), the tables equal the local engine's, the
same checks land per partition, and a failing Spark job fails the step and publishes nothing."""

import io
import shutil

import dagster as dg
import pyarrow.parquet as pq
import pytest

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.spark.test_stages import _day
from billing_assets_tests.usage.conftest import run_day
from billing_assets_tests.usage.helpers import DAY

TABLES = ("usage_events", "quarantined_events", "duplicate_events", "metered_usage")

pytestmark = pytest.mark.skipif(not shutil.which("java"), reason="no Java runtime: Spark needs Java 17 or 21")


def _published(s3, bucket) -> dict:
    tables = {name: pq.read_table(io.BytesIO(s3.get_object(
        Bucket=bucket, Key=f"warehouse/{name}/dt={DAY}/part-00000.parquet")["Body"].read())).to_pylist()
        for name in TABLES}
    lines = s3.get_object(Bucket=bucket, Key=f"quarantine/usage/dt={DAY}/lines.jsonl.gz")["Body"].read()
    return tables | {"quarantine": lines}


def _checks(instance, run_id) -> dict:
    return {(event.asset_check_evaluation_data.check_name, event.partition): event.asset_check_evaluation_data.passed
            for event in (record.event_log_entry.dagster_event for record in instance.get_records_for_run(run_id).records)
            if event and event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}


def _materialised(instance, run_id, asset: str) -> dict:
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event and event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION \
                and event.asset_key == dg.AssetKey(asset):
            return {key: value.value for key, value in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


def test_spark_engine_fails_loudly_then_materialises_what_the_local_engine_does(put, s3, bucket, monkeypatch):
    put(reference_files() | _day())
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("BILLING_ENGINE", "spark")
        monkeypatch.setenv("PYSPARK_PYTHON", "/bin/false")  # every Python worker dies as it starts
        failed = run_day(instance, str(DAY))
        assert not failed.success
        # Pipes hands the job's exception back as a structured engine event of the step
        logged = "\n".join(f"{record.event_log_entry.message} {record.event_log_entry.dagster_event.event_specific_data}"
                           for record in instance.get_records_for_run(failed.run_id).records
                           if record.event_log_entry.dagster_event)
        closed = logged[logged.index("closed with exception"):]
        assert "Py4JJavaError" in closed and "org.apache.spark.SparkException" in closed, closed[:3000]
        assert s3.list_objects_v2(Bucket=bucket, Prefix="warehouse/").get("KeyCount") == 0
        monkeypatch.delenv("PYSPARK_PYTHON")

        monkeypatch.setenv("BILLING_ENGINE", "local")
        local = run_day(instance, str(DAY))
        assert local.success
        expected, expected_checks = _published(s3, bucket), _checks(instance, local.run_id)
        expected_metadata = _materialised(instance, local.run_id, "usage_events")

        monkeypatch.setenv("BILLING_ENGINE", "spark")
        on_spark = run_day(instance, str(DAY))  # re-running after the failure converges
        assert on_spark.success
        assert _published(s3, bucket) == expected
        assert s3.list_objects_v2(Bucket=bucket, Prefix="staging/").get("KeyCount") == 0
        checks = _checks(instance, on_spark.run_id)
        assert checks == expected_checks and len(checks) >= 5 and all(checks.values())
        metadata = _materialised(instance, on_spark.run_id, "usage_events")
        assert (metadata["engine"], expected_metadata["engine"]) == ("spark", "local")
        assert metadata["spark/tasks"] > 0 and metadata["spark/shuffle_partitions"] == 4  # twice local[2]'s cores
        for name in ("lines_read", "accepted", "duplicates", "quarantined", "dagster/row_count", "per_day_counts",
                     "raw_fingerprints", "unreadable_objects"):
            assert metadata[name] == expected_metadata[name], name
        assert _materialised(instance, on_spark.run_id, "metered_usage")["engine"] == "spark"
