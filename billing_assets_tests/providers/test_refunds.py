"""`refund_requests` run for real (Dagster instance, S3 server) against the local Stripe: a credit
note's refund is requested once, ever — through lost answers and re-runs — followed to its end,
and a failure names Stripe's reason. The credit note is worked out by hand: globex (pro, 10 %
off) was invoiced 1,250 GB (49.00 + 100.00 less 10 % = 134.10); 250 GB of it were withdrawn after
issue, so the credit note gives back 250 × 0.08 less 10 % = 18.00."""

import io
from datetime import datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest

from billing_assets.definitions import defs
from billing_assets.providers.stripe_api import StripeProvider
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import AFTER_GRACE, MONTH, day_file, usage
from billing_assets_tests.providers.fake_stripe import FakeStripe, serving
from billing_assets_tests.usage.conftest import QUIET

CREDIT_NOTE = "CN-202601-globex-1"
MAPPING = "customer_id,provider_customer_id\nglobex,cus_globex\n"


def run(instance, job: str, partition: str, provider: dict | None = None, only: str | None = None):
    """``job`` for ``partition``; ``only`` one of its assets (with its checks), for a re-run that
    has nothing else to redo."""
    resources = {"billing_policy": {"config": {"as_of": AFTER_GRACE}},
                 "billing_provider": {"config": {"as_of": AFTER_GRACE, **(provider or {"kind": "none"})}}}
    config = QUIET | {"resources": {name: value for name, value in resources.items()
                                    if job == "monthly_billing_job" or name == "billing_provider"}}
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False, run_config=config,
        asset_selection=[dg.AssetKey(only)] if only else None)
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return result


def refund_ledger(s3, bucket) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/refund_requests/month={MONTH}/part-00000.parquet")["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def issue_then_credit(put, instance, provider: dict | None = None) -> None:
    """January issued with 1,250 GB, then 250 GB withdrawn: one credit note of 18.00."""
    put(reference_files(provider_customers_csv=MAPPING) | day_file("2026-01-05", usage("g1", "1000"), usage("g2", "250")))
    run(instance, "daily_usage_job", "2026-01-05", provider)
    run(instance, "monthly_billing_job", MONTH, provider)
    put(day_file("2026-01-05", usage("g1", "1000")))
    run(instance, "daily_usage_job", "2026-01-05", provider)


@pytest.fixture
def stripe_account(monkeypatch):
    monkeypatch.setattr(StripeProvider, "__init__", _no_waiting(StripeProvider.__init__))
    fake = FakeStripe(now=datetime.fromisoformat(AFTER_GRACE).timestamp())
    with serving(fake) as url:
        yield fake, {"kind": "stripe", "stripe_api_key": "sk_test_fake", "endpoint": url, "max_retries": 1}  # pragma: allowlist secret
    assert fake.problems == []


def refund_requests_made(fake) -> int:
    return sum(1 for _, path in fake.requests if "refunds" in path or "payment_intents" in path)


def _no_waiting(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.sleep = lambda seconds: None
    return patched


def test_a_dry_run_plans_the_credit_notes_refund(put, s3, bucket):
    with dg.instance_for_test() as instance:
        issue_then_credit(put, instance)
        run(instance, "monthly_billing_job", MONTH)
        [row] = refund_ledger(s3, bucket)
    assert (row["document_number"], row["amount_minor"], row["currency"], row["status"], row["idempotency_key"],
            row["provider_customer_id"]) == (CREDIT_NOTE, 1800, "USD", "planned", CREDIT_NOTE, "cus_globex")


def test_a_lost_answer_and_re_runs_still_make_one_refund(put, s3, bucket, stripe_account):
    fake, provider = stripe_account
    fake.add_payment("INV-202601-globex", "cus_globex", 13410)
    fake.faults += [("POST /v1/refunds", "lose", 0)] * 2  # the refund is made; its answer lost on both tries
    with dg.instance_for_test() as instance:
        issue_then_credit(put, instance, provider)
        run(instance, "monthly_billing_job", MONTH, provider)
        [row] = refund_ledger(s3, bucket)
        assert row["status"] == "requested" and row["provider_refund_id"] is None  # made, or not: unknown
        fake.now += 25 * 3600  # Stripe has forgotten the idempotency key: only the refund's metadata tells
        result = run(instance, "monthly_billing_job", MONTH, provider, "refund_requests")  # found by its number
        run(instance, "monthly_billing_job", MONTH, provider, "refund_requests")
    [refund] = fake.refunds_of(CREDIT_NOTE)
    assert (refund["amount"], refund["payment_intent"], refund["status"]) == (1800, "pi_0001", "succeeded")
    [row] = refund_ledger(s3, bucket)
    assert (row["status"], row["provider_refund_id"], row["provider_payment_id"]) == ("succeeded", refund["id"], "pi_0001")
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()
            if e.asset_key == dg.AssetKey("refund_requests")} == {
        "refund_requests_matches_contract": True, "refund_requests_one_per_credit_note": True,
        "refund_requests_succeeded": True}


def test_a_refund_waits_for_its_payment_and_a_failed_one_is_not_asked_for_again(put, s3, bucket, stripe_account):
    fake, provider = stripe_account
    fake.refund_fates[CREDIT_NOTE] = ("failed", "expired_or_canceled_card")
    with dg.instance_for_test() as instance:
        issue_then_credit(put, instance, provider)
        result = run(instance, "monthly_billing_job", MONTH, provider)  # no payment yet: nothing to pay back from
        [row] = refund_ledger(s3, bucket)
        assert (row["status"], row["retryable"]) == ("failed", True)
        assert row["failure_reason"] == ("no succeeded Stripe payment carries metadata "
                                         "invoice_number=INV-202601-globex: nothing to refund yet")
        assert not {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["refund_requests_succeeded"]

        fake.add_payment("INV-202601-globex", "cus_globex", 13410)
        run(instance, "monthly_billing_job", MONTH, provider, "refund_requests")  # the payment is there: it fails
        asked = refund_requests_made(fake)
        run(instance, "monthly_billing_job", MONTH, provider, "refund_requests")  # Stripe said failed: not again
        assert refund_requests_made(fake) == asked
    [row] = refund_ledger(s3, bucket)
    assert (row["status"], row["retryable"]) == ("failed", False)
    assert row["failure_reason"] == f"Stripe refund {row['provider_refund_id']} failed: expired_or_canceled_card"
    assert len(fake.refunds_of(CREDIT_NOTE)) == 1
