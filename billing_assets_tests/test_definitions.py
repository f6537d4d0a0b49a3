"""The code location loads, and declares what the UI and the contract need."""

import dagster as dg

from billing_assets.definitions import defs

TABLES = ("usage_events", "quarantined_events", "duplicate_events", "metered_usage", "sla_report", "usage_alerts",
          "usage_anomalies", "sessions", "provider_sync")  # daily
SLA_CHECKS = {"metered_by_deadline", "invoices_issued_on_time"}  # judged on a clock, never blocking
MONTHLY = ("rated_charges", "invoice_lines", "invoices", "invoice_adjustments", "refunds", "usage_statements", "billing_kpis",
           "remediation_impact", "refund_requests", "provider_reconciliation")


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_graph():
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "meters", "plans", "customers", "contracts", "ip_allocations", *TABLES, *MONTHLY, "reconciliation"}
    assert dg.AssetKey("usage_events") in graph.get(dg.AssetKey("metered_usage")).parent_keys
    assert dg.AssetKey("metered_usage") in graph.get(dg.AssetKey("rated_charges")).parent_keys
    assert graph.get(dg.AssetKey("rated_charges")).partitions_def.get_partition_keys()[0] == "2025-01"


def test_every_table_shows_its_columns_and_has_a_blocking_contract_check():
    graph = defs.resolve_asset_graph()
    checks = {key.name: key for key in graph.asset_check_keys}
    for table in (*TABLES, *MONTHLY):
        spec = graph.get(dg.AssetKey(table))
        schema = spec.metadata["dagster/column_schema"]
        assert len(schema.columns) >= 4
        assert spec.partitions_def is not None
        assert f"{table}_matches_contract" in checks
    blocking = {key.name: graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    # the SLA checks, and the statistical findings (a warning people look at, CONTRACT.md §9)
    # and what the billing provider has not (yet) acknowledged, refunded or tied out
    assert {name for name, is_blocking in blocking.items() if not is_blocking} == SLA_CHECKS | {
        "no_unexplained_usage_anomalies", "provider_sync_acknowledged", "refund_requests_succeeded",
        "provider_reconciliation_ties"}
    assert "usage_lines_conserved" in blocking and "metered_usage_ties_to_events" in blocking


def test_daily_assets_run_a_backfill_as_one_run():
    graph = defs.resolve_asset_graph()
    for table in TABLES:
        assert graph.get(dg.AssetKey(table)).backfill_policy == dg.BackfillPolicy.single_run()


def test_sensors_run_by_default_and_schedules_wait_for_deployments_without_them():
    assert {sensor.name: sensor.default_status for sensor in defs.sensors} == {
        name: dg.DefaultSensorStatus.RUNNING for name in (
            "raw_usage_sensor", "reference_sensor", "invoice_issuing_sensor", "billing_automation_sensor",
            "orphaned_run_sensor")}
    schedules = {schedule.name: schedule for schedule in defs.schedules}
    assert set(schedules) == {"daily_usage_schedule", "monthly_invoicing_schedule"}
    assert all(schedule.default_status == dg.DefaultScheduleStatus.STOPPED for schedule in schedules.values())
    assert defs.resolve_schedule_def("daily_usage_schedule").cron_schedule == "0 1 * * *"
    assert defs.resolve_schedule_def("monthly_invoicing_schedule").cron_schedule == "0 1 2 * *"
