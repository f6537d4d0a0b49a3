"""Checks of `usage_anomalies`: deterministic invariants block (the contract's model; every active
contract × priced meter judged once); the statistical findings are a warning people look at."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.analytics.detect import FINDINGS
from billing_assets.analytics.schemas import BillingKpiRow, RemediationImpactRow, SessionRow, UsageAnomalyRow
from billing_assets.lib.checks import partition_check, pandera_asset_check
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions
from billing_assets.reference.assets import read_reference

usage_anomalies_matches_contract = pandera_asset_check(
    asset="usage_anomalies", table="usage_anomalies", model=UsageAnomalyRow, partitions_def=daily_usage_partitions)


def _covers(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """The rows' (contract, meter) pairs against contracts.csv × the plan's charges, read here
    from the reference frames directly: start_date <= day < end_date (empty end: open)."""
    reference = read_reference(lake)
    charged = reference.plan_charges.groupby("plan_id")["meter"].apply(set).to_dict()
    expected = {(row["contract_id"], meter) for row in reference.contracts.to_dict("records")
                if row["start_date"] <= day and (not row["end_date"] or day < row["end_date"])
                for meter in charged.get(row["plan_id"], ())}
    table = lake.read_table("usage_anomalies", day)
    judged = set(zip(table.column("contract_id").to_pylist(), table.column("meter").to_pylist()))
    missing, extra = sorted(expected - judged), sorted(judged - expected)
    return not missing and not extra and len(judged) == table.num_rows, {
        "judged": table.num_rows, "missing": dg.MetadataValue.json([list(pair) for pair in missing[:20]]),
        "not_active": dg.MetadataValue.json([list(pair) for pair in extra[:20]])}


anomalies_cover_active_contracts = partition_check(
    asset="usage_anomalies", name="anomalies_cover_active_contracts",
    description="Every contract × priced meter active on the day is judged exactly once, days without usage as zero.",
    partitions_def=daily_usage_partitions, evaluate=_covers)


def _findings(lake: BillingLake, day: str) -> tuple[bool, dict]:
    table = lake.read_table("usage_anomalies", day)
    found = table.filter(pc.and_(pc.is_in(table.column("kind"), pa.array(FINDINGS)),
                                 pc.is_null(table.column("suppressed_by"))))
    suppressed = table.filter(pc.is_valid(table.column("suppressed_by"))).num_rows
    rows = found.select(["customer_id", "meter", "kind", "revenue_at_risk_minor", "currency", "explanation"])
    return found.num_rows == 0, {
        "findings": found.num_rows, "suppressed": suppressed,
        "findings_table": dg.MetadataValue.md(rows.slice(0, 20).to_pandas().to_markdown(index=False))
        if found.num_rows else dg.MetadataValue.md("none")}


no_unexplained_usage_anomalies = partition_check(
    asset="usage_anomalies", name="no_unexplained_usage_anomalies",
    description="Warns when a meter stopped reporting, dropped, spiked or shifted level, unless suppressed.",
    partitions_def=daily_usage_partitions, evaluate=_findings, blocking=False)


sessions_matches_contract = pandera_asset_check(
    asset="sessions", table="sessions", model=SessionRow, partitions_def=daily_usage_partitions)


def _every_event_in_one_session(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """Σ sessions' events against usage_events' row count, read from its Parquet footer."""
    counted = pc.sum(lake.read_table("sessions", day).column("events")).as_py() or 0
    accepted = lake.row_count("usage_events", day)
    return counted == accepted, {"events_in_sessions": counted, "accepted_events": accepted}


sessions_hold_every_event = partition_check(
    asset="sessions", name="sessions_hold_every_event",
    description="Every accepted event of the day is in exactly one session.",
    partitions_def=daily_usage_partitions, evaluate=_every_event_in_one_session)

billing_kpis_matches_contract = pandera_asset_check(
    asset="billing_kpis", table="billing_kpis", model=BillingKpiRow, partitions_def=monthly_billing_partitions)

remediation_impact_matches_contract = pandera_asset_check(
    asset="remediation_impact", table="remediation_impact", model=RemediationImpactRow,
    partitions_def=monthly_billing_partitions)


def _delta_ties(lake: BillingLake, month: str) -> tuple[bool, dict]:
    """A remediation of every meter: its re-rating delta, summed from the correction documents'
    lines, against invoice_adjustments' amounts of its customers (a table it did not write)."""
    impact = lake.read_table("remediation_impact", month)
    whole = impact.filter(pc.and_(pc.is_null(impact.column("meter")), pc.is_valid(impact.column("rerating_delta_minor"))))
    if not whole.num_rows:
        return True, {"rows_tied": 0}
    adjustments = lake.read_table("invoice_adjustments", month).to_pylist()
    breaks = []
    for row in whole.to_pylist():
        expected = sum(adjustment["amount_minor"] for adjustment in adjustments if adjustment["currency"] == row["currency"]
                       and row["customer_id"] in (None, adjustment["customer_id"]))
        if expected != row["rerating_delta_minor"]:
            breaks.append(f"{row['remediation_id']} {row['currency']}: {row['rerating_delta_minor']} vs {expected}")
    return not breaks, {"rows_tied": whole.num_rows, "breaks": "; ".join(breaks) or "none"}


remediation_delta_ties_to_adjustments = partition_check(
    asset="remediation_impact", name="remediation_delta_ties_to_adjustments",
    description="A remediation's re-rating delta (every meter) equals its customers' corrections in invoice_adjustments.",
    partitions_def=monthly_billing_partitions, evaluate=_delta_ties)
