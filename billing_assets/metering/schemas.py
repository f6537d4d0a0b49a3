"""Pandera contract of `metered_usage`."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

import pyarrow.compute as pc

from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.reference.schemas import AGGREGATIONS
from billing_assets.usage.schemas import Int64, Quantity, Text, UtcTimestamp


def _quantity_equals(quantities: pd.Series, counts: pd.Series) -> pd.Series:
    """Exact decimal == integer, compared in Arrow (no float on either side)."""
    equal = pc.equal(pyarrow.array(quantities), pc.cast(pyarrow.array(counts), QUANTITY_TYPE))
    return pd.Series(equal.fill_null(False).to_numpy(zero_copy_only=False), index=quantities.index)


class MeteredUsage(pa.DataFrameModel):
    """`metered_usage`: one row per customer × meter × day."""

    day: Series[Annotated[pd.ArrowDtype, pyarrow.date32()]] = pa.Field(description="UTC usage day")
    customer_id: Series[Text]
    meter: Series[Text]
    aggregation: Series[Text] = pa.Field(
        isin=list(AGGREGATIONS), description="the meter's aggregation rule (meters.yaml)")
    quantity: Series[Quantity] = pa.Field(ge=0, description="the day's aggregate by the meter's aggregation")
    event_count: Series[Int64] = pa.Field(ge=1, description="accepted events behind the row")
    latest_timestamp: Series[UtcTimestamp] = pa.Field(nullable=True, description="latest meters: the winning event's time")
    latest_event_id: Series[Text] = pa.Field(nullable=True, description="latest meters: the winning event")
    distinct_values: Series[Annotated[pd.ArrowDtype, pyarrow.list_(pyarrow.string())]] = pa.Field(
        nullable=True, description="unique_count meters: the day's sorted distinct values"
    )

    class Config:
        strict = True
        unique = ["customer_id", "meter"]

    @pa.dataframe_check(error="a count meter's quantity equals its event_count")
    def count_is_event_count(cls, frame: pd.DataFrame) -> Series[bool]:
        is_count = frame["aggregation"] == "count"
        return ~is_count | _quantity_equals(frame["quantity"], frame["event_count"])

    @pa.dataframe_check(error="unique_count rows carry their distinct values, and quantity is how many")
    def unique_count_has_values(cls, frame: pd.DataFrame) -> Series[bool]:
        is_unique = frame["aggregation"] == "unique_count"
        return ~is_unique | _quantity_equals(frame["quantity"], frame["distinct_values"].list.len())

    @pa.dataframe_check(error="latest rows name their winning event")
    def latest_has_winner(cls, frame: pd.DataFrame) -> Series[bool]:
        is_latest = frame["aggregation"] == "latest"
        return ~is_latest | (frame["latest_event_id"].notna() & frame["latest_timestamp"].notna())
