"""Partition-level behaviour of ingest: conservation, dedupe order, redelivery, empty and blank
input, IP attribution and exact quantities. Expected values are worked out by hand in comments."""

import gzip
import re
from decimal import Decimal

import numpy as np
from types import SimpleNamespace

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing_assets.usage.ingest import RawObject
from billing_assets.usage.ingest.dedupe import bucket_runs, bucketed as _bucketed, repeats_in_run, tails as _tails
from billing_assets.usage.ingest.lines import read_object_lines
from billing_assets.usage.ingest.parse import parse_object
from billing_assets.usage.ingest.partition import _Chunks
from billing_assets.usage.ingest.rules import (
    CUSTOMER_ID, EVENT_ID, RFC3339_PATTERN, SOURCE, _charset_matches, _rfc3339_matches,
)
from billing_assets.usage.ingest.spill import Spill
from billing_assets_tests.usage.helpers import DAY, LANDED, event, ingest, raw, reasons


def test_conservation_on_a_mixed_file():
    lines = [
        event(event_id="a1"),                      # 1 accepted
        "",                                        # 2 blank: not a line of usage
        event(event_id="a2", meter="api_requests", quantity=...),  # 3 accepted
        event(event_id="a1"),                      # 4 duplicate of line 1
        "{broken",                                 # 5 malformed_json
        "   ",                                     # 6 blank
        event(event_id="a3", customer_id="nobody"),  # 7 unknown_customer
        event(event_id="a2", meter="api_requests", quantity="5"),  # 8 duplicate_conflict (1 ≠ 5)
        event(event_id="a4", timestamp="2026-01-04T12:00:00Z"),    # 9 partition_mismatch
    ]
    result = ingest(raw("mixed.jsonl", *lines))
    assert result.lines_read == 7
    assert result.events.num_rows == 2 and result.duplicates.num_rows == 1 and result.quarantined_line_count == 4
    assert result.lines_read == result.events.num_rows + result.duplicates.num_rows + result.quarantined_line_count
    assert reasons(result) == [(5, "malformed_json"), (7, "unknown_customer"), (8, "duplicate_conflict"),
                               (9, "partition_mismatch")]
    assert result.duplicates.to_pylist() == [{
        "object_key": "raw/usage/dt=2026-01-05/mixed.jsonl", "line_number": 4, "source": "", "event_id": "a1",
        "first_object_key": "raw/usage/dt=2026-01-05/mixed.jsonl", "first_line_number": 1,
        "customer_id": "acme", "meter": "egress_gb"}]
    # what was not billed, and to whom: only a customer of customers.csv is named (never 'nobody'),
    # a conflicting copy with its own quantity, a malformed line with nothing
    assert [(row["line_number"], row["customer_id"], row["meter"], row["quantity"])
            for row in result.quarantined.to_pylist()] == [
        (5, None, None, None), (7, None, "egress_gb", Decimal("1.5")), (8, "acme", "api_requests", Decimal("5")),
        (9, "acme", "egress_gb", Decimal("1.5"))]


def test_a_repeat_differing_only_in_ip_or_properties_is_a_conflict_and_a_reformatted_one_a_duplicate():
    lines = [
        event(event_id="p1", ip="10.1.1.1"),                                                      # 1 accepted
        event(event_id="p1", ip="10.1.1.2"),                                                      # 2 conflict: ip
        event(event_id="p2", meter="active_users", quantity=..., properties={"user_id": "u1", "n": 5}),  # 3 accepted
        event(event_id="p2", meter="active_users", quantity=..., properties={"user_id": "u2", "n": 5}),  # 4 conflict
        event(event_id="p2", meter="active_users", quantity=..., properties={"n": 5.0, "user_id": "u1"}),  # 5 duplicate
        event(event_id="p2", meter="active_users", quantity=..., properties={"user_id": "u1"}),    # 6 conflict: no n
    ]
    result = ingest(raw("a.jsonl", *lines))
    assert reasons(result) == [(2, "duplicate_conflict"), (4, "duplicate_conflict"), (6, "duplicate_conflict")]
    assert [(row["line_number"], row["first_line_number"]) for row in result.duplicates.to_pylist()] == [(5, 3)]
    assert [row["line_number"] for row in result.events.to_pylist()] == [1, 3]


