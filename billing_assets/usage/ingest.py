"""One daily partition of raw usage → accepted events, duplicates and quarantined lines (§2–§4).

Every check is a vectorised mask over the partition's lines. Reasons are assigned by taking,
for each line, the first check in contract order that fails, so the precedence of §3 is the
order of ``_line_checks`` and nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.money import (
    MAX_QUANTITY,
    QUANTITY_TYPE,
    QuantityError,
    parse_quantity,
)
from billing_assets.reference.loading import CUSTOMERS_KEY, METERS_KEY, ReferenceData
from billing_assets.usage.parsing import (
    NUMBER_MARK,
    OTHER_MARK,
    STRING_MARK,
    parse_object,
    read_object_lines,
    join_texts,
    value_data,
    value_offsets,
)
from billing_assets.usage.quarantine import QUARANTINE_RECORD_SCHEMA
from billing_assets.usage.reasons import Reason

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
QUARANTINED_EVENTS_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
])
DUPLICATE_EVENTS_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("source", pa.string()),
    ("event_id", pa.string()),
    ("first_object_key", pa.string()),
    ("first_line_number", pa.int64()),
])


@dataclass(frozen=True)
class RawObject:
    """One raw object. ``body`` holds its bytes, or ``fetch`` reads them when they are needed,
    so that reading overlaps with parsing and no more than a few objects are held at once."""

    key: str
    body: bytes | None
    last_modified: datetime
    fetch: Callable[[], bytes] | None = None
    etag: str = ""  # as listed: what tells a replaced object from the one ingested

    def read(self) -> bytes:
        return self.body if self.body is not None else self.fetch()


@dataclass
class IngestResult:
    """What one partition's raw objects became. ``quarantined_lines`` keeps the raw text of every
    rejected line for the quarantine prefix; the warehouse tables never hold raw lines."""

    events: pa.Table
    quarantined: pa.Table
    duplicates: pa.Table
    quarantined_lines: pa.Table  # QUARANTINE_RECORD_SCHEMA
    lines_read: int = 0
    bytes_read: int = 0
    objects_read: int = 0
    empty_objects: list[str] = field(default_factory=list)
    unreadable_objects: list[str] = field(default_factory=list)
    ignored_fields: int = 0

    @property
    def reason_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((reason.value for reason in Reason), 0)
        for reason in self.quarantined.column("reason").to_pylist():
            counts[reason] += 1
        return counts

    @property
    def quarantined_line_count(self) -> int:
        return int(pc.sum(pc.is_valid(self.quarantined.column("line_number"))).as_py() or 0)


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
    """``_matches(column, rule.pattern)``, without running the regex when it cannot fail."""
    if column.null_count == len(column):
        return np.zeros(len(column), dtype=bool)
    if not _value_bytes(column).tobytes().translate(None, rule.allowed_bytes):  # all allowed, so ASCII
        lengths = pc.min_max(pc.binary_length(column))
        if lengths["min"].as_py() >= rule.min_length and lengths["max"].as_py() <= rule.max_length:
            return _mask(pc.is_valid(column))
    return _matches(column, rule.pattern)


def _rfc3339_matches(column: pa.StringArray) -> np.ndarray:
    """``_matches(column, RFC3339_PATTERN)``. Producers write one timestamp layout: when every
    value has the first one's digits and separators in the same places, the first value's
    verdict is everyone's (the pattern only tells digits from fixed characters by position)."""
    values = _value_bytes(column)
    present = _mask(pc.is_valid(column))
    count = int(present.sum())
    lengths = pc.min_max(pc.binary_length(column))
    width = lengths["min"].as_py()
    if count and width and width == lengths["max"].as_py() and len(values) == count * width:
        rows = values.reshape(count, width)
        template = rows[0]
        digit = (template >= ord("0")) & (template <= ord("9"))
        # every byte within [low, low + span]: a digit where the template has one, else the
        # template's own byte (uint8 subtraction wraps what is below low round to the top)
        low = np.where(digit, ord("0"), template).astype(np.uint8)
        span = np.where(digit, 9, 0).astype(np.uint8)
        if template.max() < 0x80 and re.fullmatch(RFC3339_PATTERN, template.tobytes().decode("ascii")) \
                and ((rows - low) <= span).all():
            return present
    return _matches(column, RFC3339_PATTERN)


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


@dataclass
class _Check:
    reason: Reason
    failed: np.ndarray
    # the detail of every row this check rejects: one text for all, or built from the rows'
    # columns (``at(name)`` gives a column at those rows)
    detail: str | Callable[[Callable[[str], pa.Array | np.ndarray]], pa.Array]


