"""The forecast: projections worked out independently (floats, by hand) and priced through tiers
and a minimum, never as a linear projection of money."""

import math
from datetime import date, datetime, timezone
from decimal import Decimal

from billing_assets.insights.charges import ContractTerms
from billing_assets.insights.forecast import Z_90, forecast_customer, project_meter
from billing_assets.rating.pricing import Charge, Tier

DAYS = [date(2026, 1, day) for day in (1, 2, 3)]


def rows(meter: str, *quantities, **extra) -> list[dict]:
    return [{"day": day, "meter": meter, "quantity": Decimal(q), **extra} for day, q in zip(DAYS, quantities)]


def test_a_sum_meter_projects_its_mean_with_the_spread_of_a_sum_of_days():
    projection = project_meter("sum", rows("egress_gb", 10, 20, 30), DAYS, remaining=2)
    # by hand: so far 60, mean 20, s² = (100 + 0 + 100) / 2 = 100; the sum of 2 more days has
    # variance s²·(2 + 2²/3); the interval is ±1.6449 standard deviations of it
    spread = float(Z_90) * math.sqrt(100 * (2 + 4 / 3))
    assert projection.so_far == 60 and projection.expected == 100
    assert abs(float(projection.low) - (100 - spread)) < 1e-8 and abs(float(projection.high) - (100 + spread)) < 1e-8
    assert projection.low <= projection.expected <= projection.high


def test_a_day_without_usage_counts_as_zero_and_the_low_end_never_falls_below_what_is_used():
    projection = project_meter("count", rows("api_requests", 5), DAYS, remaining=27)  # days 2 and 3: none
    assert projection.so_far == 5 and projection.expected == round(5 / 3 * 27) + 5 == 50
    assert projection.low == 5 and projection.expected.as_tuple().exponent == 0  # a count stays whole


def test_max_and_latest_meters_hold_their_month_to_date_value():
    assert project_meter("max", rows("peak", 3, 9, 4), DAYS, 10).high == 9
    stamps = [datetime(2026, 1, day, tzinfo=timezone.utc) for day in (1, 2, 3)]
    latest = [row | {"latest_timestamp": stamp, "latest_event_id": "e"} for row, stamp in zip(rows("seats", 7, 5, 6), stamps)]
    assert project_meter("latest", latest, DAYS, 10).expected == 6


def test_unique_count_projects_new_values_not_a_sum_of_daily_counts():
    values = [["u1", "u2"], ["u2", "u3"], ["u3"]]  # new per day: 2, 1, 0 → 3 distinct, mean 1 new a day
    unique = [{"day": day, "meter": "users", "quantity": Decimal(len(v)), "distinct_values": v} for day, v in zip(DAYS, values)]
    projection = project_meter("unique_count", unique, DAYS, remaining=4)
    assert (projection.so_far, projection.expected) == (3, 7)


def terms(minimum: str = "") -> ContractTerms:
    graduated = Charge("egress_gb", "graduated", tiers=(Tier(Decimal(50), Decimal("0.10")), Tier(None, Decimal("0.05"))))
    return ContractTerms("c1", "p", "USD", date(2026, 1, 1), date(2026, 1, 5), 5, 5, "", "", minimum, {"egress_gb": graduated})


def test_the_forecast_prices_projected_quantities_through_the_tiers():
    # quantities 100 (expected), 69.968… (low), 130.031… (high), as above; a 5-day "month"
    forecast = forecast_customer([terms()], rows("egress_gb", 10, 20, 30), {"egress_gb": "sum"}, DAYS[-1])
    # by hand: 50 × 0.10 + 50 × 0.05 = 7.50 (not 60 × 5/3 days' money); low 5 + 19.968 × 0.05 =
    # 5.998 → 6.00; high 5 + 80.032 × 0.05 = 9.0016 → 9.00
    assert (forecast["expected_minor"], forecast["low_minor"], forecast["high_minor"]) == (750, 600, 900)
    assert forecast["as_of"] == "2026-01-03" and "tiers" in forecast["method"]


def test_the_minimum_commitment_applies_to_the_forecast_as_to_the_invoice():
    forecast = forecast_customer([terms(minimum="10.00")], rows("egress_gb", 10, 20, 30), {"egress_gb": "sum"}, DAYS[-1])
    assert (forecast["expected_minor"], forecast["low_minor"], forecast["high_minor"]) == (1000, 1000, 1000)
