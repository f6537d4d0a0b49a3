"""Raw usage objects → one row per non-blank line, its JSON read into exact text columns.

Arrow's JSON reader does the bulk of the work. It would read numbers as float64, so before it
runs every JSON number token that is a member value is rewritten as a string prefixed with
NUMBER_MARK (``"quantity": 1.5`` → ``"quantity": "\\ue0001.5"``): the exact digits survive and
we still know the value was a number. The rewrite cannot make invalid JSON valid: a match
inside a string closes that string early and leaves a bare NUMBER_MARK, which no JSON parser
accepts. Lines Arrow rejects, lines with escapes or control characters, and lines holding two
objects are read one by one by ``parse_line``, the reference reader, which yields the same
columns; ``billing_assets_tests`` holds the two to agreement on generated lines.

The common object needs no rewriting at all: when no quantity is written as a string, Arrow
reads ``quantity`` straight into an exact decimal(38, 9) (its JSON reader keeps number tokens
as text and converts them without a float), so ``parse_object`` returns that column already
parsed. Anything Arrow cannot take that way (a string-typed field given a number, a quantity
out of range or too precise, a fractional number in ``properties``) sends the object down the
marked path above, which keeps every token's exact text for the checks to judge. A property
Arrow reads as a timestamp (it infers one from ISO-8601 text) is declared as text and the
object read again, so it keeps its text.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from billing_assets.lib.arrow_text import value_data
from billing_assets.usage.ingest.lines import _SCAN_WINDOW, ObjectLines, _one_value
from billing_assets.lib.money import MAX_QUANTITY, QUANTITY_TYPE, canonical_number_text
from billing_assets.usage.reasons import Reason

SCALAR_FIELDS = ("event_id", "source", "timestamp", "meter", "customer_id", "ip", "quantity")
KNOWN_FIELDS = frozenset(SCALAR_FIELDS) | {"properties"}
NUMBER_MARK = "\ue000"  # the value was a JSON number; its exact text follows
OTHER_MARK = "\ue001"  # the value was a boolean, object or array; its JSON type name follows
STRING_MARK = "\ue002"  # the value was a string that itself began with one of these marks
MAX_LINE_BYTES = 1024 * 1024
_BLOCK_LINES = 16_384
# a member value that is a number: ':' number, then what may follow a value (RE2 has no
# lookahead, so the terminator is captured and put back). Requiring the terminator keeps the
# colons inside timestamps ("T19:52:58Z") from matching.
_NUMBER_MEMBER = r':(\s*)(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(\s*[,}\]])'
_NUMBER_REPLACEMENT = f':\\1"{NUMBER_MARK}\\2"\\3'
# Left to the reference reader: lines that do not open with '{' (Arrow's reader crashes on a
# leading `null` and reads a later one as an empty object), escapes, control characters, our
# own marks, and NaN/Infinity literals (which Arrow accepts and the contract rejects).
_NEEDS_REFERENCE_READER = (
    r'(?m)^[ \t]*[^ \t\r\n{]|[\\\x00-\x08\x0b-\x1f]|[\x{E000}-\x{E002}]|[:\[,]\s*-?(?:NaN|Infinity)'
)
# a quantity written as a JSON string: Arrow's decimal conversion would accept forms ("+1", ".5")
# the contract does not, so such objects keep the quantity's text (a "quantity" key inside
# properties only costs the fast path, never correctness)
_STRING_QUANTITY = r'"quantity"\s*:\s*"'
_CLOSES_OBJECT = r"\}\s*$"
_NEGATIVE_QUANTITY = r'"quantity"\s*:\s*-'
_ARROW_SCHEMA = pa.schema([(name, pa.string()) for name in SCALAR_FIELDS] + [("properties", pa.struct([]))])
# The exact path declares only what every event carries: Arrow's reader spends as long filling a
# declared but absent column with nulls (source, ip, properties in most objects) as it does on
# reading a present one. What it infers for the others must then be text or nothing at all.
EXACT_QUANTITY_SCHEMA = pa.schema([("event_id", pa.string()), ("timestamp", pa.string()), ("meter", pa.string()),
                                   ("customer_id", pa.string()), ("quantity", QUANTITY_TYPE)])


def parsed_schema(property_fields: tuple[str, ...], quantity_type: pa.DataType = pa.string()) -> pa.Schema:
    """Columns every parsed line gets, whichever reader read it. ``quantity`` is text, or an exact
    decimal when the whole object's quantities were numbers Arrow converted exactly."""
    return pa.schema(
        [("row", pa.int64())]
        + [(name, quantity_type if name == "quantity" else pa.string()) for name in SCALAR_FIELDS]
        + [("properties", pa.string()), ("properties_valid", pa.bool_())]
        + [(f"property:{name}", pa.string()) for name in property_fields]
        + [("ignored_fields", pa.int32()), ("parse_reason", pa.string()), ("parse_detail", pa.string())]
    )


