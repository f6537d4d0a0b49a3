"""The Dagster code location: ``billing_assets.definitions:defs``."""

import dagster as dg

from billing_assets.analytics import assets as analytics_assets
from billing_assets.analytics import checks as analytics_checks
from billing_assets.analytics import kpi_assets, remediation_assets
from billing_assets.insights import assets as insights_assets
from billing_assets.insights import checks as insights_checks
from billing_assets.invoicing import assets as invoicing_assets
from billing_assets.invoicing import checks as invoicing_checks
from billing_assets.metering import assets as metering_assets
from billing_assets.monitoring import assets as monitoring_assets
from billing_assets.monitoring import checks as monitoring_checks
from billing_assets.monitoring.orphans import orphaned_run_sensor
from billing_assets.monitoring.sla import SlaPolicy
from billing_assets.metering import checks as metering_checks
from billing_assets.providers import assets as provider_assets
from billing_assets.providers import reconciliation_assets, refund_assets
from billing_assets.providers import checks as provider_checks
from billing_assets.providers.resource import BillingProvider
from billing_assets.rating import assets as rating_assets
from billing_assets.rating import checks as rating_checks
from billing_assets.reference import assets as reference_assets
from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.lib.engine import BillingEngine
from billing_assets.jobs import analytics_job, daily_usage_job, monthly_billing_job, reference_job, statements_job
from billing_assets.resources import billing_lake
from billing_assets.usage import assets as usage_assets
from billing_assets.usage import checks as usage_checks
from billing_assets.usage.assets import IngestLimits
from billing_assets.usage.schedules import daily_usage_schedule
from billing_assets.usage.sensors import LandingWatch, raw_usage_sensor
from billing_assets.invoicing.schedules import monthly_invoicing_schedule
from billing_assets.invoicing.sensors import invoice_issuing_sensor
from billing_assets.reference.sensors import reference_sensor

# running by default, like the sensors: the chain follows late data without anyone clicking
billing_automation_sensor = dg.AutomationConditionSensorDefinition(
    "billing_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-materialises metering, rating, invoicing and reconciliation partitions whose upstream changed.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([reference_assets, usage_assets, metering_assets, rating_assets,
                                        invoicing_assets, monitoring_assets, insights_assets, analytics_assets,
                                        kpi_assets, remediation_assets, provider_assets,
                                        refund_assets, reconciliation_assets]),
    asset_checks=dg.load_asset_checks_from_modules([usage_checks, metering_checks, rating_checks,
                                                    invoicing_checks, monitoring_checks, insights_checks,
                                                    analytics_checks, provider_checks]),
    jobs=[reference_job, daily_usage_job, monthly_billing_job, statements_job, analytics_job],
    sensors=[raw_usage_sensor, reference_sensor, invoice_issuing_sensor, billing_automation_sensor,
             orphaned_run_sensor],
    schedules=[daily_usage_schedule, monthly_invoicing_schedule],
    # one process per run: the steps of a run are a chain that reads and writes S3 in turn, so a
    # process per step (the default) bought no parallelism and cost ~3 s of start-up per step
    executor=dg.in_process_executor,
    resources={"lake": billing_lake(), "billing_policy": BillingPolicy(), "landing_watch": LandingWatch(),
               "sla": SlaPolicy(), "ingest_limits": IngestLimits(), "billing_provider": BillingProvider(),
               "engine": BillingEngine()},
)
