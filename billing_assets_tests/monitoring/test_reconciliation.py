"""Reconciliation holds on a real month and names what breaks when a stage is tampered with."""

import dagster as dg
import pyarrow as pa
import pytest

from billing_assets.lib.checks import validate_against
from billing_assets.monitoring.schemas import ReconciliationRow
from billing_assets.resources import billing_lake
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import MONTH, day_file, run, table, usage


@pytest.fixture
def billed_month(put):
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000"), usage("g2", "20")))
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        result = run(instance, "monthly_billing_job", MONTH)
    return result


def test_a_clean_month_reconciles(billed_month, s3, bucket):
    checks = {e.check_name: e.passed for e in billed_month.get_asset_check_evaluations()}
    assert checks["reconciliation_ties"] and checks["reconciliation_matches_contract"]
    rows = table(s3, bucket, "reconciliation")
    globex_egress = [row for row in rows if row["customer_id"] == "globex" and row["meter"] == "egress_gb"]
    # 1000 + 20 GB accepted, metered and rated
    assert [(row["tie_out"], row["expected"], row["actual"]) for row in globex_egress] == [
        ("accepted events = metered events", "2", "2"),
        ("metered period quantity = rated quantity", "1020.000000000", "1020.000000000")]
    assert {row["tie_out"] for row in rows} == {
        "accepted events = metered events", "metered period quantity = rated quantity",
        "invoice total = sum of its lines", "issued + corrections = owed now"}


def test_a_tampered_rating_breaks_and_is_named(billed_month, put):
    lake = billing_lake()
    rated = lake.read_table("rated_charges", MONTH).to_pylist()
    for row in rated:
        if row["customer_id"] == "globex" and row["meter"] == "egress_gb":
            row["quantity"] -= 20  # a day's usage lost between metering and rating
    lake.write_table("rated_charges", MONTH, pa.Table.from_pylist(rated, schema=lake.read_table("rated_charges", MONTH).schema))
    from billing_assets.definitions import defs
    from billing_assets_tests.usage.conftest import QUIET
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("monthly_billing_job").execute_in_process(
            partition_key=MONTH, instance=instance, raise_on_error=False, run_config=QUIET,
            asset_selection=[dg.AssetKey("reconciliation")])
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "reconciliation_ties"]
    assert not check.passed
    assert ("metered period quantity = rated quantity: customer globex, meter egress_gb, contract c-globex: "
            "expected 1020.000000000, found 1000.000000000 (difference -20.000000000)") in check.metadata["breaks"].value


def test_a_range_run_records_each_months_reconciliation_against_that_month(put):
    # January clean; February's rating loses 5 GB of its 7: a run over both names February only
    put(reference_files() | day_file("2026-01-05", usage("j1", "3"))
        | day_file("2026-02-05", usage("f1", "7", day="2026-02-05")))
    lake = billing_lake()
    from billing_assets.definitions import defs
    from billing_assets_tests.usage.conftest import QUIET
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "daily_usage_job", "2026-02-05")
        run(instance, "monthly_billing_job", "2026-01")
        run(instance, "monthly_billing_job", "2026-02", as_of="2026-03-02T00:00:00+00:00")
        rated = lake.read_table("rated_charges", "2026-02")
        tampered = [row | {"quantity": row["quantity"] - 5} if row["meter"] == "egress_gb" else row
                    for row in rated.to_pylist()]
        lake.write_table("rated_charges", "2026-02", pa.Table.from_pylist(tampered, schema=rated.schema))
        result = defs.resolve_job_def("monthly_billing_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET, asset_selection=[dg.AssetKey("reconciliation")],
            tags={"dagster/asset_partition_range_start": "2026-01", "dagster/asset_partition_range_end": "2026-02"})
        evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "reconciliation_ties"]
        per_month = {e.partition: e.passed for e in evaluations if e.partition}
        assert per_month == {"2026-01": True, "2026-02": False}
        [overall] = [e for e in evaluations if not e.partition]
        assert not overall.passed and overall.metadata["failed_months"].value == "2026-02"
        [february] = [e for e in evaluations if e.partition == "2026-02"]
        assert ("metered period quantity = rated quantity: customer globex, meter egress_gb, contract c-globex: "
                "expected 7.000000000, found 2.000000000 (difference -5.000000000)") in february.metadata["breaks"].value
        check_key = dg.AssetCheckKey(dg.AssetKey("reconciliation"), "reconciliation_ties")
        stored = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
        recorded = {(evaluation.partition, evaluation.passed) for evaluation in
                    (record.event.asset_check_evaluation for record in stored if record.event) if evaluation}
        assert recorded >= {("2026-01", True), ("2026-02", False)}


def test_the_stored_table_is_held_to_its_model(billed_month):
    stored = billing_lake().read_table("reconciliation", MONTH)
    assert validate_against(ReconciliationRow, stored) == (True, {"dagster/row_count": stored.num_rows})
    rows = stored.to_pylist()
    rows[0]["difference"] = "0.5.0"  # not a number: a tie-out whose difference nobody can read
    rows[-1]["tie_out"] = "lines = lines"  # a tie-out the platform does not make
    passed, metadata = validate_against(ReconciliationRow, pa.Table.from_pylist(rows, schema=stored.schema))
    assert not passed and metadata["failures"] == 2
