"""Blocking checks on rated charges."""

from billing_assets.lib.checks import pandera_asset_check
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.rating.schemas import RatedCharge

rated_charges_matches_contract = pandera_asset_check(
    asset="rated_charges", table="rated_charges", model=RatedCharge, partitions_def=monthly_billing_partitions)
