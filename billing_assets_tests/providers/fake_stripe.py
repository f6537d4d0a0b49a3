"""A local Stripe for tests: the few endpoints the platform uses, on loopback, with the semantics
Stripe documents — and every request and response held to the SDK's types generated from
Stripe's OpenAPI spec (typed.py):

- ``Idempotency-Key``: the same key and body replay the first answer; the same key with another
  body is refused (400 idempotency_error);
- a meter event's ``identifier`` is unique within 24 h of the fake's clock; a second one is
  refused ("An event already exists with identifier …", ``stripe-should-retry: false``); its
  timestamp must be within the past 35 days, its value at most 15 significant digits;
- faults queued by the test, one per request: a 429 with ``Retry-After``, a 500, or a lost
  response (the request is carried out, then the connection closes without an answer).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import stripe
from stripe.params.billing._meter_event_create_params import MeterEventCreateParams

from billing_assets_tests.providers.typed import resource_problems, typed_dict_problems

DAY = 86_400


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
class FakeStripe:
    now: float = field(default_factory=time.time)
    meter_events: list[dict] = field(default_factory=list)  # every event accepted, in order
    faults: list[tuple] = field(default_factory=list)  # (path prefix, "429" | "500" | "lose", seconds)
    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # type errors in either direction: a test fails on any
    _identifiers: dict[str, float] = field(default_factory=dict)
    _idempotent: dict[str, tuple[str, int, dict]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, path: str) -> tuple | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if path.startswith(fault[0]):
                    return self.faults.pop(index)
        return None

    def meter_total(self, customer: str, event_name: str) -> Decimal:
        return sum((Decimal(event["payload"]["value"]) for event in self.meter_events
                    if event["payload"]["stripe_customer_id"] == customer and event["event_name"] == event_name),
                   Decimal(0))

    # the API, one method per endpoint: (status, body, headers)
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
        routes = {("POST", "/v1/billing/meter_events"): self.create_meter_event}
        route = routes.get((method, path))
        if route is None:
            return 404, _error(f"Unrecognized request URL ({method}: {path}).", "invalid_request_error"), {}
        if key is None or method != "POST":
            return route(body)
        fingerprint = json.dumps(body, sort_keys=True)
        if key in self._idempotent:
            earlier, status, answer = self._idempotent[key]
            if earlier != fingerprint:
                return 400, _error("Keys for idempotent requests can only be used with the same parameters they "
                                   "were first used with.", "idempotency_error"), {}
            return status, answer, {"Idempotent-Replayed": "true"}
        status, answer, headers = route(body)
        if status < 500:
            self._idempotent[key] = (fingerprint, status, answer)
        return status, answer, headers


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, **({"code": code} if code else {}),
                      **({"param": param} if param else {})}}


def _handler(fake: FakeStripe):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _serve(self, method: str):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode() if length else url.query
            body = unflatten(parse_qsl(text, keep_blank_values=True))
            fake.requests.append((method, url.path))
            fault = fake.fault_for(url.path)
            if fault and fault[1] in ("429", "500"):
                status = int(fault[1])
                message = "Too many requests" if status == 429 else "An unknown error occurred"
                self._answer(status, _error(message, "api_error"),
                             {"Retry-After": str(fault[2])} if status == 429 else {})
                return
            with fake.lock:
                status, answer, headers = fake.handle(method, url.path, body, self.headers.get("Idempotency-Key"))
            if fault and fault[1] == "lose":
                self.close_connection = True  # carried out; the answer never arrives
                return
            self._answer(status, answer, headers)

        def _answer(self, status: int, answer: dict, headers: dict):
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{len(fake.requests)}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            self._serve("POST")

        def do_GET(self):
            self._serve("GET")

    return Handler


@contextmanager
def serving(fake):
    """``fake`` on a loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
