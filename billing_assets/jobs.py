"""The jobs people, sensors and schedules launch: one per grain of the chain."""

import dagster as dg

# the bound on a run the daemon's run monitoring enforces (a year's single-run backfill fits);
# a run whose process died is failed long before by monitoring/orphans.py
MAX_RUNTIME = {"dagster/max_runtime": str(12 * 3600)}

# judged on the clock by the automation sensor, not as part of the data's own runs
SLA_CHECKS = dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("metered_usage"), "metered_by_deadline"),
    dg.AssetCheckKey(dg.AssetKey("invoices"), "invoices_issued_on_time"),
)

reference_job = dg.define_asset_job(
    "reference_job",
    selection=dg.AssetSelection.groups("reference"),
    description="Validate the reference files (meters, plans, customers, contracts, IP allocations).",
)
daily_usage_job = dg.define_asset_job(
    "daily_usage_job",
    selection=(dg.AssetSelection.groups("usage", "metering", "sla")
               | dg.AssetSelection.assets("usage_alerts", "usage_anomalies", "provider_sync"))
    - SLA_CHECKS,
    description="Ingest one or more days of raw usage and meter them, with every blocking check; "
                "then the day's alerts, usage anomalies and the usage sync to the billing provider.",
    tags=MAX_RUNTIME,
)
monthly_billing_job = dg.define_asset_job(
    "monthly_billing_job",
    selection=(dg.AssetSelection.groups("rating", "invoicing", "monitoring")
               | dg.AssetSelection.assets("billing_kpis", "remediation_impact", "refund_requests",
                                         "provider_reconciliation"))
    - SLA_CHECKS,
    description="Rate, invoice and reconcile one or more UTC calendar months from their days' metered usage; "
                "then the month's billing KPIs, remediation impact and refunds and reconciliation with the billing provider.",
    tags=MAX_RUNTIME,
)
# customer-facing views, off the billing run's critical path: a statement is four small objects
# per customer, which for 10,000 customers took longer than the whole day's billing run; the
# automation sensor refreshes them after invoicing, `billing statements` on demand
statements_job = dg.define_asset_job(
    "statements_job",
    selection=dg.AssetSelection.assets("usage_statements"),
    description="Write each customer's usage statement of one or more months (documents/YYYY-MM/<customer>/).",
    tags=MAX_RUNTIME,
)
# per-event work (each accepted event placed in a session) off the billing run's critical path:
# the automation sensor runs it after each day's ingest, the UI's Materialise on demand
analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.assets("sessions"),
    description="Group one or more days' accepted events into sessions (warehouse/sessions/).",
    tags=MAX_RUNTIME,
)
