"""Each invoice line in words a customer can check by hand: what was counted and how, over which
days, at which prices; how the base fee was prorated, the discount taken, the minimum topped up.
The words are built from the same reference data and rounded lines that bill."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from billing_assets.invoicing.lines import ContractMonth, PlanTerms
from billing_assets.invoicing.render import money
from billing_assets.rating.pricing import Charge
from billing_assets.rating.rate import covered_days, month_days
from billing_assets.reference.loading import ReferenceData

RULES = {
    "count": "the number of accepted events",
    "sum": "the sum of the accepted events' quantities",
    "max": "the largest quantity reported",
    "latest": "the quantity of the latest event",
}


@dataclass(frozen=True)
class ContractTerms:
    """What a contract's lines are explained with, for one month."""

    contract_id: str
    plan_id: str
    currency: str
    first_day: date
    last_day: date
    covered_days: int
    days_in_month: int
    discount_percent: str
    base_fee: str
    minimum_commitment: str
    charges: dict[str, Charge]
    customer_id: str = ""

    def days(self, through: date | None = None) -> list[date]:
        """The days of the month the contract covers (up to ``through``, if given)."""
        span = [self.first_day + timedelta(days=offset) for offset in range(self.covered_days)]
        return span if through is None else [day for day in span if day <= through]

    def plan_terms(self, minimum: bool = True) -> PlanTerms:
        """The plan as the invoice's own pricing takes it (without the minimum: spending so far)."""
        return PlanTerms(self.currency, tuple(self.charges[meter] for meter in sorted(self.charges)),
                         base_fee=Decimal(self.base_fee) if self.base_fee else None,
                         minimum_commitment=Decimal(self.minimum_commitment) if minimum and self.minimum_commitment
                         else None)

    def contract_month(self, covered_days: int | None = None) -> ContractMonth:
        """The contract's terms for the month, as covering ``covered_days`` (default: all it covers)."""
        return ContractMonth(self.contract_id, Decimal(self.discount_percent or 0),
                             self.covered_days if covered_days is None else covered_days, self.days_in_month)


def contract_terms(reference: ReferenceData, month: str) -> dict[str, ContractTerms]:
    """Every contract with days in ``month``, by id."""
    days = month_days(month)
    plans = {row["plan_id"]: row for row in reference.plans.to_dict("records")}
    charges: dict[str, dict[str, Charge]] = {}
    for row in reference.plan_charges.to_dict("records"):
        charges.setdefault(row["plan_id"], {})[row["meter"]] = Charge.from_row(row)
    terms = {}
    for contract in reference.contracts.to_dict("records"):
        covered = covered_days(contract, days)
        if covered:
            plan = plans[contract["plan_id"]]
            terms[contract["contract_id"]] = ContractTerms(
                contract["contract_id"], contract["plan_id"], plan["currency"], covered[0], covered[-1], len(covered),
                len(days), contract["discount_percent"] or "", plan["base_fee"] or "", plan["minimum_commitment"] or "",
                charges.get(contract["plan_id"], {}), contract["customer_id"])
    return terms


def aggregation_rules(reference: ReferenceData) -> dict[str, str]:
    """Per meter, what its quantity is, in words."""
    return {row["name"]: f"the number of distinct properties.{row['field']} values" if row["aggregation"] == "unique_count"
            else RULES[row["aggregation"]] for row in reference.meters.to_dict("records")}


def _span(terms: ContractTerms) -> str:
    if terms.covered_days == terms.days_in_month:
        return "over the whole month"
    return (f"over {terms.first_day:%d %b}–{terms.last_day:%d %b}, the {terms.covered_days} of "
            f"{terms.days_in_month} days {terms.contract_id} covers")


def _tier_ranges(charge: Charge) -> list[str]:
    """Tiers in words: ``up_to`` is inclusive, so a tier starts just above the one before."""
    ranges, low = [], None
    for number, tier in enumerate(charge.tiers, start=1):
        if tier.up_to is None:
            span = "any quantity" if low is None else f"above {low:,f}"
        else:
            span = f"up to {tier.up_to:,f}" if low is None else f"above {low:,f} up to {tier.up_to:,f}"
        ranges.append(f"tier {number}: {span} at {tier.unit_price}")
        low = tier.up_to
    return ranges


def explain_line(line: Mapping, terms: ContractTerms, rules: Mapping[str, str], subtotal_minor: int,
                 unit: str | None) -> str:
    """One sentence (or a few) on how ``line`` came about. ``subtotal_minor``: the contract's
    rounded charge lines, which the discount and the minimum work from."""
    currency = terms.currency
    kind = line["line_type"]
    if kind == "usage":
        charge = terms.charges[line["meter"]]
        units = f" {unit}" if unit else ""
        head = (f"{line['meter']}: {line['quantity']}{units}, {rules[line['meter']]} "
                f"{_span(terms)}; {charge.model.replace('_', '-')} pricing")
        parts = json.loads(line["tiers"]) if line.get("tiers") else []
        if charge.model == "graduated":
            detail = "each unit at its tier's price (" + "; ".join(_tier_ranges(charge)) + ")"
        elif charge.model == "volume":
            detail = "every unit at the price of the tier the quantity falls in (" + "; ".join(_tier_ranges(charge)) + ")"
        elif charge.model == "per_unit":
            detail = f"at {charge.unit_price} a unit"
        else:
            detail = (f"in packages of {charge.package_size} at {charge.package_price} each, a started package "
                      f"counting whole ({parts[0]['packages'] if parts else 0} packages)")
        return f"{head}, {detail}; rounded once, half-up: {money(line['amount_minor'], currency)}."
    if kind == "base_fee":
        if terms.covered_days == terms.days_in_month:
            return f"Monthly base fee of plan {terms.plan_id}: {terms.base_fee}."
        return (f"Base fee {terms.base_fee} of plan {terms.plan_id} prorated by {terms.covered_days}/"
                f"{terms.days_in_month} days ({terms.first_day:%d %b}–{terms.last_day:%d %b}): exactly "
                f"{line['amount_exact']}, rounded half-up to {money(line['amount_minor'], currency)}.")
    if kind == "discount":
        return (f"Contract discount of {terms.discount_percent} % on the charges' subtotal of "
                f"{money(subtotal_minor, currency)}, rounded half-up: {money(line['amount_minor'], currency)}.")
    minimum = terms.minimum_commitment + ("" if terms.covered_days == terms.days_in_month
                                          else f" × {terms.covered_days}/{terms.days_in_month} days")
    return (f"Minimum commitment of {minimum} a month: the charges after discount came to less, so the "
            f"difference of {money(line['amount_minor'], currency)} is billed.")
