"""`provider_sync` run for real (Dagster instance, S3 server), against a local Stripe with its
documented semantics (fake_stripe.py) through the official SDK. Quantities are worked out by
hand from the events each test lands."""

import io
from datetime import datetime
from decimal import Decimal

import dagster as dg
import pyarrow.parquet as pq
import pytest

from billing_assets.definitions import defs
from billing_assets.providers.stripe_api import StripeProvider
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.providers.fake_stripe import FakeStripe, serving
from billing_assets_tests.usage.conftest import QUIET
from billing_assets_tests.usage.helpers import event

DAY = "2026-01-05"
AS_OF = "2026-01-06T06:00:00+00:00"
MAPPING = "customer_id,provider_customer_id\nacme,cus_acme\nglobex,cus_globex\n"


def day_file(*lines: str, name: str = "usage.jsonl") -> dict:
    return {f"raw/usage/dt={DAY}/{name}": "".join(line + "\n" for line in lines).encode()}


# acme (pro: api_requests and egress_gb priced): 3 requests, 1.25 + 0.5 GB; an active_users
# event (unique_count: not additive, never synced); globex (pro) 2 GB; initech (euro plan
# prices egress only) 4 requests (not priced) and 0.75 GB
LINES = [event(event_id="r1", meter="api_requests", quantity=...), event(event_id="r2", meter="api_requests", quantity=...),
         event(event_id="r3", meter="api_requests", quantity=...), event(event_id="e1", quantity="1.25"),
         event(event_id="e2", quantity="0.5"), event(event_id="u1", meter="active_users", quantity=...,
                                                    properties={"user_id": "ann"}),
         event(event_id="g1", customer_id="globex", quantity="2"),
         *[event(event_id=f"i{n}", customer_id="initech", meter="api_requests", quantity=...) for n in range(4)],
         event(event_id="i9", customer_id="initech", quantity="0.75")]
EXPECTED = {("acme", "api_requests"): Decimal(3), ("acme", "egress_gb"): Decimal("1.75"),
            ("globex", "egress_gb"): Decimal(2), ("initech", "egress_gb"): Decimal("0.75")}


def sync(instance, provider: dict | None = None):
    config = QUIET | {"resources": {"billing_provider": {"config": {"as_of": AS_OF, **(provider or {"kind": "none"})}}}}
    return defs.resolve_job_def("daily_usage_job").execute_in_process(
        partition_key=DAY, instance=instance, raise_on_error=False, run_config=config)


def ledger(s3, bucket) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/provider_sync/dt={DAY}/part-00000.parquet")["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def checks(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()
            if evaluation.asset_key == dg.AssetKey("provider_sync")}


def test_a_dry_run_plans_each_priced_additive_meter_once_and_a_late_file_only_the_difference(put, s3, bucket):
    put(reference_files() | day_file(*LINES))
    with dg.instance_for_test() as instance:
        assert sync(instance).success
        rows = ledger(s3, bucket)
        assert {(r["customer_id"], r["meter"]): r["quantity_sent"] for r in rows} == EXPECTED
        assert {(r["kind"], r["status"], r["provider"], r["revision"]) for r in rows} == {("usage", "planned", "none", 1)}
        assert rows[0]["identifier"] == "usage:2026-01-05:acme:api_requests:1"
        assert rows[0]["provider_customer_id"] is None  # no provider_customers.csv

        first = s3.get_object(Bucket=bucket, Key=f"warehouse/provider_sync/dt={DAY}/part-00000.parquet")["ETag"]
        assert sync(instance).success  # a re-run plans nothing and leaves the ledger as it was
        assert s3.get_object(Bucket=bucket, Key=f"warehouse/provider_sync/dt={DAY}/part-00000.parquet")["ETag"] == first

        # late: acme 0.25 GB more and one more request; globex re-sends g1 (a duplicate: nothing)
        put(day_file(event(event_id="e3", quantity="0.25"), event(event_id="r4", meter="api_requests", quantity=...),
                     event(event_id="g1", customer_id="globex", quantity="2"), name="late.jsonl"))
        result = sync(instance)
        assert result.success and checks(result)["provider_sync_adds_up"]
        added = ledger(s3, bucket)[len(rows):]
    assert [(r["customer_id"], r["meter"], r["quantity_sent"], r["kind"], r["revision"], r["identifier"]) for r in added] == [
        ("acme", "api_requests", Decimal(1), "correction", 2, "usage:2026-01-05:acme:api_requests:2"),
        ("acme", "egress_gb", Decimal("0.25"), "correction", 2, "usage:2026-01-05:acme:egress_gb:2")]


