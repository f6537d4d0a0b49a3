"""`reference/anomaly_suppressions.csv` (optional, CONTRACT.md §9): known migrations and
planned changes whose usage anomalies billing operations already knows about. Validated like
the other reference files: a bad row fails loudly with file, line and problem; a missing file
suppresses nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from billing_assets.reference.loading import ReferenceData, ReferenceDataError, _csv_line, _read_csv

SUPPRESSIONS_KEY = "reference/anomaly_suppressions.csv"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
COLUMNS = ["customer_id", "meter", "from", "to", "why"]


@dataclass(frozen=True)
class Suppression:
    customer_id: str
    meter: str | None  # None: every meter of the customer
    first_day: date
    last_day: date  # inclusive, as people write "from 3 to 5 March"
    why: str

    def covers(self, customer_id: str, meter: str, day: date) -> bool:
        return (customer_id == self.customer_id and (self.meter is None or meter == self.meter)
                and self.first_day <= day <= self.last_day)


def reference_day(key: str, value: str, name: str, line: str) -> date:
    """A YYYY-MM-DD cell of a reference CSV, or a loud error naming the file, line and column."""
    try:
        if DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ReferenceDataError(key, line, f"{name} must be a YYYY-MM-DD date, got {value!r}")


def optional_csv(read: Callable[[str], bytes | None], key: str, columns: list[str]) -> pd.DataFrame | None:
    """An optional reference CSV with exactly ``columns`` (None when there is no file), or a loud
    error naming its header."""
    body = read(key)
    if body is None:
        return None
    frame = _read_csv(key, body)
    if list(frame.columns) != columns:
        raise ReferenceDataError(key, "line 1", f"the header must be {','.join(columns)}, "
                                                f"got {','.join(map(str, frame.columns))}")
    return frame


def load_suppressions(read: Callable[[str], bytes | None], reference: ReferenceData) -> tuple[Suppression, ...]:
    frame = optional_csv(read, SUPPRESSIONS_KEY, COLUMNS)
    if frame is None:
        return ()
    customers, meters = set(reference.customers["customer_id"]), set(reference.meters["name"])
    suppressions = []
    for index, row in enumerate(frame.to_dict("records")):
        line = _csv_line(index)
        if row["customer_id"] not in customers:
            raise ReferenceDataError(SUPPRESSIONS_KEY, line, f"customer_id {row['customer_id']!r} is not in "
                                                             "reference/customers.csv")
        if row["meter"] and row["meter"] not in meters:
            raise ReferenceDataError(SUPPRESSIONS_KEY, line, f"meter {row['meter']!r} is not in reference/meters.yaml")
        first, last = (reference_day(SUPPRESSIONS_KEY, row[name], name, line) for name in ("from", "to"))
        if first > last:
            raise ReferenceDataError(SUPPRESSIONS_KEY, line, f"from {first} is after to {last}")
        if not row["why"].strip():
            raise ReferenceDataError(SUPPRESSIONS_KEY, line, "why is empty: say what is known about the change")
        suppressions.append(Suppression(row["customer_id"], row["meter"] or None, first, last, row["why"].strip()))
    return tuple(suppressions)
