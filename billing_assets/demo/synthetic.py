"""Deterministic synthetic usage: a realistic demo month and the benchmark's large day.

The demo month covers several customers and currencies, every meter kind, IPv4 and IPv6
attribution through nested and time-bounded CIDR blocks, a mid-month plan change, exact and
conflicting duplicates, a redelivered object, a late file, an unreadable and an empty object,
and at least one line for every quarantine reason.
"""

from __future__ import annotations

import gzip
import json
import random
from calendar import monthrange
from datetime import date, datetime, timedelta, timezone

DEMO_MONTH = date(2026, 10, 1)
DEMO_LATE_DAY = date(2026, 10, 12)
DEMO_BAD_DAY = date(2026, 10, 7)
# acme's egress producer breaks for three days: usage_anomalies flags it (CONTRACT.md §9)
DEMO_BROKEN_METER = ("acme", "egress_gb", date(2026, 10, 22), date(2026, 10, 24))

METERS_YAML = """\
meters:
  - {name: api_requests, aggregation: count, unit: request}
  - {name: egress_gb, aggregation: sum, unit: GB}
  - {name: storage_gb_hours, aggregation: sum, unit: GB-hour}
  - {name: build_minutes, aggregation: sum, unit: minute}
  - {name: active_users, aggregation: unique_count, unit: user, field: user_id}
  - {name: peak_sessions, aggregation: max, unit: session}
  - {name: seats, aggregation: latest, unit: seat}
  - {name: gpu_seconds, aggregation: sum, unit: second}
"""

_CHARGES = """\
      - {{meter: api_requests, model: graduated, tiers: [{{up_to: 100000, unit_price: "0"}}, {{up_to: null, unit_price: "{api}"}}]}}
      - {{meter: egress_gb, model: per_unit, unit_price: "{egress}"}}
      - {{meter: storage_gb_hours, model: volume, tiers: [{{up_to: 1000, unit_price: "{storage}"}}, {{up_to: null, unit_price: "{storage_bulk}"}}]}}
      - {{meter: build_minutes, model: package, package_size: 1000, package_price: "{build}"}}
      - {{meter: active_users, model: per_unit, unit_price: "{user}"}}
      - {{meter: seats, model: per_unit, unit_price: "{seat}"}}
"""


def _plan(plan_id: str, currency: str, base_fee: str, minimum: str, **prices: str) -> str:
    return (f"  - plan_id: {plan_id}\n    currency: {currency}\n    base_fee: \"{base_fee}\"\n"
            f"    minimum_commitment: \"{minimum}\"\n    charges:\n" + _CHARGES.format(**prices))


PLANS_YAML = "plans:\n" + "".join([
    _plan("starter", "USD", "19.00", "0", api="0.0004", egress="0.12", storage="0.02", storage_bulk="0.015",
          build="8.00", user="2.00", seat="9.00"),
    _plan("pro", "USD", "49.00", "100.00", api="0.0002", egress="0.08", storage="0.01", storage_bulk="0.008",
          build="5.00", user="1.50", seat="7.50"),
    _plan("team-eu", "EUR", "45.00", "90.00", api="0.00018", egress="0.07", storage="0.009", storage_bulk="0.007",
          build="4.50", user="1.40", seat="7.00"),
    _plan("enterprise-jp", "JPY", "7500", "15000", api="0.03", egress="12", storage="1.5", storage_bulk="1.2",
          build="750", user="220", seat="1100"),
    _plan("gulf", "KWD", "15.000", "30.000", api="0.00006", egress="0.025", storage="0.003", storage_bulk="0.0025",
          build="1.500", user="0.450", seat="2.250"),
])