def _per_value(values: pa.Array, text: Callable[[str | None], str]) -> pa.Array:
    """``text`` of each value, worked out once per distinct value."""
    encoded = values.dictionary_encode()
    texts = pa.array([text(value) for value in encoded.dictionary.to_pylist()], pa.string())
    return texts.take(encoded.indices) if len(texts) else pa.nulls(len(values), pa.string())


def _reasons_and_details(first: np.ndarray, checks: list[_Check], columns: dict[str, pa.Array],
                         derived: dict[str, pa.Array | np.ndarray]) -> tuple[pa.Array, pa.Array]:
    """The reason and detail columns: null for rows that pass; for a rejected row, those of the
    first failing check (index 0: the parser's own verdict, ``first`` -1: none failed)."""
    n = len(first)
    if not (first >= 0).any():
        return pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    order = np.argsort(first, kind="stable")
    bounds = np.searchsorted(first[order], np.arange(-1, len(checks) + 2))  # where each value starts, and the end
    reason_parts, detail_parts, row_parts = [], [], []
    for index in range(len(checks) + 1):
        rows = order[bounds[index + 1]:bounds[index + 2]]
        if not len(rows):
            continue
        taken = pa.array(rows)
        if index == 0:
            reason = columns["parse_reason"].take(taken)
            detail = columns["parse_detail"].take(taken)
        else:
            check = checks[index - 1]
            reason = pa.repeat(pa.scalar(check.reason.value, pa.string()), len(rows))
            if isinstance(check.detail, str):
                detail = pa.repeat(pa.scalar(check.detail, pa.string()), len(rows))
            else:
                def at(name: str, rows=rows, taken=taken):
                    source = derived.get(name, columns.get(name))
                    return source[rows] if isinstance(source, np.ndarray) else source.take(taken)
                detail = check.detail(at)
        reason_parts.append(reason)
        detail_parts.append(detail)
        row_parts.append(rows)
    rows = np.concatenate(row_parts)
    # scatter back to row order: rows that passed take a null from the end
    where = np.full(n, len(rows), dtype=np.int64)
    where[rows] = np.arange(len(rows))
    scatter = pa.array(where)
    reasons = pa.concat_arrays([*reason_parts, pa.nulls(1, pa.string())]).take(scatter)
    details = pa.concat_arrays([*(part.cast(pa.string()) for part in detail_parts), pa.nulls(1, pa.string())]).take(scatter)
    return reasons, details


def _timestamps(column: pa.Array, well_formed: np.ndarray) -> np.ndarray:
    """UTC nanoseconds since the epoch; NOT_AN_INSTANT where the text is not a real instant."""
    result = np.full(len(column), NOT_AN_INSTANT, dtype=np.int64)
    rows = np.flatnonzero(well_formed)
    if not len(rows):
        return result
    texts = column if len(rows) == len(column) else column.take(pa.array(rows))
    text_bytes = value_data(texts).to_pybytes()
    if b"t" in text_bytes or b"z" in text_bytes:  # Arrow's parser wants 'T' and 'Z'
        texts = pc.utf8_upper(texts)
    try:
        parsed = texts.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # some text is well formed but no real instant (2026-02-30, 25:00): parse leniently
        series = pd.to_datetime(pd.Series(texts.to_pylist(), dtype=object), format="ISO8601", utc=True, errors="coerce")
        parsed = np.array([NOT_AN_INSTANT if pd.isna(stamp) else stamp.value for stamp in series], dtype=np.int64)
    result[rows] = parsed
    return result


