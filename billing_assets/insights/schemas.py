"""Pandera contract of `usage_statements` (CONTRACT.md §8): one row per customer and month, the
index of the statement documents under ``documents/YYYY-MM/<customer_id>/``."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from billing_assets.invoicing.schemas import MONTH
from billing_assets.lib.currency import ISO_4217_CODES
from billing_assets.usage.schemas import Int64, Text


class UsageStatementRow(pa.DataFrameModel):
    """`usage_statements`: what each customer's statement of the month says, in brief."""

    month: Series[Text] = pa.Field(str_matches=MONTH)
    customer_id: Series[Text] = pa.Field(unique=True)
    invoice_number: Series[Text]
    status: Series[Text] = pa.Field(
        isin=["month_to_date", "final"],
        description="month_to_date while the month's invoice is not issued, final after")
    as_of: Series[Text] = pa.Field(nullable=True, str_matches=r"^\d{4}-\d{2}-\d{2}$", description="last metered day included")
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    total_minor: Series[Int64] = pa.Field(description="owed now: the issued invoice and its corrections, or the draft")
    corrections: Series[Int64] = pa.Field(ge=0, description="credit notes and adjustment invoices since the invoice")
    forecast_expected_minor: Series[Int64] = pa.Field(nullable=True, description="open month only")
    forecast_low_minor: Series[Int64] = pa.Field(
        nullable=True, description="open month: the forecast's low end at the month's end")
    forecast_high_minor: Series[Int64] = pa.Field(
        nullable=True, description="open month: the forecast's high end at the month's end")
    meters: Series[Text] = pa.Field(description="JSON: the month's quantity and amount per meter")
    documents: Series[Text] = pa.Field(str_matches=r"^documents/\d{4}-\d{2}/[A-Za-z0-9_-]{1,64}/statement$",
                                       description="key prefix of statement.json/.html and the two CSVs")
    content_sha256: Series[Text] = pa.Field(str_matches=r"^[0-9a-f]{64}$", description="of statement.json")

    class Config:
        strict = True

    @pa.dataframe_check(error="a forecast's interval holds its expected value")
    def forecast_ordered(cls, frame: pd.DataFrame) -> Series[bool]:
        low, expected, high = (frame[f"forecast_{name}_minor"] for name in ("low", "expected", "high"))
        return expected.isna() | ((low <= expected) & (expected <= high)).fillna(False)


class UsageAlertRow(pa.DataFrameModel):
    """`usage_alerts`: each alert's crossing in the month up to the day, per customer."""

    alert_id: Series[Text] = pa.Field(description="the alert of reference/alerts.yaml")
    customer_id: Series[Text]
    month: Series[Text] = pa.Field(str_matches=MONTH)
    kind: Series[Text] = pa.Field(
        isin=["usage", "spend", "commitment", "forecast_spend"],
        description="what is compared: usage, spend, commitment percentage or forecast spend")
    meter: Series[Text] = pa.Field(nullable=True, description="usage alerts only")
    threshold: Series[Text] = pa.Field(description="quantity, amount (major units), or percent of the commitment")
    value: Series[Text] = pa.Field(description="the month-to-date value on the crossing day (exact)")
    crossed_on: Series[Text] = pa.Field(str_matches=r"^\d{4}-\d{2}-\d{2}$",
                                        description="first day whose month-to-date value reaches the threshold")
    alert_key: Series[Text] = pa.Field(description="the crossing's id: alert and month (the customer is its folder)")
    state: Series[Text] = pa.Field(
        isin=["open", "retracted"], description="open; retracted when a correction undid the crossing")

    class Config:
        strict = True
        unique = ["customer_id", "alert_key"]
