"""The reference sensor: a changed file is re-validated and re-runs exactly what it touches."""

import json

import dagster as dg

from billing_assets.reference.sensors import changed_days, contiguous, reference_sensor
from billing_assets.resources import billing_lake
from billing_assets_tests.conftest import CONTRACTS, reference_files
from billing_assets_tests.usage.conftest import run_day
from billing_assets_tests.usage.helpers import event

HOOLI_CONTRACT = CONTRACTS + "c-hooli,hooli,pro,2026-01-05,2026-01-06,\n"


def tick(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": billing_lake()}) as context:
        return reference_sensor(context)


def test_changed_contract_rows_touch_the_days_they_cover():
    after = CONTRACTS.replace("c-initech,initech,euro,2026-01-01,,", "c-initech,initech,euro,2026-01-01,2026-01-03,")
    from datetime import date

    # the edited row, before (open-ended, so up to yesterday) and after (to 01-03): its whole span
    days = changed_days("reference/contracts.csv", CONTRACTS.encode(), after.encode(), date(2026, 1, 10))
    assert sorted(days) == [f"2026-01-{n:02}" for n in range(1, 11)]
    added = changed_days("reference/contracts.csv", CONTRACTS.encode(), HOOLI_CONTRACT.encode(), date(2026, 1, 10))
    assert sorted(added) == ["2026-01-05", "2026-01-06"]
    assert changed_days("reference/meters.yaml", b"a", b"b", date(2026, 1, 10)) is None  # every watched day


def test_contiguous_days_become_ranges():
    assert contiguous(["2026-01-01", "2026-01-02", "2026-01-04"]) == [("2026-01-01", "2026-01-02"), ("2026-01-04", "2026-01-04")]


def test_a_newly_onboarded_contract_releases_its_quarantine_on_the_next_run(put):
    day_lines = "".join(line + "\n" for line in [event(event_id="h1", customer_id="hooli"), event(event_id="a1")])
    put(reference_files() | {"raw/usage/dt=2026-01-05/a.jsonl": day_lines.encode()})
    with dg.instance_for_test() as instance:
        assert run_day(instance, "2026-01-05").success
        lake = billing_lake()
        assert lake.read_table("quarantined_events", "2026-01-05").column("reason").to_pylist() == ["no_active_contract"]

        first = tick(instance)  # first sight: validate, remember, re-run nothing
        assert [r.job_name for r in first.run_requests] == ["reference_job"]
        assert tick(instance, first.cursor).skip_message == "reference files unchanged"

        put({"reference/contracts.csv": HOOLI_CONTRACT.encode()})
        second = tick(instance, first.cursor)
        by_job = {r.job_name: r for r in second.run_requests}
        assert set(by_job) == {"reference_job", "daily_usage_job"}  # 2026-01-06 was never ingested
        assert by_job["daily_usage_job"].partition_key == "2026-01-05"
        assert json.loads(second.cursor)["reference/contracts.csv"]

        assert run_day(instance, by_job["daily_usage_job"].partition_key).success
        assert lake.read_table("quarantined_events", "2026-01-05").num_rows == 0
        assert sorted(lake.read_table("usage_events", "2026-01-05").column("event_id").to_pylist()) == ["a1", "h1"]


def test_a_price_change_re_rates_watched_months_without_re_ingesting(put):
    put(reference_files())
    with dg.instance_for_test() as instance:
        from datetime import datetime, timezone

        month = datetime.now(timezone.utc).strftime("%Y-%m")
        instance.report_runless_asset_event(dg.AssetMaterialization("rated_charges", partition=month))
        instance.report_runless_asset_event(dg.AssetMaterialization("rated_charges", partition="2025-03"))  # long ago
        cursor = tick(instance).cursor
        plans = reference_files()["reference/plans.yaml"].replace(b'"0.08"', b'"0.09"')
        put({"reference/plans.yaml": plans})
        requests = tick(instance, cursor).run_requests
        assert sorted((r.job_name, r.partition_key) for r in requests) == [
            ("monthly_billing_job", month), ("reference_job", None)]
