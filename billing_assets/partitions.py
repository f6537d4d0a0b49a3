"""The one partitioning of the chain: UTC calendar days (usage) and, later, UTC months."""

import dagster as dg

PARTITIONS_START = "2025-01-01"

daily_usage_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
