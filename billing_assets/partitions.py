"""The one partitioning of the chain: UTC calendar days (usage) and UTC calendar months (billing)."""

import dagster as dg

PARTITIONS_START = "2025-01-01"

daily_usage_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
# keyed YYYY-MM, as the warehouse path (month=YYYY-MM) and invoice numbers are
monthly_billing_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START[:7], timezone="UTC", fmt="%Y-%m")
