"""`reference/remediations.csv` (optional, CONTRACT.md §9): fixes to billing errors whose impact
billing operations wants measured — a contract onboarded or back-dated, a producer fixed and its
usage re-sent, a price corrected. Validated like the other reference files: a bad row fails
loudly with file, line and problem; a missing file measures nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from billing_assets.reference.loading import ReferenceData, ReferenceDataError, _csv_line
from billing_assets.reference.suppressions import optional_csv, reference_day

REMEDIATIONS_KEY = "reference/remediations.csv"
COLUMNS = ["remediation_id", "description", "start_date", "customer_id", "meter"]
IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class Remediation:
    remediation_id: str
    description: str
    start_date: date  # the first usage day it applies to
    customer_id: str | None  # None: every customer
    meter: str | None  # None: every meter

    def applies_to(self, month: str) -> bool:
        """A remediation applies from its start date's month on (``month``: YYYY-MM)."""
        return month >= f"{self.start_date:%Y-%m}"


def load_remediations(read: Callable[[str], bytes | None], reference: ReferenceData) -> tuple[Remediation, ...]:
    frame = optional_csv(read, REMEDIATIONS_KEY, COLUMNS)
    if frame is None:
        return ()
    customers, meters = set(reference.customers["customer_id"]), set(reference.meters["name"])
    found: dict[str, str] = {}
    remediations = []
    for index, row in enumerate(frame.to_dict("records")):
        line = _csv_line(index)

        def fail(problem: str):
            raise ReferenceDataError(REMEDIATIONS_KEY, line, problem)

        if not IDENTIFIER.fullmatch(row["remediation_id"]):
            fail(f"remediation_id must be 1-64 of [A-Za-z0-9._:-], got {row['remediation_id']!r}")
        if row["remediation_id"] in found:
            fail(f"remediation_id {row['remediation_id']!r} is already on {found[row['remediation_id']]}")
        found[row["remediation_id"]] = line
        if not row["description"].strip():
            fail("description is empty: say what was fixed")
        start = reference_day(REMEDIATIONS_KEY, row["start_date"], "start_date", line)
        if row["customer_id"] and row["customer_id"] not in customers:
            fail(f"customer_id {row['customer_id']!r} is not in reference/customers.csv")
        if row["meter"] and row["meter"] not in meters:
            fail(f"meter {row['meter']!r} is not in reference/meters.yaml")
        remediations.append(Remediation(row["remediation_id"], row["description"].strip(), start,
                                        row["customer_id"] or None, row["meter"] or None))
    return tuple(remediations)
