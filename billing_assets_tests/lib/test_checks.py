"""Batch-wise pandera validation: a fault in any batch, and a repeat across batches, fail it."""

from decimal import Decimal

import pyarrow as pa

from billing_assets.lib.checks import validate_against
from billing_assets.usage.ingest import USAGE_EVENTS_SCHEMA
from billing_assets.usage.schemas import UsageEvent


def _events(count: int) -> pa.Table:
    return pa.Table.from_pylist([{
        "object_key": "raw/usage/dt=2026-01-05/a.jsonl", "line_number": n + 1, "event_id": f"e{n}", "source": "",
        "timestamp": None, "meter": "egress_gb", "customer_id": "acme", "attributed_by": "customer_id",
        "ip_prefix": None, "quantity": Decimal("1.5"), "unique_value": None, "properties": None,
    } for n in range(count)], schema=USAGE_EVENTS_SCHEMA)


def test_clean_rows_pass_in_any_batch_size():
    assert validate_against(UsageEvent, _stamped(_events(7).to_pylist()), batch_rows=3) == (
        True, {"dagster/row_count": 7})


def _stamped(rows: list[dict]) -> pa.Table:
    for row in rows:
        row["timestamp"] = 0
    table = pa.Table.from_pylist(rows, schema=USAGE_EVENTS_SCHEMA.set(4, pa.field("timestamp", pa.int64())))
    return table.set_column(4, "timestamp", table.column("timestamp").cast(USAGE_EVENTS_SCHEMA.field("timestamp").type))


def test_a_bad_row_in_the_last_batch_fails_it():
    rows = _events(7).to_pylist()
    rows[6]["customer_id"] = "not a customer id!"
    passed, metadata = validate_against(UsageEvent, _stamped(rows), batch_rows=3)
    assert not passed and metadata["failures"] == 1 and "customer_id" in metadata["failure_sample"].value


def test_a_repeated_event_in_another_batch_fails_uniqueness():
    rows = _events(7).to_pylist()
    rows[6]["event_id"] = "e0"  # the same (source, event_id) as row 0, three batches apart
    passed, metadata = validate_against(UsageEvent, _stamped(rows), batch_rows=3)
    assert not passed and metadata["failures"] == 1 and "e0" in metadata["failure_sample"].value
