"""What the local providers (fake_stripe.py, fake_orb.py) share: the faults a test queues, the
requests they saw, and an HTTP handler on loopback that injects those faults around the fake's
own answer — a 429 with ``Retry-After``, a 500, or a lost answer (the request carried out, then
the connection closed without a word)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import SplitResult, urlsplit


@dataclass(kw_only=True)
class LocalProvider:
    faults: list[tuple] = field(default_factory=list)  # ("METHOD /path" prefix, "429" | "500" | "lose", seconds)
    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # type errors in either direction: a test fails on any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, request: str) -> tuple | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if request.startswith(fault[0]):
                    return self.faults.pop(index)
        return None


class FakeHandler(BaseHTTPRequestHandler):
    """A provider's HTTP face; a subclass says how a request reads and an error looks."""

    protocol_version = "HTTP/1.1"
    fake: LocalProvider

    def log_message(self, *_):
        pass

    def route(self, method: str, url: SplitResult, body: bytes) -> tuple[str, object]:
        """The request's path as the fake names it, and what ``respond`` needs of it."""
        raise NotImplementedError

    def respond(self, method: str, path: str, request: object) -> tuple[int, dict, dict]:
        raise NotImplementedError

    def fault_answer(self, status: int) -> dict:
        raise NotImplementedError

    def encode(self, answer: dict) -> bytes:
        return json.dumps(answer).encode()

    def _serve(self, method: str):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        path, request = self.route(method, url, self.rfile.read(length) if length else b"")
        self.fake.requests.append((method, path))
        fault = self.fake.fault_for(f"{method} {path}")
        if fault and fault[1] in ("429", "500"):
            status = int(fault[1])
            self._answer(status, self.fault_answer(status), {"Retry-After": str(fault[2])} if status == 429 else {})
            return
        with self.fake.lock:
            status, answer, headers = self.respond(method, path, request)
        if fault and fault[1] == "lose":
            self.close_connection = True  # carried out; the answer never arrives
            return
        self._answer(status, answer, headers)

    def _answer(self, status: int, answer: dict, headers: dict):
        data = self.encode(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self._serve("POST")

    def do_GET(self):
        self._serve("GET")


@contextmanager
def serving(fake: LocalProvider, handler: type[FakeHandler]):
    """``fake`` answered by ``handler`` on a loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Bound", (handler,), {"fake": fake}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
