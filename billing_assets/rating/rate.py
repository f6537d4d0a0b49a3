"""One month of metered usage → rated charges: for each contract active in the month, each
priced meter's exact period aggregate over the days the contract covers, priced, and the base
fee prorated. Discounts and minimums are invoice-level and come later."""

from __future__ import annotations

import json
import math
from calendar import monthrange
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from billing_assets.lib.money import QUANTITY_TYPE, decimal_text, exact_text, minor_units
from billing_assets.rating.period import period_quantity
from billing_assets.rating.pricing import Charge, price, prorated
from billing_assets.reference.loading import ReferenceData

RATED_CHARGES_SCHEMA = pa.schema([
    ("month", pa.string()),
    ("customer_id", pa.string()),
    ("contract_id", pa.string()),
    ("plan_id", pa.string()),
    ("currency", pa.string()),
    ("line_type", pa.string()),
    ("meter", pa.string()),
    ("model", pa.string()),
    ("quantity", QUANTITY_TYPE),
    ("amount_exact", pa.string()),
    ("amount_minor", pa.int64()),
    ("tiers", pa.string()),
    ("covered_days", pa.int32()),
    ("days_in_month", pa.int32()),
])


def month_days(month: str) -> list[date]:
    first = date.fromisoformat(f"{month}-01")
    return [first + timedelta(days=offset) for offset in range(monthrange(first.year, first.month)[1])]


def covered_days(contract: dict, days: list[date]) -> list[date]:
    """The month's days a contract covers: start_date <= day < end_date (empty end: open)."""
    start = date.fromisoformat(contract["start_date"])  # once per contract, not twice per day (10k contracts)
    end = date.fromisoformat(contract["end_date"]) if contract["end_date"] else date.max
    return [day for day in days if start <= day < end]


def _pricing_detail(charge: Charge, priced) -> list[dict]:
    """How the amount came about, for the line's reader: the tiers of a graduated or volume
    charge, the unit price of a per-unit one, the packages of a package one."""
    if charge.model in ("graduated", "volume"):
        return [{"tier": line.tier, "quantity": decimal_text(line.quantity), "unit_price": str(line.unit_price),
                 "amount": exact_text(line.amount)} for line in priced.tiers]
    if charge.model == "per_unit":
        return [{"quantity": decimal_text(priced.quantity), "unit_price": str(charge.unit_price),
                 "amount": exact_text(priced.amount)}]
    packages = math.ceil(Fraction(priced.quantity) / charge.package_size)
    return [{"packages": str(packages), "package_size": charge.package_size, "package_price": str(charge.package_price),
             "amount": exact_text(priced.amount)}]


def rate_month(month: str, metered: pa.Table, reference: ReferenceData) -> pa.Table:
    """``metered``: the month's ``metered_usage`` rows (any days present)."""
    days = month_days(month)
    usage: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in metered.to_pylist():
        usage[(row["customer_id"], row["meter"])].append(row)
    aggregation = reference.meter_aggregation()
    plans = {row["plan_id"]: row for row in reference.plans.to_dict("records")}
    charges_of = defaultdict(list)
    for row in reference.plan_charges.to_dict("records"):
        charges_of[row["plan_id"]].append(Charge.from_row(row))
    rows = []
    for contract in sorted(reference.contracts.to_dict("records"), key=lambda c: (c["customer_id"], c["start_date"])):
        covered = covered_days(contract, days)
        if not covered:
            continue
        plan, span = plans[contract["plan_id"]], set(covered)
        base = {"month": month, "customer_id": contract["customer_id"], "contract_id": contract["contract_id"],
                "plan_id": contract["plan_id"], "currency": plan["currency"], "covered_days": len(covered),
                "days_in_month": len(days)}
        for charge in charges_of[contract["plan_id"]]:
            in_span = [row for row in usage[(contract["customer_id"], charge.meter)] if row["day"] in span]
            priced = price(charge, period_quantity(aggregation[charge.meter], in_span))
            rows.append(base | {
                "line_type": "usage", "meter": charge.meter, "model": charge.model, "quantity": priced.quantity,
                "amount_exact": exact_text(priced.amount), "amount_minor": minor_units(priced.amount, plan["currency"]),
                "tiers": json.dumps(_pricing_detail(charge, priced)),
            })
        if plan["base_fee"]:
            fee = prorated(Decimal(plan["base_fee"]), len(covered), len(days))
            rows.append(base | {"line_type": "base_fee", "meter": None, "model": None, "quantity": None,
                                "amount_exact": exact_text(fee), "amount_minor": minor_units(fee, plan["currency"]),
                                "tiers": None})
    return pa.Table.from_pylist(rows, schema=RATED_CHARGES_SCHEMA)
