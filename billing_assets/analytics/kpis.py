"""`billing_kpis` of one month (CONTRACT.md §9): the figures finance and billing operations track,
one row per currency — minor units of different currencies are never added. Quarantined lines
that name no known customer have no currency: they are counted on a row of their own, currency
`XXX` (ISO 4217's code for "no currency"), with no billable value.

Rates and percentages are exact decimals rounded half-up to 4 places; amounts are minor units."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal

from billing_assets.insights.charges import ContractTerms
from billing_assets.invoicing.lines import contract_lines, invoice_total

NO_CURRENCY = "XXX"
_PLACES = Decimal("0.0001")


def ratio(numerator: int, denominator: int, scale: int = 1) -> Decimal | None:
    """``scale × numerator / denominator`` to 4 places, half-up; None when there is nothing to divide by."""
    if not denominator:
        return None
    return (Decimal(scale * numerator) / Decimal(denominator)).quantize(_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class MonthFigures:
    """What a month's KPIs are computed from, read from the warehouse tables by the asset."""

    invoices: Sequence[dict]  # invoices rows
    adjustments: Sequence[dict]  # invoice_adjustments rows
    refunds: Sequence[dict]  # refunds rows
    # quarantined_events grouped by customer_id, meter and reason: lines, and Σ quantity (null if none)
    quarantined: Sequence[dict]
    accepted: Mapping[str, int]  # accepted events per customer (Σ metered event_count)
    duplicates: Mapping[str, int]  # duplicate lines per customer
    currency_of: Mapping[str, str]  # customers.csv
    terms: Mapping[str, ContractTerms]  # each customer's last contract of the month
    rated: Mapping[tuple[str, str], Decimal]  # rated quantity per (contract_id, meter)
    aggregation: Mapping[str, str]


def _lines_quantity(row: dict, aggregation: Mapping[str, str]) -> Decimal:
    """What a group of rejected lines would have added: a count meter's line is one event."""
    if aggregation.get(row["meter"]) == "count":
        return Decimal(row["lines"])
    return row["quantity"] if row["quantity"] is not None else Decimal(0)


def _billable(terms: ContractTerms, rated: Mapping[tuple[str, str], Decimal], extra: Mapping[str, Decimal]) -> int:
    """What ``extra`` usage would have added to the contract's month, through its own pricing."""
    actual = {meter: rated.get((terms.contract_id, meter), Decimal(0)) for meter in terms.charges}
    more = {meter: actual[meter] + extra.get(meter, Decimal(0)) for meter in terms.charges}
    return invoice_total(contract_lines(terms.contract_month(), terms.plan_terms(), more)) - invoice_total(
        contract_lines(terms.contract_month(), terms.plan_terms(), actual))


