"""One test per quarantine reason of CONTRACT.md §3, and the precedence where two apply.

Each line is built to break exactly the rules named in the test; the expected reason is the
first of them in the contract's order."""

from decimal import Decimal
import gzip
import json

import pytest

from billing_assets.usage.ingest import RawObject
from billing_assets.usage.reasons import REASON_CODES
from billing_assets_tests.usage.helpers import LANDED, event, ingest, only_reason, raw


def test_reason_codes_are_the_contracts_closed_set_in_its_order():
    assert REASON_CODES == (
        "line_too_long", "malformed_json", "not_an_object", "missing_field", "invalid_field", "invalid_timestamp",
        "future_timestamp", "partition_mismatch", "unknown_meter", "invalid_quantity", "unknown_customer",
        "unattributed_ip", "no_active_contract", "duplicate_conflict", "unreadable_file",
    )


def test_line_too_long_wins_even_over_malformed_json():
    line = '{"event_id": "x", "pad": "' + "a" * (1024 * 1024) + '"'  # unterminated too
    reason, detail = only_reason(line)
    assert reason == "line_too_long"
    assert str(len(line)) in detail


def test_a_line_of_exactly_one_mebibyte_is_not_too_long():
    head = event(event_id="big")[:-1] + ', "pad": "'
    line = head + "a" * (1024 * 1024 - len(head) - 2) + '"}'
    assert len(line.encode()) == 1024 * 1024
    result = ingest(raw("a.jsonl", line))
    assert result.events.num_rows == 1


@pytest.mark.parametrize("line", [
    '{"event_id": "a",',
    'not json at all',
    '{"event_id": "a", "quantity": NaN}',
    '{"event_id": "a", "quantity": Infinity}',
    '{"event_id": "a", "quantity": -Infinity}',
    '{"event_id": "a", "event_id": "b"}',  # duplicate key: which one is meant?
    event(event_id="x1") + " " + event(event_id="x2"),  # two events on one line
    "{'event_id': 'single-quoted'}",
    '{"event_id": "tab\there"}',  # raw control character inside a string
])
def test_malformed_json(line):
    assert only_reason(line)[0] == "malformed_json"


def test_a_null_line_is_not_an_object_wherever_it_stands():
    result = ingest(raw("a.jsonl", "null", event(event_id="ok"), "null"))
    assert [(row["line_number"], row["reason"]) for row in result.quarantined.to_pylist()] == [
        (1, "not_an_object"), (3, "not_an_object")]
    assert result.events.num_rows == 1


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "array"), ('"text"', "string"), ("42", "number"),
                                            ("null", "null"), ("true", "boolean")])
def test_not_an_object(line, kind):
    assert only_reason(line) == ("not_an_object", f"a JSON {kind}, not an object")


@pytest.mark.parametrize(("fields", "detail"), [
    ({"event_id": ...}, "missing field 'event_id'"),
    ({"timestamp": ...}, "missing field 'timestamp'"),
    ({"meter": ...}, "missing field 'meter'"),
    ({"customer_id": ...}, "missing field: neither 'customer_id' nor 'ip' is given"),
    ({"event_id": None}, "missing field 'event_id'"),  # null counts as absent
])
def test_missing_field(fields, detail):
    assert only_reason(event(**fields)) == ("missing_field", detail)


def test_missing_field_comes_before_invalid_field():
    assert only_reason(event(meter=..., event_id="bad id"))[0] == "missing_field"


