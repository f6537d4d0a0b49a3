"""A customer's usage statement for a month (CONTRACT.md §8): what they owe now, line by line
and why, their daily usage, the corrections since the invoice and what caused them, what changed
against the month before, and for an open month a forecast.

Everything is computed from the tables and documents that bill, so it ties to them exactly:
the lines are what the invoice and its corrections bill per line, and their sum is the total."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction

from billing_assets.invoicing.build import LINE_ORDER, billed_so_far
from billing_assets.lib.csv_cells import csv_bytes
from billing_assets.lib.currency import MINOR_UNIT_EXPONENT
from billing_assets.lib.money import decimal_text, exact_text
from billing_assets.rating.period import period_quantity

LINE_COLUMNS = ("line_type", "contract_id", "meter", "quantity", "amount_exact", "amount_minor")
USAGE_COLUMNS = ("day", "meter", "aggregation", "quantity", "event_count")


def _key(line: Mapping) -> tuple:
    return (line["contract_id"], line["line_type"], line["meter"] or "")


def standing_lines(issued: Mapping, corrections: Sequence[Mapping], current: Sequence[Mapping]) -> list[dict]:
    """An issued invoice's lines as they stand after its corrections: per line, the amount the
    invoice plus every correction bills. A line whose current computation bills the same takes
    that line's quantity and pricing; one the invoicing has not yet corrected keeps what was
    billed, marked ``pending``, so the statement never shows money no document billed."""
    billed = billed_so_far(issued, list(corrections))
    now = {_key(line): line for line in current}
    was = {_key(line): line for line in issued["lines"]}
    scale = 10 ** MINOR_UNIT_EXPONENT[issued["currency"]]
    lines = []
    for key in sorted(billed, key=lambda k: (k[0], LINE_ORDER[k[1]], k[2])):
        if billed[key] == 0 and key not in now:
            continue  # a line corrected away (a true-up no longer needed)
        if key in now and now[key]["amount_minor"] == billed[key]:
            lines.append(dict(now[key]))
        else:
            base = dict(was.get(key) or {"contract_id": key[0], "line_type": key[1], "meter": key[2] or None,
                                         "quantity": None, "tiers": None})
            lines.append(base | {"amount_minor": billed[key], "amount_exact": exact_text(Fraction(billed[key], scale)),
                                 "pending": True})
    return lines


def correction_causes(document: Mapping, previous_at: datetime, issued_at: datetime,
                      remetered: Mapping[str, datetime], usage_days: Mapping[str, set[str]],
                      issued_contracts: set[str]) -> dict:
    """What made a correction: the meters whose lines changed; the days of those meters whose
    metered usage was written again between the document before it and this one (late or
    corrected data); and a contract change when a base fee or a contract itself changed.
    ``remetered``: when each day's metered partition was last written; ``usage_days``: per meter,
    the customer's metered days."""
    meters = sorted({line["meter"] for line in document["lines"] if line["meter"]})
    days = sorted({day for meter in meters for day in usage_days.get(meter, ())
                   if day in remetered and previous_at < remetered[day] <= issued_at})
    contract_change = any(line["line_type"] == "base_fee" or line["contract_id"] not in issued_contracts
                          for line in document["lines"]) or (meters and not days)
    reasons = (["late or corrected usage"] if days else []) + (["a contract change"] if contract_change else [])
    if days:
        shown = ", ".join(days[:5]) + (f" and {len(days) - 5} more" if len(days) > 5 else "")
        why = f"usage of {', '.join(meters)} on {shown} arrived or was corrected after the invoice was issued"
    else:
        why = "the contract's terms or dates changed after the invoice was issued"
    if days and contract_change:
        why += "; the contract's terms or dates changed too"
    return {"document_number": document["document_number"], "kind": document["kind"],
            "amount_minor": document["amount_minor"], "issued_at": issued_at.isoformat(), "meters": meters,
            "days": days, "reasons": reasons, "explanation": why[0].upper() + why[1:] + ".",
            "lines": [dict(line) for line in document["lines"]]}


