"""Pandera contract of `rated_charges`."""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from billing_assets.lib.currency import ISO_4217_CODES
from billing_assets.reference.schemas import PRICING_MODELS
from billing_assets.usage.schemas import Int64, Quantity, Text

Int32 = Annotated[pd.ArrowDtype, pyarrow.int32()]


class RatedCharge(pa.DataFrameModel):
    """`rated_charges`: per contract and month, one row per priced meter and one for the base fee."""

    month: Series[Text] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    customer_id: Series[Text]
    contract_id: Series[Text]
    plan_id: Series[Text]
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    line_type: Series[Text] = pa.Field(
        isin=["usage", "base_fee"], description="a priced meter's usage, or the base fee")
    meter: Series[Text] = pa.Field(nullable=True, description="null for the base fee")
    model: Series[Text] = pa.Field(
        nullable=True, isin=list(PRICING_MODELS),
        description="the pricing model of a usage line (null for the base fee)")
    quantity: Series[Quantity] = pa.Field(nullable=True, ge=0, description="the contract's exact period aggregate")
    amount_exact: Series[Text] = pa.Field(str_matches=r"^-?\d+(\.\d+)?$|^-?\d+/\d+$",
                                          description="exact amount: decimal, or p/q when it does not terminate")
    amount_minor: Series[Int64] = pa.Field(ge=0, description="half-up to the currency's minor unit")
    tiers: Series[Text] = pa.Field(nullable=True, description="JSON pricing detail: tiers, unit price or packages")
    covered_days: Series[Int32] = pa.Field(
        ge=1, le=31, description="days of the month the contract covers (proration numerator)")
    days_in_month: Series[Int32] = pa.Field(description="days in the month (proration denominator)", ge=28, le=31)

    class Config:
        strict = True
        unique = ["contract_id", "line_type", "meter"]

    @pa.dataframe_check(error="usage rows name their meter, model and quantity; base-fee rows none")
    def usage_rows_are_complete(cls, frame: pd.DataFrame) -> Series[bool]:
        usage = frame["line_type"] == "usage"
        complete = frame["meter"].notna() & frame["model"].notna() & frame["quantity"].notna()
        return (usage & complete) | (~usage & frame["meter"].isna())
