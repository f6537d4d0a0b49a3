"""The contract's rules for one line (§2–§3): identifier charsets, timestamp and quantity forms,
the published schemas, and what one day's reference data says (meters, contracts, IP allocations).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.arrow_text import value_data, value_offsets
from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.reference.loading import ReferenceData
from billing_assets.usage.ingest.parse import NUMBER_MARK, OTHER_MARK, STRING_MARK


FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class _Charset:
    """A rule of the form ``^[characters]{min,max}$``, as one definition for the regex (the
    pandera schemas and the per-line check) and for a byte table that clears a whole column
    at once when every value is plainly made of allowed characters."""

    characters: str
    min_length: int
    max_length: int

    @property
    def pattern(self) -> str:
        return f"^[{self.characters}]{{{self.min_length},{self.max_length}}}$"

    @cached_property
    def allowed_bytes(self) -> bytes:
        return bytes(byte for byte in range(128) if re.fullmatch(f"[{self.characters}]", chr(byte)))


EVENT_ID = _Charset("A-Za-z0-9._:-", 1, 128)
SOURCE = _Charset("A-Za-z0-9._:-", 0, 128)
CUSTOMER_ID = _Charset("A-Za-z0-9_-", 1, 64)
EVENT_ID_PATTERN, SOURCE_PATTERN, CUSTOMER_ID_PATTERN = EVENT_ID.pattern, SOURCE.pattern, CUSTOMER_ID.pattern
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
NAIVE_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
FAST_QUANTITY_PATTERN = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$"
DEFAULT_ONE = ("count", "unique_count")
QUANTITY_REQUIRED = ("sum", "max", "latest")
_NS_PER_DAY = 86_400 * 10**9
NOT_AN_INSTANT = np.iinfo(np.int64).min

USAGE_EVENTS_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("event_id", pa.string()),
    ("source", pa.string()),
    ("timestamp", pa.timestamp("ns", tz="UTC")),
    ("meter", pa.string()),
    ("customer_id", pa.string()),
    ("attributed_by", pa.string()),
    ("ip_prefix", pa.string()),
    ("quantity", QUANTITY_TYPE),
    ("unique_value", pa.string()),
    ("properties", pa.string()),
])
# customer, meter and quantity of a rejected line where the line gives them usably (a customer
# in customers.csv, a meter in meters.yaml, a valid quantity): what was not billed, and to whom
QUARANTINED_EVENTS_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("customer_id", pa.string()),
    ("meter", pa.string()),
    ("quantity", QUANTITY_TYPE),
])
DUPLICATE_EVENTS_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("source", pa.string()),
    ("event_id", pa.string()),
    ("first_object_key", pa.string()),
    ("first_line_number", pa.int64()),
    ("customer_id", pa.string()),
    ("meter", pa.string()),
])



def _single_array(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _mask(array) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _matches(column: pa.Array, pattern: str) -> np.ndarray:
    return _mask(pc.match_substring_regex(column, pattern))


def _value_bytes(column: pa.StringArray) -> np.ndarray:
    """The bytes of all the column's values, back to back (null values hold none in arrays
    Arrow builds; if one did, its bytes would only make the shortcuts below decline)."""
    return np.frombuffer(value_data(column), dtype=np.uint8)


def _charset_matches(column: pa.StringArray, rule: _Charset) -> np.ndarray:
    """``_matches(column, rule.pattern)``, running the regex only on the values that may fail it:
    those holding a byte outside the rule's characters, or of a length outside its bounds."""
    if column.null_count == len(column):
        return np.zeros(len(column), dtype=bool)
    values = _value_bytes(column)
    strangers = set(values.tobytes().translate(None, rule.allowed_bytes))
    if len(strangers) > 8:  # many kinds of stranger byte: not the day's few bad values
        return _matches(column, rule.pattern)
    lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
    doubtful = (lengths < rule.min_length) | (lengths > rule.max_length)
    if strangers:
        at = np.flatnonzero(np.isin(values, np.array(sorted(strangers), dtype=np.uint8)))
        starts = value_offsets(column)[:-1]
        doubtful[np.searchsorted(starts - starts[0], at, side="right") - 1] = True  # the value each is in
    return _regex_where(column, doubtful, rule.pattern)


def _regex_where(column: pa.StringArray, doubtful: np.ndarray, pattern: str) -> np.ndarray:
    """Every present value matches ``pattern`` but perhaps the ``doubtful`` ones, which the regex
    judges."""
    verdict = _mask(pc.is_valid(column))
    if doubtful.any():
        rows = np.flatnonzero(doubtful)
        verdict[rows] = _matches(column.take(pa.array(rows)), pattern)
    return verdict


