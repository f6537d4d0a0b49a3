"""Period aggregates from daily rows, worked by hand."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from billing_assets.rating.period import period_quantity


def day(quantity="0", events=1, values=None, at=None, event_id=None):
    return {"quantity": Decimal(quantity), "event_count": events, "distinct_values": values,
            "latest_timestamp": at, "latest_event_id": event_id}


def test_sum_and_count_add_up_days():
    assert period_quantity("sum", [day("1.25"), day("2.000000001")]) == Decimal("3.250000001")
    assert period_quantity("count", [day("3", 3), day("4", 4)]) == Decimal(7)


def test_max_is_the_largest_day():
    assert period_quantity("max", [day("7"), day("12.5"), day("3")]) == Decimal("12.5")


def test_unique_count_is_the_union_not_the_sum_of_days():
    # day 1 {u1, u2}, day 2 {u2, u3}: 3 distinct users, not 4
    assert period_quantity("unique_count", [day("2", values=["u1", "u2"]), day("2", values=["u2", "u3"])]) == 3


def test_latest_compares_timestamps_then_event_ids_across_days():
    noon = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    rows = [day("10", at=noon, event_id="a"), day("30", at=noon, event_id="c"),
            day("20", at=datetime(2026, 1, 4, 23, tzinfo=timezone.utc), event_id="z")]
    assert period_quantity("latest", rows) == Decimal(30)


@pytest.mark.parametrize("aggregation", ["sum", "count", "max", "unique_count", "latest"])
def test_no_usage_is_zero(aggregation):
    assert period_quantity(aggregation, []) == 0
