"""Build raw objects and run one partition's ingest without S3."""

import gzip
import json
from datetime import date, datetime, timezone

from billing_assets.reference.loading import load_reference
from billing_assets.usage.ingest import IngestResult, RawObject, ingest_partition
from billing_assets_tests.conftest import reference_files

DAY = date(2026, 1, 5)
LANDED = datetime(2026, 1, 6, 2, 0, tzinfo=timezone.utc)


def event(**fields) -> str:
    base = {"event_id": "e1", "timestamp": "2026-01-05T10:00:00Z", "meter": "egress_gb", "customer_id": "acme",
            "quantity": "1.5"}
    base.update(fields)
    return json.dumps({key: value for key, value in base.items() if value is not ...})


def raw(name: str, *lines: str, gz: bool = False, landed: datetime = LANDED) -> RawObject:
    body = "".join(line + "\n" for line in lines).encode()
    key = f"raw/usage/dt={DAY.isoformat()}/{name}"
    return RawObject(key, gzip.compress(body, mtime=0) if gz else body, landed)


def ingest(*objects: RawObject, **reference_overrides) -> IngestResult:
    reference = load_reference(reference_files(**reference_overrides).get)
    return ingest_partition(DAY, objects, reference)


def reasons(result: IngestResult) -> list[tuple]:
    return [(row["line_number"], row["reason"]) for row in result.quarantined.to_pylist()]


def only_reason(*lines: str) -> tuple[str, str]:
    """The reason and detail for a single quarantined line."""
    result = ingest(raw("a.jsonl", *lines))
    rows = result.quarantined.to_pylist()
    assert result.events.num_rows == 0 and len(rows) == 1, rows
    return rows[0]["reason"], rows[0]["detail"]
