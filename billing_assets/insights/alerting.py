"""The alerts of a day, from the lake: crossings to the table and, once each, to the outbox; a
notified crossing that no longer holds retracted; each limited customer's entitlements file."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import pyarrow as pa

from billing_assets.insights.alerts import crossings, entitlements
from billing_assets.insights.charges import contract_terms
from billing_assets.lib.lake import BillingLake
from billing_assets.reference.alerts import AlertsConfig
from billing_assets.reference.loading import ReferenceData

USAGE_ALERTS_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "alert_id", "customer_id", "month", "kind", "meter", "threshold", "value", "crossed_on", "alert_key", "state")])


def _body(row: dict) -> bytes:
    return (json.dumps(row, indent=2, sort_keys=True) + "\n").encode()


class MonthAlerts:
    """A month's crossings, worked out once for all the days of a run asked about: a crossing's
    day depends only on the days up to it, so those up to the run's last day hold for each day."""

    def __init__(self, lake: BillingLake, month: str, through: date, reference: ReferenceData, config: AlertsConfig):
        self.month, self.config = month, config
        self.customers = defaultdict(list)
        for contract in sorted(contract_terms(reference, month).values(), key=lambda c: c.first_day):
            self.customers[contract.customer_id].append(contract)
        self.usage = defaultdict(list)
        for partition, table in lake.read_month("metered_usage", month).items():
            if partition <= through.isoformat():
                for row in table.to_pylist():
                    self.usage[row["customer_id"]].append(row)
        self.aggregation = reference.meter_aggregation()
        self.rows = crossings(config, dict(self.customers), dict(self.usage), self.aggregation, month, through) \
            if config.alerts else []


def alerts_of_day(lake: BillingLake, day: str, month_alerts: MonthAlerts) -> tuple[pa.Table, dict]:
    """The ``usage_alerts`` rows of ``day`` (its month up to it), and what was written."""
    month, through, config = day[:7], date.fromisoformat(day), month_alerts.config
    rows = [dict(row) for row in month_alerts.rows if row["crossed_on"] <= day]
    outbox = {item.key for item in lake.list_objects(f"alerts/{month}/")}
    written = {"notified": 0, "retracted": 0, "entitlements": 0}
    for row in rows:
        key = f"alerts/{month}/{row['customer_id']}/{row['alert_key']}.json"
        if key not in outbox and lake.put_once(key, _body(row), "application/json"):
            written["notified"] += 1
    holding = {(row["customer_id"], row["alert_key"]) for row in rows}
    for key in sorted(outbox):
        customer_id, name = key.split("/")[2], key.rsplit("/", 1)[1]
        if name.endswith("-retracted.json") or (customer_id, name.removesuffix(".json")) in holding:
            continue
        notified = json.loads(lake.get_bytes(key))
        if notified["crossed_on"] > day:
            continue  # a crossing after this day is not this day's to judge
        row = notified | {"state": "retracted"}
        rows.append(row)
        retraction = key.removesuffix(".json") + "-retracted.json"
        if retraction not in outbox and lake.put_once(retraction, _body(row), "application/json"):
            written["retracted"] += 1
    if config.limits and _is_latest_metered_day(lake, day):
        for customer_id, document in entitlements(config, dict(month_alerts.customers), dict(month_alerts.usage),
                                                  month_alerts.aggregation, month, through).items():
            lake.put_bytes(f"entitlements/{customer_id}.json", _body(document), "application/json")
            written["entitlements"] += 1
    rows.sort(key=lambda row: (row["customer_id"], row["alert_id"]))
    return pa.Table.from_pylist(rows, schema=USAGE_ALERTS_SCHEMA), written


def _is_latest_metered_day(lake: BillingLake, day: str) -> bool:
    """Entitlements follow the month of the latest metered day: a re-run of an older day must
    not turn them back."""
    later = lake.client().list_objects_v2(Bucket=lake.bucket_name, Prefix="warehouse/metered_usage/dt=",
                                          StartAfter=f"warehouse/metered_usage/dt={day}/~", MaxKeys=1)
    return not later.get("Contents")
