"""Blocking checks on the invoicing tables: their contracts, and totals that tie to their lines."""

from collections import defaultdict

from billing_assets.lib.checks import pandera_asset_check, partition_check
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.invoicing.schemas import InvoiceAdjustmentRow, InvoiceLineRow, InvoiceRow, RefundRow

invoice_lines_matches_contract = pandera_asset_check(
    asset="invoice_lines", table="invoice_lines", model=InvoiceLineRow, partitions_def=monthly_billing_partitions)
invoices_matches_contract = pandera_asset_check(
    asset="invoices", table="invoices", model=InvoiceRow, partitions_def=monthly_billing_partitions)
invoice_adjustments_matches_contract = pandera_asset_check(
    asset="invoice_adjustments", table="invoice_adjustments", model=InvoiceAdjustmentRow,
    partitions_def=monthly_billing_partitions)

refunds_matches_contract = pandera_asset_check(
    asset="refunds", table="refunds", model=RefundRow, partitions_def=monthly_billing_partitions)


def totals_tie(lake: BillingLake, month: str) -> tuple[bool, dict]:
    lines = lake.read_table("invoice_lines", month).select(["invoice_number", "amount_minor"]).to_pylist()
    summed = defaultdict(int)
    for line in lines:
        summed[line["invoice_number"]] += line["amount_minor"]
    breaks = [f"{row['invoice_number']}: total {row['total_minor']} vs lines {summed.get(row['invoice_number'], 0)}"
              for row in lake.read_table("invoices", month).to_pylist()
              if row["total_minor"] != summed.get(row["invoice_number"], 0)]
    return not breaks, {"invoices_checked": len(summed), "breaks": "\n".join(breaks) or "none"}


invoice_totals_equal_their_lines = partition_check(
    asset="invoices",
    name="invoice_totals_equal_their_lines",
    description="Every invoice's total_minor is exactly the sum of its rounded lines.",
    partitions_def=monthly_billing_partitions,
    evaluate=totals_tie,
)
