"""For deployments that run no sensors: yesterday's partition, every night."""

import dagster as dg

from billing_assets.jobs import daily_usage_job

daily_usage_schedule = dg.build_schedule_from_partitioned_job(
    daily_usage_job,
    name="daily_usage_schedule",
    description="Ingests and meters the previous UTC day at 01:00 UTC. Stopped by default: the raw usage "
                "sensor does this as files land; turn this on where sensors cannot run.",
    hour_of_day=1,
    minute_of_hour=0,
)
