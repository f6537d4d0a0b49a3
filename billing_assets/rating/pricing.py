"""The four pricing models and base-fee proration, in exact rational arithmetic.

Amounts stay exact (``Fraction``) until an invoice line is rounded, once, by
``lib.money.minor_units``; nothing here rounds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # inclusive; None = open
    unit_price: Decimal


@dataclass(frozen=True)
class Charge:
    """One priced meter of a plan, as ``plans.yaml`` states it."""

    meter: str
    model: str
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: int | None = None
    package_price: Decimal | None = None

    @classmethod
    def from_row(cls, row: dict) -> "Charge":
        """From a row of ``ReferenceData.plan_charges`` (all values text)."""
        tiers = tuple(Tier(None if tier["up_to"] is None else Decimal(tier["up_to"]), Decimal(tier["unit_price"]))
                      for tier in json.loads(row["tiers"])) if row["tiers"] else ()
        return cls(
            meter=row["meter"], model=row["model"],
            unit_price=Decimal(row["unit_price"]) if row["unit_price"] else None,
            tiers=tiers,
            package_size=int(row["package_size"]) if row["package_size"] else None,
            package_price=Decimal(row["package_price"]) if row["package_price"] else None,
        )


@dataclass(frozen=True)
class TierLine:
    tier: int  # 1-based
    quantity: Decimal
    unit_price: Decimal
    amount: Fraction


@dataclass(frozen=True)
class Priced:
    quantity: Decimal
    amount: Fraction
    tiers: tuple[TierLine, ...] = ()


def price(charge: Charge, quantity: Decimal) -> Priced:
    """The exact amount of ``quantity`` units under ``charge``, with its tier breakdown."""
    if charge.model == "per_unit":
        return Priced(quantity, Fraction(quantity) * Fraction(charge.unit_price))
    if charge.model == "graduated":
        lines, lower = [], Decimal(0)
        for number, tier in enumerate(charge.tiers, start=1):
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = max(Decimal(0), upper - lower)
            if units > 0:
                lines.append(TierLine(number, units, tier.unit_price, Fraction(units) * Fraction(tier.unit_price)))
            if tier.up_to is None or quantity <= tier.up_to:
                break
            lower = tier.up_to
        return Priced(quantity, sum((line.amount for line in lines), Fraction(0)), tuple(lines))
    if charge.model == "volume":
        number, tier = next((number, tier) for number, tier in enumerate(charge.tiers, start=1)
                            if tier.up_to is None or quantity <= tier.up_to)
        amount = Fraction(quantity) * Fraction(tier.unit_price)
        return Priced(quantity, amount, (TierLine(number, quantity, tier.unit_price, amount),))
    if charge.model == "package":
        packages = math.ceil(Fraction(quantity) / charge.package_size)
        return Priced(quantity, packages * Fraction(charge.package_price))
    raise ValueError(f"unknown pricing model {charge.model!r}")


def prorated(monthly: Decimal, covered_days: int, days_in_month: int) -> Fraction:
    """A monthly amount for the days a contract covers: monthly × covered / days in month."""
    return Fraction(monthly) * covered_days / days_in_month
