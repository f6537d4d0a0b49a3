"""Pandera contracts for the reference files (CONTRACT.md §4), one model per file.

Every column is read as text: a price or a date never passes through a float or a guess.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from billing_assets.lib.currency import ISO_4217_CODES

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
DECIMAL_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")
AGGREGATIONS = ("sum", "count", "max", "unique_count", "latest")
PRICING_MODELS = ("per_unit", "graduated", "volume", "package")


def _is_date(value: str) -> bool:
    try:
        pd.Timestamp(value)
    except ValueError:
        return False
    return bool(re.fullmatch(DATE_PATTERN, value))


def _is_decimal(value: str) -> bool:
    return bool(DECIMAL_PATTERN.fullmatch(value))


class CustomerFile(pa.DataFrameModel):
    """reference/customers.csv"""

    customer_id: Series[str] = pa.Field(str_matches=ID_PATTERN, unique=True)
    name: Series[str] = pa.Field(str_length={"min_value": 1})
    currency: Series[str] = pa.Field(isin=sorted(ISO_4217_CODES))

    class Config:
        strict = True


class ContractFile(pa.DataFrameModel):
    """reference/contracts.csv"""

    contract_id: Series[str] = pa.Field(str_matches=ID_PATTERN, unique=True)
    customer_id: Series[str] = pa.Field(str_matches=ID_PATTERN)
    plan_id: Series[str] = pa.Field(str_length={"min_value": 1})
    start_date: Series[str]
    end_date: Series[str]
    discount_percent: Series[str]

    class Config:
        strict = True

    @pa.check("start_date", error="not a YYYY-MM-DD date")
    def start_is_date(cls, column: Series[str]) -> Series[bool]:
        return column.map(_is_date)

    @pa.check("end_date", error="not empty or a YYYY-MM-DD date")
    def end_is_date_or_open(cls, column: Series[str]) -> Series[bool]:
        return column.map(lambda value: value == "" or _is_date(value))

    @pa.check("discount_percent", error="not empty or a decimal from 0 to 100")
    def discount_in_range(cls, column: Series[str]) -> Series[bool]:
        return column.map(lambda value: value == "" or (_is_decimal(value) and Decimal(value) <= 100))


class IpAllocationFile(pa.DataFrameModel):
    """reference/ip_allocations.csv"""

    cidr: Series[str]
    customer_id: Series[str] = pa.Field(str_matches=ID_PATTERN)
    valid_from: Series[str]
    valid_to: Series[str]

    class Config:
        strict = True

    @pa.check("cidr", error="not an IPv4/IPv6 CIDR block without host bits")
    def cidr_parses(cls, column: Series[str]) -> Series[bool]:
        def parses(value: str) -> bool:
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError:
                return False
            return "/" in value

        return column.map(parses)

    @pa.check("valid_from", error="not a YYYY-MM-DD date")
    def from_is_date(cls, column: Series[str]) -> Series[bool]:
        return column.map(_is_date)

    @pa.check("valid_to", error="not empty or a YYYY-MM-DD date")
    def to_is_date_or_open(cls, column: Series[str]) -> Series[bool]:
        return column.map(lambda value: value == "" or _is_date(value))


class MeterEntry(pa.DataFrameModel):
    """One entry of reference/meters.yaml"""

    name: Series[str] = pa.Field(str_matches=r"^[A-Za-z0-9._:-]{1,128}$", unique=True)
    aggregation: Series[str] = pa.Field(isin=list(AGGREGATIONS))
    unit: Series[str] = pa.Field(str_length={"min_value": 1})
    field: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True

    @pa.dataframe_check(error="unique_count meters need a `field`; other meters take none")
    def field_iff_unique_count(cls, frame: pd.DataFrame) -> Series[bool]:
        has_field = frame["field"].notna() & (frame["field"] != "")
        return has_field == (frame["aggregation"] == "unique_count")


class PlanEntry(pa.DataFrameModel):
    """One plan of reference/plans.yaml (its charges are checked by the loader)."""

    plan_id: Series[str] = pa.Field(str_matches=r"^[A-Za-z0-9._-]{1,64}$", unique=True)
    currency: Series[str] = pa.Field(isin=sorted(ISO_4217_CODES))
    base_fee: Series[str]
    minimum_commitment: Series[str]

    class Config:
        strict = True

    @pa.check("base_fee", "minimum_commitment", error="not empty or a decimal string such as \"49.00\"")
    def money_is_decimal(cls, column: Series[str]) -> Series[bool]:
        return column.map(lambda value: value == "" or _is_decimal(value))
