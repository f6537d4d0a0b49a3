"""Sessions of a day: a given session id, and 30-minute gaps per customer × IP prefix, against a
hand-worked day and an independent sessioniser over random events."""

import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa

from billing_assets.analytics.sessions import sessions_of_day
from billing_assets.usage.ingest.rules import USAGE_EVENTS_SCHEMA

DAY = date(2026, 1, 5)
AGGREGATION = {"egress_gb": "sum", "api_requests": "count", "peak_sessions": "max"}


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 1, 5, hour, minute, tzinfo=timezone.utc)


def _events(rows: list[dict]) -> pa.Table:
    full = [{"object_key": "raw/usage/dt=2026-01-05/a.jsonl", "line_number": number, "event_id": f"e{number}",
             "source": "", "attributed_by": "ip" if row.get("ip_prefix") else "customer_id", "unique_value": None,
             "customer_id": "acme", "ip_prefix": None, "properties": None, **row}
            for number, row in enumerate(rows, start=1)]
    return pa.Table.from_pylist(full, schema=USAGE_EVENTS_SCHEMA)


def test_a_hand_worked_day():
    prefix = "10.1.2.0/24"
    events = _events([
        {"timestamp": _at(10, 0), "meter": "egress_gb", "quantity": Decimal("1.5"), "properties": '{"session_id":"s-1"}'},
        {"timestamp": _at(10, 10), "meter": "egress_gb", "quantity": Decimal("2"), "properties": '{"session_id":"s-1"}'},
        {"timestamp": _at(10, 0), "meter": "api_requests", "quantity": Decimal(1), "ip_prefix": prefix},
        {"timestamp": _at(10, 30), "meter": "api_requests", "quantity": Decimal(1), "ip_prefix": prefix},  # 30 min: same
        {"timestamp": _at(11, 1), "meter": "peak_sessions", "quantity": Decimal(7), "ip_prefix": prefix},  # 31: new
        {"timestamp": _at(11, 2), "meter": "peak_sessions", "quantity": Decimal(4), "ip_prefix": prefix},
        {"timestamp": _at(10, 5), "meter": "api_requests", "quantity": Decimal(1)},  # by customer id: no prefix
        {"timestamp": _at(9, 0), "meter": "api_requests", "quantity": Decimal(1), "customer_id": "globex",
         "properties": '{"session_id":42,"plan":"x"}'},
    ])
    rows = {(row["customer_id"], row["session_id"]): row for row in sessions_of_day(DAY, events, AGGREGATION).to_pylist()}
    assert sorted(rows) == [("acme", "gap:-:1"), ("acme", f"gap:{prefix}:1"), ("acme", f"gap:{prefix}:2"),
                            ("acme", "s-1"), ("globex", "42")]
    given = rows[("acme", "s-1")]
    assert (given["events"], given["duration_seconds"], json.loads(given["quantities"])) == (2, 600, {"egress_gb": "3.5"})
    first, second = rows[("acme", f"gap:{prefix}:1")], rows[("acme", f"gap:{prefix}:2")]
    assert (first["events"], first["duration_seconds"], json.loads(first["quantities"])) == (2, 1800, {"api_requests": "2"})
    assert (second["started_at"], second["ended_at"]) == (_at(11, 1), _at(11, 2))
    assert json.loads(second["quantities"]) == {"peak_sessions": "7"}  # a max meter's session value is its max


def _independent(events: list[dict]) -> dict:
    """Sessions by a plain loop: per (customer, prefix) in time order, a new one past 30 minutes."""
    sessions, runs = {}, {}
    for event in sorted(events, key=lambda e: (e["timestamp"], e["line_number"])):
        if event["sid"] is not None:
            key = (event["customer_id"], event["sid"])
        else:
            group = (event["customer_id"], event["ip_prefix"] or "-")
            count, last = runs.get(group, (0, None))
            if last is None or event["timestamp"] - last > timedelta(minutes=30):
                count += 1
            runs[group] = (count, event["timestamp"])
            key = (event["customer_id"], f"gap:{group[1]}:{count}")
        sessions[key] = sessions.get(key, 0) + 1
    return sessions


def test_random_events_against_an_independent_sessioniser():
    rng = random.Random(11)
    rows = []
    for _ in range(2000):
        sid = rng.choice([None, None, "a", "b"])
        rows.append({"timestamp": _at(0, 0) + timedelta(seconds=rng.randrange(86_400)), "meter": "api_requests",
                     "quantity": Decimal(1), "customer_id": rng.choice(["acme", "globex", "initech"]),
                     "ip_prefix": rng.choice([None, "10.1.2.0/24", "2001:db8:7::/48"]),
                     "properties": json.dumps({"session_id": sid}) if sid else None, "sid": sid})
    table = _events([{key: value for key, value in row.items() if key != "sid"} for row in rows])
    for number, row in enumerate(rows, start=1):
        row["line_number"] = number
    got = {(row["customer_id"], row["session_id"]): row["events"]
           for row in sessions_of_day(DAY, table, AGGREGATION).to_pylist()}
    assert got == _independent(rows)
    assert sum(got.values()) == 2000
