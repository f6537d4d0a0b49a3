"""The staged, streaming ingest: how a day is cut into chunks and buckets never changes a table,
first-come dedupe agrees with a plain Python model of §4, and what is held at once is bounded by
configuration, not by the day's size."""

import gzip
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_assets.reference.loading import load_reference
from billing_assets.usage.ingest import Limits, RawObject, ingest_partition
from billing_assets.usage.ingest.lines import object_chunks, read_object_lines
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import DAY, LANDED, event

REFERENCE = load_reference(reference_files().get)
TABLES = ("events", "quarantined", "duplicates", "quarantined_lines")

# a line is one of: a valid event (id, quantity), written as json.dumps does or compactly with a
# number quantity as producers do, which may repeat an earlier id with the same or another
# payload (the meter of an "escaped" one spelt with a JSON escape); a line that is not JSON, not
# an object, has a negative quantity or an unknown customer; a blank line. (A chunk that mixes
# compact events with odd ones — escaped, broken, array, negative — is parsed in two parts, and
# their outcomes merged in line order: chunk_bytes=1 checks every line alone.)
_QUANTITY = st.sampled_from(["1.5", "2", "0.25"])
_line = st.one_of(
    st.tuples(st.just("event"), st.integers(0, 12), _QUANTITY),
    st.tuples(st.sampled_from(["compact", "escaped"]), st.integers(0, 12), _QUANTITY),
    st.tuples(st.sampled_from(["broken", "array", "negative", "stranger"]), st.integers(0, 3), st.just("")),
    st.tuples(st.just("blank"), st.just(0), st.just("")),
)
_REJECTED = ("broken", "array", "negative", "stranger")
_day = st.lists(st.lists(_line, max_size=25), min_size=1, max_size=4)


def _text(kind: str, number: int, quantity: str) -> str:
    if kind in ("compact", "escaped", "negative", "stranger"):
        meter = "egress\\u005fgb" if kind == "escaped" else "egress_gb"
        customer = "ghost" if kind == "stranger" else "acme"
        return (f'{{"event_id":"ev-{number}","timestamp":"2026-01-05T10:00:00Z","meter":"{meter}",'
                f'"customer_id":"{customer}","quantity":{-1 if kind == "negative" else quantity}}}')
    if kind == "event":
        return event(event_id=f"ev-{number}", quantity=quantity)
    return {"broken": "{broken" + "x" * number, "array": f"[{number}]"}.get(kind, "   ")


def _objects(day: list[list[tuple]], gz: bool) -> list[RawObject]:
    objects = []
    for index, lines in enumerate(day):
        body = "".join(_text(*line) + "\n" for line in lines).encode()
        name = f"raw/usage/dt={DAY.isoformat()}/part-{index:02d}.jsonl" + (".gz" if gz else "")
        objects.append(RawObject(name, gzip.compress(body, mtime=0) if gz else body, LANDED))
    return objects


@settings(max_examples=40, deadline=None)
@given(_day, st.booleans(), st.sampled_from([1, 40, 300]), st.sampled_from([1, 2, 7]))
def test_chunks_and_buckets_never_change_a_table(day, gz, chunk_bytes, bucket_rows):
    objects = _objects(day, gz)
    whole = ingest_partition(DAY, objects, REFERENCE)  # every object in one chunk, one run of buckets
    cut = ingest_partition(DAY, objects, REFERENCE, Limits(chunk_bytes=chunk_bytes, bucket_rows=bucket_rows, workers=2))
    for name in TABLES:
        assert getattr(cut, name).equals(getattr(whole, name)), name
    assert (cut.lines_read, cut.accepted, cut.duplicate_count, cut.reason_counts) == \
        (whole.lines_read, whole.accepted, whole.duplicate_count, whole.reason_counts)

    # §4 by hand: the first valid copy of an id (by object, then line) is the event; a later
    # copy with the same payload a duplicate, with another a duplicate_conflict
    first: dict[str, tuple] = {}
    accepted, duplicates, conflicts, broken = [], [], [], []
    for index, lines in enumerate(day):
        number = 0
        for kind, ident, quantity in lines:
            number += 1
            if kind in _REJECTED:
                broken.append((index, number))
            if kind not in ("event", "compact", "escaped"):
                continue
            seen = first.setdefault(f"ev-{ident}", (quantity, index, number))
            if seen[1:] == (index, number):
                accepted.append((index, number))
            else:
                (duplicates if seen[0] == quantity else conflicts).append((index, number))
    position = {obj.key: index for index, obj in enumerate(objects)}
    where = lambda table: [(position[row["object_key"]], row["line_number"]) for row in table.to_pylist()]  # noqa: E731
    assert where(cut.events) == accepted
    assert where(cut.duplicates) == duplicates
    assert where(cut.quarantined) == sorted(broken + conflicts)
    assert cut.reason_counts["duplicate_conflict"] == len(conflicts)


