"""The quarantine record file, built column-wise, against json.dumps record by record."""

import json

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing_assets.usage.quarantine import QUARANTINE_RECORD_SCHEMA, json_strings, jsonl_pieces

texts = st.one_of(st.none(), st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))


@given(st.lists(texts, max_size=30))
@example(['say "hi"\\n', "tab\there", "\x00\x1f\x7f", "é\u2028🙂", None, ""])
def test_json_strings_are_what_json_dumps_writes(values):
    expected = [json.dumps(value, ensure_ascii=False) for value in values]
    assert json_strings(pa.array(values, pa.string())).to_pylist() == expected


records = st.fixed_dictionaries({
    "object_key": st.text(max_size=20).map(lambda text: "raw/usage/dt=2026-01-05/" + text),
    "line_number": st.one_of(st.none(), st.integers(1, 10**9)),
    "reason": st.sampled_from(["malformed_json", "no_active_contract", "unreadable_file"]),
    "detail": texts, "line": texts,
})


@settings(max_examples=50)
@given(st.lists(records, max_size=20))
def test_the_record_file_is_one_sorted_key_json_dump_per_record(rows):
    expected = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode()
    table = pa.Table.from_pylist(rows, schema=QUARANTINE_RECORD_SCHEMA)
    for records in (table, pa.Table.from_batches(table.to_batches(max_chunksize=3), table.schema)):  # in chunks too
        assert b"".join(piece.to_pybytes() for piece in jsonl_pieces(records)) == expected