def meter_quantities(usage: Sequence[Mapping], aggregation: Mapping[str, str]) -> dict[str, str]:
    """The month's quantity per meter over all its days (a unique count over the whole month)."""
    by_meter = defaultdict(list)
    for row in usage:
        by_meter[row["meter"]].append(row)
    return {meter: decimal_text(period_quantity(aggregation[meter], rows)) for meter, rows in sorted(by_meter.items())}


def meter_amounts(lines: Sequence[Mapping]) -> dict[str, int]:
    """What the lines bill per meter (over all contracts)."""
    amounts = defaultdict(int)
    for line in lines:
        if line["meter"]:
            amounts[line["meter"]] += line["amount_minor"]
    return dict(sorted(amounts.items()))


def change_vs_previous(previous: Mapping | None, quantities: Mapping[str, str], amounts: Mapping[str, int]) -> list[dict]:
    """Per meter metered or billed in either month: quantity and amount then and now. ``previous``:
    the month before's ``quantities`` and ``amounts``, None when it has no statement (then null)."""
    then_quantities = (previous or {}).get("quantities", {})
    then_amounts = (previous or {}).get("amounts", {})
    meters = sorted(set(quantities) | set(amounts) | set(then_quantities) | set(then_amounts))
    return [{"meter": meter,
             "previous_quantity": then_quantities.get(meter, "0") if previous else None,
             "previous_amount_minor": then_amounts.get(meter, 0) if previous else None,
             "quantity": quantities.get(meter, "0"), "amount_minor": amounts.get(meter, 0)} for meter in meters]


@dataclass(frozen=True)
class StatementInputs:
    customer_id: str
    name: str
    currency: str
    month: str
    status: str  # month_to_date | final
    as_of: date | None
    lines: list[dict]
    corrections: list[dict]
    usage: list[dict]  # the customer's metered_usage rows of the month
    aggregation: dict[str, str]
    units: dict[str, str]
    previous: dict | None = None  # the month before's quantities and amounts per meter
    forecast: dict | None = None
    invoice_number: str | None = None


def build_statement(inputs: StatementInputs) -> dict:
    usage = sorted(inputs.usage, key=lambda row: (row["day"], row["meter"]))
    quantities = meter_quantities(usage, inputs.aggregation)
    lines = [{name: line.get(name) for name in (*LINE_COLUMNS, "tiers")} | {
        key: line[key] for key in ("explanation", "pending") if key in line} for line in inputs.lines]
    return {
        "customer_id": inputs.customer_id, "name": inputs.name, "month": inputs.month, "currency": inputs.currency,
        "status": inputs.status, "invoice_number": inputs.invoice_number,
        "as_of": inputs.as_of.isoformat() if inputs.as_of else None,
        "lines": lines,
        "total_minor": sum(line["amount_minor"] for line in lines),
        "corrections": inputs.corrections,
        "forecast": inputs.forecast,
        "quantities": quantities,
        "amounts": meter_amounts(lines),
        "change_vs_previous_month": change_vs_previous(inputs.previous, quantities, meter_amounts(lines)),
        "usage": [{"day": row["day"].isoformat(), "meter": row["meter"], "aggregation": row["aggregation"],
                   "quantity": decimal_text(row["quantity"]), "event_count": row["event_count"]} for row in usage],
        "units": {meter: inputs.units[meter] for meter in sorted({row["meter"] for row in usage} | {
            line["meter"] for line in lines if line["meter"]}) if meter in inputs.units},
    }


def statement_json(statement: Mapping) -> bytes:
    return (json.dumps(statement, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def lines_csv(statement: Mapping) -> bytes:
    return csv_bytes(LINE_COLUMNS, ([line[name] for name in LINE_COLUMNS] for line in statement["lines"]))


def usage_csv(statement: Mapping) -> bytes:
    return csv_bytes(USAGE_COLUMNS, ([row[name] for name in USAGE_COLUMNS] for row in statement["usage"]))