def test_what_is_held_at_once_is_bounded_by_configuration_not_by_the_day():
    limits = Limits(chunk_bytes=4_000, bucket_rows=300, workers=2)
    line = len(event(event_id="id-000000", quantity="1")) + 1  # every line has this length
    for events in (2_000, 20_000):
        body = "".join(event(event_id=f"id-{n:06d}", quantity="1") + "\n" for n in range(events)).encode()
        objects = [RawObject(f"raw/usage/dt={DAY.isoformat()}/big.jsonl.gz", gzip.compress(body, mtime=0), LANDED)]
        result = ingest_partition(DAY, objects, REFERENCE, limits)
        assert result.accepted == events
        # a chunk is what was asked for plus the rest of the line it ends in
        assert result.largest_batch_lines <= (limits.chunk_bytes + line) // line
        assert 0 < result.largest_batch_keys <= limits.bucket_rows


def test_an_object_is_read_in_newline_aligned_chunks_with_its_own_line_numbers():
    body = b"\xef\xbb\xbf" + b'{"a": 1}\n\n{"b": 22}\r\n  \n{"c": 333}'
    chunks = list(object_chunks("raw/x.jsonl", gzip.io.BytesIO(body), chunk_bytes=5))
    assert [chunk.lines.to_pylist() for chunk in chunks] == [['{"a": 1}'], ['{"b": 22}'], ['{"c": 333}']]
    assert [chunk.line_numbers.tolist() for chunk in chunks] == [[1], [3], [5]]
    whole = read_object_lines("raw/x.jsonl", body)
    assert whole.lines.to_pylist() == ['{"a": 1}', '{"b": 22}', '{"c": 333}'] and whole.line_numbers.tolist() == [1, 3, 5]


def test_an_object_unreadable_at_its_end_is_unreadable_as_a_whole():
    good = gzip.compress(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(2_000)), mtime=0)
    chunks = list(object_chunks("raw/x.jsonl.gz", gzip.io.BytesIO(good[:-4]), chunk_bytes=1_000))  # CRC cut off
    assert len(chunks) > 2 and chunks[-1].unreadable.startswith("corrupt gzip")
    body = "".join(event(event_id=f"e{n}") + "\n" for n in range(500)).encode()
    objects = [RawObject(f"raw/usage/dt={DAY.isoformat()}/a.jsonl.gz", gzip.compress(body, mtime=0)[:-4], LANDED)]
    result = ingest_partition(DAY, objects, REFERENCE, Limits(chunk_bytes=1_000, workers=2))
    assert result.accepted == 0 and result.lines_read == 0 and result.unreadable_objects == [objects[0].key]
    assert result.quarantined.to_pylist()[0]["reason"] == "unreadable_file"


def test_an_object_corrupt_in_the_middle_of_its_deflate_stream_is_unreadable_not_a_crash():
    body = "".join(event(event_id=f"e{n}") + "\n" for n in range(5_000)).encode()
    packed = bytearray(gzip.compress(body, mtime=0))
    packed[10] = 0xFF  # the first deflate block's header, just after gzip's own: an invalid block type
    objects = [RawObject(f"raw/usage/dt={DAY.isoformat()}/a.jsonl.gz", bytes(packed), LANDED)]
    result = ingest_partition(DAY, objects, REFERENCE, Limits(chunk_bytes=4_000, workers=2))
    assert (result.accepted, result.lines_read, result.unreadable_objects) == (0, 0, [objects[0].key])
    [row] = result.quarantined.to_pylist()
    assert row["reason"] == "unreadable_file" and row["detail"].startswith("corrupt gzip: ")


def test_some_lines_of_an_object_are_an_object_of_their_own():
    # 16 lines, the 4th and 12th not objects, the last without a newline: keeping 14 cuts two
    # lines out of the text; keeping 2 copies them
    lines = ['{"n":%d}' % number if number not in (4, 12) else "[%d]" % number for number in range(1, 17)]
    whole = read_object_lines("x.jsonl", "\n".join(lines).encode())
    odd = np.array([line.startswith("[") for line in lines])
    plain, other = whole.subset(~odd), whole.subset(odd)
    assert plain.lines.to_pylist() == [line for line in lines if line.startswith("{")]
    assert plain.text == "\n".join(line for line in lines if line.startswith("{")).encode()  # as the last was
    assert plain.line_numbers.tolist() == [n for n in range(1, 17) if n not in (4, 12)]
    assert (plain.lines_open_with_brace, plain.longest_line, plain.newlines) == (True, 8, 13)
    assert other.lines.to_pylist() == ["[4]", "[12]"] and other.line_numbers.tolist() == [4, 12]
    assert (other.lines_open_with_brace, other.longest_line) == (False, 4)
    # the last line (no newline after it) cut out: the newline before it stays, 15 in all
    but_last = whole.subset(np.arange(16) < 15)
    assert but_last.text == ("\n".join(lines[:15]) + "\n").encode() and but_last.newlines == 15


def test_a_blank_line_among_many_objects_is_no_line():
    lines = ['{"n":%d}' % number for number in range(1, 17)]
    lines[4] = " \t "  # line 5: one line in sixteen does not open with '{', and it is blank
    read = read_object_lines("x.jsonl", "".join(line + "\n" for line in lines).encode())
    assert read.line_numbers.tolist() == [n for n in range(1, 17) if n != 5]
    assert read.lines.to_pylist() == [line for line in lines if line.strip()]
