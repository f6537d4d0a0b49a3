"""However the same events are spread over objects, named, ordered or redelivered, the invoices
are the same: ingest → meter → rate → invoice is a function of the events, not of their packaging."""

import json
from collections import defaultdict
from datetime import date, datetime, timezone

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_assets.invoicing.build import build_invoices
from billing_assets.metering.aggregate import meter_day
from billing_assets.rating.rate import rate_month
from billing_assets.reference.loading import load_reference
from billing_assets.usage.ingest import RawObject, ingest_partition
from billing_assets_tests.conftest import reference_files

REFERENCE = load_reference(reference_files().get)
LANDED = datetime(2026, 2, 1, tzinfo=timezone.utc)

events = st.lists(st.tuples(
    st.integers(1, 31),                                   # day of January
    st.sampled_from(["acme", "globex", "initech"]),
    st.sampled_from(["egress_gb", "api_requests", "active_users"]),
    st.decimals(min_value=0, max_value=500, places=3),
    st.integers(0, 5),                                    # user for active_users
), min_size=1, max_size=40)


def line(index: int, day: int, customer: str, meter: str, quantity, user: int) -> str:
    record = {"event_id": f"e{index}", "timestamp": f"2026-01-{day:02d}T{index % 24:02d}:00:00Z", "meter": meter,
              "customer_id": customer}
    if meter == "egress_gb":
        record["quantity"] = str(quantity)
    if meter == "active_users":
        record["properties"] = {"user_id": f"u{user}"}
    return json.dumps(record)


def invoice_totals(layout: dict[int, list[list[str]]]) -> dict:
    """layout: day → objects → lines. Returns customer → (total, lines)."""
    metered = []
    for day, objects in sorted(layout.items()):
        raws = [RawObject(f"raw/usage/dt=2026-01-{day:02d}/{name}.jsonl", "".join(l + "\n" for l in lines).encode(), LANDED)
                for name, lines in objects]
        result = ingest_partition(date(2026, 1, day), raws, REFERENCE)
        metered.append(meter_day(date(2026, 1, day), result.events, REFERENCE.meter_aggregation()))
    rated = rate_month("2026-01", pa.concat_tables(metered), REFERENCE)
    return {invoice.customer_id: (invoice.total_minor, invoice.lines) for invoice in build_invoices("2026-01", rated, REFERENCE)}


@settings(max_examples=40)
@given(events, st.randoms(use_true_random=False))
def test_packaging_never_changes_an_invoice(generated, random):
    lines_by_day = defaultdict(list)
    for index, (day, customer, meter, quantity, user) in enumerate(generated):
        lines_by_day[day].append(line(index, day, customer, meter, quantity, user))
    simple = {day: [("all", lines)] for day, lines in lines_by_day.items()}
    shuffled = {}
    for day, lines in lines_by_day.items():
        lines = lines[:]
        random.shuffle(lines)
        cuts = sorted(random.sample(range(len(lines) + 1), k=min(2, len(lines) + 1)))
        pieces = [lines[:cuts[0]], lines[cuts[0]:cuts[-1]], lines[cuts[-1]:]]
        pieces[random.randrange(3)] += random.sample(lines, k=random.randrange(len(lines) + 1))  # redelivered copies
        names = random.sample(["a", "m", "z", "0", "late"], k=3)
        shuffled[day] = [(name, piece) for name, piece in zip(names, pieces) if piece]
    assert invoice_totals(shuffled) == invoice_totals(simple)
