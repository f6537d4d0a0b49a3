"""Usage alerts and limits (CONTRACT.md §8), from the month's metered days: for each alert and
customer it applies to, the first day whose month-to-date value reaches the threshold; for each
limited meter, where month-to-date usage stands against its soft and hard limit.

Month-to-date values are worked out day by day from the metered rows of the days up to it, so a
late file that raises an earlier day moves the crossing to that day, and a correction that
lowers usage below the threshold undoes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from billing_assets.insights.charges import ContractTerms
from billing_assets.insights.forecast import forecast_customer
from billing_assets.invoicing.lines import contract_lines, invoice_total
from billing_assets.lib.currency import MINOR_UNIT_EXPONENT
from billing_assets.lib.money import decimal_text, exact_text, minor_units, round_half_up
from billing_assets.rating.pricing import prorated
from billing_assets.rating.period import period_quantity
from billing_assets.reference.alerts import Alert, AlertsConfig


def alert_key(alert: Alert, month: str) -> str:
    """The crossing's id: one per alert, customer (the folder it lives in) and month."""
    return f"{alert.alert_id}.{month}"


def spend_minor(terms: Sequence[ContractTerms], usage: Sequence[dict], aggregation: dict[str, str], through: date) -> int:
    """What the month would bill if it ended on ``through``: each contract's usage so far priced
    through its plan, its base fee prorated over its days so far, its discount; no minimum
    true-up (a minimum is the month's floor, not spending)."""
    total = 0
    for contract in terms:
        days = set(contract.days(through))
        if not days:
            continue
        quantities = {meter: period_quantity(aggregation[meter], [row for row in usage
                                                                  if row["meter"] == meter and row["day"] in days])
                      for meter in contract.charges}
        total += invoice_total(contract_lines(contract.contract_month(len(days)), contract.plan_terms(minimum=False),
                                              quantities))
    return total


def _commitment_minor(terms: Sequence[ContractTerms]) -> int:
    """The month's minimum commitment over the contracts' covered days, as the true-up uses it."""
    return sum(minor_units(prorated(Decimal(c.minimum_commitment), c.covered_days, c.days_in_month), c.currency)
               for c in terms if c.minimum_commitment and Decimal(c.minimum_commitment))


def value_on(alert: Alert, terms: Sequence[ContractTerms], usage: Sequence[dict], aggregation: dict[str, str],
             day: date) -> tuple[Fraction | Decimal, str] | None:
    """The alert's month-to-date value on ``day``, comparable with its threshold, and as text."""
    if alert.kind == "usage":
        quantity = period_quantity(aggregation[alert.meter], [row for row in usage
                                                              if row["meter"] == alert.meter and row["day"] <= day])
        return quantity, decimal_text(quantity)
    scale = 10 ** MINOR_UNIT_EXPONENT[terms[0].currency]
    if alert.kind == "commitment":
        minimum = _commitment_minor(terms)
        if not minimum:
            return None
        percent = Fraction(spend_minor(terms, usage, aggregation, day) * 100, minimum)
        # compared exactly; shown to 2 places, half-up (a share, not an amount of money)
        return percent, exact_text(Fraction(round_half_up(percent * 100), 100))
    amount = (spend_minor(terms, usage, aggregation, day) if alert.kind == "spend"
              else forecast_customer(terms, usage, aggregation, day)["expected_minor"])
    return Fraction(amount, scale), exact_text(Fraction(amount, scale))


def crossings(config: AlertsConfig, customers: dict[str, list[ContractTerms]], usage: dict[str, list[dict]],
              aggregation: dict[str, str], month: str, through: date) -> list[dict]:
    """Every alert's crossing in ``month`` up to ``through``, per customer it applies to (a
    customer whose contracts in the month include the alert's plan, or the one it names)."""
    rows = []
    first = date.fromisoformat(f"{month}-01")
    days = [first + timedelta(days=offset) for offset in range((through - first).days + 1)]
    for customer_id, terms in sorted(customers.items()):
        for alert in config.alerts:
            mine = [contract for contract in terms if alert.applies_to(customer_id, contract.plan_id)]
            if not mine:
                continue
            if alert.customer_id:
                mine = terms  # a customer's alert is on their whole bill
            for day in days:
                value = value_on(alert, mine, usage.get(customer_id, []), aggregation, day)
                if value is not None and value[0] >= alert.threshold:
                    rows.append({"alert_id": alert.alert_id, "customer_id": customer_id, "month": month,
                                 "kind": alert.kind, "meter": alert.meter, "threshold": decimal_text(alert.threshold),
                                 "value": value[1], "crossed_on": day.isoformat(), "alert_key": alert_key(alert, month),
                                 "state": "open"})
                    break
    return rows


def entitlements(config: AlertsConfig, customers: dict[str, list[ContractTerms]], usage: dict[str, list[dict]],
                 aggregation: dict[str, str], month: str, as_of: date) -> dict[str, dict]:
    """Per customer with a limit: each limited meter's month-to-date use and its state."""
    documents = {}
    for customer_id, terms in sorted(customers.items()):
        limits = {}
        for limit in config.limits:
            # a plan's limit holds while the customer is on that plan: over the days of the
            # month its contracts on it cover, if one covers the day the entitlements are as of
            covering = [contract for contract in terms if limit.applies_to(customer_id, contract.plan_id)]
            if not any(contract.first_day <= as_of <= contract.last_day for contract in covering):
                continue
            days = {day for contract in covering for day in contract.days(as_of)}
            used = period_quantity(aggregation[limit.meter], [row for row in usage.get(customer_id, [])
                                                              if row["meter"] == limit.meter and row["day"] in days])
            state = "hard_exceeded" if used > limit.hard_limit else "soft_exceeded" if used > limit.soft_limit else "ok"
            limits[limit.meter] = {"used": decimal_text(used), "soft_limit": decimal_text(limit.soft_limit),
                                   "hard_limit": decimal_text(limit.hard_limit), "state": state,
                                   "as_of": as_of.isoformat()}
        if limits:
            documents[customer_id] = {"customer_id": customer_id, "month": month, "as_of": as_of.isoformat(),
                                      "meters": limits}
    return documents
