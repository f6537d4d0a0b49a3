"""`billing_kpis`, monthly: the month's billing-accuracy figures per currency, from the
warehouse tables the chain wrote (analytics/kpis.py computes them)."""

from collections import Counter
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.analytics.kpis import MonthFigures, Onboarding, billing_kpis
from billing_assets.analytics.schemas import BillingKpiRow
from billing_assets.insights.charges import contract_terms
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.outcomes import line_outcomes, of_outcome
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.reference.assets import read_reference
from billing_assets.reference.loading import ReferenceData

_RATE = pa.decimal128(9, 4)
BILLING_KPIS_SCHEMA = pa.schema([
    ("month", pa.string()), ("currency", pa.string()), ("invoices_issued", pa.int64()),
    ("first_time_right_rate", _RATE), ("adjustment_rate", _RATE), ("billed_minor", pa.int64()),
    ("credit_note_minor", pa.int64()), ("credit_note_pct_of_billed", _RATE), ("adjustment_invoice_minor", pa.int64()),
    ("refunds_minor", pa.int64()), ("quarantined_lines", pa.int64()), ("quarantined_billable_minor", pa.int64()),
    ("quarantined_by_reason", pa.string()), ("duplicate_rate", _RATE), ("days_to_issue", _RATE),
    ("sla_hits", pa.int64()), ("sla_misses", pa.int64()), ("contracts_onboarded", pa.int64()),
    ("onboarding_to_first_right_days", _RATE), ("onboardings_awaiting_right_invoice", pa.int64()),
])


def _sla(lake: BillingLake, month: str) -> dict:
    """Days metered by their deadline or not, and month end to the invoices' issue in days."""
    hits = misses = 0
    issued = None
    for day, table in lake.read_month("sla_report", month).items():
        lateness = pc.max(table.column("metered_lateness_seconds")).as_py()
        hits, misses = hits + (lateness == 0), misses + bool(lateness)
        issued = pc.min(table.column("invoices_issued_at")).as_py() or issued
    year, number = map(int, month.split("-"))
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=timezone.utc)
    days = None if issued is None else (
        Decimal(int((issued - end).total_seconds())) / 86_400).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    return {"hits": hits, "misses": misses, "days_to_issue": days}


def month_figures(lake: BillingLake, month: str, reference: ReferenceData) -> MonthFigures:
    outcomes = line_outcomes(lake, month)
    accepted, duplicates = Counter(), Counter()
    for outcome, counter in (("accepted", accepted), ("duplicate", duplicates)):
        for row in of_outcome(outcomes, outcome).group_by(["customer_id"]).aggregate([("lines", "sum")]).to_pylist():
            counter[row["customer_id"]] += row["lines_sum"]
    terms = {}
    for contract in sorted(contract_terms(reference, month).values(), key=lambda t: t.first_day):
        terms[contract.customer_id] = contract  # the last contract of the month stands
    rated = {(row["contract_id"], row["meter"]): row["quantity"] for row in lake.read_table("rated_charges", month).to_pylist()
             if row["line_type"] == "usage"}
    quarantined = of_outcome(outcomes, "quarantined").group_by(["customer_id", "meter", "reason"], use_threads=False)
    return MonthFigures(
        invoices=lake.read_table("invoices", month).to_pylist(),
        adjustments=lake.read_table("invoice_adjustments", month).to_pylist(),
        refunds=lake.read_table("refunds", month).to_pylist(),
        quarantined=[{"customer_id": row["customer_id"], "meter": row["meter"], "reason": row["reason"],
                      "lines": row["lines_sum"], "quantity": row["quantity_sum"]}
                     for row in quarantined.aggregate([("lines", "sum"), ("quantity", "sum")]).to_pylist()],
        accepted=dict(accepted), duplicates=dict(duplicates),
        currency_of=dict(zip(reference.customers["customer_id"], reference.customers["currency"])),
        terms=terms, rated=rated, aggregation=reference.meter_aggregation())


def month_onboardings(lake: BillingLake, month: str, reference: ReferenceData) -> list[Onboarding]:
    """The contracts that started in ``month``, each with its customer's issued invoices of that
    month and every later one: when each was issued (its write-once JSON's time) and whether a
    credit note or adjustment invoice followed it."""
    currency_of = dict(zip(reference.customers["customer_id"], reference.customers["currency"]))
    started = [row for row in reference.contracts.to_dict("records") if row["start_date"][:7] == month]
    if not started:
        return []
    months = sorted(folder.split("/")[1] for folder in lake.list_folders("documents/")[0]
                    if folder.split("/")[1] >= month)
    onboardings = []
    for contract in sorted(started, key=lambda row: row["contract_id"]):
        invoices = []
        for document_month in months:
            stored = list(lake.list_objects(f"documents/{document_month}/{contract['customer_id']}/"))
            names = {item.key.rsplit("/", 1)[1]: item for item in stored}
            issued = names.get(f"INV-{document_month.replace('-', '')}-{contract['customer_id']}.json")
            if issued is not None:
                invoices.append((issued.last_modified, any(name.startswith(("CN-", "ADJ-")) and name.endswith(".json")
                                                           for name in names)))
        onboardings.append(Onboarding(contract["customer_id"], currency_of[contract["customer_id"]],
                                      date.fromisoformat(contract["start_date"]), invoices))
    return onboardings


@dg.asset(
    name="billing_kpis",
    deps=["invoices", "invoice_adjustments", "refunds", "rated_charges",
          dg.AssetDep("quarantined_events", partition_mapping=dg.TimeWindowPartitionMapping()),
          dg.AssetDep("duplicate_events", partition_mapping=dg.TimeWindowPartitionMapping()),
          dg.AssetDep("sla_report", partition_mapping=dg.TimeWindowPartitionMapping()),
          "customers", "contracts", "plans", "meters"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="analytics",
    automation_condition=follows_upstream(),
    owners=["team:billing", "team:finance"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("billing_kpis", BillingKpiRow),
)
def billing_kpis_asset(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """The month's billing accuracy per currency, as finance tracks it: invoices issued and the
    share right the first time, credit notes as a share of billed, under-billing recovered by
    adjustment invoices, refunds, quarantined lines and what they would have billed by reason,
    the duplicate rate, days from month end to issue, and the metering SLA's hits and misses."""
    reference, last = read_reference(lake), None
    for month in context.partition_keys:
        rows = billing_kpis(month, month_figures(lake, month, reference), _sla(lake, month),
                            month_onboardings(lake, month, reference))
        last = pa.Table.from_pylist(rows, schema=BILLING_KPIS_SCHEMA)
        lake.write_table("billing_kpis", month, last)
    metadata = {}
    if len(context.partition_keys) == 1:
        metadata = {"dagster/row_count": last.num_rows, "preview": markdown_preview(
            last.select(["currency", "invoices_issued", "first_time_right_rate", "credit_note_minor",
                         "adjustment_invoice_minor", "quarantined_lines", "quarantined_billable_minor"]))}
    return dg.MaterializeResult(metadata=metadata)
