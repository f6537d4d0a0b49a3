"""Daily metering by each aggregation, with totals worked out by hand."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_assets.metering.aggregate import meter_batches, meter_day
from billing_assets.reference.loading import load_reference
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import DAY, event, ingest, raw

REFERENCE = load_reference(reference_files().get)
AGGREGATION = REFERENCE.meter_aggregation()
FIELD = REFERENCE.meter_field()  # the property a unique_count meter counts


def metered(*lines: str) -> dict:
    result = ingest(raw("a.jsonl", *lines))
    table = meter_day(DAY, result.events, AGGREGATION)
    return {(row["customer_id"], row["meter"]): row for row in table.to_pylist()}


def test_sum_is_exact():
    as_json_number = event(event_id="3", quantity="X").replace('"X"', "12345678.123456789")  # no float on our side
    rows = metered(event(event_id="1", quantity="0.1"), event(event_id="2", quantity="0.2"), as_json_number)
    # 0.1 + 0.2 + 12345678.123456789 = 12345678.423456789 exactly
    assert rows[("acme", "egress_gb")]["quantity"] == Decimal("12345678.423456789")
    assert rows[("acme", "egress_gb")]["event_count"] == 3


def test_count_counts_events_not_quantities():
    rows = metered(*(event(event_id=f"c{i}", meter="api_requests", quantity=...) for i in range(4)),
                   event(event_id="c9", meter="api_requests", quantity=10))
    assert rows[("acme", "api_requests")]["quantity"] == Decimal(5)


def test_max_takes_the_largest():
    rows = metered(event(event_id="1", meter="peak_sessions", quantity=7), event(event_id="2", meter="peak_sessions",
                                                                               quantity="12.5"),
                   event(event_id="3", meter="peak_sessions", quantity=3))
    assert rows[("acme", "peak_sessions")]["quantity"] == Decimal("12.5")


def test_unique_count_keeps_the_distinct_values_for_the_month():
    users = ["u1", "u2", "u1", 7, "7", 7.0]  # 7, "7" and 7.0 are one value: three distinct in all
    rows = metered(*(event(event_id=f"u{i}", meter="active_users", quantity=..., properties={"user_id": user})
                     for i, user in enumerate(users)))
    row = rows[("acme", "active_users")]
    assert row["quantity"] == Decimal(3) and row["distinct_values"] == ["7", "u1", "u2"] and row["event_count"] == 6


def test_latest_takes_the_greatest_timestamp_then_the_greatest_event_id():
    rows = metered(
        event(event_id="s-a", meter="seats", quantity=10, timestamp="2026-01-05T09:00:00Z"),
        event(event_id="s-c", meter="seats", quantity=30, timestamp="2026-01-05T18:00:00Z"),
        event(event_id="s-d", meter="seats", quantity=40, timestamp="2026-01-05T19:00:00+01:00"),  # = 18:00Z, tie
        event(event_id="s-b", meter="seats", quantity=20, timestamp="2026-01-05T12:00:00Z"),
    )
    row = rows[("acme", "seats")]
    # 18:00Z twice: s-d > s-c, so s-d's 40 wins
    assert (row["quantity"], row["latest_event_id"]) == (Decimal(40), "s-d")
    assert row["latest_timestamp"].isoformat().startswith("2026-01-05T18:00:00")


def test_rows_per_customer_and_meter():
    rows = metered(event(event_id="1"), event(event_id="2", customer_id="globex", quantity="2"),
                   event(event_id="3", meter="api_requests", quantity=...))
    assert sorted(rows) == [("acme", "api_requests"), ("acme", "egress_gb"), ("globex", "egress_gb")]
    assert all(row["day"] == DAY for row in rows.values())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["acme", "globex"]), st.sampled_from(sorted(AGGREGATION)),
                          st.integers(0, 5), st.sampled_from(["1", "2.5", "0.000000001"]), st.integers(0, 3)),
                min_size=1, max_size=40),
       st.lists(st.integers(1, 40), max_size=5))
def test_metering_a_day_batch_by_batch_is_metering_it_whole(events, cuts):
    # the same events metered whole and in batches: latest ties (equal timestamps), repeated
    # unique values and sums of many small quantities all meet across the batch boundaries
    lines = [event(event_id=f"e{n}", customer_id=customer, meter=meter, quantity=quantity,
                   timestamp=f"2026-01-05T10:00:0{second}Z", **{FIELD.get(meter, "region"): f"v{value}"})
             for n, (customer, meter, second, quantity, value) in enumerate(events)]
    accepted = ingest(raw("a.jsonl", *lines)).events
    bounds = sorted({0, accepted.num_rows, *(cut for cut in cuts if cut < accepted.num_rows)})
    batches = [batch for start, end in zip(bounds[:-1], bounds[1:]) for batch in accepted.slice(start, end - start).to_batches()]
    assert meter_batches(DAY, batches, AGGREGATION).equals(meter_day(DAY, accepted, AGGREGATION))
