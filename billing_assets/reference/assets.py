"""Reference files as assets: validated together, because their rules cross files."""


import contextlib

import dagster as dg
import pyarrow as pa

from billing_assets.lib.checks import markdown_preview
from billing_assets.lib.lake import BillingLake
from billing_assets.reference.alerts import AlertsConfig, load_alerts
from billing_assets.reference.provider_customers import load_provider_customers
from billing_assets.reference.remediations import Remediation, load_remediations
from billing_assets.reference.suppressions import Suppression, load_suppressions
from billing_assets.reference.loading import (
    CONTRACTS_KEY,
    CUSTOMERS_KEY,
    IP_ALLOCATIONS_KEY,
    METERS_KEY,
    PLANS_KEY,
    ReferenceData,
    ReferenceDataError,
    load_reference,
)

REFERENCE_FILES = {
    "meters": (METERS_KEY, "Meter definitions: what is measured and how a period aggregates it "
                           "(sum, count, max, unique_count, latest)."),
    "plans": (PLANS_KEY, "The price book: per plan its currency, base fee, minimum commitment and "
                         "one pricing model per metered charge."),
    "customers": (CUSTOMERS_KEY, "Billable customers and the ISO 4217 currency each pays in."),
    "contracts": (CONTRACTS_KEY, "Which customer is on which plan over which days, with any discount; "
                                 "a customer's contracts never overlap."),
    "ip_allocations": (IP_ALLOCATIONS_KEY, "CIDR blocks assigned to customers over time; attributes usage "
                                           "events that carry an IP address instead of a customer id."),
}
REFERENCE_ASSET_KEYS = [dg.AssetKey(name) for name in REFERENCE_FILES]


def read_reference(lake: BillingLake) -> ReferenceData:
    """Load the reference files; a broken one fails the step with file, row and problem."""
    with _loudly():
        return load_reference(lake.get_bytes_or_none)


def read_alerts(lake: BillingLake, reference: ReferenceData) -> AlertsConfig:
    """The optional alerts.yaml, failing the step with file, entry and problem when broken."""
    with _loudly():
        return load_alerts(lake.get_bytes_or_none, reference)


def read_suppressions(lake: BillingLake, reference: ReferenceData) -> tuple[Suppression, ...]:
    """The optional anomaly_suppressions.csv, failing the step with file, line and problem when broken."""
    with _loudly():
        return load_suppressions(lake.get_bytes_or_none, reference)


def read_remediations(lake: BillingLake, reference: ReferenceData) -> tuple[Remediation, ...]:
    """The optional remediations.csv, failing the step with file, line and problem when broken."""
    with _loudly():
        return load_remediations(lake.get_bytes_or_none, reference)


def read_provider_customers(lake: BillingLake, reference: ReferenceData) -> dict[str, str]:
    """The optional provider_customers.csv, failing the step with file, line and problem when broken."""
    with _loudly():
        return load_provider_customers(lake.get_bytes_or_none, reference)


@contextlib.contextmanager
def _loudly():
    try:
        yield
    except ReferenceDataError as error:
        raise dg.Failure(
            description=str(error),
            metadata={"file": error.file, "row": error.row or "-", "problem": error.problem},
            allow_retries=False,
        ) from None


def _frames(reference: ReferenceData) -> dict:
    return {
        "meters": reference.meters,
        "plans": reference.plans.merge(
            reference.plan_charges.groupby("plan_id").size().rename("charges").reset_index(), on="plan_id", how="left"
        ),
        "customers": reference.customers,
        "contracts": reference.contracts,
        "ip_allocations": reference.ip_allocations,
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(name, description=description, group_name="reference", kinds={"s3", "yaml" if key.endswith("yaml") else "csv"},
                     owners=["team:billing"], metadata={"dagster/uri": f"reference/{key.split('/', 1)[1]}"})
        for name, (key, description) in REFERENCE_FILES.items()
    ],
    name="reference_data",
)
def reference_data(context: dg.AssetExecutionContext, lake: BillingLake):
    """Validate every reference file and record what each one holds."""
    reference = read_reference(lake)
    config = read_alerts(lake, reference)
    context.log.info(f"reference/alerts.yaml: {len(config.alerts)} alerts, {len(config.limits)} limits, valid")
    context.log.info(f"reference/anomaly_suppressions.csv: {len(read_suppressions(lake, reference))} rows, valid")
    context.log.info(f"reference/remediations.csv: {len(read_remediations(lake, reference))} rows, valid")
    context.log.info(f"reference/provider_customers.csv: {len(read_provider_customers(lake, reference))} rows, valid")
    for name, frame in _frames(reference).items():
        key = REFERENCE_FILES[name][0]
        context.log.info(f"{key}: {len(frame)} rows, valid")
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": len(frame),
                "dagster/uri": lake.uri(key),
                "sha256": reference.content_sha256[key],
                "reference_fingerprint": reference.fingerprint,
                "preview": markdown_preview(pa.Table.from_pandas(frame, preserve_index=False), rows=20),
            },
        )