class _DuplicateKey(ValueError):
    pass


class _NumberText(str):
    """A JSON number kept as its exact source text."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs):
    seen = {}
    for name, value in pairs:
        if name in seen:
            raise _DuplicateKey(f"duplicate key {name!r}")
        seen[name] = value
    return seen


def _type_name(value) -> str:
    return {bool: "boolean", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _column_value(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, _NumberText):
        return NUMBER_MARK + value
    if isinstance(value, str):
        return STRING_MARK + value if value[:1] in (NUMBER_MARK, OTHER_MARK, STRING_MARK) else value
    return OTHER_MARK + _type_name(value)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def canonical_properties(properties: dict[str, str]) -> str:
    """Canonical JSON of a properties object whose values are already canonical text."""
    return json.dumps(dict(sorted(properties.items())), ensure_ascii=False, separators=(",", ":"))


def parse_line(text: str, property_fields: tuple[str, ...]) -> dict:
    """The reference reader: one line → the parsed columns (without ``row``)."""
    row = dict.fromkeys(parsed_schema(property_fields).names[1:])
    row.update(properties_valid=True, ignored_fields=0)
    size = len(text.encode("utf-8"))
    if size > MAX_LINE_BYTES:
        return row | {"parse_reason": Reason.LINE_TOO_LONG.value,
                      "parse_detail": f"line is {size} bytes; the limit is {MAX_LINE_BYTES}"}
    try:
        document = json.loads(text, parse_float=_NumberText, parse_int=_NumberText,
                              parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as error:
        return row | {"parse_reason": Reason.MALFORMED_JSON.value, "parse_detail": f"not valid JSON: {error}"}
    if not isinstance(document, dict):
        kind = "number" if isinstance(document, _NumberText) else "string" if isinstance(document, str) else (
            "null" if document is None else _type_name(document))
        return row | {"parse_reason": Reason.NOT_AN_OBJECT.value, "parse_detail": f"a JSON {kind}, not an object"}
    if any(_has_surrogate(value) for value in _walk_strings(document)):
        return row | {"parse_reason": Reason.MALFORMED_JSON.value, "parse_detail": "not valid JSON: unpaired UTF-16 surrogate escape"}
    for name in SCALAR_FIELDS:
        row[name] = _column_value(document.get(name))
    row["ignored_fields"] = sum(1 for name, value in document.items() if name not in KNOWN_FIELDS and value is not None)
    properties = document.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            row["properties_valid"] = False
        else:
            canonical = {}
            for name, value in properties.items():
                if value is None:
                    continue
                if isinstance(value, _NumberText):
                    canonical[name] = canonical_number_text(value)
                elif isinstance(value, str):
                    canonical[name] = value
                else:
                    row["properties_valid"] = False
            row["properties"] = canonical_properties(canonical)
            for name in property_fields:
                row[f"property:{name}"] = canonical.get(name)
    return row


def _walk_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield name
            yield from _walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)


def _canonical_numbers(values: pa.Array) -> pa.Array:
    """Replace NUMBER_MARK-prefixed values by their canonical number text (``5.0`` → ``5``)."""
    marked = pc.starts_with(values, NUMBER_MARK)
    if not pc.any(marked).as_py():
        return values
    encoded = values.dictionary_encode()
    dictionary = [
        canonical_number_text(text[1:]) if text.startswith(NUMBER_MARK) else text
        for text in encoded.dictionary.to_pylist()
    ]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(dictionary, pa.string())).cast(pa.string())


def _normalise_arrow_block(block: pa.Table, rows: np.ndarray, property_fields: tuple[str, ...]) -> pa.Table:
    """Arrow's view of a block (properties as an inferred struct) → the common parsed columns."""
    n = block.num_rows
    columns = {"row": pa.array(rows, pa.int64())}
    for name in SCALAR_FIELDS:
        columns[name] = block.column(name).combine_chunks()
    properties = block.column("properties").combine_chunks()
    valid = pa.array(np.ones(n, dtype=bool))
    pieces, by_name = [], {}
    struct_type = properties.type
    for index in sorted(range(struct_type.num_fields), key=lambda i: struct_type.field(i).name):
        child_field = struct_type.field(index)
        child = pc.struct_field(properties, [index])
        if pa.types.is_string(child_field.type) or pa.types.is_integer(child_field.type):
            # an integer is its own canonical text; a marked number is made canonical
            child = child.cast(pa.string()) if pa.types.is_integer(child_field.type) else _canonical_numbers(child)
            by_name[child_field.name] = child
            # names and values here hold no quote, backslash or control character (those lines
            # went to the reference reader), so wrapping them in quotes is their JSON form
            pieces.append(pc.binary_join_element_wise(f',"{child_field.name}":"', child, '"', ""))
        elif not pa.types.is_null(child_field.type):
            valid = pc.and_(valid, pc.is_null(child))
    if pieces:
        # each piece starts with its comma; the first one is cut below (Arrow's
        # null_handling="skip" drops whole rows whose pieces are all null)
        body = pc.utf8_slice_codeunits(
            pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement=""), 1
        )
    else:
        body = pa.scalar("", pa.string())
    if properties.null_count == n:
        columns["properties"] = pa.nulls(n, pa.string())
    else:
        columns["properties"] = pc.if_else(pc.is_valid(properties), pc.binary_join_element_wise("{", body, "}", ""),
                                           pa.nulls(n, pa.string()))
    columns["properties_valid"] = valid
    for name in property_fields:
        columns[f"property:{name}"] = by_name.get(name, pa.nulls(n, pa.string()))
    extra = [name for name in block.column_names if name not in KNOWN_FIELDS]
    ignored = np.zeros(n, dtype=np.int32)
    for name in extra:
        ignored += pc.is_valid(block.column(name)).to_numpy(zero_copy_only=False).astype(np.int32)
    columns["ignored_fields"] = pa.array(ignored, pa.int32())
    columns["parse_reason"] = pa.nulls(n, pa.string())
    columns["parse_detail"] = pa.nulls(n, pa.string())
    return pa.table(columns, schema=parsed_schema(property_fields, block.schema.field("quantity").type))



