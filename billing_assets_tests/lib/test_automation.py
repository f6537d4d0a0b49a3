"""Automation: a change to an old partition flows downstream, stage by stage, and nothing else.

Materialisations are reported to a real (temporary) instance; the conditions are evaluated the
way the automation sensor evaluates them, tick by tick, with the cursor carried over.
"""

from datetime import datetime, timezone

import dagster as dg
import pytest

from billing_assets.definitions import defs

EVALUATED_AT = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)  # the latest month is 2026-10


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def materialised(instance, asset: str, *partitions: str) -> None:
    for partition in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


def check_failed(instance, asset: str, check: str, partition: str) -> None:
    """A failed evaluation of the partition's latest materialisation, as a run would record it."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    [latest] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset), check_name=check, passed=False, partition=partition,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp)))


def requested(result) -> set[tuple[str, str]]:
    return {(key.to_user_string(), partition) for key in defs.resolve_asset_graph().get_all_asset_keys()
            for partition in result.get_requested_partitions(key)}


def requested_checks(result) -> set[dg.AssetCheckKey]:
    return {r.key for r in result.results if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size}


def tick(instance, cursor=None):
    return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor, evaluation_time=EVALUATED_AT)


def settled_history(instance):
    """January 2026 fully processed long ago; a first tick that requests nothing."""
    materialised(instance, "usage_events", "2026-01-05")
    materialised(instance, "metered_usage", "2026-01-05")
    materialised(instance, "sla_report", "2026-01-05")
    materialised(instance, "usage_alerts", "2026-01-05")
    materialised(instance, "usage_anomalies", "2026-01-05")
    for asset in ("rated_charges", "invoice_lines", "invoices", "invoice_adjustments", "refunds", "reconciliation",
                  "usage_statements", "billing_kpis", "remediation_impact"):
        materialised(instance, asset, "2026-01")
    first = tick(instance)
    assert first.total_requested == 0  # history is never backfilled by automation itself
    return first.cursor


def test_an_old_day_remetered_re_rates_reinvoices_and_reconciles_its_month_in_one_tick(instance):
    cursor = settled_history(instance)
    materialised(instance, "metered_usage", "2026-01-05")  # e.g. a late file, ten months on
    result = tick(instance, cursor)
    month_chain = {(asset, "2026-01") for asset in ("rated_charges", "invoice_lines", "invoices", "invoice_adjustments",
                                                   "refunds", "reconciliation", "usage_statements",
                                                   "billing_kpis", "remediation_impact",
                                                   "refund_requests", "provider_reconciliation")}
    # not the latest month (2026-10), not the other days; the day's SLA report, alerts, anomalies
    # and provider sync (which sends the correction) follow too (the 34 days after it, whose
    # baselines read it, only where they were ever judged)
    assert requested(result) == month_chain | {(asset, "2026-01-05") for asset in (
        "sla_report", "usage_alerts", "usage_anomalies", "provider_sync")}

    # the run happens: every stage updated in order; the next tick has nothing left to do
    materialised(instance, "sla_report", "2026-01-05")
    materialised(instance, "usage_alerts", "2026-01-05")
    materialised(instance, "usage_anomalies", "2026-01-05")
    materialised(instance, "provider_sync", "2026-01-05")
    for asset, month in sorted(month_chain, key=lambda pair: pair[0] in ("reconciliation", "usage_statements", "billing_kpis",
                                                                              "remediation_impact", "refund_requests",
                                                                              "provider_reconciliation")):
        materialised(instance, asset, month)
    assert tick(instance, result.cursor).total_requested == 0


def test_nothing_changed_nothing_requested(instance):
    cursor = settled_history(instance)
    assert tick(instance, cursor).total_requested == 0


def test_an_old_day_with_a_new_ingest_is_metered(instance):
    cursor = settled_history(instance)
    materialised(instance, "usage_events", "2026-01-05")
    assert ("metered_usage", "2026-01-05") in requested(tick(instance, cursor))


def test_a_failed_blocking_check_upstream_stops_the_flow(instance):
    cursor = settled_history(instance)
    materialised(instance, "usage_events", "2026-01-05")
    check_failed(instance, "usage_events", "usage_lines_conserved", "2026-01-05")
    assert ("metered_usage", "2026-01-05") not in requested(tick(instance, cursor))


def test_a_reference_update_alone_reprocesses_nothing(instance):
    cursor = settled_history(instance)
    for asset in ("meters", "plans", "customers", "contracts", "ip_allocations"):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset))
    assert tick(instance, cursor).total_requested == 0


def test_the_sla_checks_are_judged_every_hour_whatever_else_runs(instance):
    checks = [dg.AssetCheckKey(dg.AssetKey("metered_usage"), "metered_by_deadline"),
              dg.AssetCheckKey(dg.AssetKey("invoices"), "invoices_issued_on_time")]
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=EVALUATED_AT)
    later_same_hour = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=first.cursor, evaluation_time=EVALUATED_AT.replace(minute=4))
    assert requested_checks(later_same_hour) == set()
    past_five = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=later_same_hour.cursor, evaluation_time=EVALUATED_AT.replace(minute=6))
    assert requested_checks(past_five) == set(checks)
