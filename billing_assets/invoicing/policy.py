"""When a month's invoices stop being drafts."""

import os
from datetime import date, datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from billing_assets.lib import clock

DEFAULT_GRACE_HOURS = 24


class BillingPolicy(dg.ConfigurableResource):
    """Invoices of month M are drafts until M's end plus the grace period, then issued."""

    grace_hours: int | None = Field(default=None, description="Defaults to $BILLING_GRACE_HOURS, else 24.")
    as_of: str | None = Field(default=None, description="ISO instant to judge issuing against (default: now).")

    def now(self) -> datetime:
        return clock.now(self.as_of)

    def grace_end(self, month: str) -> datetime:
        first = date.fromisoformat(f"{month}-01")
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        hours = self.grace_hours if self.grace_hours is not None else int(
            os.environ.get("BILLING_GRACE_HOURS", DEFAULT_GRACE_HOURS))
        return datetime(following.year, following.month, 1, tzinfo=timezone.utc) + timedelta(hours=hours)

    def issuing(self, month: str) -> bool:
        return self.now() >= self.grace_end(month)