def _concat_with_newlines(lines: pa.Array) -> pa.Buffer:
    return value_data(pc.binary_join_element_wise(lines, pa.scalar("", pa.large_string()),
                                                  pa.scalar("\n", pa.large_string())))


def _parse_block(lines: pa.Array, rows: np.ndarray, property_fields, parsed: list, fallback: list) -> None:
    """Parse with Arrow; a block Arrow rejects is halved until the offending lines are isolated."""
    if len(lines) == 0:
        return
    try:
        block = _read_json(_concat_with_newlines(lines), _ARROW_SCHEMA)
        if block.num_rows != len(lines):
            raise pa.ArrowInvalid("a line held more than one JSON value")
    except pa.ArrowInvalid:
        if len(lines) == 1:
            fallback.append(rows)
            return
        half = len(lines) // 2
        _parse_block(lines.slice(0, half), rows[:half], property_fields, parsed, fallback)
        _parse_block(lines.slice(half), rows[half:], property_fields, parsed, fallback)
        return
    parsed.append(_normalise_arrow_block(block, rows, property_fields))


def _read_json(data: pa.Buffer, schema: pa.Schema) -> pa.Table:
    block = _read_json_once(data, schema)
    while stamped := _timestamp_properties(block):
        # Arrow infers a timestamp from ISO-8601-looking text ("2026-01-05T10:00:00Z",
        # "2026-01-05") and the text is gone: declare those properties as text and read again
        # (each round declares at least one more name, so this ends)
        position = schema.get_field_index("properties")
        declared = list(schema.field(position).type) if position >= 0 else []
        declared += [pa.field(name, pa.string()) for name in stamped]
        properties = pa.field("properties", pa.struct(declared))
        schema = schema.set(position, properties) if position >= 0 else schema.append(properties)
        block = _read_json_once(data, schema)
    return block


