"""Newly landed raw usage → one run of that day's partition.

A day is re-ingested whole (contract §1: a new object under an old ``dt=`` is late data), so
the sensor's unit is the day, fingerprinted by its objects' keys and ETags: a burst of files
is one fingerprint, hence one run, and listing the same objects again requests nothing. A day
whose latest ingest (``billing run``, a backfill) read exactly these objects needs no run either.

Listing cost is bounded: each tick lists the day folders once (one request per 1,000 days),
every object of the most recent days, a rotating slice of the older days within the lookback,
and any day folder it has never seen. Late files for days older than the lookback are left to
``billing run`` or a backfill from the UI.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import dagster as dg
from pydantic import Field

from billing_assets.jobs import daily_usage_job
from billing_assets.lib import clock
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import PARTITIONS_START
from billing_assets.usage.assets import RAW_FINGERPRINTS, day_fingerprint, raw_prefix

RAW_ROOT = "raw/usage/"
DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})/$")
DEFAULT_SETTLE_SECONDS = 30


class LandingWatch(dg.ConfigurableResource):
    """How far back and how often the raw-usage sensor looks."""

    recent_days: int = Field(default=3, description="Days before today listed in full on every tick.")
    lookback_days: int = Field(default=35, description="Older days still watched for late files, a slice per tick.")
    older_days_per_tick: int = Field(default=5, description="How many of the older watched days one tick lists.")
    settle_seconds: int | None = Field(
        default=None, description="A day whose newest object is younger than this waits a tick, so a burst of "
                                  "files becomes one run. Defaults to $BILLING_SETTLE_SECONDS, else 30.")
    as_of: str | None = Field(default=None, description="ISO instant to use as now (tests); default: the clock.")

    def now(self) -> datetime:
        return clock.now(self.as_of)

    def settle(self) -> timedelta:
        seconds = self.settle_seconds if self.settle_seconds is not None else int(
            os.environ.get("BILLING_SETTLE_SECONDS", DEFAULT_SETTLE_SECONDS))
        return timedelta(seconds=seconds)


@dataclass
class LandingCursor:
    """What the sensor has acted on: each day's fingerprint, where the rotation over older days
    stands, and the malformed keys already reported."""

    fingerprints: dict[str, str] = field(default_factory=dict)
    rotation: int = 0
    reported: str = ""

    @staticmethod
    def parse(text: str | None) -> "LandingCursor":
        if not text:
            return LandingCursor()
        data = json.loads(text)
        return LandingCursor(data.get("fingerprints", {}), data.get("rotation", 0), data.get("reported", ""))

    def dump(self) -> str:
        return json.dumps({"fingerprints": dict(sorted(self.fingerprints.items())), "rotation": self.rotation,
                           "reported": self.reported}, separators=(",", ":"))


def ingested_by(instance: dg.DagsterInstance, day: str, fingerprint: str) -> str | None:
    """The run whose ingest of ``day`` (the latest one) read exactly the objects ``fingerprint``
    names, if it did: a day ingested by ``billing run`` or a backfill needs no run of its own."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("usage_events"), asset_partitions=[day]), limit=1).records
    if not records:
        return None
    read = records[0].asset_materialization.metadata.get(RAW_FINGERPRINTS)
    return records[0].run_id if read is not None and read.value.get(day) == fingerprint else None


def classify_folders(folders: list[str], loose_keys: list[str], today: date) -> tuple[list[str], list[str]]:
    """(days that are partitions, problems) from the folders under raw/usage/. Today's folder is
    neither: its partition opens at midnight UTC."""
    first = date.fromisoformat(PARTITIONS_START)
    days, problems = [], [f"{key}: not inside a dt=YYYY-MM-DD/ folder" for key in loose_keys]
    for folder in folders:
        name = folder.removeprefix(RAW_ROOT)
        match = DAY_FOLDER.match(name)
        try:
            day = date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day = None
        if day is None:
            problems.append(f"{folder}: not a dt=YYYY-MM-DD folder")
        elif day < first:
            problems.append(f"{folder}: before the first partition ({PARTITIONS_START})")
        elif day > today:
            problems.append(f"{folder}: a day in the future")
        elif day < today:
            days.append(day.isoformat())
    return sorted(days), problems


def days_to_list(days: list[str], cursor: LandingCursor, watch: LandingWatch, today: date) -> list[str]:
    """This tick's share: recent days, never-seen days, and the next slice of the older watched days."""
    recent_from = (today - timedelta(days=watch.recent_days)).isoformat()
    watched_from = (today - timedelta(days=watch.recent_days + watch.lookback_days)).isoformat()
    always = [day for day in days if day >= recent_from or day not in cursor.fingerprints]
    older = [day for day in days if watched_from <= day < recent_from and day in cursor.fingerprints]
    if older:
        start = cursor.rotation % len(older)
        rotating = (older[start:] + older[:start])[:watch.older_days_per_tick]
        cursor.rotation = (start + len(rotating)) % len(older)
    else:
        rotating = []
    return sorted(set(always) | set(rotating))


@dg.sensor(
    job=daily_usage_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one run of a day's partition when its raw usage objects are new or changed.",
)
def raw_usage_sensor(context: dg.SensorEvaluationContext, lake: BillingLake, landing_watch: LandingWatch):
    cursor = LandingCursor.parse(context.cursor)
    now = landing_watch.now()
    folders, loose_keys = lake.list_folders(RAW_ROOT)
    days, problems = classify_folders(folders, loose_keys, now.date())
    reported = hashlib.sha256("\n".join(problems).encode()).hexdigest()[:20] if problems else ""
    if problems and reported != cursor.reported:
        context.log.warning(f"{len(problems)} raw usage key(s) are not in a valid day folder and are not ingested: "
                            + "; ".join(problems[:20]))
    cursor.reported = reported

    requests, settling = [], []
    for day in days_to_list(days, cursor, landing_watch, now.date()):
        objects = list(lake.list_objects(raw_prefix(day)))
        if not objects:
            continue
        fingerprint = day_fingerprint(objects)
        if cursor.fingerprints.get(day) == fingerprint:
            continue
        if now - max(item.last_modified for item in objects) < landing_watch.settle():
            settling.append(day)
            continue
        cursor.fingerprints[day] = fingerprint
        run_id = ingested_by(context.instance, day, fingerprint)
        if run_id:
            context.log.info(f"{day}: {len(objects)} object(s) already ingested as they are (run {run_id[:8]})")
            continue
        requests.append(dg.RunRequest(run_key=f"raw-usage:{day}:{fingerprint}", partition_key=day,
                                      tags={"billing/trigger": "raw_usage_sensor", "billing/objects": str(len(objects))}))
        context.log.info(f"{day}: {len(objects)} object(s), fingerprint {fingerprint} → run requested")
    if settling:
        context.log.info(f"still landing (newest object under {landing_watch.settle().seconds}s old): {', '.join(settling)}")
    if not requests:
        return dg.SensorResult(skip_reason=f"no new or changed raw usage objects in {len(days)} day folder(s)"
                               + (f"; {len(problems)} malformed key(s)" if problems else ""),
                               cursor=cursor.dump())
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
