"""The billing provider a deployment invoices or collects through (CONTRACT.md §11)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import dagster as dg
from pydantic import Field

from billing_assets.lib import clock

PROVIDER_KINDS = ("none", "stripe", "orb")


class BillingProvider(dg.ConfigurableResource):
    """Where usage is synced, refunds are requested and what was billed is read back. Each
    setting left empty is read from the environment when used: ``BILLING_PROVIDER`` (``none``,
    the default: every row is a plan anyone can audit, nothing leaves the lake), ``STRIPE_API_KEY``,
    ``ORB_API_KEY``, ``BILLING_PROVIDER_ENDPOINT`` (a test server, or a regional API)."""

    kind: str | None = Field(default=None, description="none | stripe | orb; default $BILLING_PROVIDER, else none")
    stripe_api_key: str | None = Field(default=None, description="default $STRIPE_API_KEY")
    orb_api_key: str | None = Field(default=None, description="default $ORB_API_KEY")
    endpoint: str | None = Field(default=None, description="default $BILLING_PROVIDER_ENDPOINT, else the provider's")
    max_retries: int = Field(default=4, description="tries after the first, on 429, 5xx and lost responses")
    orb_grace_period_hours: float = Field(default=12, description="the Orb account's grace period: older days "
                                                                    "are sent within a backfill")
    as_of: str | None = Field(default=None, description="ISO instant standing for now (tests, replays)")

    def provider_kind(self) -> str:
        chosen = (self.kind or os.environ.get("BILLING_PROVIDER") or "none").strip().lower()
        if chosen not in PROVIDER_KINDS:
            raise dg.Failure(f"BILLING_PROVIDER={chosen!r}: it must be one of {', '.join(PROVIDER_KINDS)}",
                             allow_retries=False)
        return chosen

    def now(self) -> datetime:
        return clock.now(self.as_of)

    def _key(self, given: str | None, variable: str) -> str:
        key = given or os.environ.get(variable)
        if not key:
            raise dg.Failure(f"BILLING_PROVIDER={self.provider_kind()} needs {variable}", allow_retries=False)
        return key

    def connect(self):
        """The provider's client, or None for ``none`` (a dry run)."""
        kind, endpoint = self.provider_kind(), self.endpoint or os.environ.get("BILLING_PROVIDER_ENDPOINT") or None
        if kind == "stripe":
            from billing_assets.providers.stripe_api import StripeProvider

            return StripeProvider(self._key(self.stripe_api_key, "STRIPE_API_KEY"), endpoint, self.max_retries)
        if kind == "orb":
            from billing_assets.providers.orb_api import OrbProvider

            return OrbProvider(self._key(self.orb_api_key, "ORB_API_KEY"), endpoint, self.max_retries,
                               timedelta(hours=self.orb_grace_period_hours))
        return None
