"""The invoice issuing sensor: a metered month is issued once its grace period is over."""

import dagster as dg

from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.invoicing.sensors import invoice_issuing_sensor, months_to_issue

METERED = {"2026-09-30", "2026-10-01", "2026-10-31"}


def policy(as_of: str) -> BillingPolicy:
    return BillingPolicy(grace_hours=24, as_of=as_of)


def test_a_month_is_not_issued_before_its_grace_period_ends():
    # October ends 2026-11-01T00:00Z; with 24 h grace it may be issued from 2026-11-02T00:00Z
    assert months_to_issue(policy("2026-11-01T23:59:59+00:00"), METERED) == ["2026-09"]
    assert months_to_issue(policy("2026-11-02T00:00:00+00:00"), METERED) == ["2026-09", "2026-10"]


def test_months_past_the_lookback_or_never_metered_are_left_alone():
    # 2026-09's grace ended 2026-10-02: 35 days later it is no longer the sensor's business
    assert months_to_issue(policy("2026-11-05T23:59:59+00:00"), METERED) == ["2026-09", "2026-10"]
    assert months_to_issue(policy("2026-11-06T00:00:00+00:00"), METERED) == ["2026-10"]
    assert months_to_issue(policy("2026-11-02T00:00:00+00:00"), {"2026-10-05"}) == ["2026-10"]
    assert months_to_issue(policy("2026-11-02T00:00:00+00:00"), set()) == []


def test_the_sensor_requests_each_month_once_by_run_key():
    with dg.instance_for_test() as instance:
        for day in sorted(METERED):
            instance.report_runless_asset_event(dg.AssetMaterialization("metered_usage", partition=day))
        with dg.build_sensor_context(instance=instance, resources={"billing_policy": policy("2026-11-02T06:00:00+00:00")}) as context:
            requests = invoice_issuing_sensor(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [("2026-09", "issue:2026-09"), ("2026-10", "issue:2026-10")]
