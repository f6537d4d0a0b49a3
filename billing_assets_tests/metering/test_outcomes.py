"""What became of a month's lines, counted by hand in Python over the stored rows."""

from collections import defaultdict
from decimal import Decimal

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.metering.outcomes import line_outcomes
from billing_assets.resources import billing_lake

QUANTITIES = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**15, places=9, allow_nan=False,
                                              allow_infinity=False))
QUARANTINED = st.lists(st.tuples(st.sampled_from(["acme", "globex"]), st.sampled_from(["egress_gb", "api_requests"]),
                                 st.sampled_from(["no_active_contract", "bad_quantity"]), QUANTITIES), max_size=30)
DUPLICATES = st.lists(st.tuples(st.sampled_from(["acme", "globex", "initech"]), st.just("egress_gb")), max_size=12)


def by_hand(quarantined: list[tuple], duplicates: list[tuple]) -> dict:
    expected = defaultdict(lambda: [0, None])
    for customer, meter, reason, quantity in quarantined:
        counted = expected[("quarantined", customer, meter, reason)]
        counted[0] += 1
        if quantity is not None:  # what the lines would have added: null only when no line gave one
            counted[1] = (counted[1] or Decimal(0)) + quantity
    for customer, meter in duplicates:
        expected[("duplicate", customer, meter, None)][0] += 1
    return {key: tuple(value) for key, value in expected.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quarantined=QUARANTINED, duplicates=DUPLICATES, batch_rows=st.integers(1, 7))
def test_a_days_outcomes_are_the_same_however_many_rows_are_grouped_at_a_time(bucket, quarantined, duplicates,
                                                                              batch_rows):
    lake = billing_lake()
    lake.write_table("quarantined_events", "2026-03-04", pa.table({
        "customer_id": [row[0] for row in quarantined], "meter": [row[1] for row in quarantined],
        "reason": [row[2] for row in quarantined],
        "quantity": pa.array([row[3] for row in quarantined], QUANTITY_TYPE)}))
    lake.write_table("duplicate_events", "2026-03-04", pa.table({
        "customer_id": pa.array([row[0] for row in duplicates], pa.string()),
        "meter": pa.array([row[1] for row in duplicates], pa.string())}))
    found = {(row["outcome"], row["customer_id"], row["meter"], row["reason"]): (row["lines"], row["quantity"])
             for row in line_outcomes(lake, "2026-03", batch_rows).to_pylist() if row["day"] == "2026-03-04"}
    assert found == by_hand(quarantined, duplicates)


def test_metered_events_are_the_accepted_lines(bucket):
    lake = billing_lake()
    lake.write_table("metered_usage", "2026-03-05", pa.table({
        "customer_id": ["acme", "acme", "globex"], "meter": ["egress_gb", "egress_gb", "egress_gb"],
        "event_count": pa.array([3, 4, 5], pa.int64())}))
    rows = line_outcomes(lake, "2026-03", batch_rows=2).to_pylist()
    assert [(row["day"], row["customer_id"], row["outcome"], row["lines"], row["quantity"]) for row in rows] == [
        ("2026-03-05", "acme", "accepted", 7, None), ("2026-03-05", "globex", "accepted", 5, None)]