@pytest.mark.parametrize(("fields", "detail"), [
    ({"event_id": "has space"}, "event_id 'has space' is not 1-128 characters of [A-Za-z0-9._:-]"),
    ({"event_id": "x" * 129}, None),
    ({"event_id": ""}, None),
    ({"event_id": 12345}, "event_id must be a string, got a number"),
    ({"event_id": True}, "event_id must be a string, got a boolean"),
    ({"source": "a/b"}, "source 'a/b' is not up to 128 characters of [A-Za-z0-9._:-]"),
    ({"customer_id": "acme corp"}, "customer_id 'acme corp' is not 1-64 characters of [A-Za-z0-9_-]"),
    ({"customer_id": "x" * 65}, None),
    ({"customer_id": 7}, "customer_id must be a string, got a number"),
    ({"customer_id": ..., "ip": "10.1.2.300"}, "ip '10.1.2.300' is not an IPv4 or IPv6 address"),
    ({"customer_id": ..., "ip": "fe80::1%eth0"}, None),
    ({"customer_id": ..., "ip": 167837953}, "ip must be a string, got a number"),
    ({"timestamp": 1767607200}, "timestamp must be a string, got a number"),
    ({"meter": ["egress_gb"]}, "meter must be a string, got a array"),
    ({"properties": "flat"}, "properties must be an object whose values are strings or numbers"),
    ({"properties": {"nested": {"a": 1}}}, "properties must be an object whose values are strings or numbers"),
    ({"properties": {"flag": True}}, "properties must be an object whose values are strings or numbers"),
])
def test_invalid_field(fields, detail):
    reason, text = only_reason(event(**fields))
    assert reason == "invalid_field"
    if detail:
        assert text == detail


def test_invalid_field_comes_before_invalid_timestamp():
    assert only_reason(event(event_id="bad id", timestamp="yesterday"))[0] == "invalid_field"


@pytest.mark.parametrize(("stamp", "detail_part"), [
    ("2026-01-05T10:00:00", "has no UTC offset"),
    ("2026-01-05 10:00:00", "has no UTC offset"),
    ("yesterday", "is not RFC 3339"),
    ("2026-01-05T10:00:00+0100", "is not RFC 3339"),
    ("2026-01-05 10:00:00Z", "is not RFC 3339"),  # space separator
    ("1767607200", "is not RFC 3339"),  # epoch seconds as a string
    ("2026-01-05T10:00:00.1234567891Z", "is not RFC 3339"),  # finer than nanoseconds
    ("2026-02-30T10:00:00Z", "is not a real date and time"),
    ("2026-01-05T24:00:00Z", "is not a real date and time"),
])
def test_invalid_timestamp(stamp, detail_part):
    reason, detail = only_reason(event(timestamp=stamp))
    assert reason == "invalid_timestamp"
    assert detail_part in detail


def test_invalid_timestamp_comes_before_unknown_meter():
    assert only_reason(event(timestamp="soon", meter="teleports"))[0] == "invalid_timestamp"


def test_future_timestamp_is_judged_against_the_objects_landing_time():
    # landed 2026-01-06T02:00Z; 5 minutes of clock skew are tolerated
    late_but_fine = event(event_id="ok", timestamp="2026-01-06T02:05:00Z")
    too_far = event(event_id="future", timestamp="2026-01-06T02:05:00.000000001Z")
    result = ingest(raw("a.jsonl", late_but_fine, too_far, landed=LANDED))
    assert [(row["line_number"], row["reason"]) for row in result.quarantined.to_pylist()] == [
        (1, "partition_mismatch"), (2, "future_timestamp")]


def test_future_timestamp_comes_before_partition_mismatch_and_unknown_meter():
    assert only_reason(event(timestamp="2099-01-01T00:00:00Z", meter="teleports"))[0] == "future_timestamp"


@pytest.mark.parametrize("stamp", [
    "2026-01-05T00:30:00+01:00",  # = 2026-01-04T23:30Z: the day before, in UTC
    "2026-01-05T23:30:00-01:00",  # = 2026-01-06T00:30Z: the day after
    "2026-01-04T23:59:59.999999999Z",
])
def test_partition_mismatch_uses_the_utc_date(stamp):
    reason, detail = only_reason(event(timestamp=stamp))
    assert reason == "partition_mismatch"
    assert "not in partition 2026-01-05" in detail


@pytest.mark.parametrize("stamp", ["2026-01-06T00:30:00+01:00", "2026-01-04T23:30:00-01:00", "2026-01-05T00:00:00Z",
                                   "2026-01-05T23:59:59.999999999Z"])
