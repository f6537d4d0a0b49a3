"""Checks of the provider ledgers: the contract's models, the sync adding up to metered usage and
one refund row per credit note block; what the provider has not acknowledged, or refunds not
(yet) succeeded, are warnings with their reasons."""

from collections import Counter
from datetime import date

import dagster as dg

from billing_assets.lib.checks import pandera_asset_check, partition_check
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions
from billing_assets.providers.assets import read_ledger, synced_quantities
from billing_assets.providers.ledger import allocated
from billing_assets.providers.refund_assets import read_refund_ledger
from billing_assets.providers.schemas import ProviderReconciliationRow, ProviderSyncRow, RefundRequestRow
from billing_assets.providers.tables import latest_provider_rows
from billing_assets.reference.assets import read_reference

provider_sync_matches_contract = pandera_asset_check(
    asset="provider_sync", table="provider_sync", model=ProviderSyncRow, partitions_def=daily_usage_partitions)


def _adds_up(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """Per customer × meter, the ledger's quantities (sent, planned or failed) against
    metered_usage read again: every metered quantity is accounted for, exactly."""
    provider, rows = latest_provider_rows(read_ledger(lake, day))
    metered = synced_quantities(lake.read_table("metered_usage", day), read_reference(lake), date.fromisoformat(day))
    held = allocated(rows, provider)
    off = sorted(key for key in set(metered) | set(held) if metered.get(key, 0) != held.get(key, 0))
    return not off, {"provider": provider, "keys": len(metered), "ledger_rows": len(rows),
                     "off": dg.MetadataValue.json([[customer, meter, str(metered.get((customer, meter), 0)),
                                                    str(held.get((customer, meter), 0))] for customer, meter in off[:20]])}


provider_sync_adds_up = partition_check(
    asset="provider_sync", name="provider_sync_adds_up",
    description="Per customer × priced meter, the ledger's sends add up exactly to the metered quantity.",
    partitions_def=daily_usage_partitions, evaluate=_adds_up)


def _acknowledged(lake: BillingLake, day: str) -> tuple[bool, dict]:
    provider, rows = latest_provider_rows(read_ledger(lake, day))
    if provider == "none":
        return True, {"provider": "none", "planned": len(rows)}
    open_rows = [row for row in rows if row.status != "acknowledged"]
    return not open_rows, {"provider": provider, "not_acknowledged": len(open_rows),
                           "reasons": dg.MetadataValue.json([[row.identifier, row.status, str(row.quantity_sent),
                                                              row.failure_reason] for row in open_rows[:20]])}


provider_sync_acknowledged = partition_check(
    asset="provider_sync", name="provider_sync_acknowledged",
    description="Warns while a send is failed or unanswered, naming why (a retryable one is sent again next run).",
    partitions_def=daily_usage_partitions, evaluate=_acknowledged, blocking=False)


refund_requests_matches_contract = pandera_asset_check(
    asset="refund_requests", table="refund_requests", model=RefundRequestRow, partitions_def=monthly_billing_partitions)


def _one_per_credit_note(lake: BillingLake, month: str) -> tuple[bool, dict]:
    """The ledger's rows against `refunds` (written by invoicing): each credit note once, for its
    amount and currency."""
    provider, rows = latest_provider_rows(read_refund_ledger(lake, month))
    notes = {row["document_number"]: (row["amount_minor"], row["currency"])
             for row in lake.read_table("refunds", month).to_pylist()}
    held = Counter(row.document_number for row in rows)
    wrong = sorted({number for number in set(notes) | set(held) if held[number] != 1}
                   | {row.document_number for row in rows if notes.get(row.document_number) != (row.amount_minor, row.currency)})
    return not wrong, {"provider": provider, "credit_notes": len(notes), "rows": len(rows),
                       "wrong": dg.MetadataValue.json(wrong[:20])}


refund_requests_one_per_credit_note = partition_check(
    asset="refund_requests", name="refund_requests_one_per_credit_note",
    description="Every credit note of the month has exactly one refund row, for its amount and currency.",
    partitions_def=monthly_billing_partitions, evaluate=_one_per_credit_note)


def _refunded(lake: BillingLake, month: str) -> tuple[bool, dict]:
    provider, rows = latest_provider_rows(read_refund_ledger(lake, month))
    if provider == "none":
        return True, {"provider": "none", "planned": len(rows)}
    unsettled = [row for row in rows if row.status != "succeeded"]
    return not unsettled, {"provider": provider, "not_succeeded": len(unsettled),
                           "reasons": dg.MetadataValue.json([[row.document_number, row.status, row.failure_reason]
                                                             for row in unsettled[:20]])}


refund_requests_succeeded = partition_check(
    asset="refund_requests", name="refund_requests_succeeded",
    description="Warns while a refund is pending or failed, naming the provider's reason.",
    partitions_def=monthly_billing_partitions, evaluate=_refunded, blocking=False)


provider_reconciliation_matches_contract = pandera_asset_check(
    asset="provider_reconciliation", table="provider_reconciliation", model=ProviderReconciliationRow,
    partitions_def=monthly_billing_partitions)


def _ties(lake: BillingLake, month: str) -> tuple[bool, dict]:
    table = lake.read_table("provider_reconciliation", month).to_pylist()
    broken = [row for row in table if row["status"] in ("break", "not_at_provider", "not_mapped")]
    return not broken, {"compared": len(table), "breaks": len(broken),
                        "explanations": dg.MetadataValue.md("\n".join(f"- {row['explanation']}" for row in broken[:20])
                                                            or "none")}


provider_reconciliation_ties = partition_check(
    asset="provider_reconciliation", name="provider_reconciliation_ties",
    description="Warns on every break between the provider's usage or invoice totals and ours, with both figures.",
    partitions_def=monthly_billing_partitions, evaluate=_ties, blocking=False)