def _timestamp_properties(block: pa.Table) -> list[str]:
    kind = block.schema.field("properties").type if "properties" in block.schema.names else pa.null()
    return [field.name for field in kind if pa.types.is_timestamp(field.type)] if pa.types.is_struct(kind) else []


def _read_json_once(data: pa.Buffer, schema: pa.Schema) -> pa.Table:
    return pj.read_json(
        pa.BufferReader(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=64 << 20),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
    )


def _exact_whole(lines: "ObjectLines", property_fields, suspects: np.ndarray | None = None) -> pa.Table | None:
    """The common case in one pass over the object: when no line is too long or needs the
    reference reader and no quantity is a string, the whole text at once (one reader call
    instead of one per line) with exact decimal quantities. None when the object is not that
    simple, or Arrow could not take it so. ``suspects``: ``_suspects`` of the text, when known."""
    count, text = len(lines.line_numbers), lines.text
    if text is None or count == 0 or lines.longest_line > MAX_LINE_BYTES:
        return None
    if not _plainly_simple(text, lines.lines_open_with_brace, suspects) and pc.any(
            pc.match_substring_regex(_one_value(text, pa.large_string()),
                                     f"{_NEEDS_REFERENCE_READER}|{_STRING_QUANTITY}")).as_py():
        return None
    return _parse_exact(pa.py_buffer(text), count, property_fields)


def _marked_whole(lines: "ObjectLines", property_fields) -> pa.Table | None:
    """Else the whole text at once with its numbers marked, when no line needs the reference
    reader; None when one does, or Arrow could not take it."""
    count, text = len(lines.line_numbers), lines.text
    if text is None or count == 0 or lines.longest_line > MAX_LINE_BYTES:
        return None
    whole = _one_value(text, pa.large_string())  # valid UTF-8: read_object_lines checked it
    if pc.any(pc.match_substring_regex(whole, _NEEDS_REFERENCE_READER)).as_py():
        return None
    marked = pc.replace_substring_regex(whole, _NUMBER_MEMBER, _NUMBER_REPLACEMENT)
    try:
        block = _read_json(value_data(marked), _ARROW_SCHEMA)
    except pa.ArrowInvalid:
        return None
    if block.num_rows != count:  # a line held two values, or Arrow skipped a line we count
        return None
    return _normalise_arrow_block(block, np.arange(count, dtype=np.int64), property_fields)


def _plainly_simple(text: bytes, lines_open_with_brace: bool, suspects: np.ndarray | None = None) -> bool:
    """True when a few byte scans (``suspects``, when already made) prove that neither
    ``_NEEDS_REFERENCE_READER`` nor ``_STRING_QUANTITY`` matches ``text``: an object's non-blank
    lines (each opening with '{' if ``lines_open_with_brace``) joined by newlines, perhaps with
    blank lines between. False when they can't tell, and the regex must. Producers write plain
    lines, and these scans cost a third of running the regex over the object."""
    # every non-blank line opens with '{'; blank lines are spaces only (no tab or CR: a suspect
    # byte), so no "\s*" of the patterns can reach from one line into the next
    return lines_open_with_brace and len(_suspects(text) if suspects is None else suspects) == 0


