"""Pandera contract of `usage_anomalies` (CONTRACT.md §9)."""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from billing_assets.analytics.detect import FINDINGS, KINDS
from billing_assets.lib.currency import ISO_4217_CODES
from billing_assets.usage.schemas import Int64, Quantity, Text, UtcTimestamp

Float = Annotated[pd.ArrowDtype, pyarrow.float64()]


class UsageAnomalyRow(pa.DataFrameModel):
    """`usage_anomalies`: one row per contract × priced meter active on the day."""

    day: Series[Annotated[pd.ArrowDtype, pyarrow.date32()]]
    customer_id: Series[Text]
    contract_id: Series[Text]
    meter: Series[Text]
    kind: Series[Text] = pa.Field(
        isin=list(KINDS),
        description="the detector's verdict for the day (normal, a finding, or too little history to judge)")
    observed: Series[Quantity] = pa.Field(ge=0, description="the day's metered quantity (0 without usage)")
    baseline: Series[Quantity] = pa.Field(nullable=True, ge=0, description="median of the same weekday, 4 weeks")
    baseline_days: Series[Text] = pa.Field(description="the days the baseline is the median of, comma-separated")
    scale: Series[Float] = pa.Field(ge=0, description="robust σ (MAD), in the scored space")
    score: Series[Float] = pa.Field(description="robust z of the day")
    rule: Series[Text] = pa.Field(description="the rule and its thresholds, in words")
    revenue_at_risk_minor: Series[Int64] = pa.Field(
        nullable=True, description="month's amount with usage as usual less as metered; findings only")
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    explanation: Series[Text] = pa.Field(str_length={"min_value": 1})
    suppressed_by: Series[Text] = pa.Field(nullable=True, description="why, from reference/anomaly_suppressions.csv")

    class Config:
        strict = True
        unique = ["contract_id", "meter"]

    @pa.dataframe_check(error="a finding is priced when it has a baseline, and only findings are")
    def risk_only_on_findings(cls, frame: pd.DataFrame) -> Series[bool]:
        finding = frame["kind"].isin(FINDINGS)
        return (finding & frame["baseline"].notna()) == frame["revenue_at_risk_minor"].notna()


class SessionRow(pa.DataFrameModel):
    """`sessions`: one row per customer × session of the day."""

    day: Series[Annotated[pd.ArrowDtype, pyarrow.date32()]]
    customer_id: Series[Text]
    session_id: Series[Text] = pa.Field(str_length={"min_value": 1},
                                        description="properties.session_id, or gap:<ip_prefix>:<n> (prefix - when none)")
    started_at: Series[UtcTimestamp] = pa.Field(description="the session's first event")
    ended_at: Series[UtcTimestamp] = pa.Field(description="the session's last event")
    duration_seconds: Series[Int64] = pa.Field(description="ended_at − started_at, whole seconds", ge=0, le=86_400)
    events: Series[Int64] = pa.Field(description="accepted events in the session", ge=1)
    quantities: Series[Text] = pa.Field(
        description="JSON: per meter, the session's quantity by the meter's aggregation")

    class Config:
        strict = True
        unique = ["customer_id", "session_id"]

    @pa.dataframe_check(error="a session ends at or after it starts")
    def ordered(cls, frame: pd.DataFrame) -> Series[bool]:
        return frame["ended_at"] >= frame["started_at"]


Rate = Annotated[pd.ArrowDtype, pyarrow.decimal128(9, 4)]


class BillingKpiRow(pa.DataFrameModel):
    """`billing_kpis`: one row per currency of the month (XXX: quarantined lines of no known customer)."""

    month: Series[Text] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES | {"XXX"}), unique=True)
    invoices_issued: Series[Int64] = pa.Field(description="invoices of the month issued, in this currency", ge=0)
    first_time_right_rate: Series[Rate] = pa.Field(nullable=True, ge=0, le=1,
                                                   description="issued invoices with no correction since")
    adjustment_rate: Series[Rate] = pa.Field(nullable=True, ge=0, le=1, description="issued invoices corrected since")
    billed_minor: Series[Int64] = pa.Field(ge=0, description="Σ issued invoices")
    credit_note_minor: Series[Int64] = pa.Field(description="Σ credit notes since issue (positive)", ge=0)
    credit_note_pct_of_billed: Series[Rate] = pa.Field(
        nullable=True, ge=0, description="credit notes as a share of billed_minor")
    adjustment_invoice_minor: Series[Int64] = pa.Field(ge=0, description="under-billing recovered")
    refunds_minor: Series[Int64] = pa.Field(description="Σ refunds of the month's credit notes", ge=0)
    quarantined_lines: Series[Int64] = pa.Field(
        ge=0, description="the month's quarantined lines attributed to this currency's customers")
    quarantined_billable_minor: Series[Int64] = pa.Field(nullable=True, ge=0,
                                                         description="known customers' quarantined usage at their plan")
    quarantined_by_reason: Series[Text] = pa.Field(description="JSON: per reason, lines and billable_minor")
    duplicate_rate: Series[Rate] = pa.Field(nullable=True, ge=0, le=1, description="duplicates / (accepted + duplicates)")
    days_to_issue: Series[Rate] = pa.Field(nullable=True, description="month end to the invoices' issue")
    sla_hits: Series[Int64] = pa.Field(ge=0, description="days metered by their deadline (the platform's)")
    sla_misses: Series[Int64] = pa.Field(description="days metered after their deadline", ge=0)
    contracts_onboarded: Series[Int64] = pa.Field(ge=0, description="contracts that started in the month")
    onboarding_to_first_right_days: Series[Rate] = pa.Field(
        nullable=True, ge=0, description="mean days from a contract's start to its customer's first invoice no "
                                         "correction followed")
    onboardings_awaiting_right_invoice: Series[Int64] = pa.Field(
        ge=0, description="contracts onboarded whose customer has no invoice yet that no correction followed")

    class Config:
        strict = True