def test_first_occurrence_is_by_object_key_then_line_number():
    # b.jsonl holds the copy at line 1, a.jsonl at line 3: a.jsonl sorts first, so it wins
    b = raw("b.jsonl", event(event_id="x", quantity="1"))
    a = raw("a.jsonl", event(event_id="y"), event(event_id="z"), event(event_id="x", quantity="1"))
    result = ingest(b, a)
    winner = [row for row in result.events.to_pylist() if row["event_id"] == "x"]
    assert [(row["object_key"].rsplit("/", 1)[1], row["line_number"]) for row in winner] == [("a.jsonl", 3)]
    assert [(row["object_key"].rsplit("/", 1)[1], row["line_number"]) for row in result.duplicates.to_pylist()] == [
        ("b.jsonl", 1)]


def test_dedupe_key_includes_source():
    result = ingest(raw("a.jsonl", event(event_id="x", source="gateway"), event(event_id="x", source="batch"),
                        event(event_id="x")))
    assert result.events.num_rows == 3 and result.duplicates.num_rows == 0


def test_an_event_without_source_is_a_duplicate_whatever_its_neighbours_send():
    # objects work out their dedupe keys on their own: one that also holds events with a source
    # must still recognise a source-less event seen in an object without any
    result = ingest(raw("a.jsonl", event(event_id="x")),
                    raw("b.jsonl", event(event_id="y", source="gateway"), event(event_id="x"), event(event_id="y")))
    assert [(row["object_key"][-7:], row["line_number"], row["first_object_key"][-7:], row["first_line_number"])
            for row in result.duplicates.to_pylist()] == [("b.jsonl", 2, "a.jsonl", 1)]
    assert result.events.column("event_id").to_pylist() == ["x", "y", "y"]


def test_identical_payloads_compare_after_normalisation():
    # same instant in two spellings, same quantity as number and as string, properties reordered
    one = event(event_id="n", timestamp="2026-01-05T10:00:00Z", quantity=1.5, properties={"a": "1", "b": 2})
    two = event(event_id="n", timestamp="2026-01-05T11:00:00+01:00", quantity="1.50", properties={"b": 2.0, "a": "1"})
    result = ingest(raw("a.jsonl", one, two))
    assert result.events.num_rows == 1 and result.duplicates.num_rows == 1 and result.quarantined.num_rows == 0


def test_a_redelivered_object_is_all_duplicates():
    body = "".join(event(event_id=f"r{i}", quantity=str(i)) + "\n" for i in range(1, 51)).encode()
    original = RawObject("raw/usage/dt=2026-01-05/part-1.jsonl.gz", gzip.compress(body, mtime=0), LANDED)
    again = RawObject("raw/usage/dt=2026-01-05/part-1-retry.jsonl.gz", gzip.compress(body, mtime=0), LANDED)
    result = ingest(original, again)
    assert (result.lines_read, result.events.num_rows, result.duplicates.num_rows, result.quarantined.num_rows) == (
        100, 50, 50, 0)
    assert sum(result.events.column("quantity").to_pylist()) == Decimal(sum(range(1, 51)))  # 1275, counted once


def test_empty_objects_are_noted_not_quarantined():
    zero = RawObject("raw/usage/dt=2026-01-05/zero.jsonl", b"", LANDED)
    blank = raw("blank.jsonl", "", "  ", "\t")
    gz_empty = RawObject("raw/usage/dt=2026-01-05/empty.jsonl.gz", gzip.compress(b""), LANDED)
    result = ingest(zero, blank, gz_empty, raw("real.jsonl", event()))
    assert sorted(key.rsplit("/", 1)[1] for key in result.empty_objects) == ["blank.jsonl", "empty.jsonl.gz",
                                                                          "zero.jsonl"]
    assert result.quarantined.num_rows == 0 and result.events.num_rows == 1 and result.lines_read == 1


