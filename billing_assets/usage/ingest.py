"""One daily partition of raw usage → accepted events, duplicates and quarantined lines (§2–§4).

Every check is a vectorised mask over the partition's lines. Reasons are assigned by taking,
for each line, the first check in contract order that fails, so the precedence of §3 is the
order of ``_line_checks`` and nothing else.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.money import MAX_QUANTITY, QUANTITY_TYPE, QuantityError, parse_quantity
from billing_assets.reference.loading import CUSTOMERS_KEY, METERS_KEY, ReferenceData
from billing_assets.usage.parsing import NUMBER_MARK, OTHER_MARK, STRING_MARK, parse_lines, read_object_lines
from billing_assets.usage.reasons import Reason

FUTURE_TOLERANCE = timedelta(minutes=5)
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
SOURCE_PATTERN = r"^[A-Za-z0-9._:-]{0,128}$"
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
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
    key: str
    body: bytes
    last_modified: datetime


@dataclass
class IngestResult:
    """What one partition's raw objects became. ``quarantined_lines`` keeps the raw text of every
    rejected line for the quarantine prefix; the warehouse tables never hold raw lines."""

    events: pa.Table
    quarantined: pa.Table
    duplicates: pa.Table
    quarantined_lines: list[dict]
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


def _mask(array) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _matches(column: pa.Array, pattern: str) -> np.ndarray:
    return _mask(pc.match_substring_regex(column, pattern))


def _typed(column: pa.Array) -> np.ndarray:
    return _mask(pc.or_(pc.starts_with(column, NUMBER_MARK), pc.starts_with(column, OTHER_MARK)))


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
    reference: ReferenceData
    aggregation: dict[str, str]
    meter_field: dict[str, str]
    property_fields: tuple[str, ...]
    customers: pa.Array
    contracted: pa.Array
    allocations_by_length: dict[int, dict]
    ip_cache: dict[str, _IpFacts] = field(default_factory=dict)
    quantity_cache: dict[str, Decimal | str] = field(default_factory=dict)

    @classmethod
    def build(cls, day: date, reference: ReferenceData) -> "_PartitionContext":
        by_length: dict[int, dict] = {4: {}, 6: {}}
        for network, customer in reference.allocations_valid_on(day):
            by_length[network.version].setdefault(network.prefixlen, {})[network] = customer
        meter_field = reference.meter_field()
        return cls(
            day=day,
            reference=reference,
            aggregation=reference.meter_aggregation(),
            meter_field=meter_field,
            property_fields=tuple(sorted(set(meter_field.values()))),
            customers=pa.array(sorted(reference.customers["customer_id"]), pa.string()),
            contracted=pa.array(sorted(reference.customers_under_contract(day)), pa.string()),
            allocations_by_length=by_length,
        )


@dataclass
class _Check:
    reason: Reason
    failed: np.ndarray
    detail: Callable[[dict], str]


def _timestamps(column: pa.Array, well_formed: np.ndarray) -> np.ndarray:
    """UTC nanoseconds since the epoch; NOT_AN_INSTANT where the text is not a real instant."""
    result = np.full(len(column), NOT_AN_INSTANT, dtype=np.int64)
    rows = np.flatnonzero(well_formed)
    if not len(rows):
        return result
    texts = pc.utf8_upper(column.take(pa.array(rows)))
    try:
        parsed = texts.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # some text is well formed but no real instant (2026-02-30, 25:00): parse leniently
        series = pd.to_datetime(pd.Series(texts.to_pylist(), dtype=object), format="ISO8601", utc=True, errors="coerce")
        parsed = np.array([NOT_AN_INSTANT if pd.isna(stamp) else stamp.value for stamp in series], dtype=np.int64)
    result[rows] = parsed
    return result


def _quantities(column: pa.Array, ctx: _PartitionContext) -> tuple[pa.Array, list[str | None]]:
    """Exact decimals for the quantity column, plus an error text per row (None when fine/absent)."""
    n = len(column)
    present = _mask(pc.is_valid(column))
    other = _mask(pc.starts_with(column, OTHER_MARK))
    text = pc.replace_substring_regex(column, "^\\x{E000}", "")
    fast = _matches(text, FAST_QUANTITY_PATTERN) & ~other
    values = pc.if_else(pa.array(fast), text, "0").cast(QUANTITY_TYPE)
    fast &= _mask(pc.less_equal(values, pa.scalar(MAX_QUANTITY, QUANTITY_TYPE)))
    errors: list[str | None] = [None] * n
    slow_rows = np.flatnonzero(present & ~fast & ~other)
    if len(slow_rows):
        replacements = {}
        for row, raw in zip(slow_rows, text.take(pa.array(slow_rows)).to_pylist()):
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
                replacements[int(row)] = outcome
        if replacements:
            patched = values.to_pylist()
            for row, value in replacements.items():
                patched[row] = value
            values = pa.array(patched, QUANTITY_TYPE)
    for row in np.flatnonzero(other):
        errors[row] = f"quantity must be a number or decimal string, got a {_kind(column[int(row)].as_py())}"
    absent = pa.array(~present | other | np.array([error is not None for error in errors], dtype=bool))
    return pc.if_else(absent, pa.nulls(n, QUANTITY_TYPE), values), errors


def _validate_object(parsed: pa.Table, key: str, last_modified: datetime, ctx: _PartitionContext) -> pa.Table:
    """Append reason, detail and the normalised values to one object's parsed lines."""
    n = parsed.num_rows
    col = {name: parsed.column(name).combine_chunks() for name in parsed.column_names}
    event_id, source, stamp, meter, customer, ip = (col[name] for name in
                                                    ("event_id", "source", "timestamp", "meter", "customer_id", "ip"))
    null = {name: ~_mask(pc.is_valid(col[name])) for name in ("event_id", "source", "timestamp", "meter", "customer_id", "ip")}

    ip_rows = np.flatnonzero(~null["ip"] & ~_typed(ip))
    ip_valid = np.zeros(n, dtype=bool)
    ip_normalised: list[str | None] = [None] * n
    ip_prefix: list[str | None] = [None] * n
    ip_customer: list[str | None] = [None] * n
    for row, text in zip(ip_rows, ip.take(pa.array(ip_rows)).to_pylist()):
        facts = ctx.ip_cache.get(text)
        if facts is None:
            facts = ctx.ip_cache[text] = _ip_facts(text, ctx.allocations_by_length)
        ip_valid[row] = facts.valid
        ip_normalised[row], ip_prefix[row], ip_customer[row] = facts.normalised, facts.prefix, facts.customer_id

    well_formed = _matches(stamp, RFC3339_PATTERN)
    ts_ns = _timestamps(stamp, well_formed)
    deadline_ns = int((last_modified + FUTURE_TOLERANCE).timestamp() * 10**9)
    day_ordinal = (ctx.day - date(1970, 1, 1)).days

    meters = pa.array(sorted(ctx.aggregation), pa.string())
    aggregation = pc.take(pa.array([ctx.aggregation[name] for name in meters.to_pylist()], pa.string()),
                          pc.index_in(meter, value_set=meters))
    quantity, quantity_errors = _quantities(col["quantity"], ctx)
    quantity_error = np.array([error is not None for error in quantity_errors], dtype=bool)
    unique_value = pa.nulls(n, pa.string())
    for meter_name, field_name in ctx.meter_field.items():
        unique_value = pc.if_else(pc.equal(meter, meter_name), col[f"property:{field_name}"], unique_value)
    is_unique = _mask(pc.equal(aggregation, "unique_count"))
    needs_quantity = _mask(pc.is_in(aggregation, value_set=pa.array(QUANTITY_REQUIRED)))
    resolved = pc.if_else(pc.is_valid(customer), customer, pa.array(ip_customer, pa.string()))

    def value(name):
        return lambda row: _shown(row[name])

    checks = [
        _Check(Reason.MISSING_FIELD, null["event_id"], lambda row: "missing field 'event_id'"),
        _Check(Reason.MISSING_FIELD, null["timestamp"], lambda row: "missing field 'timestamp'"),
        _Check(Reason.MISSING_FIELD, null["meter"], lambda row: "missing field 'meter'"),
        _Check(Reason.MISSING_FIELD, null["customer_id"] & null["ip"],
               lambda row: "missing field: neither 'customer_id' nor 'ip' is given"),
        _Check(Reason.INVALID_FIELD, _typed(event_id), lambda row: f"event_id must be a string, got a {_kind(row['event_id'])}"),
        _Check(Reason.INVALID_FIELD, ~_matches(event_id, EVENT_ID_PATTERN),
               lambda row: f"event_id {_shown(row['event_id'])} is not 1-128 characters of [A-Za-z0-9._:-]"),
        _Check(Reason.INVALID_FIELD, ~null["source"] & _typed(source), lambda row: f"source must be a string, got a {_kind(row['source'])}"),
        _Check(Reason.INVALID_FIELD, ~null["source"] & ~_matches(source, SOURCE_PATTERN),
               lambda row: f"source {_shown(row['source'])} is not up to 128 characters of [A-Za-z0-9._:-]"),
        _Check(Reason.INVALID_FIELD, _typed(stamp), lambda row: f"timestamp must be a string, got a {_kind(row['timestamp'])}"),
        _Check(Reason.INVALID_FIELD, _typed(meter), lambda row: f"meter must be a string, got a {_kind(row['meter'])}"),
        _Check(Reason.INVALID_FIELD, ~null["customer_id"] & _typed(customer),
               lambda row: f"customer_id must be a string, got a {_kind(row['customer_id'])}"),
        _Check(Reason.INVALID_FIELD, ~null["customer_id"] & ~_matches(customer, CUSTOMER_ID_PATTERN),
               lambda row: f"customer_id {_shown(row['customer_id'])} is not 1-64 characters of [A-Za-z0-9_-]"),
        _Check(Reason.INVALID_FIELD, ~null["ip"] & _typed(ip), lambda row: f"ip must be a string, got a {_kind(row['ip'])}"),
        _Check(Reason.INVALID_FIELD, ~null["ip"] & ~ip_valid, lambda row: f"ip {_shown(row['ip'])} is not an IPv4 or IPv6 address"),
        _Check(Reason.INVALID_FIELD, ~_mask(col["properties_valid"]),
               lambda row: "properties must be an object whose values are strings or numbers"),
        _Check(Reason.INVALID_TIMESTAMP, ~well_formed & _matches(stamp, NAIVE_TIMESTAMP_PATTERN),
               lambda row: f"timestamp {_shown(row['timestamp'])} has no UTC offset (Z or ±HH:MM)"),
        _Check(Reason.INVALID_TIMESTAMP, ~well_formed,
               lambda row: f"timestamp {_shown(row['timestamp'])} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.fraction] with Z or ±HH:MM)"),
        _Check(Reason.INVALID_TIMESTAMP, ts_ns == NOT_AN_INSTANT,
               lambda row: f"timestamp {_shown(row['timestamp'])} is not a real date and time"),
        _Check(Reason.FUTURE_TIMESTAMP, ts_ns > deadline_ns,
               lambda row: f"timestamp {_shown(row['timestamp'])} is more than 5 minutes after the object landed "
                           f"({last_modified.astimezone(timezone.utc).isoformat()})"),
        _Check(Reason.PARTITION_MISMATCH, (ts_ns // _NS_PER_DAY) != day_ordinal,
               lambda row: f"timestamp {_shown(row['timestamp'])} is on "
                           f"{(date(1970, 1, 1) + timedelta(days=int(row['ts_ns'] // _NS_PER_DAY))).isoformat()} UTC, "
                           f"not in partition {ctx.day.isoformat()}"),
        _Check(Reason.UNKNOWN_METER, ~_mask(pc.is_valid(aggregation)),
               lambda row: f"meter {_shown(row['meter'])} is not in {METERS_KEY}"),
        _Check(Reason.INVALID_QUANTITY, needs_quantity & ~_mask(pc.is_valid(col["quantity"])),
               lambda row: f"meter '{row['meter']}' ({ctx.aggregation[row['meter']]}) needs a quantity"),
        _Check(Reason.INVALID_QUANTITY, quantity_error, lambda row: quantity_errors[row["position"]]),
        _Check(Reason.INVALID_QUANTITY, is_unique & ~_mask(pc.is_valid(unique_value)),
               lambda row: f"meter '{row['meter']}' counts distinct properties.{ctx.meter_field[row['meter']]}, "
                           "which this event does not have"),
        _Check(Reason.UNKNOWN_CUSTOMER, ~null["customer_id"] & ~_mask(pc.is_in(customer, value_set=ctx.customers)),
               lambda row: f"customer_id {_shown(row['customer_id'])} is not in {CUSTOMERS_KEY}"),
        _Check(Reason.UNATTRIBUTED_IP, null["customer_id"] & ~_mask(pc.is_valid(resolved)),
               lambda row: f"ip in {ip_prefix[row['position']]} is in no CIDR block allocated on {ctx.day.isoformat()}"),
        _Check(Reason.NO_ACTIVE_CONTRACT, ~_mask(pc.is_in(resolved, value_set=ctx.contracted)),
               lambda row: f"customer '{row['resolved']}' has no contract covering {ctx.day.isoformat()}"),
    ]
    parse_failed = _mask(pc.is_valid(col["parse_reason"]))
    failed = np.vstack([parse_failed] + [check.failed for check in checks])
    first = np.where(failed.any(axis=0), failed.argmax(axis=0), -1)
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    rejected = np.flatnonzero(first >= 0)
    if len(rejected):
        rows = parsed.take(pa.array(rejected)).to_pylist()
        resolved_values = resolved.take(pa.array(rejected)).to_pylist()
        for position, row, owner in zip(rejected, rows, resolved_values):
            index = first[position]
            if index == 0:
                reasons[position], details[position] = row["parse_reason"], row["parse_detail"]
                continue
            check = checks[index - 1]
            row.update(position=int(position), resolved=owner, ts_ns=int(ts_ns[position]))
            reasons[position], details[position] = check.reason.value, check.detail(row)

    count_like = _mask(pc.is_in(aggregation, value_set=pa.array(DEFAULT_ONE)))
    quantity = pc.if_else(pa.array(count_like & ~_mask(pc.is_valid(quantity))),
                          pa.scalar(Decimal(1), QUANTITY_TYPE), quantity)
    return pa.table({
        "object_key": pa.array([key] * n, pa.string()),
        "line_number": col["line_number"],
        "reason": pa.array(reasons, pa.string()),
        "detail": pa.array(details, pa.string()),
        "event_id": event_id,
        "source": pc.fill_null(source, ""),
        "timestamp": pa.array(ts_ns, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "meter": meter,
        "customer_id": resolved,
        "attributed_by": pc.if_else(pc.is_valid(customer), "customer_id", "ip"),
        "ip_prefix": pa.array(ip_prefix, pa.string()),
        "ip_normalised": pa.array(ip_normalised, pa.string()),
        "quantity": quantity,
        "unique_value": unique_value,
        "properties": col["properties"],
        "raw_position": col["row"],
    })


def _payload_fingerprint(table: pa.Table) -> pa.Array:
    """The normalised payload: what must be equal for a repeated event to be a plain duplicate.
    Fields before ``properties`` cannot contain the separator, so the join is unambiguous."""
    parts = [
        table.column("event_id"), table.column("source"),
        table.column("timestamp").cast(pa.int64()).cast(pa.string()), table.column("meter"),
        table.column("customer_id"), pc.fill_null(table.column("ip_normalised"), ""),
        table.column("quantity").cast(pa.string()), pc.fill_null(table.column("properties"), "\x00"),
    ]
    return pc.binary_join_element_wise(*[part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
                                         for part in parts], "\x1f")


def _prepare_object(raw: RawObject, ctx: _PartitionContext):
    """(lines, parsed, validated) for one object; parsed and validated are None when the object
    is unreadable or empty."""
    lines = read_object_lines(raw.key, raw.body)
    if lines.unreadable or lines.is_empty:
        return lines, None, None
    parsed = parse_lines(lines.lines, ctx.property_fields)
    parsed = parsed.append_column("line_number", pa.array(lines.line_numbers).take(parsed.column("row")))
    return lines, parsed, _validate_object(parsed, raw.key, raw.last_modified, ctx)


def ingest_partition(day: date, objects: Sequence[RawObject], reference: ReferenceData) -> IngestResult:
    """Apply CONTRACT.md §2–§4 to every object of one daily partition."""
    ctx = _PartitionContext.build(day, reference)
    validated: list[pa.Table] = []
    raw_lines: dict[str, pa.Array] = {}
    file_rows: list[dict] = []
    result = IngestResult(
        events=USAGE_EVENTS_SCHEMA.empty_table(), quarantined=QUARANTINED_EVENTS_SCHEMA.empty_table(),
        duplicates=DUPLICATE_EVENTS_SCHEMA.empty_table(), quarantined_lines=[],
    )
    ordered = sorted(objects, key=lambda item: item.key)
    # Arrow's kernels release the GIL: objects are parsed and checked side by side
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        prepared = list(pool.map(lambda raw: _prepare_object(raw, ctx), ordered))
    for raw, (lines, parsed, checked) in zip(ordered, prepared):
        result.objects_read += 1
        result.bytes_read += lines.bytes_read
        if lines.unreadable:
            result.unreadable_objects.append(raw.key)
            file_rows.append({"object_key": raw.key, "line_number": None, "reason": Reason.UNREADABLE_FILE.value,
                              "detail": lines.unreadable})
            continue
        if lines.is_empty:
            result.empty_objects.append(raw.key)
            continue
        result.lines_read += len(lines.lines)
        result.ignored_fields += int(pc.sum(parsed.column("ignored_fields")).as_py() or 0)
        validated.append(checked)
        raw_lines[raw.key] = lines.lines
    if not validated:
        result.quarantined = pa.Table.from_pylist(file_rows, schema=QUARANTINED_EVENTS_SCHEMA)
        return result

    lines_table = pa.concat_tables(validated)
    reason = lines_table.column("reason").combine_chunks()
    passed = _mask(pc.is_null(reason))
    candidates = lines_table.filter(pa.array(passed))
    keys = pc.binary_join_element_wise(candidates.column("source").combine_chunks(),
                                       candidates.column("event_id").combine_chunks(), "\x1f")
    # candidates are in (object key, line number) order, so a key's first row is its winner
    codes = keys.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    _, first_index = np.unique(codes, return_index=True)
    first_of_key = first_index[codes]
    repeated = first_of_key != np.arange(len(codes))
    conflict = np.zeros(len(codes), dtype=bool)
    if repeated.any():
        involved = np.flatnonzero(repeated)
        fingerprints = _payload_fingerprint(candidates.take(pa.array(np.union1d(involved, first_of_key[involved]))))
        lookup = dict(zip(np.union1d(involved, first_of_key[involved]).tolist(), fingerprints.to_pylist()))
        for row in involved:
            conflict[row] = lookup[row] != lookup[int(first_of_key[row])]
    duplicate = repeated & ~conflict

    accepted = candidates.filter(pa.array(~repeated))
    result.events = accepted.select(USAGE_EVENTS_SCHEMA.names).cast(USAGE_EVENTS_SCHEMA)
    dup_rows = np.flatnonzero(duplicate)
    firsts = candidates.take(pa.array(first_of_key[dup_rows].astype(np.int64)))
    dups = candidates.take(pa.array(dup_rows))
    result.duplicates = pa.table({
        "object_key": dups.column("object_key"), "line_number": dups.column("line_number"),
        "source": dups.column("source"), "event_id": dups.column("event_id"),
        "first_object_key": firsts.column("object_key"), "first_line_number": firsts.column("line_number"),
    }, schema=DUPLICATE_EVENTS_SCHEMA)

    conflict_rows = np.flatnonzero(conflict)
    conflicts = candidates.take(pa.array(conflict_rows))
    conflict_firsts = candidates.take(pa.array(first_of_key[conflict_rows].astype(np.int64)))
    conflict_table = pa.table({
        "object_key": conflicts.column("object_key"), "line_number": conflicts.column("line_number"),
        "reason": pa.array([Reason.DUPLICATE_CONFLICT.value] * len(conflict_rows), pa.string()),
        "detail": pa.array([
            f"(source {source!r}, event_id {event_id!r}) was first seen at {first_key} line {first_line} with a different payload"
            for source, event_id, first_key, first_line in zip(
                conflicts.column("source").to_pylist(), conflicts.column("event_id").to_pylist(),
                conflict_firsts.column("object_key").to_pylist(), conflict_firsts.column("line_number").to_pylist())
        ], pa.string()),
        "raw_position": conflicts.column("raw_position"),
    })
    line_rejects = lines_table.filter(pa.array(~passed)).select(["object_key", "line_number", "reason", "detail", "raw_position"])
    rejects = pa.concat_tables([line_rejects, conflict_table.cast(line_rejects.schema)])
    rejects = rejects.take(pc.sort_indices(rejects, [("object_key", "ascending"), ("line_number", "ascending")]))
    result.quarantined = pa.concat_tables([
        pa.Table.from_pylist(file_rows, schema=QUARANTINED_EVENTS_SCHEMA),
        rejects.select(QUARANTINED_EVENTS_SCHEMA.names).cast(QUARANTINED_EVENTS_SCHEMA),
    ]).combine_chunks()
    for row in rejects.to_pylist():
        result.quarantined_lines.append({
            "object_key": row["object_key"], "line_number": row["line_number"], "reason": row["reason"],
            "detail": row["detail"], "line": raw_lines[row["object_key"]][row["raw_position"]].as_py(),
        })
    for entry in file_rows:
        result.quarantined_lines.append(entry | {"line": None})
    return result
