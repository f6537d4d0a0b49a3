"""The sync ledger (`provider_sync`, CONTRACT.md §11): what this platform sent a billing provider
for each customer × meter × day, one row per send. The ledger, not the provider, makes the sync
exactly-once: a row is written (``planned``) before its request leaves, keeps its identifier
through every retry and re-run, and the next quantity to send is always the metered quantity
less everything the ledger already holds for that provider. Pure functions over rows; the
providers' clients and the Dagster asset are elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.providers import tables

KINDS = ("usage", "correction")
STATUSES = ("planned", "sent", "acknowledged", "failed")
# meters whose month is the sum of its days: a day's difference is the month's difference. The
# month of a max, unique_count or latest meter is not made of its days, so no daily delta can
# carry it (decision 47)
ADDITIVE = ("sum", "count")
# both providers aggregate usage in binary floating point: a quantity with more significant digits
# than a double holds would be rounded there, and this platform never rounds usage
MAX_DIGITS = 15


@dataclass(frozen=True)
class SyncRow:
    day: date
    customer_id: str
    meter: str
    provider: str  # none | stripe | orb: a dry run's plan never counts as sent to a real provider
    provider_customer_id: str | None
    identifier: str
    revision: int  # 1 for the day's first send of the key, then one more per correction
    quantity_sent: Decimal
    kind: str
    status: str
    provider_response: str | None
    failure_reason: str | None
    retryable: bool
    planned_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.customer_id, self.meter


def identifier(day: date, customer_id: str, meter: str, revision: int) -> str:
    """Deterministic, so a re-send of the same row is the same request to the provider."""
    return f"usage:{day.isoformat()}:{customer_id}:{meter}:{revision}"


def allocated(ledger: Iterable[SyncRow], provider: str) -> dict[tuple[str, str], Decimal]:
    """Per key, every quantity the ledger holds for ``provider``, whatever the row's state: a
    planned or failed row is owed, not forgotten (it is sent or retried in place, never planned
    again under a new identifier)."""
    totals: dict[tuple[str, str], Decimal] = {}
    for row in ledger:
        if row.provider == provider:
            totals[row.key] = totals.get(row.key, Decimal(0)) + row.quantity_sent
    return totals


def plan(day: date, metered: Mapping[tuple[str, str], Decimal], ledger: list[SyncRow], provider: str,
         provider_customers: Mapping[str, str], now: datetime) -> list[SyncRow]:
    """The rows to add so that, once sent, the ledger's quantities for ``provider`` add up to
    ``metered`` for every key: the first send of a key is ``usage``, any later difference a
    ``correction`` (negative when usage went down). A key metered before and not any more is
    corrected to zero. Nothing to add when the ledger already adds up: a re-run plans nothing."""
    held = allocated(ledger, provider)
    revisions: dict[tuple[str, str], int] = {}
    for row in ledger:
        if row.provider == provider:
            revisions[row.key] = max(revisions.get(row.key, 0), row.revision)
    added = []
    for key in sorted(set(metered) | set(held)):
        difference = metered.get(key, Decimal(0)) - held.get(key, Decimal(0))
        if difference == 0:
            continue
        revision = revisions.get(key, 0) + 1
        customer_id, meter = key
        added.append(SyncRow(
            day=day, customer_id=customer_id, meter=meter, provider=provider,
            provider_customer_id=provider_customers.get(customer_id), identifier=identifier(day, customer_id, meter, revision),
            revision=revision, quantity_sent=difference, kind="correction" if key in held else "usage",
            status="planned", provider_response=None, failure_reason=None, retryable=False, planned_at=now))
    return added


def to_send(ledger: list[SyncRow], provider: str, provider_customers: Mapping[str, str]) -> list[SyncRow]:
    """The rows a real provider still has to get: planned, sent without an answer, or failed in a
    way the provider says may succeed on another try. A failed row (the provider never took it)
    goes to the customer's provider id as mapped now: the fix for a missing mapping is the mapping."""
    if provider == "none":
        return []
    return [replace(row, provider_customer_id=provider_customers.get(row.customer_id)) if row.status == "failed" else row
            for row in ledger if row.provider == provider
            and (row.status in ("planned", "sent") or (row.status == "failed" and row.retryable))]


def settle(ledger: list[SyncRow], outcomes: Mapping[tuple[str, str], SyncRow]) -> list[SyncRow]:
    """The ledger with each sent row replaced by its outcome (keyed by provider and identifier)."""
    return [outcomes.get((row.provider, row.identifier), row) for row in ledger]


def plain(quantity: Decimal) -> str:
    """The exact decimal as a provider's payload takes it (plain notation, no trailing zeros)."""
    return format(quantity.normalize(), "f")


def significant_digits(quantity: Decimal) -> int:
    return len(quantity.normalize().as_tuple().digits)


def unmapped(customer_id: str, provider: str) -> str:
    """Why a send or refund of an unmapped customer failed (retryable: the fix is the mapping)."""
    return f"customer {customer_id} has no {provider} customer in reference/provider_customers.csv"


def too_precise(row: SyncRow, provider: str) -> SyncRow | None:
    """The row failed when ``provider`` could not hold its quantity exactly, else None."""
    if significant_digits(row.quantity_sent) <= MAX_DIGITS:
        return None
    return outcome(row, "failed", reason=f"{plain(row.quantity_sent)} has {significant_digits(row.quantity_sent)} "
                                         f"significant digits; {provider} takes at most {MAX_DIGITS} and this "
                                         "platform never rounds usage")


def outcome(row: SyncRow, status: str, response: str | None = None, reason: str | None = None,
            retryable: bool = False) -> SyncRow:
    """``row`` after a send: ``retryable`` only means something for a failed row."""
    return replace(row, status=status, provider_response=response, failure_reason=reason,
                   retryable=retryable and status == "failed")


SCHEMA = tables.check_schema(pa.schema([
    ("day", pa.date32()), ("customer_id", pa.string()), ("meter", pa.string()), ("provider", pa.string()),
    ("provider_customer_id", pa.string()), ("identifier", pa.string()), ("revision", pa.int64()),
    ("quantity_sent", QUANTITY_TYPE), ("kind", pa.string()), ("status", pa.string()),
    ("provider_response", pa.string()), ("failure_reason", pa.string()), ("retryable", pa.bool_()),
    ("planned_at", pa.timestamp("ns", tz="UTC"))
]), SyncRow)


def to_table(ledger: list[SyncRow]) -> pa.Table:
    return tables.to_table(ledger, SCHEMA)


def from_table(table: pa.Table) -> list[SyncRow]:
    return tables.from_table(table, SyncRow)
