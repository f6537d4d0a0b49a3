"""The quantity rule of CONTRACT.md §2, with values worked out by hand."""

from decimal import Decimal

import pytest

from billing_assets.lib.money import QuantityError, canonical_number_text, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12345678.123456789", "12345678.123456789"),  # 17 significant digits survive
        ("999999999999999.999999999", "999999999999999.999999999"),  # 24 significant digits, just under 10^15
        ("1000000000000000.1", None),  # > 10^15
        ("1000000000000000", "1000000000000000"),  # exactly 10^15 is allowed
        ("0.000000001", "0.000000001"),  # the smallest step
        ("1e3", "1000"),
        ("2.5E+2", "250"),
        ("1.0000000000", "1"),  # 10 fractional digits, but only zeros past the 9th
        ("0", "0"),
        ("-0", "0"),
    ],
)
def test_valid_quantities_parse_exactly(text, expected):
    if expected is None:
        with pytest.raises(QuantityError, match="exceeds 10\\^15"):
            parse_quantity(text)
    else:
        assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-1", "negative"),
        ("-0.5", "negative"),
        ("1.0000000001", "more than 9 fractional digits"),
        ("1e-10", "more than 9 fractional digits"),
        ("1e16", "exceeds 10\\^15"),
        ("1000000000000000.000000001", "exceeds 10\\^15"),
        ("1e99999999999", "exceeds 10\\^15"),
        ("NaN", "not a decimal number"),
        ("Infinity", "not a decimal number"),
        ("007", "not a decimal number"),
        ("+1", "not a decimal number"),
        ("1_000", "not a decimal number"),
        (" 1", "not a decimal number"),
        ("1.", "not a decimal number"),
        ("", "not a decimal number"),
    ],
)
def test_invalid_quantities_say_why(text, problem):
    with pytest.raises(QuantityError, match=problem):
        parse_quantity(text)


def test_quantity_parse_never_goes_through_float():
    # 0.1 + 0.2 in floats is 0.30000000000000004; as exact decimals it is 0.3
    assert parse_quantity("0.1") + parse_quantity("0.2") == Decimal("0.3")
    # 24 significant digits: a float64 would keep about 16 of them
    value = parse_quantity("123456789012345.123456789")
    assert str(value) == "123456789012345.123456789"
    assert Decimal(float("123456789012345.123456789")) != value


@pytest.mark.parametrize(("text", "canonical"), [("5", "5"), ("5.0", "5"), ("0.5e1", "5"), ("-0.0", "0"),
                                                  ("123.4500", "123.45"), ("1e2", "100"), ("-2.50", "-2.5")])
def test_canonical_number_text(text, canonical):
    assert canonical_number_text(text) == canonical
