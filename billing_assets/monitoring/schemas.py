"""Pandera contracts of `sla_report` and `reconciliation`."""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from billing_assets.invoicing.schemas import MONTH
from billing_assets.monitoring.reconcile import TIE_OUTS
from billing_assets.usage.schemas import Int64, Text

Timestamp = Annotated[pd.ArrowDtype, pyarrow.timestamp("us", tz="UTC")]
Flag = Annotated[pd.ArrowDtype, pyarrow.bool_()]


class SlaReportRow(pa.DataFrameModel):
    """`sla_report`: one row per raw object of the day (one row with no object when none landed)."""

    dt: Series[Text] = pa.Field(description="the usage day (UTC)")
    object_key: Series[Text] = pa.Field(nullable=True, description="raw object; null when none landed")
    landed_at: Series[Timestamp] = pa.Field(nullable=True, description="the object's S3 LastModified")
    landed_after_deadline: Series[Flag] = pa.Field(nullable=True, description="landed after the day's metering deadline")
    landed_after_invoicing: Series[Flag] = pa.Field(
        nullable=True, description="landed after the month's invoices were issued: reaches customers as a correction")
    deadline: Series[Timestamp] = pa.Field(description="metered by: the next day at the SLA hour (UTC)")
    ingested_at: Series[Timestamp] = pa.Field(nullable=True, description="the day's latest ingest")
    metered_at: Series[Timestamp] = pa.Field(nullable=True, description="the day's latest metering")
    metered_lateness_seconds: Series[Int64] = pa.Field(
        ge=0, nullable=True,
        description="how long after the deadline the first metering after the day's last file finished (0 if on time)")
    invoices_issued_at: Series[Timestamp] = pa.Field(nullable=True, description="when the month's invoices were issued")

    class Config:
        strict = True


# a count, or an exact decimal as Python's Decimal writes it (``0E-9`` is a zero of nine places)
EXACT_TEXT = r"^-?\d+(\.\d+)?(E[+-]?\d+)?$"


class ReconciliationRow(pa.DataFrameModel):
    """`reconciliation`: one row per tie-out of the month between two stages of the chain; the
    blocking check `reconciliation_ties` fails on any row that does not tie."""

    month: Series[Text] = pa.Field(str_matches=MONTH)
    tie_out: Series[Text] = pa.Field(isin=TIE_OUTS, description="which two stages are tied, and at what grain")
    customer_id: Series[Text] = pa.Field()
    contract_id: Series[Text] = pa.Field(nullable=True, description="for the rated-quantity tie-out")
    meter: Series[Text] = pa.Field(nullable=True, description="for the event and quantity tie-outs")
    expected: Series[Text] = pa.Field(str_matches=EXACT_TEXT, description="the earlier stage's figure, exact")
    actual: Series[Text] = pa.Field(str_matches=EXACT_TEXT, description="the later stage's figure, exact")
    difference: Series[Text] = pa.Field(str_matches=EXACT_TEXT, description="actual − expected, exact")
    ties: Series[Flag] = pa.Field(description="difference is zero")

    class Config:
        strict = True