def _quantities(column: pa.Array, ctx: _PartitionContext) -> tuple[pa.Array, dict[int, str]]:
    """Exact decimals for the quantity column (null where absent or invalid), and the error text
    of each invalid row. Plain decimals are cast by Arrow; any other form goes through
    ``parse_quantity``, the rule's one definition, once per distinct text. A decimal column was
    converted exactly by the reader, which only keeps it so when every value is in range."""
    if pa.types.is_decimal(column.type):
        return column, {}
    n = len(column)
    present = _mask(pc.is_valid(column))
    other = _mask(pc.starts_with(column, OTHER_MARK))
    number = pc.starts_with(column, NUMBER_MARK)
    text = pc.if_else(number, pc.utf8_slice_codeunits(column, 1), column)
    fast = _matches(text, FAST_QUANTITY_PATTERN)
    values = pc.if_else(pa.array(fast), text, "0").cast(QUANTITY_TYPE)
    fast &= _mask(pc.less_equal(values, pa.scalar(MAX_QUANTITY, QUANTITY_TYPE)))
    errors: dict[int, str] = {}
    usable = fast.copy()
    slow_rows = np.flatnonzero(present & ~fast & ~other)
    if len(slow_rows):
        replacements = {}
        for row, raw in zip(slow_rows.tolist(), text.take(pa.array(slow_rows)).to_pylist()):
            outcome = ctx.quantity_cache.get(raw)
            if outcome is None:
                try:
                    outcome = parse_quantity(raw)
                except QuantityError as error:
                    outcome = str(error)
                ctx.quantity_cache[raw] = outcome
            if isinstance(outcome, str):
                errors[row] = outcome
            else:
                replacements[row] = outcome
        usable[list(replacements)] = True
        if replacements:
            patched = values.to_pylist()
            for row, value in replacements.items():
                patched[row] = value
            values = pa.array(patched, QUANTITY_TYPE)
    for row in np.flatnonzero(other).tolist():
        errors[row] = f"quantity must be a number or decimal string, got a {_kind(column[row].as_py())}"
    return pc.if_else(pa.array(usable), values, pa.nulls(n, QUANTITY_TYPE)), errors