def _rfc3339_matches(column: pa.StringArray) -> np.ndarray:
    """``_matches(column, RFC3339_PATTERN)``. Producers write one timestamp layout: a value with
    the same digits and separators in the same places as one that matches (the commonest
    length's first value), matches (the pattern only tells digits from fixed characters by
    position). The regex judges the others."""
    present = _mask(pc.is_valid(column))
    if not present.any():
        return present
    lengths = pc.binary_length(column).fill_null(-1).to_numpy(zero_copy_only=False)
    widths, counts = np.unique(lengths[present], return_counts=True)
    width = int(widths[np.argmax(counts)])
    same = present & (lengths == width)
    if width == 0:  # empty values are the commonest: no layout to compare with
        return _matches(column, RFC3339_PATTERN)
    rows = _value_bytes(column.filter(pa.array(same))).reshape(-1, width)  # present values only
    template = rows[0]
    if template.max() >= 0x80 or not re.fullmatch(RFC3339_PATTERN, template.tobytes().decode("ascii")):
        return _matches(column, RFC3339_PATTERN)
    digit = (template >= ord("0")) & (template <= ord("9"))
    # every byte within [low, low + span]: a digit where the template has one, else the
    # template's own byte (uint8 subtraction wraps what is below low round to the top)
    low = np.where(digit, ord("0"), template).astype(np.uint8)
    span = np.where(digit, 9, 0).astype(np.uint8)
    laid_out = np.zeros(len(column), dtype=bool)
    laid_out[np.flatnonzero(same)[((rows - low) <= span).all(axis=1)]] = True
    return _regex_where(column, present & ~laid_out, RFC3339_PATTERN)


def _absent(column: pa.Array) -> np.ndarray:
    if column.null_count in (0, len(column)):  # the usual cases: a field always or never given
        return np.full(len(column), column.null_count > 0, dtype=bool)
    return ~_mask(pc.is_valid(column))


def _typed(column: pa.Array) -> np.ndarray:
    if not (_value_bytes(column) == _MARK_LEAD).any():  # no value carries a mark: nothing to look for
        return np.zeros(len(column), dtype=bool)
    return _mask(pc.or_(pc.starts_with(column, NUMBER_MARK), pc.starts_with(column, OTHER_MARK)))


_MARK_LEAD = NUMBER_MARK.encode()[0]  # the marks' first UTF-8 byte, which only U+E000-U+EFFF start with
assert OTHER_MARK.encode()[0] == _MARK_LEAD


def _shown(value: str | None) -> str:
    """A raw value as it may appear in a detail: marks removed, bounded length."""
    if value is None:
        return "null"
    if value.startswith(NUMBER_MARK):
        return value[1:41]
    if value.startswith(STRING_MARK):
        value = value[1:]
    return repr(value[:60])


def _kind(value: str) -> str:
    return "number" if value.startswith(NUMBER_MARK) else value[1:]


def _field_problem(value: str, name: str, rule: str) -> str:
    if value[:1] in (NUMBER_MARK, OTHER_MARK):
        return f"{name} must be a string, got a {_kind(value)}"
    return f"{name} {_shown(value)} is not {rule}"


def _timestamp_problem(text: str) -> str:
    if re.fullmatch(NAIVE_TIMESTAMP_PATTERN, text):
        return f"timestamp {_shown(text)} has no UTC offset (Z or ±HH:MM)"
    return f"timestamp {_shown(text)} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction] with Z or ±HH:MM)"


@dataclass(frozen=True)
class _IpFacts:
    valid: bool
    normalised: str | None = None
    prefix: str | None = None
    customer_id: str | None = None


def _ip_facts(text: str, allocations_by_length: dict[int, dict]) -> _IpFacts:
    if "%" in text:
        return _IpFacts(False)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return _IpFacts(False)
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    prefix_length = 24 if address.version == 4 else 48
    prefix = str(ipaddress.ip_network(f"{address}/{prefix_length}", strict=False))
    customer = None
    for length in sorted(allocations_by_length.get(address.version, {}), reverse=True):
        network = ipaddress.ip_network(f"{address}/{length}", strict=False)
        customer = allocations_by_length[address.version][length].get(network)
        if customer:
            break
    return _IpFacts(True, str(address), prefix, customer)


@dataclass
class _PartitionContext:
    day: date
    aggregation: dict[str, str]
    meter_field: dict[str, str]
    property_fields: tuple[str, ...]
    customers: pa.Array  # sorted
    contracted: np.ndarray  # per customer, and last for none: a contract covers the day
    allocations_by_length: dict[int, dict]
    ip_cache: dict[str, _IpFacts] = field(default_factory=dict)
    quantity_cache: dict[str, Decimal | str] = field(default_factory=dict)

    @classmethod
    def build(cls, day: date, reference: ReferenceData) -> "_PartitionContext":
        by_length: dict[int, dict] = {4: {}, 6: {}}
        for network, customer in reference.allocations_valid_on(day):
            by_length[network.version].setdefault(network.prefixlen, {})[network] = customer
        meter_field = reference.meter_field()
        customers = sorted(reference.customers["customer_id"])  # contracts and IP allocations name only these
        return cls(
            day=day,
            aggregation=reference.meter_aggregation(),
            meter_field=meter_field,
            property_fields=tuple(sorted(set(meter_field.values()))),
            customers=pa.array(customers, pa.string()),
            contracted=np.append(np.isin(customers, sorted(reference.customers_under_contract(day))), False),
            allocations_by_length=by_length,
        )


