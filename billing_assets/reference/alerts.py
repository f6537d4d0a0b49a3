"""`reference/alerts.yaml` (optional, CONTRACT.md §8): usage, spend, commitment and forecast
alerts, and soft and hard limits per meter. Validated like the other reference files: a bad
entry fails loudly with file, entry and problem; a missing file means no alerts and no limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import yaml

from billing_assets.reference.loading import ReferenceData, ReferenceDataError
from billing_assets.reference.schemas import DECIMAL_PATTERN

ALERTS_KEY = "reference/alerts.yaml"
KINDS = ("usage", "spend", "commitment", "forecast_spend")
ALERT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Subject:
    """Whom an entry is for: one customer, or every customer on a plan."""

    plan_id: str | None
    customer_id: str | None

    def applies_to(self, customer_id: str, plan_id: str) -> bool:
        return self.customer_id == customer_id if self.customer_id else self.plan_id == plan_id


@dataclass(frozen=True)
class Alert(_Subject):
    alert_id: str
    kind: str
    threshold: Decimal  # a quantity (usage), an amount in the plan's currency, or a percentage (commitment)
    meter: str | None = None
    plan_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class Limit(_Subject):
    meter: str
    soft_limit: Decimal
    hard_limit: Decimal
    plan_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class AlertsConfig:
    alerts: tuple[Alert, ...] = ()
    limits: tuple[Limit, ...] = ()


def _decimal(entry: dict, name: str, where: str) -> Decimal:
    value = entry.get(name)
    if not isinstance(value, str) or not DECIMAL_PATTERN.fullmatch(value):
        raise ReferenceDataError(ALERTS_KEY, where, f"{name} must be a quoted decimal string such as \"1000\", got {value!r}")
    return Decimal(value)


def _subject(entry: dict, where: str, reference: ReferenceData) -> dict:
    """Exactly one of plan_id and customer_id, naming one that exists."""
    plan, customer = entry.get("plan_id"), entry.get("customer_id")
    if (plan is None) == (customer is None):
        raise ReferenceDataError(ALERTS_KEY, where, "give exactly one of plan_id and customer_id")
    if plan is not None and plan not in set(reference.plans["plan_id"]):
        raise ReferenceDataError(ALERTS_KEY, where, f"plan_id {plan!r} is not in reference/plans.yaml")
    if customer is not None and customer not in set(reference.customers["customer_id"]):
        raise ReferenceDataError(ALERTS_KEY, where, f"customer_id {customer!r} is not in reference/customers.csv")
    return {"plan_id": plan, "customer_id": customer}


def _meter(entry: dict, where: str, reference: ReferenceData) -> str:
    meter = entry.get("meter")
    if meter not in set(reference.meters["name"]):
        raise ReferenceDataError(ALERTS_KEY, where, f"meter {meter!r} is not in reference/meters.yaml")
    return meter


def _alert(entry: dict, where: str, reference: ReferenceData) -> Alert:
    unknown = set(entry) - {"alert_id", "plan_id", "customer_id", "meter", "kind", "threshold", "threshold_percent"}
    if unknown:
        raise ReferenceDataError(ALERTS_KEY, where, f"unknown key(s) {', '.join(sorted(unknown))}")
    alert_id = entry.get("alert_id")
    if not isinstance(alert_id, str) or not ALERT_ID.fullmatch(alert_id):
        raise ReferenceDataError(ALERTS_KEY, where, f"alert_id must be 1-64 characters of [A-Za-z0-9_-], got {alert_id!r}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ReferenceDataError(ALERTS_KEY, where, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    subject = _subject(entry, where, reference)
    meter = _meter(entry, where, reference) if kind == "usage" else None
    if kind != "usage" and "meter" in entry:
        raise ReferenceDataError(ALERTS_KEY, where, f"a {kind} alert is on the whole bill: it takes no meter")
    if kind == "commitment":
        if subject["plan_id"] and not reference.plans.set_index("plan_id").loc[subject["plan_id"], "minimum_commitment"]:
            raise ReferenceDataError(ALERTS_KEY, where, f"plan {subject['plan_id']!r} has no minimum_commitment to measure against")
        if "threshold" in entry:
            raise ReferenceDataError(ALERTS_KEY, where, "a commitment alert takes threshold_percent, not threshold")
        threshold = _decimal(entry, "threshold_percent", where)
    else:
        if "threshold_percent" in entry:
            raise ReferenceDataError(ALERTS_KEY, where, f"a {kind} alert takes threshold, not threshold_percent")
        threshold = _decimal(entry, "threshold", where)
    return Alert(alert_id, kind, threshold, meter, **subject)


def _limit(entry: dict, where: str, reference: ReferenceData) -> Limit:
    unknown = set(entry) - {"plan_id", "customer_id", "meter", "soft_limit", "hard_limit"}
    if unknown:
        raise ReferenceDataError(ALERTS_KEY, where, f"unknown key(s) {', '.join(sorted(unknown))}")
    subject = _subject(entry, where, reference)
    soft, hard = _decimal(entry, "soft_limit", where), _decimal(entry, "hard_limit", where)
    if soft > hard:
        raise ReferenceDataError(ALERTS_KEY, where, f"soft_limit {soft} is above hard_limit {hard}")
    return Limit(_meter(entry, where, reference), soft, hard, **subject)


def load_alerts(read: Callable[[str], bytes | None], reference: ReferenceData) -> AlertsConfig:
    body = read(ALERTS_KEY)
    if body is None:
        return AlertsConfig()
    try:
        document = yaml.safe_load(body.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ReferenceDataError(ALERTS_KEY, None, f"not valid YAML: {error}") from None
    if document is None:
        return AlertsConfig()
    if not isinstance(document, dict) or set(document) - {"alerts", "limits"}:
        raise ReferenceDataError(ALERTS_KEY, None, "expected top-level 'alerts:' and/or 'limits:' lists")
    sections = {}
    for name in ("alerts", "limits"):
        entries = document.get(name) or []
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise ReferenceDataError(ALERTS_KEY, None, f"'{name}:' must be a list of mappings")
        sections[name] = entries
    alerts = tuple(_alert(entry, f"alert {number}", reference) for number, entry in enumerate(sections["alerts"], 1))
    seen = set()
    for number, alert in enumerate(alerts, 1):
        if alert.alert_id in seen:
            raise ReferenceDataError(ALERTS_KEY, f"alert {number}", f"alert_id {alert.alert_id!r} is used twice")
        seen.add(alert.alert_id)
    limits = tuple(_limit(entry, f"limit {number}", reference) for number, entry in enumerate(sections["limits"], 1))
    return AlertsConfig(alerts, limits)
