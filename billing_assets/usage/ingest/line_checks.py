"""Per line, in contract order (§3): every check is a vectorised mask over one batch of parsed
lines, and a rejected line gets the reason and detail of the first check that fails, so the
precedence of §3 is the order of the checks in ``check_lines`` and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.arrow_text import join_texts, value_data
from billing_assets.lib.money import MAX_QUANTITY, QUANTITY_TYPE, QuantityError, parse_quantity
from billing_assets.reference.loading import CUSTOMERS_KEY, METERS_KEY
from billing_assets.usage.ingest.parse import NUMBER_MARK, OTHER_MARK
from billing_assets.usage.ingest.rules import (
    CUSTOMER_ID, DEFAULT_ONE, EVENT_ID, FAST_QUANTITY_PATTERN, FUTURE_TOLERANCE, NOT_AN_INSTANT, QUANTITY_REQUIRED,
    SOURCE, _NS_PER_DAY, _absent, _charset_matches, _field_problem, _ip_facts, _kind, _mask, _matches,
    _PartitionContext, _rfc3339_matches, _shown, _single_array, _timestamp_problem, _typed,
)
from billing_assets.usage.reasons import Reason

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


@dataclass
class Rejections:
    """The rows a batch rejects (ascending), with the reason and detail of each."""

    rows: np.ndarray
    reasons: pa.Array
    details: pa.Array


def _rejections(first: np.ndarray, checks: list[_Check], columns: dict[str, pa.Array],
                derived: dict[str, pa.Array | np.ndarray]) -> Rejections:
    """Each rejected row's reason and detail: those of the first failing check (index 0: the
    parser's own verdict, ``first`` -1: none failed). Built only for the rejected rows, check
    by check, then put in row order."""
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
        detail_parts.append(detail.cast(pa.string()))
        row_parts.append(rows)
    if not row_parts:
        return Rejections(np.zeros(0, np.int64), pa.array([], pa.string()), pa.array([], pa.string()))
    rows = np.concatenate(row_parts)
    in_row_order = np.argsort(rows, kind="stable")
    taken = pa.array(in_row_order)
    return Rejections(rows[in_row_order], pa.concat_arrays(reason_parts).take(taken),
                      pa.concat_arrays(detail_parts).take(taken))


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


def _validate_object(parsed: pa.Table, last_modified: datetime, ctx: _PartitionContext) -> tuple[pa.Table, Rejections]:
    """One object's parsed lines with their normalised values, and the lines it rejects."""
    n = parsed.num_rows
    col = {name: _single_array(parsed.column(name)) for name in parsed.column_names}
    event_id, source, stamp, meter, customer, ip = (col[name] for name in
                                                    ("event_id", "source", "timestamp", "meter", "customer_id", "ip"))
    null = {name: _absent(col[name]) for name in ("event_id", "source", "timestamp", "meter", "customer_id", "ip")}

    ip_rows = np.flatnonzero(~null["ip"] & ~_typed(ip))
    ip_valid = np.zeros(n, dtype=bool)
    ip_normalised, ip_prefix, ip_customer = (pa.nulls(n, pa.string()),) * 3
    if len(ip_rows):
        facts = []
        for text in ip.take(pa.array(ip_rows)).to_pylist():
            if (known := ctx.ip_cache.get(text)) is None:
                known = ctx.ip_cache[text] = _ip_facts(text, ctx.allocations_by_length)
            facts.append(known)
        ip_valid[ip_rows] = [known.valid for known in facts]
        # the facts of the few rows with an address, spread over all rows (null elsewhere):
        # a Python list as long as the object would cost more than the addresses themselves
        at = np.full(n, -1, dtype=np.int64)
        at[ip_rows] = np.arange(len(ip_rows))
        spread = pa.array(at, mask=at < 0)
        ip_normalised, ip_prefix, ip_customer = (
            pa.array(values, pa.string()).take(spread)
            for values in zip(*((known.normalised, known.prefix, known.customer_id) for known in facts)))

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
    rejections = _rejections(first, checks, col, {
        "resolved": resolved, "ip_prefix": ip_prefix, "ts_ns": ts_ns, "position": np.arange(n)})

    defaulted = aggregated_by(*DEFAULT_ONE) & _absent(quantity)
    if defaulted.any():
        quantity = pc.if_else(pa.array(defaulted), pa.scalar(Decimal(1), QUANTITY_TYPE), quantity)
    return pa.table({
        "line_number": col["line_number"],
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
    }), rejections