def _validate_object(parsed: pa.Table, last_modified: datetime, ctx: _PartitionContext) -> pa.Table:
    """Append reason, detail and the normalised values to one object's parsed lines."""
    n = parsed.num_rows
    col = {name: _single_array(parsed.column(name)) for name in parsed.column_names}
    event_id, source, stamp, meter, customer, ip = (col[name] for name in
                                                    ("event_id", "source", "timestamp", "meter", "customer_id", "ip"))
    null = {name: _absent(col[name]) for name in ("event_id", "source", "timestamp", "meter", "customer_id", "ip")}

    ip_rows = np.flatnonzero(~null["ip"] & ~_typed(ip))
    ip_valid = np.zeros(n, dtype=bool)
    ip_normalised, ip_prefix, ip_customer = (pa.nulls(n, pa.string()),) * 3
    if len(ip_rows):
        normalised: list[str | None] = [None] * n
        prefix: list[str | None] = [None] * n
        owner: list[str | None] = [None] * n
        for row, text in zip(ip_rows, ip.take(pa.array(ip_rows)).to_pylist()):
            facts = ctx.ip_cache.get(text)
            if facts is None:
                facts = ctx.ip_cache[text] = _ip_facts(text, ctx.allocations_by_length)
            ip_valid[row] = facts.valid
            normalised[row], prefix[row], owner[row] = facts.normalised, facts.prefix, facts.customer_id
        ip_normalised, ip_prefix, ip_customer = (pa.array(values, pa.string()) for values in (normalised, prefix, owner))

    well_formed = _rfc3339_matches(stamp)
    ts_ns = _timestamps(stamp, well_formed)
    deadline_ns = int((last_modified + FUTURE_TOLERANCE).timestamp() * 10**9)
    day_ordinal = (ctx.day - date(1970, 1, 1)).days

    # each meter's rule, looked up once per meter and spread over the rows by meter index
    meters = sorted(ctx.aggregation)
    rules = np.array([ctx.aggregation[name] for name in meters] + [None], dtype=object)
    meter_index = pc.index_in(meter, value_set=pa.array(meters, pa.string())).fill_null(len(meters)).to_numpy()
    unknown_meter = meter_index == len(meters)

    def aggregated_by(*kinds: str) -> np.ndarray:
        return np.isin(rules, kinds)[meter_index]

    quantity, quantity_errors = _quantities(col["quantity"], ctx)
    quantity_error = np.zeros(n, dtype=bool)
    quantity_error[list(quantity_errors)] = True
    unique_value = pa.nulls(n, pa.string())
    for meter_name, field_name in ctx.meter_field.items():
        of_meter = meter_index == meters.index(meter_name)
        if of_meter.any():
            unique_value = pc.if_else(pa.array(of_meter), col[f"property:{field_name}"], unique_value)
    is_unique = aggregated_by("unique_count")
    needs_quantity = aggregated_by(*QUANTITY_REQUIRED)
    resolved = customer if customer.null_count == 0 else pc.if_else(pc.is_valid(customer), customer, ip_customer)
    customer_index = pc.index_in(resolved, value_set=ctx.customers).fill_null(len(ctx.customers)).to_numpy()
    known_customer = customer_index < len(ctx.customers)
    under_contract = ctx.contracted[customer_index]

    day_text = ctx.day.isoformat()
    landed_text = last_modified.astimezone(timezone.utc).isoformat()

    def field_problem(name: str, rule: str) -> Callable:
        return lambda at: _per_value(at(name), lambda value: _field_problem(value, name, rule))

    def kind_of(name: str) -> Callable:
        return lambda at: _per_value(at(name), lambda value: f"{name} must be a string, got a {_kind(value)}")

    def of_meter(text: Callable[[str], str]) -> Callable:
        return lambda at: _per_value(at("meter"), text)

    # details are built column-wise for the rejected rows of each check. A value that passed the
    # earlier checks is plain ASCII (an RFC 3339 timestamp, a customer id of [A-Za-z0-9_-]), so
    # quoting it is what ``_shown`` (repr) would give; anything else goes through ``_shown``
    # once per distinct value
    checks = [
        _Check(Reason.MISSING_FIELD, null["event_id"], "missing field 'event_id'"),
        _Check(Reason.MISSING_FIELD, null["timestamp"], "missing field 'timestamp'"),
        _Check(Reason.MISSING_FIELD, null["meter"], "missing field 'meter'"),
        _Check(Reason.MISSING_FIELD, null["customer_id"] & null["ip"], "missing field: neither 'customer_id' nor 'ip' is given"),
        _Check(Reason.INVALID_FIELD, ~_charset_matches(event_id, EVENT_ID),
               field_problem("event_id", "1-128 characters of [A-Za-z0-9._:-]")),
        _Check(Reason.INVALID_FIELD, ~null["source"] & ~_charset_matches(source, SOURCE),
               field_problem("source", "up to 128 characters of [A-Za-z0-9._:-]")),
        _Check(Reason.INVALID_FIELD, _typed(stamp), kind_of("timestamp")),
        _Check(Reason.INVALID_FIELD, _typed(meter), kind_of("meter")),
        _Check(Reason.INVALID_FIELD, ~null["customer_id"] & ~_charset_matches(customer, CUSTOMER_ID),
               field_problem("customer_id", "1-64 characters of [A-Za-z0-9_-]")),
        _Check(Reason.INVALID_FIELD, ~null["ip"] & _typed(ip), kind_of("ip")),
        _Check(Reason.INVALID_FIELD, ~null["ip"] & ~ip_valid,
               lambda at: _per_value(at("ip"), lambda value: f"ip {_shown(value)} is not an IPv4 or IPv6 address")),
        _Check(Reason.INVALID_FIELD, ~_mask(col["properties_valid"]),
               "properties must be an object whose values are strings or numbers"),
        _Check(Reason.INVALID_TIMESTAMP, ~well_formed, lambda at: _per_value(at("timestamp"), _timestamp_problem)),
        _Check(Reason.INVALID_TIMESTAMP, ts_ns == NOT_AN_INSTANT, lambda at: _per_value(
            at("timestamp"), lambda value: f"timestamp {_shown(value)} is not a real date and time")),
        _Check(Reason.FUTURE_TIMESTAMP, ts_ns > deadline_ns, lambda at: join_texts(
            "timestamp '", at("timestamp"), f"' is more than 5 minutes after the object landed ({landed_text})")),
        _Check(Reason.PARTITION_MISMATCH, (ts_ns // _NS_PER_DAY) != day_ordinal, lambda at: join_texts(
            "timestamp '", at("timestamp"), "' is on ",
            pa.array(at("ts_ns") // _NS_PER_DAY, pa.int32()).cast(pa.date32()).cast(pa.string()),
            f" UTC, not in partition {day_text}")),
        _Check(Reason.UNKNOWN_METER, unknown_meter, of_meter(lambda value: f"meter {_shown(value)} is not in {METERS_KEY}")),
        _Check(Reason.INVALID_QUANTITY, needs_quantity & _absent(col["quantity"]),
               of_meter(lambda value: f"meter '{value}' ({ctx.aggregation[value]}) needs a quantity")),
        _Check(Reason.INVALID_QUANTITY, quantity_error,
               lambda at: pa.array([quantity_errors[row] for row in at("position").tolist()], pa.string())),
        _Check(Reason.INVALID_QUANTITY, is_unique & _absent(unique_value), of_meter(
            lambda value: f"meter '{value}' counts distinct properties.{ctx.meter_field[value]}, "
                          "which this event does not have")),
        _Check(Reason.UNKNOWN_CUSTOMER, ~null["customer_id"] & ~known_customer,  # resolved is customer_id here
               lambda at: join_texts("customer_id '", pc.utf8_slice_codeunits(at("customer_id"), 0, 60),
                                  f"' is not in {CUSTOMERS_KEY}")),
        _Check(Reason.UNATTRIBUTED_IP, null["customer_id"] & _absent(resolved),
               lambda at: join_texts("ip in ", at("ip_prefix"), f" is in no CIDR block allocated on {day_text}")),
        _Check(Reason.NO_ACTIVE_CONTRACT, ~under_contract,
               lambda at: join_texts("customer '", at("resolved"), f"' has no contract covering {day_text}")),
    ]
    parse_failed = _mask(pc.is_valid(col["parse_reason"]))
    failed = np.vstack([parse_failed] + [check.failed for check in checks])
    failing = failed.any(axis=0)
    first = np.where(failing, failed.argmax(axis=0), -1) if failing.any() else np.full(n, -1)
    reasons, details = _reasons_and_details(first, checks, col, {
        "resolved": resolved, "ip_prefix": ip_prefix, "ts_ns": ts_ns, "position": np.arange(n)})

    defaulted = aggregated_by(*DEFAULT_ONE) & _absent(quantity)
    if defaulted.any():
        quantity = pc.if_else(pa.array(defaulted), pa.scalar(Decimal(1), QUANTITY_TYPE), quantity)
    return pa.table({
        "line_number": col["line_number"],
        "reason": reasons,
        "detail": details,
        "event_id": event_id,
        "source": pc.fill_null(source, ""),
        "timestamp": pa.array(ts_ns, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "meter": meter,
        "customer_id": resolved,
        "attributed_by": pc.if_else(pc.is_valid(customer), "customer_id", "ip"),
        "ip_prefix": ip_prefix,
        "ip_normalised": ip_normalised,
        "quantity": quantity,
        "unique_value": unique_value,
        "properties": col["properties"],
    })


# the normalised payload beyond the dedupe key (source, event_id), which repeats share already
_PAYLOAD_COLUMNS = ["timestamp", "meter", "customer_id", "ip_normalised", "quantity", "properties"]


def _same_payload(lines: "_PartitionLines", rows: np.ndarray, other_rows: np.ndarray) -> np.ndarray:
    """Whether each row's normalised payload equals its counterpart's: what must hold for a
    repeated event to be a plain duplicate (a missing value equals only a missing value)."""
    these, those = lines.take(rows, _PAYLOAD_COLUMNS), lines.take(other_rows, _PAYLOAD_COLUMNS)
    same = np.ones(len(rows), dtype=bool)
    for name in _PAYLOAD_COLUMNS:
        this, that = these.column(name), those.column(name)
        same &= _mask(pc.equal(this, that)) | (_mask(pc.is_null(this)) & _mask(pc.is_null(that)))
    return same


@dataclass
class _PartitionLines:
    """The checked lines of a partition's objects, in order, numbered across them. One take
    across a table of many chunks costs several times more than a take from each object."""

    keys: list[str]
    tables: list[pa.Table]

    def __post_init__(self):
        self.starts = np.cumsum([0] + [table.num_rows for table in self.tables])

    def take(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """``columns`` of ``rows`` (in any order), with each row's ``object_key`` and its
        ``position`` among its object's lines."""
        order = np.argsort(rows, kind="stable")
        ordered = np.asarray(rows, dtype=np.int64)[order]
        owner = np.searchsorted(self.starts, ordered, side="right") - 1
        bounds = np.searchsorted(owner, np.arange(len(self.tables) + 1))
        position = ordered - self.starts[owner]
        pieces = [self.tables[index].select(list(columns)).take(pa.array(position[start:end]))
                  for index, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])) if end > start]
        taken = pa.concat_tables(pieces).combine_chunks() if pieces else self.tables[0].select(list(columns)).slice(0, 0)
        taken = taken.append_column("object_key", pa.array(self.keys, pa.string()).take(pa.array(owner))) \
                     .append_column("position", pa.array(position))
        if (order[1:] < order[:-1]).any():  # back to the order asked for
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            taken = taken.take(pa.array(inverse))
        return taken


