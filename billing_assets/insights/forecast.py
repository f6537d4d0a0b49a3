"""End-of-month forecast of an open month: each priced meter's quantity projected from the
days metered so far, then priced through the plan exactly as the invoice will be (tiers, base
fee, discount, minimum true-up). Money is never projected linearly: a graduated tier or a
minimum makes the month's amount anything but a multiple of a day's.

The projection is a statistic, so it may be approximate; every quantity handed to pricing is an
exact decimal, and so every forecast amount is exactly what that quantity would be billed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from billing_assets.insights.charges import ContractTerms
from billing_assets.invoicing.lines import ContractMonth, PlanTerms, contract_lines, invoice_total

# two-sided 90 % of a normal: the interval is meant to hold the month's total nine times in ten
Z_90 = Decimal("1.6449")
RECENT_DAYS = 7  # a unique count's new values per day are read from the last week observed
FEW_DAYS = 3
QUANTUM = Decimal("1e-9")  # a billed quantity has at most 9 fractional digits

METHOD = (
    "Each meter's month-to-date quantity plus its daily mean so far times the days left "
    "(sum and count meters, the mean read from every day of the month so far, also before a "
    "contract that starts later; unique counts project their new values a day over the last 7 "
    "days observed; a max meter stays at its month-to-date peak, a latest meter between the "
    "days' own values), with a 90 % interval of ±1.645 standard deviations of a sum of that many "
    "days (the day-to-day spread, never less than a day's mean on fewer than 3 days, plus the "
    "uncertainty of the mean). Each projected quantity — expected, low and high — is priced "
    "through the plan exactly as the invoice will be: tiers, base fee, discount and minimum.")


@dataclass(frozen=True)
class Projection:
    so_far: Decimal
    expected: Decimal
    low: Decimal
    high: Decimal


def _sum_projection(daily: Sequence[Decimal], so_far: Decimal, remaining: int, integral: bool) -> Projection:
    """A sum of ``remaining`` more days like ``daily``: mean × days, and ±z of its spread, where
    the variance of a sum of r days whose mean is estimated from n is s²·(r + r²/n)."""
    n = len(daily)
    if remaining == 0 or n == 0:
        return Projection(so_far, so_far, so_far, so_far)
    with localcontext() as context:
        context.prec = 50
        mean = sum(daily, Decimal(0)) / n
        variance = sum(((value - mean) ** 2 for value in daily), Decimal(0)) / (n - 1) if n > 1 else Decimal(0)
        if n < FEW_DAYS:  # a spread read off one or two days means little: no narrower than a day's mean
            variance = max(variance, mean ** 2)
        spread = Z_90 * (variance * (remaining + Decimal(remaining) ** 2 / n)).sqrt()
        expected = so_far + mean * remaining
        low, high = max(so_far, expected - spread), expected + spread
    step = Decimal(1) if integral else QUANTUM
    return Projection(so_far, expected.quantize(step, ROUND_HALF_UP), low.quantize(step, ROUND_FLOOR),
                      high.quantize(step, ROUND_CEILING))


def project_meter(aggregation: str, rows: Sequence[dict], observed: Sequence[date], remaining: int,
                  history: Sequence[date] = ()) -> Projection:
    """``rows``: the customer's metered rows of one meter (a day without a row had no usage);
    ``observed``: the days so far that the contract covers; ``remaining``: the days it still
    covers after them. ``history``: the month's days so far, all contracts — what a day is like
    is read from them, so a contract that starts mid-month is projected from the customer's
    usage before it rather than from nothing."""
    by_day = {row["day"]: row for row in rows}
    if aggregation in ("sum", "count"):
        daily = [by_day[day]["quantity"] if day in by_day else Decimal(0) for day in (history or observed)]
        so_far = sum((by_day[day]["quantity"] for day in observed if day in by_day), Decimal(0))
        return _sum_projection(daily, so_far, remaining, aggregation == "count")
    if aggregation == "unique_count":
        seen: set[str] = set()
        new_per_day = []
        for day in observed:
            values = set(by_day[day]["distinct_values"] or ()) if day in by_day else set()
            new_per_day.append(Decimal(len(values - seen)))
            seen |= values
        return _sum_projection(new_per_day[-RECENT_DAYS:], Decimal(len(seen)), remaining, True)
    if aggregation == "max":
        held = max((by_day[day]["quantity"] for day in observed if day in by_day), default=Decimal(0))
        return Projection(held, held, held, held)
    # latest: the month-to-date winner stands until a later event replaces it, with a value like
    # the days' own winners so far
    winners = [by_day[day] for day in observed if day in by_day]
    if not winners:
        return Projection(*(Decimal(0),) * 4)
    held = max(winners, key=lambda row: (row["latest_timestamp"], row["latest_event_id"]))["quantity"]
    values = [row["quantity"] for row in winners] if remaining else [held]
    return Projection(held, held, min(values), max(values))


@dataclass(frozen=True)
class ContractForecast:
    """One contract's part of the month: its terms, and each priced meter's projection."""

    contract: ContractMonth
    plan: PlanTerms
    projections: dict[str, Projection]


def priced_forecast(contracts: Sequence[ContractForecast]) -> dict:
    """The month's amount at the expected, low and high quantities, each priced through the
    plan. Pricing need not be monotone (a volume tier boundary can lower an amount), so the
    interval is the smallest and largest of the three, and the expected value lies inside it."""
    totals = {}
    for scenario in ("expected", "low", "high"):
        totals[scenario] = sum(invoice_total(contract_lines(
            part.contract, part.plan, {meter: getattr(projection, scenario)
                                       for meter, projection in part.projections.items()})) for part in contracts)
    amounts = sorted(totals.values())
    return {"expected_minor": totals["expected"], "low_minor": amounts[0], "high_minor": amounts[-1],
            "method": METHOD,
            "meters": [{"contract_id": part.contract.contract_id, "meter": meter,
                        **{name: format(getattr(projection, name), "f")
                           for name in ("so_far", "expected", "low", "high")}}
                       for part in contracts for meter, projection in part.projections.items()]}


def forecast_customer(terms: Sequence[ContractTerms], usage: Sequence[dict], aggregation: dict[str, str],
                      as_of: date) -> dict:
    """The forecast of one customer's open month, from its metered rows up to ``as_of``."""
    by_meter: dict[str, list[dict]] = {}
    for row in usage:
        if row["day"] <= as_of:
            by_meter.setdefault(row["meter"], []).append(row)
    parts = []
    first = min((contract.first_day.replace(day=1) for contract in terms), default=as_of)
    history = [first + timedelta(days=offset) for offset in range((as_of - first).days + 1)]
    for contract in terms:
        observed = contract.days(as_of)
        projections = {meter: project_meter(aggregation[meter], by_meter.get(meter, ()), observed,
                                            contract.covered_days - len(observed), history)
                       for meter in sorted(contract.charges)}
        parts.append(ContractForecast(contract.contract_month(), contract.plan_terms(), projections))
    return priced_forecast(parts) | {"as_of": as_of.isoformat()}