def test_blank_lines_keep_physical_line_numbers_and_crlf_is_fine():
    body = ("\r\n" + event(event_id="c1") + "\r\n\r\n" + "{bad\r\n").encode()
    result = ingest(RawObject("raw/usage/dt=2026-01-05/crlf.jsonl", body, LANDED))
    assert result.events.column("line_number").to_pylist() == [2]
    assert reasons(result) == [(4, "malformed_json")]


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_line():
    body = b"\xef\xbb\xbf" + (event(event_id="bom") + "\n").encode()
    result = ingest(RawObject("raw/usage/dt=2026-01-05/bom.jsonl", body, LANDED))
    assert result.events.column("event_id").to_pylist() == ["bom"]


def attributed(ip: str, day_csv: str | None = None) -> tuple:
    kwargs = {"ip_allocations_csv": day_csv} if day_csv else {}
    result = ingest(raw("a.jsonl", event(customer_id=..., ip=ip)), **kwargs)
    if result.events.num_rows == 0:
        return (None, result.quarantined.column("reason").to_pylist())
    row = result.events.to_pylist()[0]
    return (row["customer_id"], row["attributed_by"], row["ip_prefix"])


def test_ip_attribution_picks_the_most_specific_block_valid_that_day():
    # 10.0.0.0/8 acme ⊃ 10.20.0.0/16 globex ⊃ 10.20.30.0/24 initech (valid 2026-01-01 to 2026-01-06)
    assert attributed("10.1.2.3") == ("acme", "ip", "10.1.2.0/24")
    assert attributed("10.20.1.9") == ("globex", "ip", "10.20.1.0/24")
    assert attributed("10.20.30.40") == ("initech", "ip", "10.20.30.0/24")


def test_ip_attribution_respects_validity_windows():
    expired = ("cidr,customer_id,valid_from,valid_to\n10.0.0.0/8,acme,2025-01-01,\n"
               "10.20.30.0/24,initech,2025-01-01,2026-01-05\n10.20.30.0/24,globex,2026-01-05,\n")
    assert attributed("10.20.30.40", expired) == ("globex", "ip", "10.20.30.0/24")  # valid_to is exclusive


def test_ipv6_attribution_and_48_bit_prefix():
    # 2001:db8::/32 globex ⊃ 2001:db8:42::/48 initech
    assert attributed("2001:db8:42:1::7") == ("initech", "ip", "2001:db8:42::/48")
    assert attributed("2001:0db8:0007:0000::1") == ("globex", "ip", "2001:db8:7::/48")


def test_ipv4_mapped_ipv6_is_attributed_as_ipv4():
    assert attributed("::ffff:10.1.2.3") == ("acme", "ip", "10.1.2.0/24")


def test_unattributed_ip_and_customer_id_taking_precedence_over_ip():
    assert attributed("203.0.113.9") == (None, ["unattributed_ip"])
    result = ingest(raw("a.jsonl", event(customer_id="initech", ip="10.1.2.3", meter="api_requests")))
    row = result.events.to_pylist()[0]
    assert (row["customer_id"], row["attributed_by"], row["ip_prefix"]) == ("initech", "customer_id", "10.1.2.0/24")


def test_each_line_of_an_object_is_attributed_by_its_own_ip():
    # one object, addresses on some lines only: each accepted row carries its own line's
    # customer and prefix (the blocks as in the tests above), the unattributed one is quarantined
    result = ingest(raw("a.jsonl",
                        event(event_id="e1"),                                          # 1 acme by customer_id
                        event(event_id="e2", customer_id=..., ip="10.20.30.40"),       # 2 initech
                        event(event_id="e3", customer_id=..., ip="203.0.113.9"),       # 3 unattributed
                        event(event_id="e4", customer_id=..., ip="10.1.2.3"),          # 4 acme
                        event(event_id="e5", customer_id="globex", ip="10.1.2.3"),     # 5 globex by customer_id
                        event(event_id="e6", customer_id=..., ip="2001:db8:42:1::7")))  # 6 initech
    assert [(row["line_number"], row["customer_id"], row["attributed_by"], row["ip_prefix"])
            for row in result.events.to_pylist()] == [
        (1, "acme", "customer_id", None), (2, "initech", "ip", "10.20.30.0/24"), (4, "acme", "ip", "10.1.2.0/24"),
        (5, "globex", "customer_id", "10.1.2.0/24"), (6, "initech", "ip", "2001:db8:42::/48")]
    assert reasons(result) == [(3, "unattributed_ip")]


