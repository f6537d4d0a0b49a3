"""Service levels: each day metered by its deadline, each month's invoices issued on time.

Dagster's ``FreshnessPolicy`` judges an asset as a whole; these SLAs are per partition, so they
are judged here from the instance's materialisation history and the objects' landing times."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pyarrow as pa
from pydantic import Field

from billing_assets.invoicing.assets import issued_invoice_documents
from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.lib import clock
from billing_assets.lib.lake import BillingLake, StoredObject

DEFAULT_METERED_BY_HOUR = 6
DEFAULT_ISSUED_WITHIN_HOURS = 6

SLA_REPORT_SCHEMA = pa.schema([
    ("dt", pa.string()), ("object_key", pa.string()), ("landed_at", pa.timestamp("us", tz="UTC")),
    ("landed_after_deadline", pa.bool_()), ("landed_after_invoicing", pa.bool_()),
    ("deadline", pa.timestamp("us", tz="UTC")), ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("metered_at", pa.timestamp("us", tz="UTC")), ("metered_lateness_seconds", pa.int64()),
    ("invoices_issued_at", pa.timestamp("us", tz="UTC")),
])


class SlaPolicy(dg.ConfigurableResource):
    """The platform's promises, and the clock they are judged by."""

    metered_by_hour: int = Field(default=DEFAULT_METERED_BY_HOUR,
                                 description="A day is metered by this hour (UTC) of the next day.")
    issued_within_hours: int = Field(default=DEFAULT_ISSUED_WITHIN_HOURS,
                                     description="A month's invoices are issued within this many hours of grace end.")
    lookback_days: int = Field(default=7, description="How many recent days (and months) the checks judge.")
    as_of: str | None = Field(default=None, description="ISO instant to judge against (tests); default: now.")

    def now(self) -> datetime:
        return clock.now(self.as_of)

    def metered_deadline(self, day: str) -> datetime:
        start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=timezone.utc)
        return start + timedelta(days=1, hours=self.metered_by_hour)

    def issued_deadline(self, month: str, billing_policy: BillingPolicy) -> datetime:
        return billing_policy.grace_end(month) + timedelta(hours=self.issued_within_hours)


def materialised_at(instance: dg.DagsterInstance, asset: str, partition: str, limit: int = 100) -> list[tuple[datetime, dict]]:
    """(when, metadata) of a partition's materialisations, newest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=limit).records
    return [(datetime.fromtimestamp(record.timestamp, timezone.utc),
             {key: value.value for key, value in record.asset_materialization.metadata.items()})
            for record in records]


@dataclass(frozen=True)
class DayVerdict:
    day: str
    severity: str  # "met", "missed", "no_files", "producer_late"
    detail: str


def judge_day(day: str, objects: list[StoredObject], metered: list[datetime], deadline: datetime) -> DayVerdict:
    """Met when a metering finished between the last on-time file's landing and the deadline.
    Files that land after the deadline are the producer's lateness, not the platform's miss."""
    on_time = [item.last_modified for item in objects if item.last_modified <= deadline]
    if not objects:
        return DayVerdict(day, "no_files", f"{day}: no usage landed by {deadline:%Y-%m-%d %H:%M} UTC")
    if not on_time:
        return DayVerdict(day, "producer_late", f"{day}: every file landed after the deadline {deadline:%Y-%m-%d %H:%M} UTC")
    last_landed = max(on_time)
    if any(last_landed <= at <= deadline for at in metered):
        return DayVerdict(day, "met", f"{day}: metered by {deadline:%Y-%m-%d %H:%M} UTC")
    return DayVerdict(day, "missed", f"{day}: files landed by {last_landed:%Y-%m-%d %H:%M} UTC were not metered by "
                                     f"the deadline {deadline:%Y-%m-%d %H:%M} UTC")


def invoices_issued_at(lake: BillingLake, month: str) -> datetime | None:
    """When the month's first invoice document was issued (its write-once object's landing)."""
    return min((item.last_modified for item in issued_invoice_documents(lake, month)), default=None)
