"""Pandera contracts of the daily usage tables (CONTRACT.md §2, §3, §6)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from billing_assets.lib.money import MAX_QUANTITY, QUANTITY_TYPE
from billing_assets.usage.ingest import CUSTOMER_ID_PATTERN, EVENT_ID_PATTERN, SOURCE_PATTERN
from billing_assets.usage.reasons import REASON_CODES, Reason

Text = Annotated[pd.ArrowDtype, pyarrow.string()]
Int64 = Annotated[pd.ArrowDtype, pyarrow.int64()]
Quantity = Annotated[pd.ArrowDtype, QUANTITY_TYPE]
UtcTimestamp = Annotated[pd.ArrowDtype, pyarrow.timestamp("ns", tz="UTC")]
RAW_KEY_PATTERN = r"^raw/usage/dt=\d{4}-\d{2}-\d{2}/.+"


class UsageEvent(pa.DataFrameModel):
    """`usage_events`: one row per accepted event (first occurrence of its (source, event_id))."""

    object_key: Series[Text] = pa.Field(str_matches=RAW_KEY_PATTERN, description="raw object the event came from")
    line_number: Series[Int64] = pa.Field(ge=1, description="1-based line in that object")
    event_id: Series[Text] = pa.Field(str_matches=EVENT_ID_PATTERN)
    source: Series[Text] = pa.Field(str_matches=SOURCE_PATTERN, description="producer; '' when absent")
    timestamp: Series[UtcTimestamp] = pa.Field(description="event time, normalised to UTC")
    meter: Series[Text]
    customer_id: Series[Text] = pa.Field(str_matches=CUSTOMER_ID_PATTERN, description="given, or attributed by IP")
    attributed_by: Series[Text] = pa.Field(
        isin=["customer_id", "ip"], description="how customer_id was found: given in the event, or from its IP address")
    ip_prefix: Series[Text] = pa.Field(nullable=True, description="IPv4 /24 or IPv6 /48; the raw address is never stored")
    quantity: Series[Quantity] = pa.Field(ge=0, le=MAX_QUANTITY, description="exact decimal(38, 9); 1 for count meters without one")
    unique_value: Series[Text] = pa.Field(nullable=True, description="the property a unique_count meter counts")
    properties: Series[Text] = pa.Field(nullable=True, description="canonical JSON of the event's properties")

    class Config:
        strict = True
        unique = ["source", "event_id"]


class QuarantinedEvent(pa.DataFrameModel):
    """`quarantined_events`: every rejected line (or unreadable object) with its reason."""

    object_key: Series[Text] = pa.Field(str_matches=RAW_KEY_PATTERN)
    line_number: Series[Int64] = pa.Field(ge=1, nullable=True, description="1-based; null for a whole unreadable object")
    reason: Series[Text] = pa.Field(isin=list(REASON_CODES), description="first failing rule in CONTRACT.md §3 order")
    detail: Series[Text] = pa.Field(
        str_length={"min_value": 1},
        description="what exactly was wrong, e.g. quantity '1e-10' has more than 9 fractional digits")
    customer_id: Series[Text] = pa.Field(nullable=True, description="the customer the line names or its IP attributes, "
                                                                    "when in customers.csv; null otherwise")
    meter: Series[Text] = pa.Field(nullable=True, description="the line's meter, when in meters.yaml")
    quantity: Series[Quantity] = pa.Field(nullable=True, ge=0, le=MAX_QUANTITY,
                                          description="the line's quantity, when valid (1 for count meters without one)")

    class Config:
        strict = True
        unique = ["object_key", "line_number"]

    @pa.dataframe_check(error="line_number is null exactly for unreadable_file rows")
    def file_rows_have_no_line(cls, frame: pd.DataFrame) -> Series[bool]:
        return frame["line_number"].isna() == (frame["reason"] == Reason.UNREADABLE_FILE.value)


class DuplicateEvent(pa.DataFrameModel):
    """`duplicate_events`: a later copy of an accepted event with the identical normalised payload."""

    object_key: Series[Text] = pa.Field(str_matches=RAW_KEY_PATTERN)
    line_number: Series[Int64] = pa.Field(ge=1)
    source: Series[Text]
    event_id: Series[Text]
    first_object_key: Series[Text] = pa.Field(description="where the accepted copy is")
    first_line_number: Series[Int64] = pa.Field(description="line of the accepted copy in first_object_key", ge=1)
    customer_id: Series[Text] = pa.Field(description="the accepted copy's customer")
    meter: Series[Text]

    class Config:
        strict = True
        unique = ["object_key", "line_number"]

    @pa.dataframe_check(error="the accepted copy comes first in (object key, line number) order")
    def first_copy_precedes(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["first_object_key"] < frame["object_key"]) | (
            (frame["first_object_key"] == frame["object_key"]) & (frame["first_line_number"] < frame["line_number"])
        )
