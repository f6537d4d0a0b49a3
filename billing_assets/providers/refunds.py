"""The refund ledger (`refund_requests`, CONTRACT.md §11): one row per credit note, the money it
gives back requested from the billing provider once, ever. The document number is the request's
idempotency key and is written on the refund itself (metadata), so a refund whose answer was
lost is found again at the provider instead of being asked for twice. Pure functions over rows;
the providers' clients and the Dagster asset are elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import pyarrow as pa

from billing_assets.providers import tables

STATUSES = ("planned", "requested", "succeeded", "failed")


@dataclass(frozen=True)
class RefundRow:
    document_number: str  # the credit note
    invoice_number: str
    customer_id: str
    provider: str
    provider_customer_id: str | None
    amount_minor: int  # > 0: what goes back to the customer
    currency: str
    idempotency_key: str  # = document_number
    status: str
    provider_refund_id: str | None
    provider_payment_id: str | None  # what the refund pays back from
    failure_reason: str | None
    retryable: bool  # a failed request the next run makes again (only when the provider says it may)
    planned_at: datetime


def plan(credit_notes: Iterable[dict], ledger: list[RefundRow], provider: str,
         provider_customers: Mapping[str, str], now: datetime) -> list[RefundRow]:
    """A planned row for each credit note the ledger has no row of for ``provider``."""
    known = {row.document_number for row in ledger if row.provider == provider}
    return [RefundRow(document_number=note["document_number"], invoice_number=note["invoice_number"],
                      customer_id=note["customer_id"], provider=provider,
                      provider_customer_id=provider_customers.get(note["customer_id"]),
                      amount_minor=note["amount_minor"], currency=note["currency"],
                      idempotency_key=note["document_number"], status="planned", provider_refund_id=None,
                      provider_payment_id=None, failure_reason=None, retryable=False, planned_at=now)
            for note in sorted(credit_notes, key=lambda note: note["document_number"])
            if note["document_number"] not in known]


def open_rows(ledger: list[RefundRow], provider: str, provider_customers: Mapping[str, str]) -> list[RefundRow]:
    """The rows still to request or to follow: planned, requested (not final), or failed in a way
    the provider says may succeed on another try (then to the customer as mapped now)."""
    if provider == "none":
        return []
    return [replace(row, provider_customer_id=provider_customers.get(row.customer_id)) if row.status == "failed" else row
            for row in ledger if row.provider == provider
            and (row.status in ("planned", "requested") or (row.status == "failed" and row.retryable))]


def settle(ledger: list[RefundRow], outcomes: Mapping[tuple[str, str], RefundRow]) -> list[RefundRow]:
    return [outcomes.get((row.provider, row.document_number), row) for row in ledger]


SCHEMA = tables.check_schema(pa.schema([
    ("document_number", pa.string()), ("invoice_number", pa.string()), ("customer_id", pa.string()),
    ("provider", pa.string()), ("provider_customer_id", pa.string()), ("amount_minor", pa.int64()),
    ("currency", pa.string()), ("idempotency_key", pa.string()), ("status", pa.string()),
    ("provider_refund_id", pa.string()), ("provider_payment_id", pa.string()),
    ("failure_reason", pa.string()), ("retryable", pa.bool_()), ("planned_at", pa.timestamp("ns", tz="UTC"))
]), RefundRow)


def to_table(ledger: list[RefundRow]) -> pa.Table:
    return tables.to_table(ledger, SCHEMA)


def from_table(table: pa.Table) -> list[RefundRow]:
    return tables.from_table(table, RefundRow)
