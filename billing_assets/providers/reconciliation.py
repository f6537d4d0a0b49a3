"""`provider_reconciliation` rows (CONTRACT.md §11): the billing provider's view of a month — the
usage it holds per customer × meter and what it invoiced — against ours, every break named with
both figures. Pure functions; the provider's client reads its figures.

Usage comes back from Stripe aggregated in binary floating point (its meter event summaries are
JSON numbers): it matches ours when the two agree to 12 significant digits (decision 50). It is
compared, never billed from. Invoice totals are integers in minor units and compared exactly."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pyarrow as pa

from billing_assets.invoicing.render import money

STATUSES = ("matches", "break", "not_at_provider", "not_mapped", "not_compared")
USAGE_DIGITS = 12
SCHEMA = pa.schema([("month", pa.string()), ("customer_id", pa.string()), ("provider", pa.string()),
                    ("provider_customer_id", pa.string()), ("measure", pa.string()), ("meter", pa.string()),
                    ("ours", pa.string()), ("theirs", pa.string()), ("difference", pa.string()),
                    ("status", pa.string()), ("explanation", pa.string())])


def _same_usage(ours: Decimal, theirs: Decimal) -> bool:
    if ours == theirs:
        return True
    scale = max(abs(ours), abs(theirs))
    return abs(ours - theirs) <= scale.scaleb(-USAGE_DIGITS)


def _plain(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f") if quantity else "0"


def usage_rows(month: str, provider: str, ours: Mapping[tuple[str, str], Decimal],
               theirs: Mapping[tuple[str, str], Decimal] | None, mapping: Mapping[str, str],
               open_sends: Mapping[tuple[str, str], int]) -> list[dict]:
    """One row per customer × meter either side holds: ``theirs`` None when nothing was compared
    (no provider), ``open_sends`` the ledger's sends not acknowledged, named in a break."""
    rows = []
    for key in sorted(set(ours) | set(theirs or {})):
        customer, meter = key
        mine, held = ours.get(key, Decimal(0)), (theirs or {}).get(key)
        base = {"month": month, "customer_id": customer, "provider": provider,
                "provider_customer_id": mapping.get(customer), "measure": "usage", "meter": meter,
                "ours": _plain(mine), "theirs": None if held is None else _plain(held)}
        if theirs is None:
            rows.append(base | {"difference": None, "status": "not_compared",
                                "explanation": "BILLING_PROVIDER=none: nothing was sent, nothing to compare"})
            continue
        if customer not in mapping:
            rows.append(base | {"difference": None, "status": "not_mapped", "explanation":
                                f"{customer} has no provider customer in reference/provider_customers.csv: "
                                f"{_plain(mine)} {meter} of {month} are not at the provider"})
            continue
        held = held if held is not None else Decimal(0)
        difference = mine - held
        if _same_usage(mine, held):
            rows.append(base | {"theirs": _plain(held), "difference": "0", "status": "matches",
                                "explanation": f"{provider} holds the {_plain(mine)} {meter} we metered"})
            continue
        pending = open_sends.get(key, 0)
        rows.append(base | {"theirs": _plain(held), "difference": _plain(difference),
                            "status": "break" if key in (theirs or {}) else "not_at_provider",
                            "explanation": f"{provider} holds {_plain(held)} {meter} of {customer} for {month}, "
                                           f"we metered {_plain(mine)}: {_plain(abs(difference))} "
                                           f"{'missing there' if difference > 0 else 'too many there'}"
                                           + (f" ({pending} send(s) not acknowledged, see provider_sync)" if pending
                                              else "")})
    return rows


def invoice_rows(month: str, provider: str, ours: Mapping[str, tuple[int, str]],
                 theirs: Mapping[str, tuple[int, str]] | None, mapping: Mapping[str, str]) -> list[dict]:
    """One row per customer: what it owes for ``month`` (invoice plus corrections) against the
    total of the provider's invoices for the month."""
    rows = []
    for customer in sorted(ours):
        mine, currency = ours[customer]
        base = {"month": month, "customer_id": customer, "provider": provider,
                "provider_customer_id": mapping.get(customer), "measure": "invoice_total", "meter": None,
                "ours": str(mine)}
        provider_id = mapping.get(customer)
        if theirs is None or provider_id is None:
            rows.append(base | {"theirs": None, "difference": None,
                                "status": "not_compared" if theirs is None else "not_mapped",
                                "explanation": "BILLING_PROVIDER=none: nothing to compare" if theirs is None else
                                f"{customer} has no provider customer in reference/provider_customers.csv"})
            continue
        held = theirs.get(provider_id)
        if held is None:
            rows.append(base | {"theirs": None, "difference": str(mine), "status": "not_at_provider",
                                "explanation": f"{provider} has no invoice of {customer} for {month}; "
                                               f"we billed {money(mine, currency)}"})
            continue
        amount, their_currency = held
        if their_currency != currency:
            status, sentence = "break", (f"{provider} invoiced {customer} in {their_currency}, we bill in {currency}")
        elif amount == mine:
            status, sentence = "matches", f"{provider} invoiced the {money(mine, currency)} we billed"
        else:
            status, sentence = "break", (f"{provider} invoiced {customer} {money(amount, currency)} for {month}, "
                                         f"we billed {money(mine, currency)}: "
                                         f"{money(abs(mine - amount), currency)} "
                                         f"{'less' if amount < mine else 'more'} there")
        rows.append(base | {"theirs": str(amount), "difference": str(mine - amount), "status": status,
                            "explanation": sentence})
    return rows


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)