def _suspects(text: bytes) -> np.ndarray:
    """Where in ``text`` one of the patterns that keep a line off the exact path may match
    (``_NEEDS_REFERENCE_READER`` but for how a line opens, ``_STRING_QUANTITY``,
    ``_NEGATIVE_QUANTITY``), found by byte scans: a backslash, a control byte other than a
    newline, the lead byte of our marks (private use), 'NaN' and 'Infinity', and a key ending in
    'y"' then spaces, or ':' and a quote, space or minus. More places than match, never fewer."""
    data = np.frombuffer(text, dtype=np.uint8)
    found = []
    for start in range(0, len(data), _SCAN_WINDOW):  # windows: the scans' temporaries stay in cache
        window = data[start:start + _SCAN_WINDOW + 3]
        head = window[:_SCAN_WINDOW]
        odd = (head == ord("\\")) | (head == 0xEE) | ((head < 0x20) & (head != ord("\n")))
        # a string or negative quantity is a key ending in 'y"', spaces, ':', spaces and '"' or
        # '-': look at what follows every 'y"' (3 bytes; a window overlaps the next by as much)
        after = np.flatnonzero(head[:max(len(window) - 3, 0)] == ord("y"))
        after = after[window[after + 1] == ord('"')]
        following, behind = window[after + 2], window[after + 3]
        quantity = (following == ord(" ")) | ((following == ord(":")) & (
            (behind == ord('"')) | (behind == ord(" ")) | (behind == ord("-"))))
        found += [np.flatnonzero(odd) + start, after[quantity] + start]
    if (b"N" in text and b"NaN" in text) or (b"I" in text and b"Infinity" in text):
        found.append(np.array([match.start() for match in re.finditer(rb"NaN|Infinity", text)], dtype=np.int64))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _parse_exact(data: pa.Buffer, line_count: int, property_fields) -> pa.Table | None:
    """Unmarked text → parsed columns with ``quantity`` as an exact decimal, or None when some
    value needs its token's text (see the module docstring)."""
    try:
        block = _read_json(data, EXACT_QUANTITY_SCHEMA)
    except pa.ArrowInvalid:
        return None
    if block.num_rows != line_count:
        return None
    block = _with_undeclared_fields(block)
    if block is None:
        return None
    properties = block.schema.field("properties").type
    if any(pa.types.is_floating(properties.field(index).type) for index in range(properties.num_fields)):
        return None  # Arrow read a property number through a float
    quantity = block.column("quantity")
    if pc.any(pc.or_(pc.less(quantity, pa.scalar(0, QUANTITY_TYPE)),
                     pc.greater(quantity, pa.scalar(MAX_QUANTITY, QUANTITY_TYPE)))).as_py():
        return None  # out of range: the marked path keeps the text for the quarantine detail
    return _normalise_arrow_block(block, np.arange(line_count, dtype=np.int64), property_fields)


def _with_undeclared_fields(block: pa.Table) -> pa.Table | None:
    """``block`` with the known fields the exact schema leaves undeclared as ``_ARROW_SCHEMA``
    types (all null when no line has them), or None when Arrow inferred something else for one:
    a number, boolean or nested value, or text it took for a timestamp, whose token text the
    marked path keeps."""
    for field in _ARROW_SCHEMA:
        if field.name in EXACT_QUANTITY_SCHEMA.names:
            continue
        present = field.name in block.schema.names
        kind = block.schema.field(field.name).type if present else pa.null()
        if pa.types.is_null(kind):
            nulls = pa.nulls(block.num_rows, field.type)
            block = block.set_column(block.schema.get_field_index(field.name), field, nulls) if present \
                else block.append_column(field, nulls)
        elif not (kind == field.type or (pa.types.is_struct(kind) and pa.types.is_struct(field.type))):
            return None
    return block


def parse_object(lines: "ObjectLines", property_fields: tuple[str, ...]) -> pa.Table:
    """Parse one readable object's non-blank lines (``row`` = position among them)."""
    exact = _exact_whole(lines, property_fields)
    return exact if exact is not None else _beyond_exact(lines, property_fields)


def _beyond_exact(lines: "ObjectLines", property_fields: tuple[str, ...]) -> pa.Table:
    """An object the exact path did not take: its whole text with numbers marked, else line by line."""
    marked = _marked_whole(lines, property_fields)
    return marked if marked is not None else parse_lines(lines.lines, property_fields)


def parse_in_parts(lines: "ObjectLines", property_fields: tuple[str, ...]) -> list[tuple["ObjectLines", pa.Table]]:
    """``parse_object``, but an object whose few odd lines (``off_the_exact_path``) keep it
    from the exact path is parsed as two objects: its plain lines, which then take it, and the
    odd ones. Each part comes with its lines (their quantity columns may differ in type: each
    part is checked alone). A day of many rejected lines otherwise read every line of every
    object the slow way — two and a half times the parse of a clean day.

    The object's text is screened once (``_suspects``): the screen's places serve the whole
    object's attempt and the search for odd lines, and the plain lines need none of their own,
    since each was cleared alone (a pattern cannot reach across lines that all open with '{'
    and close their object)."""
    suspects = _suspects(lines.text) if lines.text is not None and len(lines.line_numbers) else None
    exact = _exact_whole(lines, property_fields, suspects)
    if exact is not None:
        return [(lines, exact)]
    odd = off_the_exact_path(lines, suspects)
    if not odd.any() or odd.all():
        return [(lines, _beyond_exact(lines, property_fields))]  # the exact path was just tried
    plain, others = lines.subset(~odd), lines.subset(odd)
    exact = _parse_exact(pa.py_buffer(plain.text), len(plain.line_numbers), property_fields)
    return [(plain, exact if exact is not None else _beyond_exact(plain, property_fields)),
            (others, _beyond_exact(others, property_fields))]


