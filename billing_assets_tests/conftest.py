"""Shared fixtures: a real S3 endpoint (moto's server on loopback) and small reference data.

Every test that touches S3 talks HTTP to the server through boto3, exactly as production
talks to AWS; each gets its own bucket so tests never see each other's objects.
"""

import os
import uuid
import warnings

import boto3
import pytest
from hypothesis import settings
from moto.server import ThreadedMotoServer

from billing_assets.demo.embedded_s3 import free_port
from billing_assets.lib.lake import _CLIENTS, PUBLISHED

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=300)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
warnings.filterwarnings("ignore", category=DeprecationWarning)

# the files that take longest (`pytest --durations=30`), handed out first: with workers taking
# whole files, a two-minute file started last keeps one worker busy while the others idle
LONGEST_FIRST = ["test_state_machine.py", "spark/test_pipes.py", "test_integration.py", "test_concurrency.py",
                 "test_crash_points.py", "test_operator_faults.py", "test_deploy.py", "analytics/test_assets.py",
                 "providers/test_refunds.py", "insights/test_month.py", "test_signals.py", "test_ui.py"]


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("billing_assets_tests/"),
                                         len(LONGEST_FIRST)))

METERS = """\
meters:
  - {name: api_requests, aggregation: count, unit: request}
  - {name: egress_gb, aggregation: sum, unit: GB}
  - {name: active_users, aggregation: unique_count, unit: user, field: user_id}
  - {name: peak_sessions, aggregation: max, unit: session}
  - {name: seats, aggregation: latest, unit: seat}
"""
PLANS = """\
plans:
  - plan_id: pro
    currency: USD
    base_fee: "49.00"
    charges:
      - {meter: api_requests, model: graduated, tiers: [{up_to: 100000, unit_price: "0"}, {up_to: null, unit_price: "0.0002"}]}
      - {meter: egress_gb, model: per_unit, unit_price: "0.08"}
  - plan_id: euro
    currency: EUR
    charges:
      - {meter: egress_gb, model: per_unit, unit_price: "0.07"}
"""
CUSTOMERS = "customer_id,name,currency\nacme,Acme,USD\nglobex,Globex,USD\ninitech,Initech,EUR\nhooli,Hooli,USD\n"
CONTRACTS = (
    "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n"
    "c-acme,acme,pro,2026-01-01,,\n"
    "c-globex,globex,pro,2026-01-01,,10\n"
    "c-initech,initech,euro,2026-01-01,,\n"
)
IP_ALLOCATIONS = (
    "cidr,customer_id,valid_from,valid_to\n"
    "10.0.0.0/8,acme,2025-01-01,\n"
    "10.20.0.0/16,globex,2025-01-01,\n"
    "10.20.30.0/24,initech,2026-01-01,2026-01-06\n"
    "2001:db8::/32,globex,2025-01-01,\n"
    "2001:db8:42::/48,initech,2025-01-01,\n"
)


def reference_files(**overrides: str) -> dict[str, bytes]:
    files = {
        "reference/meters.yaml": METERS, "reference/plans.yaml": PLANS, "reference/customers.csv": CUSTOMERS,
        "reference/contracts.csv": CONTRACTS, "reference/ip_allocations.csv": IP_ALLOCATIONS,
    }
    for name, text in overrides.items():
        files[f"reference/{name.replace('_yaml', '.yaml').replace('_csv', '.csv')}"] = text
    return {key: text.encode() for key, text in files.items()}


@pytest.fixture(scope="session")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def fresh_s3_clients():
    """The lake shares one boto3 client per configuration within a process, and keeps copies of
    what it published; a test that hooks faults into a client must not hand it to the next test."""
    _CLIENTS.clear()
    PUBLISHED.clear()
    yield
    _CLIENTS.clear()
    PUBLISHED.clear()


@pytest.fixture
def aws_env(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return s3_endpoint


@pytest.fixture
def bucket(aws_env, monkeypatch):
    """A fresh, empty bucket named in BILLING_BUCKET."""
    name = f"billing-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    monkeypatch.setenv("BILLING_BUCKET", name)
    return name


@pytest.fixture
def s3(bucket):
    return boto3.client("s3")


@pytest.fixture
def put(s3, bucket):
    def _put(objects: dict[str, bytes]) -> None:
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)

    return _put
