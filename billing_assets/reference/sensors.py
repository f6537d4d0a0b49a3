"""A changed reference file → re-validate it, and re-run exactly the partitions it touches.

To know what changed, the sensor keeps a copy of each file as it last acted on it under
``state/reference_sensor/`` and compares rows: a contract or IP allocation added, removed or
edited touches the days it covers; a meter or customer change touches every watched day
(any event may name them); a price change touches the watched months' rating only. Of those,
only partitions that were materialised before are requested: the raw usage sensor owns new ones.
"""

import csv
import hashlib
import io
import json
from datetime import date, timedelta

import dagster as dg

from billing_assets.jobs import daily_usage_job, monthly_billing_job, reference_job
from billing_assets.lib import clock
from billing_assets.lib.lake import BillingLake
from billing_assets.reference.loading import (
    CONTRACTS_KEY,
    CUSTOMERS_KEY,
    IP_ALLOCATIONS_KEY,
    METERS_KEY,
    PLANS_KEY,
    REFERENCE_KEYS,
)

SNAPSHOT_PREFIX = "state/reference_sensor/"
WATCHED_DAYS = 38  # the lookback of the raw usage sensor plus its recent days
DATED_ROWS = {CONTRACTS_KEY: ("start_date", "end_date"), IP_ALLOCATIONS_KEY: ("valid_from", "valid_to")}


def _rows(body: bytes | None) -> set[tuple]:
    if not body:
        return set()
    return {tuple(sorted(row.items())) for row in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}


def changed_days(key: str, before: bytes | None, after: bytes | None, yesterday: date) -> set[str] | None:
    """Days a change to ``key`` touches: a set for dated files, None for 'every watched day'."""
    if key not in DATED_ROWS:
        return None
    start_column, end_column = DATED_ROWS[key]
    days = set()
    for row in _rows(before) ^ _rows(after):  # added, removed, or either side of an edit
        fields = dict(row)
        try:
            first = date.fromisoformat(fields.get(start_column, ""))
            last = min(date.fromisoformat(fields[end_column]) if fields.get(end_column) else yesterday, yesterday)
        except ValueError:
            return None  # the new file is broken: validation says so; re-run everything watched
        days |= {(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)}
    return days


def contiguous(days: list[str]) -> list[tuple[str, str]]:
    """Sorted days → (first, last) runs of consecutive days."""
    spans: list[tuple[str, str]] = []
    for day in days:
        if spans and date.fromisoformat(spans[-1][1]) + timedelta(days=1) == date.fromisoformat(day):
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


def partition_request(job, first: str, last: str, run_key: str) -> dg.RunRequest:
    tags = {"billing/trigger": "reference_sensor"}
    if first == last:
        return dg.RunRequest(run_key=run_key, job_name=job.name, partition_key=first, tags=tags)
    return dg.RunRequest(run_key=run_key, job_name=job.name, tags=tags | {
        "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})


@dg.sensor(
    jobs=[reference_job, daily_usage_job, monthly_billing_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-validates changed reference files and re-runs the days and months the change touches.",
)
def reference_sensor(context: dg.SensorEvaluationContext, lake: BillingLake):
    seen = json.loads(context.cursor) if context.cursor else {}
    current = {item.key: item.etag for item in lake.list_objects("reference/") if item.key in REFERENCE_KEYS}
    changed = sorted(key for key in set(current) | set(seen) if current.get(key) != seen.get(key))
    if not changed:
        return dg.SkipReason("reference files unchanged")
    fingerprint = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:20]
    requests = [dg.RunRequest(run_key=f"reference:{fingerprint}", job_name=reference_job.name,
                              tags={"billing/trigger": "reference_sensor"})]

    yesterday = clock.now().date() - timedelta(days=1)
    watched_from = (yesterday - timedelta(days=WATCHED_DAYS)).isoformat()
    ingested = {day for day in context.instance.get_materialized_partitions(dg.AssetKey("usage_events"))}
    days: set[str] = set()
    reprice = False
    for key in changed:
        before = lake.get_bytes_or_none(SNAPSHOT_PREFIX + key)
        after = lake.get_bytes_or_none(key)
        if seen and key == PLANS_KEY:
            reprice = True
        elif seen and key in (METERS_KEY, CUSTOMERS_KEY, CONTRACTS_KEY, IP_ALLOCATIONS_KEY):
            touched = changed_days(key, before, after, yesterday)
            days |= {day for day in ingested if day >= watched_from} if touched is None else touched & ingested
        if after is None:
            lake.delete([SNAPSHOT_PREFIX + key])
        else:
            lake.put_bytes(SNAPSHOT_PREFIX + key, after)
    for first, last in contiguous(sorted(days)):
        requests.append(partition_request(daily_usage_job, first, last, f"reference:{fingerprint}:{first}:{last}"))
    if reprice:
        rated = context.instance.get_materialized_partitions(dg.AssetKey("rated_charges"))
        months = sorted(month for month in rated if month >= watched_from[:7])
        for first, last in [(m, m) for m in months]:
            requests.append(partition_request(monthly_billing_job, first, last, f"reference:{fingerprint}:{first}"))
    context.log.info(f"changed: {', '.join(changed)}; re-running {len(days)} day(s)"
                     + (f" and re-pricing {len(months)} month(s)" if reprice else ""))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))
