"""For deployments that run no sensors: last month's invoices, once its grace period is over."""

import dagster as dg

from billing_assets.jobs import monthly_billing_job

monthly_invoicing_schedule = dg.build_schedule_from_partitioned_job(
    monthly_billing_job,
    name="monthly_invoicing_schedule",
    description="Rates, issues and reconciles the previous month on the 2nd at 01:00 UTC, one hour after the "
                "default 24-hour grace period ends (move it if BILLING_GRACE_HOURS changes). Stopped by "
                "default: the invoice issuing sensor does this; turn this on where sensors cannot run.",
    day_of_month=2,
    hour_of_day=1,
    minute_of_hour=0,
)
