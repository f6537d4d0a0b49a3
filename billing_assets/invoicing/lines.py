"""Invoice lines of one contract in one month, exactly as CONTRACT.md §5 orders them:
usage lines and the base fee, each rounded once; the discount on their rounded subtotal;
then the minimum-commitment true-up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing_assets.lib.currency import MINOR_UNIT_EXPONENT
from billing_assets.lib.money import minor_units, round_half_up
from billing_assets.rating.pricing import Charge, TierLine, price, prorated


@dataclass(frozen=True)
class PlanTerms:
    currency: str
    charges: tuple[Charge, ...]
    base_fee: Decimal | None = None
    minimum_commitment: Decimal | None = None


@dataclass(frozen=True)
class ContractMonth:
    """A contract as it applies to one month: which days of it the contract covers."""

    contract_id: str
    discount_percent: Decimal
    covered_days: int
    days_in_month: int


@dataclass(frozen=True)
class InvoiceLine:
    contract_id: str
    line_type: str  # usage | base_fee | discount | minimum_true_up
    meter: str | None
    quantity: Decimal | None
    amount_exact: Fraction
    amount_minor: int
    tiers: tuple[TierLine, ...] = ()


def contract_lines(contract: ContractMonth, plan: PlanTerms, quantities: Mapping[str, Decimal]) -> list[InvoiceLine]:
    """``quantities``: the contract's period aggregate per meter over the days it covers. A
    meter the plan does not price gets no line; a priced meter without usage gets a zero line."""
    currency = plan.currency
    lines = []
    for charge in plan.charges:
        priced = price(charge, quantities.get(charge.meter, Decimal(0)))
        lines.append(InvoiceLine(contract.contract_id, "usage", charge.meter, priced.quantity, priced.amount,
                                 minor_units(priced.amount, currency), priced.tiers))
    if plan.base_fee:
        fee = prorated(plan.base_fee, contract.covered_days, contract.days_in_month)
        lines.append(InvoiceLine(contract.contract_id, "base_fee", None, None, fee, minor_units(fee, currency)))
    return lines + terms_lines(contract, plan, sum(line.amount_minor for line in lines))


def terms_lines(contract: ContractMonth, plan: PlanTerms, subtotal: int) -> list[InvoiceLine]:
    """The contract's terms on its rounded charge lines: the discount on their subtotal, then the
    true-up to the prorated minimum commitment (only when there is something to top up)."""
    scale = 10 ** MINOR_UNIT_EXPONENT[plan.currency]
    lines, discount = [], 0
    if contract.discount_percent:
        exact = -Fraction(subtotal) * Fraction(contract.discount_percent) / 100
        discount = -round_half_up(-exact)
        lines.append(InvoiceLine(contract.contract_id, "discount", None, None, exact / scale, discount))
    if plan.minimum_commitment:
        minimum = minor_units(prorated(plan.minimum_commitment, contract.covered_days, contract.days_in_month),
                              plan.currency)
        true_up = max(0, minimum - (subtotal + discount))
        if true_up:
            lines.append(InvoiceLine(contract.contract_id, "minimum_true_up", None, None, Fraction(true_up, scale), true_up))
    return lines


def invoice_total(lines: Iterable[InvoiceLine]) -> int:
    """An invoice's total is the sum of its rounded lines, exactly (never a re-rounded sum)."""
    return sum(line.amount_minor for line in lines)


def invoice_number(month: str, customer_id: str) -> str:
    """``INV-YYYYMM-<customer_id>`` for month ``YYYY-MM``."""
    return f"INV-{month.replace('-', '')}-{customer_id}"
