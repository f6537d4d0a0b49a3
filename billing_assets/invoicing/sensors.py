"""Issue each month's invoices as soon as its grace period is over, without anyone launching it."""

from datetime import timedelta

import dagster as dg

from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.jobs import monthly_billing_job
from billing_assets.partitions import monthly_billing_partitions

ISSUING_LOOKBACK = timedelta(days=35)


def months_to_issue(policy: BillingPolicy, metered_days: set[str]) -> list[str]:
    """Months whose grace period ended within the lookback and that the platform has metered
    usage for: a month nothing was ever ingested for is not invoiced on base fees alone."""
    now = policy.now()
    metered_months = {day[:7] for day in metered_days}
    return [month for month in monthly_billing_partitions.get_partition_keys(current_time=now)
            if month in metered_months and policy.grace_end(month) <= now < policy.grace_end(month) + ISSUING_LOOKBACK]


@dg.sensor(
    job=monthly_billing_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rates, issues and reconciles a month once its end plus BILLING_GRACE_HOURS has passed.",
)
def invoice_issuing_sensor(context: dg.SensorEvaluationContext, billing_policy: BillingPolicy):
    metered = context.instance.get_materialized_partitions(dg.AssetKey("metered_usage"))
    months = months_to_issue(billing_policy, metered)
    if not months:
        return dg.SkipReason("no metered month has just passed its grace period")
    # the run key makes each month's issuing run happen once; corrections after that follow
    # upstream changes through automation
    return [dg.RunRequest(run_key=f"issue:{month}", partition_key=month, tags={"billing/trigger": "invoice_issuing_sensor"})
            for month in months]
