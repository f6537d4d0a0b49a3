"""Pandera contracts of the invoicing tables (CONTRACT.md §6)."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from billing_assets.lib.currency import ISO_4217_CODES
from billing_assets.usage.schemas import Int64, Text

MONTH = r"^\d{4}-\d{2}$"


class InvoiceLineRow(pa.DataFrameModel):
    """`invoice_lines`: the lines of each month's invoices (the issued ones as issued)."""

    invoice_number: Series[Text] = pa.Field(str_matches=r"^INV-\d{6}-[A-Za-z0-9_-]{1,64}$")
    month: Series[Text] = pa.Field(str_matches=MONTH)
    customer_id: Series[Text]
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    contract_id: Series[Text]
    line_type: Series[Text] = pa.Field(
        isin=["usage", "base_fee", "discount", "minimum_true_up"],
        description="usage, base fee, discount (negative) or minimum-commitment true-up")
    meter: Series[Text] = pa.Field(nullable=True)
    quantity: Series[Text] = pa.Field(nullable=True, str_matches=r"^\d+(\.\d+)?$", description="exact decimal")
    amount_exact: Series[Text] = pa.Field(
        str_matches=r"^-?\d+(\.\d+)?$|^-?\d+/\d+$",
        description="the exact amount before rounding, as decimal or fraction text")
    amount_minor: Series[Int64] = pa.Field(description="amount_exact rounded half-up to the currency's minor unit")
    tiers: Series[Text] = pa.Field(
        nullable=True, description="JSON pricing detail behind a usage line: tiers, unit price or packages")

    class Config:
        strict = True
        unique = ["invoice_number", "contract_id", "line_type", "meter"]

    @pa.dataframe_check(error="only discount lines are negative, and usage lines never are")
    def signs(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["line_type"] == "discount") | (frame["amount_minor"] >= 0)


class InvoiceRow(pa.DataFrameModel):
    """`invoices`: one per customer with a contract in the month."""

    invoice_number: Series[Text] = pa.Field(unique=True, str_matches=r"^INV-\d{6}-[A-Za-z0-9_-]{1,64}$")
    customer_id: Series[Text] = pa.Field(unique=True)
    month: Series[Text] = pa.Field(str_matches=MONTH)
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    total_minor: Series[Int64] = pa.Field(description="Σ amount_minor of the invoice's lines", ge=0)
    status: Series[Text] = pa.Field(
        isin=["draft", "issued"],
        description="draft until the month's grace period ends; issued documents never change")

    class Config:
        strict = True


class InvoiceAdjustmentRow(pa.DataFrameModel):
    """`invoice_adjustments`: credit notes (amount < 0) and adjustment invoices (amount > 0)."""

    document_number: Series[Text] = pa.Field(unique=True, str_matches=r"^(CN|ADJ)-\d{6}-[A-Za-z0-9_-]{1,64}-\d+$")
    invoice_number: Series[Text]
    customer_id: Series[Text]
    month: Series[Text] = pa.Field(str_matches=MONTH)
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    kind: Series[Text] = pa.Field(
        isin=["credit_note", "adjustment_invoice"],
        description="credit note (owes less) or adjustment invoice (owes more)")
    sequence: Series[Int64] = pa.Field(description="the n-th correction of the invoice", ge=1)
    amount_minor: Series[Int64] = pa.Field(description="signed change to what the customer owes")

    class Config:
        strict = True

    @pa.dataframe_check(error="credit notes reduce, adjustment invoices increase")
    def sign_matches_kind(cls, frame: pd.DataFrame) -> Series[bool]:
        return ((frame["kind"] == "credit_note") & (frame["amount_minor"] < 0)) | (
            (frame["kind"] == "adjustment_invoice") & (frame["amount_minor"] > 0))


class RefundRow(pa.DataFrameModel):
    """`refunds`: one row per credit note, for the payments system to pay back."""

    document_number: Series[Text] = pa.Field(unique=True, str_matches=r"^CN-\d{6}-[A-Za-z0-9_-]{1,64}-\d+$")
    invoice_number: Series[Text]
    customer_id: Series[Text]
    month: Series[Text] = pa.Field(str_matches=MONTH)
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    amount_minor: Series[Int64] = pa.Field(gt=0, description="amount to pay back, in minor units")

    class Config:
        strict = True
