"""Orb through its official SDK (orb-billing): usage as ingested events, refunds as credit notes,
and what Orb holds and invoiced read back. What Orb's API documents and this module relies on:

- an event's ``idempotency_key`` is ingested at most once, ever: a row re-sent after a lost
  answer is answered 200 and counted once, so an unanswered send is simply sent again;
- an event's timestamp must lie within the account's grace period (``grace``, 12 h unless the
  account says otherwise); an older day is ingested within a backfill of that day
  (``replace_existing_events`` false: what Orb holds stays, ours adds), closed once sent. Orb
  refuses overlapping pending backfills, so one left open by a crash is found and reused;
- property values are JSON numbers, aggregated by Orb in double precision: the quantity is
  written as the exact decimal literal (the SDK would send a float) and one with more than 15
  significant digits is refused here, as for Stripe. A correction may be negative: a sum metric
  adds it (unlike Stripe, decision 51);
- the SDK retries connection errors, 408, 409, 429 and 5xx itself (``Retry-After`` honoured);
  an ingest it gave up on may have arrived: its rows stay ``sent`` and go again next run;
- a 400 on ingest names each event it refused (``validation_errors`` by idempotency key); the
  others may have been taken and are re-sent under the same keys;
- a refund is an Orb credit note on the Orb invoice whose metadata names our invoice number
  (decision 52); its memo carries the credit note's number, by which it is found again when an
  answer was lost, and the document number is its request's ``Idempotency-Key``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, time as clock_time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from itertools import groupby

from billing_assets.lib.currency import MINOR_UNIT_EXPONENT
from billing_assets.lib.money import minor_units
from billing_assets.providers.ledger import SyncRow, outcome, plain, too_precise, unmapped
from billing_assets.providers.refunds import RefundRow

GRACE_PERIOD = timedelta(hours=12)
BATCH = 500  # events per ingest request, and ids per search: Orb's page size


def _moment(day: date) -> datetime:
    return datetime.combine(day, clock_time(12), timezone.utc)


def event_json(row: SyncRow) -> str:
    """One event, its quantity as the exact decimal literal (json.dumps would need a float)."""
    head = json.dumps({"event_name": row.meter, "idempotency_key": row.identifier,
                       "external_customer_id": row.provider_customer_id,
                       "timestamp": _moment(row.day).strftime("%Y-%m-%dT%H:%M:%SZ")})
    return f'{head[:-1]}, "properties": {{"quantity": {plain(row.quantity_sent)}}}}}'


def major_text(amount_minor: int, currency: str) -> str:
    """Minor units as the decimal string Orb's amounts are (``1250`` USD → ``12.50``)."""
    exponent = MINOR_UNIT_EXPONENT[currency]
    return format(Decimal(amount_minor).scaleb(-exponent), f".{exponent}f")


