"""The ingest of one daily partition (CONTRACT.md §2–§4), stage by stage:

- ``lines``: an object → its non-blank lines, in bounded newline-aligned chunks;
- ``parse``: lines → exact text columns (Arrow's JSON reader, a reference reader for the rest);
- ``rules`` and ``line_checks``: every check of §3 as a vectorised mask, reasons in contract order;
- ``objects``: the per-object stage, leaving passed lines, dedupe keys and rejects in the ``spill``;
- ``dedupe``: the per-bucket stage, first occurrence, duplicate or conflict;
- ``partition``: the stages run over a day, the tables handed to sinks in (object, line) order.

Every stage is a plain function over Arrow data, so another engine can run the same ones.
"""

from billing_assets.usage.ingest.partition import (
    IngestResult, Limits, MemorySink, RawObject, Sinks, TableSink, ingest_into, ingest_partition,
)
from billing_assets.usage.ingest.rules import (
    CUSTOMER_ID_PATTERN, DUPLICATE_EVENTS_SCHEMA, EVENT_ID_PATTERN, QUARANTINED_EVENTS_SCHEMA, SOURCE_PATTERN,
    USAGE_EVENTS_SCHEMA,
)

__all__ = ["IngestResult", "Limits", "MemorySink", "RawObject", "Sinks", "TableSink", "ingest_into",
           "ingest_partition", "CUSTOMER_ID_PATTERN", "DUPLICATE_EVENTS_SCHEMA", "EVENT_ID_PATTERN",
           "QUARANTINED_EVENTS_SCHEMA", "SOURCE_PATTERN", "USAGE_EVENTS_SCHEMA"]
