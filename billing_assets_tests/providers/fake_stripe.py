"""A local Stripe for tests: the few endpoints the platform uses, on loopback, with the semantics
Stripe documents — and every request and response held to the SDK's types generated from
Stripe's OpenAPI spec (typed.py):

- ``Idempotency-Key``: the same key and body replay the first answer, for 24 h; the same key with
  another body is refused (400 idempotency_error);
- a meter event's ``identifier`` is unique within 24 h of the fake's clock; a second one is
  refused ("An event already exists with identifier …", ``stripe-should-retry: false``); its
  timestamp must be within the past 35 days, its value at most 15 significant digits;
- payments found by ``metadata['invoice_number']:'…'`` search; refunds of a payment, each
  ending as the test says (``refund_fates``: succeeded at once, pending until read again, or
  failed with a reason), and never more than the payment's amount in total;
- faults queued by the test, one per request: a 429 with ``Retry-After``, a 500, or a lost
  response (the request is carried out, then the connection closes without an answer).
Answers are built on Stripe's own example objects (stripe_fixtures.json).
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

import stripe
from stripe.params._payment_intent_search_params import PaymentIntentSearchParams
from stripe.params._refund_create_params import RefundCreateParams
from stripe.params._invoice_list_params import InvoiceListParams
from stripe.params._refund_list_params import RefundListParams
from stripe.params.billing._meter_event_summary_list_params import MeterEventSummaryListParams
from stripe.params.billing._meter_list_params import MeterListParams
from stripe.params.billing._meter_event_create_params import MeterEventCreateParams

from billing_assets_tests.providers.fake_http import FakeHandler, LocalProvider, serving as serve
from billing_assets_tests.providers.typed import resource_problems, typed_dict_problems

DAY = 86_400
EXAMPLES = json.loads((Path(__file__).with_name("stripe_fixtures.json")).read_text())["resources"]


def example(resource: str, **fields) -> dict:
    return copy.deepcopy(EXAMPLES[resource]) | fields


def unflatten(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (``payload[value]=1``, ``expand[0]=x``) back to nested values."""
    body: dict = {}
    for name, value in pairs:
        parts = name.replace("]", "").split("[")
        target = body
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return body


def _numbers(body: dict, names: tuple[str, ...]) -> dict:
    """Form values are text: the integers the API types as integers, as integers."""
    return {key: int(value) if key in names else value for key, value in body.items()}