def test_offsets_that_land_inside_the_utc_day_are_accepted(stamp):
    assert ingest(raw("a.jsonl", event(timestamp=stamp))).events.num_rows == 1


def test_unknown_meter_comes_before_invalid_quantity():
    assert only_reason(event(meter="teleports", quantity=-1)) == (
        "unknown_meter", "meter 'teleports' is not in reference/meters.yaml")


@pytest.mark.parametrize(("fields", "detail_part"), [
    ({"quantity": ...}, "needs a quantity"),
    ({"quantity": None}, "needs a quantity"),
    ({"quantity": -1}, "is negative"),
    ({"quantity": "-0.5"}, "is negative"),
    ({"quantity": True}, "got a boolean"),
    ({"quantity": {"value": 1}}, "got a object"),
    ({"quantity": "NaN"}, "is not a decimal number"),
    ({"quantity": "1,5"}, "is not a decimal number"),
    ({"quantity": 0.0000000001}, "more than 9 fractional digits"),
    ({"quantity": "1000000000000000.5"}, "exceeds 10^15"),
    ({"quantity": 1e16}, "exceeds 10^15"),
    ({"meter": "active_users", "quantity": ...}, "counts distinct properties.user_id"),
    ({"meter": "api_requests", "quantity": -2}, "is negative"),  # given, so it must be valid
])
def test_invalid_quantity(fields, detail_part):
    reason, detail = only_reason(event(**fields))
    assert reason == "invalid_quantity"
    assert detail_part in detail


def test_invalid_quantity_comes_before_unknown_customer():
    assert only_reason(event(customer_id="nobody", quantity=-1))[0] == "invalid_quantity"


def test_unknown_customer_comes_before_no_active_contract():
    assert only_reason(event(customer_id="nobody")) == (
        "unknown_customer", "customer_id 'nobody' is not in reference/customers.csv")


def test_unattributed_ip():
    assert only_reason(event(customer_id=..., ip="192.0.2.7")) == (
        "unattributed_ip", "ip in 192.0.2.0/24 is in no CIDR block allocated on 2026-01-05")


def test_no_active_contract():
    assert only_reason(event(customer_id="hooli")) == (
        "no_active_contract", "customer 'hooli' has no contract covering 2026-01-05")


def test_no_active_contract_is_released_once_a_contract_covers_the_day():
    line = event(customer_id="hooli")
    onboarded = "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\nc-hooli,hooli,pro,2026-01-05,,\n"
    assert ingest(raw("a.jsonl", line)).events.num_rows == 0
    assert ingest(raw("a.jsonl", line), contracts_csv=onboarded).events.num_rows == 1


def test_a_contract_ending_on_the_day_does_not_cover_it():
    ended = "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\nc-acme,acme,pro,2025-01-01,2026-01-05,\n"
    assert ingest(raw("a.jsonl", event()), contracts_csv=ended).quarantined.column("reason").to_pylist() == [
        "no_active_contract"]


def test_duplicate_conflict_keeps_the_first_and_quarantines_the_different_copy():
    first = event(event_id="dup", quantity="2")
    different = event(event_id="dup", quantity="3")
    result = ingest(raw("a.jsonl", first, different))
    assert result.events.column("quantity").to_pylist()[0] == 2
    assert result.quarantined.to_pylist() == [{
        "object_key": "raw/usage/dt=2026-01-05/a.jsonl", "line_number": 2, "reason": "duplicate_conflict",
        "detail": "(source '', event_id 'dup') was first seen at raw/usage/dt=2026-01-05/a.jsonl line 1 "
                  "with a different payload", "customer_id": "acme", "meter": "egress_gb", "quantity": Decimal(3)}]


def test_a_line_that_failed_a_check_does_not_take_part_in_dedupe():
    broken = event(event_id="dup", customer_id="nobody")
    good = event(event_id="dup")
    result = ingest(raw("a.jsonl", broken, good))
    assert result.events.column("line_number").to_pylist() == [2]
    assert [row["reason"] for row in result.quarantined.to_pylist()] == ["unknown_customer"]