class OrbProvider:
    """One Orb account (its API key says which); ``endpoint`` replaces api.withorb.com/v1."""

    name = "orb"

    def __init__(self, api_key: str, endpoint: str | None = None, max_retries: int = 4,
                 grace: timedelta = GRACE_PERIOD):
        import orb

        self._orb = orb
        self.client = orb.Orb(api_key=api_key, base_url=endpoint, max_retries=max_retries)
        self.grace = grace

    # usage
    def _backfill(self, day: date) -> str:
        """The id of a pending backfill of exactly ``day``: one left open earlier, else a new one."""
        start = datetime.combine(day, clock_time(0), timezone.utc)
        for backfill in self.client.events.backfills.list(limit=100):
            if backfill.status == "pending" and backfill.timeframe_start == start \
                    and backfill.timeframe_end == start + timedelta(days=1):
                return backfill.id
        return self.client.events.backfills.create(timeframe_start=start, timeframe_end=start + timedelta(days=1),
                                                   replace_existing_events=False).id

    def _ingest(self, rows: list[SyncRow], backfill_id: str | None) -> dict[str, SyncRow]:
        orb = self._orb
        body = ('{"events": [' + ", ".join(event_json(row) for row in rows) + "]}").encode()
        options = {"params": {"backfill_id": backfill_id}} if backfill_id else {}
        try:
            self.client.post("/ingest", body=body, cast_to=orb.types.EventIngestResponse, options=options)
            return {row.identifier: outcome(row, "acknowledged", response="ingested" + (
                f" within backfill {backfill_id}" if backfill_id else "")) for row in rows}
        except orb.BadRequestError as error:
            refused = {entry.get("idempotency_key"): "; ".join(map(str, entry.get("validation_errors") or []))
                       for entry in (error.body or {}).get("validation_errors") or [] if isinstance(entry, dict)}
            return {row.identifier: outcome(row, "failed", reason=f"Orb refused it: {refused[row.identifier]}")
                    if row.identifier in refused else
                    outcome(row, "sent", reason="Orb refused other events of its request: re-sent under the same key")
                    for row in rows}
        except (orb.APIConnectionError, orb.InternalServerError) as error:
            # no answer, or a 5xx: it may have arrived; the same keys go again next run
            return {row.identifier: outcome(row, "sent", reason=f"no answer from Orb: {error}") for row in rows}
        except orb.APIStatusError as error:
            # refused whole (429 on every try, a key without access …): not taken; the keys keep
            # a later try exactly-once
            return {row.identifier: outcome(row, "failed", reason=f"Orb refused the request: {error}", retryable=True)
                    for row in rows}

    def send_usage(self, rows: list[SyncRow], now: datetime) -> dict[tuple[str, str], SyncRow]:
        """Each row as one event under its identifier; days past the grace period each within a
        backfill of that day. The outcome of each row, by identifier."""
        orb, done, ready = self._orb, {}, []
        for row in rows:
            if row.provider_customer_id is None:
                done[(row.provider, row.identifier)] = outcome(row, "failed", retryable=True,
                                                               reason=unmapped(row.customer_id, "Orb"))
            elif (refused := too_precise(row, "Orb")) is not None:
                done[(row.provider, row.identifier)] = refused
            else:
                ready.append(row)
        for day, group in groupby(sorted(ready, key=lambda row: row.day), key=lambda row: row.day):
            group = list(group)
            late = now - _moment(day) > self.grace
            try:
                backfill_id = self._backfill(day) if late else None
            except orb.APIError as error:
                done |= {(row.provider, row.identifier): outcome(
                    row, "failed", retryable=True, reason=f"Orb did not open a backfill of {day}: {error}")
                    for row in group}
                continue
            settled = {}
            for start in range(0, len(group), BATCH):
                settled |= self._ingest(group[start:start + BATCH], backfill_id)
            # closed unless a send's fate is unknown: that one goes again, into this same backfill
            if backfill_id and not any(row.status == "sent" for row in settled.values()):
                try:
                    self.client.events.backfills.close(backfill_id)
                except orb.APIError as error:
                    # Orb counts none of it until closed: sent again next run (the keys make that
                    # harmless), into this backfill, which that run closes
                    settled = {identifier: outcome(row, "sent", reason=f"backfill {backfill_id} not closed: {error}")
                               if row.status == "acknowledged" else row for identifier, row in settled.items()}
            done |= {(row.provider, identifier): row for identifier, row in settled.items()}
        return done

    # refunds
    def _invoice(self, row: RefundRow):
        """The Orb invoice carrying our invoice number in its metadata, or None."""
        for invoice in self.client.invoices.list(external_customer_id=row.provider_customer_id, limit=100):
            if (invoice.metadata or {}).get("invoice_number") == row.invoice_number and invoice.status != "void":
                return invoice
        return None

    def _earlier(self, row: RefundRow):
        """A credit note made for this document before (its answer lost), or None."""
        return next((note for note in self.client.credit_notes.list(limit=100)
                     if note.memo == row.document_number), None)

    def _request(self, row: RefundRow) -> RefundRow:
        if row.provider_customer_id is None:
            return replace(row, status="failed", retryable=True, failure_reason=unmapped(row.customer_id, "Orb"))
        found = self._earlier(row)
        if found is not None:
            return replace(row, status="succeeded", provider_refund_id=found.id, provider_payment_id=found.invoice_id,
                           failure_reason=None, retryable=False)
        invoice = self._invoice(row)
        if invoice is None:
            return replace(row, status="failed", retryable=True, failure_reason=(
                f"no Orb invoice of {row.provider_customer_id} carries metadata invoice_number={row.invoice_number}"))
        if invoice.currency.upper() != row.currency:
            return replace(row, status="failed", retryable=False, provider_payment_id=invoice.id, failure_reason=(
                f"Orb invoice {invoice.id} is in {invoice.currency.upper()}, the credit note in {row.currency}"))
        lines, left = [], row.amount_minor
        amounts = [(minor_units(Fraction(line.amount), row.currency), line.id) for line in invoice.line_items]
        # credited line by line, largest first: a credit note line may not exceed its invoice line
        for amount, line_id in sorted(amounts, key=lambda pair: -pair[0]):
            share = min(left, amount)
            if share > 0:
                lines.append({"amount": major_text(share, row.currency), "invoice_line_item_id": line_id})
                left -= share
        if left:
            return replace(row, status="failed", retryable=False, provider_payment_id=invoice.id, failure_reason=(
                f"Orb invoice {invoice.id} totals less than the {major_text(row.amount_minor, row.currency)} "
                f"{row.currency} to credit"))
        try:
            note = self.client.credit_notes.create(line_items=lines, reason="order_change", memo=row.document_number,
                                                   idempotency_key=row.idempotency_key)
        except self._orb.BadRequestError as error:
            return replace(row, status="failed", retryable=False, provider_payment_id=invoice.id,
                           failure_reason=f"Orb refused the credit note: {error}")
        return replace(row, status="succeeded", provider_refund_id=note.id, provider_payment_id=invoice.id,
                       failure_reason=None, retryable=False)

    def request_refunds(self, rows: list[RefundRow], now: datetime) -> dict[tuple[str, str], RefundRow]:
        """Each open row's credit note made at Orb (once: see ``_request``)."""
        orb, done = self._orb, {}
        for row in rows:
            try:
                settled = self._request(row)
            except (orb.APIConnectionError, orb.InternalServerError) as error:
                # it may have been made: the next run finds it by the credit note's number
                settled = replace(row, status="requested", failure_reason=f"no answer from Orb: {error}")
            except orb.APIStatusError as error:  # refused (429 on every try, a key without access …): not made
                settled = replace(row, status="failed", retryable=True, failure_reason=f"Orb refused it: {error}")
            done[(row.provider, row.document_number)] = settled
        return done

    # reconciliation
    def usage_totals(self, customers: Mapping[str, str], meters: list[str], start: datetime, end: datetime,
                     sent: list[str] = ()) -> dict[tuple[str, str], Decimal]:
        """What Orb holds of the events ``sent`` (the ledger's identifiers) over [start, end), per
        customer × meter, read from the answer's JSON as exact decimals."""
        ours = {provider_id: customer for customer, provider_id in customers.items()}
        totals: dict[tuple[str, str], Decimal] = {}
        for first in range(0, len(sent), BATCH):
            answer = self.client.events.with_raw_response.search(
                event_ids=list(sent[first:first + BATCH]), timeframe_start=start, timeframe_end=end)
            for event in json.loads(answer.http_response.text, parse_float=Decimal)["data"]:
                customer = ours.get(event.get("external_customer_id"))
                if customer is None or event["deprecated"] or event["event_name"] not in meters:
                    continue
                key = (customer, event["event_name"])
                totals[key] = totals.get(key, Decimal(0)) + Decimal(event["properties"]["quantity"])
        return totals

    def invoice_totals(self, provider_ids: list[str], start: datetime, end: datetime) -> dict[str, tuple[int, str]]:
        """Per Orb customer (external id), the total of its invoices whose service periods lie
        within [start, end): Orb dates a month in arrears on the next month's first day."""
        totals = {}
        for provider_id in provider_ids:
            inside = [invoice for invoice in self.client.invoices.list(
                external_customer_id=provider_id, invoice_date_gte=start, limit=100)
                if invoice.status != "void" and invoice.line_items
                and all(start <= line.start_date and line.end_date <= end for line in invoice.line_items)]
            if inside:
                currency = inside[0].currency.upper()
                totals[provider_id] = (sum(minor_units(Fraction(invoice.total), currency) for invoice in inside),
                                       currency)
        return totals