def test_no_raw_ip_reaches_the_accepted_events():
    result = ingest(raw("a.jsonl", event(customer_id=..., ip="10.1.2.3")))
    assert "10.1.2.3" not in str(result.events.to_pylist())


def test_an_18_digit_quantity_arrives_unchanged():
    result = ingest(raw("a.jsonl", '{"event_id":"big","timestamp":"2026-01-05T10:00:00Z","meter":"egress_gb",'
                                   '"customer_id":"acme","quantity":123456789.123456789}',
                        event(event_id="string", quantity="999999999999999.999999999")))
    assert result.events.column("quantity").to_pylist() == [Decimal("123456789.123456789"),
                                                             Decimal("999999999999999.999999999")]
    assert str(result.events.schema.field("quantity").type) == "decimal128(38, 9)"


def test_count_meters_default_to_one_and_keep_a_given_quantity():
    result = ingest(raw("a.jsonl", event(event_id="c1", meter="api_requests", quantity=...),
                        event(event_id="c2", meter="api_requests", quantity=3)))
    assert result.events.column("quantity").to_pylist() == [Decimal(1), Decimal(3)]


def test_ignored_top_level_fields_are_counted():
    result = ingest(raw("a.jsonl", event(event_id="x1", region="eu", sdk={"v": 2}), event(event_id="x2")))
    assert result.ignored_fields == 2 and result.events.num_rows == 2


def test_bad_lines_never_stop_good_data_across_objects():
    result = ingest(raw("a.jsonl", "[]", "{", event(event_id="g1")), raw("b.jsonl.gz", event(event_id="g2"), gz=True),
                    RawObject(f"raw/usage/dt={DAY.isoformat()}/c.jsonl.gz", b"not gzip", LANDED))
    assert result.events.column("event_id").to_pylist() == ["g1", "g2"]


# The column-wide shortcuts must give the regex's verdict on every column, whatever its values.
_id_like = st.one_of(st.text(alphabet="abcXYZ019._:-_", max_size=130), st.text(max_size=5), st.none())
_stamp_like = st.one_of(
    st.sampled_from(["2026-01-05T10:00:00Z", "2026-01-05t10:00:00.123z", "2026-01-05T10:00:00+05:30", "2026-01-05 10:00:00Z",
                     "2026-01-05T10:00:00", "2026-13-45T99:00:00Z", "٢٠٢٦-01-05T10:00:00Z", "\ue0002026"]),
    st.text(alphabet="0123456789-T:Z+.", min_size=19, max_size=21), st.none())


@given(st.lists(_id_like, max_size=6), st.sampled_from(["event_id", "source", "customer_id"]))
@example(["e1", "bad id 7", "e2", "", None, "é" * 3, "x" * 129], "event_id")  # the regex judges the doubtful only
def test_charset_shortcut_agrees_with_the_pattern(values, name):
    rule = {"event_id": EVENT_ID, "source": SOURCE, "customer_id": CUSTOMER_ID}[name]
    column = pa.array(values, pa.string())
    assert _charset_matches(column, rule).tolist() == [v is not None and re.fullmatch(rule.pattern, v) is not None
                                                       for v in values]


@given(st.lists(_stamp_like, min_size=1, max_size=6), st.booleans(), st.none() | st.tuples(
    st.integers(0, 5), st.integers(0, 30), st.sampled_from("/:09TtZz+- .a\u0660")))
