"""`provider_reconciliation`: Stripe's view of January read back and tied to ours, a break injected
on each side named with both figures. By hand: globex (pro, 10 % off) metered 1,000 GB → owes
49.00 + 80.00 less 10 % = 116.10; acme (pro) 2.5 GB → 49.00 + 0.20 = 49.20."""

import io
from datetime import datetime, timezone
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq

from billing_assets.providers.reconciliation import usage_rows
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import MONTH, day_file
from billing_assets_tests.providers.test_refunds import run, stripe_account  # noqa: F401 (a fixture)
from billing_assets_tests.usage.helpers import event

MAPPING = "customer_id,provider_customer_id\nacme,cus_acme\nglobex,cus_globex\n"
JANUARY = (int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()), int(datetime(2026, 2, 1, tzinfo=timezone.utc).timestamp()))


def rows(s3, bucket) -> dict[tuple, dict]:
    key = f"warehouse/provider_reconciliation/month={MONTH}/part-00000.parquet"
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).to_pylist()
    return {(row["customer_id"], row["measure"], row["meter"]): row for row in table}


def test_stripes_usage_and_invoices_are_tied_to_ours_and_each_break_is_named(put, s3, bucket, stripe_account):  # noqa: F811
    fake, provider = stripe_account
    put(reference_files(provider_customers_csv=MAPPING) | day_file(
        "2026-01-05", event(event_id="g1", customer_id="globex", quantity="1000"),
        event(event_id="a1", quantity="1.25"), event(event_id="a2", quantity="1.25")))
    fake.now = datetime(2026, 1, 6, 6, tzinfo=timezone.utc).timestamp()  # the day is synced the morning after
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05", provider | {"as_of": "2026-01-06T06:00:00+00:00"})
        # Stripe lost 0.25 GB of acme's (an operator there cancelled an event); it invoiced globex
        # what we did and acme 1.00 too little
        [acme] = [e for e in fake.meter_events if e["payload"]["stripe_customer_id"] == "cus_acme"]
        acme["payload"]["value"] = "2.25"
        fake.add_invoice("cus_globex", *JANUARY, 11610)
        fake.add_invoice("cus_acme", *JANUARY, 4820)
        fake.now = datetime(2026, 2, 2, tzinfo=timezone.utc).timestamp()
        result = run(instance, "monthly_billing_job", MONTH, provider)
    found = rows(s3, bucket)
    assert found[("globex", "usage", "egress_gb")]["status"] == "matches"
    assert found[("globex", "invoice_total", None)]["status"] == "matches"
    acme_usage = found[("acme", "usage", "egress_gb")]
    assert (acme_usage["ours"], acme_usage["theirs"], acme_usage["difference"], acme_usage["status"]) == (
        "2.5", "2.25", "0.25", "break")
    assert acme_usage["explanation"] == "stripe holds 2.25 egress_gb of acme for 2026-01, we metered 2.5: 0.25 missing there"
    acme_invoice = found[("acme", "invoice_total", None)]
    assert (acme_invoice["ours"], acme_invoice["theirs"], acme_invoice["status"]) == ("4920", "4820", "break")
    assert acme_invoice["explanation"] == ("stripe invoiced acme USD 48.20 for 2026-01, we billed USD 49.20: "
                                           "USD 1.00 less there")
    checks = {e.check_name: (e.passed, e.metadata) for e in result.get_asset_check_evaluations()
              if e.asset_key == dg.AssetKey("provider_reconciliation")}
    assert checks["provider_reconciliation_matches_contract"][0]
    passed, metadata = checks["provider_reconciliation_ties"]
    # and initech, not mapped to a Stripe customer, is named as not there
    assert found[("initech", "invoice_total", None)]["status"] == "not_mapped"
    assert not passed and metadata["breaks"].value == 3


def test_usage_stripe_summed_in_floating_point_matches_to_twelve_digits_and_no_further():
    ours = {("acme", "egress_gb"): Decimal("0.3"), ("globex", "egress_gb"): Decimal("1.00000000001")}
    theirs = {("acme", "egress_gb"): Decimal(repr(0.1 + 0.2)), ("globex", "egress_gb"): Decimal(1)}
    found = {row["customer_id"]: row for row in usage_rows(MONTH, "stripe", ours, theirs,
                                                             {"acme": "a", "globex": "g"}, {("globex", "egress_gb"): 1})}
    assert found["acme"]["status"] == "matches"  # 0.30000000000000004 is 0.3 to 12 digits
    assert found["globex"]["status"] == "break" and found["globex"]["explanation"].endswith(
        "0.00000000001 missing there (1 send(s) not acknowledged, see provider_sync)")
