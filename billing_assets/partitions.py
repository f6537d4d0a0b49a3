"""The one partitioning of the chain: UTC calendar days (usage) and UTC calendar months (billing)."""

import dagster as dg

PARTITIONS_START = "2025-01-01"

daily_usage_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
# keyed YYYY-MM, as the warehouse path (month=YYYY-MM) and invoice numbers are. The month in
# progress is a partition (end_offset=1): its invoices are drafts, month to date, until the
# month's end plus the grace period (CONTRACT.md §5), and yesterday's usage rates into it
monthly_billing_partitions = dg.MonthlyPartitionsDefinition(start_date=PARTITIONS_START[:7], timezone="UTC", fmt="%Y-%m",
                                                            end_offset=1)