@dataclass
class _PreparedObject:
    key: str
    bytes_read: int
    unreadable: str | None = None
    line_count: int = 0
    checked: pa.Table | None = None
    ignored_fields: int = 0
    rejected_lines: pa.Array | None = None  # the raw text of the rejected lines, in line order
    dedupe: "_BucketedKeys | None" = None  # the dedupe keys of the lines that passed every check


def _prepare_object(raw: RawObject, ctx: _PartitionContext) -> _PreparedObject:
    """Read, parse and check one object. Only the raw text of rejected lines is kept: the
    object's lines are let go as soon as it is checked."""
    lines = read_object_lines(raw.key, raw.read())
    prepared = _PreparedObject(raw.key, lines.bytes_read, lines.unreadable)
    if lines.unreadable or lines.is_empty:
        return prepared
    parsed = parse_object(lines, ctx.property_fields)
    parsed = parsed.append_column("line_number", pa.array(lines.line_numbers).take(parsed.column("row")))
    # parsing keeps the lines' order, so a checked row's index is its position among the lines
    prepared.checked = _validate_object(parsed, raw.last_modified, ctx)
    prepared.line_count = len(lines.line_numbers)
    prepared.ignored_fields = int(pc.sum(parsed.column("ignored_fields")).as_py() or 0)
    checked = prepared.checked
    passed = _absent(checked.column("reason"))
    identity = checked.select(["source", "event_id"])
    if not passed.all():
        identity = identity.filter(pa.array(passed))
    event_id = _single_array(identity.column("event_id"))
    prepared.dedupe = _bucketed(_dedupe_keys(_single_array(identity.column("source")), event_id), _tails(event_id),
                                np.flatnonzero(passed))
    rejected = np.flatnonzero(~passed)
    if len(rejected):
        prepared.rejected_lines = lines.lines.take(pa.array(rejected))
    return prepared