@example(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"], True, (1, 12, ":"))  # ':' and '/' border the digits
@example(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"], True, (1, 3, "/"))
@example(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"], True, (1, 10, "t"))
@example(["2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"], True, (1, 4, "."))  # the byte after '-'
# the commonest layout clears its own; the others, good or bad, are the regex's
@example(["2026-01-05 10:00:00", "2026-01-05T10:00:00Z", None, "2026-01-05T10:00:01Z", "2026-01-05T10:00:00.5Z",
          "2026-01-05T10:0a:00Z"], False, None)
def test_timestamp_layout_shortcut_agrees_with_the_pattern(values, uniform, changed_byte):
    if uniform:  # the shortcut's own case: one layout, digits varied
        values = [None if v is None else "".join(str((int(c) + i) % 10) if c.isascii() and c.isdigit() else c for c in values[0] or "")
                  for i, v in enumerate(values)]
    if changed_byte is not None:  # one character of one value replaced: the shortcut must notice
        row, position, character = changed_byte
        if row < len(values) and values[row] is not None and position < len(values[row]):
            values[row] = values[row][:position] + character + values[row][position + 1:]
    column = pa.array(values, pa.string())
    assert _rfc3339_matches(column).tolist() == [v is not None and re.fullmatch(RFC3339_PATTERN, v, re.ASCII) is not None
                                                 for v in values]


@given(st.lists(st.lists(st.text(alphabet="ab\x1fé9", max_size=3), max_size=8), min_size=1, max_size=4),
       st.sampled_from([1, 2, 50_000]), st.sampled_from(["tails", "first byte", "top", "none"]), st.data())
def test_repeats_are_the_rows_of_keys_seen_before_with_their_first_row(objects, keys_per_bucket, spread, data):
    # objects hold some rows that take no part (say, quarantined): the keys are only those of the
    # rows listed, and rows are numbered across the partition's objects
    rows = [sorted(data.draw(st.sets(st.integers(0, len(keys) + 2), min_size=len(keys), max_size=len(keys))))
            for keys in objects]
    row_starts = np.cumsum([0] + [max(object_rows, default=-1) + 1 for object_rows in rows])[:-1].tolist()
    first_seen: dict[str, int] = {}
    expected = []
    for keys, object_rows, row_start in zip(objects, rows, row_starts):
        for key, row in zip(keys, object_rows):
            first = first_seen.setdefault(key, row_start + row)
            if first != row_start + row:
                expected.append((row_start + row, first))
    # any number that is equal for equal keys may spread them over buckets
    spreads = {"tails": lambda array: _tails(array),
               "first byte": lambda array: np.array([key.encode()[0] if key else 7 for key in array.to_pylist()],
                                                    dtype=np.uint16),
               "top": lambda array: np.array([0xFFFF - len(key) for key in array.to_pylist()], dtype=np.uint16),
               "none": lambda array: np.zeros(len(array), dtype=np.uint16)}
    bucketed = []
    for keys, object_rows in zip(objects, rows):
        array = pa.array(keys, pa.string())
        bucketed.append(_bucketed(array, spreads[spread](array), np.array(object_rows, dtype=np.int64)))
    per_bucket = sum(np.diff(batch.bounds) for batch in bucketed)
    found = [repeats_in_run(bucketed, row_starts, run) for run in bucket_runs(per_bucket, keys_per_bucket)]
    repeat_rows = np.concatenate([np.zeros(0, np.int64)] + [repeat for repeat, _, _ in found])
    first_rows = np.concatenate([np.zeros(0, np.int64)] + [first for _, first, _ in found])
    order = np.argsort(repeat_rows, kind="stable")
    repeat_rows, first_rows = repeat_rows[order], first_rows[order]
    assert list(zip(repeat_rows.tolist(), first_rows.tolist())) == expected


def test_passed_rows_are_taken_in_the_order_asked_for(tmp_path):
    # passed rows are numbered across the chunks: a0 a1 | (none) | c0 c1 c2
    owners = [SimpleNamespace(key=key) for key in "abc"]
    chunks = [SimpleNamespace(name=name, passed=passed) for name, passed in (("0", 2), ("1", 0), ("2", 3))]
    with Spill(str(tmp_path)) as spill:
        for chunk, values in zip(chunks, (["a0", "a1"], [], ["c0", "c1", "c2"])):
            spill.write(f"passed-{chunk.name}", pa.table({"v": pa.array(values, pa.string())}))
        taken = _Chunks(owners, chunks).take(spill, np.array([3, 0, 4, 1, 2]), ["v"])
    assert taken.to_pylist() == [
        {"v": "c1", "object_key": "c"}, {"v": "a0", "object_key": "a"}, {"v": "c2", "object_key": "c"},
        {"v": "a1", "object_key": "a"}, {"v": "c0", "object_key": "c"}]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_tails_are_the_last_two_bytes(kind):
    values = pa.array(["skip", "ab", "xyz", "q", "", None, "é"], kind).slice(1)  # é is two bytes: 0xC3 0xA9
    assert _tails(values).tolist() == [0x6162, 0x797A, 0x0071, 0, 0, 0xC3A9]


def _reason_object_lines():
    """One clean-JSON object reaching every line-level reason the exact-decimal path can meet,
    with string quantities."""
    return [
        event(event_id="n1", quantity="2.5"),                                             # 1 accepted
        event(event_id="n2", timestamp=..., quantity="1"),                                # 2 missing_field
        event(event_id="bad id!", quantity="1"),                                          # 3 invalid_field
        event(event_id="n4", timestamp="2026-01-05 10:00:00Z", quantity="1"),             # 4 invalid_timestamp
        event(event_id="n5", timestamp="2026-01-06T02:06:00Z", quantity="1"),             # 5 future (landed 02:00)
        event(event_id="n6", timestamp="2026-01-04T10:00:00Z", quantity="1"),             # 6 partition_mismatch
        event(event_id="n7", meter="nope", quantity="1"),                                 # 7 unknown_meter
        event(event_id="n8", meter="peak_sessions", quantity=...),                        # 8 invalid_quantity: max needs one
        event(event_id="n9", meter="active_users", quantity=...),                         # 9 invalid_quantity: no user_id
        event(event_id="n10", customer_id="nobody", quantity="1"),                        # 10 unknown_customer
        event(event_id="n11", customer_id=..., ip="192.168.1.1", quantity="1"),           # 11 unattributed_ip
        event(event_id="n12", customer_id="hooli", quantity="1"),                         # 12 no_active_contract
        event(event_id="n1", quantity="3"),                                               # 13 duplicate_conflict
        event(event_id="n1", quantity="2.50"),                                            # 14 duplicate of line 1
    ]


def test_number_quantities_take_the_exact_path_and_meet_every_reason_as_strings_do():
    lines = _reason_object_lines()
    strings = raw("numbers.jsonl", *lines)
    numbers = raw("numbers.jsonl", *(re.sub(r'"quantity": "([^"]*)"', r'"quantity": \1', line) for line in lines))
    assert b'"quantity": "' not in numbers.body
    assert parse_object(read_object_lines(numbers.key, numbers.body), ()).schema.field("quantity").type == pa.decimal128(38, 9)
    expected = [(2, "missing_field"), (3, "invalid_field"), (4, "invalid_timestamp"), (5, "future_timestamp"),
                (6, "partition_mismatch"), (7, "unknown_meter"), (8, "invalid_quantity"), (9, "invalid_quantity"),
                (10, "unknown_customer"), (11, "unattributed_ip"), (12, "no_active_contract"), (13, "duplicate_conflict")]
    for result in (ingest(numbers), ingest(strings)):
        assert reasons(result) == expected
        assert [(row["event_id"], row["quantity"]) for row in result.events.to_pylist()] == [("n1", Decimal("2.5"))]
        assert [(row["line_number"], row["first_line_number"]) for row in result.duplicates.to_pylist()] == [(14, 1)]