@dataclass
class FakeStripe(LocalProvider):
    now: float = field(default_factory=time.time)
    meter_events: list[dict] = field(default_factory=list)  # every event accepted, in order
    payments: dict[str, dict] = field(default_factory=dict)  # id → payment intent
    refunds: dict[str, dict] = field(default_factory=dict)  # id → refund, in creation order
    refund_fates: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # document → (status, reason)
    invoices: list[dict] = field(default_factory=list)
    _identifiers: dict[str, float] = field(default_factory=dict)
    _idempotent: dict[str, tuple[str, int, dict]] = field(default_factory=dict)

    def meter_total(self, customer: str, event_name: str) -> Decimal:
        return sum((Decimal(event["payload"]["value"]) for event in self.meter_events
                    if event["payload"]["stripe_customer_id"] == customer and event["event_name"] == event_name),
                   Decimal(0))

    def add_payment(self, invoice_number: str, customer: str, amount: int, currency: str = "usd") -> str:
        payment_id = f"pi_{len(self.payments) + 1:04d}"
        self.payments[payment_id] = example("payment_intent", id=payment_id, customer=customer, amount=amount,
                                            amount_received=amount, currency=currency, status="succeeded",
                                            metadata={"invoice_number": invoice_number}, last_payment_error=None)
        return payment_id

    def add_invoice(self, customer: str, period_start: int, period_end: int, total: int, currency: str = "usd") -> None:
        self.invoices.append(example("invoice", id=f"in_{len(self.invoices) + 1:04d}", customer=customer, total=total,
                                     currency=currency, period_start=period_start, period_end=period_end,
                                     status="paid", amount_due=total, amount_paid=total, amount_remaining=0))

    def refunds_of(self, document_number: str) -> list[dict]:
        return [refund for refund in self.refunds.values() if refund["metadata"].get("document_number") == document_number]

    # the API, one method per endpoint: (status, body, headers)
    def search_payments(self, body: dict) -> tuple[int, dict, dict]:
        self.problems += typed_dict_problems(body, PaymentIntentSearchParams, "GET /v1/payment_intents/search")
        found = re.fullmatch(r"metadata\['invoice_number'\]:'([^']*)'", body["query"])
        if not found:
            return 400, _error("This query is not supported by the fake.", "invalid_request_error", param="query"), {}
        data = [payment for payment in self.payments.values() if payment["metadata"].get("invoice_number") == found[1]]
        for payment in data:
            self.problems += resource_problems(payment, stripe.PaymentIntent)
        return 200, {"object": "search_result", "data": data, "has_more": False, "next_page": None,
                     "url": "/v1/payment_intents/search"}, {}

    def create_refund(self, body: dict) -> tuple[int, dict, dict]:
        body = _numbers(body, ("amount",))
        self.problems += typed_dict_problems(body, RefundCreateParams, "POST /v1/refunds")
        payment = self.payments.get(body.get("payment_intent"))
        if payment is None:
            return 400, _error("No such payment_intent.", "invalid_request_error", param="payment_intent"), {}
        refunded = sum(r["amount"] for r in self.refunds.values()
                       if r["payment_intent"] == payment["id"] and r["status"] != "failed")
        if refunded + body["amount"] > payment["amount"]:
            return 400, _error(f"Refund amount ({body['amount']}) is greater than unrefunded amount on charge "
                               f"({payment['amount'] - refunded}).", "invalid_request_error",
                               code="charge_already_refunded"), {"Stripe-Should-Retry": "false"}
        status, reason = self.refund_fates.get(body["metadata"]["document_number"], ("succeeded", None))
        refund = example("refund", id=f"re_{len(self.refunds) + 1:04d}", amount=body["amount"], currency=payment["currency"],
                         payment_intent=payment["id"], charge=None, created=int(self.now), metadata=body["metadata"],
                         reason=body.get("reason"), status=status, failure_reason=reason,
                         failure_balance_transaction=None)
        self.refunds[refund["id"]] = refund
        self.problems += resource_problems(refund, stripe.Refund)
        return 200, refund, {}

    def list_refunds(self, body: dict) -> tuple[int, dict, dict]:
        body = _numbers(body, ("limit",))
        self.problems += typed_dict_problems(body, RefundListParams, "GET /v1/refunds")
        data = [r for r in self.refunds.values() if r["payment_intent"] == body.get("payment_intent")]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"}, {}

    def list_meters(self, body: dict) -> tuple[int, dict, dict]:
        self.problems += typed_dict_problems(_numbers(body, ("limit",)), MeterListParams, "GET /v1/billing/meters")
        names = sorted({event["event_name"] for event in self.meter_events})
        data = [example("billing.meter", id=f"mtr_{name}", event_name=name, display_name=name) for name in names]
        for meter in data:
            self.problems += resource_problems(meter, stripe.billing.Meter)
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/billing/meters"}, {}

    def event_summaries(self, meter_id: str, body: dict) -> tuple[int, dict, dict]:
        body = _numbers(body, ("start_time", "end_time", "limit"))
        self.problems += typed_dict_problems(body, MeterEventSummaryListParams, "GET …/event_summaries")
        name = meter_id.removeprefix("mtr_")
        values = [Decimal(event["payload"]["value"]) for event in self.meter_events
                  if event["event_name"] == name and event["payload"]["stripe_customer_id"] == body["customer"]
                  and body["start_time"] <= event["timestamp"] < body["end_time"]]
        # Stripe aggregates in binary floating point and answers with a JSON number
        data = [example("billing.meter_event_summary", id=f"mtrusg_{name}", meter=meter_id,
                        aggregated_value=float(sum(float(value) for value in values)),
                        start_time=body["start_time"], end_time=body["end_time"])] if values else []
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/billing/meters"}, {}

    def list_invoices(self, body: dict) -> tuple[int, dict, dict]:
        body = _numbers(body, ("limit",))
        self.problems += typed_dict_problems(body, InvoiceListParams, "GET /v1/invoices")
        data = [invoice for invoice in self.invoices if invoice["customer"] == body.get("customer")]
        for invoice in data:
            self.problems += resource_problems(invoice, stripe.Invoice)
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/invoices"}, {}

    def retrieve_refund(self, refund_id: str) -> tuple[int, dict, dict]:
        refund = self.refunds.get(refund_id)
        if refund is None:
            return 404, _error(f"No such refund: '{refund_id}'", "invalid_request_error"), {}
        if refund["status"] == "pending":  # a pending refund settles by the time it is looked at again
            refund["status"] = "succeeded"
        return 200, refund, {}

    def create_meter_event(self, body: dict) -> tuple[int, dict, dict]:
        body = _numbers(body, ("timestamp",))
        self.problems += typed_dict_problems(body, MeterEventCreateParams, "POST /v1/billing/meter_events")
        identifier, stamp = body["identifier"], body.get("timestamp", int(self.now))
        seen = self._identifiers.get(identifier)
        if seen is not None and self.now - seen < DAY:
            return 400, _error(f"An event already exists with identifier {identifier}.", "invalid_request_error"), \
                {"Stripe-Should-Retry": "false"}
        if not self.now - 35 * DAY <= stamp <= self.now + 300:
            return 400, _error("Timestamp must be within the past 35 days and at most 5 minutes in the future.",
                               "invalid_request_error", param="timestamp"), {}
        value = Decimal(body["payload"]["value"])
        if len(value.normalize().as_tuple().digits) > 15:
            return 400, _error(f"The value in the event payload can have at most 15 digits. Received {value}.",
                               "invalid_request_error", code="meter_event_value_too_many_digits"), {}
        self._identifiers[identifier] = self.now
        event = {"object": "billing.meter_event", "created": int(self.now), "event_name": body["event_name"],
                 "identifier": identifier, "livemode": False, "payload": body["payload"], "timestamp": stamp}
        self.meter_events.append(event)
        self.problems += resource_problems(event, stripe.billing.MeterEvent)
        return 200, event, {}

    def handle(self, method: str, path: str, body: dict, key: str | None) -> tuple[int, dict, dict]:
        routes = {("POST", "/v1/billing/meter_events"): self.create_meter_event,
                  ("GET", "/v1/payment_intents/search"): self.search_payments,
                  ("POST", "/v1/refunds"): self.create_refund, ("GET", "/v1/refunds"): self.list_refunds,
                  ("GET", "/v1/billing/meters"): self.list_meters, ("GET", "/v1/invoices"): self.list_invoices}
        route = routes.get((method, path))
        if route is None and method == "GET" and path.startswith("/v1/refunds/"):
            return self.retrieve_refund(path.rsplit("/", 1)[1])
        summaries = re.fullmatch(r"/v1/billing/meters/([^/]+)/event_summaries", path)
        if route is None and method == "GET" and summaries:
            return self.event_summaries(summaries[1], body)
        if route is None:
            return 404, _error(f"Unrecognized request URL ({method}: {path}).", "invalid_request_error"), {}
        if key is None or method != "POST":
            return route(body)
        fingerprint = json.dumps(body, sort_keys=True)
        if key in self._idempotent and self.now - self._idempotent[key][3] < DAY:  # Stripe prunes keys after 24 h
            earlier, status, answer, _ = self._idempotent[key]
            if earlier != fingerprint:
                return 400, _error("Keys for idempotent requests can only be used with the same parameters they "
                                   "were first used with.", "idempotency_error"), {}
            return status, answer, {"Idempotent-Replayed": "true"}
        status, answer, headers = route(body)
        if status < 500:
            self._idempotent[key] = (fingerprint, status, answer, self.now)
        return status, answer, headers


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, **({"code": code} if code else {}),
                      **({"param": param} if param else {})}}


class StripeHandler(FakeHandler):
    fake: FakeStripe

    def route(self, method, url, body):
        # form-encoded, in the body of a POST or the query of a GET
        return url.path, unflatten(parse_qsl(body.decode() or url.query, keep_blank_values=True))

    def respond(self, method, path, request):
        status, answer, headers = self.fake.handle(method, path, request, self.headers.get("Idempotency-Key"))
        return status, answer, headers | {"Request-Id": f"req_{len(self.fake.requests)}"}

    def fault_answer(self, status):
        return _error("Too many requests" if status == 429 else "An unknown error occurred", "api_error")


def serving(fake: FakeStripe):
    """``fake`` on a loopback port; yields its base URL."""
    return serve(fake, StripeHandler)