_FINE_BUCKET_BITS = 10
_FINE_BUCKETS = 1 << _FINE_BUCKET_BITS  # each object's keys are put in this many buckets
_KEYS_PER_BUCKET = 50_000  # hash tables this small stay in cache: three times faster per key


def _dedupe_keys(source: pa.Array, event_id: pa.Array) -> pa.Array:
    """The dedupe identity (source, event_id) as one text per line: the event_id alone when
    there is no source, else source, a unit separator and the event_id. Both were checked to
    hold only [A-Za-z0-9._:-], so different identities never give the same text."""
    if pc.all(pc.equal(source, "")).as_py() is not False:  # most producers send no source
        return event_id
    return pc.if_else(pc.equal(source, ""), event_id, pc.binary_join_element_wise(source, event_id, "\x1f"))


@dataclass
class _BucketedKeys:
    """One object's dedupe keys ordered by bucket (one of _FINE_BUCKETS, a function of the
    key's tails, so equal keys share one), each with its row in the object; a bucket's rows
    keep the object's order."""

    keys: pa.Array
    rows: np.ndarray
    bounds: np.ndarray  # where each bucket starts, and the end


def _bucketed(keys: pa.Array, tails: np.ndarray, rows: np.ndarray) -> _BucketedKeys:
    # the top ten bits of a multiplicative (Fibonacci) hash of the tails: ids that differ only
    # in their last digits still land in buckets spread over the whole range, which runs of
    # neighbouring buckets then share out evenly
    bucket = (((tails.astype(np.uint32) * 0x9E37) & 0xFFFF) >> (16 - _FINE_BUCKET_BITS)).astype(np.uint16)
    order = np.argsort(bucket, kind="stable")  # 16 bits: a radix sort; stable keeps the rows' order
    bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=_FINE_BUCKETS))))
    return _BucketedKeys(keys.take(pa.array(order)), rows[order], bounds)