DEMO_CUSTOMERS = [
    ("acme", "Acme Corp", "USD"), ("globex", "Globex Inc", "USD"), ("stark", "Stark Industries", "USD"),
    ("hooli", "Hooli (prospect)", "USD"), ("initech", "Initech GmbH", "EUR"), ("umbrella", "Umbrella SARL", "EUR"),
    ("tanaka", "Tanaka KK", "JPY"), ("kuwait-oil", "Kuwait Oil Services", "KWD"),
]
DEMO_CONTRACTS = [
    ("ct-acme-1", "acme", "pro", "2026-01-01", "", ""),
    ("ct-globex-1", "globex", "starter", "2026-01-01", "2026-10-15", ""),
    ("ct-globex-2", "globex", "pro", "2026-10-15", "", "5"),
    ("ct-stark-1", "stark", "pro", "2026-10-10", "", ""),
    ("ct-initech-1", "initech", "team-eu", "2026-03-01", "", "10"),
    ("ct-umbrella-1", "umbrella", "team-eu", "2026-01-01", "", ""),
    ("ct-tanaka-1", "tanaka", "enterprise-jp", "2026-01-01", "", "12.5"),
    ("ct-kuwait-1", "kuwait-oil", "gulf", "2026-06-01", "", ""),
]
DEMO_IP_ALLOCATIONS = [
    ("10.0.0.0/8", "acme", "2025-01-01", ""),
    ("10.20.0.0/16", "globex", "2025-01-01", ""),
    ("10.20.30.0/24", "initech", "2026-01-01", "2026-10-20"),
    ("10.20.30.0/24", "umbrella", "2026-10-20", ""),
    ("2001:db8::/32", "tanaka", "2025-01-01", ""),
    ("2001:db8:42::/48", "kuwait-oil", "2025-01-01", ""),
]
_IP_POOL = {
    "acme": ["10.1.2.3", "10.200.7.9"], "globex": ["10.20.1.1", "10.20.250.3"],
    "initech": ["10.20.30.5"], "tanaka": ["2001:db8:7::1"], "kuwait-oil": ["2001:db8:42:9::5"],
}


def _csv(header: str, rows) -> bytes:
    return (header + "\n" + "".join(",".join(row) + "\n" for row in rows)).encode()


# what the demo month crosses: API calls mid-month, acme's spend, globex's forecast, 15 times the
# team-eu commitment; and a limit on the starter plan, which globex outgrows before it moves to pro
DEMO_ALERTS_YAML = """\
alerts:
  - {alert_id: api-3000, plan_id: pro, meter: api_requests, kind: usage, threshold: "3000"}
  - {alert_id: spend-2500, customer_id: acme, kind: spend, threshold: "2500.00"}
  - {alert_id: on-track-4k, customer_id: globex, kind: forecast_spend, threshold: "4000.00"}
  - {alert_id: commit-150, plan_id: team-eu, kind: commitment, threshold_percent: "1500"}
limits:
  - {plan_id: starter, meter: api_requests, soft_limit: "1500", hard_limit: "2500"}
"""


def reference_objects(customers=DEMO_CUSTOMERS, contracts=DEMO_CONTRACTS, allocations=DEMO_IP_ALLOCATIONS,
                      alerts: str | None = DEMO_ALERTS_YAML) -> dict[str, bytes]:
    return ({"reference/alerts.yaml": alerts.encode()} if alerts else {}) | {
        "reference/meters.yaml": METERS_YAML.encode(),
        "reference/plans.yaml": PLANS_YAML.encode(),
        "reference/customers.csv": _csv("customer_id,name,currency", customers),
        "reference/contracts.csv": _csv("contract_id,customer_id,plan_id,start_date,end_date,discount_percent", contracts),
        "reference/ip_allocations.csv": _csv("cidr,customer_id,valid_from,valid_to", allocations),
        # who each customer is at the billing provider (a made-up Stripe id): the dry run names them
        "reference/provider_customers.csv": _csv("customer_id,provider_customer_id",
                                                 [(row[0], f"cus_demo_{row[0]}") for row in customers]),
    }


# billing operations agrees with stark to bill its usage from the first of the month, not from
# the contract's start on the 10th: the contract is back-dated and the fix recorded for its impact
DEMO_REMEDIATION = ("R-1", "stark's contract back-dated to the 1st as agreed with the customer", "2026-10-01",
                    "stark", "")


def demo_remediation_objects() -> dict[str, bytes]:
    """The reference files after the remediation: ct-stark-1 from the 1st, and remediations.csv."""
    contracts = [(contract, customer, plan, DEMO_REMEDIATION[2] if contract == "ct-stark-1" else start, end, discount)
                 for contract, customer, plan, start, end, discount in DEMO_CONTRACTS]
    return {"reference/contracts.csv": reference_objects(contracts=contracts)["reference/contracts.csv"],
            "reference/remediations.csv": _csv("remediation_id,description,start_date,customer_id,meter",
                                               [DEMO_REMEDIATION])}


