"""Pandera contracts of the provider tables (CONTRACT.md §11)."""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from billing_assets.lib.currency import ISO_4217_CODES
from billing_assets.providers.ledger import KINDS, STATUSES
from billing_assets.providers.reconciliation import STATUSES as RECONCILIATION_STATUSES
from billing_assets.providers.refunds import STATUSES as REFUND_STATUSES
from billing_assets.usage.schemas import Int64, Quantity, Text, UtcTimestamp

PROVIDERS = ("none", "stripe", "orb")
Bool = Annotated[pd.ArrowDtype, pyarrow.bool_()]


class ProviderSyncRow(pa.DataFrameModel):
    """`provider_sync`: one row per send of a customer × priced meter × day's usage to the provider."""

    day: Series[Annotated[pd.ArrowDtype, pyarrow.date32()]] = pa.Field(description="UTC usage day")
    customer_id: Series[Text]
    meter: Series[Text]
    provider: Series[Text] = pa.Field(isin=list(PROVIDERS), description="none: a dry run's plan, never sent")
    provider_customer_id: Series[Text] = pa.Field(nullable=True, description="from reference/provider_customers.csv")
    identifier: Series[Text] = pa.Field(str_matches=r"^usage:\d{4}-\d{2}-\d{2}:.+:.+:\d+$",
                                        description="usage:<day>:<customer>:<meter>:<revision>; kept through every retry")
    revision: Series[Int64] = pa.Field(ge=1, description="1 for the key's first send, then one more per correction")
    quantity_sent: Series[Quantity] = pa.Field(description="exact; a correction is the difference, maybe negative")
    kind: Series[Text] = pa.Field(description="a day's first send, or a correction of it", isin=list(KINDS))
    status: Series[Text] = pa.Field(
        isin=list(STATUSES),
        description="where the send is: written before it leaves, then sent, acknowledged or failed")
    provider_response: Series[Text] = pa.Field(nullable=True, description="what the provider answered")
    failure_reason: Series[Text] = pa.Field(nullable=True, description="why it is not (yet) acknowledged")
    retryable: Series[Bool] = pa.Field(description="a failed row the next run sends again")
    planned_at: Series[UtcTimestamp] = pa.Field(description="when the row was written, before its request left")

    class Config:
        strict = True
        unique = ["provider", "identifier"]

    @pa.dataframe_check(error="the first send of a key is usage and the later ones corrections")
    def first_is_usage(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["revision"] == 1) == (frame["kind"] == "usage")

    @pa.dataframe_check(error="a failed row names why")
    def failures_have_reasons(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["status"] != "failed") | frame["failure_reason"].notna()


class RefundRequestRow(pa.DataFrameModel):
    """`refund_requests`: one row per credit note and provider, the refund asked for once, ever."""

    document_number: Series[Text] = pa.Field(str_matches=r"^CN-\d{6}-[A-Za-z0-9_-]{1,64}-\d+$")
    invoice_number: Series[Text]
    customer_id: Series[Text]
    provider: Series[Text] = pa.Field(isin=list(PROVIDERS), description="none: the plan, never requested")
    provider_customer_id: Series[Text] = pa.Field(nullable=True)
    amount_minor: Series[Int64] = pa.Field(gt=0, description="what goes back to the customer, in minor units")
    currency: Series[Text] = pa.Field(isin=sorted(ISO_4217_CODES))
    idempotency_key: Series[Text] = pa.Field(description="the credit note's number")
    status: Series[Text] = pa.Field(
        isin=list(REFUND_STATUSES),
        description="where the refund is: written before it is asked for, then requested, succeeded or failed")
    provider_refund_id: Series[Text] = pa.Field(
        nullable=True, description="the provider's id of the refund, once requested")
    provider_payment_id: Series[Text] = pa.Field(nullable=True, description="the payment it pays back from")
    failure_reason: Series[Text] = pa.Field(description="why the request failed, as the provider said", nullable=True)
    retryable: Series[Bool] = pa.Field(description="a failed request the next run makes again")
    planned_at: Series[UtcTimestamp] = pa.Field(description="when the row was written, before its request left")

    class Config:
        strict = True
        unique = ["provider", "document_number"]

    @pa.dataframe_check(error="the idempotency key is the credit note's number")
    def key_is_document(cls, frame: pd.DataFrame) -> Series[bool]:
        return frame["idempotency_key"] == frame["document_number"]

    @pa.dataframe_check(error="a failed refund names why")
    def failures_have_reasons(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["status"] != "failed") | frame["failure_reason"].notna()


class ProviderReconciliationRow(pa.DataFrameModel):
    """`provider_reconciliation`: per month, customer and meter (usage) or customer (invoice
    total), the provider's figure against ours."""

    month: Series[Text] = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    customer_id: Series[Text]
    provider: Series[Text] = pa.Field(isin=list(PROVIDERS))
    provider_customer_id: Series[Text] = pa.Field(nullable=True)
    measure: Series[Text] = pa.Field(
        isin=["usage", "invoice_total"], description="usage per meter, or the invoice total")
    meter: Series[Text] = pa.Field(nullable=True, description="usage rows only")
    ours: Series[Text] = pa.Field(description="exact: a quantity, or an amount in minor units")
    theirs: Series[Text] = pa.Field(nullable=True, description="the provider's figure, as it sent it")
    difference: Series[Text] = pa.Field(nullable=True, description="ours less theirs")
    status: Series[Text] = pa.Field(
        isin=list(RECONCILIATION_STATUSES),
        description="matches, a break, missing at the provider, the customer not mapped, or not comparable")
    explanation: Series[Text] = pa.Field(str_length={"min_value": 1})

    class Config:
        strict = True
        unique = ["customer_id", "measure", "meter"]

    @pa.dataframe_check(error="usage rows name their meter, invoice rows none")
    def meter_only_on_usage(cls, frame: pd.DataFrame) -> Series[bool]:
        return (frame["measure"] == "usage") == frame["meter"].notna()
