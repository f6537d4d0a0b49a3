"""`reference/provider_customers.csv` (optional, CONTRACT.md §11): which customer of the billing
provider each customer is (`customer_id,provider_customer_id`). Validated like the other
reference files: a bad row fails loudly with file, line and problem. Two customers mapped to one
provider customer would merge their usage there, so that is refused too."""

from __future__ import annotations

import re
from collections.abc import Callable

from billing_assets.reference.loading import ReferenceData, ReferenceDataError, _csv_line
from billing_assets.reference.suppressions import optional_csv

PROVIDER_CUSTOMERS_KEY = "reference/provider_customers.csv"
COLUMNS = ["customer_id", "provider_customer_id"]
# Stripe's cus_…, Orb's ids and external ids: letters, digits and a few separators
PROVIDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


def load_provider_customers(read: Callable[[str], bytes | None], reference: ReferenceData) -> dict[str, str]:
    """customer_id → provider_customer_id; empty when there is no file."""
    frame = optional_csv(read, PROVIDER_CUSTOMERS_KEY, COLUMNS)
    if frame is None:
        return {}
    customers = set(reference.customers["customer_id"])
    mapping: dict[str, str] = {}
    seen: dict[str, tuple[str, str]] = {}
    for index, row in enumerate(frame.to_dict("records")):
        line = _csv_line(index)
        customer, provider_id = row["customer_id"], row["provider_customer_id"]
        if customer not in customers:
            raise ReferenceDataError(PROVIDER_CUSTOMERS_KEY, line, f"customer_id {customer!r} is not in "
                                                                   "reference/customers.csv")
        if customer in mapping:
            raise ReferenceDataError(PROVIDER_CUSTOMERS_KEY, line, f"customer_id {customer!r} is mapped again "
                                                                   f"(first on {seen[mapping[customer]][1]})")
        if not PROVIDER_ID.fullmatch(provider_id):
            raise ReferenceDataError(PROVIDER_CUSTOMERS_KEY, line, "provider_customer_id must be 1-255 of "
                                                                   f"[A-Za-z0-9_.:-], got {provider_id!r}")
        if provider_id in seen:
            raise ReferenceDataError(PROVIDER_CUSTOMERS_KEY, line, f"provider_customer_id {provider_id!r} is "
                                                                   f"already {seen[provider_id][0]}'s "
                                                                   f"({seen[provider_id][1]}): their usage would merge")
        mapping[customer] = provider_id
        seen[provider_id] = (customer, line)
    return mapping
