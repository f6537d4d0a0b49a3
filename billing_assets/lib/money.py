"""Exact quantities and money: what a valid usage quantity is, and the one rounding rule.

Quantities never pass through a float. They are parsed from the JSON token's text and kept
as Arrow ``decimal128(38, 9)``: up to 10^15 with 9 fractional digits needs 25 significant
digits, beyond float64's 15-17 and int64's 19.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa

from billing_assets.lib.currency import MINOR_UNIT_EXPONENT

QUANTITY_SCALE = 9
QUANTITY_TYPE = pa.decimal128(38, QUANTITY_SCALE)
MAX_QUANTITY = Decimal(10) ** 15

# JSON's number grammar (RFC 8259 §6); decimal strings must follow it too, so "007", "+1",
# " 1", "1_000" and "0x10" are rejected instead of silently accepted by Decimal().
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

_QUANTUM = Decimal(1).scaleb(-QUANTITY_SCALE)
_QUANTIZE = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP, traps=[decimal.Inexact])


class QuantityError(ValueError):
    """The quantity breaks the contract; the message says how."""


def _strip_trailing_zeros(value: Decimal) -> tuple[int, tuple[int, ...], int]:
    """(sign, digits, exponent) of ``value`` with trailing zeros folded into the exponent, exactly."""
    sign, digits, exponent = value.as_tuple()
    while len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return sign, digits, exponent


def parse_quantity(text: str) -> Decimal:
    """Parse a quantity token (JSON number text or decimal string) exactly, or raise QuantityError."""
    if not JSON_NUMBER.fullmatch(text):
        raise QuantityError(f"quantity {text[:40]!r} is not a decimal number")
    shown = text[:40]
    mantissa, _, exponent = text.lower().partition("e")
    value = Decimal(mantissa)  # the constructor is exact whatever the context precision
    if value.is_zero():
        return Decimal(0).quantize(_QUANTUM)
    if value.is_signed():
        raise QuantityError(f"quantity {shown!r} is negative")
    if exponent:
        if len(exponent.lstrip("+-")) > 6:
            if exponent.startswith("-"):
                raise QuantityError(f"quantity {shown!r} has more than {QUANTITY_SCALE} fractional digits")
            raise QuantityError(f"quantity {shown!r} exceeds 10^15")
        value = value.scaleb(int(exponent), _QUANTIZE)
    if value > MAX_QUANTITY:
        raise QuantityError(f"quantity {shown!r} exceeds 10^15")
    if _strip_trailing_zeros(value)[2] < -QUANTITY_SCALE:
        raise QuantityError(f"quantity {shown!r} has more than {QUANTITY_SCALE} fractional digits")
    return value.quantize(_QUANTUM, context=_QUANTIZE)


def canonical_number_text(text: str) -> str:
    """Canonical decimal text of a JSON number token: ``5.0``, ``5`` and ``0.5e1`` all give ``5``."""
    mantissa, _, exponent = text.lower().partition("e")
    value = Decimal(mantissa)
    if value.is_zero():
        return "0"
    sign, digits, exp = _strip_trailing_zeros(value)
    if exponent:
        exp += int(exponent[:12])
    if -64 < exp + len(digits) < 64 and exp > -64:
        return format(Decimal((sign, digits, exp)), "f")
    return str(Decimal((sign, digits, exp)))


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros (never scientific notation)."""
    if value.is_zero():
        return "0"
    return format(Decimal(_strip_trailing_zeros(value)), "f")


def round_half_up(value: Fraction | Decimal | int) -> int:
    """The one rounding rule of the platform: to an integer, half-up (ties away from zero)."""
    value = Fraction(value)
    whole, remainder = divmod(abs(value.numerator), value.denominator)
    rounded = whole + (1 if 2 * remainder >= value.denominator else 0)
    return rounded if value >= 0 else -rounded


def minor_units(amount: Fraction | Decimal, currency: str) -> int:
    """``amount`` (major units) rounded half-up to the currency's minor unit, as an integer
    count of minor units: USD 12.345 → 1235, JPY 1234.5 → 1235, KWD 1.2345 → 1235."""
    return round_half_up(Fraction(amount) * 10 ** MINOR_UNIT_EXPONENT[currency])


def exact_text(amount: Fraction | Decimal) -> str:
    """Exact decimal text of an amount; a non-terminating one (a fee prorated by 10/31) is
    written as the reduced fraction ``p/q`` rather than rounded."""
    value = Fraction(amount)
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    return decimal_text(Decimal(value.numerator * 10**places // value.denominator).scaleb(-places))