@pytest.mark.parametrize(("name", "body", "detail_part"), [
    ("corrupt.jsonl.gz", b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ("truncated.jsonl.gz", None, "corrupt gzip"),
    ("latin1.jsonl", "{\"event_id\": \"caf\xe9\"}\n".encode("latin-1"), "not UTF-8 (invalid byte at offset 17)"),  # 17 bytes precede the é
    ("events.csv", b"event_id,meter\n", "not a .jsonl or .jsonl.gz object"),
])
def test_unreadable_file_is_quarantined_whole(name, body, detail_part):
    if body is None:
        body = gzip.compress((event() + "\n").encode() * 50)[:-20]
    good = raw("good.jsonl", event(event_id="fine"))
    result = ingest(good, RawObject(f"raw/usage/dt=2026-01-05/{name}", body, LANDED))
    rows = result.quarantined.to_pylist()
    assert len(rows) == 1 and rows[0]["reason"] == "unreadable_file" and rows[0]["line_number"] is None
    assert detail_part in rows[0]["detail"]
    assert result.events.num_rows == 1  # bad input never stops good data
    assert result.lines_read == 1  # an unreadable object's lines are not counted at all


def test_properties_numbers_and_strings_compare_by_canonical_text():
    line = event(meter="active_users", quantity=..., properties={"user_id": 42.0})
    result = ingest(raw("a.jsonl", line))
    assert result.events.column("unique_value").to_pylist() == ["42"]
    assert json.loads(result.events.column("properties")[0].as_py()) == {"user_id": "42"}


def test_details_built_column_wise_read_as_written_by_hand():
    """Several rejected rows of each reason whose detail is built column-wise, in one object:
    every row gets its own values in its detail (LANDED is 2026-01-06T02:00:00Z)."""
    lines = [
        event(event_id="f1", timestamp="2026-01-06T02:05:01Z"),                       # 1 future
        event(event_id="m1", timestamp="2026-01-04T23:59:59Z"),                       # 2 other day
        event(event_id="m2", timestamp="2026-01-05T23:30:00-01:00"),                  # 3 other day
        event(event_id="c1", customer_id="nobody"),                                   # 4 unknown customer
        event(event_id="c2", customer_id="x" * 64),                                   # 5 unknown, shown to 60
        event(event_id="i1", customer_id=..., ip="192.0.2.7"),                        # 6 unattributed
        event(event_id="h1", customer_id="hooli"),                                    # 7 no contract
        event(event_id="h2", customer_id="hooli"),                                    # 8 no contract
        event(event_id="f2", timestamp="2026-01-07T00:00:00.5+01:00"),                # 9 future
    ]
    result = ingest(raw("a.jsonl", *lines))
    assert [(row["line_number"], row["reason"], row["detail"]) for row in result.quarantined.to_pylist()] == [
        (1, "future_timestamp", "timestamp '2026-01-06T02:05:01Z' is more than 5 minutes after the object landed "
                                "(2026-01-06T02:00:00+00:00)"),
        (2, "partition_mismatch", "timestamp '2026-01-04T23:59:59Z' is on 2026-01-04 UTC, not in partition 2026-01-05"),
        (3, "partition_mismatch", "timestamp '2026-01-05T23:30:00-01:00' is on 2026-01-06 UTC, not in partition 2026-01-05"),
        (4, "unknown_customer", "customer_id 'nobody' is not in reference/customers.csv"),
        (5, "unknown_customer", f"customer_id '{'x' * 60}' is not in reference/customers.csv"),
        (6, "unattributed_ip", "ip in 192.0.2.0/24 is in no CIDR block allocated on 2026-01-05"),
        (7, "no_active_contract", "customer 'hooli' has no contract covering 2026-01-05"),
        (8, "no_active_contract", "customer 'hooli' has no contract covering 2026-01-05"),
        (9, "future_timestamp", "timestamp '2026-01-07T00:00:00.5+01:00' is more than 5 minutes after the object "
                                "landed (2026-01-06T02:00:00+00:00)"),
    ]