Count = Annotated[pd.ArrowDtype, pyarrow.int64()]


class RemediationImpactRow(pa.DataFrameModel):
    """`remediation_impact`: one row per remediation × currency of the month (XXX: lines of no known
    customer). "before": when the month was first issued; "after": now."""

    month: Series[Text] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    remediation_id: Series[Text] = pa.Field(description="the entry of reference/remediations.csv")
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES | {"XXX"}))
    description: Series[Text] = pa.Field(
        str_length={"min_value": 1}, description="what was fixed, as billing operations wrote it")
    customer_id: Series[Text] = pa.Field(nullable=True)
    meter: Series[Text] = pa.Field(nullable=True)
    start_date: Series[Annotated[pd.ArrowDtype, pyarrow.date32()]] = pa.Field(
        description="first day the remediation applies to")
    status: Series[Text] = pa.Field(
        isin=["measured", "month_not_issued", "no_record_at_issue"],
        description="measured; or why the month has no before to compare: not issued yet, no record at issue")
    accepted_events_before: Series[Count] = pa.Field(
        nullable=True, ge=0, description="accepted events in scope when the month was first issued")
    accepted_events_after: Series[Count] = pa.Field(description="accepted events in scope now", ge=0)
    duplicate_lines_before: Series[Count] = pa.Field(
        nullable=True, ge=0, description="duplicate lines in scope at first issue")
    duplicate_lines_after: Series[Count] = pa.Field(description="duplicate lines in scope now", ge=0)
    quarantined_lines_before: Series[Count] = pa.Field(
        nullable=True, ge=0, description="quarantined lines in scope at first issue")
    quarantined_lines_after: Series[Count] = pa.Field(description="quarantined lines in scope now", ge=0)
    quarantined_by_reason_before: Series[Text] = pa.Field(nullable=True, description="JSON: reason → lines")
    quarantined_by_reason_after: Series[Text] = pa.Field(description="JSON: reason → lines")
    released_lines: Series[Count] = pa.Field(nullable=True, ge=0,
                                             description="quarantined at issue and not now, per reason summed")
    released_by_reason: Series[Text] = pa.Field(
        nullable=True, description="JSON: reason → lines quarantined at issue and accepted now")
    invoices_in_scope: Series[Count] = pa.Field(
        nullable=True, ge=0, description="issued invoices of the month the remediation touches")
    invoices_corrected: Series[Count] = pa.Field(
        nullable=True, ge=0, description="of those, how many a credit note or adjustment invoice followed")
    billed_before_minor: Series[Int64] = pa.Field(nullable=True, description="in-scope lines of the issued invoices")
    billed_after_minor: Series[Int64] = pa.Field(
        nullable=True, description="in-scope lines as owed now (issued + corrections)")
    rerating_delta_minor: Series[Int64] = pa.Field(nullable=True, description="in-scope lines of the corrections since")
    credit_note_minor: Series[Int64] = pa.Field(description="Σ credit notes counted (positive)", nullable=True, ge=0)
    adjustment_invoice_minor: Series[Int64] = pa.Field(
        nullable=True, ge=0, description="Σ adjustment invoices counted (positive)")
    corrections: Series[Text] = pa.Field(description="JSON: the document numbers of the corrections counted")
    explanation: Series[Text] = pa.Field(str_length={"min_value": 1})

    class Config:
        strict = True
        unique = ["remediation_id", "currency"]

    @pa.dataframe_check(error="after = before + the re-rating delta = before + recovered − credited")
    def delta_adds_up(cls, frame: pd.DataFrame) -> Series[bool]:
        measured = frame["billed_before_minor"].notna()
        after = frame["billed_before_minor"] + frame["rerating_delta_minor"]
        split = frame["adjustment_invoice_minor"] - frame["credit_note_minor"]
        return ~measured | ((frame["billed_after_minor"] == after) & (frame["rerating_delta_minor"] == split))