def _stamp(moment: datetime, rng: random.Random) -> str:
    """RFC 3339, mostly Z, sometimes with an offset, sometimes with a fraction."""
    style = rng.random()
    if style < 0.15:
        offset = timedelta(hours=5, minutes=30)
        return (moment + offset).replace(tzinfo=None).isoformat() + "+05:30"
    if style < 0.25:
        offset = timedelta(hours=-4)
        return (moment + offset).replace(tzinfo=None).isoformat() + "-04:00"
    text = moment.replace(tzinfo=None).isoformat()
    return text + "Z"


def _event(rng: random.Random, day: date, customer: str, serial: str, meter: str) -> dict:
    moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(
        seconds=rng.randrange(86_400), microseconds=rng.choice([0, 0, 0, 250_000, 123_456]))
    event = {"event_id": serial, "timestamp": _stamp(moment, rng), "meter": meter}
    if customer in _IP_POOL and rng.random() < 0.1:
        event["ip"] = rng.choice(_IP_POOL[customer])
    else:
        event["customer_id"] = customer
    if meter == "egress_gb":
        event["quantity"] = f"{rng.randrange(0, 5000) / 1000:.3f}" if rng.random() < 0.5 else rng.randrange(1, 500) / 100
    elif meter in ("storage_gb_hours", "gpu_seconds"):
        event["quantity"] = f"{rng.randrange(1, 10**12) / 10**9:.9f}"
    elif meter == "build_minutes":
        event["quantity"] = rng.randrange(1, 40)
    elif meter == "peak_sessions":
        event["quantity"] = rng.randrange(1, 300)
    elif meter == "seats":
        event["quantity"] = rng.randrange(5, 60)
    elif meter == "active_users":
        event["properties"] = {"user_id": f"u{rng.randrange(400)}", "plan_tier": "paid"}
    if rng.random() < 0.3:
        event["source"] = rng.choice(["gateway", "edge-eu", "batch"])
    return event


_METER_WEIGHTS = [("api_requests", 60), ("egress_gb", 12), ("storage_gb_hours", 6), ("build_minutes", 6),
                  ("active_users", 10), ("peak_sessions", 3), ("seats", 2), ("gpu_seconds", 1)]


def _day_events(day: date, count: int, customers: list[str], rng: random.Random, prefix: str) -> list[dict]:
    meters = [name for name, weight in _METER_WEIGHTS for _ in range(weight)]
    return [_event(rng, day, rng.choice(customers), f"{prefix}-{day:%Y%m%d}-{index:06d}", rng.choice(meters))
            for index in range(count)]


def jsonl(events: list) -> bytes:
    return "".join((event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))) + "\n"
                   for event in events).encode()


def _bad_lines(day: date) -> list[str]:
    """One line per line-level quarantine reason, in the contract's order."""
    at = f"{day.isoformat()}T12:00:00Z"

    def line(**fields):
        return json.dumps({"event_id": fields.pop("event_id", "bad-" + "-".join(fields)[:40]), "timestamp": at,
                           "meter": "egress_gb", "customer_id": "acme", "quantity": "1"} | fields)

    return [
        json.dumps({"event_id": "bad-too-long", "timestamp": at, "meter": "egress_gb", "customer_id": "acme",
                    "quantity": "1", "properties": {"blob": "x" * (1024 * 1024)}}),
        '{"event_id": "bad-malformed", "timestamp": "' + at + '", "quantity": 1,',
        '["an", "array", "is", "not", "an", "event"]',
        json.dumps({"event_id": "bad-missing-meter", "timestamp": at, "customer_id": "acme", "quantity": "1"}),
        line(event_id="bad id with spaces"),
        line(event_id="bad-naive-timestamp", timestamp=f"{day.isoformat()}T12:00:00"),
        line(event_id="bad-future", timestamp="2099-01-01T00:00:00Z"),
        line(event_id="bad-other-day", timestamp=f"{day.isoformat()}T00:30:00+01:00"),
        line(event_id="bad-unknown-meter", meter="teleport_jumps"),
        line(event_id="bad-negative", quantity=-3),
        line(event_id="bad-unknown-customer", customer_id="wayne-enterprises"),
        json.dumps({"event_id": "bad-unattributed", "timestamp": at, "meter": "egress_gb", "ip": "192.0.2.44",
                    "quantity": "1"}),
        line(event_id="bad-no-contract", customer_id="hooli"),
    ]


