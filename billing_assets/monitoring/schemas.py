"""Pandera contract of `sla_report`."""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

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