def _repeats(objects: list[_BucketedKeys], row_starts: Sequence[int], pool: ThreadPoolExecutor,
             keys_per_bucket: int = _KEYS_PER_BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """Every row whose key occurred before, ascending, and the row of that key's first
    occurrence (rows are numbered across the partition: object ``i``'s row ``r`` is
    ``row_starts[i] + r``).
    Hashing two million keys is the slowest single step of a partition, so it is shared out:
    each object put its keys in fine buckets as it was prepared; here runs of neighbouring fine
    buckets, together about ``keys_per_bucket`` keys, are deduplicated side by side (Arrow's
    hashing releases the GIL), each small enough for its hash table to stay in cache. Within a
    run every key's occurrences keep the partition's order, which is all first-come needs."""
    total = sum(len(item.keys) for item in objects)
    per_run = max(1, _FINE_BUCKETS // max(1, min(_FINE_BUCKETS, total // keys_per_bucket)))
    runs = [(start, min(start + per_run, _FINE_BUCKETS)) for start in range(0, _FINE_BUCKETS, per_run)]

    def repeats_within(run: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        pieces = [(item.bounds[run[0]], item.bounds[run[1]], item, row_start)
                  for item, row_start in zip(objects, row_starts) if item.bounds[run[1]] > item.bounds[run[0]]]
        if not pieces:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        slices = [item.keys.slice(lo, hi - lo) for lo, hi, item, _ in pieces]
        if sum(len(value_data(piece)) for piece in slices) >= 2**31:  # beyond 32-bit offsets
            slices = [piece.cast(pa.large_string()) for piece in slices]
        keys = pa.concat_arrays(slices)
        positions = np.concatenate([item.rows[lo:hi] + row_start for lo, hi, item, row_start in pieces])
        # dictionary codes are handed out in order of first appearance: a code is new exactly
        # at its key's first position
        codes = keys.dictionary_encode().indices.to_numpy().astype(np.int64)
        is_new = codes > np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
        repeated = np.flatnonzero(~is_new)
        return positions[repeated], positions[np.flatnonzero(is_new)][codes[repeated]]

    found = list(pool.map(repeats_within, runs))
    repeat_rows = np.concatenate([rows for rows, _ in found])
    first_rows = np.concatenate([firsts for _, firsts in found])
    order = np.argsort(repeat_rows, kind="stable")
    return repeat_rows[order], first_rows[order]


def _tails(values: pa.StringArray) -> np.ndarray:
    """Each value's last two bytes as one 16-bit number (0 for a missing byte or value), so
    equal values get equal numbers. Event ids end in their most varied characters."""
    data = values.buffers()[2]
    result = np.zeros(len(values), dtype=np.uint16)
    if data is None or len(data) == 0:
        return result
    ends = value_offsets(values).astype(np.int64)
    lengths = np.diff(ends)
    ends = ends[1:]
    data = np.frombuffer(data, dtype=np.uint8)
    for back in (2, 1):
        byte = data[np.maximum(ends - back, 0)]
        result = (result << np.uint16(8)) | np.where(lengths >= back, byte, 0).astype(np.uint16)
    return result


def ingest_partition(day: date, objects: Sequence[RawObject], reference: ReferenceData) -> IngestResult:
    """Apply CONTRACT.md §2–§4 to every object of one daily partition."""
    ctx = _PartitionContext.build(day, reference)
    ordered = sorted(objects, key=lambda item: item.key)
    # Arrow's kernels and S3 reads release the GIL: objects are fetched, parsed and checked side
    # by side, one worker more than cores so that a fetch overlaps the others' parsing
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        prepared = list(pool.map(lambda raw: _prepare_object(raw, ctx), ordered))
        return _combine(ordered, prepared, pool)


def _combine(ordered: list[RawObject], prepared: list[_PreparedObject], pool: ThreadPoolExecutor) -> IngestResult:
    """Dedupe the partition's checked lines and assemble the three tables."""
    result = IngestResult(
        events=USAGE_EVENTS_SCHEMA.empty_table(), quarantined=QUARANTINED_EVENTS_SCHEMA.empty_table(),
        duplicates=DUPLICATE_EVENTS_SCHEMA.empty_table(), quarantined_lines=QUARANTINE_RECORD_SCHEMA.empty_table(),
        objects_read=len(ordered), bytes_read=sum(item.bytes_read for item in prepared),
        lines_read=sum(item.line_count for item in prepared),
        ignored_fields=sum(item.ignored_fields for item in prepared),
        unreadable_objects=[item.key for item in prepared if item.unreadable],
        empty_objects=[item.key for item in prepared if not item.unreadable and item.checked is None],
    )
    file_rows = [{"object_key": item.key, "line_number": None, "reason": Reason.UNREADABLE_FILE.value,
                  "detail": item.unreadable} for item in prepared if item.unreadable]
    checked = [item for item in prepared if item.checked is not None]
    validated = [item.checked for item in checked]
    if not validated:
        result.quarantined = pa.Table.from_pylist(file_rows, schema=QUARANTINED_EVENTS_SCHEMA)
        result.quarantined_lines = _records(result.quarantined, pa.nulls(len(file_rows), pa.large_string()))
        return result

    partition = _PartitionLines([item.key for item in checked], validated)
    passed = np.concatenate([_absent(table.column("reason")) for table in validated])
    # rows are in (object key, line number) order, so a key's first position is its winner
    repeat_rows, winner_rows = _repeats([item.dedupe for item in checked], partition.starts[:-1], pool)
    conflict = ~_same_payload(partition, repeat_rows, winner_rows)

    accepted = passed.copy()
    accepted[repeat_rows] = False

    def accepted_events(index: int) -> pa.Table:  # object by object, side by side
        table = validated[index].select(USAGE_EVENTS_SCHEMA.names[1:])
        keep = accepted[partition.starts[index]:partition.starts[index + 1]]
        table = table if keep.all() else table.filter(pa.array(keep))
        key = pa.repeat(pa.scalar(partition.keys[index], pa.string()), table.num_rows)
        return pa.Table.from_arrays([key, *table.columns], schema=USAGE_EVENTS_SCHEMA)

    result.events = pa.concat_tables(list(pool.map(accepted_events, range(len(validated)))))
    duplicates = partition.take(repeat_rows[~conflict], ["line_number", "source", "event_id"])
    winners = partition.take(winner_rows[~conflict], ["line_number"])
    result.duplicates = pa.table({
        "object_key": duplicates.column("object_key"), "line_number": duplicates.column("line_number"),
        "source": duplicates.column("source"), "event_id": duplicates.column("event_id"),
        "first_object_key": winners.column("object_key"), "first_line_number": winners.column("line_number"),
    }, schema=DUPLICATE_EVENTS_SCHEMA)

    conflicts = partition.take(repeat_rows[conflict], ["line_number", "source", "event_id"])
    conflict_winners = partition.take(winner_rows[conflict], ["line_number"])
    conflict_table = pa.table({
        "object_key": conflicts.column("object_key"), "line_number": conflicts.column("line_number"),
        "reason": pa.repeat(pa.scalar(Reason.DUPLICATE_CONFLICT.value, pa.string()), conflicts.num_rows),
        # source and event_id passed their charsets: quoted, they are their own repr
        "detail": join_texts("(source '", conflicts.column("source"), "', event_id '", conflicts.column("event_id"),
                          "') was first seen at ", conflict_winners.column("object_key"), " line ",
                          conflict_winners.column("line_number").cast(pa.string()), " with a different payload"),
        "position": conflicts.column("position"),
    })
    line_rejects = partition.take(np.flatnonzero(~passed), ["line_number", "reason", "detail"])
    rejects = pa.concat_tables([line_rejects, conflict_table.select(line_rejects.column_names)])
    rejects = rejects.take(pc.sort_indices(rejects, [("object_key", "ascending"), ("line_number", "ascending")]))
    files = pa.Table.from_pylist(file_rows, schema=QUARANTINED_EVENTS_SCHEMA)
    result.quarantined = pa.concat_tables([
        files, rejects.select(QUARANTINED_EVENTS_SCHEMA.names).cast(QUARANTINED_EVENTS_SCHEMA)]).combine_chunks()
    texts = _rejected_texts(ordered, checked, partition, passed, conflicts)
    result.quarantined_lines = pa.concat_tables([
        _records(rejects, texts), _records(files, pa.nulls(files.num_rows, pa.large_string()))])
    return result


def _rejected_texts(ordered: list[RawObject], checked: list[_PreparedObject], partition: _PartitionLines,
                    passed: np.ndarray, conflicts: pa.Table) -> pa.Array:
    """The raw text of every quarantined line, in (object, line) order: rejected lines as kept
    while their object was checked, conflicting copies read again (a conflict is found after
    its object was let go)."""
    conflict_positions: dict[str, np.ndarray] = {}
    if conflicts.num_rows:
        keys = conflicts.column("object_key").to_numpy(zero_copy_only=False)
        positions = conflicts.column("position").to_numpy()
        conflict_positions = {key: np.sort(positions[keys == key]) for key in set(keys.tolist())}
    raw_of = {raw.key: raw for raw in ordered}
    pieces = []
    for index, item in enumerate(checked):
        rejected = np.flatnonzero(~passed[partition.starts[index]:partition.starts[index + 1]])
        texts = item.rejected_lines if item.rejected_lines is not None else pa.array([], pa.large_string())
        again = conflict_positions.get(item.key)
        if again is not None:
            lines = read_object_lines(item.key, raw_of[item.key].read()).lines
            rejected = np.concatenate([rejected, again])
            texts = pa.concat_arrays([texts, lines.take(pa.array(again))]).take(pa.array(np.argsort(rejected, kind="stable")))
        pieces.append(texts)
    return pa.concat_arrays(pieces) if pieces else pa.array([], pa.large_string())


def _records(rows: pa.Table, lines: pa.Array) -> pa.Table:
    return pa.table({"object_key": rows.column("object_key"), "line_number": rows.column("line_number"),
                     "reason": rows.column("reason"), "detail": rows.column("detail"), "line": lines},
                    schema=QUARANTINE_RECORD_SCHEMA)