def _broken(event: dict, day: date) -> bool:
    customer, meter, first, last = DEMO_BROKEN_METER
    sender = event.get("customer_id") or next((c for c, pool in _IP_POOL.items() if event.get("ip") in pool), None)
    return first <= day <= last and sender == customer and event["meter"] == meter


def demo_month_objects(month: date = DEMO_MONTH) -> dict[str, bytes]:
    """Every raw object of the demo month except the late file, keyed by S3 key."""
    rng = random.Random(20261001)
    customers = [c for c, _, _ in DEMO_CUSTOMERS if c != "hooli"]
    objects: dict[str, bytes] = {}
    for day_number in range(1, monthrange(month.year, month.month)[1] + 1):
        day = month.replace(day=day_number)
        prefix = f"raw/usage/dt={day.isoformat()}/"
        events = _day_events(day, 1800 + rng.randrange(400), customers, rng, "evt")
        events = [event for event in events if not _broken(event, day)]
        split = len(events) * 2 // 3
        objects[prefix + "gateway-0001.jsonl.gz"] = gzip.compress(jsonl(events[:split]), mtime=0)
        objects[prefix + "batch-0002.jsonl"] = jsonl(events[split:])
        if day_number == 3:
            objects[prefix + "gateway-0001-redelivered.jsonl.gz"] = objects[prefix + "gateway-0001.jsonl.gz"]
        if day_number == 5:
            repeated = [dict(event) for event in events[:5]]
            for event in repeated[:2]:
                event["quantity"] = 999 if "quantity" in event else 2
            objects[prefix + "retry-0003.jsonl"] = jsonl(repeated)
        if day == DEMO_BAD_DAY:
            conflict = dict(events[10])
            conflict["meter"] = "gpu_seconds"
            conflict["quantity"] = "7"
            objects[prefix + "zz-bad-lines.jsonl"] = jsonl(_bad_lines(day) + [conflict])
            objects[prefix + "corrupt-0004.jsonl.gz"] = gzip.compress(jsonl(events[:50]), mtime=0)[:120]
            objects[prefix + "empty-0005.jsonl"] = b"\n\n"
    return objects


def demo_late_objects(day: date = DEMO_LATE_DAY) -> dict[str, bytes]:
    """A producer's file that lands after its day was first ingested."""
    rng = random.Random(20261012)
    events = _day_events(day, 300, ["acme", "initech", "tanaka"], rng, "late")
    return {f"raw/usage/dt={day.isoformat()}/late-backfill-0009.jsonl.gz": gzip.compress(jsonl(events), mtime=0)}


def bench_reference(customers: int) -> dict[str, bytes]:
    ids = [f"cust-{index:05d}" for index in range(customers)]
    return reference_objects(
        customers=[(cid, f"Customer {cid}", "USD") for cid in ids],
        contracts=[(f"ct-{cid}", cid, "pro", "2025-01-01", "", "") for cid in ids],
        allocations=[("10.0.0.0/8", ids[0], "2025-01-01", "")],
        alerts=None,
    )


def bench_objects(events: int, customers: int, day: date, per_object: int = 100_000) -> dict[str, bytes]:
    """``events`` gzip JSONL lines for one day, about 1 % of them duplicates."""
    meters = ["api_requests", "egress_gb", "storage_gb_hours", "build_minutes", "seats"]
    base = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).replace(tzinfo=None)
    objects = {}
    for start in range(0, events, per_object):
        lines = []
        for index in range(start, min(start + per_object, events)):
            serial = index - 1 if index % 100 == 99 else index
            moment = (base + timedelta(seconds=serial % 86_400)).isoformat()
            meter = meters[serial % 5]
            quantity = "1" if meter == "api_requests" else f"{(serial % 9973) / 1000:.3f}"
            lines.append(f'{{"event_id":"e{serial:09d}","timestamp":"{moment}Z","meter":"{meter}",'
                         f'"customer_id":"cust-{serial % customers:05d}","quantity":{quantity}}}\n')
        objects[f"raw/usage/dt={day.isoformat()}/bench-{start // per_object:04d}.jsonl.gz"] = gzip.compress(
            "".join(lines).encode(), compresslevel=1, mtime=0)
    return objects
