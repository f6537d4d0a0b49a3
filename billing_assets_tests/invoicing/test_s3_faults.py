"""S3 faults injected in-process (a botocore ``before-send`` handler on the lake's client, inside
botocore's retry loop, against the S3 server), each named by the invariant it checks:

- a response lost after a successful conditional PUT of a document: the retry's 412 is the
  write's own success (read back, same bytes), never a second document and never an alarm;
- bursts of 503 SlowDown and 500 on every kind of request, through a whole day and month: the
  tables and documents equal a run without faults.
The figures (faults injected, outcome) are in the README's Reliability section."""

import io
import re
import types

import boto3
import botocore.endpoint
import dagster as dg
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from billing_assets.lib.lake import BillingLake
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.crash_points import logical_rows
from billing_assets_tests.invoicing.test_assets import MONTH, day_file, documents, run, usage

DOCUMENT = re.compile(r"/documents/.+/(INV|CN|ADJ)-[^/]+\.json$")
SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
INTERNAL = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"


class _Body(io.BytesIO):
    def stream(self, **_):
        yield self.getvalue()


def _faulty(monkeypatch, handler) -> None:
    """Every lake client the runs build gets ``handler`` on each request it sends; botocore's
    retries keep their attempts but not their backoff waits (seconds of sleep a fault, nothing
    under test)."""
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    original = BillingLake.client

    def client(self):
        made = original(self)
        if not getattr(made, "_faults", False):
            made.meta.events.register("before-send.s3", handler)
            made._faults = True
        return made

    monkeypatch.setattr(BillingLake, "client", client)


def _tables(s3, bucket) -> dict:
    """Every warehouse table's rows, by key, and the issued documents' bytes: the logical state."""
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="warehouse/")
            for item in page.get("Contents", [])]
    rows = {key: logical_rows(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            # sla_report records when things ran, and billing_kpis' days to issue come from it
            for key in keys if "sla_report" not in key and "billing_kpis" not in key}
    return rows | {"documents": documents(s3, bucket)}


def test_a_lost_response_after_a_conditional_put_is_the_puts_own_success(put, s3, bucket, monkeypatch):
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000")))
    side = boto3.client("s3")  # what reached S3 before the response was lost
    lost = []

    def lose_document_responses(request, **_):
        if request.method == "PUT" and DOCUMENT.search(request.url) and request.url not in lost:
            lost.append(request.url)
            key = request.url.split(f"/{bucket}/", 1)[1]
            side.put_object(Bucket=bucket, Key=key, Body=request.body, IfNoneMatch="*")
            raise ConnectionClosedError(endpoint_url=request.url)
        return None

    _faulty(monkeypatch, lose_document_responses)
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH)  # issues INV-202601-globex: its response is lost
        put(day_file("2026-01-20", usage("g2", "250", day="2026-01-20")))
        run(instance, "daily_usage_job", "2026-01-20")
        run(instance, "monthly_billing_job", MONTH)  # corrects it: the ADJ's response is lost too
    assert any(url.endswith("/globex/INV-202601-globex.json") for url in lost)
    assert any(url.endswith("/globex/ADJ-202601-globex-1.json") for url in lost)
    docs = documents(s3, bucket)
    assert sorted(name for name in docs if name.endswith(".json")) == ["ADJ-202601-globex-1.json",
                                                                       "INV-202601-globex.json"]
    assert b'"amount_minor": 1800' in docs["ADJ-202601-globex-1.json"]  # 250 GB × 0.08 less 10 %: once


@pytest.mark.parametrize("every", [5])
def test_bursts_of_503_and_500_change_nothing(put, s3, bucket, monkeypatch, every):
    objects = reference_files() | day_file("2026-01-05", usage("g1", "1000")) | day_file(
        "2026-01-06", usage("g2", "7", day="2026-01-06"))
    put(objects)
    with dg.instance_for_test() as instance:
        for day in ("2026-01-05", "2026-01-06"):
            run(instance, "daily_usage_job", day)
        run(instance, "monthly_billing_job", MONTH)
    clean = _tables(s3, bucket)
    for key in [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]:
        s3.delete_object(Bucket=bucket, Key=key)
    put(objects)

    counts = {"requests": 0, "injected": 0}

    def bursts(request, **_):
        # every fifth request meets a burst: a 503, then a 500, then it goes through (botocore's
        # own retries, up to 5 attempts, are what carries it)
        counts["requests"] += 1
        turn = counts["requests"] % (every + 2)
        if turn in (1, 2):
            counts["injected"] += 1
            status, body = (503, SLOW_DOWN) if turn == 1 else (500, INTERNAL)
            return AWSResponse(request.url, status, {}, _Body(body))
        return None

    _faulty(monkeypatch, bursts)
    with dg.instance_for_test() as instance:
        for day in ("2026-01-05", "2026-01-06"):
            run(instance, "daily_usage_job", day)
        run(instance, "monthly_billing_job", MONTH)
    monkeypatch.undo()
    assert counts["injected"] > 50  # faults met on the way (108 today: the figure the README quotes)
    assert _tables(s3, bucket) == clean
