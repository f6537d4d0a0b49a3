"""A local Orb for tests: the few endpoints the platform uses, on loopback, with the semantics
Orb's API reference documents — every request held to the SDK's parameter TypedDicts and every
answer to its pydantic models (typed.py):

- ``POST /ingest``: an idempotency key is ingested at most once, ever (a re-send is answered 200
  and not counted again); the same key twice with different bodies in one request rejects the
  request; an event older than the grace period is refused unless it comes within a pending
  backfill whose timeframe holds it; a refused event is named in a 400's ``validation_errors``
  while the others of the request are taken;
- backfills: created for a timeframe (refused while a pending one overlaps it), closed;
- ``POST /events/search`` by event ids, properties answered as the exact numbers received;
- invoices listed per external customer from ``invoice_date[gte]``; credit notes made against
  an invoice's lines (each no more than what is left of its line), listed; a request's
  ``Idempotency-Key`` replays the first answer, or is refused with another body;
- faults queued by the test (fake_http.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from urllib.parse import parse_qsl

from orb.types import (CreditNoteCreateParams, CreditNoteListParams, EventIngestResponse, EventSearchParams,
                       InvoiceListParams)
from orb.types.event_ingest_params import Event, EventIngestParams
from orb.types.event_search_response import Data as SearchedEvent
from orb.types.events import BackfillCreateParams, BackfillCreateResponse, BackfillListParams
from orb.types.shared import CreditNote, Invoice

from billing_assets_tests.providers.fake_http import FakeHandler, LocalProvider, serving as serve
from billing_assets_tests.providers.typed import model_problems, query_problems, sample, typed_dict_problems

ERRORS = "https://docs.withorb.com/reference/error-responses#"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _error(status: int, kind: str, title: str, **fields) -> tuple[int, dict, dict]:
    return status, {"type": ERRORS + kind, "status": status, "title": title, **fields}, {}


def _dumps(answer: dict) -> bytes:
    """JSON with each Decimal as the number literal it was received as."""
    text = json.dumps(answer, default=lambda value: f"\x00{value}\x00")
    return re.sub(r'"\x00([^\x00]*)\x00"', r"\1", text.replace("\\u0000", "\x00")).encode()


@dataclass
class FakeOrb(LocalProvider):
    now: datetime
    grace: timedelta = timedelta(hours=12)
    events: dict[str, dict] = field(default_factory=dict)  # idempotency key → event, as received
    backfills: dict[str, dict] = field(default_factory=dict)
    invoices: list[dict] = field(default_factory=list)
    credit_notes: list[dict] = field(default_factory=list)
    _idempotent: dict[str, tuple[str, int, dict]] = field(default_factory=dict)

    def held(self, customer: str, event_name: str) -> Decimal:
        """What a sum metric over ``event_name`` counts for ``customer``: events outside a
        backfill, and those of closed ones."""
        return sum((event["properties"]["quantity"] for event in self.events.values()
                    if event["external_customer_id"] == customer and event["event_name"] == event_name
                    and (event["backfill_id"] is None or self.backfills[event["backfill_id"]]["status"] == "reflected")),
                   Decimal(0))

    def add_invoice(self, customer: str, number: str, lines: list[tuple[str, str]], start: datetime, end: datetime,
                    currency: str = "USD", status: str = "paid") -> dict:
        """An Orb invoice of ``customer`` for [start, end) with ``lines`` (id, amount), its metadata
        naming our ``number``."""
        line_items = [sample(Invoice.model_fields["line_items"].annotation.__args__[0]) | {
            "id": line_id, "amount": amount, "subtotal": amount, "start_date": iso(start), "end_date": iso(end)}
            for line_id, amount in lines]
        total = str(sum((Decimal(amount) for _, amount in lines), Decimal(0)))
        invoice = sample(Invoice) | {"id": f"inv_{len(self.invoices) + 1}", "currency": currency, "status": status,
                                     "customer": {"id": f"orb_{customer}", "external_customer_id": customer},
                                     "invoice_date": iso(end), "invoice_number": f"ORB-{len(self.invoices) + 1}",
                                     "metadata": {"invoice_number": number}, "line_items": line_items,
                                     "total": total, "subtotal": total, "amount_due": total}
        self.problems += model_problems(invoice, Invoice)
        self.invoices.append(invoice)
        return invoice

    # the API, one method per endpoint: (status, body, headers)
    def ingest(self, query: dict, body: dict) -> tuple[int, dict, dict]:
        self.problems += query_problems(query, EventIngestParams, "POST /ingest")
        self.problems += typed_dict_problems(body, EventIngestParams, "POST /ingest")
        backfill = self.backfills.get(query.get("backfill_id"))
        if query.get("backfill_id") and (backfill is None or backfill["status"] != "pending"):
            return _error(400, "400-request-validation-errors", "Backfill is not pending",
                          validation_errors=[f"backfill {query['backfill_id']} is not pending"])
        seen: dict[str, dict] = {}
        for event in body["events"]:
            if seen.setdefault(event["idempotency_key"], event) != event:
                return _error(400, "400-request-validation-errors", "Duplicate idempotency keys with different bodies",
                              validation_errors=[f"{event['idempotency_key']} appears with different bodies"])
        refused = []
        for event in body["events"]:
            self.problems += typed_dict_problems(event, Event, "POST /ingest event")
            key, moment = event["idempotency_key"], _instant(event["timestamp"])
            if key in self.events:
                continue  # ingested at most once
            if backfill is not None:
                problem = None if _instant(backfill["timeframe_start"]) <= moment < _instant(backfill["timeframe_end"]) \
                    else "timestamp is outside the backfill's timeframe"
            else:
                problem = None if self.now - self.grace <= moment <= self.now + timedelta(minutes=5) else \
                    "timestamp is outside the grace period: use a backfill"
            if problem:
                refused.append({"idempotency_key": key, "validation_errors": [problem]})
            else:
                self.events[key] = event | {"backfill_id": backfill and backfill["id"]}
        if refused:
            return _error(400, "400-request-validation-errors", "Some events failed validation",
                          validation_errors=refused)
        answer = {"validation_failed": []}
        self.problems += model_problems(answer, EventIngestResponse)
        return 200, answer, {}

    def list_backfills(self, query: dict) -> tuple[int, dict, dict]:
        self.problems += query_problems(query, BackfillListParams, "GET /events/backfills")
        return 200, {"data": list(self.backfills.values()),
                     "pagination_metadata": {"has_more": False, "next_cursor": None}}, {}

    def create_backfill(self, body: dict) -> tuple[int, dict, dict]:
        self.problems += typed_dict_problems(body, BackfillCreateParams, "POST /events/backfills")
        start, end = _instant(body["timeframe_start"]), _instant(body["timeframe_end"])
        for other in self.backfills.values():
            if other["status"] == "pending" and _instant(other["timeframe_start"]) < end \
                    and start < _instant(other["timeframe_end"]):
                return _error(400, "400-constraint-violation", f"Backfill overlaps pending backfill {other['id']}")
        backfill = {"id": f"bf_{len(self.backfills) + 1}", "close_time": None, "created_at": iso(self.now),
                    "customer_id": None, "events_ingested": 0,
                    "replace_existing_events": body.get("replace_existing_events", False), "reverted_at": None,
                    "status": "pending", "timeframe_start": iso(start), "timeframe_end": iso(end)}
        self.problems += model_problems(backfill, BackfillCreateResponse)
        self.backfills[backfill["id"]] = backfill
        return 200, backfill, {}

    def close_backfill(self, backfill_id: str) -> tuple[int, dict, dict]:
        backfill = self.backfills[backfill_id]
        backfill |= {"status": "reflected", "close_time": iso(self.now),
                     "events_ingested": sum(event["backfill_id"] == backfill_id for event in self.events.values())}
        return 200, backfill, {}

    def search(self, body: dict) -> tuple[int, dict, dict]:
        self.problems += typed_dict_problems(body, EventSearchParams, "POST /events/search")
        start = _instant(body["timeframe_start"]) if body.get("timeframe_start") else datetime.min.replace(tzinfo=timezone.utc)
        end = _instant(body["timeframe_end"]) if body.get("timeframe_end") else datetime.max.replace(tzinfo=timezone.utc)
        data = [{"id": key, "customer_id": None, "deprecated": False, "event_name": event["event_name"],
                 "external_customer_id": event["external_customer_id"], "properties": event["properties"],
                 "timestamp": event["timestamp"]}
                for key in body["event_ids"] if (event := self.events.get(key)) and start <= _instant(event["timestamp"]) < end]
        for event in data:
            self.problems += model_problems(event, SearchedEvent)
        return 200, {"data": data, "pagination_metadata": {"has_more": False, "next_cursor": None}}, {}

    def list_invoices(self, query: dict) -> tuple[int, dict, dict]:
        self.problems += query_problems(query, InvoiceListParams, "GET /invoices")
        since = _instant(query["invoice_date[gte]"]) if "invoice_date[gte]" in query else None
        data = [invoice for invoice in self.invoices
                if invoice["customer"]["external_customer_id"] == query.get("external_customer_id", invoice["customer"]["external_customer_id"])
                and (since is None or _instant(invoice["invoice_date"]) >= since)]
        return 200, {"data": data, "pagination_metadata": {"has_more": False, "next_cursor": None}}, {}

    def list_credit_notes(self, query: dict) -> tuple[int, dict, dict]:
        self.problems += query_problems(query, CreditNoteListParams, "GET /credit_notes")
        return 200, {"data": self.credit_notes, "pagination_metadata": {"has_more": False, "next_cursor": None}}, {}

    def credited(self, line_id: str) -> Fraction:
        return sum((Fraction(line["amount"]) for note in self.credit_notes for line in note["line_items"]
                    if line["id"].startswith(f"{line_id}:")), Fraction(0))

    def create_credit_note(self, body: dict) -> tuple[int, dict, dict]:
        self.problems += typed_dict_problems(body, CreditNoteCreateParams, "POST /credit_notes")
        lines = {line["id"]: (invoice, line) for invoice in self.invoices for line in invoice["line_items"]}
        invoices = {lines[item["invoice_line_item_id"]][0]["id"] for item in body["line_items"]
                    if item["invoice_line_item_id"] in lines}
        if len(invoices) != 1 or len(body["line_items"]) != len({i["invoice_line_item_id"] for i in body["line_items"]}):
            return _error(400, "400-request-validation-errors", "Line items must name distinct lines of one invoice",
                          validation_errors=["invoice_line_item_id"])
        for item in body["line_items"]:
            line = lines[item["invoice_line_item_id"]][1]
            if Fraction(item["amount"]) + self.credited(line["id"]) > Fraction(line["amount"]):
                return _error(400, "400-request-validation-errors", "Credit exceeds the line item's amount",
                              validation_errors=[f"line {line['id']}: {item['amount']} is more than is left"])
        invoice = lines[body["line_items"][0]["invoice_line_item_id"]][0]
        total = str(sum((Decimal(item["amount"]) for item in body["line_items"]), Decimal(0)))
        note = sample(CreditNote) | {
            "id": f"cn_{len(self.credit_notes) + 1}", "created_at": iso(self.now),
            "credit_note_number": f"CN-{len(self.credit_notes) + 1}", "invoice_id": invoice["id"],
            "customer": {"id": invoice["customer"]["id"], "external_customer_id": invoice["customer"]["external_customer_id"]},
            "memo": body.get("memo"), "reason": body["reason"].replace("_", " ").capitalize(),
            "subtotal": total, "total": total, "type": "refund" if invoice["status"] == "paid" else "adjustment",
            "line_items": [sample(CreditNote.model_fields["line_items"].annotation.__args__[0]) | {
                "id": f"{item['invoice_line_item_id']}:{len(self.credit_notes) + 1}", "amount": item["amount"],
                "subtotal": item["amount"], "item_id": "item", "name": "credit"} for item in body["line_items"]]}
        self.problems += model_problems(note, CreditNote)
        self.credit_notes.append(note)
        return 200, note, {}

    def handle(self, method: str, path: str, query: dict, body: dict, key: str | None) -> tuple[int, dict, dict]:
        closing = re.fullmatch(r"/events/backfills/([^/]+)/close", path)
        routes = {("POST", "/ingest"): lambda: self.ingest(query, body),
                  ("GET", "/events/backfills"): lambda: self.list_backfills(query),
                  ("POST", "/events/backfills"): lambda: self.create_backfill(body),
                  ("POST", "/events/search"): lambda: self.search(body),
                  ("GET", "/invoices"): lambda: self.list_invoices(query),
                  ("GET", "/credit_notes"): lambda: self.list_credit_notes(query),
                  ("POST", "/credit_notes"): lambda: self.create_credit_note(body)}
        route = (lambda: self.close_backfill(closing[1])) if method == "POST" and closing else routes.get((method, path))
        if route is None:
            return _error(404, "404-url-not-found", f"No route for {method} {path}")
        if key is None or method != "POST" or key.startswith("stainless-python-retry-"):
            return route()  # the SDK's own key for its retries: no replay asked for by this client
        fingerprint = json.dumps(body, sort_keys=True, default=str)
        if key in self._idempotent:
            earlier, status, answer = self._idempotent[key]
            if earlier != fingerprint:
                return _error(400, "400-request-validation-errors", "Idempotency key reused with other parameters",
                              validation_errors=["Idempotency-Key"])
            return status, answer, {}
        status, answer, headers = route()
        if status < 500:
            self._idempotent[key] = (fingerprint, status, answer)
        return status, answer, headers


class OrbHandler(FakeHandler):
    fake: FakeOrb

    def route(self, method, url, body):
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        return url.path.removeprefix("/v1"), (query, json.loads(body, parse_float=Decimal) if body else {})

    def respond(self, method, path, request):
        query, body = request
        return self.fake.handle(method, path, query, body, self.headers.get("Idempotency-Key"))

    def fault_answer(self, status):
        kind = "429-too-many-requests" if status == 429 else "500-internal-server-error"
        return _error(status, kind, "Too many requests" if status == 429 else "Internal error")[1]

    def encode(self, answer):
        return _dumps(answer)


def serving(fake: FakeOrb):
    """``fake`` on a loopback port; yields its base URL."""
    return serve(fake, OrbHandler)
