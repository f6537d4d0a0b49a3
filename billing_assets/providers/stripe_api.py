"""Stripe Billing through its official SDK: usage as billing meter events, refunds, and what
Stripe billed read back. What Stripe's API documents and this module relies on:

- a meter event's ``identifier`` is unique within a rolling 24 h at least; a second event with it
  is refused (400, "An event already exists with identifier …") — proof the first arrived;
- a meter event's ``timestamp`` is within the past 35 days; its value has at most 15
  significant digits; an event can be cancelled only within 24 h, so usage already sent cannot
  be lowered by this platform (decision 48);
- the SDK retries connection errors and 5xx with the same ``Idempotency-Key`` (Stripe replays the
  first answer), not 429: rate limits are waited out here, by ``Retry-After`` when given;
- a refund pays back a payment: the one whose metadata names our invoice number (decision 49);
  Stripe keeps idempotency keys 24 h only, so before asking for a refund the payment's refunds
  are searched for one carrying the credit note's number: found, it is that refund.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, time as clock_time, timedelta, timezone
from decimal import Decimal

from dataclasses import replace

from billing_assets.providers.ledger import SyncRow, outcome, plain, too_precise, unmapped
from billing_assets.providers.refunds import RefundRow

IDENTIFIER_WINDOW = timedelta(hours=24)
TIMESTAMP_WINDOW = timedelta(days=35)


def retry_after(headers, attempt: int, cap: float = 60.0) -> float:
    """Seconds to wait before the next try: the provider's ``Retry-After`` when it gives one,
    else 1, 2, 4 … seconds."""
    given = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return min(float(given), cap) if given is not None else min(2.0 ** attempt, cap)
    except ValueError:
        return min(2.0 ** attempt, cap)


class StripeProvider:
    """One Stripe account (test or live by its key); ``endpoint`` replaces api.stripe.com."""

    name = "stripe"

    def __init__(self, api_key: str, endpoint: str | None = None, max_retries: int = 4,
                 sleep: Callable[[float], None] = time.sleep):
        import stripe

        self._stripe = stripe
        self.client = stripe.StripeClient(api_key, base_addresses={"api": endpoint} if endpoint else None,
                                          max_network_retries=max_retries)
        self.max_retries, self.sleep = max_retries, sleep

    def call(self, request: Callable[[], object]):
        """``request`` with rate limits waited out (the SDK itself retries the rest)."""
        for attempt in range(self.max_retries + 1):
            try:
                return request()
            except self._stripe.RateLimitError as error:
                if attempt == self.max_retries:
                    raise
                self.sleep(retry_after(error.headers, attempt))
        raise AssertionError("unreachable")

    def _unsendable(self, row: SyncRow, now: datetime) -> SyncRow | None:
        """The row's outcome when it must not, or cannot, be sent; None when it may go."""
        moment = datetime.combine(row.day, clock_time(12), timezone.utc)
        if row.provider_customer_id is None:
            return outcome(row, "failed", reason=unmapped(row.customer_id, "Stripe"), retryable=True)
        if row.status == "sent" and now - row.planned_at > IDENTIFIER_WINDOW:
            return outcome(row, "sent", reason="no answer was received and Stripe's 24 h identifier window has "
                                               "passed: a re-send could count twice; see provider_reconciliation")
        if row.quantity_sent < 0:
            return outcome(row, "failed", reason=f"usage went down by {plain(-row.quantity_sent)}: Stripe "
                                                 "cannot lower meter events it received (only cancel them within "
                                                 "24 h); the credit note or adjustment invoice carries it")
        if now - moment > TIMESTAMP_WINDOW:
            return outcome(row, "failed", reason=f"{row.day} is outside Stripe's 35-day window for meter events: "
                                                 "the adjustment invoice carries it")
        return too_precise(row, "Stripe")

    def send_usage(self, rows: list[SyncRow], now: datetime) -> dict[tuple[str, str], SyncRow]:
        """Each row as one meter event under its identifier; the outcome of each, by identifier."""
        stripe, done = self._stripe, {}
        for row in rows:
            settled = self._unsendable(row, now)
            if settled is None:
                moment = datetime.combine(row.day, clock_time(12), timezone.utc)
                params = {"event_name": row.meter, "identifier": row.identifier, "timestamp": int(moment.timestamp()),
                          "payload": {"stripe_customer_id": row.provider_customer_id,
                                      "value": plain(row.quantity_sent)}}
                try:
                    event = self.call(lambda: self.client.v1.billing.meter_events.create(params))
                    settled = outcome(row, "acknowledged", response=f"meter event {event.identifier} at {event.created}")
                except stripe.InvalidRequestError as error:
                    if "already exists with identifier" in (error.user_message or str(error)):
                        settled = outcome(row, "acknowledged", response="Stripe already held this identifier: an "
                                                                        "earlier send arrived, its answer was lost")
                    else:
                        settled = outcome(row, "failed", reason=f"Stripe refused it: {error.user_message or error}")
                except stripe.RateLimitError:
                    settled = outcome(row, "failed", reason="rate limited on every try", retryable=True)
                except (stripe.APIConnectionError, stripe.APIError) as error:
                    # no answer, or a 5xx: it may have arrived; the next run re-sends the same identifier
                    settled = outcome(row, "sent", reason=f"no answer from Stripe: {error.user_message or error}")
            done[(row.provider, row.identifier)] = settled
        return done

    def _payment(self, row: RefundRow):
        """The succeeded payment of the credit note's invoice, or None."""
        found = self.call(lambda: self.client.v1.payment_intents.search(
            {"query": f"metadata['invoice_number']:'{row.invoice_number}'"}))
        return next((payment for payment in found.data if payment.status == "succeeded"), None)

    def _refund_outcome(self, row: RefundRow, refund, payment_id: str) -> RefundRow:
        status = {"succeeded": "succeeded", "pending": "requested", "requires_action": "requested"}.get(refund.status)
        if status:
            return replace(row, status=status, provider_refund_id=refund.id, provider_payment_id=payment_id,
                           failure_reason=None, retryable=False)
        # failed or canceled: the money stays with the merchant; a new refund is billing ops' decision
        return replace(row, status="failed", provider_refund_id=refund.id, provider_payment_id=payment_id,
                       failure_reason=f"Stripe refund {refund.id} {refund.status}: "
                                      f"{getattr(refund, 'failure_reason', None) or 'no reason given'}",
                       retryable=False)

    def _request(self, row: RefundRow) -> RefundRow:
        stripe = self._stripe
        if row.provider_customer_id is None:
            return replace(row, status="failed", retryable=True, failure_reason=unmapped(row.customer_id, "Stripe"))
        payment = self._payment(row)
        if payment is None:
            return replace(row, status="failed", retryable=True, failure_reason=(
                f"no succeeded Stripe payment carries metadata invoice_number={row.invoice_number}: nothing to "
                "refund yet"))
        if payment.currency.upper() != row.currency:
            return replace(row, status="failed", retryable=False, provider_payment_id=payment.id, failure_reason=(
                f"payment {payment.id} is in {payment.currency.upper()}, the credit note in {row.currency}"))
        earlier = self.call(lambda: self.client.v1.refunds.list({"payment_intent": payment.id, "limit": 100}))
        found = next((refund for refund in earlier.data
                      if refund.metadata and refund.metadata.to_dict().get("document_number") == row.document_number),
                     None)
        if found is not None:  # asked for before, its answer lost: that refund, not a second one
            return self._refund_outcome(row, found, payment.id)
        params = {"payment_intent": payment.id, "amount": row.amount_minor, "reason": "requested_by_customer",
                  "metadata": {"document_number": row.document_number, "invoice_number": row.invoice_number}}
        try:
            refund = self.call(lambda: self.client.v1.refunds.create(
                params, {"idempotency_key": row.idempotency_key}))
        except stripe.InvalidRequestError as error:
            return replace(row, status="failed", provider_payment_id=payment.id,
                           retryable=(error.headers or {}).get("Stripe-Should-Retry") == "true",
                           failure_reason=f"Stripe refused the refund: {error.user_message or error}")
        return self._refund_outcome(row, refund, payment.id)

    def request_refunds(self, rows: list[RefundRow], now: datetime) -> dict[tuple[str, str], RefundRow]:
        """Each open row requested (once: see ``_request``) or, when requested, followed."""
        stripe, done = self._stripe, {}
        for row in rows:
            try:
                if row.status == "requested" and row.provider_refund_id:
                    refund = self.call(lambda: self.client.v1.refunds.retrieve(row.provider_refund_id))
                    settled = self._refund_outcome(row, refund, row.provider_payment_id)
                else:
                    settled = self._request(row)
            except stripe.RateLimitError:
                settled = replace(row, status="failed", retryable=True, failure_reason="rate limited on every try")
            except (stripe.APIConnectionError, stripe.APIError) as error:
                # it may have been made: the next run finds it by the credit note's number
                settled = replace(row, status="requested", failure_reason=f"no answer from Stripe: "
                                                                          f"{error.user_message or error}")
            done[(row.provider, row.document_number)] = settled
        return done

    def usage_totals(self, customers: Mapping[str, str], meters: list[str], start: datetime,
                     end: datetime, sent: list[str] = ()) -> dict[tuple[str, str], Decimal]:
        """What Stripe holds per customer × meter over [start, end): its meter event summaries,
        read as the decimal text of the number Stripe sent (Stripe sums by meter and customer:
        the identifiers ``sent`` are not needed)."""
        by_name = {meter.event_name: meter.id for meter in
                   self.call(lambda: self.client.v1.billing.meters.list({"limit": 100})).data}
        totals = {}
        for customer, provider_id in sorted(customers.items()):
            for meter in meters:
                if meter not in by_name:
                    continue
                summaries = self.call(lambda: self.client.v1.billing.meters.event_summaries.list(
                    by_name[meter], {"customer": provider_id, "start_time": int(start.timestamp()),
                                     "end_time": int(end.timestamp())}))
                if summaries.data:
                    totals[(customer, meter)] = sum((Decimal(repr(summary.aggregated_value))
                                                     for summary in summaries.data), Decimal(0))
        return totals

    def invoice_totals(self, provider_ids: list[str], start: datetime, end: datetime) -> dict[str, tuple[int, str]]:
        """Per Stripe customer, the total of its invoices whose period lies within [start, end)."""
        totals = {}
        for provider_id in provider_ids:
            invoices = self.call(lambda: self.client.v1.invoices.list({"customer": provider_id, "limit": 100}))
            inside = [invoice for invoice in invoices.data if invoice.status != "void"
                      and start.timestamp() <= invoice.period_start and invoice.period_end <= end.timestamp()]
            if inside:
                totals[provider_id] = (sum(invoice.total for invoice in inside), inside[0].currency.upper())
        return totals
