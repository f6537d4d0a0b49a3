"""The warehouse is readable as it is by a hive-aware engine (DuckDB here)."""

from decimal import Decimal

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from billing_assets_tests.usage.conftest import DAY, run_day


def test_duckdb_reads_the_tables_with_dt_from_the_path(seeded, s3, bucket, tmp_path):
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="warehouse/")["Contents"]:
        target = tmp_path / item["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    events_file = tmp_path / f"warehouse/usage_events/dt={DAY}/part-00000.parquet"
    assert "dt" not in pq.read_schema(events_file).names
    rows = duckdb.sql(
        f"SELECT dt, meter, sum(quantity) AS total, count(*) AS events "
        f"FROM read_parquet('{tmp_path}/warehouse/usage_events/*/*.parquet', hive_partitioning = true) "
        f"GROUP BY ALL ORDER BY meter").fetchall()
    # seeded day: a1 2.5 + b1 1 on egress_gb; a2 api_requests (count → 1); a3 active_users (1)
    assert [(str(dt), meter, total, events) for dt, meter, total, events in rows] == [
        (DAY, "active_users", Decimal("1"), 1), (DAY, "api_requests", Decimal("1"), 1),
        (DAY, "egress_gb", Decimal("3.5"), 2)]
    reasons = duckdb.sql(f"SELECT reason, count(*) FROM read_parquet('{tmp_path}/warehouse/quarantined_events/*/*.parquet', "
                         "hive_partitioning = true) GROUP BY ALL ORDER BY 1").fetchall()
    assert reasons == [("malformed_json", 1), ("no_active_contract", 1), ("unreadable_file", 1)]