@pytest.fixture
def stripe_account():
    fake = FakeStripe(now=datetime.fromisoformat(AS_OF).timestamp())
    with serving(fake) as url:
        yield fake, {"kind": "stripe", "stripe_api_key": "sk_test_fake", "endpoint": url}  # pragma: allowlist secret
    assert fake.problems == []  # every request and answer matched Stripe's published types


def test_stripe_gets_each_day_once_through_rate_limits_5xx_and_lost_answers(put, s3, bucket, stripe_account, monkeypatch):
    fake, provider = stripe_account
    monkeypatch.setattr(StripeProvider, "__init__", _no_waiting(StripeProvider.__init__))
    put(reference_files(provider_customers_csv=MAPPING) | day_file(*LINES))
    fake.faults += [("POST /v1/billing", "429", 2), ("POST /v1/billing", "lose", 0), ("POST /v1/billing", "500", 0),
                    ("POST /v1/billing", "lose", 0)]
    with dg.instance_for_test() as instance:
        result = sync(instance, provider)
        # the unmapped customer's row is a warning; the ledger adds up
        assert result.success and checks(result) == {"provider_sync_matches_contract": True,
                                                      "provider_sync_adds_up": True, "provider_sync_acknowledged": False}
        rows = ledger(s3, bucket)
        sent_before = len(fake.requests)
        assert sync(instance, provider).success
        assert len(fake.requests) == sent_before + 0  # a re-run sends nothing (the unmapped row waits)

        put(reference_files(provider_customers_csv=MAPPING + "initech,cus_initech\n"))
        result = sync(instance, provider)  # now initech's row goes, under its first identifier
        assert result.success and all(checks(result).values()), checks(result)
        assert len(fake.requests) == sent_before + 1 and fake.meter_total("cus_initech", "egress_gb") == Decimal("0.75")
        assert [r["identifier"] for r in ledger(s3, bucket)] == [r["identifier"] for r in rows]
    # initech has no Stripe customer: its row fails, retryable once it is mapped
    assert {(r["customer_id"], r["meter"]): r["status"] for r in rows} == {
        ("acme", "api_requests"): "acknowledged", ("acme", "egress_gb"): "acknowledged",
        ("globex", "egress_gb"): "acknowledged", ("initech", "egress_gb"): "failed"}
    assert [r["failure_reason"] for r in rows if r["status"] == "failed"] == [
        "customer initech has no Stripe customer in reference/provider_customers.csv"]
    # exactly once: each identifier once in Stripe, whatever was retried; totals exact
    assert len(fake.meter_events) == len({e["identifier"] for e in fake.meter_events}) == 4
    assert fake.meter_total("cus_acme", "egress_gb") == Decimal("1.75")
    assert fake.meter_total("cus_acme", "api_requests") == Decimal(3)
    assert fake.meter_total("cus_globex", "egress_gb") == Decimal(2)


def _no_waiting(init):
    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.waited = []
        self.sleep = self.waited.append
    return patched


def test_a_crash_mid_sync_resumes_without_sending_twice(put, s3, bucket, stripe_account, monkeypatch):
    fake, provider = stripe_account
    put(reference_files(provider_customers_csv=MAPPING + "initech,cus_initech\n") | day_file(*LINES))
    original = StripeProvider.send_usage

    def dies_after_two(self, rows, now):
        original(self, rows[:2], now)  # two events reach Stripe; the process dies before recording it
        raise RuntimeError("killed")

    with dg.instance_for_test() as instance:
        monkeypatch.setattr(StripeProvider, "send_usage", dies_after_two)
        assert not sync(instance, provider).success
        assert {r["status"] for r in ledger(s3, bucket)} == {"planned"}  # the plan was stored first
        monkeypatch.setattr(StripeProvider, "send_usage", original)
        result = sync(instance, provider)
        assert result.success and all(checks(result).values()), checks(result)
    assert len(fake.meter_events) == len({e["identifier"] for e in fake.meter_events}) == 4
    assert {(e["payload"]["stripe_customer_id"], e["event_name"]): Decimal(e["payload"]["value"])
            for e in fake.meter_events} == {(f"cus_{customer}", meter): quantity
                                            for (customer, meter), quantity in EXPECTED.items()}
    resent = [r for r in ledger(s3, bucket) if "already held" in (r["provider_response"] or "")]
    assert len(resent) == 2


