"""The vectorised reader against the reference reader (``parse_line``).

Two independent readers of the same line must agree on every column, whatever the line:
hypothesis generates event-shaped lines, many of them broken on purpose."""

import json
import re
from decimal import Decimal
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing_assets.lib.money import parse_quantity
from billing_assets.lib import arrow_text
from billing_assets.usage.ingest import parse as parsing
from billing_assets.usage.ingest.lines import ObjectLines, read_object_lines
from billing_assets.usage.ingest.parse import parse_line, parse_lines, parse_object

FIELDS = ("user_id",)

scalars = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.text(alphabet="abcXYZ019._:-", min_size=1, max_size=12),
    st.integers(min_value=-10**20, max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.booleans(), st.none(),
    st.sampled_from(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00+05:30", "12345678.123456789", "NaN", "\ue000"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.sampled_from(["user_id", "k"]), scalars, max_size=2))
keys = st.sampled_from(["event_id", "source", "timestamp", "meter", "customer_id", "ip", "quantity", "properties", "extra"])


def _encode(value) -> str:
    if hasattr(value, "as_tuple"):  # Decimal: write it as a JSON number token
        return format(value, "f") if value == value.to_integral_value() or abs(value.adjusted()) < 20 else str(value)
    return json.dumps(value, ensure_ascii=False)


@st.composite
def lines(draw) -> str:
    members = draw(st.lists(st.tuples(keys, values), max_size=7))
    spacing = draw(st.sampled_from(["", " ", "  "]))
    text = "{" + ",".join(f'{json.dumps(k)}:{spacing}{_encode(v) if not isinstance(v, (list, dict)) else json.dumps(v, default=str)}'
                          for k, v in members) + "}"
    mutation = draw(st.sampled_from(["none", "none", "none", "truncate", "insert", "wrap", "double"]))
    if mutation == "truncate" and text:
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from([",", "}", "{", '"', "null", "NaN", "\\", ":1", " "])) + text[at:]
    elif mutation == "wrap":
        text = draw(st.sampled_from(["[{}]", "null", "5", '"s"', "{} {}"])) if not members else f"[{text}]"
    elif mutation == "double":
        text = text + " " + text
    return text


def _reference(batch: list[str]) -> list[dict]:
    return [parse_line(line, FIELDS) | {"row": row} for row, line in enumerate(batch)]


@given(st.lists(lines(), min_size=1, max_size=25))
@example(['{"properties":{"user_id": "2026-01-05T10:00:00Z"}}'])  # Arrow infers a timestamp
@example(['{"properties":{"user_id": "2026-01-05"}}', '{"properties":{"user_id": "u1"}}'])
# fields the exact path leaves for Arrow to infer: text it takes for a timestamp, numbers, nulls
@example(['{"source": "2026-01-05", "ip": "2026-01-05T10:00:00Z", "quantity": 1}'])
@example(['{"ip": 7, "quantity": 1}', '{"source": true, "quantity": 2}'])
@example(['{"properties": null, "source": null, "ip": null, "quantity": 1}'])
# a line cut short beside plain lines, and out-of-range quantities
@example(['{"quantity": -1}', '{"quantity": 2.5', '[1]', '{"quantity": 1e20}', '{"quantity": 7}'])
def test_vectorised_reader_agrees_with_the_reference_reader(batch):
    batch = [line for line in batch if line.strip(" \t\r\n\x0b\x0c")]
    if not batch:
        return
    array = pa.array(batch, pa.large_string())
    assert parse_lines(array, FIELDS).to_pylist() == _reference(batch)
    whole = read_object_lines("x.jsonl", "".join(line + "\n" for line in batch).encode())
    if whole.unreadable is None and len(whole.line_numbers) == len(batch):
        assert _as_text_quantities(parse_object(whole, FIELDS)) == _reference(batch)


@given(st.lists(lines(), min_size=1, max_size=25))
@example(['{"event_id":"a","quantity":1}', '{"event_id":"b","quantity":"2"}', '{"event_id":"c","quantity":2',
          '{"event_id":"d","quantity":3.5}', '{"country":"fr","quantity":4}'])
def test_an_object_parsed_in_parts_agrees_with_the_reference_reader(batch):
    batch = [line for line in batch if line.strip(" \t\r\n\x0b\x0c")]
    whole = read_object_lines("x.jsonl", "".join(line + "\n" for line in batch).encode())
    if not batch or whole.unreadable is not None or len(whole.line_numbers) != len(batch):
        return
    by_line = {}
    for part, parsed in parsing.parse_in_parts(whole, FIELDS):
        for row in _as_text_quantities(parsed):
            by_line[int(part.line_numbers[row.pop("row")])] = row
    expected = _reference(batch)
    for row in expected:
        del row["row"]
    assert by_line == dict(enumerate(expected, start=1))


def test_an_object_with_a_few_odd_lines_is_screened_once_and_its_plain_lines_read_exactly(monkeypatch):
    screens = []
    original = parsing._suspects
    monkeypatch.setattr(parsing, "_suspects", lambda text: screens.append(len(text)) or original(text))
    batch = [json.dumps({"event_id": f"e{i}", "quantity": i}) for i in range(1000)]
    batch[100], batch[700] = '{"event_id": "cut", "quantity": 1', '{"event_id": "s", "quantity": "2"}'
    parts = parsing.parse_in_parts(read_object_lines("x.jsonl", "\n".join(batch).encode()), FIELDS)
    assert len(screens) == 1
    (plain, exact), (odd, marked) = parts
    assert odd.line_numbers.tolist() == [101, 701] and len(plain.line_numbers) == 998
    assert pa.types.is_decimal(exact.schema.field("quantity").type)
    assert exact.column("quantity").to_pylist()[100] == Decimal(101)  # line 102: e101
    assert marked.column("parse_reason").to_pylist() == ["malformed_json", None]


def _as_text_quantities(table: pa.Table) -> list[dict]:
    """Rows with an exact decimal quantity compared as the reference reader's text: such a
    column only ever holds numbers (no string quantities) already checked by parse_quantity."""
    rows = table.to_pylist()
    if pa.types.is_decimal(table.schema.field("quantity").type):
        for row, reference in zip(rows, _reference_quantities(table)):
            row["quantity"] = reference
    return rows


def _reference_quantities(table: pa.Table):
    for value in table.column("quantity").to_pylist():
        yield None if value is None else _ExactQuantity(value)


class _ExactQuantity:
    """Equal to a reference reader's marked number text that parse_quantity reads as ``value``."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, text):
        return isinstance(text, str) and text.startswith(parsing.NUMBER_MARK) and parse_quantity(text[1:]) == self.value

    def __repr__(self):
        return f"number {self.value}"


@pytest.mark.parametrize("quantity", ['1', '"1"'], ids=["number quantities", "string quantities"])
@pytest.mark.parametrize("with_a_number", [False, True], ids=["only text", "and a number"])
def test_a_property_that_looks_like_a_timestamp_keeps_its_text(quantity, with_a_number, monkeypatch):
    # Arrow's reader turns a column of "2026-01-05T10:00:00Z"-like strings into timestamps (a
    # column that also holds other text stays text); the contract wants the string as written
    values = ["2026-01-05T10:00:00Z", "2026-01-05", "2026-01-05 10:00", None] + ([42] if with_a_number else [])
    body = "".join(
        f'{{"event_id":"e{n}","quantity":{quantity},"properties":{{'
        + ("" if value is None else f'"user_id":{json.dumps(value)},') + '"plan":"p"}}\n'
        for n, value in enumerate(values))
    expected = ["2026-01-05T10:00:00Z", "2026-01-05", "2026-01-05 10:00", None, "42"][:len(values)]
    reference_reads = []
    monkeypatch.setattr(parsing, "parse_line", lambda *args: reference_reads.append(args) or {})
    for table in (parse_object(read_object_lines("x.jsonl", body.encode()), FIELDS),
                  parse_lines(pa.array(body.splitlines(), pa.large_string()), FIELDS)):
        assert table.column("property:user_id").to_pylist() == expected
        assert table.column("properties").to_pylist() == [
            '{"plan":"p","user_id":"2026-01-05T10:00:00Z"}', '{"plan":"p","user_id":"2026-01-05"}',
            '{"plan":"p","user_id":"2026-01-05 10:00"}', '{"plan":"p"}', '{"plan":"p","user_id":"42"}'][:len(values)]
        assert table.column("properties_valid").to_pylist() == [True] * len(values)
        assert table.column("row").to_pylist() == list(range(len(values)))
    assert reference_reads == []  # declared as text and read again by Arrow, not line by line


def test_clean_lines_never_touch_the_reference_reader(monkeypatch):
    calls = []
    monkeypatch.setattr(parsing, "parse_line", lambda *args: calls.append(args) or {})
    body = "".join(json.dumps({"event_id": f"e{i}", "timestamp": "2026-01-05T10:00:00.5+01:00", "meter": "m",
                               "customer_id": "c", "quantity": i / 8, "properties": {"user_id": i, "x": "y"},
                               "extra": [1, 2]}) + "\n" for i in range(5000))
    table = parse_object(read_object_lines("x.jsonl", body.encode()), FIELDS)
    assert calls == [] and table.num_rows == 5000
    assert table.column("quantity")[3].as_py() == Decimal("0.375")  # 3/8, exactly
    assert table.column("property:user_id")[3].as_py() == "3"
    assert table.column("properties")[3].as_py() == '{"user_id":"3","x":"y"}'


def _quantity_column(lines: list[str]) -> pa.ChunkedArray:
    return parse_object(read_object_lines("x.jsonl", "".join(line + "\n" for line in lines).encode()), FIELDS).column("quantity")


def test_number_quantities_arrive_as_exact_decimals():
    column = _quantity_column(['{"quantity": 12345678.123456789}', '{"quantity": 1e3}', '{"quantity": 0}', '{"a": 1}',
                               '{"quantity": 1000000000000000}'])
    assert column.type == pa.decimal128(38, 9)
    assert column.to_pylist() == [Decimal("12345678.123456789"), Decimal(1000), Decimal(0), None, Decimal(10) ** 15]


@pytest.mark.parametrize("odd_line", [
    '{"quantity": "2.5"}',  # a decimal string: its text is judged by parse_quantity, not by Arrow
    '{"quantity": -1}',  # negative: the quarantine detail quotes the text
    '{"quantity": 1000000000000000.000000001}',  # above 10^15
    '{"quantity": 0.0000000001}',  # ten fractional digits
    '{"quantity": true}',
    '{"properties": {"user_id": 0.5}}',  # Arrow would read a fractional property through a float
    '{"event_id": 7}',  # a number where a string belongs
])
def test_an_object_with_a_value_arrow_cannot_read_exactly_keeps_the_text(odd_line):
    column = _quantity_column(['{"quantity": 1.5}', odd_line])
    assert column.type == pa.string()
    assert column[0].as_py() == parsing.NUMBER_MARK + "1.5"


@pytest.mark.parametrize(("member", "column", "expected"), [
    ('"source": "2026-01-05"', "source", "2026-01-05"),  # Arrow would infer a date and drop the text
    ('"ip": "2026-01-05T10:00:00Z"', "ip", "2026-01-05T10:00:00Z"),
    ('"source": 7', "source", parsing.NUMBER_MARK + "7"),
    ('"ip": true', "ip", parsing.OTHER_MARK + "boolean"),
    ('"properties": "p"', "properties_valid", False),
    ('"source": null', "source", None),
])
def test_fields_the_exact_path_leaves_undeclared_keep_their_text(member, column, expected):
    # the exact path declares only event_id, timestamp, meter, customer_id and quantity: what
    # Arrow infers for source, ip and properties must not replace their text
    body = f'{{"event_id":"e1","quantity":1,{member}}}\n{{"event_id":"e2"}}\n'
    table = parse_object(read_object_lines("x.jsonl", body.encode()), FIELDS)
    assert table.column(column).to_pylist() == [expected, None if column != "properties_valid" else True]
    assert table.column("event_id").to_pylist() == ["e1", "e2"]


def test_one_bad_line_does_not_send_its_neighbours_to_the_reference_reader(monkeypatch):
    calls = []
    original = parsing.parse_line
    monkeypatch.setattr(parsing, "parse_line", lambda line, fields: calls.append(line) or original(line, fields))
    good = [json.dumps({"event_id": f"e{i}", "quantity": i}) for i in range(3000)]
    batch = good[:1500] + ['{"event_id": "bad", "quantity": 1,'] + good[1500:]
    table = parse_lines(pa.array(batch, pa.large_string()), FIELDS)
    assert calls == ['{"event_id": "bad", "quantity": 1,']
    assert table.column("parse_reason").to_pylist()[1500] == "malformed_json"


def test_numbers_keep_their_exact_text_and_type():
    row = parse_lines(pa.array(['{"quantity": 12345678.123456789, "event_id": "7"}',
                                '{"quantity": "12345678.123456789", "event_id": 7}'], pa.large_string()), FIELDS).to_pylist()
    assert row[0]["quantity"] == parsing.NUMBER_MARK + "12345678.123456789" and row[0]["event_id"] == "7"
    assert row[1]["quantity"] == "12345678.123456789" and row[1]["event_id"] == parsing.NUMBER_MARK + "7"


def test_object_lines_of_an_object_with_blank_lines():
    lines = read_object_lines("x.jsonl", b'\n{"a":1}\n \n\t\n{"b":2}')
    assert isinstance(lines, ObjectLines) and lines.line_numbers.tolist() == [2, 5]


@given(st.lists(st.sampled_from(['{"a":1}', '{}', '{"é":"x y"}', '', ' ', '\t', ' {"a":1}', '{"a":1}\r', 'x', '{' + 'z' * 40]),
                max_size=8), st.booleans(), st.sampled_from([1 << 20, 1, 2, 7]))
@example(['{"a":1}', '{}'], True, 1 << 20)
@example(['{"a":1}', '', '{}'], False, 1)
def test_object_lines_agree_with_splitting_the_text_by_hand(lines, final_newline, window):
    # whether found by splitting or from newline positions alone (every line opening with '{'),
    # an object's lines are Python's own reading of the text: split at newlines, a CR before
    # the newline dropped, blank lines skipped but counted
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    physical = text.split("\n")
    if text.endswith("\n"):
        physical = physical[:-1]
    expected = [(number, line.removesuffix("\r")) for number, line in enumerate(physical, 1)
                if line.removesuffix("\r").strip(" \t\r\n\x0b\x0c")]
    with mock.patch.object(parsing, "_SCAN_WINDOW", window):
        read = read_object_lines("x.jsonl", text.encode())
    assert list(zip(read.line_numbers.tolist(), read.lines.to_pylist())) == expected
    assert read.longest_line == max((len(line.encode()) for _, line in expected), default=0)
    assert read.lines_open_with_brace == all(line.startswith("{") for _, line in expected)
    assert read.newlines == text.count("\n")


@pytest.mark.parametrize(("number", "canonical"), [
    ("5", "5"), ("-0", "0"), ("1e2", "100"),
    ("9223372036854775807", "9223372036854775807"),  # the largest int64: Arrow's integer column
    ("9223372036854775808", "9223372036854775808"),  # one more: Arrow would go through a float
    ("-9223372036854775809", "-9223372036854775809"),
    ("123456789012345678901234567890", "123456789012345678901234567890"),
])
def test_a_number_in_properties_keeps_its_exact_canonical_text(number, canonical):
    body = f'{{"quantity": 1, "properties": {{"user_id": {number}}}}}\n'.encode()
    table = parse_object(read_object_lines("x.jsonl", body), FIELDS)
    assert table.column("property:user_id").to_pylist() == [canonical]
    assert table.column("properties").to_pylist() == [f'{{"user_id":"{canonical}"}}']


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_value_data_is_the_values_bytes_of_a_slice(kind):
    array = pa.array(["ab", None, "cde", "", "f"], kind)
    assert arrow_text.value_data(array).to_pybytes() == b"abcdef"
    assert arrow_text.value_data(array.slice(2, 2)).to_pybytes() == b"cde"
    assert arrow_text.value_data(array.slice(1, 1)).to_pybytes() == b""
    assert arrow_text.value_data(pa.array([None, None], kind)).to_pybytes() == b""
    assert arrow_text.value_data(array.slice(5)).to_pybytes() == b""


def _screen(text: str) -> bool:
    lines = read_object_lines("x.jsonl", text.encode())
    return parsing._plainly_simple(lines.text, lines.lines_open_with_brace)


def _regex_matches(text: str) -> bool:
    return re.search(f"{parsing._NEEDS_REFERENCE_READER}|{parsing._STRING_QUANTITY}".replace(r"\x{E000}", "\ue000")
                     .replace(r"\x{E002}", "\ue002"), text) is not None


# pieces of producer lines and of everything the regexes look for
_pieces = st.sampled_from(['{', '}', '"quantity"', '"entity"', ':', ' ', '  ', '"', '1.5', 'y', 'N', 'NaN', 'Infinity', 'I',
                           '\\', '\t', '\r', '\x0b', '\x1f', '\ue000', '\ue0ff', 'é', ',', 'a', '\n', '\n{', '\n \n'])


@given(st.lists(_pieces, max_size=30).map("".join), st.sampled_from([1 << 20, 1, 3, 4, 5]))
@example('{"quantity":"2"}\n', 1 << 20)
@example('{"quantity" :"2"}\n', 1 << 20)
@example('{"a":1,"quantity": "2"}\n', 4)  # the 'y"' at a window's end
@example('{"quantity" : 2}\n{"x":"y"}\n', 4)
def test_the_byte_screen_only_clears_what_the_regex_would_clear(text, window):
    """Python's re stands in for RE2 here: the patterns use nothing the two read differently
    (RE2's \\s has no \\v, which is a control byte and never cleared)."""
    if not text.strip(" \t\r\n\x0b\x0c"):
        return
    with mock.patch.object(parsing, "_SCAN_WINDOW", window):
        if _screen(text):
            assert not _regex_matches(text)


@pytest.mark.parametrize(("text", "cleared"), [
    ('{"event_id":"e1","quantity":1.5}\n{"event_id":"e2","quantity":2}\n', True),
    ('{"event_id":"e1","quantity":1.5}\n  \n{"country":1,"x":"y"}', True),  # a blank line; 'y"'s that open no string
    ('{"event_id":"e1","quantity":1.5,"country":"fr"}\n', False),  # a key ending in 'y' with a string value
    ('{"event_id":"e1","quantity":"1.5"}\n', False),  # a string quantity
    ('{"event_id":"e1","quantity": "1.5"}\n', False),
    ('{"event_id":"e1","quantity" :1.5}\n', False),  # spaces: left to the regex (which clears it)
    ('{"event_id":"e\\u0031","quantity":1}\n', False),  # an escape
    ('{"event_id":"e1","quantity":1}\r\n', False),  # CR
    ('{"event_id":"e1",\t"quantity":1}\n', False),  # tab
    (' {"event_id":"e1","quantity":1}\n', False),  # a line not opening with '{'
    ('{"event_id":"e1","quantity":NaN}\n', False),
    ('{"event_id":"e1","quantity":-Infinity}\n', False),
    ('{"event_id":"\ue000","quantity":1}\n', False),  # a private-use character (the marks)
])
def test_the_byte_screen_clears_plain_producer_lines_only(text, cleared):
    assert _screen(text) is cleared
    assert cleared is False or not _regex_matches(text)


def test_lines_cut_short_are_read_on_their_own_without_halving_arrows_block(monkeypatch):
    reads = []
    original = parsing._read_json
    monkeypatch.setattr(parsing, "_read_json", lambda data, schema: reads.append(1) or original(data, schema))
    batch = [json.dumps({"event_id": f"e{i}", "quantity": i}) for i in range(2000)]
    for position in range(25, 2000, 50):  # 40 lines cut short, spread over the block
        batch[position] = batch[position][:-7]
    table = parse_lines(pa.array(batch, pa.large_string()), FIELDS)
    assert len(reads) == 1  # one block of 1,960 readable lines; halving would read it ~200 times
    assert table.column("parse_reason").to_pylist().count("malformed_json") == 40


def _odd_by_regex(line: str) -> bool:
    """A line off the exact path, by Python's re over the line alone (see above)."""
    pattern = f"{parsing._NEEDS_REFERENCE_READER}|{parsing._STRING_QUANTITY}|{parsing._NEGATIVE_QUANTITY}"
    return (re.search(pattern.replace(r"\x{E000}", "\ue000").replace(r"\x{E002}", "\ue002"), line) is not None
            or re.search(parsing._CLOSES_OBJECT, line) is None or len(line.encode()) > parsing.MAX_LINE_BYTES)


@given(st.lists(st.lists(_pieces, max_size=12).map(lambda pieces: "{" + "".join(pieces)), min_size=1, max_size=40),
       st.sampled_from([1 << 20, 1, 3, 4, 5]), st.data())
@example(['{"quantity":-1}', '{"quantity":"1"}', '{"a":1}', '{"b":NaN}', '{"c":1', '{"y" :2}'], 4, None)
def test_the_odd_lines_an_object_text_screens_are_the_lines_the_regex_finds(lines, window, data):
    read = read_object_lines("x.jsonl", "\n".join(lines).encode())
    texts = read.lines.to_pylist()
    with mock.patch.object(parsing, "_SCAN_WINDOW", window):
        assert parsing.off_the_exact_path(read).tolist() == [_odd_by_regex(line) for line in texts]
    assert read.lines_at(np.arange(len(texts))).to_pylist() == texts
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(texts), max_size=len(texts)))) if data else \
        np.arange(len(texts)) % 2 == 0
    part = read.subset(keep)
    assert part.lines_at(np.arange(int(keep.sum()))).to_pylist() == [text for text, kept in zip(texts, keep) if kept]
    assert part.newlines == part.text.count(b"\n")