def quarantine_value(figures: MonthFigures) -> tuple[dict[str, dict[str, dict]], dict[str, int]]:
    """Per currency, per reason: lines, and the billable value of the known customers' summable
    usage priced at their plan, each reason alone; and per currency the value of all of it
    together (tiers, discounts and minimums make the reasons' values not add up to it)."""
    lines: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    usage: dict[tuple[str, str], dict[str, dict[str, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for row in figures.quarantined:
        customer = row["customer_id"]
        currency = figures.currency_of.get(customer, NO_CURRENCY) if customer else NO_CURRENCY
        lines[currency][row["reason"]] += row["lines"]
        summable = figures.aggregation.get(row["meter"]) in ("sum", "count")
        if currency != NO_CURRENCY and customer in figures.terms and summable:
            for key in ((currency, row["reason"]), (currency, None)):
                by_meter = usage[key].setdefault(customer, {})
                by_meter[row["meter"]] = by_meter.get(row["meter"], Decimal(0)) + _lines_quantity(row, figures.aggregation)

    def value(key) -> int:
        return sum(_billable(figures.terms[customer], figures.rated, extra) for customer, extra in usage.get(key, {}).items())

    result: dict[str, dict[str, dict]] = {}
    for currency, reasons in lines.items():
        result[currency] = {}
        for reason, count in sorted(reasons.items()):
            result[currency][reason] = {"lines": count,
                                        "billable_minor": None if currency == NO_CURRENCY else value((currency, reason))}
    return result, {currency: value((currency, None)) for currency in result if currency != NO_CURRENCY}


@dataclass(frozen=True)
class Onboarding:
    """A contract that started in the month, and its customer's issued invoices from that month on."""

    customer_id: str
    currency: str
    start_date: date
    invoices: Sequence[tuple[datetime, bool]]  # (issued at, corrected since), month by month


def onboarding_days(onboardings: Sequence[Onboarding]) -> dict[str, dict]:
    """Per currency: contracts onboarded, the mean days from a contract's start to the issue of its
    customer's first invoice that no correction followed (to 4 places, half-up; None before any
    has one), and how many are still waiting for such an invoice."""
    result: dict[str, dict] = {}
    for contract in onboardings:
        figures = result.setdefault(contract.currency, {"onboarded": 0, "seconds": [], "waiting": 0})
        figures["onboarded"] += 1
        right = next((issued for issued, corrected in contract.invoices if not corrected), None)
        if right is None:
            figures["waiting"] += 1
        else:
            start = datetime.combine(contract.start_date, time.min, tzinfo=timezone.utc)
            figures["seconds"].append(max(0, int((right - start).total_seconds())))
    return {currency: {"onboarded": figures["onboarded"], "waiting": figures["waiting"],
                       "days": None if not figures["seconds"] else (
                           Decimal(sum(figures["seconds"])) / (86_400 * len(figures["seconds"]))).quantize(
                           _PLACES, rounding=ROUND_HALF_UP)}
            for currency, figures in result.items()}


def billing_kpis(month: str, figures: MonthFigures, sla: Mapping[str, object],
                 onboardings: Sequence[Onboarding] = ()) -> list[dict]:
    """The month's rows, by currency. ``sla``: ``hits`` and ``misses`` (days metered by their
    deadline or not) and ``days_to_issue`` (month end to the invoices' issue, or None): the
    platform's, the same on every row. ``onboardings``: the contracts that started in the month."""
    quarantine, quarantine_total = quarantine_value(figures)
    onboarded = onboarding_days(onboardings)
    currencies = sorted({row["currency"] for row in figures.invoices} | set(quarantine) | set(onboarded))
    rows = []
    for currency in currencies:
        issued = [row for row in figures.invoices if row["currency"] == currency and row["status"] == "issued"]
        corrected = {row["invoice_number"] for row in figures.adjustments if row["currency"] == currency}
        billed = sum(row["total_minor"] for row in issued)
        credit = -sum(row["amount_minor"] for row in figures.adjustments
                      if row["currency"] == currency and row["kind"] == "credit_note")
        recovered = sum(row["amount_minor"] for row in figures.adjustments
                        if row["currency"] == currency and row["kind"] == "adjustment_invoice")
        customers = {customer for customer, paid_in in figures.currency_of.items() if paid_in == currency}
        accepted = sum(count for customer, count in figures.accepted.items() if customer in customers)
        duplicates = sum(count for customer, count in figures.duplicates.items() if customer in customers)
        reasons = quarantine.get(currency, {})
        right = sum(1 for row in issued if row["invoice_number"] not in corrected)
        onboarding = onboarded.get(currency, {"onboarded": 0, "waiting": 0, "days": None})
        rows.append({
            "month": month, "currency": currency, "invoices_issued": len(issued),
            "first_time_right_rate": ratio(right, len(issued)),
            "adjustment_rate": ratio(len(issued) - right, len(issued)),
            "billed_minor": billed, "credit_note_minor": credit, "credit_note_pct_of_billed": ratio(credit, billed, 100),
            "adjustment_invoice_minor": recovered,
            "refunds_minor": sum(row["amount_minor"] for row in figures.refunds if row["currency"] == currency),
            "quarantined_lines": sum(entry["lines"] for entry in reasons.values()),
            "quarantined_billable_minor": quarantine_total.get(currency, 0) if currency != NO_CURRENCY else None,
            "quarantined_by_reason": json.dumps(reasons, sort_keys=True),
            "duplicate_rate": ratio(duplicates, accepted + duplicates) if currency != NO_CURRENCY else None,
            "days_to_issue": sla["days_to_issue"], "sla_hits": sla["hits"], "sla_misses": sla["misses"],
            "contracts_onboarded": onboarding["onboarded"], "onboarding_to_first_right_days": onboarding["days"],
            "onboardings_awaiting_right_invoice": onboarding["waiting"],
        })
    return rows