def test_what_stripe_cannot_take_is_named_and_never_rounded_or_resent(put, s3, bucket, stripe_account):
    fake, provider = stripe_account
    huge = "123456789012345.123456789"  # 24 significant digits: exact here, more than Stripe's 15
    put(reference_files(provider_customers_csv=MAPPING) | day_file(
        event(event_id="e1", quantity=huge), event(event_id="g1", customer_id="globex", quantity="2"),
        event(event_id="g2", customer_id="globex", quantity="3")))
    with dg.instance_for_test() as instance:
        assert sync(instance, provider).success
        # the producer withdraws g2: globex's usage goes down by 3
        put(day_file(event(event_id="e1", quantity=huge), event(event_id="g1", customer_id="globex", quantity="2")))
        result = sync(instance, provider)
        assert result.success and checks(result) == {"provider_sync_matches_contract": True,
                                                      "provider_sync_adds_up": True, "provider_sync_acknowledged": False}
        requests = len(fake.requests)
        assert sync(instance, provider).success and len(fake.requests) == requests  # not retried: Stripe would refuse again
    rows = {(r["customer_id"], r["revision"]): r for r in ledger(s3, bucket)}
    assert rows[("acme", 1)]["status"] == "failed" and rows[("acme", 1)]["failure_reason"] == (
        "123456789012345.123456789 has 24 significant digits; Stripe takes at most 15 and this platform never "
        "rounds usage")
    assert rows[("globex", 1)]["status"] == "acknowledged" and rows[("globex", 1)]["quantity_sent"] == Decimal(5)
    assert rows[("globex", 2)]["quantity_sent"] == Decimal(-3) and rows[("globex", 2)]["status"] == "failed"
    assert rows[("globex", 2)]["failure_reason"].startswith("usage went down by 3: Stripe cannot lower meter events")
    assert not rows[("globex", 2)]["retryable"] and fake.meter_total("cus_globex", "egress_gb") == Decimal(5)
    assert [e["identifier"] for e in fake.meter_events] == ["usage:2026-01-05:globex:egress_gb:1"]


def test_a_send_left_unanswered_past_stripes_identifier_window_is_not_sent_again(put, s3, bucket, stripe_account,
                                                                                  monkeypatch):
    fake, provider = stripe_account
    monkeypatch.setattr(StripeProvider, "__init__", _no_waiting(StripeProvider.__init__))
    put(reference_files(provider_customers_csv=MAPPING) | day_file(event(event_id="g1", customer_id="globex", quantity="2")))
    fake.faults += [("POST /v1/billing", "lose", 0)] * 2  # the first try and the one retry allowed: never an answer
    provider = provider | {"max_retries": 1}
    with dg.instance_for_test() as instance:
        assert sync(instance, provider).success
        [row] = ledger(s3, bucket)
        assert row["status"] == "sent" and row["failure_reason"].startswith("no answer from Stripe")
        # 25 hours on, Stripe no longer recognises the identifier: sending it again could count twice
        later = "2026-01-07T07:00:00+00:00"
        fake.now = datetime.fromisoformat(later).timestamp()
        result = sync(instance, provider | {"as_of": later})
        assert result.success and not checks(result)["provider_sync_acknowledged"]
    [row] = ledger(s3, bucket)
    assert row["status"] == "sent" and "24 h identifier window has passed" in row["failure_reason"]
    assert len(fake.requests) == 2 and len(fake.meter_events) == 1  # it did arrive: reconciliation will say so