def off_the_exact_path(lines: "ObjectLines", suspects: np.ndarray | None = None) -> np.ndarray:
    """Lines that would keep their object from the exact path: for the reference reader, not
    closing their object (cut short), a quantity written as a string or a negative number
    (out of the exact path's range), or longer than the limit. When the lines are still one
    text, byte scans find the few that may be so (``suspects``, a line not opening with '{' or
    not ending with '}') and only those are matched."""
    if lines.line_ends is None:
        return _off_the_exact_path(lines.lines)
    ends, starts = lines.line_ends, lines.line_starts
    data = np.frombuffer(lines.text, dtype=np.uint8)
    last = data[np.maximum(ends - 1, starts)]  # an empty line has none: a blank line is not here
    maybe = (data[starts] != ord("{")) | (last != ord("}")) | (ends - starts > MAX_LINE_BYTES)
    maybe[np.searchsorted(ends, _suspects(lines.text) if suspects is None else suspects)] = True
    odd = np.zeros(len(ends), dtype=bool)
    candidates = np.flatnonzero(maybe)
    odd[candidates] = _off_the_exact_path(lines.lines_at(candidates))
    return odd


def _off_the_exact_path(lines: pa.LargeStringArray) -> np.ndarray:
    odd = pc.or_(pc.match_substring_regex(lines, f"{_NEEDS_REFERENCE_READER}|{_STRING_QUANTITY}|{_NEGATIVE_QUANTITY}"),
                 pc.invert(pc.match_substring_regex(lines, _CLOSES_OBJECT)))
    return pc.or_(odd, pc.greater(pc.binary_length(lines), MAX_LINE_BYTES)).to_numpy(zero_copy_only=False)


def parse_lines(lines: pa.LargeStringArray, property_fields: tuple[str, ...]) -> pa.Table:
    """Parse every line; returns ``parsed_schema`` rows in input order (``row`` = input position)."""
    n = len(lines)
    positions = np.arange(n, dtype=np.int64)
    to_reference = pc.or_(pc.or_(
        pc.greater(pc.binary_length(lines), MAX_LINE_BYTES),
        pc.match_substring_regex(lines, _NEEDS_REFERENCE_READER)),
        # a line that does not close its object (cut short in transit, the usual malformed
        # line) would fail Arrow's block and send it through halving: read it on its own
        pc.invert(pc.match_substring_regex(lines, _CLOSES_OBJECT)),
    ).to_numpy(zero_copy_only=False)
    fast = positions[~to_reference]
    fast_lines = lines if len(fast) == n else lines.take(pa.array(fast))
    marked = pc.replace_substring_regex(fast_lines, _NUMBER_MEMBER, _NUMBER_REPLACEMENT)
    parsed: list[pa.Table] = []
    fallback: list[np.ndarray] = [positions[to_reference]]
    for start in range(0, len(fast), _BLOCK_LINES):
        _parse_block(marked.slice(start, _BLOCK_LINES), fast[start:start + _BLOCK_LINES], property_fields, parsed, fallback)
    slow = np.sort(np.concatenate(fallback))
    if len(slow):
        raw = lines.take(pa.array(slow)).to_pylist()
        records = [parse_line(line, property_fields) | {"row": int(row)} for line, row in zip(raw, slow)]
        parsed.append(pa.Table.from_pylist(records, schema=parsed_schema(property_fields)))
    if not parsed:
        return parsed_schema(property_fields).empty_table()
    table = pa.concat_tables(parsed)
    if len(slow) == 0:
        return table  # Arrow's blocks are already in input order
    return table.take(pc.sort_indices(table.column("row")))
