"""Each pricing model on hand-worked quantities, tier edges included (``up_to`` is inclusive)."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_assets.lib.money import minor_units
from billing_assets.rating.pricing import Charge, Tier, price, prorated

D = Decimal
GRADUATED = Charge("api_requests", "graduated", tiers=(Tier(D(100), D("0")), Tier(D(1000), D("0.02")), Tier(None, D("0.01"))))
VOLUME = Charge("storage", "volume", tiers=(Tier(D(1000), D("0.01")), Tier(None, D("0.008"))))
PACKAGE = Charge("build_minutes", "package", package_size=1000, package_price=D("5.00"))
PER_UNIT = Charge("egress_gb", "per_unit", unit_price=D("0.08"))


@pytest.mark.parametrize(("quantity", "expected", "tiers"), [
    ("0", "0", []),
    ("99", "0", [(1, "99")]),
    ("100", "0", [(1, "100")]),                          # exactly at the first up_to: all in tier 1
    ("101", "0.02", [(1, "100"), (2, "1")]),               # one above: 1 unit × 0.02
    ("999", "17.98", [(1, "100"), (2, "899")]),            # 899 × 0.02
    ("1000", "18", [(1, "100"), (2, "900")]),              # 900 × 0.02
    ("1001", "18.01", [(1, "100"), (2, "900"), (3, "1")]),  # 18 + 1 × 0.01
    ("100.5", "0.01", [(1, "100"), (2, "0.5")]),           # fractional: 0.5 × 0.02
])
def test_graduated(quantity, expected, tiers):
    priced = price(GRADUATED, D(quantity))
    assert priced.amount == Fraction(D(expected))
    assert [(line.tier, str(line.quantity)) for line in priced.tiers] == tiers


@pytest.mark.parametrize(("quantity", "expected"), [
    ("999", "9.99"),      # 999 × 0.01
    ("1000", "10"),       # exactly at up_to: still tier 1, 1000 × 0.01
    ("1001", "8.008"),    # one above: every unit at 0.008
    ("1000.5", "8.004"),  # 1000.5 × 0.008
    ("0", "0"),
])
def test_volume(quantity, expected):
    assert price(VOLUME, D(quantity)).amount == Fraction(D(expected))


@pytest.mark.parametrize(("quantity", "expected"), [
    ("0", "0"), ("1", "5"), ("999", "5"), ("1000", "5"), ("1000.000000001", "10"), ("2000", "10"), ("2001", "15"),
])
def test_package(quantity, expected):
    assert price(PACKAGE, D(quantity)).amount == Fraction(D(expected))


def test_per_unit_keeps_sub_cent_precision_until_the_line_is_rounded():
    # $0.000012 × 1,234,567 = $14.814804 → 1481 cents, rounded once on the aggregate
    charge = Charge("requests", "per_unit", unit_price=D("0.000012"))
    amount = price(charge, D(1234567)).amount
    assert amount == Fraction(D("14.814804"))
    assert minor_units(amount, "USD") == 1481


def test_base_fee_proration_for_a_contract_starting_mid_month():
    # 49.00 × 10 / 31 = 15.806451… → 1581 cents
    fee = prorated(D("49.00"), 10, 31)
    assert fee == Fraction(490, 31) and minor_units(fee, "USD") == 1581


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("0.005", "USD", 1),         # a half-cent tie rounds up
    ("0.004999", "USD", 0),
    ("-0.125", "USD", -13),      # half-up is away from zero
    ("1234.5675", "JPY", 1235),  # 0 decimals
    ("1234.5675", "USD", 123457),
    ("1234.5675", "KWD", 1234568),  # 3 decimals
    ("2.675", "EUR", 268),       # a float would say 2.67
])
def test_rounding_half_up_to_the_currency_minor_unit(amount, currency, minor):
    assert minor_units(D(amount), currency) == minor


quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)


@given(quantities, quantities)
def test_graduated_is_monotone_and_matches_its_tier_lines(a, b):
    low, high = sorted((a, b))
    assert price(GRADUATED, low).amount <= price(GRADUATED, high).amount
    priced = price(GRADUATED, high)
    assert sum(line.quantity for line in priced.tiers) == high
    assert sum(line.amount for line in priced.tiers) == priced.amount
