"""The Dagster code location: ``billing_assets.definitions:defs``."""

import dagster as dg

from billing_assets.invoicing import assets as invoicing_assets
from billing_assets.invoicing import checks as invoicing_checks
from billing_assets.metering import assets as metering_assets
from billing_assets.monitoring import assets as monitoring_assets
from billing_assets.metering import checks as metering_checks
from billing_assets.rating import assets as rating_assets
from billing_assets.rating import checks as rating_checks
from billing_assets.reference import assets as reference_assets
from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.resources import billing_lake
from billing_assets.usage import assets as usage_assets
from billing_assets.usage import checks as usage_checks

reference_job = dg.define_asset_job(
    "reference_job",
    selection=dg.AssetSelection.groups("reference"),
    description="Validate the reference files (meters, plans, customers, contracts, IP allocations).",
)
daily_usage_job = dg.define_asset_job(
    "daily_usage_job",
    selection=dg.AssetSelection.groups("usage", "metering"),
    description="Ingest one or more days of raw usage and meter them, with every blocking check.",
)
monthly_billing_job = dg.define_asset_job(
    "monthly_billing_job",
    selection=dg.AssetSelection.groups("rating", "invoicing", "monitoring"),
    description="Rate, invoice and reconcile one or more UTC calendar months from their days' metered usage.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([reference_assets, usage_assets, metering_assets, rating_assets,
                                        invoicing_assets, monitoring_assets]),
    asset_checks=dg.load_asset_checks_from_modules([usage_checks, metering_checks, rating_checks,
                                                    invoicing_checks]),
    jobs=[reference_job, daily_usage_job, monthly_billing_job],
    resources={"lake": billing_lake(), "billing_policy": BillingPolicy()},
)
