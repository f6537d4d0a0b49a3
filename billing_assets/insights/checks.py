"""Blocking checks of the statements: the contract's model, and that each ties to what bills."""

from collections import defaultdict

import dagster as dg

from billing_assets.insights.schemas import UsageAlertRow, UsageStatementRow
from billing_assets.lib.checks import partition_check, pandera_asset_check
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions

usage_statements_matches_contract = pandera_asset_check(
    asset="usage_statements", table="usage_statements", model=UsageStatementRow,
    partitions_def=monthly_billing_partitions)


def _ties(lake: BillingLake, month: str) -> tuple[bool, dict]:
    """Per customer, the statement's total against the invoices table (the issued or draft
    total) plus every correction in invoice_adjustments: tables the statement did not write."""
    owed = {row["customer_id"]: row["total_minor"] for row in lake.read_table("invoices", month).to_pylist()}
    corrections = defaultdict(int)
    for row in lake.read_table("invoice_adjustments", month).to_pylist():
        corrections[row["customer_id"]] += row["amount_minor"]
    stated = {row["customer_id"]: row["total_minor"] for row in lake.read_table("usage_statements", month).to_pylist()}
    breaks = [f"{customer}: statement {stated.get(customer)} vs invoiced {total + corrections[customer]}"
              for customer, total in sorted(owed.items()) if stated.get(customer) != total + corrections[customer]]
    breaks += [f"{customer}: a statement but no invoice" for customer in sorted(set(stated) - set(owed))]
    return not breaks, {"statements": len(stated), "breaks": len(breaks),
                        "break_sample": dg.MetadataValue.json(breaks[:20])}


statements_tie_to_invoices = partition_check(
    asset="usage_statements", name="statements_tie_to_invoices",
    description="Each statement's total equals its invoice's plus every credit note and adjustment invoice since.",
    partitions_def=monthly_billing_partitions, evaluate=_ties)

usage_alerts_matches_contract = pandera_asset_check(
    asset="usage_alerts", table="usage_alerts", model=UsageAlertRow, partitions_def=daily_usage_partitions)
